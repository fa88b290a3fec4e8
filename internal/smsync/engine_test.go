package smsync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/salesmanago/salesmanagofake"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

const (
	tenantID = "acme"
	boss     = "boss@acme.pl" // SALESmanago main user
	anna     = "anna@acme.pl" // a user of both systems
	kate     = "kate@acme.pl" // SALESmanago only
	piotr    = "piotr@acme.pl"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type world struct {
	t   *testing.T
	ctx context.Context
	st  store.Store
	sm  *salesmanagofake.Server
	zf  *zohofake.Server
	zp  zoho.People
	eng *smsync.Engine
	clk *clock
}

// newWorld connects tenant acme's SALESmanago (users boss, anna, kate) and
// Zoho CRM (users anna "zu-anna", piotr "zu-piotr", the default owner
// "zu-boss").
func newWorld(t *testing.T, b storetest.Backend) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), clk: &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}}
	w.st = b.OpenAt(t, w.clk.Now)
	w.sm = salesmanagofake.New(t, boss, anna, kate)
	w.sm.SetClock(w.clk.Now)
	w.zf = zohofake.New(t)
	w.zf.SetClock(w.clk.Now)
	w.zf.SetUsers([]crm.User{{ID: "zu-anna", Name: "Anna", Email: "Anna@acme.pl", Active: true},
		{ID: "zu-piotr", Name: "Piotr", Email: piotr, Active: true}, {ID: "zu-boss", Name: "Boss", Email: "zoho-boss@acme.pl", Active: true}})
	tok, _ := zoho.Seed(w.zf.Creds())
	src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: w.zf.URL(), Creds: w.zf.Creds()},
		crm.Deps{Tokens: crmtest.NewTokenStore(tok), Sleep: (&crmtest.NoSleep{}).Sleep, Now: w.clk.Now, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	w.zp = src.(zoho.People)
	w.eng = w.engine("test")
	tn := domain.Tenant{ID: tenantID, Name: "Acme", Settings: domain.DefaultSettings(), SecretHash: []byte("h"), DefaultOwner: "zu-boss"}
	tn.Settings.Timezone = "Europe/Warsaw"
	if err := w.st.CreateTenant(w.ctx, tn); err != nil {
		t.Fatal(err)
	}
	cfg := w.sm.Config(boss)
	if err := w.st.PutSM(w.ctx, store.SMConn{TenantID: tenantID, BaseURL: cfg.BaseURL, ClientID: cfg.ClientID, OwnerEmail: boss,
		Secrets: w.eng.Seal(tenantID, smsync.Secrets{APIKey: cfg.APIKey, APISecret: cfg.APISecret})}); err != nil {
		t.Fatal(err)
	}
	return w
}

// engine returns an engine on the world's store and accounts, as the
// instance named instance runs it.
func (w *world) engine(instance string) *smsync.Engine {
	w.t.Helper()
	box, err := secret.New(make([]byte, secret.KeySize))
	if err != nil {
		w.t.Fatal(err)
	}
	return smsync.New(smsync.Config{Store: w.st, Box: box, Transport: crm.NewTransport(true), Now: w.clk.Now,
		Sleep:     func(context.Context, time.Duration) error { return nil },
		Zoho:      func(context.Context, string) (zoho.People, error) { return w.zp, nil },
		PollEvery: time.Millisecond, Instance: instance})
}

func (w *world) run(kind string) smsync.Result {
	w.t.Helper()
	w.clk.Advance(time.Minute)
	res, err := w.eng.Run(w.ctx, tenantID, kind, time.Time{})
	if err != nil {
		w.t.Fatalf("%s pass: %v", kind, err)
	}
	return res
}

