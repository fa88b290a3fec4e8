package crm

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// SlotStore shares a CRM account's rate-limit slots among every instance on
// one database, so that N instances together stay within the account's
// limit instead of using N times it. A slot is taken before a request leaves
// and stays busy until one window after its answer, by the database's clock,
// the same rule as Limiter's local slots.
type SlotStore interface {
	// TakeRateSlot marks a free slot of account (slots in all) busy for hold
	// and returns its number; ok is false when every slot is busy, and wait
	// is then how long until the first frees (0 when one is held, not yet
	// released). hold bounds how long a crashed holder can keep a slot.
	// Errors: the database's.
	TakeRateSlot(ctx context.Context, account string, slots int, hold time.Duration) (slot int, ok bool, wait time.Duration, err error)
	// ReleaseRateSlot keeps the slot busy for window from now, then frees
	// it. Errors: the database's.
	ReleaseRateSlot(ctx context.Context, account string, slot int, window time.Duration) error
}

var (
	sharedWaits  = metrics.NewCounter(`callrouter_crm_shared_limit_waits_total`)
	sharedErrors = metrics.NewCounter(`callrouter_crm_shared_limit_errors_total`)
)

// sharedHold is how long a taken slot stays busy when its holder never
// releases it (killed mid-request): longer than any request runs.
const sharedHold = 30 * time.Second

// sharedRetries is how many failed attempts to take a shared slot are
// made before a request goes out under the local limiter alone.
const sharedRetries = 10

// sharedPoll is the longest a request waiting for a shared slot sleeps
// before it asks again.
const sharedPoll = 15 * time.Millisecond

// acquireShared takes one of the account's shared slots, waiting while all
// are busy, and returns its release. A database that cannot be asked does
// not stop CRM traffic: the local limiter alone then keeps this instance
// within the limit, and the error is counted.
func (l *Limiter) acquireShared(ctx context.Context) (func(), error) {
	failures := 0
	for {
		slot, ok, wait, err := l.shared.TakeRateSlot(ctx, l.account, l.slots, l.window+sharedHold)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			sharedErrors.Inc()
			// A passing fault (a busy pool, a reconnect) is waited out for
			// about a second; a database that stays away does not stop the
			// CRM traffic.
			if failures++; failures >= sharedRetries {
				return func() {}, nil
			}
			if err := waitFor(ctx, nil, sharedPoll*time.Duration(failures)); err != nil {
				return nil, err
			}
			continue
		}
		if ok {
			return func() {
				// The answer is in: its slot stays busy one window from
				// now, as the CRM may still count the request until then.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := l.shared.ReleaseRateSlot(rctx, l.account, slot, l.window); err != nil {
					sharedErrors.Inc() // the slot frees itself after its hold
				}
			}, nil
		}
		sharedWaits.Inc()
		// Sleep until the first slot frees; a slot still held (wait far
		// off) may be released any moment, so ask again soon.
		if err := waitFor(ctx, nil, min(max(wait, time.Millisecond), sharedPoll)); err != nil {
			return nil, err
		}
	}
}
