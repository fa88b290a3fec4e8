package events

import (
	"context"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/store"
)

// ResendDays is how many days before today re-activation with resend
// replays: events of today and the two days before (UTC) are replayed,
// older ones dropped.
const ResendDays = 2

// Replayed reports what a re-activation did with the waiting events.
type Replayed struct {
	Resent  int `json:"resent"`
	Dropped int `json:"dropped"`
}

// Replay decides the fate of events that waited while an integration was
// broken or inactive.
type Replay struct {
	store   store.Events
	enqueue func(ctx context.Context, p store.Partition) error
	now     func() time.Time
}

// NewReplay returns a Replay; enqueue starts a partition's job (the job
// runner's Enqueue); now is the clock (nil: time.Now).
func NewReplay(st store.Events, enqueue func(ctx context.Context, p store.Partition) error, now func() time.Time) *Replay {
	if now == nil {
		now = time.Now
	}
	return &Replay{store: st, enqueue: enqueue, now: now}
}

// Activated runs when an admin activates a tenant's integration. With
// resend, the waiting events received today or in the ResendDays days
// before are processed (each once: their writes are keyed) and older ones
// dropped; without, every waiting event is dropped. Drops are counted.
func (r *Replay) Activated(ctx context.Context, tenantID string, resend bool) (Replayed, error) {
	now := r.now().UTC()
	cutoff := now
	note := "dropped: the integration was re-activated without resend"
	if resend {
		today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		cutoff = today.AddDate(0, 0, -ResendDays)
		note = fmt.Sprintf("dropped: older than the %d days a resend replays", ResendDays+1)
	}
	var out Replayed
	n, err := r.store.DropWaiting(ctx, tenantID, cutoff, note)
	if err != nil {
		return out, fmt.Errorf("drop waiting events: %w", err)
	}
	out.Dropped = n
	counter("callrouter_events_dropped_total", tenantID).Add(n)
	if !resend {
		return out, nil
	}
	parts, err := r.store.WaitingPartitions(ctx, tenantID, now.Add(time.Hour), now.Add(time.Hour), 1<<20)
	if err != nil {
		return out, fmt.Errorf("waiting partitions: %w", err)
	}
	for _, p := range parts {
		if err := r.enqueue(ctx, p); err != nil {
			return out, fmt.Errorf("enqueue resend: %w", err)
		}
	}
	st, err := r.store.EventStats(ctx, tenantID)
	if err != nil {
		return out, err
	}
	out.Resent = st.Waiting
	return out, nil
}
