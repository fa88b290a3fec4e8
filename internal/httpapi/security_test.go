package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// secClock is the clock the registry and the admin service share.
type secClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *secClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *secClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// stubEvents acknowledges every call event without storing it: these tests
// are about who may post one.
type stubEvents struct{}

func (stubEvents) Store(context.Context, *tenant.Config, events.Incoming) (string, error) {
	return "ev-1", nil
}

func (stubEvents) Reject(context.Context, string, string, string, []byte) error { return nil }

// secEnv is a server with CRM integrations (the sync engine, fakes on
// loopback allowed), a settable clock and every log line captured at
// debug level.
type secEnv struct {
	t      *testing.T
	url    string
	st     store.Store
	clock  *secClock
	engine *crmsync.Engine
	logs   *observer.ObservedLogs
}

func newSecEnv(t *testing.T, st store.Store) *secEnv {
	t.Helper()
	ctx := context.Background()
	if st == nil {
		db, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st = db
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	clk := &secClock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	reg := tenant.NewRegistry(st, tenant.WithNow(clk.Now))
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	box, err := secret.New([]byte(strings.Repeat("k", secret.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box, Log: log,
		Deps: crm.Deps{Transport: crm.NewTransport(true), Sleep: (&crmtest.NoSleep{}).Sleep}})
	svc := admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true), admin.WithNow(clk.Now))
	sum := sha256.Sum256([]byte(testAdminToken))
	srv := New(Config{Tenants: reg, Router: lookup.New(c, st, time.Second), Admin: svc, Webhooks: engine.Live,
		Events: stubEvents{}, AdminTokenHash: sum[:], Log: log})
	hs := NewFastHTTP(srv.Handler, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { hs.Shutdown() })
	return &secEnv{t: t, url: "http://" + ln.Addr().String(), st: st, clock: clk, engine: engine, logs: logs}
}

// call sends a request with a bearer token ("" for none).
func (e *secEnv) call(method, path, token, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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

func (e *secEnv) must(status int, method, path, token, body string) answer {
	e.t.Helper()
	a := e.call(method, "/admin/v1/"+path, token, body)
	if a.status != status {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, a.status, status, a.body)
	}
	return a
}

// newToken creates an admin token with the bootstrap token and returns
// its id and the token.
func (e *secEnv) newToken(name, scope string) (id, token string) {
	e.t.Helper()
	m := e.must(201, "POST", "tokens", testAdminToken, `{"name":"`+name+`","scope":"`+scope+`"}`).json(e.t)
	id, _ = m["id"].(string)
	token, _ = m["token"].(string)
	if id == "" || !strings.HasPrefix(token, "cra_") || m["scope"] != scope {
		e.t.Fatalf("created token %v", m)
	}
	return id, token
}

