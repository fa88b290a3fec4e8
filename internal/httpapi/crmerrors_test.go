package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// crmErrEnv is a server whose admin API reaches CRMs through the real
// crmsync engine and HTTP client. guarded: the engine's transport refuses
// private addresses, as in production, while the admin service still
// accepts a loopback base URL, which is what a host name that resolves to
// a private address (DNS rebinding) amounts to.
func newCRMErrEnv(t *testing.T, guarded bool, crmTimeout time.Duration) (base string, logs *observer.ObservedLogs) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core, zap.AddStacktrace(zapcore.ErrorLevel))
	reg := tenant.NewRegistry(st)
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
		Deps: crm.Deps{Transport: crm.NewTransport(!guarded), Sleep: (&crmtest.NoSleep{}).Sleep}})
	svc := admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true), admin.WithCRMTimeout(crmTimeout))
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
	return "http://" + ln.Addr().String(), logs
}

// adminDo sends one admin call with the test token and decodes its error.
func adminDo(t *testing.T, method, url, body string) (status int, code, message string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&e) // success bodies have no error
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// A CRM's trouble behind an admin call that must ask it (the users list)
// is a gateway status naming the CRM and saying what it did, without its
// key, logged as a warning without a stack trace: never a 500.
func TestCRMTroubleIsAGatewayStatus(t *testing.T) {
	const key = "crmerr-api-key-0123456789"
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	// slow holds every call until the test ends: only the admin call's
	// CRM timeout (short here) ends the wait, no sleep.
	release := make(chan struct{})
	slow := serve(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		name    string
		url     string
		guarded bool
		status  int
		code    string
		words   string // what the message must say
	}{
		{"down", down, false, 503, "crm_unavailable", "unreachable"},
		{"answers 503", serve(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"success":false,"errorMsg":"maintenance"}`, http.StatusServiceUnavailable)
		}), false, 503, "crm_unavailable", "maintenance"},
		{"slow", slow, false, 504, "crm_timeout", "did not answer in time"},
		{"redirects", serve(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		}), false, 502, "crm_error", "redirects to http://169.254.169.254/latest/meta-data/"},
		{"refuses the key", serve(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"success":false,"errorMsg":"Wrong apiKey %s"}`, r.Header.Get("X-API-KEY"))
		}), false, 502, "crm_error", "Wrong apiKey [redacted]"},
		{"bad answer", serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `<html>not the API</html>`)
		}), false, 502, "crm_error", "cannot use"},
		{"refused by the SSRF guard", serve(func(w http.ResponseWriter, _ *http.Request) {
			t.Error("the guard let a call through to a loopback address")
		}), true, 502, "crm_error", "--crm-allow-private"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timeout := time.Minute
			if tc.code == "crm_timeout" {
				timeout = 200 * time.Millisecond
			}
			base, logs := newCRMErrEnv(t, tc.guarded, timeout)
			adm := base + "/admin/v1/tenants"
			if st, _, msg := adminDo(t, "POST", adm, `{"id":"acme"}`); st != 201 {
				t.Fatalf("create tenant: %d %s", st, msg)
			}
			integ, _ := json.Marshal(map[string]any{"crm": "retailcrm", "base_url": tc.url, "credentials": map[string]string{"api_key": key}})
			if st, _, msg := adminDo(t, "PUT", adm+"/acme/integration", string(integ)); st != 200 {
				t.Fatalf("connect: %d %s", st, msg)
			}
			status, code, msg := adminDo(t, "GET", adm+"/acme/crm-users", "")
			if status != tc.status || code != tc.code || !strings.Contains(msg, "retailcrm") || !strings.Contains(msg, tc.words) {
				t.Fatalf("crm-users: %d %s %q, want %d %s naming retailcrm and saying %q", status, code, msg, tc.status, tc.code, tc.words)
			}
			if strings.Contains(msg, key) {
				t.Fatalf("the answer holds the key: %s", msg)
			}
			warned := false
			for _, e := range logs.All() {
				if e.Level >= zapcore.ErrorLevel || e.Stack != "" {
					t.Errorf("an expected CRM failure logged at %s (stack %t): %s %v", e.Level, e.Stack != "", e.Message, e.ContextMap())
				}
				warned = warned || e.Message == "CRM call failed" && e.Level == zapcore.WarnLevel
			}
			if !warned {
				t.Error("the CRM failure was not logged as a warning")
			}
		})
	}
}
