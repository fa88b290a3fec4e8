package jobs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/salesmanago/salesmanagofake"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

type smClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *smClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *smClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// River runs the SALESmanago sync on both backends: the tick starts the
// first sync of a new connection, runs the 00/06/12/18 pass of the
// tenant's zone when the (injected) clock reaches it and an incremental
// pass once the interval has passed; "sync now" runs a manual pass.
func TestRiverRunsSALESmanagoPasses(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel() // a store, a queue and clocks of its own; most of it waits on timers
			ctx := context.Background()
			warsaw, err := time.LoadLocation("Europe/Warsaw")
			if err != nil {
				t.Fatal(err)
			}
			clk := &smClock{t: time.Date(2026, 12, 1, 8, 9, 0, 0, time.UTC)}
			st := b.OpenAt(t, clk.Now)
			sm := salesmanagofake.New(t, "boss@acme.pl")
			sm.SetClock(clk.Now)
			zf := zohofake.New(t)
			zf.SetClock(clk.Now)
			zf.SetUsers([]crm.User{{ID: "zu-boss", Name: "Boss", Email: "boss@acme.pl", Active: true}})
			tok, _ := zoho.Seed(zf.Creds())
			src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: zf.URL(), Creds: zf.Creds()},
				crm.Deps{Tokens: crmtest.NewTokenStore(tok), Sleep: (&crmtest.NoSleep{}).Sleep, Now: clk.Now, Transport: crm.NewTransport(true)})
			if err != nil {
				t.Fatal(err)
			}
			box, err := secret.New(make([]byte, secret.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			eng := smsync.New(smsync.Config{Store: st, Box: box, Transport: crm.NewTransport(true), Now: clk.Now,
				Sleep: func(context.Context, time.Duration) error { return nil }, PollEvery: time.Millisecond, Instance: "test",
				Zoho: func(context.Context, string) (zoho.People, error) { return src.(zoho.People), nil }})
			tn := domain.Tenant{ID: "acme", Name: "Acme", Settings: domain.DefaultSettings(), SecretHash: []byte("h"), DefaultOwner: "zu-boss"}
			tn.Settings.Timezone = "Europe/Warsaw"
			if err := st.CreateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
			cfg := sm.Config("boss@acme.pl")
			if err := st.PutSM(ctx, store.SMConn{TenantID: "acme", BaseURL: cfg.BaseURL, ClientID: cfg.ClientID, OwnerEmail: cfg.Owner,
				Secrets: eng.Seal("acme", smsync.Secrets{APIKey: cfg.APIKey, APISecret: cfg.APISecret})}); err != nil {
				t.Fatal(err)
			}
			sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600100200", State: salesmanago.StateProspect})
			darek := zf.PutRecord("Contacts", map[string]any{"Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl",
				"Owner": map[string]any{"id": "zu-boss", "name": "Boss", "email": "boss@acme.pl"}})
			// 09:10 in Warsaw: the 06:00 slot is the latest.
			clk.Set(time.Date(2026, 12, 1, 8, 10, 0, 0, time.UTC))

			r := startRunner(t, st, jobs.Config{Store: st, PollInterval: 100 * time.Millisecond, SALESmanago: eng, SMStore: st,
				SMTick: 200 * time.Millisecond, SMRetry: 5 * time.Minute, Now: clk.Now})
			conn := func() store.SMConn {
				c, err := st.SMConn(ctx, "acme")
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			waitFor(t, "the first sync, then the 06:00 pass", 30*time.Second, func() bool {
				c := conn()
				_, inSM := sm.Contact("darek@klient.pl")
				return c.FullDone && inSM && c.LastSlot.Equal(smsync.Slot(clk.Now(), warsaw)) && c.RunError == ""
			})
			if c := conn(); c.ToZoho != 1 || c.ToSM != 1 {
				t.Fatalf("after the first sync: %+v", c)
			}

			// 12:00 in Warsaw: the scheduled pass.
			clk.Set(time.Date(2026, 12, 1, 11, 0, 30, 0, time.UTC))
			waitFor(t, "the 12:00 pass", 15*time.Second, func() bool {
				c := conn()
				return c.RunKind == smsync.KindScheduled && c.LastSlot.Equal(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC))
			})

			// A change in SALESmanago arrives with the incremental pass once
			// the interval (5 min) has passed.
			clk.Set(time.Date(2026, 12, 1, 11, 2, 0, 0, time.UTC))
			sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600999999", State: salesmanago.StateProspect})
			clk.Set(time.Date(2026, 12, 1, 11, 6, 0, 0, time.UTC))
			waitFor(t, "the incremental pass", 15*time.Second, func() bool {
				return conn().RunKind == smsync.KindIncremental && conn().ToZoho == 2
			})

			// Nothing is due: "sync now" runs a manual pass all the same.
			if err := r.SyncSALESmanago(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the manual pass", 15*time.Second, func() bool { return conn().RunKind == smsync.KindManual })

			// Zoho announces a change (its notification reached the CRM
			// webhook): the nudge runs a pass although none is due, and the
			// change is in SALESmanago minutes before the next incremental
			// pass.
			clk.Set(time.Date(2026, 12, 1, 11, 7, 0, 0, time.UTC))
			zf.PutRecord("Contacts", map[string]any{"id": darek, "Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl",
				"Phone": "+48600300400", "Owner": map[string]any{"id": "zu-boss", "name": "Boss", "email": "boss@acme.pl"}})
			if err := r.NudgeSALESmanago(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "Zoho's change in SALESmanago after the nudge", 15*time.Second, func() bool {
				d, _ := sm.Contact("darek@klient.pl")
				return d.Phone == "+48600300400"
			})
			// A tenant without a connection is no error and no pass.
			if err := r.NudgeSALESmanago(ctx, "nobody"); err != nil {
				t.Fatalf("nudge of a tenant without SALESmanago: %v", err)
			}
		})
	}
}
