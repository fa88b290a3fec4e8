package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/report"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

const testAdminToken = "test-admin-token"

// env is a callrouter server on a loopback port over an SQLite store.
type env struct {
	t      *testing.T
	url    string
	st     store.Store
	cache  *cache.Cache
	events *flakyEvents
	queued *recordingQueue
	heard  *recordingObserver
	rec    *report.Recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 14, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sum := sha256.Sum256([]byte(testAdminToken))
	evs := &flakyEvents{Events: st}
	q := &recordingQueue{}
	ingest := events.NewIngest(evs, q, nil, 1)
	t.Cleanup(ingest.Close)
	heard := &recordingObserver{}
	// No Run: a test that reads decisions writes them with Drain.
	rec := report.NewRecorder(st, report.RecorderConfig{})
	srv := New(Config{Tenants: reg, Router: lookup.New(c, st, time.Second), Admin: admin.New(st, reg, c),
		Events: ingest, Observer: heard, Ready: c.Ready, AdminTokenHash: sum[:], Log: zap.NewNop(), Decisions: rec})
	hs := NewFastHTTP(srv.Handler, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { hs.Shutdown() })
	return &env{t: t, url: "http://" + ln.Addr().String(), st: st, cache: c, events: evs, queued: q, heard: heard, rec: rec}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", a.body, err)
	}
	return m
}

func (e *env) do(method, path, contentType, body string, header map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *env) admin(method, path, body string) answer {
	e.t.Helper()
	return e.do(method, "/admin/v1/"+path, "application/json", body, map[string]string{"Authorization": "Bearer " + testAdminToken})
}

func (e *env) mustAdmin(status int, method, path, body string) answer {
	e.t.Helper()
	a := e.admin(method, path, body)
	if a.status != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, a.status, status, a.body)
	}
	return a
}

// acme creates tenant acme (country UA) with employees, a default owner and
// three indexed phones, and returns its webhook secret.
func (e *env) acme(settings string) string {
	e.t.Helper()
	body := `{"id":"acme","name":"Acme","default_country":"UA"` + settings + `}`
	created := e.mustAdmin(201, "POST", "tenants", body).json(e.t)
	secret, _ := created["webhook_secret"].(string)
	if len(secret) < 20 {
		e.t.Fatalf("webhook secret %q too short", secret)
	}
	e.mustAdmin(200, "PUT", "tenants/acme/employees/101", `{"sip":"anna_sip","phone":"+380 50 111 11 11","name":"Anna"}`)
	e.mustAdmin(200, "PUT", "tenants/acme/employees/102", `{"phone":"050 222 22 22","name":"Boris"}`)
	e.mustAdmin(200, "PUT", "tenants/acme/employees/900", `{"sip":"boss_sip","name":"Senior"}`)
	e.mustAdmin(200, "PUT", "tenants/acme/default-owner", `{"crm_user_id":"900"}`)
	e.mustAdmin(200, "POST", "tenants/acme/contacts/import?format=csv", "phone,owner_crm_user_id,entity_kind,entity_id,name,open\n"+
		"067 123 45 67,101,lead,L1,Client One,true\n"+
		"+380 93 765 43 21,102,contact,C2,Client Two,true\n"+
		"380991112233,777,contact,C3,Orphan,true\n")
	return secret
}

func (e *env) route(secret, query string) answer {
	e.t.Helper()
	return e.do("GET", "/pbx/acme/route?key="+url.QueryEscape(secret)+"&"+query, "", "", nil)
}