// The route, events and CRM webhook endpoints accept the replaced webhook
// secret until the grace period given at rotation ends by the registry's
// clock, the new one throughout, and with no grace the old one stops at
// once.
func TestSecretRotationEndpoints(t *testing.T) {
	e := newSecEnv(t, nil)
	fake := retailcrmfake.New(t)
	fake.Put(crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Client", Phones: []string{"067 123 45 67"}, OwnerID: "501", Open: true})
	first := e.must(201, "POST", "tenants", testAdminToken, `{"id":"acme","default_country":"UA"}`).json(t)["webhook_secret"].(string)
	creds, _ := json.Marshal(map[string]any{"crm": "retailcrm", "base_url": fake.URL(), "credentials": json.RawMessage(fake.Creds())})
	e.must(200, "PUT", "tenants/acme/integration", testAdminToken, string(creds))
	hookType, hookBody, ok := fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "1001"})
	if !ok {
		t.Fatal("the retailCRM fake cannot make a notification")
	}

	// status of each endpoint with key as ?key= (and as X-Router-Key for
	// the route).
	statuses := func(key string) [4]int {
		t.Helper()
		q := "?key=" + url.QueryEscape(key)
		var out [4]int
		out[0] = e.call("GET", "/pbx/acme/route"+q+"&caller=380671234567", "", "").status
		out[1] = e.call("POST", "/pbx/acme/events"+q+"&event=call_end", "", `{"uniqueid":"1.1","caller":"380671234567"}`).status
		req, _ := http.NewRequest("POST", e.url+"/crm/acme/webhook"+q, strings.NewReader(string(hookBody)))
		req.Header.Set("Content-Type", hookType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		out[2] = resp.StatusCode
		req, _ = http.NewRequest("GET", e.url+"/pbx/acme/route?caller=380671234567", nil)
		req.Header.Set("X-Router-Key", key)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		out[3] = resp.StatusCode
		return out
	}
	ok4, refused4 := [4]int{200, 200, 200, 200}, [4]int{401, 401, 401, 401}
	if got := statuses(first); got != ok4 {
		t.Fatalf("before rotation, the secret gets %v", got)
	}

	e.must(400, "POST", "tenants/acme/secret/rotate", testAdminToken, `{"grace_seconds":2592001}`)
	e.must(404, "POST", "tenants/nope/secret/rotate", testAdminToken, ``)
	if a := e.call("GET", "/admin/v1/tenants/acme/secret/rotate", testAdminToken, ""); a.status != 405 {
		t.Fatalf("GET rotate: %d", a.status)
	}
	rot := e.must(200, "POST", "tenants/acme/secret/rotate", testAdminToken, `{"grace_seconds":3600}`).json(t)
	second, _ := rot["webhook_secret"].(string)
	if len(second) < 20 || second == first || rot["previous_valid_until"] != e.clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("rotation answer %v", rot)
	}
	if got := statuses(first); got != ok4 {
		t.Fatalf("in the grace period the old secret gets %v", got)
	}
	if got := statuses(second); got != ok4 {
		t.Fatalf("the new secret gets %v", got)
	}
	e.clock.Advance(time.Hour - time.Second)
	if got := statuses(first); got != ok4 {
		t.Fatalf("a second before the grace period ends the old secret gets %v", got)
	}
	e.clock.Advance(time.Second)
	if got := statuses(first); got != refused4 {
		t.Fatalf("after the grace period the old secret gets %v", got)
	}
	if got := statuses(second); got != ok4 {
		t.Fatalf("after the grace period the new secret gets %v", got)
	}

	third := e.must(200, "POST", "tenants/acme/secret/rotate", testAdminToken, `{"grace_seconds":0}`).json(t)["webhook_secret"].(string)
	if got := statuses(second); got != refused4 {
		t.Fatalf("after a rotation without grace the replaced secret gets %v", got)
	}
	if got := statuses(third); got != ok4 {
		t.Fatalf("the newest secret gets %v", got)
	}
}

// A read-scope token may GET and HEAD only; an admin-scope one may change
// things; unknown and revoked tokens get 401; and a revocation made through
// one instance is refused by another at once (no cache).
func TestAdminTokenScopes(t *testing.T) {
	e := newSecEnv(t, nil)
	roID, ro := e.newToken("grafana", "read")
	opsID, ops := e.newToken("ops", "admin")
	e.must(201, "POST", "tenants", ops, `{"id":"acme"}`)

	e.must(200, "GET", "tenants", ro, "")
	e.must(200, "GET", "tenants/acme/status", ro, "")
	e.must(200, "GET", "tenants/acme/report?days=3", ro, "")
	list := e.must(200, "GET", "tokens", ro, "")
	for _, s := range []string{ro, ops, `"hash"`, `"token"`} {
		if strings.Contains(list.body, s) {
			t.Fatalf("the token list shows %q: %s", s, list.body)
		}
	}
	for _, path := range []string{"tenants", "tenants/acme/status"} {
		if a := e.call("HEAD", "/admin/v1/"+path, ro, ""); a.status != 200 || a.body != "" {
			t.Fatalf("HEAD %s with a read token: %d %q", path, a.status, a.body)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "tenants", `{"id":"evil"}`},
		{"PATCH", "tenants/acme", `{"name":"x"}`},
		{"PUT", "tenants/acme/employees/1", `{"sip":"x"}`},
		{"DELETE", "tenants/acme/employees/1", ``},
		{"POST", "tenants/acme/secret/rotate", ``},
		{"POST", "tokens", `{"name":"escalate","scope":"admin"}`},
		{"DELETE", "tokens/" + opsID, ``},
		{"DELETE", "tenants/acme?confirm=acme", ``},
	} {
		a := e.call(c.method, "/admin/v1/"+c.path, ro, c.body)
		if a.status != 403 {
			t.Fatalf("%s %s with a read token: %d %s", c.method, c.path, a.status, a.body)
		}
		er := a.json(t)["error"].(map[string]any)
		if msg, _ := er["message"].(string); er["code"] != "forbidden" || !strings.Contains(msg, `"read" scope`) || !strings.Contains(msg, `"admin"`) {
			t.Fatalf("%s %s: error %v does not name the scopes", c.method, c.path, er)
		}
	}
	if _, err := e.st.Tenant(context.Background(), "evil"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatal("a read token created a tenant")
	}
	if _, err := e.st.Tenant(context.Background(), "acme"); err != nil {
		t.Fatalf("a read token's DELETE: tenant acme: %v", err)
	}

	for _, tok := range []string{"", "cra_unknown", testAdminToken + "x"} {
		a := e.call("GET", "/admin/v1/tenants", tok, "")
		if a.status != 401 || a.header.Get("WWW-Authenticate") == "" || a.json(t)["error"].(map[string]any)["code"] != "unauthorized" {
			t.Fatalf("token %q: %d %s", tok, a.status, a.body)
		}
	}

	other := newSecEnv(t, e.st) // a second instance on the same database
	other.must(200, "GET", "tenants", ro, "")
	e.must(204, "DELETE", "tokens/"+roID, ops, "")
	for _, inst := range []*secEnv{e, other} {
		if a := inst.call("GET", "/admin/v1/tenants", ro, ""); a.status != 401 || !strings.Contains(a.body, "revoked") {
			t.Fatalf("a revoked token: %d %s", a.status, a.body)
		}
	}
	e.must(404, "DELETE", "tokens/nope", ops, "")

	audit := e.must(200, "GET", "audit?limit=10", ops, "")
	var entries []domain.AuditEntry
	if err := json.Unmarshal([]byte(audit.body), &entries); err != nil {
		t.Fatal(err)
	}
	opsActor := "token:" + opsID + " (ops)"
	want := []struct{ action, actor string }{
		{"token.revoke", opsActor}, {"tenant.create", opsActor},
		{"token.create", admin.BootstrapActor}, {"token.create", admin.BootstrapActor},
	}
	if len(entries) != len(want) {
		t.Fatalf("audit: %+v", entries)
	}
	for i, w := range want {
		if entries[i].Action != w.action || entries[i].Actor != w.actor {
			t.Fatalf("audit entry %d = %+v, want %s by %s", i, entries[i], w.action, w.actor)
		}
	}
}

