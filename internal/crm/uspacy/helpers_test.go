package uspacy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/uspacy"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// t0 is when every test's clock starts.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the adapter and the fake.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one adapter connected to one fake account.
type env struct {
	fake  *uspacyfake.Server
	src   crm.Source
	store *crmtest.TokenStore
	clock *clock
	sleep *crmtest.NoSleep
	creds json.RawMessage
}

// newEnv connects an adapter to a new fake; creds nil means the fake's
// application credentials, a function gets the fake to mint them.
func newEnv(t *testing.T, creds func(*uspacyfake.Server) json.RawMessage) *env {
	t.Helper()
	fake := uspacyfake.New(t)
	clk := &clock{now: t0}
	fake.SetClock(clk.Now)
	e := &env{fake: fake, clock: clk, sleep: &crmtest.NoSleep{}, creds: fake.Creds()}
	if creds != nil {
		e.creds = creds(fake)
	}
	tok, ok := uspacy.Seed(e.creds)
	if !ok {
		t.Fatalf("Seed(%s) refused", e.creds)
	}
	e.store = crmtest.NewTokenStore(tok)
	e.src = e.connect(t)
	return e
}

// connect returns a new adapter on the env's account and token store, as a
// restarted process would have.
func (e *env) connect(t *testing.T) crm.Source {
	t.Helper()
	src, err := uspacy.Adapter.New(crm.Config{CRM: "uspacy", BaseURL: e.fake.URL(), Creds: e.creds},
		crm.Deps{Tokens: e.store, Now: e.clock.Now, Sleep: e.sleep.Sleep, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src
}

// pairCreds returns token-pair credentials freshly issued by the fake.
func pairCreds(f *uspacyfake.Server) json.RawMessage {
	access, refresh := f.TokenPair()
	b, _ := json.Marshal(map[string]string{"access_token": access, "refresh_token": refresh})
	return b
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// fullSync runs a full sync to its end and returns what it saw, the
// batches it took and the cursor for changes.
func fullSync(t *testing.T, src crm.Source) (map[crm.Ref]crm.Entity, int, string) {
	t.Helper()
	seen := map[crm.Ref]crm.Entity{}
	cur := ""
	for n := 1; ; n++ {
		if n > 100 {
			t.Fatal("full sync does not end")
		}
		b, err := src.Full(ctx(t), cur)
		if err != nil {
			t.Fatalf("Full(%q): %v", cur, err)
		}
		for _, e := range b.Entities {
			seen[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
		}
		if b.Cursor == "" {
			t.Fatal("Full returned no cursor")
		}
		cur = b.Cursor
		if b.Done {
			return seen, n, cur
		}
	}
}

// changesPass runs one pass of changes and returns what it saw, the
// batches it took and the cursor of the next pass.
func changesPass(t *testing.T, src crm.Source, cur string) (map[crm.Ref]crm.Entity, int, string) {
	t.Helper()
	seen := map[crm.Ref]crm.Entity{}
	for n := 1; ; n++ {
		if n > 100 {
			t.Fatal("changes pass does not end")
		}
		b, err := src.Changes(ctx(t), cur)
		if err != nil {
			t.Fatalf("Changes(%q): %v", cur, err)
		}
		for _, e := range b.Entities {
			seen[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
		}
		cur = b.Cursor
		if b.Done {
			return seen, n, cur
		}
	}
}

// entity returns a test record: phones from the id, owner 10..12, every
// fourth lead or deal closed.
func entity(kind domain.EntityKind, id int) crm.Entity {
	return crm.Entity{
		Kind:    kind,
		ID:      fmt.Sprint(id),
		Name:    fmt.Sprintf("Client %d", id),
		Phones:  []string{fmt.Sprintf("+380 50 %07d", id), fmt.Sprintf("(067) %07d", id)},
		OwnerID: fmt.Sprint(10 + id%3),
		Open:    kind == domain.KindContact || kind == domain.KindCompany || id%4 != 0,
	}
}

// populate puts n records of each kind; ids are 1000·k + i.
func populate(f *uspacyfake.Server, leads, deals, contacts, companies int) map[crm.Ref]crm.Entity {
	want := map[crm.Ref]crm.Entity{}
	for k, n := range map[domain.EntityKind]int{domain.KindLead: leads, domain.KindDeal: deals, domain.KindContact: contacts, domain.KindCompany: companies} {
		base := map[domain.EntityKind]int{domain.KindLead: 1000, domain.KindDeal: 2000, domain.KindContact: 3000, domain.KindCompany: 4000}[k]
		for i := 1; i <= n; i++ {
			e := entity(k, base*10+i)
			f.Put(e)
			want[crm.Ref{Kind: k, ID: e.ID}] = e
		}
	}
	return want
}

// same compares what routing needs of two entities.
func same(got, want crm.Entity) string {
	var diffs []string
	if got.Kind != want.Kind || got.ID != want.ID {
		diffs = append(diffs, fmt.Sprintf("ref %s/%s, want %s/%s", got.Kind, got.ID, want.Kind, want.ID))
	}
	if got.Name != want.Name {
		diffs = append(diffs, fmt.Sprintf("name %q, want %q", got.Name, want.Name))
	}
	if !slices.Equal(got.Phones, want.Phones) {
		diffs = append(diffs, fmt.Sprintf("phones %q, want %q", got.Phones, want.Phones))
	}
	if got.OwnerID != want.OwnerID {
		diffs = append(diffs, fmt.Sprintf("owner %q, want %q", got.OwnerID, want.OwnerID))
	}
	if got.Open != want.Open {
		diffs = append(diffs, fmt.Sprintf("open %v, want %v", got.Open, want.Open))
	}
	return strings.Join(diffs, "; ")
}
