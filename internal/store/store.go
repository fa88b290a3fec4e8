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
	"time"

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
	Integrations
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
	// ReplaceEntities removes every row of the named entities of a tenant
	// and inserts rows in their place, in one transaction, and returns the
	// sorted distinct suffixes the removed rows had (for cache
	// invalidation). rows may be empty (deletions) and may only belong to
	// the named entities; ENOTFOUND if the tenant does not exist, EINVALID
	// if a row belongs to an entity not named.
	ReplaceEntities(ctx context.Context, tenantID string, entities []EntityRef, rows []domain.IndexEntry) ([]string, error)
}

// EntityRef names one entity of the phone index.
type EntityRef struct {
	Kind domain.EntityKind
	ID   string
}

// Integration states.
const (
	IntegrationInactive = "inactive" // configured, not syncing
	IntegrationActive   = "active"   // syncing
	IntegrationBroken   = "broken"   // the CRM rejected the credentials; waits for an admin
)

// Sync phases.
const (
	PhaseFull        = "full"
	PhaseIncremental = "incremental"
)

// Integration is a tenant's CRM connection and its sync state. Creds and
// Token are sealed (encrypted) by the caller; the store never sees them in
// the clear.
type Integration struct {
	TenantID     string
	CRM          string
	BaseURL      string
	Creds        []byte // sealed credentials JSON
	Token        []byte // sealed OAuth token JSON, nil for CRMs without tokens
	TokenVersion int64  // bumped by every token save, for compare-and-swap
	State        string
	LastError    string // the CRM's own text for a broken integration
	Phase        string
	Cursor       string // the adapter's opaque sync position
	Synced       int    // entities applied in the current full sync, or since it finished
	LastSyncAt   time.Time
	SuccessAt    time.Time // last sync cycle that ended without error
	ErrorAt      time.Time
	UpdatedAt    time.Time
}

// SyncProgress is what a sync cycle records after each page.
type SyncProgress struct {
	Phase   string
	Cursor  string
	Synced  int
	Success bool   // the cycle finished; sets SuccessAt and clears LastError
	Error   string // the cycle failed with this error; sets ErrorAt
}

// Integrations stores CRM connections.
type Integrations interface {
	// PutIntegration inserts or replaces a tenant's integration (config,
	// sealed credentials and token, state), resetting its sync to a new
	// full sync. TokenVersion is 1 for a new integration and bumped on a
	// replacement, so a refresh that started before the replacement cannot
	// overwrite the new token. ENOTFOUND if the tenant does not exist.
	PutIntegration(ctx context.Context, in Integration) error
	// Integration returns a tenant's integration. ENOTFOUND if none.
	Integration(ctx context.Context, tenantID string) (Integration, error)
	// ListIntegrations returns every integration ordered by tenant.
	ListIntegrations(ctx context.Context) ([]Integration, error)
	// SetIntegrationState changes the state and last error. When state is
	// active and restart is true, the sync starts over with a full sync.
	// ENOTFOUND.
	SetIntegrationState(ctx context.Context, tenantID, state, lastError string, restart bool) error
	// SaveSyncProgress records a page or the end of a sync cycle and sets
	// LastSyncAt. ENOTFOUND.
	SaveSyncProgress(ctx context.Context, tenantID string, p SyncProgress) error
	// SaveIntegrationToken stores a sealed token if the stored TokenVersion
	// is still version and returns the new version; ECONFLICT when another
	// writer saved first, ENOTFOUND when there is no integration.
	SaveIntegrationToken(ctx context.Context, tenantID string, token []byte, version int64) (int64, error)
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