func TestQuickstartForwardsToTheMappedSIPLogin(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	a := e.route(secret, "caller=380671234567")
	if a.status != 200 || a.body != `{"number":"anna_sip"}` || a.header.Get("X-Route-Reason") != "owner" {
		t.Fatalf("route: %d %q reason %q", a.status, a.body, a.header.Get("X-Route-Reason"))
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func TestRouteEncodings(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	key := "key=" + url.QueryEscape(secret)
	tests := []struct {
		name, method, query, ctype, body string
		header                           map[string]string
	}{
		{"GET query", "GET", "caller=380671234567", "", "", nil},
		{"GET query with plus and spaces", "GET", "caller=%2B380%20(67)%20123-45-67", "", "", nil},
		{"GET national number", "GET", "phone=0671234567", "", "", nil},
		{"GET 00 prefix", "GET", "from=00380671234567", "", "", nil},
		{"POST form", "POST", "", "application/x-www-form-urlencoded", "callerid=380671234567&uuid=x", nil},
		{"POST JSON", "POST", "", "application/json", `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d","caller":"380671234567"}`, nil},
		{"POST JSON number value", "POST", "", "application/json", `{"caller_number":380671234567}`, nil},
		{"POST JSON percent-encoded", "POST", "", "application/json", `{"caller":"%2B380671234567"}`, nil},
		{"POST JSON dotted path", "POST", "", "application/json", `{"additional_call_data":{"userfield":"380671234567"}}`, nil},
		{"POST JSON with text/plain type", "POST", "", "text/plain", `{"src":"380671234567"}`, nil},
		{"POST JSON-RPC", "POST", "", "application/json", `{"jsonrpc":"2.0","method":"route","params":{"caller":"380671234567"},"id":7}`, nil},
		{"PUT JSON", "PUT", "", "application/json", `{"caller":"380671234567"}`, nil},
		{"DELETE query", "DELETE", "caller=380671234567", "", "", nil},
		{"header", "GET", "", "", "", map[string]string{"Caller": "380671234567"}},
		{"header with dash for underscore", "GET", "", "", "", map[string]string{"Caller-Id": "380671234567"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/pbx/acme/route?" + key
			if tc.query != "" {
				path += "&" + tc.query
			}
			a := e.do(tc.method, path, tc.ctype, tc.body, tc.header)
			if a.status != 200 || a.body != `{"number":"anna_sip"}` || a.header.Get("X-Route-Reason") != "owner" {
				t.Fatalf("%d %q reason %q", a.status, a.body, a.header.Get("X-Route-Reason"))
			}
		})
	}
}

func TestRouteReasonsAndTargets(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	tests := []struct{ caller, body, reason string }{
		{"380671234567", `{"number":"anna_sip"}`, "owner"},
		{"0937654321", `{"number":"380502222222"}`, "owner"},       // phone when no SIP login
		{"380991112233", `{"number":"boss_sip"}`, "default_owner"}, // owner 777 is unmapped
		{"380501234000", `{}`, "no_match"},                         // unknown caller, on_miss=next
		{"anonymous", `{}`, "invalid_caller"},                      // not a phone
	}
	for _, tc := range tests {
		a := e.route(secret, "caller="+url.QueryEscape(tc.caller))
		if a.status != 200 || a.body != tc.body || a.header.Get("X-Route-Reason") != tc.reason {
			t.Errorf("caller %s: %d %q reason %q; want %q reason %q", tc.caller, a.status, a.body, a.header.Get("X-Route-Reason"), tc.body, tc.reason)
		}
	}
}

func TestRouteResponseFormats(t *testing.T) {
	e := newEnv(t)
	secret := e.acme(`,"response_format":"text"`)
	a := e.route(secret, "caller=380671234567")
	if a.body != "anna_sip" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("text: %q %q", a.body, a.header.Get("Content-Type"))
	}
	if a = e.route(secret, "caller=380500000000"); a.status != 200 || a.body != "" || a.header.Get("X-Route-Reason") != "no_match" {
		t.Fatalf("text, no forward: %d %q", a.status, a.body)
	}

	e.mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"json","response_field":"forward_to"}`)
	if a = e.route(secret, "caller=380671234567"); a.body != `{"forward_to":"anna_sip"}` {
		t.Fatalf("json with response_field: %q", a.body)
	}

	e.mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"jsonrpc","response_field":"number"}`)
	for _, tc := range []struct{ body, want string }{
		{`{"jsonrpc":"2.0","method":"route","params":{"caller":"380671234567"},"id":42}`, `{"jsonrpc":"2.0","id":42,"result":{"number":"anna_sip"}}`},
		{`{"jsonrpc":"2.0","method":"route","params":{"caller":"380671234567"},"id":"abc"}`, `{"jsonrpc":"2.0","id":"abc","result":{"number":"anna_sip"}}`},
		{`{"jsonrpc":"2.0","method":"route","params":{"caller":"380500000000"},"id":1}`, `{"jsonrpc":"2.0","id":1,"result":{}}`},
		{`{"caller":"380671234567"}`, `{"jsonrpc":"2.0","id":null,"result":{"number":"anna_sip"}}`},
	} {
		a := e.do("POST", "/pbx/acme/route?key="+url.QueryEscape(secret), "application/json", tc.body, nil)
		if a.status != 200 || a.body != tc.want {
			t.Errorf("jsonrpc %s: %d %q, want %q", tc.body, a.status, a.body, tc.want)
		}
	}
}

