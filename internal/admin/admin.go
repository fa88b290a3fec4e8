// Package admin implements the admin API's operations: tenants and their
// settings, the default owner, employees, the stop list, contacts import and
// status. Every change is written to the store, recorded in the audit log and
// published to the routing registry or cache before the call returns, so the
// very next route request sees it.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Service performs admin operations. It is safe for concurrent use.
type Service struct {
	store   store.Store
	tenants *tenant.Registry
	cache   *cache.Cache
	now     func() time.Time
	rand    io.Reader
	crms    CRMs   // nil: integrations disabled
	syncs   Syncs  // nil: syncs start with the next periodic tick
	events  Events // nil: call events disabled
	// crmAllowPrivate lets base URLs name private and local addresses.
	crmAllowPrivate bool
	peers           notify.Publisher // nil: a single instance
	ringostat       Ringostat        // nil: Ringostat connections disabled
	salesmanago     SALESmanago      // nil: SALESmanago connections disabled
	crmTimeout      time.Duration    // bound of an admin call's wait for a CRM
}

// Option configures a Service.
type Option func(*Service)

// WithNow injects the clock.
func WithNow(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPeers hands every committed change to p as well (the other
// instances hear it from the database's own announcement; see notify).
func WithPeers(p notify.Publisher) Option { return func(s *Service) { s.peers = p } }

// WithRand injects the source of webhook secrets.
func WithRand(r io.Reader) Option { return func(s *Service) { s.rand = r } }

// New returns a Service writing to st and publishing to reg and c.
func New(st store.Store, reg *tenant.Registry, c *cache.Cache, opts ...Option) *Service {
	s := &Service{store: st, tenants: reg, cache: c, now: time.Now, rand: rand.Reader, crmTimeout: DefaultCRMTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// TenantView is a tenant as the admin API shows it: settings flattened next
// to id and name.
type TenantView struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	DefaultOwner string `json:"default_owner"`
	domain.Settings
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func view(t domain.Tenant) TenantView {
	return TenantView{ID: t.ID, Name: t.Name, DefaultOwner: t.DefaultOwner, Settings: t.Settings,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// CreatedTenant is returned once, at creation: the only time the webhook
// secret is shown.
type CreatedTenant struct {
	TenantView
	WebhookSecret string `json:"webhook_secret"`
}

// CreateTenant creates a tenant and returns it with its new webhook
// secret. Settings left zero take their defaults (the transport decodes a
// body onto NewTenantDefaults). EINVALID for a bad id or setting,
// ECONFLICT if the id exists.
func (s *Service) CreateTenant(ctx context.Context, actor string, in NewTenant) (CreatedTenant, error) {
	if err := validID("id", in.ID); err != nil {
		return CreatedTenant{}, err
	}
	if in.Name == "" {
		in.Name = in.ID
	}
	in.Settings = cloneSettings(in.Settings) // normalized in place: not the caller's
	if err := checkSettings(&in.Settings); err != nil {
		return CreatedTenant{}, err
	}
	secret, err := s.newSecret()
	if err != nil {
		return CreatedTenant{}, err
	}
	now := s.now().UTC()
	t := domain.Tenant{ID: in.ID, Name: in.Name, Settings: in.Settings, SecretHash: tenant.HashSecret(secret),
		CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateTenant(ctx, t); err != nil {
		return CreatedTenant{}, fmt.Errorf("create tenant: %w", err)
	}
	if err := s.publish(ctx, actor, t.ID, "tenant.create", map[string]any{"name": t.Name, "settings": t.Settings}); err != nil {
		return CreatedTenant{}, err
	}
	t, err = s.store.Tenant(ctx, t.ID)
	if err != nil {
		return CreatedTenant{}, fmt.Errorf("read tenant back: %w", err)
	}
	return CreatedTenant{TenantView: view(t), WebhookSecret: secret}, nil
}

// Tenant returns one tenant. ENOTFOUND if absent.
func (s *Service) Tenant(ctx context.Context, id string) (TenantView, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return TenantView{}, err
	}
	return view(t), nil
}

// Tenants returns every tenant.
func (s *Service) Tenants(ctx context.Context) ([]TenantView, error) {
	ts, err := s.store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]TenantView, len(ts))
	for i, t := range ts {
		out[i] = view(t)
	}
	return out, nil
}

// PatchTenant changes the name and the settings the patch gives; what it
// leaves out keeps its stored value, and its matrix and mappings merge into
// the stored ones. EINVALID for a bad value, ENOTFOUND for an unknown
// tenant.
func (s *Service) PatchTenant(ctx context.Context, actor, id string, in TenantPatch) (TenantView, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return TenantView{}, err
	}
	// A deep copy: normalized in place, it must touch neither the stored
	// settings (compared with below) nor the caller's patch.
	st := cloneSettings(in.apply(t.Settings))
	if in.Name != nil {
		if strings.TrimSpace(*in.Name) == "" {
			return TenantView{}, domain.Errorf(domain.EINVALID, "name: must not be empty")
		}
		t.Name = *in.Name
	}
	if err := checkSettings(&st); err != nil {
		return TenantView{}, err
	}
	if err := s.checkMappings(ctx, id, t.Settings, st); err != nil {
		return TenantView{}, err
	}
	if err := s.checkUnsorted(ctx, id, st); err != nil {
		return TenantView{}, err
	}
	t.Settings = st
	t.UpdatedAt = s.now().UTC()
	if err := s.store.UpdateTenant(ctx, t); err != nil {
		return TenantView{}, fmt.Errorf("update tenant: %w", err)
	}
	// The patch as given, not the settings it produced: what was changed.
	if err := s.publish(ctx, actor, id, "tenant.update", in); err != nil {
		return TenantView{}, err
	}
	return s.Tenant(ctx, id)
}

// DefaultOwner is the default owner as the admin API shows it.
type DefaultOwner struct {
	CRMUserID string `json:"crm_user_id"`
	// Target is what the PBX rings for them; empty while they are not mapped
	// to an employee, in which case default-owner routing answers "no forward".
	Target string `json:"target"`
}

// SetDefaultOwner sets the tenant's default owner; an empty id clears it.
// EINVALID for a missing or bad id, ENOTFOUND for an unknown tenant.
func (s *Service) SetDefaultOwner(ctx context.Context, actor, id string, in DefaultOwnerInput) (DefaultOwner, error) {
	if in.CRMUserID == nil {
		return DefaultOwner{}, domain.Errorf(domain.EINVALID, "crm_user_id: required (empty string clears the default owner)")
	}
	if *in.CRMUserID != "" {
		if err := validID("crm_user_id", *in.CRMUserID); err != nil {
			return DefaultOwner{}, err
		}
	}
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return DefaultOwner{}, err
	}
	t.DefaultOwner = *in.CRMUserID
	t.UpdatedAt = s.now().UTC()
	if err := s.store.UpdateTenant(ctx, t); err != nil {
		return DefaultOwner{}, fmt.Errorf("set default owner: %w", err)
	}
	if err := s.publish(ctx, actor, id, "default_owner.set", map[string]string{"crm_user_id": t.DefaultOwner}); err != nil {
		return DefaultOwner{}, err
	}
	return s.DefaultOwner(ctx, id)
}

// DefaultOwner returns the tenant's default owner. ENOTFOUND.
func (s *Service) DefaultOwner(ctx context.Context, id string) (DefaultOwner, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return DefaultOwner{}, err
	}
	d := DefaultOwner{CRMUserID: t.DefaultOwner}
	if c := s.tenants.Lookup(id); c != nil && c.DefaultOwner == t.DefaultOwner {
		d.Target = c.DefaultTarget
	}
	return d, nil
}

// PutEmployee maps a CRM user to a SIP login and/or phone. EINVALID names
// the bad field; ENOTFOUND for an unknown tenant.
func (s *Service) PutEmployee(ctx context.Context, actor, id, crmUserID string, in EmployeeInput) (domain.Employee, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return domain.Employee{}, err
	}
	if err := validID("crm_user_id", crmUserID); err != nil {
		return domain.Employee{}, err
	}
	e := domain.Employee{TenantID: id, CRMUserID: crmUserID, SIP: strings.TrimSpace(in.SIP),
		Name: strings.TrimSpace(in.Name), Email: strings.TrimSpace(in.Email), UpdatedAt: s.now().UTC()}
	if e.SIP == "" && strings.TrimSpace(in.Phone) == "" {
		return domain.Employee{}, domain.Errorf(domain.EINVALID, "sip: one of sip or phone is required")
	}
	if e.SIP != "" {
		if err := validSIP(e.SIP); err != nil {
			return domain.Employee{}, err
		}
	}
	if p := strings.TrimSpace(in.Phone); p != "" {
		n, err := phone.Ingest(p, t.Settings.DefaultCountry)
		if err != nil {
			return domain.Employee{}, domain.Errorf(domain.EINVALID, "phone: %s", domain.ErrorMessage(err))
		}
		e.Phone = n
	}
	if e.Email != "" && !strings.Contains(e.Email, "@") {
		return domain.Employee{}, domain.Errorf(domain.EINVALID, "email: %q is not an e-mail address", e.Email)
	}
	if err := s.store.PutEmployee(ctx, e); err != nil {
		return domain.Employee{}, fmt.Errorf("put employee: %w", err)
	}
	if err := s.publish(ctx, actor, id, "employee.put", e); err != nil {
		return domain.Employee{}, err
	}
	return s.store.Employee(ctx, id, crmUserID)
}

