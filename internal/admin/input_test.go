package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
)

// SettingsPatch has one field per setting, under the same JSON name and of
// the same type (behind a pointer or a Given), so a setting added to
// domain.Settings cannot be left out of PATCH unnoticed.
func TestSettingsPatchHasEverySetting(t *testing.T) {
	patch := map[string]reflect.Type{}
	pt := reflect.TypeFor[admin.SettingsPatch]()
	for f := range pt.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Type.Kind() == reflect.Pointer:
			patch[name] = f.Type.Elem()
		case f.Type.Kind() == reflect.Struct && strings.HasPrefix(f.Type.Name(), "Given["):
			v, _ := f.Type.FieldByName("Value")
			patch[name] = v.Type
		default:
			t.Errorf("SettingsPatch.%s is a %s, neither a pointer nor a Given", f.Name, f.Type)
		}
	}
	st := reflect.TypeFor[domain.Settings]()
	for f := range st.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if got, ok := patch[name]; !ok || got != f.Type {
			t.Errorf("setting %s (%s): the patch has %v", name, f.Type, got)
		}
		delete(patch, name)
	}
	for name := range patch {
		t.Errorf("the patch has %s, which no setting has", name)
	}
}

// A patch changes what it gives and nothing else: absent fields keep their
// stored values, the matrix and the mappings merge into the stored ones,
// form_entities sets the form row only when given, a Given null resets a
// list or a map to its default; the patch itself is neither changed nor
// kept, and the audit entry is the patch as given.
func TestPatchTenantTyped(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	rules := []domain.PipelineRule{{Param: "pool_name", Value: "ads", Pipeline: "7"}}
	_, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme", Settings: domain.Settings{
		DefaultCountry: "UA", Language: "uk", PipelineRules: rules, FormPhoneFields: []string{"mobile"},
		Matrix:      domain.Matrix{domain.RowForm: {"contact"}},
		FormMapping: domain.Mapping{domain.MapContact: {{CRMField: "tags", Source: "constant", Value: "Site"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}

	dealMap := []domain.FieldMap{{CRMField: " name ", Source: "form", Value: " title "}}
	patch := admin.TenantPatch{SettingsPatch: admin.SettingsPatch{
		OnMiss:      new("default_owner"),
		Matrix:      admin.Give(domain.Matrix{domain.RowOutgoingKnown: {}}),
		FormMapping: admin.Give(domain.Mapping{domain.MapDeal: dealMap}),
	}}
	v, err := w.svc.PatchTenant(ctx, "ops", "acme", patch)
	if err != nil {
		t.Fatal(err)
	}
	if v.OnMiss != "default_owner" || v.Language != "uk" || v.DefaultCountry != "UA" || v.Name != "acme" ||
		!slices.Equal(v.PipelineRules, rules) || !slices.Equal(v.FormPhoneFields, []string{"mobile"}) {
		t.Errorf("fields the patch left out changed: %+v", v)
	}
	want := domain.DefaultMatrix()
	want[domain.RowForm], want[domain.RowOutgoingKnown] = []string{"contact"}, []string{}
	if !reflect.DeepEqual(v.Matrix, want) || !slices.Equal(v.FormEntities, []string{"contact"}) {
		t.Errorf("matrix after merging one row: %v, form_entities %v", v.Matrix, v.FormEntities)
	}
	wantMap := domain.Mapping{domain.MapContact: {{CRMField: "tags", Source: "constant", Value: "Site"}},
		domain.MapDeal: {{CRMField: "name", Source: "form", Value: "title"}}}
	if !reflect.DeepEqual(v.FormMapping, wantMap) {
		t.Errorf("form_mapping after merging one entity: %v", v.FormMapping)
	}
	if dealMap[0].CRMField != " name " || len(patch.Matrix.Value) != 1 {
		t.Errorf("the service changed the caller's patch: %+v %v", dealMap, patch.Matrix.Value)
	}
	a := lastAudit(t, w)
	b, _ := json.Marshal(patch)
	if a.Action != "tenant.update" || a.Detail != string(b) || strings.Contains(a.Detail, "language") {
		t.Errorf("audit: %s %s, want tenant.update %s", a.Action, a.Detail, b)
	}

	// form_entities given sets the form row; a null list and a null map go
	// back to their defaults.
	v, err = w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{Name: new("Acme"), SettingsPatch: admin.SettingsPatch{
		FormEntities:    admin.Give([]string{"deal", "task"}),
		PipelineRules:   admin.Given[[]domain.PipelineRule]{Set: true},
		FormPhoneFields: admin.Given[[]string]{Set: true},
		Matrix:          admin.Given[domain.Matrix]{Set: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want = domain.DefaultMatrix()
	want[domain.RowForm] = []string{"deal", "task"}
	if v.Name != "Acme" || v.PipelineRules != nil || !slices.Equal(v.FormPhoneFields, domain.DefaultFormPhoneFields()) ||
		!reflect.DeepEqual(v.Matrix, want) || v.Language != "uk" {
		t.Errorf("after form_entities and nulls: %+v", v)
	}
	if got := w.reg.Lookup("acme").Settings.Matrix.Row(domain.RowOutgoingKnown); got != domain.DefaultMatrix().Row(domain.RowOutgoingKnown) {
		t.Errorf("the registry serves a matrix not reset: %+v", got)
	}
}

// The service refuses bad values however it is called: validation is not
// the transport's.
func TestServiceRefusesBadInputsDirectly(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		call  func() error
	}{
		{"id", func() error { _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "bad id!"}); return err }},
		{"id", func() error { _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{}); return err }},
		{"route_budget_ms", func() error {
			_, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "x", Settings: domain.Settings{RouteBudgetMS: 5}})
			return err
		}},
		{"default_country", func() error {
			_, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "x", Settings: domain.Settings{DefaultCountry: "ZZ"}})
			return err
		}},
		{"name", func() error {
			_, err := w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{Name: new(" ")})
			return err
		}},
		{"on_miss", func() error {
			_, err := w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{OnMiss: new("maybe")}})
			return err
		}},
		{"matrix.missed", func() error {
			_, err := w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{
				Matrix: admin.Give(domain.Matrix{"missed": {"task"}})}})
			return err
		}},
		{"crm_user_id", func() error {
			_, err := w.svc.SetDefaultOwner(ctx, "ops", "acme", admin.DefaultOwnerInput{})
			return err
		}},
		{"crm_user_id", func() error {
			_, err := w.svc.SetDefaultOwner(ctx, "ops", "acme", admin.DefaultOwnerInput{CRMUserID: new("a b")})
			return err
		}},
		{"sip", func() error {
			_, err := w.svc.PutEmployee(ctx, "ops", "acme", "u1", admin.EmployeeInput{Name: "x"})
			return err
		}},
		{"phone", func() error {
			_, err := w.svc.PutEmployee(ctx, "ops", "acme", "u1", admin.EmployeeInput{Phone: "12"})
			return err
		}},
		{"email", func() error {
			_, err := w.svc.PutEmployee(ctx, "ops", "acme", "u1", admin.EmployeeInput{SIP: "ok", Email: "nope"})
			return err
		}},
		{"crm_user_id", func() error {
			_, err := w.svc.PutEmployee(ctx, "ops", "acme", "a b", admin.EmployeeInput{SIP: "ok"})
			return err
		}},
		{"kind", func() error {
			_, err := w.svc.PutStop(ctx, "ops", "acme", "101", admin.StopInput{Kind: "vip"})
			return err
		}},
		{"crm", func() error {
			_, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "excel", BaseURL: "https://x.example"})
			return err
		}},
		{"credentials", func() error {
			_, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: "https://x.example"})
			return err
		}},
		{"credentials", func() error {
			_, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: "https://x.example",
				Credentials: admin.SecretJSON("null")})
			return err
		}},
		{"credentials", func() error {
			_, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: "https://x.example",
				Credentials: admin.SecretJSON(`{"api_key":`)})
			return err
		}},
	} {
		err := tc.call()
		if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), tc.field+":") {
			t.Errorf("err = %v, want invalid naming %s", err, tc.field)
		}
	}
	if ts, _ := w.svc.Tenants(ctx); len(ts) != 1 {
		t.Errorf("refused inputs left %d tenants", len(ts))
	}
}

