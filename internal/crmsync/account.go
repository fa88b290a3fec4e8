package crmsync

// The CRM account itself: its users, its webhook registration and the
// fields callrouter writes.

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Users lists the CRM users of a tenant's integration. Errors: ENOTFOUND
// without an integration; the CRM's failures as crm.Upstream classes them
// (ECRMERROR, ECRMDOWN, ECRMTIMEOUT).
func (c *Conns) Users(ctx context.Context, tenantID string) ([]crm.User, error) {
	src, in, err := c.source(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	users, err := src.Users(ctx)
	return users, crm.Upstream(in.CRM, err)
}

// register registers callrouter as the telephony integration of a CRM that
// needs one (crm.Registrar), with the tenant's employees' extension codes
// and its own phone lines.
func (c *Conns) register(ctx context.Context, tenantID string, src crm.Source) error {
	reg, ok := src.(crm.Registrar)
	if !ok {
		return nil
	}
	emps, err := c.store.ListEmployees(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("register: list employees: %w", err)
	}
	stops, err := c.store.ListStops(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("register: list the stop list: %w", err)
	}
	r := crm.Registration{ClientID: tenantID}
	for _, emp := range emps {
		if code := emp.Target(); code != "" {
			r.Codes = append(r.Codes, crm.ExtensionCode{Code: code, UserID: emp.CRMUserID})
		}
	}
	for _, st := range stops {
		if st.Kind != domain.StopClient && isDigits(st.Number) {
			r.ExternalPhones = append(r.ExternalPhones, st.Number)
		}
	}
	if err := reg.Register(ctx, r); err != nil {
		return fmt.Errorf("register callrouter as the telephony integration: %w", err)
	}
	c.mu.Lock()
	if cn := c.sources[tenantID]; cn != nil && cn.src == src {
		cn.registered.Store(true)
	}
	c.mu.Unlock()
	return nil
}

// registerOnce registers a Registrar source unless its conn already did,
// so that call events written right after a connect or an activation, before
// the first sync cycle, do not meet a CRM that refuses them.
func (c *Conns) registerOnce(ctx context.Context, tenantID string, src crm.Source) error {
	if _, ok := src.(crm.Registrar); !ok {
		return nil
	}
	c.mu.Lock()
	cn := c.sources[tenantID]
	c.mu.Unlock()
	if cn != nil && cn.src == src && cn.registered.Load() {
		return nil
	}
	err := c.register(ctx, tenantID, src)
	if err == nil || crm.IsAuth(err) {
		return err
	}
	return &registerError{err: err}
}

// registerError is a failed registration met by a call event. It hides
// the CRM's status on purpose: a refusal (a key without the
// integration-modules permission) must leave the event to be retried once
// an admin fixes the key, not fail it as a permanent 4xx would.
type registerError struct{ err error }

func (r *registerError) Error() string { return r.err.Error() + " (the event is retried)" }

// isDigits reports whether s is a phone in E.164 digits, not a SIP login.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkFields warns, when a full sync starts (a connect, an activation),
// about the fields the CRM account lacks that callrouter would write; a
// failed check does not stop the sync, /status shows it again.
func (c *Conns) checkFields(ctx context.Context, tenantID string, src crm.Source) {
	fc, ok := src.(crm.FieldChecker)
	if !ok {
		return
	}
	missing, err := fc.MissingFields(ctx)
	switch {
	case err != nil:
		c.log.Warn("cannot check the CRM account's fields", zap.String("tenant", tenantID), zap.Error(err))
	case len(missing) > 0:
		c.log.Warn("the CRM account lacks fields callrouter writes; calls are filed without them",
			zap.String("tenant", tenantID), zap.Strings("fields", missing))
	}
}

// MissingFields names the fields the tenant's CRM account lacks that
// callrouter would write (Zoho's rs_ custom fields on Leads); nil for CRMs
// that need none. The adapter reads them once per connection (a
// reconnect or an activation reads them again). Errors: ENOTFOUND
// without an integration, the CRM's as crm.Upstream classes them.
func (c *Conns) MissingFields(ctx context.Context, tenantID string) ([]string, error) {
	src, in, err := c.source(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	fc, ok := src.(crm.FieldChecker)
	if !ok {
		return nil, nil
	}
	missing, err := fc.MissingFields(ctx)
	return missing, crm.Upstream(in.CRM, err)
}

// MappableFields lists the fields a mapping may name for entity
// ("contact", "deal") in the tenant's CRM account, with the CRM's name;
// ok is false when the CRM (or the account's token) does not let
// callrouter list them. Errors: ENOTFOUND without an integration, the
// CRM's as crm.Upstream classes them.
func (c *Conns) MappableFields(ctx context.Context, tenantID, entity string) (crmName string, fields []string, ok bool, err error) {
	src, in, err := c.source(ctx, tenantID)
	if err != nil {
		return "", nil, false, err
	}
	fl, can := src.(crm.FieldLister)
	if !can {
		return in.CRM, nil, false, nil
	}
	fields, ok, err = fl.MappableFields(ctx, entity)
	return in.CRM, fields, ok, crm.Upstream(in.CRM, err)
}
