package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// startServeLogged is startServe with the server's log kept for the test.
func startServeLogged(t *testing.T, cfg serveConfig) (string, *observer.ObservedLogs, func() error) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, zap.New(core), io.Discard, addr) }()
	select {
	case a := <-addr:
		return "http://" + a, logs, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start listening")
	}
	return "", nil, nil
}

// apiError is an error answer's body.
type apiError struct {
	Error struct{ Code, Message string }
}

// TestFullDiskUnderSQLite: the SQLite file cannot grow (a full disk; here
// max_page_count on the store's one writer connection). Call events are
// answered 503 saying the database or disk is full, never 200 unless
// stored; an admin change is answered 503 saying the same; routing from
// the cache goes on; the log names the problem; and once space is back
// the same server stores again.
func TestFullDiskUnderSQLite(t *testing.T) {
	cfg := testConfig(t)
	cfg.adminToken = "full-disk-token"
	var db *sqlite.DB
	cfg.opened = func(st store.Store) { db = st.(*sqlite.DB) }
	base, logs, stop := startServeLogged(t, cfg)
	defer stop()
	secret := adminCLI(t, base, cfg.adminToken, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
	adminCLI(t, base, cfg.adminToken, "put-employee", "acme", "501", "--sip", "anna_sip")
	contacts := filepath.Join(t.TempDir(), "contacts.csv")
	if err := os.WriteFile(contacts, []byte("phone,owner_crm_user_id\n+380671112233,501\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminCLI(t, base, cfg.adminToken, "import", "acme", contacts)
	if got := route(t, base, secret, "380671112233"); got != `{"number":"anna_sip"}` {
		t.Fatalf("route before: %s", got)
	}

	// The disk fills up.
	if _, err := db.Writer().ExecContext(context.Background(), `PRAGMA max_page_count = 1`); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{} // uniqueid → id
	refused := 0
	for i := 0; i < 300 && refused < 5; i++ {
		uid := fmt.Sprintf("1700000000.%d", i)
		status, body := postEvent(t, base, secret, "call_end", url.Values{"uniqueid": {uid}, "caller": {"380501234567"},
			"disposition": {"NO ANSWER"}, "note": {strings.Repeat("x", 500)}})
		switch status {
		case http.StatusOK:
			var ack struct{ ID string }
			if err := json.Unmarshal([]byte(body), &ack); err != nil || ack.ID == "" {
				t.Fatalf("event %s: 200 %s", uid, body)
			}
			acked[uid] = ack.ID
		case http.StatusServiceUnavailable:
			var e apiError
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "unavailable" ||
				!strings.Contains(e.Error.Message, "database or disk is full") || strings.Contains(body, `"id"`) {
				t.Fatalf("event %s on a full disk: 503 %s, want unavailable saying the database or disk is full", uid, body)
			}
			refused++
		default:
			t.Fatalf("event %s on a full disk: %d %s", uid, status, body)
		}
	}
	if refused == 0 {
		t.Fatalf("300 events stored on a full disk: the disk never filled")
	}

	// An admin change that needs space.
	var csv strings.Builder
	csv.WriteString("phone,owner_crm_user_id\n")
	for i := range 400 {
		fmt.Fprintf(&csv, "+38050%07d,501\n", i)
	}
	req, _ := http.NewRequest("POST", base+"/admin/v1/tenants/acme/contacts/import?format=csv", strings.NewReader(csv.String()))
	req.Header.Set("Authorization", "Bearer "+cfg.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ae apiError
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(b, &ae) != nil || !strings.Contains(ae.Error.Message, "database or disk is full") {
		t.Fatalf("an import on a full disk: %d %s, want 503 saying the database or disk is full", resp.StatusCode, b)
	}

	// Routing goes on from the cache.
	if got := route(t, base, secret, "380671112233"); got != `{"number":"anna_sip"}` {
		t.Fatalf("route on a full disk: %s", got)
	}
	// The log says what is wrong.
	if n := logs.FilterFieldKey("error").Filter(func(e observer.LoggedEntry) bool {
		err, _ := e.ContextMap()["error"].(string)
		return e.Level == zapcore.ErrorLevel && strings.Contains(err, "database or disk is full")
	}).Len(); n < refused+1 {
		t.Fatalf("%d error log lines say the database or disk is full, want one per refused event and the import (%d)", n, refused+1)
	}

	// Space is back: the same server stores again, and every event
	// acknowledged while the disk filled is there.
	if _, err := db.Writer().ExecContext(context.Background(), `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if status, body := postEvent(t, base, secret, "call_end", url.Values{"uniqueid": {"1700000001.1"}, "caller": {"380501234567"}}); status != 200 {
		t.Fatalf("an event once space is back: %d %s", status, body)
	}
	for uid, id := range acked {
		if ev := adminCLI(t, base, cfg.adminToken, "event", "acme", id); ev["uniqueid"] != uid {
			t.Fatalf("acknowledged event %s (%s): %v", uid, id, ev)
		}
	}
	t.Logf("full disk: %d events stored and acknowledged, %d answered 503, 0 lost", len(acked), refused)
}
