package console_test

// Browser tests: the console driven in Debian's Chromium by chromedp, one
// browser for the whole test binary, a fresh incognito-like browser
// context (cookies of its own) and a fresh server per test, all on
// 127.0.0.1. Without Chromium they skip, unless REQUIRE_BROWSER=1 (CI),
// when they fail. CONSOLE_SCREENSHOTS=DIR saves the main screens there as
// PNG files (docs/screenshots is made that way).

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/console"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/httpapi"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/report"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

const bootstrapToken = "browser-test-admin-token"

// stepTimeout bounds one run of browser steps.
const stepTimeout = 30 * time.Second

// browser is the one Chromium of the test binary; nil when there is none.
var (
	browser     context.Context
	browserSkip string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	path := chromiumPath()
	if path == "" {
		if os.Getenv("REQUIRE_BROWSER") == "1" {
			fmt.Fprintln(os.Stderr, "REQUIRE_BROWSER=1 but no chromium found (apt-get install -y chromium)")
			return 1
		}
		browserSkip = "chromium not installed (apt-get install -y chromium); set REQUIRE_BROWSER=1 to fail instead"
		return m.Run()
	}
	profile, err := os.MkdirTemp("", "callrouter-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(profile)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Nothing but the loopback test servers resolves.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 860),
	)
	defer cancelAlloc()
	b, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(b); err != nil {
		fmt.Fprintln(os.Stderr, "start chromium:", err)
		return 1
	}
	browser = b
	return m.Run()
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// fakeCRMs is the sync engine as the admin service sees it: a CRM whose
// users list the employees screen offers. The methods the console's tests
// never reach are left to the nil interface it embeds.
type fakeCRMs struct {
	engine
	users []crm.User
}

// engine names the embedded interface apart from its CRMs method.
type engine = admin.CRMs

func (f fakeCRMs) Users(context.Context, string) ([]crm.User, error) { return f.users, nil }

// Forget: this fake keeps no connection to drop (deleting a tenant calls it).
func (f fakeCRMs) Forget(string) {}

// MappableFields: this CRM lists no fields, so mappings are saved unchecked.
func (f fakeCRMs) MappableFields(context.Context, string, string) (string, []string, bool, error) {
	return "amocrm", nil, false, nil
}

type queue struct{}

func (queue) EnqueueTx(context.Context, any, []store.Partition) error { return nil }

// site is a callrouter server for one test, with tenant acme.
type site struct {
	t      *testing.T
	url    string
	st     store.Store
	admin  *admin.Service
	secret string
	// rec keeps route decisions; no Run: a test writes them with Drain.
	rec   *report.Recorder
	board *console.Board
}

func newSite(t *testing.T) *site {
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
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Warm(ctx, st.ScanIndex); err != nil {
		t.Fatal(err)
	}
	a := admin.New(st, reg, c, admin.WithCRMs(fakeCRMs{users: []crm.User{
		{ID: "u1", Name: "Olena Kovalenko", Email: "olena@example.com", Active: true},
		{ID: "u2", Name: "Petro Shevchenko", Active: true},
	}}))
	sessions, err := console.NewSessions(ctx, st, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	board := console.NewBoard(nil, 0)
	t.Cleanup(board.Close)
	ingest := events.NewIngest(st, queue{}, nil, 1)
	t.Cleanup(ingest.Close)
	sum := sha256.Sum256([]byte(bootstrapToken))
	rec := report.NewRecorder(st, report.RecorderConfig{})
	srv := httpapi.New(httpapi.Config{Tenants: reg, Router: lookup.New(c, st, time.Second), Admin: a, Events: ingest,
		Ready: c.Ready, AdminTokenHash: sum[:], Sessions: sessions, Board: board, Decisions: rec, Log: zap.NewNop()})
	hs := srv.FastHTTP()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { board.Close(); _ = hs.Shutdown() })
	created, err := a.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Name: "Acme Ltd", Settings: domain.Settings{DefaultCountry: "UA"}})
	if err != nil {
		t.Fatal(err)
	}
	return &site{t: t, url: "http://" + ln.Addr().String(), st: st, admin: a, secret: created.WebhookSecret, rec: rec, board: board}
}

// tab opens a browser tab with cookies of its own; run and get bound each
// of their steps in time.
func tab(t *testing.T) context.Context {
	t.Helper()
	if browser == nil {
		t.Skip(browserSkip)
	}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// Open the tab on the context that owns it: a timeout on the first
	// run would bound the tab's life, not the test's steps.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// run runs the steps in the tab and fails the test, showing the page, at
// the first that fails.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v\npage: %s", err, pageHTML(ctx))
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("browser: %v\npage: %s", err, pageHTML(ctx))
	}
	return v
}

