package crm

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps one integration's requests (or a separately limited group
// of them) under the CRM's documented rate, with headroom, and never above
// it as the CRM counts.
//
// A token bucket alone spaces requests when they leave, but a CRM counts
// them when they arrive, and a request delayed in between (a starved
// scheduler, a slow connect) lands closer to the ones behind it; under a
// loaded test run that put 8 requests into one of amoCRM's 7-per-second
// windows. So each request also holds one of the limit's slots from the
// moment it leaves until one window after its answer came back: it cannot
// have arrived later than its answer, and a request that leaves after the
// slot is freed arrives at least a window later. At loopback latencies the
// slots never bind; at a CRM's real latency L they cap the rate at
// limit/(window+L), which is the price of never being above the limit.
type Limiter struct {
	bucket *rate.Limiter
	slots  int
	window time.Duration
	now    func() time.Time

	// shared, when set, holds the account's slots for every instance on
	// the database, under account.
	shared  SlotStore
	account string

	mu       sync.Mutex
	inflight int
	freed    []time.Time // answers within the last window, oldest first
	wake     chan struct{}
}

// NewLimiter returns a limiter for rps requests per second: a bucket at
// the client's headroom under rps, and floor(rps) slots per second (one
// slot per 1/rps seconds when rps < 1).
func NewLimiter(rps float64) *Limiter {
	slots, window := int(math.Floor(rps)), time.Second
	if slots < 1 {
		slots, window = 1, time.Duration(float64(time.Second)/rps)
	}
	return &Limiter{bucket: rate.NewLimiter(rate.Limit(rps*headroom), 1), slots: slots, window: window,
		now: time.Now, wake: make(chan struct{})}
}

// Acquire waits for the request's turn and returns the function to call
// when its answer (or failure) came back. Errors: the context's.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if err := l.bucket.Wait(ctx); err != nil {
		if ctx.Err() == nil {
			// The bucket refuses at once a wait that would outlast the
			// deadline; to callers that is the deadline, met early.
			return nil, fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
		}
		return nil, err
	}
	for {
		ok, wake, wait := l.take()
		if ok {
			if l.shared == nil {
				return l.release, nil
			}
			rel, err := l.acquireShared(ctx)
			if err != nil {
				l.release()
				return nil, err
			}
			return func() { rel(); l.release() }, nil
		}
		if err := waitFor(ctx, wake, wait); err != nil {
			return nil, err
		}
	}
}

// take takes a slot if one is free; otherwise it returns what to wait
// for: wake, closed by the next release, and how long until the oldest
// freed slot leaves the window (0 when every slot is in flight).
func (l *Limiter) take() (ok bool, wake <-chan struct{}, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for len(l.freed) > 0 && !now.Before(l.freed[0].Add(l.window)) {
		l.freed = l.freed[1:]
	}
	if l.inflight+len(l.freed) < l.slots {
		l.inflight++
		return true, nil, 0
	}
	if len(l.freed) > 0 {
		wait = l.freed[0].Add(l.window).Sub(now)
	}
	return false, l.wake, wait
}

func (l *Limiter) release() {
	l.mu.Lock()
	l.inflight--
	l.freed = append(l.freed, l.now())
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// waitFor waits until wake is closed, d passed (d > 0), or ctx ends.
func waitFor(ctx context.Context, wake <-chan struct{}, d time.Duration) error {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-wake:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