// quiet runs an incremental pass and checks it wrote nothing.
func (w *world) quiet(what string) {
	w.t.Helper()
	w.clk.Advance(10 * time.Minute)
	if res := w.run(smsync.KindIncremental); res.ToZoho != 0 || res.ToSM != 0 {
		w.t.Fatalf("%s: a pass after a sync wrote %d to Zoho, %d to SALESmanago (ping-pong)", what, res.ToZoho, res.ToSM)
	}
}

// zoho returns the Zoho lead or contact with the e-mail (contacts first).
func (w *world) zoho(email string) (zoho.Person, bool) {
	w.t.Helper()
	var found []zoho.Person
	for _, m := range []string{zoho.ModuleContacts, zoho.ModuleLeads} {
		for page := ""; ; {
			ps, next, err := w.zp.ListPeople(w.ctx, m, time.Time{}, page)
			if err != nil {
				w.t.Fatal(err)
			}
			for _, p := range ps {
				if strings.EqualFold(p.Email, email) {
					found = append(found, p)
				}
			}
			if next == "" {
				break
			}
			page = next
		}
	}
	if len(found) > 1 {
		w.t.Fatalf("zoho holds %d records of %s", len(found), email)
	}
	if len(found) == 0 {
		return zoho.Person{}, false
	}
	return found[0], true
}

func (w *world) smContact(email string) salesmanago.Contact {
	w.t.Helper()
	c, ok := w.sm.Contact(email)
	if !ok {
		w.t.Fatalf("salesmanago has no %s", email)
	}
	return c
}

func owner(id, email string) map[string]any {
	return map[string]any{"id": id, "name": id, "email": email}
}

func eachBackend(t *testing.T, f func(t *testing.T, w *world)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			f(t, newWorld(t, b))
		})
	}
}

func TestFirstSyncConverges(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600100200", State: "PROSPECT", Owner: anna,
			Company: "Nowak sp. z o.o.", Province: "mazowieckie", Address: salesmanago.Address{City: "Warszawa", ZipCode: "00-001"}})
		w.sm.Put(salesmanago.Contact{Email: "bartek@klient.pl", Name: "Bartek Wiśniewski", State: "CUSTOMER", Birthday: "19850315", Company: "Wiśnia"})
		w.zf.PutRecord("Leads", map[string]any{"Last_Name": "Zając", "First_Name": "Celina", "Email": "celina@klient.pl",
			"Company": "Zając", "Phone": "+48 22 111", "Owner": owner("zu-anna", "Anna@acme.pl")})
		w.zf.PutRecord("Contacts", map[string]any{"Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl",
			"Date_of_Birth": "1990-07-01", "Mailing_City": "Gdańsk", "Owner": owner("zu-anna", "Anna@acme.pl")})
		res := w.run(smsync.KindManual)
		if res.Kind != smsync.KindFull || res.Persons != 4 || res.ToZoho != 2 || res.ToSM != 2 {
			t.Fatalf("first sync = %+v", res)
		}
		ala, ok := w.zoho("ala@klient.pl")
		if !ok || ala.Module != zoho.ModuleLeads || ala.FirstName != "Ala" || ala.LastName != "Nowak" || ala.Phone != "+48600100200" ||
			ala.Company != "Nowak sp. z o.o." || ala.State != "mazowieckie" || ala.City != "Warszawa" || ala.OwnerID != "zu-anna" {
			t.Fatalf("ala in zoho = %+v", ala)
		}
		bartek, _ := w.zoho("bartek@klient.pl")
		if bartek.Module != zoho.ModuleContacts || bartek.Birthday != "1985-03-15" || bartek.Company != "Wiśnia" || bartek.AccountID == "" {
			t.Fatalf("bartek in zoho = %+v", bartek)
		}
		celina := w.smContact("celina@klient.pl")
		if celina.State != "PROSPECT" || celina.Name != "Celina Zając" || celina.Phone != "+48 22 111" || celina.Owner != anna {
			t.Fatalf("celina in salesmanago = %+v", celina)
		}
		darek := w.smContact("darek@klient.pl")
		if darek.State != "CUSTOMER" || darek.Birthday != "19900701" || darek.Address.City != "Gdańsk" {
			t.Fatalf("darek in salesmanago = %+v", darek)
		}
		c, err := w.st.SMConn(w.ctx, tenantID)
		if err != nil || !c.FullDone || c.ToZoho != 2 || c.ToSM != 2 || c.RunKind != smsync.KindFull || c.RunError != "" {
			t.Fatalf("connection after the first sync = %+v, %v", c, err)
		}
		if n, _ := w.st.CountSMLinks(w.ctx, tenantID); n != 4 {
			t.Fatalf("links = %d, want 4", n)
		}
		w.quiet("after the first sync")
		// A scheduled pass reads everything again and still writes nothing.
		if res := w.run(smsync.KindScheduled); res.Persons != 4 || res.ToZoho+res.ToSM != 0 {
			t.Fatalf("scheduled pass = %+v", res)
		}
	})
}

