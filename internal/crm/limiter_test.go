package crm

import (
	"context"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestLimiterSlotsLastAWindowAfterTheAnswer shows a request holds its slot
// from leaving until one window after its answer, so however late a
// request arrives at the CRM, the next one that takes its slot arrives a
// window after it.
func TestLimiterSlotsLastAWindowAfterTheAnswer(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	now := t0
	l := &Limiter{bucket: rate.NewLimiter(rate.Inf, 1), slots: 2, window: time.Second,
		now: func() time.Time { return now }, wake: make(chan struct{})}
	if ok, _, _ := l.take(); !ok {
		t.Fatal("first slot refused")
	}
	if ok, _, _ := l.take(); !ok {
		t.Fatal("second slot refused")
	}
	ok, wake, wait := l.take()
	if ok || wait != 0 {
		t.Fatalf("third request with both in flight: ok=%v wait=%v, want to wait for an answer", ok, wait)
	}
	now = t0.Add(300 * time.Millisecond) // a late answer
	l.release()
	select {
	case <-wake:
	default:
		t.Fatal("an answer must wake the waiting request")
	}
	if ok, _, wait := l.take(); ok || wait != time.Second {
		t.Fatalf("right after the answer: ok=%v wait=%v, want the slot back a window after the answer", ok, wait)
	}
	now = t0.Add(1299 * time.Millisecond)
	if ok, _, wait := l.take(); ok || wait != time.Millisecond {
		t.Fatalf("1 ms before the window passed: ok=%v wait=%v", ok, wait)
	}
	now = t0.Add(1300 * time.Millisecond)
	if ok, _, _ := l.take(); !ok {
		t.Fatal("a window after the answer the slot must be free")
	}
}

func TestLimiterAcquireWaitsForAnAnswerAndHonoursContext(t *testing.T) {
	l := NewLimiter(1000) // the bucket never binds at this rate; 1000 slots
	l.slots = 1
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx)
		got <- err
	}()
	cancel()
	if err := <-got; err != context.Canceled {
		t.Fatalf("Acquire with its slot taken and the context cancelled = %v", err)
	}
	release()
	if l.inflight != 0 || len(l.freed) != 1 {
		t.Fatalf("after release: %d in flight, %d freed", l.inflight, len(l.freed))
	}
}

func TestNewLimiterBelowOnePerSecond(t *testing.T) {
	l := NewLimiter(0.5)
	if l.slots != 1 || l.window != 2*time.Second {
		t.Fatalf("0.5 rps: %d slots per %v, want 1 per 2s", l.slots, l.window)
	}
	if l := NewLimiter(7); l.slots != 7 || l.window != time.Second {
		t.Fatalf("7 rps: %d slots per %v", l.slots, l.window)
	}
}
