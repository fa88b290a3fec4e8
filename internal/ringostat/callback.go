package ringostat

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// CallbackField is the event field an automatic call-back attempt is
// recorded in, on the missed call's event.
const CallbackField = "auto_callback"

// pendingCallback is a call-back waiting for its delay.
type pendingCallback struct {
	tenantID, eventID, uniqueID, client string
	due                                 time.Time
}

// Observe hears a stored call event (the events endpoint's and the
// reconciliation's): it updates presence, schedules an automatic call-back
// for a missed incoming call of a tenant with auto_callback, and cancels a
// pending one when the client calls again or is called. It does not block.
func (m *Manager) Observe(tenantID, eventID string, kind domain.EventKind, fields map[string]string) {
	m.cfg.Presence.Observe(tenantID, kind, fields)
	m.observeCallback(tenantID, eventID, kind, fields)
}

// observeCallback schedules or cancels call-backs for one event.
func (m *Manager) observeCallback(tenantID, eventID string, kind domain.EventKind, fields map[string]string) {
	t := m.cfg.Tenants.Lookup(tenantID)
	if t == nil {
		return
	}
	if !t.Settings.AutoCallback {
		// Nothing to schedule, and nothing to cancel when no call-back is
		// pending: skip normalizing the client's number, the costliest
		// step of an event (libphonenumber) on the ingest path.
		m.mu.Lock()
		pending := len(m.callbacks) > 0
		m.mu.Unlock()
		if !pending {
			return
		}
	}
	call := events.ReadCall(domain.CallEvent{Kind: kind, UniqueID: fields["uniqueid"], Fields: fields}, t.Location)
	num, ok := call.ClientNumber(t.Settings.DefaultCountry)
	if !ok {
		return
	}
	key := tenantID + "\x00" + num
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.callbacks[key]; p != nil && p.uniqueID != call.UniqueID {
		// The client called again, or a manager called them: nothing to
		// call back for any more (a new missed call schedules afresh).
		delete(m.callbacks, key)
		m.cancelled = append(m.cancelled, p) // recorded on its event by the next Callbacks
	}
	s := t.Settings
	if !s.AutoCallback || kind != domain.EventCallEnd || call.Outgoing || call.Answered || stopped(t, call, num) {
		return
	}
	now := m.now()
	at := call.Start
	if at.IsZero() || at.After(now) {
		at = now
	}
	if now.Sub(at) > time.Duration(s.AutoCallbackWindowMinutes)*time.Minute {
		return // a call recovered long after it was missed
	}
	m.callbacks[key] = &pendingCallback{tenantID: tenantID, eventID: eventID, uniqueID: call.UniqueID, client: num,
		due: at.Add(time.Duration(s.AutoCallbackDelaySeconds) * time.Second)}
}