func pageHTML(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	html, _ := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("main")))
	return html
}

// signIn signs in with token and waits for the tenants list.
func (s *site) signIn(ctx context.Context, token string) {
	s.t.Helper()
	run(s.t, ctx,
		chromedp.Navigate(s.url+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="acme"] td:nth-child(3) .pill`)),
	)
}

var shotMu sync.Mutex

// screenshot saves the page as DIR/name.png when CONSOLE_SCREENSHOTS=DIR.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	// Let the page's last fetches land before the picture.
	run(t, ctx, chromedp.Sleep(300*time.Millisecond))
	png := get(t, ctx, chromedp.FullScreenshot(100))
	shotMu.Lock()
	defer shotMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fetchResult is what a fetch made from the page answered.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// pageFetch runs fetch in the page (with its cookie) and returns the
// answer; csrf "" sends no CSRF header, "session" the session's own.
func pageFetch(t *testing.T, ctx context.Context, method, path, body, csrf string) fetchResult {
	t.Helper()
	js := fmt.Sprintf(`(async () => {
		const hdr = {'Content-Type': 'application/json'};
		let csrf = %q;
		if (csrf === 'session') csrf = (await (await fetch('/console/api/session')).json()).csrf;
		if (csrf) hdr['X-CSRF-Token'] = csrf;
		const r = await fetch(%q, {method: %q, headers: hdr, body: %q || undefined, credentials: 'same-origin'});
		return {status: r.status, body: await r.text()};
	})()`, csrf, path, method, body)
	return get(t, ctx, chromedp.Evaluate[fetchResult](js, chromedp.EvalAwaitPromise))
}

func (s *site) postEvent(t *testing.T, form url.Values) {
	t.Helper()
	resp, err := http.PostForm(s.url+"/pbx/acme/events?key="+url.QueryEscape(s.secret), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post event: status %d", resp.StatusCode)
	}
}

func TestBrowserSignInMapEmployeeAndSeniorManager(t *testing.T) {
	s := newSite(t)
	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	screenshot(t, ctx, "tenants")

	// The session cookie is HttpOnly and SameSite=Strict; page scripts
	// cannot read it.
	jar := get(t, ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url}})
	})
	cookies := jar.Cookies
	docCookie := get(t, ctx, chromedp.Evaluate[string](`document.cookie`))
	if len(cookies) != 1 || cookies[0].Name != console.CookieName || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict {
		t.Fatalf("cookies = %+v, want one HttpOnly SameSite=Strict %s", cookies, console.CookieName)
	}
	if docCookie != "" {
		t.Fatalf("document.cookie = %q, want the session cookie hidden from scripts", docCookie)
	}

	run(t, ctx,
		chromedp.Click(chromedp.CSS(`#tenants a[href="#/t/acme"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#settings`)),
	)
	screenshot(t, ctx, "settings")
	// A bad setting: the API's message appears next to its field.
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#f-route_budget_ms`), "5"),
		chromedp.Click(chromedp.CSS(`#settings button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-error-for="route_budget_ms"]:not(:empty)`)),
	)
	fieldErr := get(t, ctx, chromedp.Text(chromedp.CSS(`[data-error-for="route_budget_ms"]`)))
	if !strings.Contains(fieldErr, "route_budget_ms: must be between") {
		t.Fatalf("field error = %q", fieldErr)
	}

	run(t, ctx,
		chromedp.Click(chromedp.CSS(`nav.tabs a[data-tab="employees"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#map-employee`)),
		chromedp.SetValue(chromedp.CSS(`#map-user`), "u1"),
		chromedp.SendKeys(chromedp.CSS(`#map-sip`), "sip101"),
		chromedp.Click(chromedp.CSS(`#map-employee button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#employees tr[data-employee="u1"]`)),
	)
	e, err := s.st.Employee(context.Background(), "acme", "u1")
	if err != nil || e.SIP != "sip101" {
		t.Fatalf("employee u1 = %+v, %v; want SIP sip101", e, err)
	}
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#owner-select`), "u1"),
		chromedp.Click(chromedp.CSS(`#default-owner button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#employees tr[data-employee="u1"] .pill`)),
	)
	tn, err := s.st.Tenant(context.Background(), "acme")
	if err != nil || tn.DefaultOwner != "u1" {
		t.Fatalf("default owner = %q, %v; want u1", tn.DefaultOwner, err)
	}
	screenshot(t, ctx, "employees")

	// Both changes went through the admin service: audited as the token.
	audit, err := s.st.ListAudit(context.Background(), "acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		if a.Action == "tenant.create" {
			continue // made by the test itself
		}
		if a.Actor != admin.BootstrapActor {
			t.Errorf("audit actor %q, want %q", a.Actor, admin.BootstrapActor)
		}
		actions = append(actions, a.Action)
	}
	if !strings.Contains(strings.Join(actions, ","), "default_owner.set,employee.put") {
		t.Fatalf("audit actions = %v", actions)
	}

	// Sign-out: the cookie is gone and a copy of it is refused.
	cookie := cookies[0].Value
	run(t, ctx, chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#signin`)))
	req, _ := http.NewRequest("GET", s.url+"/admin/v1/tenants", nil)
	req.AddCookie(&http.Cookie{Name: console.CookieName, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed-out cookie: status %d, want 401", resp.StatusCode)
	}
}

func TestBrowserLiveBoard(t *testing.T) {
	s := newSite(t)
	if _, err := s.admin.PutEmployee(context.Background(), "test", "acme", "u1", admin.EmployeeInput{SIP: "sip101", Name: "Olena"}); err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/calls"),
		chromedp.WaitVisible(chromedp.CSS(`#live-calls`)),
	)
	get(t, ctx, chromedp.Poll[bool](`document.getElementById('live-state').textContent.startsWith('live')`, chromedp.WithPollingTimeout(10*time.Second)))
	s.postEvent(t, url.Values{"event": {"call_start"}, "uniqueid": {"call-1"}, "caller": {"+380501234567"}})
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#live-calls tr[data-call="call-1"][data-state="ringing"]`)))
	s.postEvent(t, url.Values{"event": {"call_answered"}, "uniqueid": {"call-1"}, "caller": {"+380501234567"},
		"employee_number": {"sip101"}, "employee_fio": {"Olena"}})
	run(t, ctx,
		chromedp.WaitVisible(chromedp.CSS(`#live-calls tr[data-call="call-1"][data-state="talking"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live-managers tr[data-manager="u1"] .pill.talking`)),
	)
	s.postEvent(t, url.Values{"event": {"call_start"}, "uniqueid": {"call-2"}, "caller": {"+380671112233"}})
	s.postEvent(t, url.Values{"event": {"call_end"}, "uniqueid": {"call-2"}, "caller": {"+380671112233"}, "disposition": {"NO ANSWER"}})
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#live-calls tr[data-call="call-2"][data-state="missed"]`)))
	// The searchable list of stored events, filtered by caller.
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`#event-search input[name=caller]`), "+380671112233"),
		chromedp.Click(chromedp.CSS(`#event-search button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events tbody tr[data-event]`)),
	)
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#events tbody tr[data-event]').length`)); n != 2 {
		t.Fatalf("%d events of +380671112233 listed, want its call_start and call_end", n)
	}
	screenshot(t, ctx, "calls")
}