// Employee returns one employee. ENOTFOUND.
func (s *Service) Employee(ctx context.Context, id, crmUserID string) (domain.Employee, error) {
	return s.store.Employee(ctx, id, crmUserID)
}

// Employees returns a tenant's employees. ENOTFOUND for an unknown tenant.
func (s *Service) Employees(ctx context.Context, id string) ([]domain.Employee, error) {
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return nil, err
	}
	return s.store.ListEmployees(ctx, id)
}

// DeleteEmployee removes a mapping. ENOTFOUND.
func (s *Service) DeleteEmployee(ctx context.Context, actor, id, crmUserID string) error {
	if err := s.store.DeleteEmployee(ctx, id, crmUserID); err != nil {
		return err
	}
	return s.publish(ctx, actor, id, "employee.delete", map[string]string{"crm_user_id": crmUserID})
}

// PutStop adds a number to the stop list with a note and a kind: "line"
// (the default: one of the project's own lines) or "client". Phone numbers
// are stored normalized, anything else as a SIP login. EINVALID (naming
// number or kind), ENOTFOUND.
func (s *Service) PutStop(ctx context.Context, actor, id, number string, in StopInput) (domain.StopEntry, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return domain.StopEntry{}, err
	}
	kind, err := domain.ParseStopKind(in.Kind)
	if err != nil {
		return domain.StopEntry{}, err
	}
	n, err := stopNumber(number, t.Settings.DefaultCountry)
	if err != nil {
		return domain.StopEntry{}, err
	}
	e := domain.StopEntry{TenantID: id, Number: n, Kind: kind, Note: in.Note, CreatedAt: s.now().UTC()}
	if err := s.store.PutStop(ctx, e); err != nil {
		return domain.StopEntry{}, fmt.Errorf("put stop-list number: %w", err)
	}
	if err := s.publish(ctx, actor, id, "stop_list.put", e); err != nil {
		return domain.StopEntry{}, err
	}
	return e, nil
}