func TestRouteCallerParam(t *testing.T) {
	e := newEnv(t)
	secret := e.acme(`,"caller_param":"client.phone"`)
	a := e.do("POST", "/pbx/acme/route?key="+url.QueryEscape(secret), "application/json",
		`{"caller":"380500000000","client":{"phone":"380671234567"}}`, nil)
	if a.body != `{"number":"anna_sip"}` {
		t.Fatalf("caller_param: %q", a.body)
	}
	a = e.route(secret, "caller=380671234567")
	if a.status != 200 || a.body != `{}` || a.header.Get("X-Route-Reason") != "invalid_caller" {
		t.Fatalf("caller_param missing: %d %q reason %q, want 200 {} invalid_caller", a.status, a.body, a.header.Get("X-Route-Reason"))
	}
}

// TestRouteWithoutCaller: a live call whose request names no usable caller
// gets a no-forward answer the PBX acts on, in the tenant's format, never a
// 400 (issue 11, item 9).
func TestRouteWithoutCaller(t *testing.T) {
	e := newEnv(t)
	secret := e.acme(`,"on_miss":"default_owner"`)
	key := "?key=" + url.QueryEscape(secret)
	// Ringostat's published webhook-number sample: call_id, step_forward, uuid and nothing else.
	sample := `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a0c6e1f5b2a"}`
	cases := []struct{ name, query, ctype, body string }{
		{"published sample body", "", "application/json", sample},
		{"empty caller", "&caller=", "", ""},
		{"blank caller", "&caller=%20%20", "", ""},
		{"empty caller in JSON", "", "application/json", `{"caller":"","uuid":"u1"}`},
		{"hidden caller anonymous", "&caller=anonymous", "", ""},
		{"hidden caller word", "", "application/json", `{"caller":"Hidden"}`},
		{"hidden caller unknown", "", "application/x-www-form-urlencoded", "caller=unknown"},
		{"JSON-RPC params as an array", "", "application/json", `{"jsonrpc":"2.0","method":"route","params":["380671234567"],"id":7}`},
		{"nothing at all", "", "", ""},
	}
	for _, format := range []struct{ name, settings, noForward string }{
		{"json", `{"response_format":"json"}`, `{}`},
		{"text", `{"response_format":"text"}`, ``},
	} {
		e.mustAdmin(200, "PATCH", "tenants/acme", format.settings)
		for _, tc := range cases {
			a := e.do("POST", "/pbx/acme/route"+key+tc.query, tc.ctype, tc.body, nil)
			if a.status != 200 || a.body != format.noForward || a.header.Get("X-Route-Reason") != "invalid_caller" {
				t.Errorf("%s, %s: %d %q reason %q; want 200 %q invalid_caller", format.name, tc.name, a.status, a.body,
					a.header.Get("X-Route-Reason"), format.noForward)
			}
		}
	}
	e.mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"jsonrpc"}`)
	for _, tc := range []struct{ body, want string }{
		{`{"jsonrpc":"2.0","method":"route","params":["380671234567"],"id":7}`, `{"jsonrpc":"2.0","id":7,"result":{}}`},
		{`{"jsonrpc":"2.0","method":"route","params":{"uuid":"u1"},"id":"r-1"}`, `{"jsonrpc":"2.0","id":"r-1","result":{}}`},
		{sample, `{"jsonrpc":"2.0","id":null,"result":{}}`},
	} {
		a := e.do("POST", "/pbx/acme/route"+key, "application/json", tc.body, nil)
		if a.status != 200 || a.body != tc.want || a.header.Get("X-Route-Reason") != "invalid_caller" {
			t.Errorf("jsonrpc %s: %d %q reason %q; want %q invalid_caller", tc.body, a.status, a.body, a.header.Get("X-Route-Reason"), tc.want)
		}
	}
	// Positional params do not hide a caller sent in the query string.
	a := e.do("POST", "/pbx/acme/route"+key+"&caller=380671234567", "application/json", `{"jsonrpc":"2.0","params":[1],"id":3}`, nil)
	if a.status != 200 || a.body != `{"jsonrpc":"2.0","id":3,"result":{"number":"anna_sip"}}` {
		t.Errorf("params array with the caller in the query: %d %q", a.status, a.body)
	}
}

func TestRouteErrors(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	key := "?key=" + url.QueryEscape(secret)
	tests := []struct {
		name, method, path, ctype, body string
		header                          map[string]string
		status                          int
		code, mentions                  string
	}{
		{"unknown tenant", "GET", "/pbx/nope/route" + key + "&caller=380671234567", "", "", nil, 404, "not_found", "tenant"},
		{"missing key", "GET", "/pbx/acme/route?caller=380671234567", "", "", nil, 401, "unauthorized", "key"},
		{"wrong key", "GET", "/pbx/acme/route?key=wrong&caller=380671234567", "", "", nil, 401, "unauthorized", "key"},
		{"malformed JSON", "POST", "/pbx/acme/route" + key, "application/json", `{"caller":`, nil, 400, "invalid", "JSON"},
		{"JSON-RPC id an object", "POST", "/pbx/acme/route" + key, "application/json", `{"jsonrpc":"2.0","params":{},"id":{}}`, nil, 400, "invalid", "id"},
		{"oversized body", "POST", "/pbx/acme/route" + key, "application/json", `{"caller":"380671234567","pad":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "too_large", "body"},
		{"unknown pbx path", "GET", "/pbx/acme/nothing" + key, "", "", nil, 404, "not_found", "path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.method, tc.path, tc.ctype, tc.body, tc.header)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", a.status, tc.status, a.body)
			}
			m := a.json(t)
			errObj, _ := m["error"].(map[string]any)
			if errObj["code"] != tc.code || !strings.Contains(errObj["message"].(string), tc.mentions) {
				t.Fatalf("error %v, want code %s mentioning %q", errObj, tc.code, tc.mentions)
			}
			// 401 and 404 are no routing decision and claim no reason; a
			// request the PBX got wrong is not trouble on our side either.
			want := map[int]string{400: "invalid_caller", 413: "invalid_caller"}[tc.status]
			if got := a.header.Get("X-Route-Reason"); got != want {
				t.Fatalf("X-Route-Reason %q on a %d, want %q", got, tc.status, want)
			}
		})
	}
	// The secret also works as a header.
	a := e.do("GET", "/pbx/acme/route?caller=380671234567", "", "", map[string]string{"X-Router-Key": secret})
	if a.status != 200 || a.body != `{"number":"anna_sip"}` {
		t.Fatalf("X-Router-Key: %d %q", a.status, a.body)
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testAdminToken, testAdminToken} {
		a := e.do("GET", "/admin/v1/tenants", "", "", map[string]string{"Authorization": auth})
		if a.status != 401 {
			t.Errorf("Authorization %q: status %d, want 401", auth, a.status)
		}
	}
	e.mustAdmin(200, "GET", "tenants", "")
}

