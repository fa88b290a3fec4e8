package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
)

// SALESmanago is what the admin service needs of the SALESmanago ⇄ Zoho
// CRM contact sync (smsync.Engine and the job runner) to connect accounts.
type SALESmanago interface {
	// Seal encrypts a tenant's SALESmanago API key and secret for the
	// store.
	Seal(tenantID string, s smsync.Secrets) []byte
	// SyncNow asks for a pass of the tenant's sync now (a job, run by
	// whichever instance takes it).
	SyncNow(ctx context.Context, tenantID string) error
}

// WithSALESmanago enables connecting SALESmanago accounts.
func WithSALESmanago(sm SALESmanago) Option { return func(s *Service) { s.salesmanago = sm } }

// SALESmanagoView is a tenant's SALESmanago connection as the admin API
// shows it: never the API key or secret.
type SALESmanagoView struct {
	BaseURL    string `json:"base_url"`
	ClientID   string `json:"client_id"`
	OwnerEmail string `json:"owner_email"`
	// State is active (synced on schedule), inactive (paused by an admin)
	// or broken (SALESmanago refused the credentials; LastError says how).
	State     string           `json:"state"`
	LastError string           `json:"last_error,omitempty"`
	ErrorAt   *time.Time       `json:"last_error_at,omitempty"`
	LastPass  SMPassView       `json:"last_pass"`
	Progress  SMProgressView   `json:"progress"`
	Counts    SMCountsView     `json:"counts"`
	UpdatedAt time.Time        `json:"updated_at"`
	Requested *SMRequestedView `json:"sync_requested,omitempty"`
}

// SMPassView is the last pass: its kind (full, scheduled, incremental,
// manual), when it ended, and its error in SALESmanago's or Zoho's words
// ("" after a success). Kind is "" before the first pass ended.
type SMPassView struct {
	Kind  string     `json:"kind,omitempty"`
	At    *time.Time `json:"at,omitempty"`
	Error string     `json:"error,omitempty"`
}

// SMProgressView is where the sync stands: whether the first (full) sync
// finished, where the next incremental pass reads each side's changes
// from, the last scheduled slot (00/06/12/18 in the tenant's zone)
// covered, and how many persons are linked across the two systems.
type SMProgressView struct {
	FirstSyncDone   bool       `json:"first_sync_done"`
	SALESmanagoFrom *time.Time `json:"salesmanago_from,omitempty"`
	ZohoFrom        *time.Time `json:"zoho_from,omitempty"`
	LastSlot        *time.Time `json:"last_slot,omitempty"`
	Linked          int        `json:"linked"`
}

// SMCountsView counts since connecting: records written to Zoho CRM and
// to SALESmanago, fields both sides changed between two passes (the later
// change won), and records skipped for want of a usable e-mail.
type SMCountsView struct {
	ToZoho        int `json:"to_zoho"`
	ToSALESmanago int `json:"to_salesmanago"`
	Conflicts     int `json:"conflicts"`
	Skipped       int `json:"skipped"`
}

// SMRequestedView says a pass was asked for and when.
type SMRequestedView struct {
	At time.Time `json:"at"`
}

func (s *Service) smView(ctx context.Context, c store.SMConn) (SALESmanagoView, error) {
	n, err := s.store.CountSMLinks(ctx, c.TenantID)
	if err != nil {
		return SALESmanagoView{}, err
	}
	return SALESmanagoView{BaseURL: c.BaseURL, ClientID: c.ClientID, OwnerEmail: c.OwnerEmail, State: c.State,
		LastError: c.LastError, ErrorAt: optTime(c.ErrorAt), UpdatedAt: c.UpdatedAt,
		LastPass: SMPassView{Kind: c.RunKind, At: optTime(c.RunAt), Error: c.RunError},
		Progress: SMProgressView{FirstSyncDone: c.FullDone, SALESmanagoFrom: optTime(c.SMCursor), ZohoFrom: optTime(c.ZohoCursor),
			LastSlot: optTime(c.LastSlot), Linked: n},
		Counts: SMCountsView{ToZoho: c.ToZoho, ToSALESmanago: c.ToSM, Conflicts: c.Conflicts, Skipped: c.Skipped}}, nil
}

