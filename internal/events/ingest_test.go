package events

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// gatedStore records the size of every batch and can hold a commit until
// released, so a test can make events queue behind it; events whose
// uniqueid is "poison" make a batch fail as a deleted tenant would.
type gatedStore struct {
	store.Events
	mu      sync.Mutex
	batches []int
	gate    chan struct{} // nil: no hold
	entered chan struct{}
}

func (g *gatedStore) InsertEvents(ctx context.Context, evs []domain.CallEvent, enq func(context.Context, any, []domain.CallEvent) error) ([]store.Inserted, error) {
	g.mu.Lock()
	g.batches = append(g.batches, len(evs))
	gate := g.gate
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		g.entered <- struct{}{}
		<-gate
	}
	for _, ev := range evs {
		if ev.UniqueID == "poison" {
			return nil, domain.Errorf(domain.ENOTFOUND, "tenant %s: not found", ev.TenantID)
		}
	}
	return g.Events.InsertEvents(ctx, evs, enq)
}

func (g *gatedStore) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.batches...)
}

// partitions counts the jobs enqueued.
type partitions struct {
	mu    sync.Mutex
	calls int
	parts []store.Partition
}

func (p *partitions) EnqueueTx(_ context.Context, tx any, parts []store.Partition) error {
	if tx == nil {
		return errors.New("no transaction")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.parts = append(p.parts, parts...)
	return nil
}

func ingestFixture(t *testing.T, be storetest.Backend) (*gatedStore, *partitions, *tenant.Config, store.Store) {
	t.Helper()
	ctx := context.Background()
	st := be.Open(t)
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), SecretHash: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	return &gatedStore{Events: st}, &partitions{}, reg.Lookup("acme"), st
}

func callEnd(uniqueID, caller string) Incoming {
	return Incoming{Kind: domain.EventCallEnd, UniqueID: uniqueID,
		Fields: map[string]string{"uniqueid": uniqueID, "caller": caller, "disposition": "ANSWERED"}}
}

// TestIngestGroupCommit shows events that arrive while a commit runs share
// the next transaction, each gets its own id, a duplicate in the batch gets
// the first one's, and one job is enqueued per client.
func TestIngestGroupCommit(t *testing.T) {
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			gs, q, acme, st := ingestFixture(t, be)
			gate := make(chan struct{})
			gs.gate, gs.entered = gate, make(chan struct{}, 1)
			g := NewIngest(gs, q, nil, 1)
			defer g.Close()
			ctx := context.Background()

			first := make(chan string, 1)
			go func() {
				id, err := g.Store(ctx, acme, callEnd("first", "380671234567"))
				if err != nil {
					t.Error(err)
				}
				first <- id
			}()
			<-gs.entered // the first commit is running and held
			const queued = 10
			ids := make([]string, queued)
			var wg sync.WaitGroup
			for i := range queued {
				wg.Add(1)
				go func() {
					defer wg.Done()
					uid := "call-" + strconv.Itoa(i%(queued-1)) // the last repeats call-0
					var err error
					if ids[i], err = g.Store(ctx, acme, callEnd(uid, "38067"+strconv.Itoa(1000000+i%3))); err != nil {
						t.Error(err)
					}
				}()
			}
			for len(g.reqs) < queued {
				waitABit()
			}
			close(gate)
			wg.Wait()
			if id := <-first; id == "" {
				t.Fatal("the first event got no id")
			}
			if got := gs.sizes(); len(got) != 2 || got[0] != 1 || got[1] != queued {
				t.Fatalf("batch sizes %v, want [1 %d]: events queued behind a commit share the next one", got, queued)
			}
			if ids[0] == "" || ids[queued-1] != ids[0] {
				t.Fatalf("a duplicate in the batch must get the first one's id: %v", ids)
			}
			distinct := map[string]bool{}
			for _, id := range ids {
				distinct[id] = true
				if _, err := st.Event(ctx, "acme", id); err != nil {
					t.Fatalf("acknowledged event %s is not stored: %v", id, err)
				}
			}
			if len(distinct) != queued-1 {
				t.Fatalf("%d distinct ids for %d distinct events", len(distinct), queued-1)
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			if q.calls != 2 || len(q.parts) != 1+3 {
				t.Fatalf("enqueued %d times %v, want twice: 1 job for the first event, then 1 per client (3)", q.calls, q.parts)
			}
		})
	}
}

// TestIngestBadEventFailsAlone shows a batch refused for one event's sake
// is retried event by event, so the others are still stored.
func TestIngestBadEventFailsAlone(t *testing.T) {
	be := storetest.Backends()[0]
	gs, q, acme, st := ingestFixture(t, be)
	gate := make(chan struct{})
	gs.gate, gs.entered = gate, make(chan struct{}, 1)
	g := NewIngest(gs, q, nil, 1)
	defer g.Close()
	ctx := context.Background()
	go func() { _, _ = g.Store(ctx, acme, callEnd("opener", "380671234567")) }()
	<-gs.entered
	type result struct {
		uid, id string
		err     error
	}
	results := make(chan result, 3)
	for _, uid := range []string{"good-1", "poison", "good-2"} {
		go func() {
			id, err := g.Store(ctx, acme, callEnd(uid, "380671234567"))
			results <- result{uid, id, err}
		}()
	}
	for len(g.reqs) < 3 {
		waitABit()
	}
	close(gate)
	for range 3 {
		r := <-results
		switch {
		case r.uid == "poison" && domain.ErrorCode(r.err) != domain.ENOTFOUND:
			t.Errorf("the bad event: %v, want its ENOTFOUND", r.err)
		case r.uid != "poison" && r.err != nil:
			t.Errorf("%s failed with the bad event's batch: %v", r.uid, r.err)
		case r.uid != "poison":
			if _, err := st.Event(ctx, "acme", r.id); err != nil {
				t.Errorf("%s acknowledged but not stored: %v", r.uid, err)
			}
		}
	}
	if got := gs.sizes(); len(got) != 5 || got[1] != 3 {
		t.Fatalf("batch sizes %v, want [1 3 1 1 1]: the failed batch retried one by one", got)
	}
}

// TestIngestCloseCommitsWhatItWasHanded shows Close stores every event
// handed in before it, and refuses later ones instead of losing them.
func TestIngestCloseCommitsWhatItWasHanded(t *testing.T) {
	be := storetest.Backends()[0]
	gs, q, acme, st := ingestFixture(t, be)
	gate := make(chan struct{})
	gs.gate, gs.entered = gate, make(chan struct{}, 1)
	g := NewIngest(gs, q, nil, 1)
	ctx := context.Background()
	ids := make(chan string, 6)
	for i := range 6 {
		go func() {
			id, err := g.Store(ctx, acme, callEnd("c"+strconv.Itoa(i), "380671234567"))
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	<-gs.entered
	// The held commit took the first event, or a few that came together.
	for held := gs.sizes()[0]; len(g.reqs) < 6-held; {
		waitABit()
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	close(gate)
	<-closed
	for range 6 {
		id := <-ids
		if _, err := st.Event(ctx, "acme", id); err != nil {
			t.Fatalf("event %q handed in before Close is not stored: %v", id, err)
		}
	}
	if _, err := g.Store(ctx, acme, callEnd("late", "380671234567")); !errors.Is(err, ErrIngestClosed) {
		t.Fatalf("Store after Close = %v, want ErrIngestClosed", err)
	}
}

// waitABit yields while goroutines reach the queue.
func waitABit() { runtime.Gosched() }
