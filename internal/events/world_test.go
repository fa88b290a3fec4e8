package events_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// fakeCRM is a fake CRM account that also shows what call events wrote.
type fakeCRM = crmfakes.Fake

// Employees of the test tenant: Anna and Boris are mapped, Olga is the
// default owner.
const (
	anna  = "501"
	boris = "502"
	olga  = "503"
)

// world is a tenant connected to a fake CRM with call events processed by
// hand (Drain), so each step can be checked.
type world struct {
	t       *testing.T
	st      store.Store
	engine  *crmsync.Engine
	reg     *tenant.Registry
	cache   *cache.Cache
	admin   *admin.Service
	ingest  *events.Ingest
	proc    *events.Processor
	route   *lookup.Service
	fake    fakeCRM
	queue   *queue
	clock   *clock
	crmSide events.CRM
}

// queue is an Enqueuer that records the partitions to drain.
type queue struct {
	mu    sync.Mutex
	parts []store.Partition
}

func (q *queue) EnqueueTx(_ context.Context, tx any, parts []store.Partition) error {
	if tx == nil {
		panic("enqueue outside the event's transaction")
	}
	for _, p := range parts {
		q.Enqueue(context.Background(), p)
	}
	return nil
}

func (q *queue) Enqueue(_ context.Context, p store.Partition) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.parts = append(q.parts, p)
	return nil
}

