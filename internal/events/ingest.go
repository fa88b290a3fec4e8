package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Enqueuer puts the jobs that process partitions into the transaction
// that stores their events (jobs.Runner).
type Enqueuer interface {
	// EnqueueTx inserts one job per partition in tx, the store's open
	// transaction.
	EnqueueTx(ctx context.Context, tx any, parts []store.Partition) error
}

// Limits of the rejected bodies kept for inspection. Junk must not fill the
// disk nor take the writer from other tenants' events: a body is kept
// truncated, a tenant keeps its newest MaxRejectedPerTenant (older ones are
// dropped and counted), at most RejectedRate a second (burst RejectedBurst)
// are written per tenant and at most maxRejectWriters at once across
// tenants; the rest are counted, not stored. Old ones expire by the
// tenant's event_retention_days (ExpireRejected).
const (
	MaxRejectedBody      = 4 << 10
	MaxRejectedPerTenant = 1000
	RejectedRate         = 10
	RejectedBurst        = 100
	maxRejectWriters     = 2
)

// Group commit limits. A batch is whatever arrived while the previous
// commit ran, so a lone event waits for nothing and a burst shares one
// transaction (one fsync on SQLite, one round trip on PostgreSQL).
const (
	maxBatch      = 256
	commitTimeout = 10 * time.Second
)

// ErrIngestClosed is returned by Store after Close.
var ErrIngestClosed = errors.New("events: ingest closed")

// Ingest stores call events durably, committing the events that arrive
// together in one transaction.
type Ingest struct {
	store store.Events
	enq   Enqueuer
	now   func() time.Time

	// rejectLimit and rejectBurst bound the rejected bodies stored per
	// tenant; limiters holds each tenant's bucket.
	rejectMu    sync.Mutex
	rejectLimit rate.Limit
	rejectBurst int
	limiters    map[string]*rate.Limiter
	// rejectWriters holds a token per rejected-body write under way.
	rejectWriters chan struct{}

	mu     sync.RWMutex // held for reading while sending to reqs, for writing by Close
	closed bool
	reqs   chan *pending
	quit   chan struct{}
	wg     sync.WaitGroup
}

// pending is one event waiting for its batch's commit; done is buffered so
// a committer never blocks on a caller that gave up.
type pending struct {
	ev   domain.CallEvent
	done chan ingested
}

type ingested struct {
	store.Inserted
	err error
}

// NewIngest returns an Ingest storing into st and enqueuing with enq, with
// committers transactions committing in parallel (1 suits SQLite's single
// writer; a PostgreSQL pool can take more; < 1 means 1); now is the clock
// (nil: time.Now). Close stops it.
func NewIngest(st store.Events, enq Enqueuer, now func() time.Time, committers int) *Ingest {
	if now == nil {
		now = time.Now
	}
	committers = max(committers, 1)
	g := &Ingest{store: st, enq: enq, now: now, reqs: make(chan *pending, maxBatch*committers), quit: make(chan struct{}),
		rejectLimit: RejectedRate, rejectBurst: RejectedBurst, limiters: map[string]*rate.Limiter{},
		rejectWriters: make(chan struct{}, maxRejectWriters)}
	g.wg.Add(committers)
	for range committers {
		go g.commitLoop()
	}
	return g
}

// Close stores what was handed in before it and stops the committers;
// later Store calls get ErrIngestClosed.
func (g *Ingest) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.quit)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// Store keeps an event of tenant t and its processing job durably and
// returns the event's id once they are committed; the same (uniqueid, kind)
// again returns the first id and stores nothing. Errors come from the store
// (an error means this event was not acknowledged, though it may have been
// stored: the PBX's retry then finds it), ctx, or ErrIngestClosed.
func (g *Ingest) Store(ctx context.Context, t *tenant.Config, in Incoming) (string, error) {
	id, _, err := g.StoreNew(ctx, t, in)
	return id, err
}

