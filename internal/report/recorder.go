// Package report keeps the route decisions of the routing report and builds
// the report from them: for each day and manager, how many calls were routed
// to the manager, how many the manager answered, how many fell through
// (missed, or answered by someone else) and who answered instead.
//
// A decision is kept per call id, the uuid/uniqueid/call_id the PBX sends
// with its route request (Ringostat: a webhook parameter set to the call's
// uniqueid); the call's events carry the same id, which is how the
// decision is joined with the call's outcome (the call_answered and
// call_end events, read as the scenario matrix reads them:
// events.ReadCall). A route request without a call id cannot be joined and
// is only counted.
//
// The route path hands a decision to Recorder.Record, which copies it into
// a bounded channel without allocating and never blocks: a full buffer
// drops the decision and counts it. Recorder.Run writes the buffered
// decisions in batches, in one transaction each, off the route path.
package report

import (
	"bytes"
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// MaxCallID is the longest call id kept, in bytes. Ringostat's uniqueid
// ("1700000000.12345") and a UUID are far shorter; a longer id is not
// kept (it is counted), since a clipped one could never be joined.
const MaxCallID = 128

// Defaults of RecorderConfig.
const (
	DefaultBuffer   = 8192
	DefaultBatch    = 500
	DefaultInterval = time.Second
)

var (
	recorded     = metrics.NewCounter(`callrouter_route_decisions_recorded_total`)
	withoutID    = metrics.NewCounter(`callrouter_route_decisions_without_call_id_total`)
	droppedFull  = metrics.NewCounter(`callrouter_route_decisions_dropped_total{reason="buffer_full"}`)
	droppedLong  = metrics.NewCounter(`callrouter_route_decisions_dropped_total{reason="call_id_too_long"}`)
	droppedBadID = metrics.NewCounter(`callrouter_route_decisions_dropped_total{reason="call_id_not_text"}`)
	droppedStore = metrics.NewCounter(`callrouter_route_decisions_dropped_total{reason="store_error"}`)
	expired      = metrics.NewCounter(`callrouter_route_decisions_expired_total`)
)

// Sink stores batches of decisions (store.RouteDecisions).
type Sink interface {
	InsertRouteDecisions(ctx context.Context, ds []store.RouteDecision) error
}

// RecorderConfig configures a Recorder; zero fields take the defaults.
type RecorderConfig struct {
	// Buffer is how many decisions wait for the writer at most; more are
	// dropped and counted.
	Buffer int
	// Batch is how many decisions one transaction writes at most; a full
	// batch is written at once.
	Batch int
	// Interval is how long a decision waits for its batch to fill.
	Interval time.Duration
	// Log receives store errors; nop when nil.
	Log *zap.Logger
}

// slot is one decision as the route path hands it over: fixed size and
// free of anything the request owns, so a send copies it without
// allocating. cfg is the tenant's immutable snapshot of the moment, which
// tells the writer who the target belongs to.
type slot struct {
	cfg    *tenant.Config
	at     time.Time
	target string
	reason lookup.Reason
	n      uint8
	id     [MaxCallID]byte
}

// Recorder hands route decisions from the route path to the store. Record
// is safe for concurrent use; run one Run.
type Recorder struct {
	ch       chan slot
	sink     Sink
	batch    int
	interval time.Duration
	log      *zap.Logger
}

// NewRecorder returns a Recorder writing to sink once Run runs.
func NewRecorder(sink Sink, cfg RecorderConfig) *Recorder {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Recorder{ch: make(chan slot, cfg.Buffer), sink: sink, batch: cfg.Batch, interval: cfg.Interval, log: cfg.Log}
}

// Record hands over the decision res made at at for a call of tenant t
// whose call id is callID (the request's bytes, copied here). It never
// blocks and does not allocate: without a call id, with one longer than
// MaxCallID or with the buffer full, the decision is counted and dropped.
func (r *Recorder) Record(t *tenant.Config, callID []byte, res lookup.Result, at time.Time) {
	switch {
	case len(callID) == 0:
		withoutID.Inc()
		return
	case len(callID) > MaxCallID:
		droppedLong.Inc()
		return
	}
	s := slot{cfg: t, at: at, target: res.Target, reason: res.Reason, n: uint8(len(callID))}
	copy(s.id[:], callID)
	select {
	case r.ch <- s:
	default:
		droppedFull.Inc()
	}
}

// Run writes the handed-over decisions until ctx ends, in batches of up to
// Batch, each within Interval of its first decision; then it writes what
// is still buffered (bounded by a few seconds) and returns. A batch the
// store refuses is tried again at the next interval, while the decisions
// waiting stay under Buffer; beyond that the oldest are dropped and
// counted.
func (r *Recorder) Run(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	var pending []store.RouteDecision
	failing := false
	flush := func(ctx context.Context) {
		if len(pending) == 0 {
			return
		}
		for len(pending) > 0 {
			n := min(len(pending), r.batch)
			if err := r.sink.InsertRouteDecisions(ctx, pending[:n]); err != nil {
				failing = true
				if ctx.Err() == nil {
					r.log.Warn("route decisions: store refused a batch; retrying", zap.Int("decisions", n), zap.Error(err))
				}
				if over := len(pending) - cap(r.ch); over > 0 {
					droppedStore.Add(over)
					pending = append(pending[:0], pending[over:]...)
				}
				return
			}
			failing = false
			recorded.Add(n)
			pending = append(pending[:0], pending[n:]...)
		}
	}
	for {
		select {
		case s := <-r.ch:
			if d, ok := decision(s); ok {
				pending = append(pending, d)
			}
			if len(pending) >= r.batch && !failing {
				flush(ctx)
			}
		case <-tick.C:
			flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			flush(fctx)
			if len(pending) > 0 {
				droppedStore.Add(len(pending))
			}
			_ = r.Drain(fctx) // counted as dropped on failure; nothing else to do at shutdown
			cancel()
			return
		}
	}
}

// Drain writes the decisions buffered now, in batches of up to Batch, and
// returns the store's first error; the decisions of a refused batch are
// dropped and counted. It is Run's last step and safe alongside it (tests
// use it without Run).
func (r *Recorder) Drain(ctx context.Context) error {
	var batch []store.RouteDecision
	write := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.sink.InsertRouteDecisions(ctx, batch)
		if err != nil {
			droppedStore.Add(len(batch))
			err = fmt.Errorf("route decisions: %w", err)
		} else {
			recorded.Add(len(batch))
		}
		batch = batch[:0]
		return err
	}
	var first error
	for {
		select {
		case s := <-r.ch:
			if d, ok := decision(s); ok {
				batch = append(batch, d)
			}
			if len(batch) >= r.batch {
				if err := write(); err != nil && first == nil {
					first = err
				}
			}
		default:
			if err := write(); err != nil && first == nil {
				first = err
			}
			return first
		}
	}
}

// decision turns a slot into the row stored, off the route path: the call
// id as the events endpoint would read it (trimmed, clean text), and the
// CRM user the target belongs to.
func decision(s slot) (store.RouteDecision, bool) {
	id := bytes.TrimSpace(s.id[:s.n])
	if len(id) == 0 {
		withoutID.Inc()
		return store.RouteDecision{}, false
	}
	// The events endpoint refuses such ids, so no event could join them;
	// PostgreSQL text could not hold a NUL either.
	if !utf8.Valid(id) || bytes.IndexByte(id, 0) >= 0 {
		droppedBadID.Inc()
		return store.RouteDecision{}, false
	}
	d := store.RouteDecision{TenantID: s.cfg.ID, CallID: string(id), At: s.at, Target: s.target, Reason: s.reason.String()}
	if s.target != "" {
		d.OwnerID = s.cfg.Staff[s.target]
	}
	return d, true
}
