package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store"
)

// CRMs is what the admin service needs of the sync engine
// (crmsync.Conns) to connect CRMs.
type CRMs interface {
	// Adapter returns the adapter of a CRM by name.
	Adapter(name string) (crm.Adapter, bool)
	// CRMs returns the supported CRM names.
	CRMs() []string
	// Seal encrypts a tenant's secret for the store.
	Seal(tenantID, purpose string, plaintext []byte) []byte
	// Forget drops a tenant's connection after its configuration changed.
	Forget(tenantID string)
	// Users lists the CRM's users.
	Users(ctx context.Context, tenantID string) ([]crm.User, error)
	// MissingFields names the fields the CRM account lacks that callrouter
	// would write.
	MissingFields(ctx context.Context, tenantID string) ([]string, error)
	// MappableFields lists the fields a mapping may name for entity in the
	// tenant's CRM account; ok is false when they cannot be listed.
	MappableFields(ctx context.Context, tenantID, entity string) (crmName string, fields []string, ok bool, err error)
}

// WithCRMs enables the integration operations.
func WithCRMs(c CRMs) Option { return func(s *Service) { s.crms = c } }

// Syncs runs CRM syncs (the job runner): a connected or reactivated
// integration asks it for a sync now instead of waiting for the next tick.
type Syncs interface {
	// Kick asks for a sync of the tenant now.
	Kick(tenantID string)
}

// WithSyncs makes connecting or activating an integration start its sync
// at once; without it the next periodic tick does.
func WithSyncs(k Syncs) Option { return func(s *Service) { s.syncs = k } }

// kick asks for a sync of the tenant now, when a runner is set.
func (s *Service) kick(id string) {
	if s.syncs != nil {
		s.syncs.Kick(id)
	}
}

// Events decides what happens to the call events that waited while an
// integration was not active (events.Replay).
type Events interface {
	// Activated replays (resend) or drops the tenant's waiting events.
	Activated(ctx context.Context, tenantID string, resend bool) (events.Replayed, error)
}

// WithEvents lets activation replay or drop waiting call events.
func WithEvents(e Events) Option { return func(s *Service) { s.events = e } }