// Secrets in inputs never show: not through fmt with any verb, zap
// (field or reflected struct), slog, or encoding/json.
func TestInputSecretsNeverPrint(t *testing.T) {
	const key, creds = "sk-live-4242", `{"api_key":"sk-live-4242"}`
	inputs := []any{
		admin.IntegrationInput{CRM: "retailcrm", BaseURL: "https://x.example", Credentials: admin.SecretJSON(creds)},
		admin.RingostatInput{AuthKey: key, ProjectID: "1"},
		admin.SALESmanagoInput{ClientID: "c", APIKey: key, APISecret: key},
		admin.Secret(key), admin.SecretJSON(creds),
	}
	for _, in := range inputs {
		pv := reflect.New(reflect.TypeOf(in)) // a pointer to the input, as a caller may log it
		pv.Elem().Set(reflect.ValueOf(in))
		p := pv.Interface()
		var out []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			out = append(out, fmt.Sprintf(verb, in), fmt.Sprintf(verb, p))
		}
		out = append(out, fmt.Sprint(in), fmt.Sprintln(in))
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))

		var zbuf bytes.Buffer
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&zbuf), zap.DebugLevel))
		log.Info("in", zap.Any("any", in), zap.Reflect("reflect", in), zap.Stringer("ptr", stringer{in}))
		out = append(out, zbuf.String())

		var sbuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&sbuf, nil)).Info("in", "in", in)
		slog.New(slog.NewTextHandler(&sbuf, nil)).Info("in", "in", in)
		out = append(out, sbuf.String())

		for _, s := range out {
			if strings.Contains(s, "4242") || strings.Contains(s, hexOf(key)) {
				t.Errorf("%T shows its secret: %s", in, s)
			}
		}
	}
}

