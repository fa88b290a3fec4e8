package events

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// countingRejects counts the rejected-body writes that reach the store,
// and can hold them until released.
type countingRejects struct {
	store.Events
	writes atomic.Int64
	hold   chan struct{} // nil: no hold
	held   chan struct{}
}

func (c *countingRejects) RejectEvent(ctx context.Context, r domain.RejectedEvent) error {
	c.writes.Add(1)
	if c.hold != nil {
		c.held <- struct{}{}
		<-c.hold
	}
	return c.Events.RejectEvent(ctx, r)
}

// fixedClock is a settable clock.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func rejectFixture(t testing.TB) (*countingRejects, store.Store, *fixedClock, *tenant.Registry) {
	t.Helper()
	ctx := context.Background()
	st := storetest.Backends()[0].Open(t)
	for _, id := range []string{"junk", "good"} {
		if err := st.CreateTenant(ctx, domain.Tenant{ID: id, Settings: domain.DefaultSettings(), SecretHash: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	return &countingRejects{Events: st}, st, &fixedClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}, reg
}

// TestRejectedBodiesAreTruncatedAndCapped keeps the first 4 KiB of a body
// and a tenant's newest MaxRejectedPerTenant bodies.
func TestRejectedBodiesAreTruncatedAndCapped(t *testing.T) {
	cr, st, clk, _ := rejectFixture(t)
	g := NewIngest(cr, &partitions{}, clk.Now, 1)
	defer g.Close()
	g.LimitRejected(rate.Inf, 0)
	ctx := context.Background()
	big := bytes.Repeat([]byte("j"), 1<<20)
	if err := g.Reject(ctx, "junk", "body: junk", "text/plain", big); err != nil {
		t.Fatal(err)
	}
	got, err := st.ListRejected(ctx, "junk", 1)
	if err != nil || len(got) != 1 || len(got[0].Body) != 4<<10 || !bytes.Equal(got[0].Body, big[:4<<10]) {
		t.Fatalf("a 1 MiB junk body is kept as %d bytes (%v); want its first 4 KiB", len(got[0].Body), err)
	}
	for i := range MaxRejectedPerTenant + 5 {
		clk.Advance(time.Millisecond)
		if err := g.Reject(ctx, "junk", "body: junk "+string(rune('a'+i%26)), "", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.ListRejected(ctx, "junk", 2*MaxRejectedPerTenant)
	if err != nil || len(all) != MaxRejectedPerTenant {
		t.Fatalf("after %d rejects the tenant keeps %d bodies (%v); want its newest %d", MaxRejectedPerTenant+6, len(all), err, MaxRejectedPerTenant)
	}
	if last := string(all[0].Body); last != strconv.Itoa(MaxRejectedPerTenant+4) {
		t.Fatalf("newest kept body %v; want the last one sent", last)
	}
}

// TestJunkFloodDoesNotBlockOtherTenants floods one tenant's endpoint with
// junk while the store is slow to take rejected bodies (held): every junk
// request is answered at once, at most maxRejectWriters writes wait on the
// store, the tenant's bucket lets through at most RejectedBurst writes, and
// another tenant's event is acknowledged during the flood.
func TestJunkFloodDoesNotBlockOtherTenants(t *testing.T) {
	cr, _, clk, reg := rejectFixture(t)
	cr.hold, cr.held = make(chan struct{}), make(chan struct{}, 1000)
	g := NewIngest(cr, &partitions{}, clk.Now, 1)
	defer g.Close()
	ctx := context.Background()

	const flood = 1000
	var wg sync.WaitGroup
	var answered atomic.Int64
	for range flood {
		wg.Go(func() {
			if err := g.Reject(ctx, "junk", "body: junk", "", []byte("junk")); err != nil {
				t.Error(err)
			}
			answered.Add(1)
		})
	}
	// Two writes are held in the store; everything else must come back
	// without waiting for them.
	<-cr.held
	<-cr.held
	deadline := time.Now().Add(10 * time.Second)
	for answered.Load() < flood-maxRejectWriters {
		if time.Now().After(deadline) {
			close(cr.hold)
			t.Fatalf("%d of %d junk requests answered while the store held two; the rest wait on the store", answered.Load(), flood)
		}
		waitABit()
	}
	id, err := g.Store(ctx, reg.Lookup("good"), callEnd("good-1", "380671234567"))
	if err != nil || id == "" {
		t.Fatalf("another tenant's event during the flood: %q %v", id, err)
	}
	close(cr.hold)
	wg.Wait()
	if w := cr.writes.Load(); w > maxRejectWriters {
		t.Fatalf("%d junk bodies went to the store while it was slow; want at most %d", w, maxRejectWriters)
	}

	// With the store quick again, the tenant's bucket bounds the writes.
	cr.hold = nil
	before := cr.writes.Load()
	for range flood {
		if err := g.Reject(ctx, "junk", "body: junk", "", []byte("junk")); err != nil {
			t.Fatal(err)
		}
	}
	if w := cr.writes.Load() - before; w > RejectedBurst {
		t.Fatalf("%d of %d junk bodies written at one instant; want at most the burst %d", w, flood, RejectedBurst)
	}
	clk.Advance(time.Second)
	if err := g.Reject(ctx, "junk", "body: junk", "", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := g.Reject(ctx, "good", "body: junk", "", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if w := cr.writes.Load() - before; w > RejectedBurst+2 {
		t.Fatalf("after a second the bucket refills at its rate and other tenants have their own: %d writes", w)
	}
}

// TestExpireRejected deletes rejected bodies older than each tenant's
// event_retention_days, the default for a tenant that sets none.
func TestExpireRejected(t *testing.T) {
	cr, st, clk, _ := rejectFixture(t)
	g := NewIngest(cr, &partitions{}, clk.Now, 1)
	defer g.Close()
	g.LimitRejected(rate.Inf, 0)
	ctx := context.Background()
	for _, id := range []string{"junk", "good"} {
		for range 2 {
			if err := g.Reject(ctx, id, "body: old", "", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk.Advance(5 * 24 * time.Hour)
	if err := g.Reject(ctx, "junk", "body: new", "", nil); err != nil {
		t.Fatal(err)
	}
	tenants, err := st.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		if tenants[i].ID == "junk" {
			tenants[i].Settings.EventRetentionDays = 3
		}
	}
	// junk keeps 3 days: its two 5-day-old bodies go; good keeps the
	// default 30 days: its bodies stay.
	n, err := ExpireRejected(ctx, st, tenants, 30*24*time.Hour, clk.Now())
	if err != nil || n != 2 {
		t.Fatalf("expired %d, %v; want 2", n, err)
	}
	for id, want := range map[string]int{"junk": 1, "good": 2} {
		if got, err := st.ListRejected(ctx, id, 10); err != nil || len(got) != want {
			t.Fatalf("%s keeps %d bodies (%v), want %d", id, len(got), err, want)
		}
	}
}

// TestExpireEvents deletes finished events older than each tenant's
// event_retention_days in batches until none is left, keeps waiting ones
// whatever their age, and counts what it deleted.
func TestExpireEvents(t *testing.T) {
	_, st, clk, _ := rejectFixture(t)
	ctx := context.Background()
	old := clk.Now().Add(-10 * 24 * time.Hour)
	var evs []domain.CallEvent
	for i := range 2*expireBatch + 7 {
		for _, id := range []string{"junk", "good"} {
			evs = append(evs, domain.CallEvent{TenantID: id, UniqueID: fmt.Sprintf("u%d", i), Kind: domain.EventCallEnd,
				Partition: fmt.Sprintf("p%d", i%50), ReceivedAt: old, Fields: map[string]string{"uniqueid": fmt.Sprintf("u%d", i)}})
		}
	}
	stored, err := st.InsertEvents(ctx, evs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range stored {
		if i < 4 { // two waiting events per tenant stay waiting
			continue
		}
		if err := st.FinishEvent(ctx, evs[i].TenantID, in.ID, domain.EventDone, ""); err != nil {
			t.Fatal(err)
		}
	}
	tenants, err := st.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		if tenants[i].ID == "junk" {
			tenants[i].Settings.EventRetentionDays = 7 // good keeps the default 30
		}
	}
	before := metrics.GetOrCreateCounter(`callrouter_events_expired_total{tenant="junk"}`).Get()
	n, err := ExpireEvents(ctx, st, tenants, 30*24*time.Hour, clk.Now())
	if want := 2*expireBatch + 7 - 2; err != nil || n != want {
		t.Fatalf("expired %d, %v; want %d (all of junk's finished events, in several batches)", n, err, want)
	}
	if got := metrics.GetOrCreateCounter(`callrouter_events_expired_total{tenant="junk"}`).Get() - before; got != uint64(n) {
		t.Fatalf("counted %d expired, deleted %d", got, n)
	}
	for id, want := range map[string]domain.EventStats{
		"junk": {Waiting: 2},
		"good": {Waiting: 2, Done: 2*expireBatch + 7 - 2},
	} {
		got, err := st.EventStats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got.OldestWaiting = time.Time{}
		if got != want {
			t.Fatalf("%s after expiry: %+v, want %+v", id, got, want)
		}
	}
}
