package crmsync_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// world is a tenant connected to a fake CRM: the engine, routing over the
// same cache and store, and the admin service that connected it.
type world struct {
	t      *testing.T
	st     store.Store
	engine *crmsync.Engine
	route  *lookup.Service
	reg    *tenant.Registry
	cache  *cache.Cache
	box    *secret.Box
	fake   crmtest.Fake
	// clock is the engine's: real time, moved on by Advance.
	clock *offsetClock
}

// rateScale speeds up every CRM's rate limit, the client's and the fake's
// meter alike, so that the limit still binds and is still checked while the
// tests do not wait out amoCRM's 7 or Uspacy's 5 requests per second.
const rateScale = 20

func newWorld(t *testing.T, st store.Store, crmName string, fake crmtest.Fake) *world {
	t.Helper()
	return newWorldAt(t, st, crmName, fake, fake.URL(), nil)
}

// newWorldAt is newWorld with the integration's base URL at baseURL (a
// crmtest.Proxy in front of the fake) and, when sleep is set, the CRM
// client's backoffs and Retry-After waits recorded instead of slept.
func newWorldAt(t *testing.T, st store.Store, crmName string, fake crmtest.Fake, baseURL string, sleep *crmtest.NoSleep) *world {
	t.Helper()
	ctx := context.Background()
	c, err := cache.New(cache.Config{MaxItems: 1 << 14, NegativeTTL: time.Minute})
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
	// The fakes listen on loopback; their meters and the client's limits
	// are raised alike (rateScale).
	deps := crm.Deps{Transport: crm.NewTransport(true), RateScale: rateScale}
	fake.ScaleRate(rateScale)
	if sleep != nil {
		deps.Sleep = sleep.Sleep
	}
	clk := &offsetClock{}
	// The CRM reads the engine's clock, so a test moves both past the
	// whole second CRMs stamp changes in instead of sleeping.
	fake.SetClock(clk.Now)
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box, Deps: deps, Now: clk.Now})
	svc := admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true))
	if _, err := svc.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA", LiveLookup: true, RouteBudgetMS: 2000}}); err != nil {
		t.Fatal(err)
	}
	for id, sip := range map[string]string{"501": "sip_anna", "502": "sip_boris", "503": "sip_olga"} {
		if _, err := svc.PutEmployee(ctx, "test", "acme", id, admin.EmployeeInput{SIP: sip}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.PutIntegration(ctx, "test", "acme", admin.IntegrationInput{CRM: crmName, BaseURL: baseURL, Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
		t.Fatalf("connect %s: %v", crmName, err)
	}
	return &world{t: t, st: st, engine: engine, route: lookup.New(c, st, time.Second).WithLive(engine.Live, 2*time.Second),
		reg: reg, cache: c, box: box, fake: fake, clock: clk}
}

func (w *world) sync() crmsync.Result {
	w.t.Helper()
	res, err := w.engine.Syncer.Sync(context.Background(), "acme", 0)
	if err != nil {
		w.t.Fatalf("sync: %v", err)
	}
	if !res.Done {
		w.t.Fatalf("sync did not finish: %+v", res)
	}
	return res
}

// target is where a call from caller goes now.
func (w *world) target(caller string) string {
	w.t.Helper()
	w.cache.Wait()
	return w.route.Route(context.Background(), w.reg.Lookup("acme"), []byte(caller), time.Now()).Target
}

func contact(id, phone, owner string) crm.Entity {
	return crm.Entity{Kind: domain.KindContact, ID: id, Name: "Client " + id, Phones: []string{phone}, OwnerID: owner, Open: true}
}

func TestSyncRoutesToTheCRMsResponsibleManager(t *testing.T) {
	for _, b := range storetest.Backends() {
		for _, f := range crmfakes.All() {
			t.Run(b.Name+"/"+f.CRM, func(t *testing.T) {
				t.Parallel()
				fake := f.New(t)
				fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Email: "anna@example.com", Active: true},
					{ID: "502", Name: "Boris", Email: "boris@example.com", Active: true},
					{ID: "503", Name: "Olga", Email: "olga@example.com", Active: true}})
				fake.Put(contact("1001", "067 111 22 33", "501"))     // national, no country code
				fake.Put(contact("1002", "+380 50 444 55 66", "502")) // international
				w := newWorld(t, b.Open(t), f.CRM, fake)

				// The first sync: full, then the phase moves to incremental.
				if res := w.sync(); res.Applied < 2 || res.Phase != store.PhaseIncremental {
					t.Fatalf("first sync: %+v", res)
				}
				if got := w.target("380671112233"); got != "sip_anna" {
					t.Fatalf("after the first sync: %q, want sip_anna", got)
				}
				if got := w.target("380504445566"); got != "sip_boris" {
					t.Fatalf("after the first sync: %q, want sip_boris", got)
				}

				// A responsible change and a deletion reach routing within one
				// incremental cycle, without a webhook, on every CRM.
				w.clock.Advance(1100 * time.Millisecond) // CRMs stamp changes in whole seconds
				fake.Put(contact("1001", "067 111 22 33", "502"))
				fake.Delete(crm.Ref{Kind: domain.KindContact, ID: "1002"})
				w.sync()
				if got := w.target("380671112233"); got != "sip_boris" {
					t.Fatalf("after a responsible change: %q, want sip_boris", got)
				}
				if got := w.target("380504445566"); got != "" {
					t.Fatalf("after a deletion: %q, want no forward", got)
				}

				// A webhook applies a change without a sync cycle.
				fake.Put(contact("1003", "+380 93 000 11 22", "503"))
				if ct, body, ok := fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "1003"}); ok {
					if err := w.engine.Live.Webhook(context.Background(), "acme", ct, body); err != nil {
						t.Fatalf("webhook: %v", err)
					}
					if got := w.target("380930001122"); got != "sip_olga" {
						t.Fatalf("after a webhook: %q, want sip_olga", got)
					}
				}

				// Live lookup: a phone the index does not have yet is found in
				// the CRM on the call itself.
				fake.Put(contact("1004", "+380 63 777 88 99", "501"))
				if got := w.target("380637778899"); got != "sip_anna" {
					t.Fatalf("live lookup: %q, want sip_anna", got)
				}

				users, err := w.engine.Conns.Users(context.Background(), "acme")
				if err != nil || len(users) != 3 {
					t.Fatalf("users: %v, %v", users, err)
				}

				// Revoked credentials break the integration with the CRM's text.
				fake.Revoke()
				fake.Put(contact("1005", "+380 66 000 00 01", "501"))
				w.clock.Advance(1100 * time.Millisecond)
				_, err = w.engine.Syncer.Sync(context.Background(), "acme", 0)
				if !crm.IsAuth(err) {
					t.Fatalf("sync with revoked credentials: %v, want an auth error", err)
				}
				in, err := w.st.Integration(context.Background(), "acme")
				if err != nil || in.State != store.IntegrationBroken || in.LastError == "" {
					t.Fatalf("integration after revocation: %+v, %v", in, err)
				}
				// A broken integration is left alone until an admin acts.
				if res, err := w.engine.Syncer.Sync(context.Background(), "acme", 0); err != nil || res.Pages != 0 {
					t.Fatalf("sync of a broken integration: %+v, %v", res, err)
				}
			})
		}
	}
}

