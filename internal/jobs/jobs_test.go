package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

func runner(ctx context.Context, st store.Store, cfg jobs.Config) (*jobs.Runner, error) {
	switch db := st.(type) {
	case *sqlite.DB:
		return jobs.NewSQLite(ctx, db.Writer(), cfg)
	case *postgres.DB:
		return jobs.NewPostgres(ctx, db.Pool(), cfg)
	}
	panic("unknown store")
}

// startRunner starts a runner on st and stops it when t ends.
func startRunner(t *testing.T, st store.Store, cfg jobs.Config) *jobs.Runner {
	t.Helper()
	ctx := context.Background()
	r, err := runner(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(sctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return r
}

// waitFor polls cond until it holds or the bound passes; River works on
// its own schedule, so a bounded wait is the only honest assertion.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// River runs the sync on both backends: the periodic job enqueues a cycle
// for every active integration, an unfinished full sync continues in the
// next job, and a change in the CRM arrives with a later tick.
func TestRiverSyncsActiveIntegrations(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel() // a store, a queue and clocks of its own; most of it waits on timers
			ctx := context.Background()
			st, engine, svc := syncWorld(t, b)
			for _, id := range []string{"acme", "idle"} {
				if _, err := svc.CreateTenant(ctx, "test", admin.NewTenant{ID: id, Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
					t.Fatal(err)
				}
			}
			fake := retailcrmfake.New(t)
			for i := 0; i < 250; i++ { // three pages of 100
				fake.Put(crm.Entity{Kind: domain.KindContact, ID: itoa(1000 + i), Phones: []string{"+38067" + pad7(i)}, OwnerID: "7", Open: true})
			}
			idleFake := retailcrmfake.New(t)
			idleFake.Put(crm.Entity{Kind: domain.KindContact, ID: "1", Phones: []string{"+380501112233"}, OwnerID: "7", Open: true})
			for id, f := range map[string]interface {
				URL() string
				Creds() json.RawMessage
			}{"acme": fake, "idle": idleFake} {
				if _, err := svc.PutIntegration(ctx, "test", id, admin.IntegrationInput{CRM: "retailcrm", BaseURL: f.URL(), Credentials: admin.SecretJSON(f.Creds())}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := svc.SetActive(ctx, "test", "idle", false, admin.ActivateInput{}); err != nil {
				t.Fatal(err)
			}

			startRunner(t, st, jobs.Config{Syncer: engine.Syncer, Store: st, Interval: time.Second, PagesPerJob: 1,
				PollInterval: 100 * time.Millisecond})

			waitFor(t, "full sync of 250 contacts, one page per job", 30*time.Second, func() bool {
				n, _ := st.CountIndex(ctx, "acme")
				in, _ := st.Integration(ctx, "acme")
				return n == 250 && in.Phase == store.PhaseIncremental
			})
			fake.Put(crm.Entity{Kind: domain.KindContact, ID: "5000", Phones: []string{"+380931234567"}, OwnerID: "8", Open: true})
			waitFor(t, "an incremental sync on a later tick", 15*time.Second, func() bool {
				rows, _ := st.LookupSuffix(ctx, "acme", "931234567")
				return len(rows) == 1 && rows[0].OwnerID == "8"
			})
			if n, _ := st.CountIndex(ctx, "idle"); n != 0 {
				t.Fatalf("an inactive integration was synced: %d rows", n)
			}
		})
	}
}

func itoa(i int) string { return pad(i, 0) }
func pad7(i int) string { return pad(i, 7) }

func pad(i, width int) string {
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	for len(s) < width || s == "" {
		s = "0" + s
	}
	return s
}

// syncWorld is a store of backend b with the sync engine (over a cache)
// and admin service the sync tests drive; the fake CRMs listen on loopback.
func syncWorld(t *testing.T, b storetest.Backend) (store.Store, *crmsync.Engine, *admin.Service) {
	t.Helper()
	st := b.Open(t)
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := tenant.NewRegistry(st)
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box,
		Deps: crm.Deps{Transport: crm.NewTransport(true)}})
	return st, engine, admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true))
}