// StoreNew is Store that also reports whether this call stored the event
// (false: an event with its uniqueid and kind was stored before). Errors as
// Store's.
func (g *Ingest) StoreNew(ctx context.Context, t *tenant.Config, in Incoming) (string, bool, error) {
	now := g.now()
	if in.Kind == domain.EventForm && in.UniqueID == "" {
		in.UniqueID = FormKey(in.Fields, now)
	}
	var part string
	if in.Kind == domain.EventForm {
		part = FormPartition(in.UniqueID, in.Fields, t.Settings)
	} else {
		part = Partition(in.Kind, in.UniqueID, in.Fields, t.Settings.DefaultCountry)
	}
	p := &pending{done: make(chan ingested, 1), ev: domain.CallEvent{TenantID: t.ID, UniqueID: in.UniqueID,
		Kind: in.Kind, Fields: in.Fields, Partition: part, ReceivedAt: now}}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return "", false, ErrIngestClosed
	}
	select {
	case g.reqs <- p:
	case <-ctx.Done():
		g.mu.RUnlock()
		return "", false, fmt.Errorf("store event: %w", ctx.Err())
	}
	g.mu.RUnlock()
	select {
	case r := <-p.done:
		if r.err != nil {
			return "", false, fmt.Errorf("store event: %w", r.err)
		}
		if r.Created {
			counter("callrouter_events_received_total", t.ID).Inc()
		} else {
			counter("callrouter_events_duplicate_total", t.ID).Inc()
		}
		return r.ID, r.Created, nil
	case <-ctx.Done():
		return "", false, fmt.Errorf("store event: %w", ctx.Err())
	}
}

// commitLoop takes the first waiting event, everything else already
// waiting up to maxBatch, and commits them together. After Close it
// commits what is left and returns.
func (g *Ingest) commitLoop() {
	defer g.wg.Done()
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case p := <-g.reqs:
			batch = append(batch[:0], p)
		case <-g.quit:
			for {
				select {
				case p := <-g.reqs:
					g.commit([]*pending{p})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-g.reqs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		g.commit(batch)
	}
}

// commit stores a batch. A batch refused for what one event names (a
// tenant deleted meanwhile) is retried one event at a time, so that event
// fails alone; any other failure (the database is down) fails them all.
func (g *Ingest) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	batchSize.Update(float64(len(batch)))
	evs := make([]domain.CallEvent, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	res, err := g.store.InsertEvents(ctx, evs, g.enqueue)
	if err == nil {
		for i, p := range batch {
			p.done <- ingested{Inserted: res[i]}
		}
		return
	}
	if len(batch) == 1 || domain.ErrorCode(err) != domain.ENOTFOUND {
		for _, p := range batch {
			p.done <- ingested{err: err}
		}
		return
	}
	for _, p := range batch {
		g.commit([]*pending{p})
	}
}

// enqueue inserts one job per distinct partition of the stored events.
func (g *Ingest) enqueue(ctx context.Context, tx any, stored []domain.CallEvent) error {
	parts := make([]store.Partition, 0, len(stored))
	seen := make(map[store.Partition]bool, len(stored))
	for _, ev := range stored {
		p := store.Partition{TenantID: ev.TenantID, Partition: ev.Partition}
		if !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	return g.enq.EnqueueTx(ctx, tx, parts)
}

// batchSize is the number of events per group commit.
var batchSize = metrics.NewPrometheusHistogramExt("callrouter_events_ingest_batch_size", metrics.ExponentialBuckets(1, 2, 12))

// LimitRejected sets how many rejected bodies a tenant may have stored per
// second (perSecond, rate.Inf for no limit) with a burst of burst; the
// default is RejectedRate and RejectedBurst. Call it before the first
// Reject.
func (g *Ingest) LimitRejected(perSecond rate.Limit, burst int) {
	g.rejectMu.Lock()
	defer g.rejectMu.Unlock()
	g.rejectLimit, g.rejectBurst = perSecond, burst
	clear(g.limiters)
}

// Reject keeps a refused body, its first MaxRejectedBody bytes, with the
// reason it was refused, and drops the tenant's oldest beyond
// MaxRejectedPerTenant. A body over the tenant's rate, or arriving while
// maxRejectWriters others are being written, is counted and not stored, so
// a flood of junk costs the writer a bounded share. It returns the store's
// error.
func (g *Ingest) Reject(ctx context.Context, tenantID, reason, contentType string, body []byte) error {
	if len(body) > MaxRejectedBody {
		body = body[:MaxRejectedBody]
	}
	counter("callrouter_events_rejected_total", tenantID).Inc()
	if !g.rejectAllowed(tenantID) {
		counter("callrouter_events_rejected_unstored_total", tenantID).Inc()
		return nil
	}
	select {
	case g.rejectWriters <- struct{}{}:
		defer func() { <-g.rejectWriters }()
	default:
		counter("callrouter_events_rejected_unstored_total", tenantID).Inc()
		return nil
	}
	if err := g.store.RejectEvent(ctx, domain.RejectedEvent{TenantID: tenantID, ReceivedAt: g.now(), Reason: reason,
		ContentType: contentType, Body: body}); err != nil {
		return err
	}
	n, err := g.store.TrimRejected(ctx, tenantID, MaxRejectedPerTenant)
	if n > 0 {
		counter("callrouter_events_rejected_dropped_total", tenantID).Add(n)
	}
	return err
}

// rejectAllowed takes a token from the tenant's rejected-body bucket.
func (g *Ingest) rejectAllowed(tenantID string) bool {
	g.rejectMu.Lock()
	defer g.rejectMu.Unlock()
	if g.rejectLimit == rate.Inf {
		return true
	}
	l := g.limiters[tenantID]
	if l == nil {
		l = rate.NewLimiter(g.rejectLimit, g.rejectBurst)
		g.limiters[tenantID] = l
	}
	return l.AllowN(g.now(), 1)
}

// expireBatch is how many finished events one delete removes: small
// enough that a sweep through a year of history never holds the writer (or
// PostgreSQL's locks) long enough to delay an acknowledgement.
const expireBatch = 500

// ExpireEvents deletes the finished events (done, failed, dropped) of each
// tenant in tenants received before its event_retention_days (def when the
// tenant sets none), in batches of expireBatch, counting them in
// callrouter_events_expired_total; waiting events are never deleted. It
// returns how many it deleted and the first store error; it goes on past
// errors.
func ExpireEvents(ctx context.Context, st store.Events, tenants []domain.Tenant, def time.Duration, now time.Time) (int, error) {
	var (
		total    int
		firstErr error
	)
	for _, t := range tenants {
		before := now.Add(-retention(t, def))
		for ctx.Err() == nil {
			n, err := st.ExpireEvents(ctx, t.ID, before, expireBatch)
			if n > 0 {
				total += n
				counter("callrouter_events_expired_total", t.ID).Add(n)
			}
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("expire events of %s: %w", t.ID, err)
				}
				break
			}
			if n < expireBatch {
				break
			}
		}
	}
	return total, firstErr
}