func TestAdminValidationNamesTheField(t *testing.T) {
	e := newEnv(t)
	e.acme("")
	tests := []struct {
		method, path, body string
		status             int
		mentions           string
	}{
		{"POST", "tenants", `{"id":"acme"}`, 409, "acme"},
		{"POST", "tenants", `{"id":"bad id!"}`, 400, "id"},
		{"POST", "tenants", `{"id":"x","response_format":"xml"}`, 400, "response_format"},
		{"POST", "tenants", `{"id":"x","default_country":"ZZ"}`, 400, "default_country"},
		{"POST", "tenants", `{"id":"x","bogus":1}`, 400, "bogus"},
		{"POST", "tenants", `{"id":"x","route_budget_ms":"fast"}`, 400, "route_budget_ms"},
		{"PATCH", "tenants/acme", `{"route_budget_ms":5}`, 400, "route_budget_ms"},
		{"PATCH", "tenants/acme", `{"timezone":"Mars/Olympus"}`, 400, "timezone"},
		{"PATCH", "tenants/acme", `{"owner_order":["lead","ticket"]}`, 400, "owner_order"},
		{"PATCH", "tenants/acme", `{"on_miss":"maybe"}`, 400, "on_miss"},
		{"PATCH", "tenants/acme", `{"on_unmapped":"maybe"}`, 400, "on_unmapped"},
		{"PATCH", "tenants/acme", `not json`, 400, "JSON"},
		{"PATCH", "tenants/nope", `{"name":"x"}`, 404, "nope"},
		{"PUT", "tenants/acme/employees/103", `{"name":"no target"}`, 400, "sip"},
		{"PUT", "tenants/acme/employees/103", `{"phone":"12"}`, 400, "phone"},
		{"PUT", "tenants/acme/employees/103", `{"sip":"has space"}`, 400, "sip"},
		{"PUT", "tenants/acme/employees/103", `{"sip":"ok","email":"nope"}`, 400, "email"},
		{"PUT", "tenants/acme/default-owner", `{}`, 400, "crm_user_id"},
		{"GET", "tenants/acme/employees/404", ``, 404, "404"},
		{"PUT", "tenants/acme", `{}`, 405, "DELETE"},
		{"DELETE", "tenants/acme", ``, 400, "confirm"},
		{"GET", "nothing", ``, 404, "path"},
		{"POST", "tenants/acme/contacts/import?format=xml", `x`, 400, "format"},
		{"POST", "tenants/acme/contacts/import", ``, 400, "body"},
		{"POST", "tenants/acme/contacts/import?format=csv", "name\nx\n", 400, "phone"},
	}
	for _, tc := range tests {
		a := e.admin(tc.method, tc.path, tc.body)
		if a.status != tc.status || !strings.Contains(a.body, tc.mentions) {
			t.Errorf("%s %s %s: %d %s; want %d mentioning %q", tc.method, tc.path, tc.body, a.status, a.body, tc.status, tc.mentions)
		}
	}
}