// RecoverCallbacks schedules again the call-backs that were pending when
// the previous process stopped: it hears once more, in the order they
// arrived, the stored events of the last auto_callback_window_minutes of
// each tenant with auto_callback and an active Ringostat connection, all
// but the missed calls whose call-back is already recorded, so a later
// call cancels as it did the first time. A call-back this instance and
// the one that received the call (still running) both hold is made once:
// each claims the missed call's event before making it (see Callbacks).
// Run calls it once at start; it returns how many call-backs it scheduled.
func (m *Manager) RecoverCallbacks(ctx context.Context) int {
	conns, err := m.cfg.Store.ListRingostat(ctx)
	if err != nil {
		m.log.Warn("ringostat: pending call-backs not recovered", zap.Error(err))
		return 0
	}
	m.mu.Lock()
	before := len(m.callbacks)
	m.mu.Unlock()
	for _, c := range conns {
		t := m.cfg.Tenants.Lookup(c.TenantID)
		if c.State != store.RingostatActive || t == nil || !t.Settings.AutoCallback {
			continue
		}
		since := m.now().Add(-time.Duration(t.Settings.AutoCallbackWindowMinutes) * time.Minute)
		evs, err := m.eventsSince(ctx, c.TenantID, since)
		if err != nil {
			m.log.Warn("ringostat: pending call-backs not recovered", zap.String("tenant", c.TenantID), zap.Error(err))
			continue
		}
		for _, ev := range evs {
			if ev.Fields[CallbackField] == "" {
				m.observeCallback(c.TenantID, ev.ID, ev.Kind, ev.Fields)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(len(m.callbacks)-before, 0)
}

// eventsSince returns a tenant's events received since, oldest first.
// The listing puts failed and waiting events first, so each state is read
// on its own, newest first, back to since.
func (m *Manager) eventsSince(ctx context.Context, tenantID string, since time.Time) ([]domain.CallEvent, error) {
	const page = 1000
	var out []domain.CallEvent
	for _, state := range []string{domain.EventWaiting, domain.EventDone, domain.EventFailed, domain.EventDropped} {
		f := store.EventFilter{State: state, Limit: page}
		from := len(out)
		for {
			evs, err := m.cfg.Store.ListEvents(ctx, tenantID, f)
			if err != nil {
				return nil, err
			}
			for _, ev := range evs {
				if ev.ReceivedAt.Before(since) {
					evs = nil // older than the window: this state is done
					break
				}
				out = append(out, ev)
			}
			if len(evs) < page {
				break
			}
			f.Before = evs[len(evs)-1].ReceivedAt
		}
		// Oldest first within the state, events received in the same
		// instant in the order they were stored; the sort keeps it.
		slices.Reverse(out[from:])
	}
	slices.SortStableFunc(out, func(a, b domain.CallEvent) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	return out, nil
}

// stopped reports whether the call touches a stop-listed number: the line
// called, the answering or calling employee, or the client.
func stopped(t *tenant.Config, call events.Call, num string) bool {
	for _, n := range []string{call.Line, call.Employee, call.Client, num} {
		if n == "" {
			continue
		}
		if _, ok := t.Stops[n]; ok {
			return true
		}
		if d, err := phone.Normalize(n, t.Settings.DefaultCountry); err == nil {
			if _, ok := t.Stops[d]; ok {
				return true
			}
		}
	}
	return false
}

// Callbacks makes the automatic call-backs whose delay ran out: each to a
// client whose responsible manager (as routing finds them) is a mapped SIP
// login, at most once per client per auto_callback_window_minutes (kept in
// the store, so a restart or another instance does not repeat it). Each
// attempt, skip and failure is recorded on the missed call's event. It
// returns how many call-backs Ringostat accepted.
func (m *Manager) Callbacks(ctx context.Context) int {
	now := m.now()
	var due []*pendingCallback
	m.mu.Lock()
	cancelled := m.cancelled
	m.cancelled = nil
	for k, p := range m.callbacks {
		if !now.Before(p.due) {
			due = append(due, p)
			delete(m.callbacks, k)
		}
	}
	m.mu.Unlock()
	for _, p := range cancelled {
		metrics.GetOrCreateCounter(`callrouter_ringostat_callbacks_total{tenant="` + p.tenantID + `",result="cancelled"}`).Inc()
		m.record(ctx, p, "cancelled: the client called again or was called before the delay ran out")
	}
	made := 0
	for _, p := range due {
		// An instance that started meanwhile may hold the same call-back
		// (RecoverCallbacks): the one that claims the missed call's event
		// first makes it, the other leaves it.
		if p.eventID != "" {
			mine, err := m.cfg.Store.ClaimEventField(ctx, p.tenantID, p.eventID, CallbackField,
				"claimed by "+m.cfg.Instance+" at "+now.UTC().Format(time.RFC3339))
			if err == nil && !mine {
				continue
			}
		}
		result, err := m.callback(ctx, p, now)
		if err != nil {
			result = "failed: " + errText(err)
		}
		metrics.GetOrCreateCounter(`callrouter_ringostat_callbacks_total{tenant="` + p.tenantID + `",result="` + outcome(result) + `"}`).Inc()
		if outcome(result) == "requested" {
			made++
		}
		m.record(ctx, p, result)
	}
	return made
}

// record writes a call-back's outcome on its missed call's event.
func (m *Manager) record(ctx context.Context, p *pendingCallback, text string) {
	if p.eventID == "" {
		return
	}
	if err := m.cfg.Store.SetEventField(ctx, p.tenantID, p.eventID, CallbackField, text); err != nil && ctx.Err() == nil {
		m.log.Warn("ringostat: record call-back on its event", zap.String("tenant", p.tenantID), zap.Error(err))
	}
}

func outcome(result string) string {
	for _, o := range []string{"requested", "skipped", "failed"} {
		if len(result) >= len(o) && result[:len(o)] == o {
			return o
		}
	}
	return "failed"
}

func (m *Manager) callback(ctx context.Context, p *pendingCallback, now time.Time) (string, error) {
	t := m.cfg.Tenants.Lookup(p.tenantID)
	if t == nil || !t.Settings.AutoCallback {
		return "skipped: auto_callback is off", nil
	}
	rows, err := m.cfg.Store.LookupSuffix(ctx, p.tenantID, phone.Suffix(p.client))
	if err != nil {
		return "", err
	}
	res := lookup.Decide(t, lookup.Rows(rows), []byte(p.client))
	if _, sip := t.SIPLogins[res.Target]; res.Reason != lookup.ReasonOwner || !sip {
		return "skipped: the client has no responsible manager mapped to a SIP login", nil
	}
	key := store.TenantMetaKey(store.MetaRingostatCallback, p.tenantID, p.client)
	window := time.Duration(t.Settings.AutoCallbackWindowMinutes) * time.Minute
	if v, err := m.cfg.Store.GetMeta(ctx, key); err == nil {
		if last, perr := time.Parse(time.RFC3339Nano, v); perr == nil && now.Sub(last) < window {
			return "skipped: called back at " + last.UTC().Format(time.RFC3339) + ", within auto_callback_window_minutes", nil
		}
	} else if domain.ErrorCode(err) != domain.ENOTFOUND {
		return "", err
	}
	c, conn, err := m.client(ctx, p.tenantID)
	if err != nil {
		return "", err
	}
	if conn.State != store.RingostatActive {
		return "skipped: the Ringostat connection is broken", nil
	}
	// Recorded before the call: a crash after Ringostat accepted it must
	// not make a second one.
	if err := m.cfg.Store.SetMeta(ctx, key, now.UTC().Format(time.RFC3339Nano)); err != nil {
		return "", err
	}
	if err := c.CallbackExternal(ctx, res.Target, p.client); err != nil {
		return "", m.failed(ctx, p.tenantID, err)
	}
	return fmt.Sprintf("requested: %s → %s at %s", res.Target, p.client, now.UTC().Format(time.RFC3339)), nil
}