func TestBrowserReadScopeCannotChange(t *testing.T) {
	s := newSite(t)
	tok, err := s.admin.CreateToken(context.Background(), "test", admin.TokenInput{Name: "viewer", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	s.signIn(ctx, tok.Token)
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/settings"),
		chromedp.WaitVisible(chromedp.CSS(`#settings`)),
	)
	disabled := get(t, ctx, chromedp.Evaluate[bool](`document.querySelector('#settings button[type=submit]').disabled`))
	if !disabled {
		t.Fatal("read scope: the settings form's save button is enabled")
	}
	// The page's controls are only a courtesy: the API refuses the change
	// even with the session's CSRF token.
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", "/admin/v1/tenants/acme", `{"name":"Changed"}`},
		{"PUT", "/admin/v1/tenants/acme/employees/u1", `{"sip":"sip101"}`},
		{"DELETE", "/admin/v1/tenants/acme", ``},
		{"POST", "/admin/v1/tenants/acme/secret/rotate", `{}`},
	} {
		res := pageFetch(t, ctx, c.method, c.path, c.body, "session")
		if res.Status != http.StatusForbidden || !strings.Contains(res.Body, `"forbidden"`) {
			t.Errorf("read scope %s %s: %d %s, want 403 forbidden", c.method, c.path, res.Status, res.Body)
		}
	}
	tn, err := s.st.Tenant(context.Background(), "acme")
	if err != nil || tn.Name != "Acme Ltd" {
		t.Fatalf("tenant after refused changes: %+v, %v", tn, err)
	}
	if emps, _ := s.st.ListEmployees(context.Background(), "acme"); len(emps) != 0 {
		t.Fatalf("employees after refused changes: %+v", emps)
	}
}

