package amocrm_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// clock is a manual clock shared by the fake (updated_at, token expiry)
// and the adapter (token expiry).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)} }

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

// env is a fake account and an adapter connected to it.
type env struct {
	fake  *amocrmfake.Server
	clock *clock
	store *crmtest.TokenStore // nil for long-lived tokens
	sleep *crmtest.NoSleep
	src   crm.Source
}

// newEnv connects the adapter with OAuth credentials from the fake.
func newEnv(t *testing.T) *env {
	t.Helper()
	f := amocrmfake.New(t)
	e := &env{fake: f, clock: newClock(), sleep: &crmtest.NoSleep{}}
	f.SetClock(e.clock.Now)
	e.connect(t, f.Creds())
	return e
}

// connect (re)creates the adapter with creds.
func (e *env) connect(t *testing.T, creds json.RawMessage) {
	t.Helper()
	if err := amocrm.Adapter.Check(creds); err != nil {
		t.Fatalf("Check(fake creds): %v", err)
	}
	deps := crm.Deps{Sleep: e.sleep.Sleep, Now: e.clock.Now, Transport: crm.NewTransport(true)}
	e.store = nil
	if tok, ok := amocrm.Adapter.Seed(creds); ok {
		e.store = crmtest.NewTokenStore(tok)
		deps.Tokens = e.store
	}
	src, err := amocrm.Adapter.New(crm.Config{CRM: "amocrm", BaseURL: e.fake.URL(), Creds: creds}, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.src = src
}

// result merges the batches of a sync.
type result struct {
	entities map[crm.Ref]crm.Entity
	deleted  map[crm.Ref]bool
	refetch  map[crm.Ref]bool
	batches  int
}

func (r *result) entity(t *testing.T, ref crm.Ref) crm.Entity {
	t.Helper()
	e, ok := r.entities[ref]
	if !ok {
		t.Fatalf("no entity %v in the sync", ref)
	}
	return e
}

// drain calls next from cur until Done and returns the merged batches and
// the final cursor.
func drain(t *testing.T, next func(context.Context, string) (crm.Batch, error), cur string) (*result, string) {
	t.Helper()
	r := &result{entities: map[crm.Ref]crm.Entity{}, deleted: map[crm.Ref]bool{}, refetch: map[crm.Ref]bool{}}
	for ; r.batches < 1000; r.batches++ {
		b, err := next(context.Background(), cur)
		if err != nil {
			t.Fatalf("batch %d after cursor %s: %v", r.batches, cur, err)
		}
		for _, e := range b.Entities {
			r.entities[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
		}
		for _, d := range b.Deleted {
			r.deleted[d] = true
		}
		for _, d := range b.Refetch {
			r.refetch[d] = true
		}
		if b.Cursor == "" {
			t.Fatalf("batch %d has no cursor", r.batches)
		}
		cur = b.Cursor
		if b.Done {
			r.batches++
			return r, cur
		}
	}
	t.Fatalf("sync not done after %d batches", r.batches)
	return nil, ""
}

func contactRef(id int) crm.Ref { return crm.Ref{Kind: domain.KindContact, ID: strconv.Itoa(id)} }
func leadRef(id int) crm.Ref    { return crm.Ref{Kind: domain.KindLead, ID: strconv.Itoa(id)} }
func companyRef(id int) crm.Ref { return crm.Ref{Kind: domain.KindCompany, ID: strconv.Itoa(id)} }