// IntegrationView is a tenant's integration as the admin API shows it:
// never the credentials.
type IntegrationView struct {
	CRM       string     `json:"crm"`
	BaseURL   string     `json:"base_url"`
	State     string     `json:"state"`
	LastError string     `json:"last_error,omitempty"`
	Phase     string     `json:"phase"`
	Synced    int        `json:"synced"`
	LastSync  *time.Time `json:"last_sync_at,omitempty"`
	Success   *time.Time `json:"last_success_at,omitempty"`
	ErrorAt   *time.Time `json:"last_error_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Events is what an activation did with the call events that waited.
	Events *events.Replayed `json:"events,omitempty"`
	// Reconciled is when the last full sync ended by removing the index
	// rows of entities the CRM no longer returned; the next periodic one
	// is due reconcile_interval_hours after it.
	Reconciled *time.Time `json:"last_reconciled_at,omitempty"`
}

func integrationView(in store.Integration) IntegrationView {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return IntegrationView{CRM: in.CRM, BaseURL: in.BaseURL, State: in.State, LastError: in.LastError, Phase: in.Phase,
		Synced: in.Synced, LastSync: opt(in.LastSyncAt), Success: opt(in.SuccessAt), ErrorAt: opt(in.ErrorAt), UpdatedAt: in.UpdatedAt,
		Reconciled: opt(in.ReconciledAt)}
}

func (s *Service) needCRMs() error {
	if s.crms == nil {
		return domain.Errorf(domain.ENOTFOUND, "integrations are not enabled on this server")
	}
	return nil
}

// PutIntegration connects a tenant to its CRM, stores the credentials
// encrypted, and starts a full sync. EINVALID names the bad field;
// ENOTFOUND for an unknown tenant or when integrations are disabled.
func (s *Service) PutIntegration(ctx context.Context, actor, id string, in IntegrationInput) (IntegrationView, error) {
	if err := s.needCRMs(); err != nil {
		return IntegrationView{}, err
	}
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return IntegrationView{}, err
	}
	a, ok := s.crms.Adapter(strings.ToLower(strings.TrimSpace(in.CRM)))
	if !ok {
		return IntegrationView{}, domain.Errorf(domain.EINVALID, "crm: must be one of %s, got %q", strings.Join(s.crms.CRMs(), ", "), in.CRM)
	}
	u, err := crm.CheckBaseURL(in.BaseURL)
	if err != nil {
		return IntegrationView{}, err
	}
	if err := crm.CheckTarget(u, s.crmAllowPrivate, "base_url"); err != nil {
		return IntegrationView{}, err
	}
	creds := json.RawMessage(bytes.TrimSpace(in.Credentials))
	if len(creds) == 0 || bytes.Equal(creds, []byte("null")) {
		return IntegrationView{}, domain.Errorf(domain.EINVALID, "credentials: required")
	}
	if !json.Valid(creds) {
		return IntegrationView{}, domain.Errorf(domain.EINVALID, "credentials: not valid JSON")
	}
	if err := a.Check(creds); err != nil {
		return IntegrationView{}, err
	}
	rec := store.Integration{TenantID: id, CRM: a.Name, BaseURL: u.String(), State: store.IntegrationActive,
		Creds: s.crms.Seal(id, "creds", creds)}
	if tok, ok := a.Seed(creds); ok {
		b, err := json.Marshal(tok)
		if err != nil {
			return IntegrationView{}, fmt.Errorf("encode token: %w", err)
		}
		rec.Token = s.crms.Seal(id, "token", b)
	}
	if err := s.store.PutIntegration(ctx, rec); err != nil {
		return IntegrationView{}, fmt.Errorf("put integration: %w", err)
	}
	s.crms.Forget(id)
	if err := s.publish(ctx, actor, id, "integration.put", map[string]string{"crm": a.Name, "base_url": rec.BaseURL}); err != nil {
		return IntegrationView{}, err
	}
	s.kick(id)
	return s.Integration(ctx, id)
}

// Integration returns a tenant's integration. ENOTFOUND when none.
func (s *Service) Integration(ctx context.Context, id string) (IntegrationView, error) {
	in, err := s.store.Integration(ctx, id)
	if err != nil {
		return IntegrationView{}, err
	}
	return integrationView(in), nil
}

// SetActive activates (with a new full sync) or deactivates a tenant's
// integration. An activation's in.Resend says what to do with the call
// events that waited while it was broken or inactive: replay those of
// today and the two days before (true) or drop them all (false).
// ENOTFOUND when there is no integration.
func (s *Service) SetActive(ctx context.Context, actor, id string, active bool, in ActivateInput) (IntegrationView, error) {
	if err := s.needCRMs(); err != nil {
		return IntegrationView{}, err
	}
	state, action := store.IntegrationInactive, "integration.deactivate"
	if active {
		state, action = store.IntegrationActive, "integration.activate"
	}
	if err := s.store.SetIntegrationState(ctx, id, state, "", active); err != nil {
		return IntegrationView{}, err
	}
	s.crms.Forget(id)
	if err := s.publish(ctx, actor, id, action, map[string]bool{"resend": in.Resend}); err != nil {
		return IntegrationView{}, err
	}
	var replayed *events.Replayed
	if active && s.events != nil {
		r, err := s.events.Activated(ctx, id, in.Resend)
		if err != nil {
			return IntegrationView{}, err
		}
		replayed = &r
	}
	if active {
		s.kick(id)
	}
	v, err := s.Integration(ctx, id)
	v.Events = replayed
	return v, err
}

// DefaultCRMTimeout bounds an admin call's wait for a CRM (the users
// list): a CRM that does not answer by then is a 504, not a hung request.
const DefaultCRMTimeout = 30 * time.Second

// WithCRMTimeout replaces DefaultCRMTimeout (tests make it short).
func WithCRMTimeout(d time.Duration) Option { return func(s *Service) { s.crmTimeout = d } }

// CRMUsers lists the users of a tenant's CRM, for mapping employees.
// Errors: ENOTFOUND without an integration; the CRM's trouble as
// crm.Upstream classes it: ECRMERROR (refused, bad answer, redirect,
// address refused by the SSRF guard), ECRMDOWN (unreachable),
// ECRMTIMEOUT (no answer within the CRM timeout).
func (s *Service) CRMUsers(ctx context.Context, id string) ([]crm.User, error) {
	if err := s.needCRMs(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.crmTimeout)
	defer cancel()
	users, err := s.crms.Users(ctx, id)
	if err != nil {
		return nil, err
	}
	return users, nil
}
