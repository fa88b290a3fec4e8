package admin

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
)

// Status is what an admin checks on a tenant at a glance.
type Status struct {
	Tenant       string       `json:"tenant"`
	Name         string       `json:"name"`
	IndexSize    int          `json:"index_size"`
	Employees    int          `json:"employees"`
	StopList     int          `json:"stop_list"`
	DefaultOwner DefaultOwner `json:"default_owner"`
	Cache        CacheStatus  `json:"cache"`
	Integration  Integration  `json:"integration"`
	// Events counts the tenant's call events by state: the backlog is
	// Waiting, the failures Failed, the drops Dropped.
	Events domain.EventStats `json:"events"`
	// Ringostat is the connection to the tenant's Ringostat project.
	Ringostat RingostatStatus `json:"ringostat"`
	// SALESmanago is the SALESmanago ⇄ Zoho CRM contact sync: connection,
	// last pass and its error, progress and counts; never the secrets.
	SALESmanago SALESmanagoStatus `json:"salesmanago"`
	// InactiveUsers are the mapped employees, and the default owner, whose
	// CRM user the CRM's last users list shows deactivated or no longer
	// has: routing treats their entities as unmapped (on_unmapped) until
	// the user is active again or the mapping changes. Empty while the CRM's
	// users were never listed.
	InactiveUsers []InactiveUser `json:"inactive_users"`
}

// InactiveUser is a mapped employee or the default owner whose CRM user is
// not active any more.
type InactiveUser struct {
	CRMUserID string `json:"crm_user_id"`
	Name      string `json:"name,omitempty"`
	SIP       string `json:"sip,omitempty"`
	Phone     string `json:"phone,omitempty"`
	// State is "deactivated" (listed inactive) or "removed" (not listed).
	State        string `json:"state"`
	DefaultOwner bool   `json:"default_owner,omitempty"`
}

// inactiveUsers lists the employees and the default owner that users
// (the CRM's last list; none: unknown) shows deactivated or removed.
func inactiveUsers(emps []domain.Employee, defaultOwner string, users []store.CRMUser) []InactiveUser {
	out := []InactiveUser{}
	if len(users) == 0 {
		return out
	}
	active := make(map[string]bool, len(users))
	for _, u := range users {
		active[u.ID] = u.Active
	}
	state := func(id string) string {
		if on, listed := active[id]; !listed {
			return "removed"
		} else if !on {
			return "deactivated"
		}
		return ""
	}
	owner := false
	for _, e := range emps {
		if st := state(e.CRMUserID); st != "" {
			out = append(out, InactiveUser{CRMUserID: e.CRMUserID, Name: e.Name, SIP: e.SIP, Phone: e.Phone, State: st,
				DefaultOwner: e.CRMUserID == defaultOwner})
			owner = owner || e.CRMUserID == defaultOwner
		}
	}
	if st := state(defaultOwner); defaultOwner != "" && st != "" && !owner {
		out = append(out, InactiveUser{CRMUserID: defaultOwner, State: st, DefaultOwner: true})
	}
	return out
}

// CacheStatus reports the route cache of this instance: whether it is warm
// (shared by all tenants) and the tenant's own hits and misses on this
// instance since it started.
type CacheStatus struct {
	Ready        bool    `json:"ready"`
	HitRatio     float64 `json:"hit_ratio"`
	Hits         uint64  `json:"hits"`
	NegativeHits uint64  `json:"negative_hits"`
	Misses       uint64  `json:"misses"`
}

// Integration is the tenant's CRM connection, "not_configured" when the
// phone index is filled by contacts import only.
type Integration struct {
	State string `json:"state"`
	*IntegrationView
	// MissingFields names the fields the CRM account lacks that callrouter
	// would write (Zoho: the rs_ custom fields of Leads); calls are filed
	// without them. FieldsError says why they could not be checked.
	MissingFields []string `json:"missing_fields,omitempty"`
	FieldsError   string   `json:"fields_error,omitempty"`
}

// fieldsCheckTimeout bounds the CRM read behind a status's field check;
// the adapter keeps its answer for the connection, so it is read once.
const fieldsCheckTimeout = 5 * time.Second