func TestLiveLookupAgainstAHangingCRMAnswersWithinBudget(t *testing.T) {
	for _, f := range crmfakes.All() {
		t.Run(f.CRM, func(t *testing.T) {
			fake := f.New(t)
			w := newWorld(t, storetest.Backends()[0].Open(t), f.CRM, fake)
			w.sync()
			fake.SetDelay(-1) // every answer hangs
			if _, err := admin.New(w.st, w.reg, w.cache).PatchTenant(context.Background(), "test", "acme",
				admin.TenantPatch{SettingsPatch: admin.SettingsPatch{RouteBudgetMS: new(50), OnMiss: new("default_owner")}}); err != nil {
				t.Fatal(err)
			}
			res := w.route.Route(context.Background(), w.reg.Lookup("acme"), []byte("380671234000"), time.Now())
			if res.Reason != lookup.ReasonTimeout || res.Target != "" {
				t.Fatalf("route with a hanging CRM: %+v, want timeout", res)
			}
		})
	}
}

// Scheduled syncs of a CRM with a daily quota wait for its MinInterval
// (Zoho: 5 minutes); an explicit Sync and webhooks do not.
func TestSyncDueRespectsTheCRMsMinInterval(t *testing.T) {
	fake := zohofake.New(t)
	fake.Put(contact("1001", "067 111 22 33", "501"))
	w := newWorld(t, storetest.Backends()[0].Open(t), "zoho", fake)
	w.sync()
	before := fake.Meter().Count()
	res, err := w.engine.Syncer.SyncDue(context.Background(), "acme", 0)
	if err != nil || res.Pages != 0 || fake.Meter().Count() != before {
		t.Fatalf("SyncDue right after a sync: %+v, %v, %d requests; want nothing asked of Zoho", res, err, fake.Meter().Count()-before)
	}
	later := crmsync.New(crmsync.Config{Store: w.st, Cache: w.cache, Tenants: w.reg, Adapters: adapters.All(), Box: w.box,
		Now: func() time.Time { return time.Now().Add(6 * time.Minute) }, Deps: crm.Deps{Transport: crm.NewTransport(true)}})
	res, err = later.Syncer.SyncDue(context.Background(), "acme", 0)
	if err != nil || res.Pages == 0 || !res.Done {
		t.Fatalf("SyncDue after the interval: %+v, %v; want a cycle", res, err)
	}
}

// TestRetailCRMRegistersBeforeTheFirstWrite: a call event written right
// after retailCRM is connected, before any sync cycle, finds callrouter
// registered as the account's telephony integration; the first cycle then
// registers it again (issue 11, item 5).
func TestRetailCRMRegistersBeforeTheFirstWrite(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := retailcrmfake.New(t)
			f.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}})
			w := newWorld(t, b.Open(t), "retailcrm", f)
			ctx := context.Background()
			wr, err := w.engine.Calls.Writer(ctx, "acme")
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			if _, err := wr.CreateCall(ctx, crm.NewCall{Key: "k1", Answered: true, Phone: "380671234567", Start: time.Now(),
				Duration: time.Minute, UserID: "501"}); err != nil {
				t.Fatalf("a call right after connecting: %v", err)
			}
			if n := f.ModuleEdits("callrouter"); n != 1 {
				t.Fatalf("module registered %d times before the first sync, want 1", n)
			}
			if _, err := w.engine.Calls.Writer(ctx, "acme"); err != nil || f.ModuleEdits("callrouter") != 1 {
				t.Fatalf("a second writer registered again: %v, %d", err, f.ModuleEdits("callrouter"))
			}
			w.sync()
			if n := f.ModuleEdits("callrouter"); n != 2 {
				t.Fatalf("module registered %d times after the first full sync, want 2", n)
			}
			// A key that may not edit modules leaves events to retry, not fail.
			w.engine.Conns.Forget("acme")
			f.Deny("/api/v5/integration-modules/callrouter/edit")
			_, err = w.engine.Calls.Writer(ctx, "acme")
			if err == nil || crm.IsPermanent(err) || crm.IsAuth(err) {
				t.Fatalf("Writer with registration denied: %v, want a retryable error", err)
			}
		})
	}
}
