package console

import (
	"fmt"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

func TestBoardStates(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	b := NewBoard(clk.now, 10*time.Minute)
	wake, stop := b.Watch("acme")
	defer stop()

	b.ObserveCall("acme", domain.EventCallStart, "c1", map[string]string{"caller": "+380501234567"})
	select {
	case <-wake:
	default:
		t.Fatal("a watcher was not woken by a change")
	}
	state := func(id string) Call {
		for _, c := range b.Calls("acme") {
			if c.ID == id {
				return c
			}
		}
		return Call{}
	}
	if c := state("c1"); c.State != CallRinging || c.Caller != "+380501234567" || c.Direction != "in" {
		t.Fatalf("after call_start: %+v", c)
	}
	b.ObserveCall("acme", domain.EventCallAnswered, "c1", map[string]string{"employee_number": "sip101", "employee_fio": "Olena"})
	if c := state("c1"); c.State != CallTalking || c.Manager != "sip101" || c.Name != "Olena" {
		t.Fatalf("after call_answered: %+v", c)
	}
	b.ObserveCall("acme", domain.EventCallEnd, "c1", map[string]string{"disposition": "ANSWERED"})
	if c := state("c1"); c.State != CallEnded {
		t.Fatalf("after an answered call_end: %+v", c)
	}
	// A late call_answered does not bring an ended call back.
	b.ObserveCall("acme", domain.EventCallAnswered, "c1", nil)
	if c := state("c1"); c.State != CallEnded {
		t.Fatalf("after a late call_answered: %+v", c)
	}
	b.ObserveCall("acme", domain.EventCallEnd, "c2", map[string]string{"caller": "380671112233", "disposition": "NO ANSWER"})
	b.ObserveCall("acme", domain.EventOutgoingStart, "c3", map[string]string{"dst": "380931112233", "employee_number": "sip102"})
	if c := state("c2"); c.State != CallMissed {
		t.Fatalf("unanswered call_end: %+v", c)
	}
	if c := state("c3"); c.State != CallTalking || c.Direction != "out" || c.Caller != "380931112233" {
		t.Fatalf("outgoing_start: %+v", c)
	}
	if calls := b.Calls("acme"); calls[0].ID != "c3" {
		t.Fatalf("live calls do not come first: %+v", calls)
	}
	if calls := b.Calls("other"); len(calls) != 0 {
		t.Fatalf("another tenant sees %+v", calls)
	}

	// Finished calls leave after the recent window; live ones stay.
	clk.t = clk.t.Add(11 * time.Minute)
	if calls := b.Calls("acme"); len(calls) != 1 || calls[0].ID != "c3" {
		t.Fatalf("after the window: %+v", calls)
	}
	b.Forget("acme")
	if calls := b.Calls("acme"); len(calls) != 0 {
		t.Fatalf("after Forget: %+v", calls)
	}
}

func TestBoardBounded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	b := NewBoard(clk.now, 0)
	for i := range maxCalls + 50 {
		clk.t = clk.t.Add(time.Millisecond)
		b.ObserveCall("acme", domain.EventCallStart, fmt.Sprint("c", i), nil)
	}
	calls := b.Calls("acme")
	if len(calls) != maxCalls {
		t.Fatalf("%d calls kept, want %d", len(calls), maxCalls)
	}
	for _, c := range calls {
		if c.ID == "c0" {
			t.Fatal("the oldest call was kept over newer ones")
		}
	}
	b.ObserveCall("acme", domain.EventCallStart, "", nil)
	if len(b.Calls("acme")) != maxCalls {
		t.Fatal("an event without a call id reached the board")
	}
}

func TestBoardClose(t *testing.T) {
	b := NewBoard(nil, 0)
	b.Close()
	b.Close()
	select {
	case <-b.Closed():
	default:
		t.Fatal("Closed is open after Close")
	}
}

// Calls that leave by the recent window do not pile up in the board's
// eviction order: a day of calls keeps it within its bound, and a full board
// still evicts the call that came first.
func TestBoardOrderStaysBounded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	b := NewBoard(clk.now, time.Minute)
	for i := range 20 * maxCalls {
		clk.t = clk.t.Add(time.Second)
		b.ObserveCall("acme", domain.EventCallEnd, fmt.Sprint("d", i), map[string]string{"disposition": "ANSWERED"})
	}
	tb := b.tenants["acme"]
	if len(tb.order) > 2*maxCalls || len(tb.calls) > 62 {
		t.Fatalf("after %d calls a minute's window apart: %d ids in the order, %d calls; want ≤ %d and ≤ 62", 20*maxCalls, len(tb.order), len(tb.calls), 2*maxCalls)
	}
}

// BenchmarkObserveNewCall is the ingest path's cost of a new call on a
// full board (a flood of call ids).
func BenchmarkObserveNewCall(b *testing.B) {
	board := NewBoard(nil, 0)
	ids := make([]string, b.N+maxCalls)
	for i := range ids {
		ids[i] = fmt.Sprint("c", i)
	}
	for i := range maxCalls {
		board.ObserveCall("acme", domain.EventCallStart, ids[i], nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		board.ObserveCall("acme", domain.EventCallStart, ids[maxCalls+i], nil)
	}
}