func TestBrowserCSRFRefused(t *testing.T) {
	s := newSite(t)
	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	for _, csrf := range []string{"", "forged-token"} {
		res := pageFetch(t, ctx, "PATCH", "/admin/v1/tenants/acme", `{"name":"Changed"}`, csrf)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(res.Body), &e)
		if res.Status != http.StatusForbidden || e.Error.Code != "csrf" {
			t.Fatalf("csrf %q: %d %s, want 403 csrf", csrf, res.Status, res.Body)
		}
	}
	if tn, _ := s.st.Tenant(context.Background(), "acme"); tn.Name != "Acme Ltd" {
		t.Fatalf("name changed to %q without a CSRF token", tn.Name)
	}
	// The same change with the session's token goes through.
	if res := pageFetch(t, ctx, "PATCH", "/admin/v1/tenants/acme", `{"name":"Changed"}`, "session"); res.Status != 200 {
		t.Fatalf("with the CSRF token: %d %s", res.Status, res.Body)
	}
	if tn, _ := s.st.Tenant(context.Background(), "acme"); tn.Name != "Changed" {
		t.Fatalf("name = %q after an accepted change", tn.Name)
	}
}

// signInHTTP signs in over plain HTTP and returns the session cookie and
// CSRF token.
func (s *site) signInHTTP(t *testing.T, token string, header map[string]string) (*http.Cookie, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/console/api/session", strings.NewReader(`{"token":`+strconvQuote(token)+`}`))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ CSRF string }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			return c, v.CSRF, resp
		}
	}
	return nil, "", resp
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func (s *site) withCookie(t *testing.T, method, path string, c *http.Cookie, csrf string) int {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(`{}`))
	req.AddCookie(c)
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSessionOverHTTP needs no browser: the session rules as any client
// meets them.
func TestSessionOverHTTP(t *testing.T) {
	s := newSite(t)
	if c, _, resp := s.signInHTTP(t, "wrong-token", nil); c != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d, cookie %v", resp.StatusCode, c)
	}
	tok, err := s.admin.CreateToken(context.Background(), "test", admin.TokenInput{Name: "ops", Scope: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	c, csrf, _ := s.signInHTTP(t, tok.Token, map[string]string{"X-Forwarded-Proto": "https"})
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie behind TLS = %+v, want HttpOnly, Secure, SameSite=Strict, Path=/", c)
	}
	if plain, _, _ := s.signInHTTP(t, tok.Token, nil); plain == nil || plain.Secure {
		t.Fatalf("cookie over plain HTTP = %+v, want not Secure (the browser would drop it)", plain)
	}
	if got := s.withCookie(t, "GET", "/admin/v1/tenants/acme", c, ""); got != 200 {
		t.Fatalf("GET with the cookie: %d", got)
	}
	if got := s.withCookie(t, "DELETE", "/console/api/session", c, ""); got != http.StatusForbidden {
		t.Fatalf("sign-out without the CSRF token: %d, want 403", got)
	}
	// Revoking the token ends its sessions at once.
	if err := s.admin.RevokeToken(context.Background(), "test", tok.ID); err != nil {
		t.Fatal(err)
	}
	if got := s.withCookie(t, "GET", "/admin/v1/tenants/acme", c, ""); got != http.StatusUnauthorized {
		t.Fatalf("GET after the token was revoked: %d, want 401", got)
	}
	if got := s.withCookie(t, "GET", "/console/api/session", c, csrf); got != http.StatusUnauthorized {
		t.Fatalf("session after the token was revoked: %d, want 401", got)
	}
	audit, err := s.st.ListAudit(context.Background(), "", 20)
	if err != nil {
		t.Fatal(err)
	}
	var signIns int
	for _, a := range audit {
		if a.Action == admin.ActionConsoleSignIn {
			signIns++
		}
	}
	if signIns != 2 {
		t.Fatalf("%d sign-ins audited, want 2", signIns)
	}
	// The console's files carry a policy that keeps scripts to its own.
	resp, err := http.Get(s.url + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("/console/: %d, CSP %q", resp.StatusCode, csp)
	}
}