func TestAdminCRUDAndAudit(t *testing.T) {
	e := newEnv(t)
	e.acme("")
	v := e.mustAdmin(200, "GET", "tenants/acme", "").json(t)
	if v["default_country"] != "UA" || v["response_format"] != "json" || v["route_budget_ms"].(float64) != 300 || v["default_owner"] != "900" {
		t.Fatalf("tenant view: %v", v)
	}
	if _, leaked := v["webhook_secret"]; leaked {
		t.Fatal("GET tenant shows the webhook secret")
	}
	emp := e.mustAdmin(200, "GET", "tenants/acme/employees/102", "").json(t)
	if emp["phone"] != "380502222222" {
		t.Fatalf("employee phone not normalized: %v", emp)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.mustAdmin(200, "GET", "tenants/acme/employees", "").body), &list); err != nil || len(list) != 3 {
		t.Fatalf("employees: %v %v", list, err)
	}
	e.mustAdmin(204, "DELETE", "tenants/acme/employees/102", "")
	e.mustAdmin(404, "DELETE", "tenants/acme/employees/102", "")

	stop := e.mustAdmin(200, "PUT", "tenants/acme/stop-list/"+url.PathEscape("+380 44 333 44 55"), `{"note":"office FMC"}`).json(t)
	if stop["number"] != "380443334455" {
		t.Fatalf("stop number not normalized: %v", stop)
	}
	if stop["kind"] != "line" {
		t.Fatalf("a stop-list entry without a kind is a line: %v", stop)
	}
	e.mustAdmin(200, "PUT", "tenants/acme/stop-list/manager_sip_7", "")
	e.mustAdmin(200, "PUT", "tenants/acme/stop-list/0671112233", `{"kind":"client","note":"asked not to be called"}`)
	if a := e.admin("PUT", "tenants/acme/stop-list/0671112244", `{"kind":"supplier"}`); a.status != 400 || !strings.Contains(a.body, `"kind: must be line or client`) {
		t.Fatalf("stop-list kind supplier: %d %s, want 400 naming kind", a.status, a.body)
	}
	e.mustAdmin(200, "GET", "tenants/acme/stop-list/0443334455", "")
	if err := json.Unmarshal([]byte(e.mustAdmin(200, "GET", "tenants/acme/stop-list", "").body), &list); err != nil || len(list) != 3 {
		t.Fatalf("stop list: %v %v", list, err)
	}
	kinds := map[any]any{}
	for _, entry := range list {
		kinds[entry["number"]] = entry["kind"]
	}
	if kinds["380443334455"] != "line" || kinds["manager_sip_7"] != "line" || kinds["380671112233"] != "client" {
		t.Fatalf("stop list kinds: %v", list)
	}
	e.mustAdmin(204, "DELETE", "tenants/acme/stop-list/380443334455", "")
	e.mustAdmin(404, "GET", "tenants/acme/stop-list/380443334455", "")

	owner := e.mustAdmin(200, "GET", "tenants/acme/default-owner", "").json(t)
	if owner["crm_user_id"] != "900" || owner["target"] != "boss_sip" {
		t.Fatalf("default owner: %v", owner)
	}

	status := e.mustAdmin(200, "GET", "tenants/acme/status", "").json(t)
	if status["index_size"].(float64) != 3 || status["employees"].(float64) != 2 || status["stop_list"].(float64) != 2 {
		t.Fatalf("status: %v", status)
	}

	var audit []map[string]any
	if err := json.Unmarshal([]byte(e.mustAdmin(200, "GET", "tenants/acme/audit?limit=100", "").body), &audit); err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, a := range audit {
		actions[a["action"].(string)]++
		if strings.Contains(a["detail"].(string), "webhook_secret") {
			t.Fatal("audit detail holds the webhook secret")
		}
	}
	for action, n := range map[string]int{"tenant.create": 1, "employee.put": 3, "default_owner.set": 1, "contacts.import": 1,
		"employee.delete": 1, "stop_list.put": 3, "stop_list.delete": 1} {
		if actions[action] != n {
			t.Errorf("audit %s: %d entries, want %d (all: %v)", action, actions[action], n, actions)
		}
	}
}

