package events

import (
	"context"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Enqueuer puts the job that processes a partition into the transaction
// that stores its event (jobs.Runner).
type Enqueuer interface {
	// EnqueueTx inserts the partition's job in tx, the store's open
	// transaction.
	EnqueueTx(ctx context.Context, tx any, p store.Partition) error
}

// MaxRejectedBody is how much of a refused body is kept for inspection.
const MaxRejectedBody = 64 << 10

// Ingest stores call events durably.
type Ingest struct {
	store store.Events
	enq   Enqueuer
	now   func() time.Time
}

// NewIngest returns an Ingest storing into st and enqueuing with enq; now
// is the clock (nil: time.Now).
func NewIngest(st store.Events, enq Enqueuer, now func() time.Time) *Ingest {
	if now == nil {
		now = time.Now
	}
	return &Ingest{store: st, enq: enq, now: now}
}

// Store keeps an event of tenant t and its processing job in one
// transaction and returns the event's id; the same (uniqueid, kind) again
// returns the first id and stores nothing. Errors come from the store (an
// internal error means nothing was stored).
func (g *Ingest) Store(ctx context.Context, t *tenant.Config, in Incoming) (string, error) {
	ev := domain.CallEvent{TenantID: t.ID, UniqueID: in.UniqueID, Kind: in.Kind, Fields: in.Fields,
		Partition:  Partition(in.Kind, in.UniqueID, in.Fields, t.Settings.DefaultCountry),
		ReceivedAt: g.now()}
	id, created, err := g.store.InsertEvent(ctx, ev, func(ctx context.Context, tx any) error {
		return g.enq.EnqueueTx(ctx, tx, store.Partition{TenantID: t.ID, Partition: ev.Partition})
	})
	if err != nil {
		return "", fmt.Errorf("store event: %w", err)
	}
	if created {
		counter("callrouter_events_received_total", t.ID).Inc()
	} else {
		counter("callrouter_events_duplicate_total", t.ID).Inc()
	}
	return id, nil
}

// Reject keeps a refused body (its first MaxRejectedBody bytes) with the
// reason it was refused.
func (g *Ingest) Reject(ctx context.Context, tenantID, reason, contentType string, body []byte) error {
	if len(body) > MaxRejectedBody {
		body = body[:MaxRejectedBody]
	}
	counter("callrouter_events_rejected_total", tenantID).Inc()
	return g.store.RejectEvent(ctx, domain.RejectedEvent{TenantID: tenantID, ReceivedAt: g.now(), Reason: reason,
		ContentType: contentType, Body: body})
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