// Stops returns a tenant's stop list. ENOTFOUND for an unknown tenant.
func (s *Service) Stops(ctx context.Context, id string) ([]domain.StopEntry, error) {
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return nil, err
	}
	return s.store.ListStops(ctx, id)
}

// Stop returns one stop-list entry. ENOTFOUND.
func (s *Service) Stop(ctx context.Context, id, number string) (domain.StopEntry, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return domain.StopEntry{}, err
	}
	n, err := stopNumber(number, t.Settings.DefaultCountry)
	if err != nil {
		return domain.StopEntry{}, err
	}
	stops, err := s.store.ListStops(ctx, id)
	if err != nil {
		return domain.StopEntry{}, err
	}
	for _, st := range stops {
		if st.Number == n {
			return st, nil
		}
	}
	return domain.StopEntry{}, domain.Errorf(domain.ENOTFOUND, "stop-list number %q not found", number)
}

// DeleteStop removes a number from the stop list. ENOTFOUND.
func (s *Service) DeleteStop(ctx context.Context, actor, id, number string) error {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return err
	}
	n, err := stopNumber(number, t.Settings.DefaultCountry)
	if err != nil {
		return err
	}
	if err := s.store.DeleteStop(ctx, id, n); err != nil {
		return err
	}
	return s.publish(ctx, actor, id, "stop_list.delete", map[string]string{"number": n})
}