// Every call that changes something leaves exactly one audit entry with its
// action and the actor, and none of them a secret; failed calls and reads
// leave none.
func TestEveryAdminChangeIsAuditedOnce(t *testing.T) {
	e := newSecEnv(t, nil)
	fake := retailcrmfake.New(t)
	opsID, ops := e.newToken("ops", "admin")
	actor := "token:" + opsID + " (ops)"
	secrets := []string{testAdminToken, ops, strings.TrimPrefix(ops, "cra_")}
	var revokeID string

	count := func() []domain.AuditEntry {
		t.Helper()
		var es []domain.AuditEntry
		if err := json.Unmarshal([]byte(e.must(200, "GET", "audit?limit=1000", testAdminToken, "").body), &es); err != nil {
			t.Fatal(err)
		}
		return es
	}
	creds, _ := json.Marshal(map[string]any{"crm": "retailcrm", "base_url": fake.URL(), "credentials": json.RawMessage(fake.Creds())})
	var fakeCreds map[string]string
	_ = json.Unmarshal(fake.Creds(), &fakeCreds)
	secrets = append(secrets, fakeCreds["api_key"])

	steps := []struct {
		method, path, body string
		status             int
		action             string // "" when no entry is expected
		after              func(a answer)
	}{
		{"POST", "tenants", `{"id":"acme","default_country":"UA"}`, 201, "tenant.create", func(a answer) {
			secrets = append(secrets, a.json(t)["webhook_secret"].(string))
		}},
		{"PATCH", "tenants/acme", `{"on_miss":"default_owner"}`, 200, "tenant.update", nil},
		{"PATCH", "tenants/acme", `{"on_miss":"sometimes"}`, 400, "", nil},
		{"GET", "tenants/acme", ``, 200, "", nil},
		{"PUT", "tenants/acme/employees/101", `{"sip":"anna_sip"}`, 200, "employee.put", nil},
		{"PUT", "tenants/acme/default-owner", `{"crm_user_id":"101"}`, 200, "default_owner.set", nil},
		{"PUT", "tenants/acme/stop-list/380441112233", `{"note":"office"}`, 200, "stop_list.put", nil},
		{"DELETE", "tenants/acme/stop-list/380441112233", ``, 204, "stop_list.delete", nil},
		{"POST", "tenants/acme/contacts/import?format=csv", "phone,owner_crm_user_id\n0671234567,101\n", 200, "contacts.import", nil},
		{"PUT", "tenants/acme/integration", string(creds), 200, "integration.put", nil},
		{"POST", "tenants/acme/integration/deactivate", ``, 200, "integration.deactivate", nil},
		{"POST", "tenants/acme/integration/activate", `{"resend":false}`, 200, "integration.activate", nil},
		{"POST", "tenants/acme/secret/rotate", `{"grace_seconds":60}`, 200, "tenant.secret.rotate", func(a answer) {
			secrets = append(secrets, a.json(t)["webhook_secret"].(string))
		}},
		{"POST", "tokens", `{"name":"ci","scope":"read"}`, 201, "token.create", func(a answer) {
			m := a.json(t)
			revokeID = m["id"].(string)
			secrets = append(secrets, m["token"].(string))
		}},
		{"DELETE", "tokens/{revoke}", ``, 204, "token.revoke", nil},
		{"DELETE", "tenants/acme/employees/101", ``, 204, "employee.delete", nil},
		{"DELETE", "tenants/acme/employees/101", ``, 404, "", nil},
	}
	before := count()
	for _, s := range steps {
		path := strings.ReplaceAll(s.path, "{revoke}", revokeID)
		a := e.must(s.status, s.method, path, ops, s.body)
		if s.after != nil {
			s.after(a)
		}
		now := count()
		added := now[:len(now)-len(before)]
		switch {
		case s.action == "" && len(added) != 0:
			t.Fatalf("%s %s (%d) left audit entries %+v", s.method, path, s.status, added)
		case s.action != "" && len(added) != 1:
			t.Fatalf("%s %s left %d audit entries, want 1: %+v", s.method, path, len(added), added)
		case s.action != "" && (added[0].Action != s.action || added[0].Actor != actor):
			t.Fatalf("%s %s: audit entry %+v, want %s by %s", s.method, path, added[0], s.action, actor)
		}
		before = now
	}
	for _, en := range before {
		for _, sec := range secrets {
			if strings.Contains(en.Detail, sec) || strings.Contains(en.Actor, sec) {
				t.Fatalf("audit entry %+v holds a secret", en)
			}
		}
	}
}