func (s *Service) needSM() error {
	if s.salesmanago == nil {
		return domain.Errorf(domain.ENOTFOUND, "salesmanago connections are not enabled on this server")
	}
	return nil
}

// needZoho refuses a tenant whose CRM integration is missing or is not
// Zoho CRM: the sync's other side. ECONFLICT naming the integration.
func (s *Service) needZoho(ctx context.Context, id string) error {
	in, err := s.store.Integration(ctx, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return domain.Errorf(domain.ECONFLICT, "integration: tenant %s has no CRM integration; the SALESmanago sync needs Zoho CRM connected first (PUT /admin/v1/tenants/%s/integration)", id, id)
	}
	if err != nil {
		return err
	}
	if in.CRM != "zoho" {
		return domain.Errorf(domain.ECONFLICT, "integration: tenant %s's CRM is %s; the SALESmanago sync works with Zoho CRM only", id, in.CRM)
	}
	return nil
}

// PutSALESmanago connects a tenant to its SALESmanago account, stores the
// API key and secret sealed, and starts the first (full) sync. The base
// URL is guarded like a CRM's. EINVALID names the bad field; ENOTFOUND
// for an unknown tenant or when SALESmanago is disabled; ECONFLICT when
// the tenant has no Zoho CRM integration.
func (s *Service) PutSALESmanago(ctx context.Context, actor, id string, in SALESmanagoInput) (SALESmanagoView, error) {
	if err := s.needSM(); err != nil {
		return SALESmanagoView{}, err
	}
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return SALESmanagoView{}, err
	}
	cfg := salesmanago.Config{BaseURL: in.BaseURL, ClientID: strings.TrimSpace(in.ClientID), APIKey: strings.TrimSpace(string(in.APIKey)),
		APISecret: strings.TrimSpace(string(in.APISecret)), Owner: strings.ToLower(strings.TrimSpace(in.OwnerEmail))}
	u, err := salesmanago.CheckConfig(cfg)
	if err != nil {
		return SALESmanagoView{}, err
	}
	if err := crm.CheckTarget(u, s.crmAllowPrivate, "base_url"); err != nil {
		return SALESmanagoView{}, err
	}
	if err := s.needZoho(ctx, id); err != nil {
		return SALESmanagoView{}, err
	}
	rec := store.SMConn{TenantID: id, BaseURL: u.String(), ClientID: cfg.ClientID, OwnerEmail: cfg.Owner,
		Secrets: s.salesmanago.Seal(id, smsync.Secrets{APIKey: cfg.APIKey, APISecret: cfg.APISecret})}
	if err := s.store.PutSM(ctx, rec); err != nil {
		return SALESmanagoView{}, fmt.Errorf("put salesmanago: %w", err)
	}
	if err := s.audit(ctx, actor, id, "salesmanago.put",
		map[string]string{"base_url": rec.BaseURL, "client_id": rec.ClientID, "owner_email": rec.OwnerEmail}); err != nil {
		return SALESmanagoView{}, err
	}
	return s.smRequest(ctx, id)
}

// SALESmanago returns a tenant's SALESmanago connection and its sync's
// progress. ENOTFOUND when none.
func (s *Service) SALESmanago(ctx context.Context, id string) (SALESmanagoView, error) {
	c, err := s.store.SMConn(ctx, id)
	if err != nil {
		return SALESmanagoView{}, err
	}
	return s.smView(ctx, c)
}

