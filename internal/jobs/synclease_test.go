package jobs_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// A sync lease held by an instance that died (it stopped renewing) keeps
// every other instance off the tenant's CRM until it runs out; then a
// survivor's job takes the sync over and finishes it, with no tick or
// River rescue needed, on both backends.
func TestSyncLeaseOfADeadHolderRunsOut(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel() // a store, a queue and clocks of its own; most of it waits on timers
			ctx := context.Background()
			st, engine, svc := syncWorld(t, b)
			if _, err := svc.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
				t.Fatal(err)
			}
			fake := retailcrmfake.New(t)
			for i := 0; i < 150; i++ {
				fake.Put(crm.Entity{Kind: domain.KindContact, ID: itoa(1000 + i), Phones: []string{"+38067" + pad7(i)}, OwnerID: "7", Open: true})
			}
			if _, err := svc.PutIntegration(ctx, "test", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: fake.URL(), Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
				t.Fatal(err)
			}
			const held = 3 * time.Second
			if ok, err := st.LeaseSync(ctx, "acme", "dead-instance/1", held); err != nil || !ok {
				t.Fatalf("take the dead holder's lease: %v %v", ok, err)
			}
			expires := time.Now().Add(held)

			startRunner(t, st, jobs.Config{Syncer: engine.Syncer, Store: st, Interval: time.Second, PagesPerJob: 1,
				PollInterval: 100 * time.Millisecond, Instance: "survivor", Leases: st, SyncLeaseTTL: time.Second, Log: zaptest.NewLogger(t)})

			// Ticks and snoozed jobs keep trying meanwhile; none may reach
			// the CRM while the lease holds.
			for time.Until(expires) > 300*time.Millisecond {
				if n := fake.Meter().Count(); n > 0 {
					t.Fatalf("%d CRM requests while another instance's lease held", n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			waitFor(t, "the survivor takes the sync over and finishes it", 30*time.Second, func() bool {
				n, _ := st.CountIndex(ctx, "acme")
				in, _ := st.Integration(ctx, "acme")
				return n == 150 && in.Phase == store.PhaseIncremental
			})
		})
	}
}
