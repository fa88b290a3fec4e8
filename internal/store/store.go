// Package store defines callrouter's storage: tenants, employees, the stop
// list, the phone index, the admin audit log and instance metadata. The
// sqlite and postgres subpackages implement it; storetest holds the one
// conformance suite both must pass.
//
// Errors: methods return *domain.Error with ENOTFOUND for a missing row and
// ECONFLICT for a duplicate key; anything else is an internal error wrapped
// with %w.
package store

import (
	"context"

	"github.com/callrouter/callrouter/internal/domain"
)

// Store is everything callrouter keeps durably.
type Store interface {
	Tenants
	Employees
	StopList
	Index
	Audit
	Meta
	// Close releases the connections.
	Close() error
}

// Tenants stores tenants with their settings.
type Tenants interface {
	// CreateTenant inserts t. ECONFLICT if the id exists.
	CreateTenant(ctx context.Context, t domain.Tenant) error
	// Tenant returns one tenant. ENOTFOUND if absent.
	Tenant(ctx context.Context, id string) (domain.Tenant, error)
	// ListTenants returns every tenant ordered by id.
	ListTenants(ctx context.Context) ([]domain.Tenant, error)
	// UpdateTenant replaces name, settings, secret hash and default owner of
	// t.ID and sets UpdatedAt. ENOTFOUND if absent.
	UpdateTenant(ctx context.Context, t domain.Tenant) error
}

// Employees stores the employee ↔ CRM user mapping.
type Employees interface {
	// PutEmployee inserts or replaces the employee (tenant, CRM user id).
	// ENOTFOUND if the tenant does not exist.
	PutEmployee(ctx context.Context, e domain.Employee) error
	// Employee returns one employee. ENOTFOUND if absent.
	Employee(ctx context.Context, tenantID, crmUserID string) (domain.Employee, error)
	// ListEmployees returns a tenant's employees ordered by CRM user id.
	ListEmployees(ctx context.Context, tenantID string) ([]domain.Employee, error)
	// DeleteEmployee removes one employee. ENOTFOUND if absent.
	DeleteEmployee(ctx context.Context, tenantID, crmUserID string) error
}

// StopList stores the numbers whose calls create nothing in the CRM.
type StopList interface {
	// PutStop inserts or replaces a stop-list number. ENOTFOUND if the
	// tenant does not exist.
	PutStop(ctx context.Context, s domain.StopEntry) error
	// ListStops returns a tenant's stop list ordered by number.
	ListStops(ctx context.Context, tenantID string) ([]domain.StopEntry, error)
	// DeleteStop removes a number. ENOTFOUND if absent.
	DeleteStop(ctx context.Context, tenantID, number string) error
}

// Index stores the phone index. A row is keyed by (tenant, kind, entity id,
// phone).
type Index interface {
	// UpsertIndex inserts or replaces the rows in one transaction: either all
	// are stored or none. ENOTFOUND if a row's tenant does not exist.
	UpsertIndex(ctx context.Context, rows []domain.IndexEntry) error
	// DeleteEntity removes every row of one entity and returns the suffixes
	// it had, so callers can invalidate caches.
	DeleteEntity(ctx context.Context, tenantID string, kind domain.EntityKind, entityID string) ([]string, error)
	// LookupSuffix returns the rows of a tenant whose suffix key equals
	// suffix, most recently updated first.
	LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error)
	// ScanIndex calls fn for every row of every tenant ordered by tenant,
	// suffix, then most recently updated first, and stops at fn's first error.
	ScanIndex(ctx context.Context, fn func(domain.IndexEntry) error) error
	// CountIndex returns the number of rows of one tenant, or of all tenants
	// when tenantID is "".
	CountIndex(ctx context.Context, tenantID string) (int, error)
}

// Audit stores the admin audit log.
type Audit interface {
	// AppendAudit stores e and returns it with ID and At set (At is kept if
	// already set).
	AppendAudit(ctx context.Context, e domain.AuditEntry) (domain.AuditEntry, error)
	// ListAudit returns up to limit entries of a tenant, newest first; all
	// tenants when tenantID is "".
	ListAudit(ctx context.Context, tenantID string, limit int) ([]domain.AuditEntry, error)
}

// Meta stores small instance-wide values such as the admin token hash.
type Meta interface {
	// GetMeta returns the value of key. ENOTFOUND if absent.
	GetMeta(ctx context.Context, key string) (string, error)
	// SetMetaIfAbsent stores value under key unless the key exists, and
	// reports whether it stored it. Two instances racing get one winner.
	SetMetaIfAbsent(ctx context.Context, key, value string) (bool, error)
	// SetMeta stores value under key, replacing any previous value.
	SetMeta(ctx context.Context, key, value string) error
}
