package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// smSync is the SALESmanago sync as the admin service sees it: the real
// engine seals, SyncNow is counted.
type smSync struct {
	*smsync.Engine
	mu    sync.Mutex
	asked []string
}

func (s *smSync) SyncNow(_ context.Context, tenantID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, tenantID)
	return nil
}

func (s *smSync) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.asked)
}

const (
	smKey    = "sm-api-key-value"
	smSecret = "sm-api-secret-value"
)

// smInput is a valid connection, changed by change when not nil.
func smInput(change func(in *admin.SALESmanagoInput)) admin.SALESmanagoInput {
	in := admin.SALESmanagoInput{BaseURL: "https://app3.salesmanago.pl", ClientID: "client-1", APIKey: smKey,
		APISecret: smSecret, OwnerEmail: "Boss@Acme.pl"}
	if change != nil {
		change(&in)
	}
	return in
}

func wantConflict(t *testing.T, err error, field string) {
	t.Helper()
	if domain.ErrorCode(err) != domain.ECONFLICT || !strings.HasPrefix(domain.ErrorMessage(err), field+":") {
		t.Fatalf("err = %v, want conflict naming %s", err, field)
	}
}

// The SALESmanago connection's admin operations on both stores: a tenant
// without Zoho CRM is refused, each field is checked by name, the secrets
// are sealed and never shown or audited, activate/deactivate/sync/delete
// work and /status shows the connection.
func TestSALESmanagoConnect(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			box, err := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			sm := &smSync{Engine: smsync.New(smsync.Config{Store: st, Box: box})}
			w := newWorld(t, st, 1, admin.WithCRMAllowPrivate(true), admin.WithSALESmanago(sm))
			for _, id := range []string{"acme", "amo", "bare"} {
				if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			// No integration, then a CRM that is not Zoho: 409 naming the
			// integration, with a valid body.
			_, err = w.svc.PutSALESmanago(ctx, "ops", "bare", smInput(nil))
			wantConflict(t, err, "integration")
			if err := st.PutIntegration(ctx, store.Integration{TenantID: "amo", CRM: "amocrm", BaseURL: "https://x.amocrm.ru",
				State: store.IntegrationActive, Creds: []byte("sealed")}); err != nil {
				t.Fatal(err)
			}
			_, err = w.svc.PutSALESmanago(ctx, "ops", "amo", smInput(nil))
			wantConflict(t, err, "integration")
			if !strings.Contains(err.Error(), "amocrm") {
				t.Fatalf("the refusal does not name the CRM: %v", err)
			}
			if err := st.PutIntegration(ctx, store.Integration{TenantID: "acme", CRM: "zoho", BaseURL: "https://www.zohoapis.eu",
				State: store.IntegrationActive, Creds: []byte("sealed")}); err != nil {
				t.Fatal(err)
			}

			// (An unknown field is the transport's to refuse: httpapi's
			// TestAdminBodyDecodedBeforeTheService.)
			for _, tc := range []struct {
				change func(in *admin.SALESmanagoInput)
				field  string
			}{
				{func(in *admin.SALESmanagoInput) { in.BaseURL = "ftp://app3.salesmanago.pl" }, "base_url"},
				{func(in *admin.SALESmanagoInput) { in.BaseURL = "" }, "base_url"},
				{func(in *admin.SALESmanagoInput) { in.ClientID = " " }, "client_id"},
				{func(in *admin.SALESmanagoInput) { in.APIKey = "" }, "api_key"},
				{func(in *admin.SALESmanagoInput) { in.APISecret = "" }, "api_secret"},
				{func(in *admin.SALESmanagoInput) { in.OwnerEmail = "boss" }, "owner_email"},
			} {
				_, err := w.svc.PutSALESmanago(ctx, "ops", "acme", smInput(tc.change))
				wantInvalid(t, err, tc.field)
			}
			// Without --crm-allow-private a loopback base URL is refused like a CRM's.
			guarded := newWorld(t, st, 1, admin.WithSALESmanago(sm))
			_, err = guarded.svc.PutSALESmanago(ctx, "ops", "acme", smInput(func(in *admin.SALESmanagoInput) { in.BaseURL = "http://127.0.0.1:9" }))
			wantInvalid(t, err, "base_url")
			if _, err := w.svc.PutSALESmanago(ctx, "ops", "nobody", smInput(nil)); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("unknown tenant: %v", err)
			}
			if n := sm.count(); n != 0 {
				t.Fatalf("refused connections asked for %d passes", n)
			}

			v, err := w.svc.PutSALESmanago(ctx, "ops", "acme", smInput(nil))
			if err != nil {
				t.Fatal(err)
			}
			if v.State != store.SMActive || v.BaseURL != "https://app3.salesmanago.pl" || v.ClientID != "client-1" ||
				v.OwnerEmail != "boss@acme.pl" || v.Requested == nil || v.Progress.FirstSyncDone {
				t.Fatalf("after connecting: %+v", v)
			}
			if n := sm.count(); n != 1 {
				t.Fatalf("connecting asked for %d passes, want the first sync", n)
			}
			shown, _ := json.Marshal(v)
			c, err := st.SMConn(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			a := lastAudit(t, w)
			for what, s := range map[string]string{"the view": string(shown), "the stored secrets": string(c.Secrets), "the audit": a.Detail} {
				if strings.Contains(s, smKey) || strings.Contains(s, smSecret) {
					t.Fatalf("%s shows a secret: %s", what, s)
				}
			}
			if a.Action != "salesmanago.put" || !strings.Contains(a.Detail, "client-1") {
				t.Fatalf("audit: %+v", a)
			}
			// The sealed secrets open to what was sent: the engine can sign.
			if _, err := sm.Client(c); err != nil {
				t.Fatalf("the stored secrets do not open: %v", err)
			}

			// Paused: no pass on demand; activated: one.
			if v, err = w.svc.SetSALESmanagoActive(ctx, "ops", "acme", false); err != nil || v.State != store.SMInactive {
				t.Fatalf("deactivate: %+v %v", v, err)
			}
			_, err = w.svc.SyncSALESmanago(ctx, "ops", "acme")
			wantConflict(t, err, "state")
			if v, err = w.svc.SetSALESmanagoActive(ctx, "ops", "acme", true); err != nil || v.State != store.SMActive || sm.count() != 2 {
				t.Fatalf("activate: %+v %v, %d passes asked", v, err, sm.count())
			}
			// A broken connection shows SALESmanago's words until activated.
			if err := st.SetSMState(ctx, "acme", store.SMBroken, "salesmanago /api/user/listByClient: Not authenticated"); err != nil {
				t.Fatal(err)
			}
			s, err := w.svc.Status(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if s.SALESmanago.State != store.SMBroken || s.SALESmanago.SALESmanagoView == nil ||
				s.SALESmanago.LastError != "salesmanago /api/user/listByClient: Not authenticated" {
				t.Fatalf("status: %+v", s.SALESmanago)
			}
			if v, err = w.svc.SetSALESmanagoActive(ctx, "ops", "acme", true); err != nil || v.State != store.SMActive || v.LastError != "" {
				t.Fatalf("activate after broken: %+v %v", v, err)
			}
			if v, err = w.svc.SyncSALESmanago(ctx, "ops", "acme"); err != nil || v.Requested == nil || sm.count() != 4 {
				t.Fatalf("sync now: %+v %v, %d passes asked", v, err, sm.count())
			}
			if a := lastAudit(t, w); a.Action != "salesmanago.sync" {
				t.Fatalf("audit: %+v", a)
			}
			// Counts and progress as the store keeps them.
			if err := st.SaveSMProgress(ctx, "acme", store.SMProgress{Kind: smsync.KindFull, FullDone: true, ToZoho: 3, ToSM: 2,
				Conflicts: 1, Skipped: 4, Error: "zoho: 503"}); err != nil {
				t.Fatal(err)
			}
			if v, err = w.svc.SALESmanago(ctx, "acme"); err != nil || !v.Progress.FirstSyncDone || v.LastPass.Kind != smsync.KindFull ||
				v.LastPass.At == nil || v.LastPass.Error != "zoho: 503" ||
				v.Counts != (admin.SMCountsView{ToZoho: 3, ToSALESmanago: 2, Conflicts: 1, Skipped: 4}) {
				t.Fatalf("progress: %+v %v", v, err)
			}
			if s, _ := w.svc.Status(ctx, "bare"); s.SALESmanago.State != "not_configured" || s.SALESmanago.SALESmanagoView != nil {
				t.Fatalf("status without a connection: %+v", s.SALESmanago)
			}

			if err := w.svc.DeleteSALESmanago(ctx, "ops", "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.svc.SALESmanago(ctx, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("after disconnecting: %v", err)
			}
			if err := w.svc.DeleteSALESmanago(ctx, "ops", "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("disconnecting twice: %v", err)
			}
			if _, err := w.svc.SyncSALESmanago(ctx, "ops", "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("sync without a connection: %v", err)
			}
		})
	}
}
