package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/callrouter/callrouter/internal/domain"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/salesmanago/salesmanagofake"
)

// `router admin salesmanago …` sends what the admin API takes, with the
// key and secret from flags, files or the environment, and refuses to
// connect without them.
func TestSALESmanagoCLI(t *testing.T) {
	t.Setenv("ROUTER_ADMIN_TOKEN", "")
	t.Setenv("ROUTER_URL", "")
	t.Setenv("ROUTER_SALESMANAGO_API_KEY", "env-key")
	t.Setenv("ROUTER_SALESMANAGO_API_SECRET", "env-secret")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, base := newFakeAdmin(t, map[string]string{"/admin/v1/tenants/acme/salesmanago": `{"state":"active"}`})
	common := []string{"--url", base, "--token", "T"}
	for _, tc := range []struct {
		args       []string
		call, body string
	}{
		{[]string{"salesmanago", "connect", "acme", "https://app3.salesmanago.pl", "client-1", "boss@acme.pl"},
			"PUT /admin/v1/tenants/acme/salesmanago Bearer T",
			`{"api_key":"env-key","api_secret":"env-secret","base_url":"https://app3.salesmanago.pl","client_id":"client-1","owner_email":"boss@acme.pl"}`},
		{[]string{"salesmanago", "connect", "acme", "https://app3.salesmanago.pl", "client-1", "boss@acme.pl", "--api-key", "flag-key",
			"--api-secret", "@" + secretFile},
			"PUT /admin/v1/tenants/acme/salesmanago Bearer T", `"api_key":"flag-key","api_secret":"file-secret"`},
		{[]string{"salesmanago", "show", "acme"}, "GET /admin/v1/tenants/acme/salesmanago Bearer T", ""},
		{[]string{"salesmanago", "activate", "acme"}, "POST /admin/v1/tenants/acme/salesmanago/activate Bearer T", ""},
		{[]string{"salesmanago", "deactivate", "acme"}, "POST /admin/v1/tenants/acme/salesmanago/deactivate Bearer T", ""},
		{[]string{"salesmanago", "sync", "acme"}, "POST /admin/v1/tenants/acme/salesmanago/sync Bearer T", ""},
		{[]string{"salesmanago", "disconnect", "acme"}, "DELETE /admin/v1/tenants/acme/salesmanago Bearer T", ""},
	} {
		var out bytes.Buffer
		if err := runAdmin(append(tc.args, common...), &out); err != nil {
			t.Fatalf("router admin %s: %v", strings.Join(tc.args, " "), err)
		}
		if call := f.last(); !strings.HasPrefix(call, tc.call) || !strings.Contains(call, tc.body) {
			t.Fatalf("router admin %s: the server got %q, want %q with %s", strings.Join(tc.args, " "), call, tc.call, tc.body)
		}
		for _, secret := range []string{"env-key", "env-secret", "flag-key", "file-secret"} {
			if strings.Contains(out.String(), secret) {
				t.Fatalf("router admin %s echoes a secret: %s", strings.Join(tc.args, " "), out.String())
			}
		}
	}
	t.Setenv("ROUTER_SALESMANAGO_API_SECRET", "")
	var ue usageError
	err := runAdmin(append([]string{"salesmanago", "connect", "acme", "https://app3.salesmanago.pl", "c", "boss@acme.pl"}, common...), io.Discard)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--api-secret") || !strings.Contains(err.Error(), "ROUTER_SALESMANAGO_API_SECRET") {
		t.Fatalf("connect without a secret: %v, want a usage error naming --api-secret", err)
	}
}

