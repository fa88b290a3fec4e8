package crm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

func TestCheckBaseURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://acme.amocrm.ru":         true,
		"https://acme.amocrm.ru/":        true,
		"http://127.0.0.1:8081":          true,
		"http://[::1]:9000":              true,
		"http://localhost:9000":          true,
		"http://acme.amocrm.ru":          false, // plain http off loopback
		"http://10.0.0.5":                false,
		"http://169.254.169.254/latest":  false, // cloud metadata
		"ftp://acme.example":             false,
		"https://user:pw@acme.amocrm.ru": false,
		"https://acme.amocrm.ru?x=1":     false,
		"acme.amocrm.ru":                 false,
		"":                               false,
	} {
		u, err := crm.CheckBaseURL(raw)
		if ok != (err == nil) {
			t.Errorf("CheckBaseURL(%q) = %v, %v; want ok=%v", raw, u, err, ok)
		}
		if err != nil && (domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "base_url:")) {
			t.Errorf("CheckBaseURL(%q) error %v does not name base_url", raw, err)
		}
	}
}

// server answers from a script of (status, header, body) steps, one per
// request, repeating the last.
type step struct {
	status int
	header map[string]string
	body   string
}

func scripted(t *testing.T, steps ...step) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		s := steps[min(i, len(steps)-1)]
		for k, v := range s.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(s.status)
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newHTTP(t *testing.T, url string, mut func(*crm.HTTPConfig)) (*crm.HTTP, *crmtest.NoSleep) {
	t.Helper()
	ns := &crmtest.NoSleep{}
	cfg := crm.HTTPConfig{CRM: "testcrm", BaseURL: url, Sleep: ns.Sleep, Transport: crm.NewTransport(true),
		ErrorText: func(_ int, b []byte) string { return "crm says: " + crm.Snippet(b) }}
	if mut != nil {
		mut(&cfg)
	}
	h, err := crm.NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, ns
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	srv, n := scripted(t, step{status: 429, header: map[string]string{"Retry-After": "7"}, body: "slow down"},
		step{status: 503}, step{status: 200, body: `{"ok":true}`})
	h, ns := newHTTP(t, srv.URL, nil)
	resp, err := h.Do(context.Background(), crm.Request{Method: "POST", Path: "/x"})
	if err != nil || string(resp.Body) != `{"ok":true}` {
		t.Fatalf("Do = %v, %v", resp, err)
	}
	if n.Load() != 3 || len(ns.Waits) != 2 || ns.Waits[0] != 7*time.Second || ns.Waits[1] != time.Second*2 {
		t.Fatalf("requests %d, waits %v; want 3 requests, Retry-After 7s then backoff 2s", n.Load(), ns.Waits)
	}
}

func TestServerErrorsRetriedForGETOnly(t *testing.T) {
	srv, n := scripted(t, step{status: 502, body: "bad gateway"}, step{status: 200, body: "ok"})
	h, _ := newHTTP(t, srv.URL, nil)
	if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil || n.Load() != 2 {
		t.Fatalf("GET after a 502: %v after %d requests", err, n.Load())
	}
	srv2, n2 := scripted(t, step{status: 502, body: "bad gateway"}, step{status: 200, body: "ok"})
	h2, _ := newHTTP(t, srv2.URL, nil)
	_, err := h2.Do(context.Background(), crm.Request{Method: "POST", Path: "/x"})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 502 || se.Message != "crm says: bad gateway" || n2.Load() != 1 {
		t.Fatalf("POST after a 502: %v after %d requests; want one try, StatusError with the CRM's text", err, n2.Load())
	}
}

func TestRetriesAreBounded(t *testing.T) {
	srv, n := scripted(t, step{status: 429, body: "no"})
	h, ns := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Retries = 2 })
	_, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 429 || n.Load() != 3 || len(ns.Waits) != 2 {
		t.Fatalf("err %v, requests %d, waits %v", err, n.Load(), ns.Waits)
	}
}

func TestStaticKeyRejectedIsAuthErrorWithCRMText(t *testing.T) {
	srv, n := scripted(t, step{status: 401, body: `Wrong "apiKey" value.`})
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = crm.StaticKey{Header: "X-API-KEY", Value: "k"} })
	_, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != `crm says: Wrong "apiKey" value.` || !crm.IsAuth(err) || n.Load() != 1 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
	if strings.Contains(err.Error(), "X-API-KEY") {
		t.Fatal("error mentions the credential header")
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-KEY") != "" {
			leaked.Store(true)
		}
	}))
	defer other.Close()
	srv, _ := scripted(t, step{status: 302, header: map[string]string{"Location": other.URL}})
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = crm.StaticKey{Header: "X-API-KEY", Value: "k"} })
	if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err == nil || leaked.Load() {
		t.Fatalf("redirect: err %v, key sent elsewhere %v", err, leaked.Load())
	}
}