// Status returns a tenant's status. ENOTFOUND.
func (s *Service) Status(ctx context.Context, id string) (Status, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return Status{}, err
	}
	n, err := s.store.CountIndex(ctx, id)
	if err != nil {
		return Status{}, err
	}
	emps, err := s.store.ListEmployees(ctx, id)
	if err != nil {
		return Status{}, err
	}
	stops, err := s.store.ListStops(ctx, id)
	if err != nil {
		return Status{}, err
	}
	owner, err := s.DefaultOwner(ctx, id)
	if err != nil {
		return Status{}, err
	}
	integ := Integration{State: "not_configured"}
	if in, err := s.store.Integration(ctx, id); err == nil {
		v := integrationView(in)
		integ = Integration{State: in.State, IntegrationView: &v}
		if in.State == store.IntegrationActive && s.crms != nil {
			fctx, cancel := context.WithTimeout(ctx, fieldsCheckTimeout)
			integ.MissingFields, err = s.crms.MissingFields(fctx, id)
			cancel()
			if err != nil {
				integ.FieldsError = err.Error()
			}
		}
	} else if domain.ErrorCode(err) != domain.ENOTFOUND {
		return Status{}, err
	}
	evs, err := s.store.EventStats(ctx, id)
	if err != nil {
		return Status{}, err
	}
	rs, err := s.ringostatStatus(ctx, id)
	if err != nil {
		return Status{}, err
	}
	sm, err := s.smStatus(ctx, id)
	if err != nil {
		return Status{}, err
	}
	users, err := s.store.ListCRMUsers(ctx, id)
	if err != nil {
		return Status{}, err
	}
	var cs cache.Stats
	if c := s.tenants.Lookup(id); c != nil {
		cs = c.CacheCounts.Read()
	}
	return Status{
		Tenant: t.ID, Name: t.Name, IndexSize: n, Employees: len(emps), StopList: len(stops), DefaultOwner: owner,
		Cache: CacheStatus{Ready: s.cache.Ready(), HitRatio: cs.HitRatio(), Hits: cs.Hits,
			NegativeHits: cs.NegativeHits, Misses: cs.Misses},
		Integration:   integ,
		Events:        evs,
		Ringostat:     rs,
		SALESmanago:   sm,
		InactiveUsers: inactiveUsers(emps, t.DefaultOwner, users),
	}, nil
}

// RejectedEvent is a body the events endpoint refused, as the admin API
// shows it.
type RejectedEvent struct {
	ID          int64     `json:"id"`
	ReceivedAt  time.Time `json:"received_at"`
	Reason      string    `json:"reason"`
	ContentType string    `json:"content_type"`
	Body        string    `json:"body"`
}

// RejectedEvents returns up to limit (default 100, at most 1000) bodies the
// events endpoint refused, newest first. ENOTFOUND for an unknown tenant.
func (s *Service) RejectedEvents(ctx context.Context, id string, limit int) ([]RejectedEvent, error) {
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rs, err := s.store.ListRejected(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	out := make([]RejectedEvent, 0, len(rs))
	for _, r := range rs {
		out = append(out, RejectedEvent{ID: r.ID, ReceivedAt: r.ReceivedAt, Reason: r.Reason, ContentType: r.ContentType,
			Body: strings.ToValidUTF8(string(r.Body), "\uFFFD")})
	}
	return out, nil
}

// EventView is a stored call event as the admin API shows it.
type EventView struct {
	ID          string            `json:"id"`
	UniqueID    string            `json:"uniqueid"`
	Kind        string            `json:"event"`
	State       string            `json:"state"`
	Note        string            `json:"note"`
	Attempts    int               `json:"attempts"`
	ReceivedAt  time.Time         `json:"received_at"`
	ProcessedAt *time.Time        `json:"processed_at,omitempty"`
	Fields      map[string]string `json:"fields"`
}

// Event returns one call event with what processing did. ENOTFOUND.
func (s *Service) Event(ctx context.Context, id, eventID string) (EventView, error) {
	ev, err := s.store.Event(ctx, id, eventID)
	if err != nil {
		return EventView{}, err
	}
	return eventView(ev), nil
}

// EventQuery selects call events for Events, as the admin API's query
// string gives it: every field optional.
type EventQuery struct {
	State  string // waiting, done, failed, dropped
	Caller string // the client's number, in any format
	Before string // RFC 3339: events received before it
	Limit  string // 1–1000, default 100
}

// Events returns a tenant's call events matching q, failed and waiting
// ones first, each newest first. EINVALID names the bad parameter;
// ENOTFOUND for an unknown tenant.
func (s *Service) Events(ctx context.Context, id string, q EventQuery) ([]EventView, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	f := store.EventFilter{Limit: 100}
	switch q.State {
	case "", domain.EventWaiting, domain.EventDone, domain.EventFailed, domain.EventDropped:
		f.State = q.State
	default:
		return nil, domain.Errorf(domain.EINVALID, "state: must be waiting, done, failed or dropped, got %q", q.State)
	}
	if c := strings.TrimSpace(q.Caller); c != "" {
		n, err := phone.Ingest(c, t.Settings.DefaultCountry)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "caller: %s", domain.ErrorMessage(err))
		}
		f.Partition = n
	}
	if q.Before != "" {
		b, err := time.Parse(time.RFC3339Nano, q.Before)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "before: must be an RFC 3339 time, got %q", q.Before)
		}
		f.Before = b
	}
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > 1000 {
			return nil, domain.Errorf(domain.EINVALID, "limit: must be 1 to 1000, got %q", q.Limit)
		}
		f.Limit = n
	}
	evs, err := s.store.ListEvents(ctx, id, f)
	if err != nil {
		return nil, err
	}
	out := make([]EventView, 0, len(evs))
	for _, ev := range evs {
		out = append(out, eventView(ev))
	}
	return out, nil
}

func eventView(ev domain.CallEvent) EventView {
	v := EventView{ID: ev.ID, UniqueID: ev.UniqueID, Kind: string(ev.Kind), State: ev.State, Note: ev.Note,
		Attempts: ev.Attempts, ReceivedAt: ev.ReceivedAt, Fields: ev.Fields}
	if !ev.ProcessedAt.IsZero() {
		v.ProcessedAt = &ev.ProcessedAt
	}
	return v
}