// DeleteSALESmanago disconnects a tenant's SALESmanago account: no more
// passes; its links (the per-person fingerprints) go with it. Neither
// system's records are touched. ENOTFOUND when there is no connection.
func (s *Service) DeleteSALESmanago(ctx context.Context, actor, id string) error {
	if err := s.needSM(); err != nil {
		return err
	}
	if err := s.store.DeleteSM(ctx, id); err != nil {
		return err
	}
	return s.audit(ctx, actor, id, "salesmanago.delete", nil)
}

// SetSALESmanagoActive activates (clearing a broken state's error, and
// asking for a pass now) or pauses a tenant's SALESmanago sync. ENOTFOUND
// when there is no connection; activating needs the Zoho CRM integration
// (ECONFLICT otherwise).
func (s *Service) SetSALESmanagoActive(ctx context.Context, actor, id string, active bool) (SALESmanagoView, error) {
	if err := s.needSM(); err != nil {
		return SALESmanagoView{}, err
	}
	if _, err := s.store.SMConn(ctx, id); err != nil {
		return SALESmanagoView{}, err
	}
	state, action := store.SMInactive, "salesmanago.deactivate"
	if active {
		if err := s.needZoho(ctx, id); err != nil {
			return SALESmanagoView{}, err
		}
		state, action = store.SMActive, "salesmanago.activate"
	}
	if err := s.store.SetSMState(ctx, id, state, ""); err != nil {
		return SALESmanagoView{}, err
	}
	if err := s.audit(ctx, actor, id, action, nil); err != nil {
		return SALESmanagoView{}, err
	}
	if active {
		return s.smRequest(ctx, id)
	}
	return s.SALESmanago(ctx, id)
}

// SyncSALESmanago asks for a pass of a tenant's SALESmanago sync now: the
// first (full) sync while it has not finished, else the changes since the
// last pass. The pass runs in the background; the view says it was asked
// for. ENOTFOUND without a connection; ECONFLICT when the connection is
// not active or the tenant has no Zoho CRM integration.
func (s *Service) SyncSALESmanago(ctx context.Context, actor, id string) (SALESmanagoView, error) {
	if err := s.needSM(); err != nil {
		return SALESmanagoView{}, err
	}
	c, err := s.store.SMConn(ctx, id)
	if err != nil {
		return SALESmanagoView{}, err
	}
	if c.State != store.SMActive {
		return SALESmanagoView{}, domain.Errorf(domain.ECONFLICT, "state: the SALESmanago connection of %s is %s; activate it first", id, c.State)
	}
	if err := s.needZoho(ctx, id); err != nil {
		return SALESmanagoView{}, err
	}
	if err := s.audit(ctx, actor, id, "salesmanago.sync", nil); err != nil {
		return SALESmanagoView{}, err
	}
	return s.smRequest(ctx, id)
}

// smRequest asks for a pass and returns the view saying so.
func (s *Service) smRequest(ctx context.Context, id string) (SALESmanagoView, error) {
	if err := s.salesmanago.SyncNow(ctx, id); err != nil {
		return SALESmanagoView{}, fmt.Errorf("ask for a salesmanago pass: %w", err)
	}
	v, err := s.SALESmanago(ctx, id)
	if err != nil {
		return SALESmanagoView{}, err
	}
	v.Requested = &SMRequestedView{At: s.now().UTC()}
	return v, nil
}

// SALESmanagoStatus is the tenant's SALESmanago connection in /status:
// State "not_configured" without one.
type SALESmanagoStatus struct {
	State string `json:"state"`
	*SALESmanagoView
}

func (s *Service) smStatus(ctx context.Context, id string) (SALESmanagoStatus, error) {
	c, err := s.store.SMConn(ctx, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return SALESmanagoStatus{State: "not_configured"}, nil
	}
	if err != nil {
		return SALESmanagoStatus{}, err
	}
	v, err := s.smView(ctx, c)
	if err != nil {
		return SALESmanagoStatus{}, err
	}
	return SALESmanagoStatus{State: c.State, SALESmanagoView: &v}, nil
}