// retention is how long a tenant keeps finished events and rejected bodies.
func retention(t domain.Tenant, def time.Duration) time.Duration {
	if d := t.Settings.EventRetentionDays; d > 0 {
		return time.Duration(d) * 24 * time.Hour
	}
	return def
}

// ExpireRejected deletes the rejected bodies of each tenant in tenants
// older than its event_retention_days (def when the tenant sets none),
// counting them in callrouter_events_rejected_expired_total, and returns
// how many it deleted and the first store error; it goes on past errors.
func ExpireRejected(ctx context.Context, st store.Events, tenants []domain.Tenant, def time.Duration, now time.Time) (int, error) {
	var (
		total    int
		firstErr error
	)
	for _, t := range tenants {
		n, err := st.ExpireRejected(ctx, t.ID, now.Add(-retention(t, def)))
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("expire rejected bodies of %s: %w", t.ID, err)
		}
		if n > 0 {
			total += n
			counter("callrouter_events_rejected_expired_total", t.ID).Add(n)
		}
	}
	return total, firstErr
}

// counter returns a per-tenant event counter. Tenant ids are validated
// slugs, safe as label values.
func counter(name, tenantID string) *metrics.Counter {
	return metrics.GetOrCreateCounter(name + `{tenant="` + tenantID + `"}`)
}

// Publish sets a tenant's backlog gauges from its event counts:
// callrouter_events_waiting and callrouter_events_oldest_waiting_seconds
// (0 when nothing waits), the figures to alert on.
func Publish(tenantID string, st domain.EventStats, now time.Time) {
	metrics.GetOrCreateGauge(`callrouter_events_waiting{tenant="`+tenantID+`"}`, nil).Set(float64(st.Waiting))
	age := 0.0
	if st.Waiting > 0 && !st.OldestWaiting.IsZero() {
		age = now.Sub(st.OldestWaiting).Seconds()
	}
	metrics.GetOrCreateGauge(`callrouter_events_oldest_waiting_seconds{tenant="`+tenantID+`"}`, nil).Set(age)
}