// refusingCRM is a retailCRM look-alike that refuses every call and, as a
// careless CRM might, quotes the key it was sent in its refusal.
func refusingCRM(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		key, _ := json.Marshal("no such key: " + r.Header.Get("X-API-KEY"))
		fmt.Fprintf(w, `{"success":false,"errorMsg":"Wrong \"apiKey\" value.","errors":{"apiKey":%s}}`, key)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Failures that involve secrets (wrong keys, unparsable requests carrying
// a key or a token, a CRM refusing credentials it quotes back, a CRM that
// is down) leave them neither in the log, at debug level, nor in the
// admin API's answers.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	e := newSecEnv(t, nil)
	ctx := context.Background()
	var answers []answer
	keep := func(a answer) answer { answers = append(answers, a); return a }
	_, ops := e.newToken("ops", "admin")
	webhookSecret := e.must(201, "POST", "tenants", ops, `{"id":"acme","default_country":"UA"}`).json(t)["webhook_secret"].(string)
	const (
		refusedKey = "rk-refused-0123456789abcdef"
		downKey    = "rk-down-0123456789abcdef"
		badKey     = "rk-bad-line-0123456789"
		wrongKey   = "almost-the-secret-0123456789"
	)
	secrets := []string{testAdminToken, ops, webhookSecret, refusedKey, downKey, badKey, wrongKey}

	// Wrong webhook keys and admin tokens.
	keep(e.call("GET", "/pbx/acme/route?key="+wrongKey+"&caller=380671234567", "", ""))
	keep(e.call("POST", "/pbx/acme/events?key="+wrongKey, "", `{"uniqueid":"1"}`))
	keep(e.call("POST", "/crm/acme/webhook?key="+wrongKey, "", `{}`))
	keep(e.call("GET", "/admin/v1/tenants", wrongKey, ""))
	// A right key on a request the handler refuses.
	keep(e.call("GET", "/pbx/acme/route?key="+url.QueryEscape(webhookSecret), "", ""))

	// Requests fasthttp cannot parse, quoted in its log.
	fasthttpLines := e.logs.Len()
	for _, raw := range []string{
		"GET /pbx/acme/route?key=" + url.QueryEscape(webhookSecret) + "&caller=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ops + "\r\nNo colon here\r\n\r\n",
		"GET /admin/v1/tenants?key=" + url.QueryEscape(webhookSecret) + " HTTP/1.1\r\nHost: x\r\nX-Router-Key: " + webhookSecret + "\r\nContent-Length: nope\r\n\r\n",
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(c).ReadString('\n') // the answer, if any, ends the exchange
		c.Close()
		if strings.Contains(line, " 200 ") {
			t.Fatalf("a malformed request was answered %q", line)
		}
	}
	// The worker logs after the connection closes: wait for its lines.
	deadline := time.Now().Add(5 * time.Second)
	for e.logs.FilterMessageSnippet("error when serving connection").Len() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.logs.Len() == fasthttpLines {
		t.Fatal("fasthttp logged nothing about the malformed requests: the test shows nothing")
	}

	// A CRM that refuses the key and quotes it back.
	refusing := refusingCRM(t)
	e.must(201, "POST", "tenants", ops, `{"id":"refused"}`)
	body, _ := json.Marshal(map[string]any{"crm": "retailcrm", "base_url": refusing.URL, "credentials": map[string]string{"api_key": refusedKey}})
	keep(e.must(200, "PUT", "tenants/refused/integration", ops, string(body)))
	if a := keep(e.call("GET", "/admin/v1/tenants/refused/crm-users", ops, "")); a.status/100 != 5 || !strings.Contains(a.body, "Wrong") {
		t.Fatalf("crm-users from a refusing CRM: %d %s", a.status, a.body)
	}
	if _, err := e.engine.Syncer.Sync(ctx, "refused", 1); err == nil || crm.IsAuth(err) && strings.Contains(err.Error(), refusedKey) {
		t.Fatalf("sync against a refusing CRM: %v", err)
	}
	status := keep(e.must(200, "GET", "tenants/refused/status", ops, ""))
	if !strings.Contains(status.body, "broken") || !strings.Contains(status.body, "[redacted]") {
		t.Fatalf("status of the refused integration: %s", status.body)
	}
	if e.logs.FilterMessageSnippet("integration broken").Len() == 0 {
		t.Fatal("the broken integration was not logged: the test shows nothing")
	}

	// A CRM that is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String()
	ln.Close()
	e.must(201, "POST", "tenants", ops, `{"id":"down"}`)
	body, _ = json.Marshal(map[string]any{"crm": "retailcrm", "base_url": downURL, "credentials": map[string]string{"api_key": downKey}})
	keep(e.must(200, "PUT", "tenants/down/integration", ops, string(body)))
	keep(e.call("GET", "/admin/v1/tenants/down/crm-users", ops, ""))
	if _, err := e.engine.Syncer.Sync(ctx, "down", 1); err == nil || strings.Contains(err.Error(), downKey) {
		t.Fatalf("sync against a CRM that is down: %v", err)
	}
	keep(e.must(200, "GET", "tenants/down/status", ops, ""))

	// Credentials the adapter refuses are not quoted back.
	body, _ = json.Marshal(map[string]any{"crm": "retailcrm", "base_url": "https://acme.retailcrm.ru",
		"credentials": map[string]string{"api_key": badKey + "\n" + badKey}})
	keep(e.must(400, "PUT", "tenants/acme/integration", ops, string(body)))

	for _, a := range answers {
		for _, s := range secrets {
			if strings.Contains(a.body, s) || strings.Contains(a.body, url.QueryEscape(s)) {
				t.Errorf("an answer (%d) holds %q: %s", a.status, s, a.body)
			}
		}
	}
	if e.logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) || strings.Contains(line, url.QueryEscape(s)) {
				t.Errorf("a log line holds %q: %s", s, line)
			}
		}
	}
}

func TestRedactLog(t *testing.T) {
	for in, want := range map[string]string{
		`error when serving connection "a"<->"b": cannot find http request method in "GET /pbx/a/route?key=s3cr3t&caller=1 HTTP/1.1"`: `error when serving connection "a"<->"b": cannot find http request method in "GET /pbx/a/route?key=[redacted]&caller=1 HTTP/1.1"`,
		`unsupported http request method "X" in "X /x?caller=1&api_key=abc HTTP/1.1"`:                                                 `unsupported http request method "X" in "X /x?caller=1&api_key=[redacted] HTTP/1.1"`,
		`bad header "Authorization: Bearer tok\r\nHost: h"`:                                                                           `bad header "Authorization: [redacted]\r\nHost: h"`,
		`error when reading request headers: oops: buffer size=12, contents: "GET /?key=abc"..."def HTTP/1.1"`:                        `error when reading request headers: oops: buffer size=12, contents: [omitted]`,
		`nothing secret here`: `nothing secret here`,
	} {
		if got := redactLog(in); got != want {
			t.Errorf("redactLog(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