func TestEachDirection(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600100200", Owner: anna})
		w.zf.PutRecord("Contacts", map[string]any{"Last_Name": "Dąb", "First_Name": "Darek", "Email": "darek@klient.pl",
			"Owner": owner("zu-anna", "Anna@acme.pl")})
		w.run(smsync.KindFull)
		w.clk.Advance(time.Hour)
		// SALESmanago → Zoho.
		w.sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", Phone: "+48600999999", Fax: "+48221234", Owner: anna})
		if res := w.run(smsync.KindIncremental); res.ToZoho != 1 || res.ToSM != 0 {
			t.Fatalf("SALESmanago change = %+v", res)
		}
		if ala, _ := w.zoho("ala@klient.pl"); ala.Phone != "+48600999999" || ala.Fax != "+48221234" {
			t.Fatalf("ala in zoho = %+v", ala)
		}
		w.quiet("after a SALESmanago change")
		// Zoho → SALESmanago.
		d, _ := w.zoho("darek@klient.pl")
		if _, err := w.zp.UpsertPeople(w.ctx, zoho.ModuleContacts, []zoho.Person{{FirstName: "Darek", LastName: "Dąb",
			Email: "darek@klient.pl", City: "Sopot", Phone: "+48 58 000", OwnerID: d.OwnerID}}); err != nil {
			t.Fatal(err)
		}
		if res := w.run(smsync.KindIncremental); res.ToZoho != 0 || res.ToSM != 1 {
			t.Fatalf("Zoho change = %+v", res)
		}
		if darek := w.smContact("darek@klient.pl"); darek.Address.City != "Sopot" || darek.Phone != "+48 58 000" {
			t.Fatalf("darek in salesmanago = %+v", darek)
		}
		w.quiet("after a Zoho change")
	})
}

func TestStatusMovesTheRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", State: "PROSPECT", Company: "Nowak", Owner: anna})
		w.zf.PutRecord("Leads", map[string]any{"Last_Name": "Zając", "First_Name": "Celina", "Email": "celina@klient.pl",
			"Company": "Zając", "Owner": owner("zu-anna", "Anna@acme.pl")})
		w.run(smsync.KindFull)
		lead, _ := w.zoho("ala@klient.pl")
		w.clk.Advance(time.Hour)
		// A prospect becomes a customer in SALESmanago: the lead is converted.
		w.sm.Put(salesmanago.Contact{Email: "ala@klient.pl", Name: "Ala Nowak", State: "CUSTOMER", Company: "Nowak", Owner: anna})
		w.run(smsync.KindIncremental)
		ala, ok := w.zoho("ala@klient.pl")
		if !ok || ala.Module != zoho.ModuleContacts || ala.ID == lead.ID || ala.Company != "Nowak" {
			t.Fatalf("ala after becoming a customer = %+v (lead %s)", ala, lead.ID)
		}
		w.quiet("after a conversion in SALESmanago")
		// A lead converted in Zoho makes the SALESmanago contact a customer.
		celina, _ := w.zoho("celina@klient.pl")
		if _, err := w.zp.ConvertLead(w.ctx, celina.ID); err != nil {
			t.Fatal(err)
		}
		if res := w.run(smsync.KindIncremental); res.ToSM != 1 || res.ToZoho != 0 {
			t.Fatalf("conversion in Zoho = %+v", res)
		}
		if c := w.smContact("celina@klient.pl"); c.State != "CUSTOMER" {
			t.Fatalf("celina after the conversion = %+v", c)
		}
		w.quiet("after a conversion in Zoho")
	})
}