func (s *site) adminGET(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/admin/v1/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+bootstrapToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEventsAPI(t *testing.T) {
	s := newSite(t)
	s.postEvent(t, url.Values{"event": {"call_start"}, "uniqueid": {"e1"}, "caller": {"+380501234567"}})
	s.postEvent(t, url.Values{"event": {"call_start"}, "uniqueid": {"e2"}, "caller": {"+380671112233"}})
	status, body := s.adminGET(t, "tenants/acme/events?state=waiting&caller="+url.QueryEscape("050 123 45 67")+"&limit=10")
	var evs []struct {
		UniqueID string `json:"uniqueid"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal([]byte(body), &evs); status != 200 || err != nil {
		t.Fatalf("events: %d %s", status, body)
	}
	if len(evs) != 1 || evs[0].UniqueID != "e1" || evs[0].State != "waiting" {
		t.Fatalf("events of one caller = %+v, want e1 only", evs)
	}
	for q, field := range map[string]string{"state=lost": "state:", "limit=0": "limit:", "before=yesterday": "before:", "caller=abc": "caller:"} {
		if status, body := s.adminGET(t, "tenants/acme/events?"+q); status != 400 || !strings.Contains(body, field) {
			t.Errorf("?%s: %d %s, want 400 naming %s", q, status, body, field)
		}
	}
	if status, _ := s.adminGET(t, "tenants/nobody/events"); status != 404 {
		t.Errorf("unknown tenant: %d, want 404", status)
	}
}

func TestBrowserExplain(t *testing.T) {
	s := newSite(t)
	bg := context.Background()
	if _, err := s.admin.PutEmployee(bg, "test", "acme", "u1", admin.EmployeeInput{SIP: "sip101", Name: "Olena"}); err != nil {
		t.Fatal(err)
	}
	if err := s.st.UpsertIndex(bg, []domain.IndexEntry{
		{TenantID: "acme", Phone: "380501234567", Suffix: phone.Suffix("380501234567"), Kind: domain.KindContact, EntityID: "c9", OwnerID: "u2", Open: true},
		{TenantID: "acme", Phone: "380501234567", Suffix: phone.Suffix("380501234567"), Kind: domain.KindLead, EntityID: "l7", OwnerID: "u1", Open: true},
		{TenantID: "acme", Phone: "380501234567", Suffix: phone.Suffix("380501234567"), Kind: domain.KindDeal, EntityID: "d3", OwnerID: "u2", Open: false},
	}); err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/explain"),
		chromedp.SendKeys(chromedp.CSS(`#explain-caller`), "050 123 45 67"),
		chromedp.Click(chromedp.CSS(`#explain button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain-answer`)),
	)
	normalized := get(t, ctx, chromedp.Text(chromedp.CSS(`#explain-normalized`)))
	owner := get(t, ctx, chromedp.Text(chromedp.CSS(`#explain-owner`)))
	answer := get(t, ctx, chromedp.Text(chromedp.CSS(`#explain-answer`)))
	verdicts := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#explain-rows tbody tr td:last-child')].map((td) => td.textContent)`))
	screenshot(t, ctx, "explain")
	if normalized != "380501234567" || !strings.Contains(owner, "u1 (lead l7)") {
		t.Fatalf("normalized %q, owner %q", normalized, owner)
	}
	chosen, closed := 0, 0
	for _, v := range verdicts {
		switch v {
		case "chosen":
			chosen++
		case "closed":
			closed++
		}
	}
	if len(verdicts) != 3 || chosen != 1 || closed != 1 {
		t.Fatalf("row verdicts %v, want one chosen, one closed of three", verdicts)
	}
	// Exactly what the route endpoint answers.
	resp, err := http.Get(s.url + "/pbx/acme/route?key=" + url.QueryEscape(s.secret) + "&caller=0501234567")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"number":"sip101"}` || !strings.Contains(answer, string(body)) || !strings.Contains(answer, "200") {
		t.Fatalf("explain shows %q; the route endpoint answered %q", answer, body)
	}
}

func TestExplainAPI(t *testing.T) {
	s := newSite(t)
	status, body := s.adminGET(t, "tenants/acme/explain?caller=hello")
	var x struct {
		Reason string `json:"reason"`
		Answer struct {
			Status      int    `json:"status"`
			RouteReason string `json:"x_route_reason"`
			Body        string `json:"body"`
		} `json:"answer"`
	}
	if err := json.Unmarshal([]byte(body), &x); status != 200 || err != nil {
		t.Fatalf("explain: %d %s", status, body)
	}
	if x.Reason != "invalid_caller" || x.Answer.RouteReason != "invalid_caller" || x.Answer.Body != "{}" {
		t.Fatalf("explain of a non-number: %+v", x)
	}
	if status, body := s.adminGET(t, "tenants/acme/explain"); status != 400 || !strings.Contains(body, "caller:") {
		t.Fatalf("without caller: %d %s", status, body)
	}
	if status, _ := s.adminGET(t, "tenants/nobody/explain?caller=0501234567"); status != 404 {
		t.Fatalf("unknown tenant: %d", status)
	}
}
