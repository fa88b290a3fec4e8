package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// bus applies the announcements of one instance to another in process,
// as the PostgreSQL and SQLite buses do across processes.
type bus struct {
	to  notify.Local
	got []notify.Change
}

func (b *bus) Publish(ctx context.Context, changes ...notify.Change) error {
	for _, c := range changes {
		b.got = append(b.got, c)
		if err := b.to.Apply(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Deleting a tenant needs its id repeated, removes it with everything kept
// for it on both stores, keeps the audit entry, and drops it from the
// registry and the route cache of another instance on the same database.
func TestDeleteTenantEverywhere(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			// Instance B: its own registry and cache on the same store.
			regB := tenant.NewRegistry(st)
			cB, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cB.Close)
			peers := &bus{to: notify.Local{Tenants: regB, Cache: cB}}
			w := newWorld(t, st, 1, admin.WithPeers(peers))
			for _, id := range []string{"acme", "other"} {
				if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: id, Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.svc.PutEmployee(ctx, "ops", id, "101", admin.EmployeeInput{SIP: "anna_sip"}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.svc.Import(ctx, "ops", id, "csv", "", strings.NewReader("phone,owner_crm_user_id\n0671234567,101\n")); err != nil {
					t.Fatal(err)
				}
			}
			if regB.Lookup("acme") == nil {
				t.Fatal("instance B does not know acme")
			}
			cB.Fill(cB.Epoch(), "acme", "671234567", []cache.Row{{Phone: "380671234567", Kind: domain.KindContact, EntityID: "E", OwnerID: "101", Open: true}})
			cB.Wait()
			if _, ok := cB.Get("acme", []byte("671234567"), nil); !ok {
				t.Fatal("instance B's cache entry was not filled")
			}

			for _, confirm := range []string{"", "ACME", "other"} {
				wantInvalid(t, w.svc.DeleteTenant(ctx, "ops", "acme", confirm), "confirm")
			}
			if err := w.svc.DeleteTenant(ctx, "ops", "nobody", "nobody"); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("deleting an unknown tenant: %v", err)
			}
			if _, err := w.st.Tenant(ctx, "acme"); err != nil {
				t.Fatalf("a refused delete removed acme: %v", err)
			}
			peers.got = nil
			if err := w.svc.DeleteTenant(ctx, "ops", "acme", "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.st.Tenant(ctx, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("acme after the delete: %v", err)
			}
			if n, err := w.st.CountIndex(ctx, "acme"); err != nil || n != 0 {
				t.Fatalf("acme's index after the delete: %d %v", n, err)
			}
			if n, err := w.st.CountIndex(ctx, "other"); err != nil || n != 1 {
				t.Fatalf("other's index after acme's delete: %d %v", n, err)
			}
			if w.reg.Lookup("acme") != nil || w.reg.Lookup("other") == nil {
				t.Fatal("this instance's registry still has acme, or lost other")
			}
			if regB.Lookup("acme") != nil || regB.Lookup("other") == nil {
				t.Fatal("instance B's registry still has acme, or lost other")
			}
			if _, ok := cB.Get("acme", []byte("671234567"), nil); ok {
				t.Fatal("instance B still caches acme's rows")
			}
			if len(peers.got) != 2 || peers.got[0].Kind != notify.KindTenant || peers.got[0].Tenant != "acme" || peers.got[1].Kind != notify.KindFlush {
				t.Fatalf("announced %+v, want the tenant reload and a cache flush", peers.got)
			}
			a := lastAudit(t, w)
			if a.TenantID != "acme" || a.Action != "tenant.delete" || a.Actor != "ops" {
				t.Fatalf("last audit entry %+v, want ops's tenant.delete of acme", a)
			}
		})
	}
}