func TestOwnersMatchByEmailWithFallback(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "A Anna", Owner: anna})
		w.sm.Put(salesmanago.Contact{Email: "k@klient.pl", Name: "K Kate", Owner: kate}) // kate has no Zoho user
		w.zf.PutRecord("Leads", map[string]any{"Last_Name": "P", "Email": "p@klient.pl", "Company": "P", "Owner": owner("zu-piotr", piotr)})
		w.zf.PutRecord("Leads", map[string]any{"Last_Name": "Q", "Email": "q@klient.pl", "Company": "Q", "Owner": owner("zu-anna", "Anna@acme.pl")})
		w.run(smsync.KindFull)
		if a, _ := w.zoho("a@klient.pl"); a.OwnerID != "zu-anna" {
			t.Fatalf("matched owner: %+v", a)
		}
		if k, _ := w.zoho("k@klient.pl"); k.OwnerID != "zu-boss" {
			t.Fatalf("an owner without a Zoho user goes to the default owner: %+v", k)
		}
		if p := w.smContact("p@klient.pl"); p.Owner != boss {
			t.Fatalf("an owner without a SALESmanago user goes to owner_email: %+v", p)
		}
		if q := w.smContact("q@klient.pl"); q.Owner != anna {
			t.Fatalf("matched owner (e-mail case aside): %+v", q)
		}
		w.quiet("after owner fallbacks")
	})
}

func TestOptOutBothWays(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "A A", Owner: anna})
		w.zf.PutRecord("Contacts", map[string]any{"Last_Name": "B", "Email": "b@klient.pl", "Owner": owner("zu-anna", "Anna@acme.pl")})
		w.run(smsync.KindFull)
		w.clk.Advance(time.Hour)
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "A A", Owner: anna, OptedOut: true})
		w.run(smsync.KindIncremental)
		if a, _ := w.zoho("a@klient.pl"); !a.OptOut {
			t.Fatalf("opt-out in SALESmanago did not reach Zoho: %+v", a)
		}
		b, _ := w.zoho("b@klient.pl")
		if _, err := w.zp.UpsertPeople(w.ctx, zoho.ModuleContacts, []zoho.Person{{LastName: "B", Email: "b@klient.pl", OptOut: true, OwnerID: b.OwnerID}}); err != nil {
			t.Fatal(err)
		}
		w.run(smsync.KindIncremental)
		if c := w.smContact("b@klient.pl"); !c.OptedOut {
			t.Fatalf("Email_Opt_Out in Zoho did not reach SALESmanago: %+v", c)
		}
		w.quiet("after opt-outs")
		// And back in.
		w.clk.Advance(time.Hour)
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "A A", Owner: anna, OptedOut: false})
		w.run(smsync.KindIncremental)
		if a, _ := w.zoho("a@klient.pl"); a.OptOut {
			t.Fatalf("opt-in in SALESmanago did not reach Zoho: %+v", a)
		}
	})
}