func TestImportKeepsGoodRowsAndReportsBadOnes(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	csv := "phone,owner_crm_user_id,entity_kind,entity_id,name,open\n" +
		"0501234501,101,lead,L10,ok,true\n" + // line 2
		"not a phone,101,lead,L11,bad phone,true\n" + // line 3
		"0501234503,,lead,L12,no owner,true\n" + // line 4
		"0501234504,101,ticket,L13,bad kind,true\n" + // line 5
		"0501234505,101,lead,L14,bad open,maybe\n" + // line 6
		"0501234506,102,deal,D15,ok,yes\n" // line 7
	rep := e.mustAdmin(200, "POST", "tenants/acme/contacts/import?format=csv", csv).json(t)
	if rep["accepted"].(float64) != 2 || rep["rejected"].(float64) != 4 || rep["rows"].(float64) != 6 {
		t.Fatalf("csv report: %v", rep)
	}
	wantLines := map[float64]string{3: "phone", 4: "owner_crm_user_id", 5: "entity_kind", 6: "open"}
	for _, x := range rep["errors"].([]any) {
		row := x.(map[string]any)
		if field, ok := wantLines[row["line"].(float64)]; !ok || !strings.HasPrefix(row["reason"].(string), field) {
			t.Errorf("error row %v: want lines 3-6 with reasons naming %v", row, wantLines)
		}
	}
	jsonl := `{"phone":"0501234507","owner_crm_user_id":101,"entity_kind":"deal","entity_id":"D16"}` + "\n" +
		"\n" +
		`{"phone":"0501234508","owner_crm_user_id":"101"` + "\n" + // line 3: broken JSON
		`{"phone":380501234509,"owner_crm_user_id":"102","open":false}` + "\n"
	rep = e.mustAdmin(200, "POST", "tenants/acme/contacts/import", jsonl).json(t)
	if rep["format"] != "jsonl" || rep["accepted"].(float64) != 2 || rep["rejected"].(float64) != 1 {
		t.Fatalf("jsonl report: %v", rep)
	}
	if row := rep["errors"].([]any)[0].(map[string]any); row["line"].(float64) != 3 {
		t.Fatalf("jsonl error line: %v", row)
	}
	for caller, want := range map[string]string{
		"380501234501": `{"number":"anna_sip"}`, "380501234506": `{"number":"380502222222"}`,
		"380501234507": `{"number":"anna_sip"}`, "380501234509": `{}`, // closed
		"380501234503": `{}`,
	} {
		if a := e.route(secret, "caller="+caller); a.body != want {
			t.Errorf("caller %s after import: %q, want %q", caller, a.body, want)
		}
	}
}

