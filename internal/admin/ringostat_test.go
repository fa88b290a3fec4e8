package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/ringostat/ringostatfake"
	"github.com/callrouter/callrouter/internal/secret"
)

func TestRingostatConnect(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	box, err := secret.New(bytes.Repeat([]byte{7}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	fake := ringostatfake.New("the-key", "4242")
	t.Cleanup(fake.Close)
	var rsm *ringostat.Manager
	w := newWorld(t, st, 1, admin.WithCRMAllowPrivate(true), admin.WithRingostat(ringostatRef{&rsm}))
	rsm = ringostat.NewManager(ringostat.Config{Store: st, Box: box, Tenants: w.reg, HTTP: fake.Client(), Now: w.clock.Now})
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme", Settings: domain.Settings{Presence: "skip_offline"}}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		in    admin.RingostatInput
		field string
	}{
		{admin.RingostatInput{AuthKey: "k", ProjectID: "4242", BaseURL: "ftp://x"}, "base_url"},
		{admin.RingostatInput{ProjectID: "4242"}, "auth_key"},
		{admin.RingostatInput{AuthKey: "has space", ProjectID: "4242"}, "auth_key"},
		{admin.RingostatInput{AuthKey: "k", ProjectID: "12ab"}, "project_id"},
		{admin.RingostatInput{AuthKey: "k"}, "project_id"},
	} {
		_, err := w.svc.PutRingostat(ctx, "ops", "acme", tc.in)
		wantInvalid(t, err, tc.field)
	}
	// Without --crm-allow-private a loopback base URL is refused like a CRM's.
	guarded := newWorld(t, st, 1, admin.WithRingostat(ringostatRef{&rsm}))
	_, err = guarded.svc.PutRingostat(ctx, "ops", "acme", admin.RingostatInput{AuthKey: "k", ProjectID: "1", BaseURL: "http://127.0.0.1:9"})
	wantInvalid(t, err, "base_url")

	v, err := w.svc.PutRingostat(ctx, "ops", "acme", admin.RingostatInput{BaseURL: fake.URL, AuthKey: "the-key", ProjectID: "4242"})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != "active" || v.ProjectID != "4242" || v.BaseURL != fake.URL {
		t.Fatalf("after connecting: %+v", v)
	}
	shown, _ := json.Marshal(v)
	if strings.Contains(string(shown), "the-key") {
		t.Fatalf("the view shows the key: %s", shown)
	}
	stored, err := st.RingostatConn(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.AuthKey, []byte("the-key")) {
		t.Fatal("the key is stored in the clear")
	}
	if a := lastAudit(t, w); a.Action != "ringostat.put" || strings.Contains(a.Detail, "the-key") {
		t.Fatalf("audit: %+v", a)
	}

	// The key is revoked in the cabinet: the next poll marks the
	// connection broken and /status shows Ringostat's words.
	fake.SetKey("another")
	if err := rsm.PollPresence(ctx, "acme"); !ringostat.IsAuth(err) {
		t.Fatalf("poll: %v", err)
	}
	s, err := w.svc.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if s.Ringostat.State != "broken" || s.Ringostat.RingostatView == nil || s.Ringostat.LastError != "401 Invalid auth key" {
		t.Fatalf("status: %+v", s.Ringostat)
	}
	// A new key repairs it.
	fake.SetKey("fresh-key")
	if _, err := w.svc.PutRingostat(ctx, "ops", "acme", admin.RingostatInput{BaseURL: fake.URL, AuthKey: "fresh-key", ProjectID: "4242"}); err != nil {
		t.Fatal(err)
	}
	if err := rsm.PollPresence(ctx, "acme"); err != nil {
		t.Fatalf("poll with the new key: %v", err)
	}
	if s, _ := w.svc.Status(ctx, "acme"); s.Ringostat.State != "active" || !s.Ringostat.Presence.Fresh {
		t.Fatalf("status after repair: %+v", s.Ringostat)
	}

	if err := w.svc.DeleteRingostat(ctx, "ops", "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Ringostat(ctx, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("after disconnecting: %v", err)
	}
	if s, _ := w.svc.Status(ctx, "acme"); s.Ringostat.State != "not_configured" {
		t.Fatalf("status after disconnecting: %+v", s.Ringostat)
	}
	if err := w.svc.DeleteRingostat(ctx, "ops", "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("disconnecting twice: %v", err)
	}
}

// ringostatRef lets the service be built before the manager that needs its
// registry.
type ringostatRef struct{ m **ringostat.Manager }

func (r ringostatRef) Seal(id string, key []byte) []byte { return (*r.m).Seal(id, key) }
func (r ringostatRef) Changed(id string)                 { (*r.m).Changed(id) }
func (r ringostatRef) PresenceCounts(id string) (int, int, time.Time, bool) {
	return (*r.m).PresenceCounts(id)
}
