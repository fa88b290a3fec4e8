// Package store defines callrouter's storage: tenants, employees, the stop
// list, the phone index, the admin audit log, admin tokens and instance
// metadata. The
// sqlite and postgres subpackages implement it; storetest holds the one
// conformance suite both must pass.
//
// Errors: methods return *domain.Error with ENOTFOUND for a missing row and
// ECONFLICT for a duplicate key; anything else is an internal error wrapped
// with %w.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
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
	Events
	Security
	SyncLeases
	Ringostat
	SALESmanago
	CRMUsers
	RouteDecisions
	TenantDeleter
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
	// UpdateTenant replaces name, settings and default owner of t.ID and
	// sets UpdatedAt. The webhook secret is left alone: it changes only
	// through RotateTenantSecret, so a settings change racing a rotation
	// cannot bring the old secret back. ENOTFOUND if absent.
	UpdateTenant(ctx context.Context, t domain.Tenant) error
}

// TenantDeleter removes tenants. It is apart from Tenants so that what
// only reads tenants (the routing registry's sources) need not have it.
type TenantDeleter interface {
	// DeleteTenant removes a tenant and, in the same transaction,
	// everything kept for it: employees, stop list, phone index,
	// integration and its credentials, CRM users, call events, rejected
	// bodies, CRM writes, leases, the Ringostat connection, route
	// decisions, its meta rows (TenantMeta). Audit entries stay: the record of what was done outlives
	// the tenant. ENOTFOUND if absent.
	DeleteTenant(ctx context.Context, id string) error
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
	// FullFrom is when the running full sync began by the store's clock;
	// zero when none runs or its start is unknown (then its end sweeps
	// nothing).
	FullFrom time.Time
	// ReconciledAt is when the last full sync ended with its sweep; the
	// next periodic reconciliation is due from it.
	ReconciledAt time.Time
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
	// StartFullSync records the store's clock as FullFrom: a full sync
	// begins, and every index row it writes is seen after FullFrom.
	// PutIntegration and a restarting SetIntegrationState clear FullFrom.
	// ENOTFOUND when there is no integration.
	StartFullSync(ctx context.Context, tenantID string) error
	// FinishFullSync ends the full sync begun at FullFrom: in one
	// transaction it removes the tenant's index rows not written since
	// FullFrom less SweepMargin (rows of entities the CRM no longer
	// returned), clears FullFrom and sets ReconciledAt to the store's clock.
	// It returns the sorted distinct suffixes of the removed rows. With
	// FullFrom unset it removes nothing and changes nothing. ENOTFOUND when
	// there is no integration.
	FinishFullSync(ctx context.Context, tenantID string) ([]string, error)
}

// SweepMargin is how much older than the start of a full sync an index
// row must have been written for that sync's end to remove it: instances
// on one PostgreSQL stamp rows with their own clocks, and a row another
// instance wrote just after the start must not be taken for one the sync
// did not see. An entity deleted within the margin before the start is
// caught by the CRM's deletion feed or the next reconciliation.
const SweepMargin = time.Minute

// CRMUser is a CRM user as the CRM's users call listed it at the last
// refresh.
type CRMUser struct {
	ID     string
	Name   string
	Email  string
	Active bool
}