// Changes made through the admin API reach the very next route request:
// negative cache entries, positive cache entries and the employee map alike.
func TestChangesVisibleToTheNextRouteRequest(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	if a := e.route(secret, "caller=380631110000"); a.body != `{}` {
		t.Fatalf("unknown caller: %q", a.body)
	}
	e.mustAdmin(200, "POST", "tenants/acme/contacts/import", `{"phone":"063 111 00 00","owner_crm_user_id":"101","entity_kind":"lead","entity_id":"L9"}`)
	if a := e.route(secret, "caller=380631110000"); a.body != `{"number":"anna_sip"}` {
		t.Fatalf("after import (negative entry was cached): %q", a.body)
	}
	e.mustAdmin(200, "POST", "tenants/acme/contacts/import", `{"phone":"063 111 00 00","owner_crm_user_id":"101","entity_kind":"lead","entity_id":"L9","open":false}`)
	if a := e.route(secret, "caller=380631110000"); a.body != `{}` {
		t.Fatalf("after closing the lead: %q", a.body)
	}
	if a := e.route(secret, "caller=380671234567"); a.body != `{"number":"anna_sip"}` {
		t.Fatalf("before remapping: %q", a.body)
	}
	e.mustAdmin(200, "PUT", "tenants/acme/employees/101", `{"sip":"anna_new_sip"}`)
	if a := e.route(secret, "caller=380671234567"); a.body != `{"number":"anna_new_sip"}` {
		t.Fatalf("after remapping the employee: %q", a.body)
	}
	e.mustAdmin(200, "PATCH", "tenants/acme", `{"owner_order":["contact"]}`)
	if a := e.route(secret, "caller=380671234567"); a.body != `{}` || a.header.Get("X-Route-Reason") != "no_match" {
		t.Fatalf("after owner_order without lead: %q", a.body)
	}
}