// Audit returns up to limit audit entries of a tenant, newest first.
func (s *Service) Audit(ctx context.Context, id string, limit int) ([]domain.AuditEntry, error) {
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.store.ListAudit(ctx, id, limit)
}

// publish records an admin change in the audit log and rebuilds the
// tenant's routing view. The change is already committed, so a failure here
// is reported but does not undo it.
func (s *Service) publish(ctx context.Context, actor, id, action string, detail any) error {
	if err := s.audit(ctx, actor, id, action, detail); err != nil {
		return err
	}
	if err := s.tenants.Reload(ctx, id); err != nil {
		return fmt.Errorf("publish %s: %w", action, err)
	}
	if s.peers != nil {
		if err := s.peers.Publish(ctx, notify.Tenant(id)); err != nil {
			return fmt.Errorf("announce %s to the other instances: %w", action, err)
		}
	}
	return nil
}

func (s *Service) newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// checkSettings normalizes and validates settings, including the country
// code, which only the phone package can judge.
func checkSettings(st *domain.Settings) error {
	st.Normalize()
	if err := st.Validate(); err != nil {
		return err
	}
	if st.DefaultCountry != "" && !phone.ValidRegion(st.DefaultCountry) {
		return domain.Errorf(domain.EINVALID, "default_country: unknown ISO 3166 country code %q", st.DefaultCountry)
	}
	return nil
}

// validID checks ids that appear in URL paths: tenant ids and CRM user ids.
func validID(field, id string) error {
	if id == "" {
		return domain.Errorf(domain.EINVALID, "%s: required", field)
	}
	if len(id) > 128 {
		return domain.Errorf(domain.EINVALID, "%s: longer than 128 characters", field)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '@') {
			return domain.Errorf(domain.EINVALID, "%s: %q has a character outside letters, digits, '_', '-', '.', '@'", field, id)
		}
	}
	return nil
}

// validSIP accepts what a SIP account name can be: printable ASCII without
// spaces.
func validSIP(sip string) error {
	if len(sip) > 128 {
		return domain.Errorf(domain.EINVALID, "sip: longer than 128 characters")
	}
	for i := 0; i < len(sip); i++ {
		if sip[i] <= ' ' || sip[i] > '~' || sip[i] == '"' || sip[i] == '\\' {
			return domain.Errorf(domain.EINVALID, "sip: %q must be printable ASCII without spaces or quotes", sip)
		}
	}
	return nil
}

// stopNumber normalizes a stop-list number: a phone to its E.164 digits, a
// SIP login as it is.
func stopNumber(number, country string) (string, error) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", domain.Errorf(domain.EINVALID, "number: required")
	}
	if n, err := phone.Ingest(number, country); err == nil {
		return n, nil
	}
	if err := validSIP(number); err != nil {
		return "", domain.Errorf(domain.EINVALID, "number: %q is neither a phone number nor a SIP login", number)
	}
	return number, nil
}