// CRMUsers stores each tenant's list of CRM users.
type CRMUsers interface {
	// ReplaceCRMUsers replaces a tenant's CRM users with users in one
	// transaction and reports whether the stored list changed (ids, names,
	// emails or active flags). ENOTFOUND if the tenant does not exist;
	// EINVALID for a user without an id or listed twice.
	ReplaceCRMUsers(ctx context.Context, tenantID string, users []CRMUser) (bool, error)
	// ListCRMUsers returns a tenant's CRM users ordered by id; none when
	// they were never listed.
	ListCRMUsers(ctx context.Context, tenantID string) ([]CRMUser, error)
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

// Events stores call events, the bodies the events endpoint rejected, and
// the CRM writes the events made.
type Events interface {
	// InsertEvents stores evs (ID, ReceivedAt and State are set by the
	// store) in one transaction, each unless its tenant already has an event
	// with its UniqueID and Kind, an earlier one of evs included. It then
	// calls enqueue inside the same transaction with the events this call
	// stored, in order, so the jobs that will process them commit with them
	// or not at all; enqueue is not called when nothing was stored. It
	// returns, for each of evs, the stored event's id and whether this call
	// stored it (a duplicate gets the first one's id). ENOTFOUND if a tenant
	// does not exist; on any error, enqueue's included, nothing is stored.
	InsertEvents(ctx context.Context, evs []domain.CallEvent, enqueue func(ctx context.Context, tx any, stored []domain.CallEvent) error) ([]Inserted, error)
	// Event returns one event. ENOTFOUND.
	Event(ctx context.Context, tenantID, id string) (domain.CallEvent, error)
	// ListEvents returns up to f.Limit (1–1000) events of a tenant matching
	// f: failed ones first, then waiting ones, then the rest, each newest
	// (by ReceivedAt) first. Errors are the store's.
	ListEvents(ctx context.Context, tenantID string, f EventFilter) ([]domain.CallEvent, error)
	// NextEvent returns the oldest waiting event of a tenant's partition.
	// ENOTFOUND when none waits.
	NextEvent(ctx context.Context, tenantID, partition string) (domain.CallEvent, error)
	// FinishEvent moves a waiting event to state (done, failed) with note
	// and sets ProcessedAt. ENOTFOUND when it is not waiting.
	FinishEvent(ctx context.Context, tenantID, id, state, note string) error
	// NoteAttempt counts a failed attempt on a waiting event, keeps it
	// waiting until retryAt, and returns the attempts made so far.
	// ENOTFOUND.
	NoteAttempt(ctx context.Context, tenantID, id, errText string, retryAt time.Time) (int, error)
	// WaitingPartitions returns up to limit distinct (tenant, partition)
	// pairs with an event received before receivedBefore that may be tried
	// by dueBy; tenantID "" means every tenant.
	WaitingPartitions(ctx context.Context, tenantID string, receivedBefore, dueBy time.Time, limit int) ([]Partition, error)
	// DropWaiting marks a tenant's waiting events received before before as
	// dropped and returns how many.
	DropWaiting(ctx context.Context, tenantID string, before time.Time, note string) (int, error)
	// EventStats counts a tenant's events by state, rejected bodies too.
	EventStats(ctx context.Context, tenantID string) (domain.EventStats, error)
	// RejectEvent keeps a body the events endpoint refused.
	RejectEvent(ctx context.Context, r domain.RejectedEvent) error
	// ListRejected returns up to limit rejected bodies of a tenant, newest
	// first.
	ListRejected(ctx context.Context, tenantID string, limit int) ([]domain.RejectedEvent, error)
	// TrimRejected deletes a tenant's rejected bodies but its newest keep
	// and returns how many it deleted.
	TrimRejected(ctx context.Context, tenantID string, keep int) (int, error)
	// ExpireEvents deletes up to limit of a tenant's finished events (done,
	// failed, dropped) received before before, oldest first, with the
	// completed CRM writes made before before; it returns how many events
	// it deleted. Waiting events are never deleted.
	ExpireEvents(ctx context.Context, tenantID string, before time.Time, limit int) (int, error)
	// ExpireRejected deletes a tenant's rejected bodies received before
	// before and returns how many it deleted.
	ExpireRejected(ctx context.Context, tenantID string, before time.Time) (int, error)
	// BeginWrite records that a CRM create with key is about to be sent,
	// unless the key is recorded already, and returns the record as stored
	// and whether this call recorded it. An old record with EntityID set is
	// a finished create; one without is a create whose answer was lost.
	BeginWrite(ctx context.Context, w domain.CRMWrite) (stored domain.CRMWrite, fresh bool, err error)
	// FinishWrite stores the id the CRM gave the create with key. ENOTFOUND
	// when BeginWrite was not called.
	FinishWrite(ctx context.Context, tenantID, key, entityID string) error
	// LeasePartition makes holder the one applying a partition's events for
	// ttl, if nobody else holds an unexpired lease on it, and reports
	// whether it does; a holder renews its own lease the same way.
	LeasePartition(ctx context.Context, tenantID, partition, holder string, ttl time.Duration) (bool, error)
	// ReleasePartition ends holder's lease; someone else's is left alone.
	ReleasePartition(ctx context.Context, tenantID, partition, holder string) error
}

// EventFilter selects call events for ListEvents; zero fields select
// everything.
type EventFilter struct {
	State     string    // one of the domain.Event* states
	Partition string    // the client's normalized number (Partition of the event)
	Before    time.Time // received strictly before this
	// MarketingID selects events whose fields may carry client_id = it
	// (Ringostat's Google Analytics client id). It is a prefilter on the
	// stored JSON (case-insensitive on SQLite): callers compare
	// Fields["client_id"] themselves.
	MarketingID string
	Limit       int
}

// clampLimit bounds a listing's limit to 1–1000, 100 when unset.
func (f EventFilter) clampLimit() int {
	if f.Limit <= 0 || f.Limit > 1000 {
		return 100
	}
	return f.Limit
}

// Where returns the SQL conditions and arguments of f after "tenant_id =
// <first placeholder>", with placeholders made by ph from their 1-based
// position (2 onwards), and the LIMIT to apply.
func (f EventFilter) Where(ph func(n int) string) (string, []any, int) {
	var where string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where += " AND " + cond + " " + ph(len(args)+1)
	}
	if f.State != "" {
		add("state =", f.State)
	}
	if f.Partition != "" {
		add("partition =", f.Partition)
	}
	if !f.Before.IsZero() {
		add("received_at <", f.Before)
	}
	if f.MarketingID != "" {
		// Fields are stored as encoding/json writes a map: the key, a colon
		// and the value with nothing between.
		v, _ := json.Marshal(f.MarketingID) // a string always marshals
		args = append(args, "%"+likeEscaper.Replace(`"client_id":`+string(v))+"%")
		where += " AND fields LIKE " + ph(len(args)+1) + ` ESCAPE '\'`
	}
	return where, args, f.clampLimit()
}