func TestHealthReadinessMetrics(t *testing.T) {
	e := newEnv(t)
	if a := e.do("GET", "/healthz", "", "", nil); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
	if a := e.do("GET", "/readyz", "", "", nil); a.status != 503 {
		t.Fatalf("readyz before warm-up: %d, want 503", a.status)
	}
	if _, err := e.cache.Warm(context.Background(), e.st.ScanIndex); err != nil {
		t.Fatal(err)
	}
	if a := e.do("GET", "/readyz", "", "", nil); a.status != 200 {
		t.Fatalf("readyz after warm-up: %d", a.status)
	}
	secret := e.acme("")
	e.route(secret, "caller=380671234567")
	a := e.do("GET", "/metrics", "", "", nil)
	for _, want := range []string{
		`callrouter_http_requests_total{endpoint="route",status="200"}`,
		`callrouter_route_reasons_total{reason="owner"}`,
		`callrouter_route_duration_seconds_bucket`,
		`callrouter_cache_hits_total`, `callrouter_cache_misses_total`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A bug behind the route endpoint must still answer the PBX 200 "no
// forward", and one behind the admin API must not kill the process.
func TestPanicsAreContained(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	ctx := context.Background()
	st := e.st
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testAdminToken))
	// No router and no admin service: every call into them panics.
	srv := New(Config{Tenants: reg, AdminTokenHash: sum[:], Log: zap.NewNop()})
	hs := NewFastHTTP(srv.Handler, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer hs.Shutdown()
	broken := &env{t: t, url: "http://" + ln.Addr().String(), st: st}
	a := broken.route(secret, "caller=380671234567")
	if a.status != 200 || a.body != `{}` || a.header.Get("X-Route-Reason") != "unavailable" {
		t.Fatalf("route panic: %d %q reason %q; want 200 {} unavailable", a.status, a.body, a.header.Get("X-Route-Reason"))
	}
	if a := broken.admin("GET", "tenants", ""); a.status != 500 || strings.Contains(a.body, "nil pointer") {
		t.Fatalf("admin panic: %d %q; want 500 without details", a.status, a.body)
	}
	if a := broken.route(secret, "caller=380671234567"); a.status != 200 {
		t.Fatalf("server dead after panics: %d", a.status)
	}
}

func TestCRMWebhookEndpointGuards(t *testing.T) {
	e := newEnv(t) // no webhook service wired: the endpoint says so
	secret := e.acme("")
	if a := e.do("POST", "/crm/acme/webhook?key="+url.QueryEscape(secret), "application/json", `{}`, nil); a.status != 404 {
		t.Fatalf("webhooks disabled: %d %s", a.status, a.body)
	}
	ctx := context.Background()
	reg := tenant.NewRegistry(e.st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	hooks := &recordingHooks{}
	srv := New(Config{Tenants: reg, Webhooks: hooks, Log: zap.NewNop()})
	hs := NewFastHTTP(srv.Handler, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer hs.Shutdown()
	w := &env{t: t, url: "http://" + ln.Addr().String(), st: e.st}
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/crm/nope/webhook?key=x", `{}`, 404},
		{"POST", "/crm/acme/webhook?key=wrong", `{}`, 401},
		{"GET", "/crm/acme/webhook?key=" + url.QueryEscape(secret), ``, 405},
		{"POST", "/crm/acme/webhook?key=" + url.QueryEscape(secret), strings.Repeat("x", 2<<20), 413},
		{"POST", "/crm/acme/other?key=" + url.QueryEscape(secret), `{}`, 404},
		{"POST", "/crm/acme/webhook?key=" + url.QueryEscape(secret), `{"ids":["1"]}`, 200},
	} {
		if a := w.do(tc.method, tc.path, "application/json", tc.body, nil); a.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, a.status, a.body, tc.status)
		}
	}
	if len(hooks.bodies) != 1 || hooks.bodies[0] != `{"ids":["1"]}` || hooks.tenants[0] != "acme" {
		t.Fatalf("webhooks delivered: %v %v; want exactly the authorized one", hooks.tenants, hooks.bodies)
	}
}

// recordingHooks records what the endpoint hands to the sync engine.
type recordingHooks struct {
	tenants, bodies []string
}

func (r *recordingHooks) Webhook(_ context.Context, tenantID, _ string, body []byte) error {
	r.tenants = append(r.tenants, tenantID)
	r.bodies = append(r.bodies, string(body))
	return nil
}