func TestConflictLaterChangeWinsFieldByField(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "Ala Nowak", Phone: "+48 1", Owner: anna})
		w.run(smsync.KindFull)
		w.clk.Advance(time.Hour)
		// Zoho first: phone and fax; then SALESmanago: phone and city.
		if _, err := w.zp.UpsertPeople(w.ctx, zoho.ModuleLeads, []zoho.Person{{FirstName: "Ala", LastName: "Nowak",
			Email: "a@klient.pl", Company: "Ala Nowak", Phone: "+48 2 zoho", Fax: "+48 fax", OwnerID: "zu-anna"}}); err != nil {
			t.Fatal(err)
		}
		w.clk.Advance(time.Minute)
		w.sm.Put(salesmanago.Contact{Email: "a@klient.pl", Name: "Ala Nowak", Phone: "+48 3 sm", Owner: anna,
			Address: salesmanago.Address{City: "Łódź"}})
		res := w.run(smsync.KindIncremental)
		if res.Conflicts != 1 {
			t.Fatalf("conflicts = %d, want 1 (the phone)", res.Conflicts)
		}
		z, _ := w.zoho("a@klient.pl")
		s := w.smContact("a@klient.pl")
		if z.Phone != "+48 3 sm" || s.Phone != "+48 3 sm" || z.Fax != "+48 fax" || s.Fax != "+48 fax" || z.City != "Łódź" {
			t.Fatalf("after the conflict: zoho %+v, salesmanago %+v", z, s)
		}
		if c, _ := w.st.SMConn(w.ctx, tenantID); c.Conflicts != 1 {
			t.Fatalf("stored conflicts = %d", c.Conflicts)
		}
		w.quiet("after a conflict")
	})
}

func TestResumeAfterCrashMidBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		for i := range 150 {
			w.zf.PutRecord("Leads", map[string]any{"Last_Name": fmt.Sprintf("L%03d", i), "Email": fmt.Sprintf("l%03d@klient.pl", i),
				"Company": "C", "Owner": owner("zu-anna", "Anna@acme.pl")})
		}
		// The second chunk's SALESmanago upsert fails (the process dies, say).
		w.sm.FailAfter("/api/contact/batchupsertv2", 1)
		w.clk.Advance(time.Minute)
		if _, err := w.eng.Run(w.ctx, tenantID, smsync.KindManual, time.Time{}); err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("the pass should fail mid-way: %v", err)
		}
		c, _ := w.st.SMConn(w.ctx, tenantID)
		if c.FullDone || c.ToSM != 100 || !strings.Contains(c.RunError, "Service Unavailable") || len(w.sm.Contacts()) != 100 {
			t.Fatalf("after the crash: %+v, %d contacts", c, len(w.sm.Contacts()))
		}
		w.sm.FailAfter("/api/contact/batchupsertv2", -1)
		res := w.run(smsync.KindManual)
		if res.Kind != smsync.KindFull || res.ToSM != 50 || res.ToZoho != 0 {
			t.Fatalf("resumed pass = %+v: the first chunk must not be written again", res)
		}
		if n := len(w.sm.Contacts()); n != 150 || w.sm.Calls("/api/contact/batchupsertv2") != 2 {
			t.Fatalf("salesmanago holds %d contacts after %d upserts", n, w.sm.Calls("/api/contact/batchupsertv2"))
		}
		w.zoho("l149@klient.pl") // fails on a duplicate
		w.quiet("after resuming")
	})
}