func TestRateLimitAndConcurrencyBounds(t *testing.T) {
	meter := crmtest.NewRateMeter(t, 20)
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(meter.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond) // a CRM that takes its time
	})))
	defer srv.Close()
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.RPS = 20; c.Concurrency = 2 })
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Go(func() {
			if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if meter.Count() != 30 || peak.Load() > 2 {
		t.Fatalf("requests %d, peak in flight %d; want 30 requests, at most 2 at once", meter.Count(), peak.Load())
	}
	t.Logf("peak rate %d/s of the allowed 20/s", meter.Peak()) // the meter fails the test above 20
}

// oauthServer accepts only the current access token and rotates the pair
// on every refresh; a used refresh token is rejected, as amoCRM does.
type oauthServer struct {
	mu        sync.Mutex
	access    string
	refresh   string
	refreshes int
	store     *crmtest.TokenStore
	t         *testing.T
}

func (o *oauthServer) api(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got != o.access {
		w.WriteHeader(401)
		fmt.Fprint(w, "Unauthorized")
		return
	}
	// The pair in use must already be stored: otherwise a crash now would
	// lose the only valid refresh token.
	if st := o.store.Token(); st.Access != got {
		o.t.Errorf("API call with access token %q before it was stored (store has %q)", got, st.Access)
	}
	fmt.Fprint(w, "ok")
}

func (o *oauthServer) refreshFunc(_ context.Context, rt string) (crm.Token, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if rt != o.refresh {
		return crm.Token{}, &crm.AuthError{CRM: "testcrm", Status: 400, Message: "Token has been revoked"}
	}
	o.refreshes++
	o.access = fmt.Sprintf("access-%d", o.refreshes)
	o.refresh = fmt.Sprintf("refresh-%d", o.refreshes)
	return crm.Token{Access: o.access, Refresh: o.refresh, Expiry: time.Now().Add(time.Hour)}, nil
}

func TestOAuthRefreshesOnceAndStoresBeforeUse(t *testing.T) {
	store := crmtest.NewTokenStore(crm.Token{Access: "stale", Refresh: "refresh-0", Expiry: time.Now().Add(time.Hour)})
	o := &oauthServer{access: "access-0", refresh: "refresh-0", store: store, t: t}
	srv := httptest.NewServer(http.HandlerFunc(o.api))
	defer srv.Close()
	auth := crm.NewOAuth(store, o.refreshFunc, nil, time.Minute, nil)
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = auth })
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if o.refreshes != 1 || len(store.Saves) != 1 || store.Token().Refresh != "refresh-1" {
		t.Fatalf("20 concurrent calls with a rejected token: %d refreshes, %d saves, stored %+v; want exactly one", o.refreshes, len(store.Saves), store.Token())
	}
}

func TestOAuthRefreshesAnExpiredTokenFirst(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	store := crmtest.NewTokenStore(crm.Token{Access: "access-0", Refresh: "refresh-0", Expiry: now.Add(30 * time.Second)})
	o := &oauthServer{access: "access-0", refresh: "refresh-0", store: store, t: t}
	srv := httptest.NewServer(http.HandlerFunc(o.api))
	defer srv.Close()
	// Valid for 30 more seconds, refreshed a minute early: refreshed now.
	auth := crm.NewOAuth(store, o.refreshFunc, nil, time.Minute, func() time.Time { return now })
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = auth })
	if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if o.refreshes != 1 {
		t.Fatalf("refreshes %d, want the expiring token refreshed before use", o.refreshes)
	}
}

func TestOAuthUsesAPairAnotherInstanceStored(t *testing.T) {
	store := crmtest.NewTokenStore(crm.Token{Access: "access-0", Refresh: "refresh-0"})
	o := &oauthServer{access: "access-0", refresh: "refresh-0", store: store, t: t}
	srv := httptest.NewServer(http.HandlerFunc(o.api))
	defer srv.Close()
	auth := crm.NewOAuth(store, o.refreshFunc, nil, 0, nil)
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = auth })
	if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	// Another instance refreshes and stores the new pair.
	other := crm.NewOAuth(store, o.refreshFunc, nil, 0, nil)
	if err := other.Refresh(context.Background(), "access-0"); err != nil {
		t.Fatal(err)
	}
	// Ours is rejected once, finds the stored pair and does not refresh
	// again (which would burn the single-use refresh token).
	if _, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if o.refreshes != 1 {
		t.Fatalf("refreshes %d, want 1", o.refreshes)
	}
}