// TestSALESmanagoEndToEnd: a tenant with Zoho CRM connected gets its
// SALESmanago account connected through `router admin salesmanago
// connect` (a tenant without Zoho is refused with 409); the first sync
// makes both systems hold both persons, a change in SALESmanago reaches
// Zoho after `salesmanago sync`, /status shows the sync without secrets,
// and pausing and disconnecting work. On both stores.
func TestSALESmanagoEndToEnd(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			cfg := testConfig(t)
			if db == "postgres" {
				cfg.db = postgresDB(t)
			}
			cfg.adminToken = "e2e-token"
			base, stop := startServe(t, cfg, io.Discard)
			defer stop()
			tok := cfg.adminToken

			zf := zohofake.New(t)
			// Zoho stamps changes in whole seconds: the test moves its clock
			// past one instead of sleeping.
			var ahead atomic.Int64
			zf.SetClock(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
			webhookKey := setupTenant(t, base, tok, "zoho", zf)
			sm := salesmanagofake.New(t, "boss@acme.pl")
			smc := sm.Config("boss@acme.pl")
			sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600100200", State: salesmanago.StateProspect})
			darek := zf.PutRecord("Contacts", map[string]any{"Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl"})

			// A tenant without a Zoho integration is refused, naming it.
			adminCLI(t, base, tok, "create-tenant", "bare")
			body, _ := json.Marshal(map[string]string{"base_url": smc.BaseURL, "client_id": smc.ClientID, "api_key": smc.APIKey,
				"api_secret": smc.APISecret, "owner_email": "boss@acme.pl"})
			status, answer := adminHTTP(t, base, tok, "PUT", "/admin/v1/tenants/bare/salesmanago", body)
			if status != http.StatusConflict || !strings.Contains(answer, `"message":"integration: `) {
				t.Fatalf("connect without Zoho: %d %s", status, answer)
			}

			t.Setenv("ROUTER_SALESMANAGO_API_KEY", smc.APIKey)
			t.Setenv("ROUTER_SALESMANAGO_API_SECRET", smc.APISecret)
			if c := adminCLI(t, base, tok, "salesmanago", "connect", "acme", smc.BaseURL, smc.ClientID, "boss@acme.pl"); c["state"] != "active" {
				t.Fatalf("salesmanago connect: %v", c)
			}
			zp := zohoReader(t, zf)
			eventually(t, 30*time.Second, "the first sync: Ala in Zoho, Darek in SALESmanago", func() bool {
				_, ok := sm.Contact("darek@klient.pl")
				return ok && zp("ala@klient.pl").Phone == "+48600100200"
			})
			if d, _ := sm.Contact("darek@klient.pl"); d.State != salesmanago.StateCustomer || d.Name != "Darek Dąb" {
				t.Fatalf("darek in salesmanago: %+v", d)
			}
			eventually(t, 30*time.Second, "the first pass recorded", func() bool {
				v := adminCLI(t, base, tok, "salesmanago", "show", "acme")
				p, _ := v["progress"].(map[string]any)
				return p["first_sync_done"] == true && p["linked"] == 2.0
			})

			// A change in SALESmanago, then "sync now".
			sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600999999", State: salesmanago.StateProspect})
			if v := adminCLI(t, base, tok, "salesmanago", "sync", "acme"); v["sync_requested"] == nil {
				t.Fatalf("salesmanago sync: %v", v)
			}
			eventually(t, 30*time.Second, "the change in Zoho", func() bool { return zp("ala@klient.pl").Phone == "+48600999999" })
			eventually(t, 30*time.Second, "the manual pass in /status", func() bool {
				s, _ := adminCLI(t, base, tok, "status", "acme")["salesmanago"].(map[string]any)
				last, _ := s["last_pass"].(map[string]any)
				counts, _ := s["counts"].(map[string]any)
				return s["state"] == "active" && last["kind"] == "manual" && last["error"] == nil && counts["to_zoho"].(float64) >= 2
			})
			// A change in Zoho that Zoho announces (a notification to the CRM
			// webhook) reaches SALESmanago without "sync now". (Which pass
			// carries it is not pinned down here: a scheduled pass may still be
			// waiting; internal/jobs tests that the notification alone asks for
			// one.)
			ahead.Store(int64(2 * time.Second))
			zf.PutRecord("Contacts", map[string]any{"id": darek, "Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl",
				"Phone": "+48600300400"})
			ct, note, ok := zf.Notification(crm.Ref{Kind: domain.KindContact, ID: darek})
			if !ok {
				t.Fatal("the Zoho fake has no notification for a contact")
			}
			req, _ := http.NewRequest("POST", base+"/crm/acme/webhook", bytes.NewReader(note))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("X-Router-Key", webhookKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("Zoho notification: %d", resp.StatusCode)
			}
			eventually(t, 30*time.Second, "Darek's new phone in SALESmanago after Zoho's notification", func() bool {
				d, _ := sm.Contact("darek@klient.pl")
				return d.Phone == "+48600300400"
			})

			_, st := adminHTTP(t, base, tok, "GET", "/admin/v1/tenants/acme/status", nil)
			if strings.Contains(st, smc.APIKey) || strings.Contains(st, smc.APISecret) {
				t.Fatalf("/status shows a SALESmanago secret: %s", st)
			}

			// Paused: "sync now" is refused; disconnected: gone.
			if v := adminCLI(t, base, tok, "salesmanago", "deactivate", "acme"); v["state"] != "inactive" {
				t.Fatalf("deactivate: %v", v)
			}
			if status, answer := adminHTTP(t, base, tok, "POST", "/admin/v1/tenants/acme/salesmanago/sync", nil); status != http.StatusConflict {
				t.Fatalf("sync while paused: %d %s", status, answer)
			}
			adminCLI(t, base, tok, "salesmanago", "disconnect", "acme")
			if status, _ := adminHTTP(t, base, tok, "GET", "/admin/v1/tenants/acme/salesmanago", nil); status != http.StatusNotFound {
				t.Fatalf("after disconnecting: %d", status)
			}
		})
	}
}