func TestScheduleOnAnInjectedClock(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		warsaw, err := time.LoadLocation("Europe/Warsaw")
		if err != nil {
			t.Skip("no time zone data")
		}
		due := func() (string, time.Time) {
			c, err := w.st.SMConn(w.ctx, tenantID)
			if err != nil {
				t.Fatal(err)
			}
			return w.eng.Due(c, w.clk.Now(), warsaw)
		}
		if k, _ := due(); k != smsync.KindFull {
			t.Fatalf("before the first sync: %q", k)
		}
		w.run(smsync.KindFull) // 08:01 UTC = 09:01 in Warsaw: the 06:00 slot is not covered yet
		k, slot := due()
		if k != smsync.KindScheduled || !slot.Equal(time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)) {
			t.Fatalf("after the first sync: %q %s", k, slot)
		}
		if _, err := w.eng.Run(w.ctx, tenantID, k, slot); err != nil {
			t.Fatal(err)
		}
		if k, _ := due(); k != "" {
			t.Fatalf("right after the scheduled pass: %q", k)
		}
		w.clk.Advance(5 * time.Minute)
		if k, _ := due(); k != smsync.KindIncremental {
			t.Fatalf("5 minutes later: %q", k)
		}
		w.run(smsync.KindIncremental)
		// 11:00 UTC is 12:00 in Warsaw: the next slot.
		w.clk.Advance(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC).Sub(w.clk.Now()))
		if k, slot := due(); k != smsync.KindScheduled || !slot.Equal(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)) {
			t.Fatalf("at 12:00 Warsaw: %q %s", k, slot)
		}
		if err := w.st.SetSMState(w.ctx, tenantID, store.SMInactive, ""); err != nil {
			t.Fatal(err)
		}
		if k, _ := due(); k != "" {
			t.Fatalf("an inactive connection is never due: %q", k)
		}
		if _, err := w.eng.Run(w.ctx, tenantID, smsync.KindManual, time.Time{}); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("a pass of an inactive connection: %v", err)
		}
	})
}

func TestBrokenCredentials(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		c, _ := w.st.SMConn(w.ctx, tenantID)
		c.Secrets = w.eng.Seal(tenantID, smsync.Secrets{APIKey: salesmanagofake.APIKey, APISecret: "rotated"})
		if err := w.st.PutSM(w.ctx, c); err != nil {
			t.Fatal(err)
		}
		_, err := w.eng.Run(w.ctx, tenantID, smsync.KindManual, time.Time{})
		if !salesmanago.IsAuth(err) {
			t.Fatalf("run with a rotated secret: %v", err)
		}
		c, _ = w.st.SMConn(w.ctx, tenantID)
		if c.State != store.SMBroken || !strings.Contains(c.LastError, "Not authenticated") || strings.Contains(c.LastError, "rotated") {
			t.Fatalf("connection = %+v", c)
		}
	})
}

// TestPassReleasesItsLease: a finished pass, failed or not, lets the next
// one start at once on another instance, not after the lease's half hour;
// a pass under way keeps every other pass out, this instance's included.
func TestPassReleasesItsLease(t *testing.T) {
	eachBackend(t, func(t *testing.T, w *world) {
		other := w.engine("other")
		w.run(smsync.KindManual)
		if _, err := other.Run(w.ctx, tenantID, smsync.KindManual, time.Time{}); err != nil {
			t.Fatalf("another instance right after a pass: %v, want it to run", err)
		}
		w.sm.FailAfter("/api/contact/batchupsertv2", 0)
		w.zf.PutRecord("Leads", map[string]any{"Last_Name": "L", "Email": "l@klient.pl", "Company": "C", "Owner": owner("zu-anna", "Anna@acme.pl")})
		if _, err := other.Run(w.ctx, tenantID, smsync.KindManual, time.Time{}); err == nil {
			t.Fatal("the pass should fail on SALESmanago's 503")
		}
		w.sm.FailAfter("/api/contact/batchupsertv2", -1)
		w.run(smsync.KindManual) // after a failed pass too

		// A pass under way elsewhere holds the lease.
		if ok, err := w.st.LeaseSM(w.ctx, tenantID, "elsewhere/pass", time.Hour); err != nil || !ok {
			t.Fatalf("lease for a pass under way: %v %v", ok, err)
		}
		for _, e := range []*smsync.Engine{w.eng, other} {
			if _, err := e.Run(w.ctx, tenantID, smsync.KindManual, time.Time{}); !errors.Is(err, smsync.ErrBusy) {
				t.Fatalf("a pass while another holds the lease: %v, want ErrBusy", err)
			}
		}
	})
}
