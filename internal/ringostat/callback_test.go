package ringostat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/ringostat"
)

// missed stores a missed incoming call's call_end as the events endpoint
// does and lets the manager hear it; it returns the event id.
func (h *harness) event(kind domain.EventKind, uid string, fields map[string]string) string {
	h.t.Helper()
	f := map[string]string{"event": string(kind), "uniqueid": uid, "calldate": h.clk.Now().Format(time.RFC3339)}
	for k, v := range fields {
		f[k] = v
	}
	id, _, err := h.ingest.StoreNew(h.ctx, h.reg.Lookup("acme"), events.Incoming{Kind: kind, UniqueID: uid, Fields: f})
	if err != nil {
		h.t.Fatal(err)
	}
	h.m.Observe("acme", id, kind, f)
	return id
}

func (h *harness) field(id string) string {
	h.t.Helper()
	ev, err := h.st.Event(h.ctx, "acme", id)
	if err != nil {
		h.t.Fatal(err)
	}
	return ev.Fields[ringostat.CallbackField]
}

func TestAutoCallback(t *testing.T) {
	h := newHarness(t, func(s *domain.Settings) {
		s.AutoCallback, s.AutoCallbackDelaySeconds, s.AutoCallbackWindowMinutes = true, 60, 30
	})
	if err := h.st.PutStop(h.ctx, domain.StopEntry{TenantID: "acme", Number: "380443334455"}); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Reload(h.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	h.index(row(domain.KindLead, "L1", "380671234567", "anna", "Client one"),
		row(domain.KindLead, "L2", "380501111111", "anna", "Client two"),
		row(domain.KindLead, "L3", "380502222222", "ghost", "Client of an unmapped user"))
	missed := map[string]string{"caller": "380671234567", "dst": "380441112233", "disposition": "NO ANSWER", "billsec": "0"}

	m1 := h.event(domain.EventCallEnd, "m1", missed)
	if n := h.m.Callbacks(h.ctx); n != 0 || len(h.fake.Callbacks()) != 0 {
		t.Fatal("a call-back was made before its delay")
	}
	h.clk.Advance(61 * time.Second)
	if n := h.m.Callbacks(h.ctx); n != 1 {
		t.Fatalf("%d call-backs after the delay, want 1", n)
	}
	if got := h.fake.Callbacks(); len(got) != 1 || got[0] != "sip_anna→380671234567" {
		t.Fatalf("Ringostat was asked for %q, want the responsible manager's login to the client", got)
	}
	if f := h.field(m1); !strings.HasPrefix(f, "requested: sip_anna → 380671234567") {
		t.Fatalf("attempt recorded as %q", f)
	}

	// Missed again within the window: recorded, not called.
	h.clk.Advance(5 * time.Minute)
	m2 := h.event(domain.EventCallEnd, "m2", missed)
	h.clk.Advance(61 * time.Second)
	if n := h.m.Callbacks(h.ctx); n != 0 || len(h.fake.Callbacks()) != 1 {
		t.Fatal("a second call-back within the window")
	}
	if f := h.field(m2); !strings.HasPrefix(f, "skipped: called back at") {
		t.Fatalf("second attempt recorded as %q", f)
	}

	// The client calls again before the delay: cancelled.
	m3 := h.event(domain.EventCallEnd, "m3", map[string]string{"caller": "380501111111", "disposition": "NO ANSWER"})
	h.event(domain.EventCallStart, "m4", map[string]string{"caller": "380501111111"})
	// A manager calls a client back before the delay: cancelled too.
	h.clk.Advance(time.Second)
	m5 := h.event(domain.EventCallEnd, "m5", map[string]string{"caller": "380501111111", "disposition": "BUSY"})
	h.event(domain.EventOutgoingStart, "o1", map[string]string{"caller": "sip_anna", "dst": "380501111111", "call_type": "out"})
	// Never for a stop-listed line, nor without a mapped manager.
	h.event(domain.EventCallEnd, "m6", map[string]string{"caller": "380671234567", "dst": "380443334455", "disposition": "NO ANSWER"})
	m7 := h.event(domain.EventCallEnd, "m7", map[string]string{"caller": "380502222222", "disposition": "NO ANSWER"})
	// An answered call is no missed call.
	h.event(domain.EventCallEnd, "a1", map[string]string{"caller": "380509999999", "disposition": "ANSWERED", "billsec": "30"})
	h.clk.Advance(31 * time.Minute)
	if n := h.m.Callbacks(h.ctx); n != 0 || len(h.fake.Callbacks()) != 1 {
		t.Fatalf("call-backs made: %q", h.fake.Callbacks())
	}
	if f := h.field(m3); !strings.HasPrefix(f, "cancelled:") {
		t.Fatalf("m3 recorded as %q", f)
	}
	if f := h.field(m5); !strings.HasPrefix(f, "cancelled:") {
		t.Fatalf("m5 recorded as %q", f)
	}
	if f := h.field(m7); !strings.HasPrefix(f, "skipped: the client has no responsible manager") {
		t.Fatalf("m7 recorded as %q", f)
	}

	// After the window a new missed call is called back again.
	m8 := h.event(domain.EventCallEnd, "m8", missed)
	h.clk.Advance(61 * time.Second)
	if n := h.m.Callbacks(h.ctx); n != 1 || len(h.fake.Callbacks()) != 2 {
		t.Fatalf("after the window: %d call-backs, %q", n, h.fake.Callbacks())
	}
	if f := h.field(m8); !strings.HasPrefix(f, "requested:") {
		t.Fatalf("m8 recorded as %q", f)
	}
}

func TestAutoCallbackOff(t *testing.T) {
	h := newHarness(t, nil)
	h.index(row(domain.KindLead, "L1", "380671234567", "anna", "Client one"))
	id := h.event(domain.EventCallEnd, "m1", map[string]string{"caller": "380671234567", "disposition": "NO ANSWER"})
	h.clk.Advance(time.Hour)
	if n := h.m.Callbacks(h.ctx); n != 0 || len(h.fake.Callbacks()) != 0 || h.field(id) != "" {
		t.Fatal("auto_callback off still called back")
	}
}

// TestAutoCallbackSurvivesARestart: call-backs waiting for their delay
// when the process stops are scheduled again by the next one, with the
// cancellations that happened before the stop, and only once.
func TestAutoCallbackSurvivesARestart(t *testing.T) {
	h := newHarness(t, func(s *domain.Settings) {
		s.AutoCallback, s.AutoCallbackDelaySeconds, s.AutoCallbackWindowMinutes = true, 60, 30
	})
	h.index(row(domain.KindLead, "L1", "380671234567", "anna", "Client one"),
		row(domain.KindLead, "L2", "380501111111", "anna", "Client two"))
	// An hour-old missed call, outside the window: not called back.
	old := h.event(domain.EventCallEnd, "m0", map[string]string{"caller": "380671234567", "disposition": "NO ANSWER"})
	h.clk.Advance(time.Hour)
	m1 := h.event(domain.EventCallEnd, "m1", map[string]string{"caller": "380671234567", "disposition": "NO ANSWER"})
	m2 := h.event(domain.EventCallEnd, "m2", map[string]string{"caller": "380501111111", "disposition": "NO ANSWER"})
	h.event(domain.EventCallStart, "c2", map[string]string{"caller": "380501111111"}) // the client calls again

	// The process stops before the delay runs out; the next one starts.
	h.clk.Advance(10 * time.Second)
	next := ringostat.NewManager(h.cfg)
	if n := next.RecoverCallbacks(h.ctx); n != 1 {
		t.Fatalf("%d call-backs recovered, want 1 (m1; m0 is outside the window, m2 was cancelled)", n)
	}
	if n := next.Callbacks(h.ctx); n != 0 {
		t.Fatal("a recovered call-back was made before its delay")
	}
	h.clk.Advance(51 * time.Second)
	if n := next.Callbacks(h.ctx); n != 1 || len(h.fake.Callbacks()) != 1 || h.fake.Callbacks()[0] != "sip_anna→380671234567" {
		t.Fatalf("after the delay: %d call-backs, Ringostat asked for %q", n, h.fake.Callbacks())
	}
	if f := h.field(m1); !strings.HasPrefix(f, "requested:") {
		t.Fatalf("m1 recorded as %q", f)
	}
	if f := h.field(m2); !strings.HasPrefix(f, "cancelled:") {
		t.Fatalf("m2 recorded as %q", f)
	}
	if f := h.field(old); f != "" {
		t.Fatalf("m0 recorded as %q", f)
	}
	// A further restart finds nothing left to do.
	if n := ringostat.NewManager(h.cfg).RecoverCallbacks(h.ctx); n != 0 {
		t.Fatalf("%d call-backs recovered after they were made", n)
	}
}

// TestAutoCallbackHeldTwiceIsMadeOnce: an instance that starts while the
// one that received the missed call still runs holds the same call-back;
// the client is called back once.
func TestAutoCallbackHeldTwiceIsMadeOnce(t *testing.T) {
	h := newHarness(t, func(s *domain.Settings) {
		s.AutoCallback, s.AutoCallbackDelaySeconds, s.AutoCallbackWindowMinutes = true, 60, 30
	})
	h.index(row(domain.KindLead, "L1", "380671234567", "anna", "Client one"))
	m1 := h.event(domain.EventCallEnd, "m1", map[string]string{"caller": "380671234567", "disposition": "NO ANSWER"})
	cfg := h.cfg
	cfg.Instance = "i2"
	started := ringostat.NewManager(cfg)
	if n := started.RecoverCallbacks(h.ctx); n != 1 {
		t.Fatalf("%d call-backs recovered, want 1", n)
	}
	h.clk.Advance(61 * time.Second)
	made := started.Callbacks(h.ctx) + h.m.Callbacks(h.ctx)
	if made != 1 || len(h.fake.Callbacks()) != 1 {
		t.Fatalf("%d call-backs made, Ringostat asked for %q; want one", made, h.fake.Callbacks())
	}
	if f := h.field(m1); !strings.HasPrefix(f, "requested:") {
		t.Fatalf("m1 recorded as %q", f)
	}
}
