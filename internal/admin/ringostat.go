package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/store"
)

// Ringostat is what the admin service needs of the Ringostat manager
// (ringostat.Manager) to connect projects.
type Ringostat interface {
	// Seal encrypts a tenant's Auth-key for the store.
	Seal(tenantID string, authKey []byte) []byte
	// Changed says a tenant's connection was put or removed.
	Changed(tenantID string)
	// PresenceCounts returns how many SIP logins the last poll found online
	// and speaking, when it ran, and whether it is still trusted.
	PresenceCounts(tenantID string) (online, speaking int, polledAt time.Time, fresh bool)
}

// WithRingostat enables connecting Ringostat projects.
func WithRingostat(r Ringostat) Option { return func(s *Service) { s.ringostat = r } }

// RingostatView is a tenant's Ringostat connection as the admin API shows
// it: never the Auth-key.
type RingostatView struct {
	BaseURL   string             `json:"base_url"`
	ProjectID string             `json:"project_id"`
	State     string             `json:"state"`
	LastError string             `json:"last_error,omitempty"`
	ErrorAt   *time.Time         `json:"last_error_at,omitempty"`
	Push      RingostatPushView  `json:"push"`
	Reconcile RingostatReconView `json:"reconcile"`
	Presence  RingostatPresence  `json:"presence"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// RingostatPushView is the contacts push's progress: Done once the whole
// index was sent after connecting; Pushed counts contacts sent since.
type RingostatPushView struct {
	Done      bool       `json:"done"`
	Pushed    int        `json:"pushed"`
	LastError string     `json:"last_error,omitempty"`
	LastAt    *time.Time `json:"last_at,omitempty"`
}

// RingostatReconView is the call-log reconciliation's progress: Until is
// the end of the last window read, Recovered the calls it ingested that no
// webhook had brought.
type RingostatReconView struct {
	Until     *time.Time `json:"until,omitempty"`
	Recovered int        `json:"recovered"`
	LastError string     `json:"last_error,omitempty"`
	LastAt    *time.Time `json:"last_at,omitempty"`
}

// RingostatPresence is this instance's view of the SIP logins' presence.
type RingostatPresence struct {
	Online   int        `json:"online"`
	Speaking int        `json:"speaking"`
	PolledAt *time.Time `json:"polled_at,omitempty"`
	Fresh    bool       `json:"fresh"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Service) ringostatView(c store.RingostatConn) RingostatView {
	v := RingostatView{BaseURL: c.BaseURL, ProjectID: c.ProjectID, State: c.State, LastError: c.LastError,
		ErrorAt: optTime(c.ErrorAt), UpdatedAt: c.UpdatedAt,
		Push:      RingostatPushView{Done: c.PushDone, Pushed: c.Pushed, LastError: c.PushError, LastAt: optTime(c.PushAt)},
		Reconcile: RingostatReconView{Until: optTime(c.ReconciledUntil), Recovered: c.Recovered, LastError: c.ReconcileError, LastAt: optTime(c.ReconcileAt)},
	}
	if s.ringostat != nil {
		on, sp, at, fresh := s.ringostat.PresenceCounts(c.TenantID)
		v.Presence = RingostatPresence{Online: on, Speaking: sp, PolledAt: optTime(at), Fresh: fresh}
	}
	return v
}

func (s *Service) needRingostat() error {
	if s.ringostat == nil {
		return domain.Errorf(domain.ENOTFOUND, "ringostat connections are not enabled on this server")
	}
	return nil
}

// PutRingostat connects a tenant to its Ringostat project (the base URL
// defaults to https://api.ringostat.net and is guarded like a CRM's),
// stores the Auth-key encrypted, and starts the contacts push; the
// call-log reconciliation starts from now. EINVALID names the bad field;
// ENOTFOUND for an unknown tenant or when Ringostat is disabled.
func (s *Service) PutRingostat(ctx context.Context, actor, id string, in RingostatInput) (RingostatView, error) {
	if err := s.needRingostat(); err != nil {
		return RingostatView{}, err
	}
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return RingostatView{}, err
	}
	if strings.TrimSpace(in.BaseURL) == "" {
		in.BaseURL = ringostat.DefaultBaseURL
	}
	u, err := crm.CheckBaseURL(in.BaseURL)
	if err != nil {
		return RingostatView{}, err
	}
	if err := crm.CheckTarget(u, s.crmAllowPrivate, "base_url"); err != nil {
		return RingostatView{}, err
	}
	if err := ringostat.CheckKey(string(in.AuthKey)); err != nil {
		return RingostatView{}, err
	}
	project := strings.TrimSpace(string(in.ProjectID))
	if err := ringostat.CheckProject(project); err != nil {
		return RingostatView{}, err
	}
	rec := store.RingostatConn{TenantID: id, BaseURL: u.String(), ProjectID: project,
		AuthKey: s.ringostat.Seal(id, []byte(in.AuthKey)), ReconciledUntil: s.now().UTC()}
	if err := s.store.PutRingostat(ctx, rec); err != nil {
		return RingostatView{}, fmt.Errorf("put ringostat: %w", err)
	}
	s.ringostat.Changed(id)
	if err := s.audit(ctx, actor, id, "ringostat.put", map[string]string{"base_url": rec.BaseURL, "project_id": project}); err != nil {
		return RingostatView{}, err
	}
	return s.Ringostat(ctx, id)
}

// Ringostat returns a tenant's Ringostat connection. ENOTFOUND when none.
func (s *Service) Ringostat(ctx context.Context, id string) (RingostatView, error) {
	c, err := s.store.RingostatConn(ctx, id)
	if err != nil {
		return RingostatView{}, err
	}
	return s.ringostatView(c), nil
}

// DeleteRingostat disconnects a tenant's Ringostat project: no more
// pushes, polls or call-log reads; presence routing falls back to routing
// as if presence were off. ENOTFOUND when there is no connection.
func (s *Service) DeleteRingostat(ctx context.Context, actor, id string) error {
	if err := s.needRingostat(); err != nil {
		return err
	}
	if err := s.store.DeleteRingostat(ctx, id); err != nil {
		return err
	}
	s.ringostat.Changed(id)
	return s.audit(ctx, actor, id, "ringostat.delete", nil)
}

// ringostatStatus is the Ringostat part of /status: "not_configured"
// without a connection.
func (s *Service) ringostatStatus(ctx context.Context, id string) (RingostatStatus, error) {
	c, err := s.store.RingostatConn(ctx, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return RingostatStatus{State: "not_configured"}, nil
	}
	if err != nil {
		return RingostatStatus{}, err
	}
	v := s.ringostatView(c)
	return RingostatStatus{State: c.State, RingostatView: &v}, nil
}

// RingostatStatus is the tenant's Ringostat connection in /status.
type RingostatStatus struct {
	State string `json:"state"`
	*RingostatView
}
