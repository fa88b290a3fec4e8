package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

func testSyncLease(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	lease := func(tenantID, holder string) bool {
		t.Helper()
		ok, err := e.s.LeaseSync(e.ctx, tenantID, holder, 10*time.Second)
		if err != nil {
			t.Fatalf("LeaseSync(%s, %s): %v", tenantID, holder, err)
		}
		return ok
	}
	if !lease("a", "h1") {
		t.Fatal("a free tenant's sync must be leased")
	}
	if lease("a", "h2") {
		t.Fatal("a held sync lease must not go to another holder")
	}
	if !lease("a", "h1") {
		t.Fatal("the holder renews its own lease")
	}
	if !lease("b", "h2") {
		t.Fatal("leases are per tenant")
	}
	e.clock.Advance(9 * time.Second)
	if lease("a", "h2") {
		t.Fatal("the renewed lease has not run out")
	}
	e.clock.Advance(2 * time.Second)
	if !lease("a", "h2") {
		t.Fatal("an expired lease (a crashed holder) is taken over")
	}
	if err := e.s.ReleaseSync(e.ctx, "a", "h1"); err != nil {
		t.Fatal(err)
	}
	if lease("a", "h1") {
		t.Fatal("releasing someone else's lease must leave it alone")
	}
	if err := e.s.ReleaseSync(e.ctx, "a", "h2"); err != nil {
		t.Fatal(err)
	}
	if !lease("a", "h1") {
		t.Fatal("a released lease is free")
	}
	if _, err := e.s.LeaseSync(e.ctx, "nobody", "h1", time.Second); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("lease of an unknown tenant: %v, want ENOTFOUND", err)
	}
}

// Holders racing for one free lease: exactly one wins.
func testSyncLeaseConcurrent(t *testing.T, e *env) {
	e.tenant(t, "a")
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := e.s.LeaseSync(e.ctx, "a", "h"+string(rune('0'+i)), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d holders won one lease", wins)
	}
}
