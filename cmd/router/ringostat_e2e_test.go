package main

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/ringostat/ringostatfake"
)

// eventually polls cond every 100 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRingostatEndToEnd: a project connected through `router admin
// ringostat connect` gets the CRM's names in Smart Phone after connecting
// and after a CRM change; an offline owner's call goes to the default
// owner with reason owner_offline; a call present in the call log but
// never posted is applied to the CRM once, and posting it later does
// nothing more; a revoked key shows in /status.
func TestRingostatEndToEnd(t *testing.T) {
	t.Parallel()
	fake := retailcrmfake.New(t)
	fake.Put(crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Olena Petrenko", Phones: []string{"067 123 45 67"},
		OwnerID: "501", Open: true})
	rs := ringostatfake.New("rs-key", "4242")
	defer rs.Close()
	rs.SetPresence([]string{"olga_sip"}, nil)
	// A call the PBX never posted (its webhook was lost), inside the first
	// window's overlap.
	rs.AddCall(time.Now().Add(-5*time.Minute).UTC(), map[string]any{"uniqueid": "lost-1", "caller": "380509876543",
		"call_type": "in", "disposition": "ANSWERED", "billsec": 20, "duration": 25, "employee_number": "anna_sip"})

	cfg := testConfig(t)
	cfg.adminToken = "e2e-token"
	cfg.syncInterval = time.Second
	cfg.ringostatPoll, cfg.ringostatPush, cfg.ringostatReconcile = time.Second, time.Second, time.Second
	cfg.crmRateScale = rateScale
	fake.ScaleRate(rateScale)
	base, stop := startServe(t, cfg, io.Discard)
	defer stop()
	tok := cfg.adminToken
	secret := setupTenant(t, base, tok, "retailcrm", fake)
	adminCLI(t, base, tok, "set", "acme", "presence=skip_offline")
	if c := adminCLI(t, base, tok, "ringostat", "connect", "acme", "4242", "--key", "rs-key", "--base-url", rs.URL); c["state"] != "active" {
		t.Fatalf("ringostat connect: %v", c)
	}

	eventually(t, 30*time.Second, "the CRM's name pushed to Smart Phone", func() bool {
		c, ok := rs.Contact("1001")
		return ok && c.FullName == "Olena Petrenko" && c.Origin == "retailcrm"
	})
	fake.Put(crm.Entity{Kind: domain.KindContact, ID: "1001", Name: "Olena Petrenko-Shevchenko", Phones: []string{"067 123 45 67"},
		OwnerID: "501", Open: true})
	eventually(t, 30*time.Second, "the CRM's change pushed to Smart Phone", func() bool {
		c, _ := rs.Contact("1001")
		return c.FullName == "Olena Petrenko-Shevchenko"
	})

	// Anna owns the caller but is offline: Olga, the default owner, gets
	// the call.
	eventually(t, 30*time.Second, "presence polled", func() bool {
		p, _ := adminCLI(t, base, tok, "ringostat", "show", "acme")["presence"].(map[string]any)
		return p["fresh"] == true
	})
	resp, err := http.Get(base + "/pbx/acme/route?key=" + url.QueryEscape(secret) + "&caller=380671234567")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"number":"olga_sip"}` || resp.Header.Get("X-Route-Reason") != "owner_offline" {
		t.Fatalf("offline owner: %s reason %q", body, resp.Header.Get("X-Route-Reason"))
	}

	// The lost call is recovered and applied once; its late webhook is a
	// duplicate.
	calls := func() int {
		n := 0
		for _, c := range fake.Written().Calls {
			if c.Phone == "380509876543" {
				n++
			}
		}
		return n
	}
	eventually(t, 60*time.Second, "the lost call applied to the CRM", func() bool { return calls() == 1 })
	if rec := adminCLI(t, base, tok, "ringostat", "show", "acme")["reconcile"].(map[string]any); rec["recovered"].(float64) != 1 {
		t.Fatalf("reconcile: %v", rec)
	}
	total := func() float64 {
		ev := eventStats(t, base, tok)
		return ev["waiting"].(float64) + ev["done"].(float64) + ev["failed"].(float64) + ev["dropped"].(float64)
	}
	before := total()
	status, _ := postEvent(t, base, secret, "call_end", url.Values{"uniqueid": {"lost-1"}, "caller": {"380509876543"},
		"disposition": {"ANSWERED"}, "billsec": {"20"}, "employee_number": {"anna_sip"}})
	if status != 200 {
		t.Fatalf("late webhook: %d", status)
	}
	if after := total(); after != before {
		t.Fatalf("the late webhook was stored again: %v events, before %v", after, before)
	}
	if n := calls(); n != 1 {
		t.Fatalf("%d calls in the CRM for the recovered call, want 1", n)
	}

	// The key is revoked in the cabinet.
	rs.SetKey("revoked")
	eventually(t, 30*time.Second, "the broken key shown in /status", func() bool {
		r, _ := adminCLI(t, base, tok, "status", "acme")["ringostat"].(map[string]any)
		return r["state"] == "broken" && r["last_error"] == "401 Invalid auth key"
	})
}

// TestRingostatSettingsCLI: the presence and call-back settings travel as
// the admin API takes them (numbers as numbers).
func TestRingostatSettingsCLI(t *testing.T) {
	body, err := settingsBody([]string{"presence=skip_offline_and_busy", "on_unavailable=next", "auto_callback=true",
		"auto_callback_delay_seconds=90", "auto_callback_window_minutes=120"})
	if err != nil {
		t.Fatal(err)
	}
	if body["presence"] != "skip_offline_and_busy" || body["on_unavailable"] != "next" || body["auto_callback"] != true ||
		body["auto_callback_delay_seconds"] != 90 || body["auto_callback_window_minutes"] != 120 {
		t.Fatalf("settings body: %v", body)
	}
}
