package admin

import (
	"context"
	"fmt"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/report"
)

// DeleteTenant removes a tenant and everything kept for it (see
// store.TenantDeleter) once confirm repeats its id, records the deletion
// in the audit log (which outlives the tenant), drops the tenant from this
// instance's registry and route cache, and tells the other instances to do
// the same. EINVALID naming confirm when it does not repeat the id,
// ENOTFOUND for an unknown tenant; a failure after the delete committed
// (audit, announcement) is returned but does not undo it.
func (s *Service) DeleteTenant(ctx context.Context, actor, id, confirm string) error {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return err
	}
	if confirm != id {
		return domain.Errorf(domain.EINVALID, "confirm: must repeat the tenant id %q to delete the tenant with its phone index, events, settings and credentials", id)
	}
	if err := s.store.DeleteTenant(ctx, id); err != nil {
		return fmt.Errorf("delete tenant: %w", err)
	}
	auditErr := s.audit(ctx, actor, id, "tenant.delete", map[string]string{"name": t.Name})
	if err := s.tenants.Reload(ctx, id); err != nil {
		return fmt.Errorf("delete tenant: drop it from the registry: %w", err)
	}
	// The route cache cannot enumerate one tenant's keys: emptied whole, so
	// a tenant created again under this id starts from its own index.
	s.cache.InvalidateAll()
	if s.ringostat != nil {
		s.ringostat.Changed(id)
	}
	if s.crms != nil {
		s.crms.Forget(id) // the CRM client built from its credentials
	}
	if s.peers != nil {
		if err := s.peers.Publish(ctx, notify.Tenant(id), notify.Flush(id)); err != nil {
			return fmt.Errorf("announce the deletion of %s to the other instances: %w", id, err)
		}
	}
	return auditErr
}

// Report returns the routing report of a tenant for the days up to today
// (days: report.ParseDays; empty is report.DefaultDays). EINVALID naming
// days, ENOTFOUND for an unknown tenant.
func (s *Service) Report(ctx context.Context, id, days string) (report.Report, error) {
	n, err := report.ParseDays(days)
	if err != nil {
		return report.Report{}, err
	}
	if _, err := s.store.Tenant(ctx, id); err != nil {
		return report.Report{}, err
	}
	cfg := s.tenants.Lookup(id)
	if cfg == nil {
		return report.Report{}, domain.Errorf(domain.ENOTFOUND, "tenant %q not found", id)
	}
	names := map[string]string{}
	users, err := s.store.ListCRMUsers(ctx, id)
	if err != nil {
		return report.Report{}, fmt.Errorf("routing report: %w", err)
	}
	for _, u := range users {
		names[u.ID] = u.Name
	}
	emps, err := s.store.ListEmployees(ctx, id)
	if err != nil {
		return report.Report{}, fmt.Errorf("routing report: %w", err)
	}
	for _, e := range emps {
		if e.Name != "" {
			names[e.CRMUserID] = e.Name
		}
	}
	return report.Build(ctx, s.store, cfg, names, n, s.now())
}
