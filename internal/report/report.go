package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Bounds of a report's days.
const (
	DefaultDays = 7
	MaxDays     = 90
)

// Source reads kept decisions with their calls' events
// (store.RouteDecisions).
type Source interface {
	RoutedCalls(ctx context.Context, tenantID string, from, to time.Time, fn func(store.RoutedCall) error) error
}

// Report is the routing report of one tenant: one row per day (in the
// tenant's time zone, newest first) and manager routed to.
type Report struct {
	Tenant   string    `json:"tenant"`
	Days     int       `json:"days"`
	TimeZone string    `json:"time_zone"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Rows     []Row     `json:"rows"`
}

// Row counts the calls of one day routed to one manager. Manager "" is
// the calls the PBX was told not to forward (its next block took them), so
// none of them counts as answered by the routed owner.
type Row struct {
	Day     string `json:"day"` // YYYY-MM-DD in the tenant's time zone
	Manager string `json:"manager"`
	Name    string `json:"name"`
	Target  string `json:"target"`
	Routed  int    `json:"routed"`
	// Answered: answered by the manager routed to.
	Answered int `json:"answered"`
	// FellThrough: missed, or answered by someone else (Missed plus the
	// calls of AnsweredInstead).
	FellThrough int `json:"fell_through"`
	Missed      int `json:"missed"`
	// Unknown: no call_end or call_answered event (the call is still on,
	// the PBX does not send them, or they expired), or an answered call
	// whose events name nobody.
	Unknown         int       `json:"unknown"`
	AnsweredInstead []Instead `json:"answered_instead"`
}

// Instead is who answered calls routed to someone else.
type Instead struct {
	// Manager is the CRM user id of the employee with the SIP login or
	// number the event named; "" when no employee has it.
	Manager  string `json:"manager"`
	Employee string `json:"employee"` // the SIP login or number as the event named it
	Name     string `json:"name"`
	Calls    int    `json:"calls"`
}

// ParseDays reads the days parameter: DefaultDays when empty, else a whole
// number from 1 to MaxDays. EINVALID naming days.
func ParseDays(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultDays, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s || n < 1 || n > MaxDays {
		return 0, domain.Errorf(domain.EINVALID, "days: must be a whole number from 1 to %d, got %q", MaxDays, clip(s))
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Build makes the report of the days days up to now (today counts as one)
// of tenant t from src. names maps CRM user ids to the names shown. Errors
// are src's.
func Build(ctx context.Context, src Source, t *tenant.Config, names map[string]string, days int, now time.Time) (Report, error) {
	loc := t.Location
	if loc == nil {
		loc = time.UTC
	}
	local := now.In(loc)
	from := time.Date(local.Year(), local.Month(), local.Day()-(days-1), 0, 0, 0, 0, loc)
	rep := Report{Tenant: t.ID, Days: days, TimeZone: loc.String(), From: from.UTC(), To: now.UTC(), Rows: []Row{}}
	type key struct{ day, manager string }
	rows := map[key]*Row{}
	instead := map[key]map[string]*Instead{}
	err := src.RoutedCalls(ctx, t.ID, from, now.Add(time.Nanosecond), func(c store.RoutedCall) error {
		k := key{c.At.In(loc).Format(time.DateOnly), c.OwnerID}
		r := rows[k]
		if r == nil {
			r = &Row{Day: k.day, Manager: c.OwnerID, Name: names[c.OwnerID], Target: c.Target, AnsweredInstead: []Instead{}}
			rows[k] = r
		}
		r.Routed++
		answered, employee, known := Outcome(c, loc)
		switch {
		case !known:
			r.Unknown++
		case !answered:
			r.Missed++
			r.FellThrough++
		default:
			who, _ := t.Employee(employee)
			if c.OwnerID != "" && (who == c.OwnerID || employee == c.Target) {
				r.Answered++
				return nil
			}
			r.FellThrough++
			m := instead[k]
			if m == nil {
				m = map[string]*Instead{}
				instead[k] = m
			}
			id := who
			if id == "" {
				id = "\x00" + employee // an unmapped line: one entry per line
			}
			in := m[id]
			if in == nil {
				in = &Instead{Manager: who, Employee: employee, Name: names[who]}
				m[id] = in
			}
			in.Calls++
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("routing report of %s: %w", t.ID, err)
	}
	for k, r := range rows {
		for _, in := range instead[k] {
			r.AnsweredInstead = append(r.AnsweredInstead, *in)
		}
		slices.SortFunc(r.AnsweredInstead, func(a, b Instead) int {
			return cmp.Or(b.Calls-a.Calls, strings.Compare(a.Manager, b.Manager), strings.Compare(a.Employee, b.Employee))
		})
		rep.Rows = append(rep.Rows, *r)
	}
	slices.SortFunc(rep.Rows, func(a, b Row) int {
		return cmp.Or(strings.Compare(b.Day, a.Day), strings.Compare(a.Manager, b.Manager))
	})
	return rep, nil
}

// Outcome reads a routed call's outcome from its events as the scenario
// matrix does (events.ReadCall): whether it was answered and the SIP login
// or number of who answered; known is false without a call_end or
// call_answered event, or for an answered call whose events name nobody.
// A call_end without a disposition or talk time defers to a
// call_answered event.
func Outcome(c store.RoutedCall, loc *time.Location) (answered bool, employee string, known bool) {
	var ans events.Call
	if c.Answered != nil {
		ans = events.ReadCall(domain.CallEvent{Kind: domain.EventCallAnswered, UniqueID: c.CallID, Fields: c.Answered}, loc)
	}
	if c.End == nil {
		if c.Answered == nil {
			return false, "", false
		}
		return true, ans.Employee, ans.Employee != ""
	}
	end := events.ReadCall(domain.CallEvent{Kind: domain.EventCallEnd, UniqueID: c.CallID, Fields: c.End}, loc)
	answered = end.Answered
	if !answered && c.Answered != nil && end.Disposition == "" && strings.TrimSpace(c.End["billsec"]) == "" {
		answered = true
	}
	if !answered {
		return false, "", true
	}
	employee = end.Employee
	if employee == "" {
		employee = ans.Employee
	}
	return true, employee, employee != ""
}

// Expire deletes the decisions of each tenant in tenants older than its
// event_retention_days (def when it sets none), the retention of the call
// events they are joined with, and returns how many it deleted and the
// first store error; it goes on past errors.
func Expire(ctx context.Context, st store.RouteDecisions, tenants []domain.Tenant, def time.Duration, now time.Time) (int, error) {
	const batch = 10_000
	var total int
	var first error
	for _, t := range tenants {
		keep := def
		if d := t.Settings.EventRetentionDays; d > 0 {
			keep = time.Duration(d) * 24 * time.Hour
		}
		for {
			n, err := st.ExpireRouteDecisions(ctx, t.ID, now.Add(-keep), batch)
			total += n
			if err != nil {
				if first == nil {
					first = fmt.Errorf("expire route decisions of %s: %w", t.ID, err)
				}
				break
			}
			if n < batch || ctx.Err() != nil {
				break
			}
		}
	}
	expired.Add(total)
	return total, first
}
