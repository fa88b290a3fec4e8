package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/domain"
)

func route(t *testing.T, url, secret, caller string) string {
	t.Helper()
	resp, err := http.Get(url + "/pbx/acme/route?key=" + secret + "&caller=" + caller)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("route: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// A tenant connected to each fake CRM through `router admin connect`
// routes a caller to the right manager after the first sync, and a CRM
// webhook posted to /crm/{tenant}/webhook changes routing at once.
func TestConnectedCRMRoutesCallers(t *testing.T) {
	t.Parallel()
	for _, f := range crmfakes.All() {
		t.Run(f.CRM, func(t *testing.T) {
			fake := f.New(t)
			fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}})
			fake.Put(crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Client", Phones: []string{"067 123 45 67"}, OwnerID: "501", Open: true})

			cfg := testConfig(t)
			cfg.adminToken = "e2e-token"
			cfg.syncInterval = time.Second
			cfg.crmRateScale = rateScale
			fake.ScaleRate(rateScale)
			url, stop := startServe(t, cfg, io.Discard)
			defer stop()
			tok := cfg.adminToken
			secret := adminCLI(t, url, tok, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
			adminCLI(t, url, tok, "put-employee", "acme", "501", "--sip", "anna_sip")
			adminCLI(t, url, tok, "put-employee", "acme", "502", "--sip", "boris_sip")
			creds, _ := json.Marshal(fake.Creds())
			conn := adminCLI(t, url, tok, "connect", "acme", f.CRM, fake.URL(), string(creds))
			if conn["state"] != "active" || conn["crm"] != f.CRM {
				t.Fatalf("connect: %v", conn)
			}

			deadline := time.Now().Add(30 * time.Second)
			for route(t, url, secret, "380671234567") != `{"number":"anna_sip"}` {
				if time.Now().After(deadline) {
					t.Fatalf("not routed to the CRM's responsible manager within 30s; status %v", adminCLI(t, url, tok, "status", "acme"))
				}
				time.Sleep(100 * time.Millisecond)
			}
			status := adminCLI(t, url, tok, "status", "acme")
			integ := status["integration"].(map[string]any)
			if integ["state"] != "active" || status["index_size"].(float64) < 1 {
				t.Fatalf("status after the first sync: %v", status)
			}

			var out bytes.Buffer
			if err := runAdmin([]string{"--url", url, "--token", tok, "crm-users", "acme"}, &out); err != nil || !strings.Contains(out.String(), "Boris") {
				t.Fatalf("crm-users: %v %s", err, out.String())
			}

			// The CRM reassigns the client and notifies callrouter.
			fake.Put(crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Client", Phones: []string{"067 123 45 67"}, OwnerID: "502", Open: true})
			ct, body, ok := fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "1001"})
			if !ok {
				t.Skip("this CRM's notifications cannot name the change")
			}
			resp, err := http.Post(url+"/crm/acme/webhook?key="+secret, ct, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("webhook: %d %s", resp.StatusCode, b)
			}
			if got := route(t, url, secret, "380671234567"); got != `{"number":"boris_sip"}` {
				t.Fatalf("after the webhook: %s, want boris_sip", got)
			}
			if resp, err := http.Post(url+"/crm/acme/webhook?key=wrong", ct, bytes.NewReader(body)); err != nil || resp.StatusCode != 401 {
				t.Fatalf("webhook with a wrong key: %v %v", resp, err)
			}
		})
	}
}
