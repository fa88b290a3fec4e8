package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// burst sends n requests through each limiter, from 4 workers per limiter,
// each answered after latency, and returns the arrival times.
func burst(t *testing.T, lims []*crm.Limiter, n int, latency time.Duration) []time.Time {
	t.Helper()
	var mu sync.Mutex
	var arrivals []time.Time
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, lim := range lims {
		jobs := make(chan struct{}, n)
		for range n {
			jobs <- struct{}{}
		}
		close(jobs)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					release, err := lim.Acquire(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					arrivals = append(arrivals, time.Now())
					mu.Unlock()
					time.Sleep(latency) // the CRM's answer time
					release()
				}
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	return arrivals
}

// busiest returns the most arrivals within any one-second window.
func busiest(arrivals []time.Time) int {
	most, j := 0, 0
	for i := range arrivals {
		for arrivals[i].Sub(arrivals[j]) >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// Three instances (each with limiters of its own, sharing only the
// database) send a burst to one amoCRM account: together they stay within
// its 7 requests a second in every one-second window; one instance alone
// still uses at least 90 % of it.
func TestSharedRateLimitAcrossInstances(t *testing.T) {
	url := storetest.PostgresURL(t)
	db := open(t, url, storetest.FreshSchema(t, url))
	const rps = 7

	var three []*crm.Limiter
	for range 3 {
		lims := &crm.Limiters{Shared: db, Account: "acme"}
		three = append(three, lims.Get("api", rps))
	}
	errsBefore := metrics.GetOrCreateCounter(`callrouter_crm_shared_limit_errors_total`).Get()
	arrivals := burst(t, three, 10, 5*time.Millisecond)
	if n := metrics.GetOrCreateCounter(`callrouter_crm_shared_limit_errors_total`).Get() - errsBefore; n > 0 {
		t.Logf("%d database errors taking or releasing slots during the burst", n)
	}
	if len(arrivals) != 30 {
		t.Fatalf("%d requests went out, want 30", len(arrivals))
	}
	if most := busiest(arrivals); most > rps {
		t.Fatalf("three instances put %d requests into one second; the limit is %d", most, rps)
	}

	alone := (&crm.Limiters{Shared: db, Account: "solo"}).Get("api", rps)
	arrivals = burst(t, []*crm.Limiter{alone}, 29, 5*time.Millisecond)
	span := arrivals[len(arrivals)-1].Sub(arrivals[0])
	// The limiter spaces requests evenly (its bucket has a burst of one):
	// n requests span n-1 intervals.
	used := float64(len(arrivals)-1) / span.Seconds() / rps
	t.Logf("one instance: %d requests in %s, %.0f %% of the limit; three instances: busiest second %d", len(arrivals), span, used*100, busiest(arrivals))
	if used < 0.9 {
		t.Fatalf("one instance used %.0f %% of the limit, want ≥ 90 %%", used*100)
	}
	if most := busiest(arrivals); most > rps {
		t.Fatalf("one instance put %d requests into one second", most)
	}
}

// A slot taken by an instance that dies before releasing it is free again
// after its hold, not forever.
func TestRateSlotOfADeadHolderFreesItself(t *testing.T) {
	url := storetest.PostgresURL(t)
	db := open(t, url, storetest.FreshSchema(t, url))
	ctx := context.Background()
	if _, ok, _, err := db.TakeRateSlot(ctx, "acme/api", 1, 200*time.Millisecond); err != nil || !ok {
		t.Fatalf("first take: %v, %v", ok, err)
	}
	if _, ok, wait, err := db.TakeRateSlot(ctx, "acme/api", 1, time.Minute); err != nil || ok || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("second take while busy: ok=%v wait=%v err=%v, want no slot, free within 200ms", ok, wait, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, _, err := db.TakeRateSlot(ctx, "acme/api", 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead holder's slot never freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