// adminHTTP calls the admin API and returns the status and body.
func adminHTTP(t *testing.T, base, token, method, path string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// zohoReader returns a reader of the Zoho fake's leads and contacts by
// e-mail, through the Zoho API.
func zohoReader(t *testing.T, zf *zohofake.Server) func(email string) zoho.Person {
	t.Helper()
	tok, _ := zoho.Seed(zf.Creds())
	src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: zf.URL(), Creds: zf.Creds()},
		crm.Deps{Tokens: crmtest.NewTokenStore(tok), Sleep: (&crmtest.NoSleep{}).Sleep, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	zp := src.(zoho.People)
	return func(email string) zoho.Person {
		for _, m := range []string{zoho.ModuleContacts, zoho.ModuleLeads} {
			ps, _, err := zp.ListPeople(context.Background(), m, time.Time{}, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if strings.EqualFold(p.Email, email) {
					return p
				}
			}
		}
		return zoho.Person{}
	}
}

// --salesmanago-interval (and its environment twin) sets the engine's
// incremental interval; less than a minute is refused naming the flag.
func TestSALESmanagoIntervalFlag(t *testing.T) {
	t.Setenv("ROUTER_SALESMANAGO_INTERVAL", "")
	c, err := parseServe(nil, io.Discard)
	if err != nil || c.salesmanagoInterval != 5*time.Minute {
		t.Fatalf("default: %v %v", c.salesmanagoInterval, err)
	}
	t.Setenv("ROUTER_SALESMANAGO_INTERVAL", "2m")
	if c, err = parseServe(nil, io.Discard); err != nil || c.salesmanagoInterval != 2*time.Minute {
		t.Fatalf("from the environment: %v %v", c.salesmanagoInterval, err)
	}
	if _, err := parseServe([]string{"--salesmanago-interval", "30s"}, io.Discard); err == nil ||
		!strings.HasPrefix(err.Error(), "--salesmanago-interval:") {
		t.Fatalf("30s: %v, want an error naming the flag", err)
	}
}
