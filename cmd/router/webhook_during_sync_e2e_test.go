package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestWebhookAnsweredWhileASyncWaitsOnTheCRM: the full sync started by
// connecting a CRM waits on a slow answer (held back by a proxy); a CRM
// webhook posted meanwhile is answered 200 at once, not after the sync (or
// a 500 when its timeout ran out behind it), routing follows it, and the
// sync page read before the change does not undo it when it lands.
func TestWebhookAnsweredWhileASyncWaitsOnTheCRM(t *testing.T) {
	t.Parallel()
	fake := zohofake.New(t)
	// Zoho stamps changes in whole seconds: the test moves the fake's clock
	// past one instead of sleeping through it.
	var ahead atomic.Int64
	fake.SetClock(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}})
	client := func(owner string) crm.Entity {
		return crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Heldclient", Phones: []string{"067 123 45 67"}, OwnerID: owner, Open: true}
	}
	fake.Put(client("501"))
	proxy := crmtest.NewProxy(t, fake.URL(), zohofake.MeterRPS)
	held := proxy.HoldAnswer("Heldclient")
	defer held.Release()

	cfg := testConfig(t)
	cfg.adminToken = "e2e-token"
	base, stop := startServe(t, cfg, io.Discard)
	defer stop()
	tok := cfg.adminToken
	secret := adminCLI(t, base, tok, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
	adminCLI(t, base, tok, "put-employee", "acme", "501", "--sip", "anna_sip")
	adminCLI(t, base, tok, "put-employee", "acme", "502", "--sip", "boris_sip")
	creds, _ := json.Marshal(fake.Creds())
	adminCLI(t, base, tok, "connect", "acme", "zoho", proxy.URL(), string(creds))
	select {
	case <-held.Held():
	case <-time.After(30 * time.Second):
		t.Fatal("the sync never read the client's page")
	}

	ahead.Store(int64(1100 * time.Millisecond)) // a newer update time, in whole seconds
	fake.Put(client("502"))
	ct, body, _ := fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "1001"})
	start := time.Now()
	req, _ := http.NewRequest("POST", base+"/crm/acme/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Router-Key", secret) // not in the URL, which errors quote
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("webhook during the sync: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook during the sync: %d %s", resp.StatusCode, b)
	}
	t.Logf("webhook answered %d in %s while the sync waited on the CRM", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	if st := adminCLI(t, base, tok, "status", "acme"); st["integration"].(map[string]any)["phase"] != "full" {
		t.Fatalf("the sync is over already: %v", st["integration"])
	}
	if got := route(t, base, secret, "380671234567"); got != `{"number":"boris_sip"}` {
		t.Fatalf("after the webhook: %s, want boris_sip", got)
	}

	held.Release()
	deadline := time.Now().Add(30 * time.Second)
	for {
		integ := adminCLI(t, base, tok, "status", "acme")["integration"].(map[string]any)
		if integ["phase"] == "incremental" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the full sync did not end: %v", integ)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := route(t, base, secret, "380671234567"); !strings.Contains(got, "boris_sip") {
		t.Fatalf("after the sync page read before the change: %s, want boris_sip", got)
	}
}