// likeEscaper escapes LIKE's wildcards and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// EventOrder orders ListEvents: failed first, then waiting, then the rest,
// newest first.
const EventOrder = ` ORDER BY CASE state WHEN 'failed' THEN 0 WHEN 'waiting' THEN 1 ELSE 2 END, received_at DESC, seq DESC`

// Partition names the events of one client of one tenant.
type Partition struct {
	TenantID  string
	Partition string
}

// Inserted is what InsertEvents did with one event.
type Inserted struct {
	ID      string
	Created bool
}

// NewID returns a random identifier for stored rows such as call events:
// 32 hex digits, unguessable, so an id says nothing about volume.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// Admin token scopes.
const (
	ScopeRead  = "read"  // GET and HEAD on the admin API
	ScopeAdmin = "admin" // everything
)

// AdminToken is an admin API token as stored: its SHA-256, never the token.
type AdminToken struct {
	ID        string
	Name      string
	Scope     string // ScopeRead or ScopeAdmin
	Hash      []byte // SHA-256 of the token
	CreatedAt time.Time
	RevokedAt time.Time // zero while the token is valid
}

// Security stores what guards the endpoints: webhook secret rotations and
// admin tokens.
type Security interface {
	// RotateTenantSecret makes newHash the tenant's webhook secret hash and
	// keeps the hash it replaces as the previous secret, accepted until
	// prevUntil; a zero prevUntil keeps no previous secret. It sets
	// UpdatedAt. ENOTFOUND if the tenant does not exist.
	RotateTenantSecret(ctx context.Context, tenantID string, newHash []byte, prevUntil time.Time) error
	// CreateAdminToken stores tok with CreatedAt set to the store's clock
	// and returns it as stored. ECONFLICT if its id or hash exists.
	CreateAdminToken(ctx context.Context, tok AdminToken) (AdminToken, error)
	// AdminTokenByHash returns the token whose hash is hash, revoked or
	// not. ENOTFOUND if none.
	AdminTokenByHash(ctx context.Context, hash []byte) (AdminToken, error)
	// ListAdminTokens returns every token, revoked ones too, oldest first.
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
	// RevokeAdminToken marks a token revoked at the store's clock and
	// returns it; revoking a revoked token keeps its first RevokedAt.
	// ENOTFOUND if absent.
	RevokeAdminToken(ctx context.Context, id string) (AdminToken, error)
}

// Scale-out: several instances on one database.

// SyncLeases make one instance at a time run a tenant's CRM sync cycle,
// whichever instance's job queue picked the cycle up; a crashed holder's
// lease runs out, so a survivor resumes the sync from its stored position.
type SyncLeases interface {
	// LeaseSync makes holder the one syncing the tenant's CRM for ttl, if
	// nobody else holds an unexpired lease, and reports whether it does; a
	// holder renews its own lease the same way. ENOTFOUND if the tenant does
	// not exist.
	LeaseSync(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error)
	// ReleaseSync ends holder's lease; someone else's is left alone.
	ReleaseSync(ctx context.Context, tenantID, holder string) error
}

// ChangeLog is an ordered log of change announcements (cache keys and
// configuration to reload) for instances that share a database that cannot
// notify them (SQLite; PostgreSQL uses LISTEN/NOTIFY). Readers poll it.
type ChangeLog interface {
	// AppendChanges appends payloads in order, in one transaction.
	AppendChanges(ctx context.Context, payloads []string) error
	// ChangesAfter returns up to limit entries with Seq > after, in order.
	ChangesAfter(ctx context.Context, after int64, limit int) ([]LoggedChange, error)
	// LastChange returns the Seq of the newest entry, 0 when the log has
	// never had one.
	LastChange(ctx context.Context) (int64, error)
	// TrimChanges removes the entries appended before before. Seqs are never
	// reused, so a reader that finds a gap after its position knows it
	// missed trimmed entries.
	TrimChanges(ctx context.Context, before time.Time) error
}

// LoggedChange is one entry of a ChangeLog.
type LoggedChange struct {
	Seq     int64
	Payload string
}

// SortCRMUsers returns users ordered by id, as both backends store and
// list them. EINVALID for a user without an id or an id listed twice.
func SortCRMUsers(users []CRMUser) ([]CRMUser, error) {
	out := slices.Clone(users)
	slices.SortFunc(out, func(a, b CRMUser) int { return strings.Compare(a.ID, b.ID) })
	for i, u := range out {
		if u.ID == "" {
			return nil, domain.Errorf(domain.EINVALID, "crm user %q: no id", u.Name)
		}
		if i > 0 && out[i-1].ID == u.ID {
			return nil, domain.Errorf(domain.EINVALID, "crm user %q listed twice", u.ID)
		}
	}
	return out, nil
}