func TestOAuthRevokedIsAuthError(t *testing.T) {
	store := crmtest.NewTokenStore(crm.Token{Access: "old", Refresh: "used-elsewhere"})
	o := &oauthServer{access: "access-0", refresh: "refresh-0", store: store, t: t}
	srv := httptest.NewServer(http.HandlerFunc(o.api))
	defer srv.Close()
	h, _ := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = crm.NewOAuth(store, o.refreshFunc, nil, 0, nil) })
	_, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != "Token has been revoked" {
		t.Fatalf("err %v, want the CRM's refusal", err)
	}
	if len(store.Saves) != 0 {
		t.Fatal("a failed refresh stored something")
	}
}

func TestContextEndsRetries(t *testing.T) {
	srv, _ := scripted(t, step{status: 429, header: map[string]string{"Retry-After": "60"}})
	h, err := crm.NewHTTP(crm.HTTPConfig{CRM: "testcrm", BaseURL: srv.URL, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Do(ctx, crm.Request{Method: "GET", Path: "/x"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
}

func TestSnippet(t *testing.T) {
	if got := crm.Snippet([]byte("  a\n\tb  ")); got != "a b" {
		t.Errorf("Snippet = %q", got)
	}
	if got := crm.Snippet(nil); got != "(empty body)" {
		t.Errorf("Snippet(nil) = %q", got)
	}
	long := crm.Snippet([]byte(strings.Repeat("я", 400)))
	if !strings.HasSuffix(long, "…") || !utf8Valid(long) || len(long) > 304 {
		t.Errorf("long Cyrillic snippet = %q", long)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestRefusedRefreshBeforeSendingIsNotRetried(t *testing.T) {
	srv, n := scripted(t, step{status: 200, body: "ok"})
	refreshes := 0
	store := crmtest.NewTokenStore(crm.Token{Refresh: "revoked"}) // no access token yet
	auth := crm.NewOAuth(store, func(context.Context, string) (crm.Token, error) {
		refreshes++
		return crm.Token{}, &crm.AuthError{CRM: "testcrm", Status: 400, Message: "invalid_code"}
	}, nil, 0, nil)
	h, ns := newHTTP(t, srv.URL, func(c *crm.HTTPConfig) { c.Auth = auth })
	_, err := h.Do(context.Background(), crm.Request{Method: "GET", Path: "/x"})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != "invalid_code" || refreshes != 1 || n.Load() != 0 || len(ns.Waits) != 0 {
		t.Fatalf("err %v, refreshes %d, requests %d, waits %v; want one refusal, nothing retried", err, refreshes, n.Load(), ns.Waits)
	}
}

// Two instances refresh one single-use token at once: the CRM refuses the
// second, which must adopt the pair the first stored instead of reporting
// the integration broken.
func TestOAuthLosingARefreshRaceAdoptsTheWinnersPair(t *testing.T) {
	store := crmtest.NewTokenStore(crm.Token{Access: "access-0", Refresh: "refresh-0"})
	o := &oauthServer{access: "access-0", refresh: "refresh-0", store: store, t: t}
	// Instance B's refresh runs just after instance A's refresh and save.
	var a *crm.OAuth
	slow := func(ctx context.Context, rt string) (crm.Token, error) {
		if err := a.Refresh(ctx, "access-0"); err != nil { // A wins the race
			t.Fatal(err)
		}
		return o.refreshFunc(ctx, rt) // B presents the token A already used
	}
	a = crm.NewOAuth(store, o.refreshFunc, nil, 0, nil)
	b := crm.NewOAuth(store, slow, nil, 0, nil)
	if err := b.Refresh(context.Background(), "access-0"); err != nil {
		t.Fatalf("the loser of a refresh race: %v, want it to adopt the stored pair", err)
	}
	tok, err := b.Current(context.Background())
	if err != nil || tok.Access != "access-1" || o.refreshes != 1 {
		t.Fatalf("loser uses %+v (%v), refreshes %d; want the winner's access-1", tok, err, o.refreshes)
	}
}
