package console

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// Call states on the live board.
const (
	CallRinging = "ringing"
	CallTalking = "talking"
	CallEnded   = "ended"
	CallMissed  = "missed"
)

// Board limits.
const (
	// DefaultRecent is how long ended and missed calls stay on the board.
	DefaultRecent = 10 * time.Minute
	// maxCalls bounds the calls kept per tenant: a flood of call ids
	// cannot grow the board without limit.
	maxCalls = 500
	// staleLive drops a ringing or talking call whose end never came.
	staleLive = 4 * time.Hour
)

// Call is one call on the live board.
type Call struct {
	ID        string    `json:"id"`
	Caller    string    `json:"caller"`
	Direction string    `json:"direction"` // "in" or "out"
	State     string    `json:"state"`
	Manager   string    `json:"manager"` // employee_number: SIP login or number
	Name      string    `json:"manager_name"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
}

// Board keeps the recent calls of every tenant, as call events report
// them, and wakes the streams watching a tenant when one changes. It is
// safe for concurrent use; it holds only what this instance ingested.
type Board struct {
	now    func() time.Time
	recent time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantBoard
	closed  chan struct{}
}

type tenantBoard struct {
	calls    map[string]*Call
	watchers map[chan struct{}]struct{}
	// order holds call ids as they came on the board, oldest first (ids
	// pruned since stay until evictOldest or compaction passes them), so
	// that a full board evicts in constant time instead of scanning it on
	// the ingest path.
	order  []string
	pruned time.Time // last prune on the ingest path
}

// NewBoard returns an empty board; now nil means time.Now, recent zero
// means DefaultRecent.
func NewBoard(now func() time.Time, recent time.Duration) *Board {
	if now == nil {
		now = time.Now
	}
	if recent <= 0 {
		recent = DefaultRecent
	}
	return &Board{now: now, recent: recent, tenants: map[string]*tenantBoard{}, closed: make(chan struct{})}
}

func (b *Board) tenant(id string) *tenantBoard {
	tb := b.tenants[id]
	if tb == nil {
		tb = &tenantBoard{calls: map[string]*Call{}, watchers: map[chan struct{}]struct{}{}}
		b.tenants[id] = tb
	}
	return tb
}

// ObserveCall records a stored call event of a tenant on the board. It
// never blocks on a watcher.
func (b *Board) ObserveCall(tenantID string, kind domain.EventKind, uniqueID string, fields map[string]string) {
	if uniqueID == "" {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	tb := b.tenant(tenantID)
	c := tb.calls[uniqueID]
	if c == nil {
		// A prune walks the whole board: once a second is enough for the
		// ingest path (every event of a flood is a new call), and the
		// readers prune before they look.
		if now.Sub(tb.pruned) >= time.Second {
			b.prune(tb, now)
			tb.pruned = now
		}
		if len(tb.calls) >= maxCalls {
			tb.evictOldest()
		}
		c = &Call{ID: uniqueID, Started: now, Direction: "in"}
		tb.calls[uniqueID] = c
		tb.order = append(tb.order, uniqueID)
		if len(tb.order) > 2*maxCalls {
			tb.compact()
		}
	}
	c.Updated = now
	if v := firstOf(fields, "caller", "caller_number", "callerid", "src"); v != "" && c.Caller == "" {
		c.Caller = v
	}
	if v := fields["employee_number"]; v != "" {
		c.Manager = v
	}
	if v := fields["employee_fio"]; v != "" {
		c.Name = v
	}
	if kind.Outgoing() {
		c.Direction = "out"
		if v := firstOf(fields, "dst", "destination"); v != "" {
			c.Caller = v // the client is the one called
		}
	}
	switch kind {
	case domain.EventCallStart:
		if c.State == "" {
			c.State = CallRinging
		}
	case domain.EventOutgoingStart:
		if c.State == "" {
			c.State = CallTalking
		}
	case domain.EventCallAnswered:
		if c.State != CallEnded && c.State != CallMissed {
			c.State = CallTalking
		}
	case domain.EventCallEnd, domain.EventOutgoingEnd:
		c.State = CallMissed
		if d := strings.ToUpper(strings.TrimSpace(fields["disposition"])); d == "ANSWERED" || d == "PROPER" {
			c.State = CallEnded
		}
	}
	for w := range tb.watchers {
		select {
		case w <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

func firstOf(fields map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(fields[k]); v != "" {
			return v
		}
	}
	return ""
}

// prune drops finished calls older than the recent window and live calls
// whose end never came.
func (b *Board) prune(tb *tenantBoard, now time.Time) {
	for id, c := range tb.calls {
		finished := c.State == CallEnded || c.State == CallMissed
		if finished && now.Sub(c.Updated) > b.recent || now.Sub(c.Updated) > staleLive {
			delete(tb.calls, id)
		}
	}
}

// evictOldest drops the call that came on the board first and is still on
// it.
func (tb *tenantBoard) evictOldest() {
	for len(tb.order) > 0 {
		id := tb.order[0]
		tb.order = tb.order[1:]
		if _, ok := tb.calls[id]; ok {
			delete(tb.calls, id)
			return
		}
	}
}

// compact drops the ids of pruned calls from the order list, which so
// stays within twice maxCalls: at most once per maxCalls new calls.
func (tb *tenantBoard) compact() {
	kept := make([]string, 0, len(tb.calls)+maxCalls)
	for _, id := range tb.order {
		if _, ok := tb.calls[id]; ok {
			kept = append(kept, id)
		}
	}
	tb.order = kept
}

// Calls returns a tenant's calls on the board: live ones first, then the
// most recently changed.
func (b *Board) Calls(tenantID string) []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	tb := b.tenants[tenantID]
	if tb == nil {
		return []Call{}
	}
	b.prune(tb, b.now())
	out := make([]Call, 0, len(tb.calls))
	for _, c := range tb.calls {
		out = append(out, *c)
	}
	live := func(c Call) bool { return c.State == CallRinging || c.State == CallTalking }
	sort.Slice(out, func(i, j int) bool {
		if live(out[i]) != live(out[j]) {
			return live(out[i])
		}
		if !out[i].Updated.Equal(out[j].Updated) {
			return out[i].Updated.After(out[j].Updated)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Watch returns a channel that receives a value after each change of the
// tenant's board (changes close together may be reported once), and a
// function that stops the watch.
func (b *Board) Watch(tenantID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.tenant(tenantID).watchers[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.tenant(tenantID).watchers, ch)
		b.mu.Unlock()
	}
}

// Forget drops a tenant's board (the tenant was deleted).
func (b *Board) Forget(tenantID string) {
	b.mu.Lock()
	delete(b.tenants, tenantID)
	b.mu.Unlock()
}

// Close ends every stream watching the board (at shutdown, so draining
// does not wait for them). Closing twice is harmless.
func (b *Board) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
}

// Closed is closed by Close.
func (b *Board) Closed() <-chan struct{} { return b.closed }