func (q *queue) take() []store.Partition {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.parts
	q.parts = nil
	return p
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// rateScale speeds up every CRM's rate limit, the client's and the fake's
// meter alike, so that the limit still binds and is still checked while the
// tests do not wait out amoCRM's 7 or Uspacy's 5 requests per second.
const rateScale = 20

func newWorld(t *testing.T, st store.Store, crmName string, fake fakeCRM, settings domain.Settings) *world {
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
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box,
		Deps: crm.Deps{Sleep: (&crmtest.NoSleep{}).Sleep, Transport: crm.NewTransport(true), RateScale: rateScale}})
	fake.ScaleRate(rateScale)
	clk := &clock{t: time.Now()}
	q := &queue{}
	svc := admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true), admin.WithEvents(events.NewReplay(st, q.Enqueue, clk.Now)))
	settings.DefaultCountry = "UA"
	if _, err := svc.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: settings}); err != nil {
		t.Fatal(err)
	}
	for id, sip := range map[string]string{anna: "sip_anna", boris: "sip_boris", olga: "sip_olga"} {
		if _, err := svc.PutEmployee(ctx, "test", "acme", id, admin.EmployeeInput{SIP: sip}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.SetDefaultOwner(ctx, "test", "acme", admin.DefaultOwnerInput{CRMUserID: new(olga)}); err != nil {
		t.Fatal(err)
	}
	fake.SetUsers([]crm.User{{ID: anna, Name: "Anna", Active: true}, {ID: boris, Name: "Boris", Active: true},
		{ID: olga, Name: "Olga", Active: true}})
	if _, err := svc.PutIntegration(ctx, "test", "acme", admin.IntegrationInput{CRM: crmName, BaseURL: fake.URL(), Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
		t.Fatalf("connect %s: %v", crmName, err)
	}
	if _, err := svc.SetActive(ctx, "test", "acme", true, admin.ActivateInput{}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, st: st, engine: engine, reg: reg, cache: c, admin: svc, fake: fake, queue: q, clock: clk,
		route: lookup.New(c, st, time.Second), crmSide: engine.Calls}
	w.ingest = events.NewIngest(st, q, clk.Now, 1)
	t.Cleanup(w.ingest.Close)
	w.proc = events.NewProcessor(events.Config{Store: st, Tenants: reg, CRM: engine.Calls, Now: clk.Now})
	w.sync()
	return w
}

func (w *world) sync() {
	w.t.Helper()
	if _, err := w.engine.Syncer.Sync(context.Background(), "acme", 0); err != nil {
		w.t.Fatalf("sync: %v", err)
	}
}

// post stores an event as the endpoint would and returns its id.
func (w *world) post(kind domain.EventKind, fields map[string]string) string {
	w.t.Helper()
	q := url.Values{"event": {string(kind)}}
	for k, v := range fields {
		q.Set(k, v)
	}
	in, err := events.Parse("", q, nil)
	if err != nil {
		w.t.Fatalf("parse: %v", err)
	}
	id, err := w.ingest.Store(context.Background(), w.reg.Lookup("acme"), in)
	if err != nil {
		w.t.Fatalf("store: %v", err)
	}
	return id
}

// drain processes the queued partitions and returns the first error.
func (w *world) drain() error {
	w.t.Helper()
	var first error
	for _, p := range w.queue.take() {
		if err := w.proc.Drain(context.Background(), p.TenantID, p.Partition); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (w *world) mustDrain() {
	w.t.Helper()
	if err := w.drain(); err != nil {
		w.t.Fatalf("drain: %v", err)
	}
}

func (w *world) event(id string) domain.CallEvent {
	w.t.Helper()
	ev, err := w.st.Event(context.Background(), "acme", id)
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// target is where a call from caller is routed now.
func (w *world) target(caller string) string {
	w.t.Helper()
	w.cache.Wait()
	return w.route.Route(context.Background(), w.reg.Lookup("acme"), []byte(caller), time.Now()).Target
}

// known puts an open lead of the CRM's lead kind owned by owner, with the
// phone, and syncs it into the index.
func (w *world) known(id, phone, owner string) crm.Ref {
	w.t.Helper()
	ref := crm.Ref{Kind: w.fake.LeadKind(), ID: id}
	w.fake.Put(crm.Entity{Kind: ref.Kind, ID: id, Name: "Deal " + id, Phones: []string{phone}, OwnerID: owner, Open: true})
	w.sync()
	return ref
}

type storePartition = store.Partition

func newProcessor(w *world, c events.CRM) *events.Processor {
	return events.NewProcessor(events.Config{Store: w.st, Tenants: w.reg, CRM: c, Now: w.clock.Now})
}

// writerFor returns the tenant's CRM writer.
func (w *world) writerFor() (crm.Writer, error) {
	return w.engine.Calls.Writer(context.Background(), "acme")
}

// reconnect grants access again after a Revoke and connects the tenant
// with the working credentials, as an admin fixing a broken integration.
func (w *world) reconnect() {
	w.t.Helper()
	w.fake.Reauthorize()
	if _, err := w.admin.PutIntegration(context.Background(), "test", "acme", admin.IntegrationInput{CRM: w.crmName(), BaseURL: w.fake.URL(), Credentials: admin.SecretJSON(w.fake.Creds())}); err != nil {
		w.t.Fatalf("reconnect: %v", err)
	}
}

func (w *world) crmName() string {
	in, err := w.st.Integration(context.Background(), "acme")
	if err != nil {
		w.t.Fatal(err)
	}
	return in.CRM
}

// lossyCRM hands out writers that lose the answer of the first create of
// the named kinds: the CRM makes the entity, the caller sees an error, as
// with a timeout or a crash before the id was stored.
type lossyCRM struct {
	events.CRM
	mu   sync.Mutex
	lose map[string]bool
}

func (l *lossyCRM) Writer(ctx context.Context, tenantID string) (crm.Writer, error) {
	w, err := l.CRM.Writer(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return &lossyWriter{Writer: w, l: l}, nil
}

// take reports whether the answer of this create is to be lost, once per
// kind.
func (l *lossyCRM) take(kind string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lose[kind] {
		delete(l.lose, kind)
		return true
	}
	return false
}

var errLost = errors.New("read tcp: connection reset by peer")

type lossyWriter struct {
	crm.Writer
	l *lossyCRM
}

func (w *lossyWriter) CreateCall(ctx context.Context, c crm.NewCall) (string, error) {
	id, err := w.Writer.CreateCall(ctx, c)
	if err == nil && w.l.take("call") {
		return "", errLost
	}
	return id, err
}

func (w *lossyWriter) CreateTask(ctx context.Context, t crm.NewTask) (string, error) {
	id, err := w.Writer.CreateTask(ctx, t)
	if err == nil && w.l.take("task") {
		return "", errLost
	}
	return id, err
}

func (w *lossyWriter) CreateLead(ctx context.Context, n crm.NewLead) (crm.Created, error) {
	c, err := w.Writer.CreateLead(ctx, n)
	if err == nil && w.l.take("lead") {
		return crm.Created{}, errLost
	}
	return c, err
}
