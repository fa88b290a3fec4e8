package ringostat_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/ringostat/ringostatfake"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
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

type noEnqueue struct{}

func (noEnqueue) EnqueueTx(context.Context, any, []store.Partition) error { return nil }

type harness struct {
	t      testing.TB
	ctx    context.Context
	st     *sqlite.DB
	reg    *tenant.Registry
	fake   *ringostatfake.Server
	m      *ringostat.Manager
	ingest *events.Ingest
	clk    *clock
	cfg    ringostat.Config // m's, for a restarted manager
}

const (
	authKey = "rs-key-1"
	project = "4242"
)

func newHarness(t testing.TB, mut func(*domain.Settings), opts ...func(*ringostat.Config)) *harness {
	t.Helper()
	ctx := t.Context()
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t), sqlite.WithNow(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := domain.DefaultSettings()
	s.DefaultCountry = "UA"
	if mut != nil {
		mut(&s)
	}
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", Name: "Acme", Settings: s, DefaultOwner: "boss",
		SecretHash: tenant.HashSecret("k")}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []domain.Employee{{TenantID: "acme", CRMUserID: "anna", SIP: "sip_anna"},
		{TenantID: "acme", CRMUserID: "boss", SIP: "sip_boss"}} {
		if err := st.PutEmployee(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	fake := ringostatfake.New(authKey, project)
	t.Cleanup(fake.Close)
	ing := events.NewIngest(st, noEnqueue{}, clk.Now, 1)
	t.Cleanup(ing.Close)
	cfg := ringostat.Config{Store: st, Box: box, Tenants: reg, Ingest: ing, HTTP: fake.Client(),
		Now: clk.Now, Instance: "i1", PushBatch: 2, PushRate: 1e6}
	for _, o := range opts {
		o(&cfg)
	}
	m := ringostat.NewManager(cfg)
	h := &harness{t: t, ctx: ctx, st: st, reg: reg, fake: fake, m: m, ingest: ing, clk: clk, cfg: cfg}
	if err := st.PutRingostat(ctx, store.RingostatConn{TenantID: "acme", BaseURL: fake.URL, ProjectID: project,
		AuthKey: m.Seal("acme", []byte(authKey)), ReconciledUntil: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) conn() store.RingostatConn {
	h.t.Helper()
	c, err := h.st.RingostatConn(h.ctx, "acme")
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func row(kind domain.EntityKind, id, ph, owner, name string) domain.IndexEntry {
	return domain.IndexEntry{TenantID: "acme", Phone: ph, Suffix: phone.Suffix(ph), Kind: kind, EntityID: id, Open: true,
		OwnerID: owner, Name: name}
}

func (h *harness) index(rows ...domain.IndexEntry) {
	h.t.Helper()
	if err := h.st.UpsertIndex(h.ctx, rows); err != nil {
		h.t.Fatal(err)
	}
}

func TestPushAfterConnectAndAfterChange(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.st.PutIntegration(h.ctx, store.Integration{TenantID: "acme", CRM: "amocrm",
		BaseURL: "https://acme.amocrm.ru", Creds: []byte{1}, State: store.IntegrationActive}); err != nil {
		t.Fatal(err)
	}
	h.index(
		row(domain.KindContact, "C1", "380501111111", "anna", "Olena Petrenko"),
		row(domain.KindContact, "C1", "380671111111", "anna", "Olena Petrenko"),
		row(domain.KindContact, "C2", "380502222222", "boss", "Ivan Franko"),
		row(domain.KindLead, "L1", "380503333333", "anna", "Website lead"),
		row(domain.KindDeal, "D1", "380504444444", "boss", ""),
	)
	if err := h.m.Push(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	reqs, n := h.fake.Pushed()
	if n != 4 || reqs != 2 {
		t.Fatalf("full push: %d contacts in %d requests, want 4 in 2 (batches of 2)", n, reqs)
	}
	c1, ok := h.fake.Contact("C1")
	if !ok {
		t.Fatal("contact C1 not pushed")
	}
	if c1.FullName != "Olena Petrenko" || c1.Origin != "amocrm" || c1.Responsible != "anna" || c1.ProjectID != 4242 ||
		c1.ContactLink == nil || *c1.ContactLink != "https://acme.amocrm.ru/contacts/detail/C1" || len(c1.ContactDirections) != 2 ||
		c1.ContactDirections[1].Value != "380671111111" || c1.ContactDirections[0].Type != "phone" {
		t.Fatalf("contact C1 pushed as %+v", c1)
	}
	if l1, _ := h.fake.Contact("L1"); l1.LeadID == nil || l1.ExternalID != nil || l1.LeadLink == nil ||
		*l1.LeadLink != "https://acme.amocrm.ru/leads/detail/L1" {
		t.Fatalf("lead L1 pushed as %+v", l1)
	}
	if d1, _ := h.fake.Contact("D1"); d1.FullName != "+380504444444" || d1.DealLink == nil {
		t.Fatalf("a nameless deal is shown by its number with its link, got %+v", d1)
	}
	if c := h.conn(); !c.PushDone || c.Pushed != 4 || c.PushError != "" || c.PushCursor != "lead/L1" {
		t.Fatalf("push progress: done %t pushed %d error %q cursor %q", c.PushDone, c.Pushed, c.PushError, c.PushCursor)
	}

	// A CRM change: the sync re-indexes C2 under a new name and announces
	// its keys, which the tee hands to the next push.
	if _, err := h.st.ReplaceEntities(h.ctx, "acme", []store.EntityRef{{Kind: domain.KindContact, ID: "C2"}},
		[]domain.IndexEntry{row(domain.KindContact, "C2", "380502222222", "anna", "Ivan Franko (VIP)")}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Tee(nil).Publish(h.ctx, notify.Keys("acme", []string{phone.Suffix("380502222222")})); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Push(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if c2, _ := h.fake.Contact("C2"); c2.FullName != "Ivan Franko (VIP)" || c2.Responsible != "anna" {
		t.Fatalf("after the change C2 is %+v", c2)
	}
	if reqs, n := h.fake.Pushed(); reqs != 3 || n != 5 {
		t.Fatalf("the change pushed %d contacts in %d requests in all, want 1 more contact in 1 more request", n, reqs)
	}
	// Nothing queued: nothing sent.
	if err := h.m.Push(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if reqs, _ := h.fake.Pushed(); reqs != 3 {
		t.Fatalf("an idle push sent requests: %d", reqs)
	}
}

func TestPushResumesAndRecordsErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.index(
		row(domain.KindContact, "C1", "380501111111", "anna", "One"),
		row(domain.KindContact, "C2", "380502222222", "anna", "Two"),
		row(domain.KindContact, "C3", "380503333333", "anna", "Three"),
	)
	h.fake.Fail("/minicrm/contacts/sync", 503)
	if err := h.m.Push(h.ctx, "acme"); err == nil {
		t.Fatal("a refused push must fail")
	}
	if c := h.conn(); c.PushDone || c.PushError != "503 temporarily unavailable" || c.Pushed != 0 {
		t.Fatalf("after a refusal: done %t error %q pushed %d", c.PushDone, c.PushError, c.Pushed)
	}
	// A restart after the first batch: the position is stored, the next
	// push goes on from it.
	h.fake.Fail("/minicrm/contacts/sync", 0)
	if err := h.st.SaveRingostatPush(h.ctx, "acme", store.RingostatPush{Cursor: "contact/C2", Pushed: 2}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Push(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.fake.Contact("C1"); ok {
		t.Fatal("the resumed push sent C1 again")
	}
	if _, ok := h.fake.Contact("C3"); !ok {
		t.Fatal("the resumed push did not send C3")
	}
	if c := h.conn(); !c.PushDone || c.PushError != "" || c.Pushed != 3 {
		t.Fatalf("after resuming: done %t error %q pushed %d", c.PushDone, c.PushError, c.Pushed)
	}
}

func TestBrokenKeyShown(t *testing.T) {
	h := newHarness(t, func(s *domain.Settings) { s.Presence = domain.PresenceSkipOffline })
	h.fake.SetKey("rotated-in-the-cabinet")
	err := h.m.PollPresence(h.ctx, "acme")
	if !ringostat.IsAuth(err) {
		t.Fatalf("poll with a revoked key: %v, want an auth error", err)
	}
	c := h.conn()
	if c.State != store.RingostatBroken || c.LastError != "401 Invalid auth key" || c.ErrorAt.IsZero() {
		t.Fatalf("connection: state %q error %q at %s", c.State, c.LastError, c.ErrorAt)
	}
	if strings.Contains(c.LastError, authKey) {
		t.Fatal("the key leaked into the error")
	}
	// A broken connection is left alone until an admin puts a new key.
	before := h.fake.Requests("/minicrm/contacts/sync") + h.fake.Requests("/calls/list")
	h.index(row(domain.KindContact, "C1", "380501111111", "anna", "One"))
	if err := h.m.Push(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Reconcile(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if after := h.fake.Requests("/minicrm/contacts/sync") + h.fake.Requests("/calls/list"); after != before {
		t.Fatalf("a broken connection still called Ringostat: %d requests", after-before)
	}
}

func TestPresenceRouting(t *testing.T) {
	h := newHarness(t, func(s *domain.Settings) { s.Presence = domain.PresenceSkipOfflineAndBusy })
	h.fake.SetPresence([]string{"sip_boss"}, nil)
	if err := h.m.PollPresence(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1000, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	num := "380671234567"
	c.Fill(c.Epoch(), "acme", phone.Suffix(num), lookup.Rows([]domain.IndexEntry{row(domain.KindLead, "L1", num, "anna", "")}))
	c.Wait()
	svc := lookup.New(c, nil, time.Second).WithPresence(h.m.Presence())
	tc := h.reg.Lookup("acme")
	calls := h.fake.Requests("/sipstatus/online") + h.fake.Requests("/sipstatus/speaking")
	route := func() lookup.Result { return svc.Route(context.Background(), tc, []byte(num), h.clk.Now()) }

	if r := route(); r.Target != "sip_boss" || r.Reason != lookup.ReasonOwnerOffline {
		t.Fatalf("offline owner: %q/%s, want sip_boss/owner_offline", r.Target, r.Reason)
	}
	if n := testing.AllocsPerRun(100, func() { route() }); n != 0 {
		t.Fatalf("a presence-checked hit allocates %.1f times", n)
	}
	if after := h.fake.Requests("/sipstatus/online") + h.fake.Requests("/sipstatus/speaking"); after != calls {
		t.Fatal("the route path called Ringostat")
	}
	// Anna comes online, then answers a call: busy until it ends.
	h.fake.SetPresence([]string{"sip_anna", "sip_boss"}, nil)
	if err := h.m.PollPresence(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if r := route(); r.Target != "sip_anna" || r.Reason != lookup.ReasonOwner {
		t.Fatalf("online owner: %q/%s", r.Target, r.Reason)
	}
	h.m.Presence().Observe("acme", domain.EventCallAnswered, map[string]string{"employee_number": "sip_anna"})
	if r := route(); r.Target != "sip_boss" || r.Reason != lookup.ReasonOwnerBusy {
		t.Fatalf("owner in a call: %q/%s, want sip_boss/owner_busy", r.Target, r.Reason)
	}
	h.m.Presence().Observe("acme", domain.EventCallEnd, map[string]string{"employee_number": "sip_anna"})
	if r := route(); r.Target != "sip_anna" {
		t.Fatalf("owner after the call: %q/%s", r.Target, r.Reason)
	}
	// Polls failing for longer than the limit: presence is ignored.
	h.fake.SetPresence([]string{"sip_boss"}, nil)
	if err := h.m.PollPresence(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	h.fake.Fail("/sipstatus/online", 500)
	h.clk.Advance(ringostat.StaleFactor*ringostat.DefaultPollInterval + time.Second)
	if err := h.m.PollPresence(h.ctx, "acme"); err == nil {
		t.Fatal("a failing poll must report its error")
	}
	if r := route(); r.Target != "sip_anna" || r.Reason != lookup.ReasonOwner {
		t.Fatalf("stale presence: %q/%s, want the owner", r.Target, r.Reason)
	}
}

func TestReconcileRecoversLostCallOnce(t *testing.T) {
	h := newHarness(t, nil)
	tc := h.reg.Lookup("acme")
	kyiv := time.FixedZone("EET", 2*3600)
	base := h.clk.Now()
	// u2's webhook arrived; u1's never did; u3 is still going on.
	if _, _, err := h.ingest.StoreNew(h.ctx, tc, events.Incoming{Kind: domain.EventCallEnd, UniqueID: "u2",
		Fields: map[string]string{"event": "call_end", "uniqueid": "u2", "caller": "380501111111"}}); err != nil {
		t.Fatal(err)
	}
	h.fake.AddCall(base.Add(-5*time.Minute).In(kyiv), map[string]any{"uniqueid": "u1", "caller": "380671234567",
		"dst": "380443334455", "call_type": "in", "disposition": "NO ANSWER", "billsec": 0, "duration": 30})
	h.fake.AddCall(base.Add(-4*time.Minute), map[string]any{"uniqueid": "u2", "caller": "380501111111",
		"call_type": "in", "disposition": "ANSWERED", "billsec": 40, "duration": 50})
	h.fake.AddCall(base.Add(3*time.Minute), map[string]any{"uniqueid": "u3", "caller": "380502222222",
		"call_type": "out", "disposition": "IN PROGRESS", "billsec": 0})
	h.clk.Advance(ringostat.DefaultReconcileLag + 10*time.Minute)

	n, err := h.m.Reconcile(h.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("recovered %d calls, want 1 (u1)", n)
	}
	// The late webhook of u1 finds the recovered event and does nothing.
	id, created, err := h.ingest.StoreNew(h.ctx, tc, events.Incoming{Kind: domain.EventCallEnd, UniqueID: "u1",
		Fields: map[string]string{"event": "call_end", "uniqueid": "u1"}})
	if err != nil || created {
		t.Fatalf("late webhook of a recovered call: created %t, err %v", created, err)
	}
	ev, err := h.st.Event(h.ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Fields[ringostat.RecoveredField] != "calls_list" || ev.Fields["disposition"] != "NO ANSWER" ||
		ev.Fields["billsec"] != "0" || ev.Fields["calldate"] != base.Add(-5*time.Minute).In(kyiv).Format(time.RFC3339) ||
		ev.Fields["caller"] != "380671234567" {
		t.Fatalf("recovered event fields: %v", ev.Fields)
	}
	c := h.conn()
	if c.Recovered != 1 || !c.ReconciledUntil.Equal(base.Add(3*time.Minute)) {
		t.Fatalf("progress: recovered %d until %s (the unfinished u3 must hold it at %s)", c.Recovered, c.ReconciledUntil,
			base.Add(3*time.Minute))
	}
	// The next pass reads the overlap again and recovers nothing more; u3,
	// now finished, is recovered as the outgoing call it is.
	h.fake.AddCall(base.Add(3*time.Minute), map[string]any{"uniqueid": "u3", "caller": "380502222222",
		"call_type": "out", "disposition": "ANSWERED", "billsec": 12})
	h.clk.Advance(ringostat.DefaultReconcileInterval)
	n, err = h.m.Reconcile(h.ctx, "acme")
	if err != nil || n != 1 {
		t.Fatalf("second pass recovered %d (%v), want 1 (u3 finished)", n, err)
	}
	if _, created, _ := h.ingest.StoreNew(h.ctx, tc, events.Incoming{Kind: domain.EventOutgoingEnd, UniqueID: "u3",
		Fields: map[string]string{"event": "outgoing_end"}}); created {
		t.Fatal("u3 was not recovered as outgoing_end")
	}
	if n, err := h.m.Reconcile(h.ctx, "acme"); err != nil || n != 0 {
		t.Fatalf("third pass recovered %d (%v), want 0", n, err)
	}
}

func TestReconcileSplitsLargeWindows(t *testing.T) {
	h := newHarness(t, nil, func(c *ringostat.Config) { c.MaxCalls = 3 })
	h.fake.SetMaxCalls(3)
	base := h.clk.Now()
	for i := range 7 {
		h.fake.AddCall(base.Add(-time.Duration(10-i)*time.Minute), map[string]any{"uniqueid": "s" + string(rune('a'+i)),
			"caller": "38050111111" + string(rune('0'+i)), "call_type": "in", "disposition": "ANSWERED", "billsec": 5})
	}
	h.clk.Advance(ringostat.DefaultReconcileLag)
	n, err := h.m.Reconcile(h.ctx, "acme")
	if err != nil || n != 7 {
		t.Fatalf("recovered %d (%v), want all 7 through split windows", n, err)
	}
	if r := h.fake.Requests("/calls/list"); r < 3 {
		t.Fatalf("%d call-log requests: the window was not split", r)
	}
}
