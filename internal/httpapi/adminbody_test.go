package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// bodyRoutes are the admin routes that decode a JSON body, each with a
// field its input has (a string, bool or number, so an array is a type
// error), on tenant "ghost", which does not exist: a service that was
// called would answer 404 (and, without integrations, Ringostat or
// SALESmanago configured, 404 before even looking).
var bodyRoutes = []struct {
	method, path, field string
	optional            bool // an empty body is passed on as the zero input
}{
	{"POST", "tenants", "id", false},
	{"PATCH", "tenants/ghost", "name", false},
	{"PUT", "tenants/ghost/default-owner", "crm_user_id", false},
	{"PUT", "tenants/ghost/employees/u1", "sip", false},
	{"PUT", "tenants/ghost/stop-list/101", "note", true},
	{"PUT", "tenants/ghost/integration", "crm", false},
	{"POST", "tenants/ghost/integration/activate", "resend", true},
	{"POST", "tenants/ghost/integration/deactivate", "resend", true},
	{"PUT", "tenants/ghost/ringostat", "base_url", false},
	{"PUT", "tenants/ghost/salesmanago", "client_id", false},
	{"POST", "tenants/ghost/secret/rotate", "grace_seconds", true},
	{"POST", "tokens", "name", false},
}

// TestAdminBodyDecodedBeforeTheService: every admin route with a body
// decodes it strictly in the transport, into the service's typed input,
// before the service is called. A body that does not decode is a 400
// naming the field (or the body) even where the service would have
// answered 404, and nothing reaches the store or the audit log.
func TestAdminBodyDecodedBeforeTheService(t *testing.T) {
	e := newEnv(t)
	for _, r := range bodyRoutes {
		bad := []struct{ body, want string }{
			{`{"bogus_field":1}`, "bogus_field: unknown field"},
			{`{"` + r.field + `":[1]}`, r.field + ": must be a "},
			{`{"` + r.field + `":"a\u0000b"}`, `body: NUL characters (\\u0000) are not accepted`},
			{`{} {}`, "body: more than one JSON value"},
			{`{"` + r.field + `":`, "body: invalid JSON"},
			{`[]`, "body: invalid JSON: cannot unmarshal array"},
		}
		if !r.optional {
			bad = append(bad, struct{ body, want string }{" \n", "body: a JSON object is required"})
		}
		for _, tc := range bad {
			a := e.admin(r.method, r.path, tc.body)
			if a.status != 400 || !strings.Contains(a.body, tc.want) {
				t.Errorf("%s %s %q: %d %s; want 400 mentioning %q", r.method, r.path, tc.body, a.status, a.body, tc.want)
			}
		}
		if r.optional {
			// An empty body is no input: the service gets the zero one and
			// answers for the unknown tenant.
			if a := e.admin(r.method, r.path, ""); a.status != 404 {
				t.Errorf("%s %s without a body: %d %s; want the service's 404", r.method, r.path, a.status, a.body)
			}
		}
	}
	// A well-formed body reaches the service, which answers for "ghost".
	if a := e.admin("PATCH", "tenants/ghost", `{"name":"x"}`); a.status != 404 {
		t.Errorf("PATCH tenants/ghost with a good body: %d %s; want the service's 404", a.status, a.body)
	}
	if a := e.mustAdmin(200, "GET", "tenants", ""); strings.TrimSpace(a.body) != "[]" {
		t.Errorf("tenants after refused bodies: %s", a.body)
	}
	if a := e.mustAdmin(200, "GET", "tokens", ""); strings.TrimSpace(a.body) != "[]" {
		t.Errorf("tokens after refused bodies: %s", a.body)
	}
	var audit []any
	if a := e.mustAdmin(200, "GET", "audit", ""); json.Unmarshal([]byte(a.body), &audit) != nil || len(audit) != 0 {
		t.Errorf("audit after refused bodies: %s", a.body)
	}
}

// TestAdminPatchBody: PATCH keeps what the body leaves out (a null scalar
// too), merges the matrix into the stored one, resets a list given as
// null, refuses unknown and mistyped fields inside nested objects naming
// them, and audits the patch as given.
func TestAdminPatchBody(t *testing.T) {
	e := newEnv(t)
	e.acme(`,"language":"uk","pipeline_rules":[{"param":"pool_name","value":"ads","pipeline":"7"}],"form_phone_fields":["mobile"]`)

	for body, want := range map[string]string{
		`{"pipeline_rules":[{"param":"a","bogus":1}]}`:        "bogus: unknown field",
		`{"pipeline_rules":[{"param":5}]}`:                    "pipeline_rules.param: must be a string, got number",
		`{"matrix":"all"}`:                                    "matrix: must be a domain.Matrix, got string",
		`{"form_mapping":{"deal":[{"crm_field":"f","x":1}]}}`: "x: unknown field",
		`{"route_budget_ms":"fast"}`:                          "route_budget_ms: must be a int, got string",
	} {
		if a := e.admin("PATCH", "tenants/acme", body); a.status != 400 || !strings.Contains(a.body, want) {
			t.Errorf("PATCH %s: %d %s; want 400 mentioning %q", body, a.status, a.body, want)
		}
	}

	e.mustAdmin(200, "PATCH", "tenants/acme", `{"on_miss":"default_owner","language":null,"matrix":{"outgoing_known":[]}}`)
	v := e.mustAdmin(200, "GET", "tenants/acme", "").json(t)
	if v["language"] != "uk" || v["on_miss"] != "default_owner" || v["default_country"] != "UA" || v["name"] != "Acme" {
		t.Errorf("after the patch: %v", v)
	}
	if rules, _ := v["pipeline_rules"].([]any); len(rules) != 1 {
		t.Errorf("pipeline rules the patch left out: %v", v["pipeline_rules"])
	}
	if !reflect.DeepEqual(v["form_phone_fields"], []any{"mobile"}) {
		t.Errorf("form_phone_fields the patch left out: %v", v["form_phone_fields"])
	}
	m, _ := v["matrix"].(map[string]any)
	if !reflect.DeepEqual(m["outgoing_known"], []any{}) || !reflect.DeepEqual(m["outgoing_new"], []any{"lead", "call"}) {
		t.Errorf("the matrix merged: %v", m)
	}

	var entries []struct{ Action, Detail string }
	if err := json.Unmarshal([]byte(e.mustAdmin(200, "GET", "tenants/acme/audit?limit=1", "").body), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("audit: %v %v", entries, err)
	}
	var detail, want map[string]any
	_ = json.Unmarshal([]byte(entries[0].Detail), &detail)
	_ = json.Unmarshal([]byte(`{"on_miss":"default_owner","matrix":{"outgoing_known":[]}}`), &want)
	if entries[0].Action != "tenant.update" || !reflect.DeepEqual(detail, want) {
		t.Errorf("audit of the patch: %s %s; want tenant.update %v", entries[0].Action, entries[0].Detail, want)
	}

	// A list given as null goes back to its default, as when the body was
	// decoded onto the stored settings; the console sends null for a
	// cleared JSON field.
	e.mustAdmin(200, "PATCH", "tenants/acme", `{"pipeline_rules":null,"form_phone_fields":null}`)
	v = e.mustAdmin(200, "GET", "tenants/acme", "").json(t)
	if v["pipeline_rules"] != nil || !reflect.DeepEqual(v["form_phone_fields"], []any{"phone", "tel", "telephone"}) {
		t.Errorf("after nulls: pipeline_rules %v, form_phone_fields %v", v["pipeline_rules"], v["form_phone_fields"])
	}
}
