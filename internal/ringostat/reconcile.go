package ringostat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store"
)

// RecoveredField marks a call event recovered from the call log; its value
// names the source.
const RecoveredField = "recovered"

// calldateLayouts are the calldate forms of /calls/list: Ringostat's
// example has a numeric offset without a colon, which RFC 3339 refuses.
var calldateLayouts = []string{"2006-01-02T15:04:05-0700", time.RFC3339, "2006-01-02 15:04:05"}

// unfinished are the dispositions of a call the log lists while it is
// still going on.
var unfinished = map[string]bool{"IN PROGRESS": true, "CALLING": true, "RINGING": true, "UP": true, "": true}

// reconcileLag is how long after its end a recovered call was ingested:
// how late a call whose webhook was lost reaches the CRM's queue.
var reconcileLag = metrics.NewPrometheusHistogramExt(`callrouter_ringostat_reconcile_lag_seconds`, metrics.ExponentialBuckets(1, 2, 16))

// Reconcile reads the tenant's call log from the end of the last window
// (less ReconcileOverlap) to now less ReconcileLag, and ingests every
// finished call as its call_end (incoming) or outgoing_end (outgoing) event
// through the events endpoint's idempotent path, marked recovered: a call
// whose event was stored already does nothing, one whose webhook never
// came is applied to the CRM once, late rather than never. It returns how
// many calls were recovered. A window holding MaxCallsPerRequest calls is
// split in halves (MaxCalls). An unfinished call holds the next window's start back
// (up to six hours) so it is read again once it ended.
func (m *Manager) Reconcile(ctx context.Context, tenantID string) (int, error) {
	c, conn, err := m.client(ctx, tenantID)
	if err != nil || conn.State != store.RingostatActive {
		return 0, err
	}
	t := m.cfg.Tenants.Lookup(tenantID)
	if t == nil {
		return 0, domain.Errorf(domain.ENOTFOUND, "tenant %q not loaded", tenantID)
	}
	now := m.now().UTC()
	to := now.Add(-m.cfg.ReconcileLag).Truncate(time.Second)
	from := conn.ReconciledUntil
	if from.IsZero() {
		from = to
	}
	from = from.Add(-m.cfg.ReconcileOverlap).Truncate(time.Second)
	calls, err := m.calls(ctx, c, from, to, 0)
	if err != nil {
		err = m.failed(ctx, tenantID, err)
		if serr := m.cfg.Store.SaveRingostatReconcile(ctx, tenantID, store.RingostatReconcile{Error: errText(err)}); serr != nil {
			return 0, errors.Join(err, serr)
		}
		return 0, err
	}
	until, recovered := to, 0
	for _, call := range calls {
		at, zoned := parseCalldate(call["calldate"])
		if unfinished[strings.ToUpper(strings.TrimSpace(call["disposition"]))] {
			if !at.IsZero() && at.Before(until) && now.Sub(at) < maxOpenHold {
				until = at
			}
			continue
		}
		in, ok := incoming(call, at, zoned)
		if !ok {
			continue
		}
		id, created, err := m.cfg.Ingest.StoreNew(ctx, t, in)
		if err != nil {
			// What is recovered so far stays; the window is read again.
			_ = m.cfg.Store.SaveRingostatReconcile(ctx, tenantID, store.RingostatReconcile{Recovered: recovered,
				Error: errText(err)})
			return recovered, fmt.Errorf("ingest recovered call: %w", err)
		}
		if created {
			// Presence is not touched: the call is long over.
			m.observeCallback(tenantID, id, in.Kind, in.Fields)
			recovered++
			if !at.IsZero() {
				reconcileLag.Update(now.Sub(at.Add(seconds(call["duration"]))).Seconds())
			}
		}
	}
	counter("callrouter_ringostat_recovered_calls_total", tenantID).Add(recovered)
	// until moves forward only: an unfinished call older than the last
	// window's start is already inside the overlap of the next.
	if until.Before(conn.ReconciledUntil) {
		until = conn.ReconciledUntil
	}
	err = m.cfg.Store.SaveRingostatReconcile(ctx, tenantID, store.RingostatReconcile{Until: until, Recovered: recovered})
	return recovered, err
}

// calls reads a window, splitting it while it returns the per-request
// maximum (or is refused for size, as the fake does: the real API's
// behaviour above 6,500 calls is unconfirmed).
func (m *Manager) calls(ctx context.Context, c *Client, from, to time.Time, depth int) ([]Call, error) {
	calls, err := c.Calls(ctx, from, to)
	var re *Error
	limit := strconv.Itoa(m.cfg.MaxCalls)
	tooMany := len(calls) >= m.cfg.MaxCalls ||
		(errors.As(err, &re) && re.Status == http.StatusBadRequest && strings.Contains(re.Message, limit))
	if !tooMany || to.Sub(from) < 2*time.Second || depth >= 20 {
		return calls, err
	}
	mid := from.Add(to.Sub(from) / 2).Truncate(time.Second)
	first, err := m.calls(ctx, c, from, mid, depth+1)
	if err != nil {
		return nil, err
	}
	// from and to are inclusive: the second half starts a second later.
	second, err := m.calls(ctx, c, mid.Add(time.Second), to, depth+1)
	if err != nil {
		return nil, err
	}
	return append(first, second...), nil
}

// incoming turns a finished call of the log into the event its webhook
// would have posted.
func incoming(call Call, at time.Time, zoned bool) (events.Incoming, bool) {
	id := strings.TrimSpace(call["uniqueid"])
	if id == "" || len(id) > 256 {
		return events.Incoming{}, false
	}
	kind := domain.EventCallEnd
	if strings.EqualFold(strings.TrimSpace(call["call_type"]), "out") {
		kind = domain.EventOutgoingEnd
	}
	fields := make(map[string]string, len(call)+2)
	for k, v := range call {
		if v != "" {
			fields[k] = v
		}
	}
	if zoned {
		// The events' calldate reader takes RFC 3339; a calldate without
		// a zone is left for it to read in the tenant's zone.
		fields["calldate"] = at.Format(time.RFC3339)
	}
	fields["event"] = string(kind)
	fields[RecoveredField] = "calls_list"
	return events.Incoming{Kind: kind, UniqueID: id, Fields: fields}, true
}

// parseCalldate reads a calldate and reports whether it named its zone; one
// without is read as UTC, which only orders the window.
func parseCalldate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for i, l := range calldateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, i < 2
		}
	}
	return time.Time{}, false
}

func seconds(s string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