type stringer struct{ v any }

func (s stringer) String() string { return fmt.Sprint(s.v) }

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

// The inputs decode as the admin API documents them: a project id as a
// string or a number, credentials as raw JSON (null kept, for the service
// to refuse), a Given as set even when null and strict inside.
func TestInputsDecode(t *testing.T) {
	var r admin.RingostatInput
	if err := json.Unmarshal([]byte(`{"auth_key":"k","project_id":4242}`), &r); err != nil || r.ProjectID != "4242" || string(r.AuthKey) != "k" {
		t.Errorf("numeric project id: %q %v", r.ProjectID, err)
	}
	if err := json.Unmarshal([]byte(`{"project_id":" 77 "}`), &r); err != nil || r.ProjectID != " 77 " {
		t.Errorf("string project id: %q %v", r.ProjectID, err)
	}
	if err := json.Unmarshal([]byte(`{"project_id":true}`), &r); err != nil || r.ProjectID != "" {
		t.Errorf("boolean project id: %q %v", r.ProjectID, err)
	}
	var in admin.IntegrationInput
	if err := json.Unmarshal([]byte(`{"credentials":{"api_key":"k"}}`), &in); err != nil || string(in.Credentials) != `{"api_key":"k"}` {
		t.Errorf("credentials: %s %v", []byte(in.Credentials), err)
	}
	if err := json.Unmarshal([]byte(`{"credentials":null}`), &in); err != nil || string(in.Credentials) != "null" {
		t.Errorf("null credentials: %s %v", []byte(in.Credentials), err)
	}

	var p admin.TenantPatch
	if err := json.Unmarshal([]byte(`{"pipeline_rules":null,"language":null}`), &p); err != nil {
		t.Fatal(err)
	}
	if !p.PipelineRules.Set || p.PipelineRules.Value != nil || p.Language != nil || p.Matrix.Set {
		t.Errorf("null list given, null scalar and absent map: %+v", p)
	}
	err := json.Unmarshal([]byte(`{"form_mapping":{"deal":[{"crm_field":"f","bogus":1}]}}`), &p)
	if err == nil || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Errorf("an unknown field inside a Given: %v", err)
	}

	// Decoding onto NewTenantDefaults keeps the defaults the body leaves
	// out and never writes into the package-level default lists.
	nt := admin.NewTenantDefaults()
	if err := json.Unmarshal([]byte(`{"id":"x","form_phone_fields":["mobile"],"form_email_fields":["mail"],"matrix":{"form":["task"]}}`), &nt); err != nil {
		t.Fatal(err)
	}
	if d := domain.DefaultSettings(); !slices.Equal(d.FormPhoneFields, []string{"phone", "tel", "telephone"}) ||
		!slices.Equal(d.FormEmailFields, []string{"email"}) {
		t.Errorf("decoding a new tenant changed the defaults: %q %q", d.FormPhoneFields, d.FormEmailFields)
	}
	if nt.OnMiss != domain.PolicyNext || !slices.Equal(nt.Matrix[domain.RowOutgoingNew], domain.DefaultMatrix()[domain.RowOutgoingNew]) {
		t.Errorf("defaults the body left out: %+v", nt.Settings)
	}
}
