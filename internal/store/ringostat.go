package store

import (
	"context"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// Ringostat connection states.
const (
	RingostatActive = "active" // the API takes the key
	RingostatBroken = "broken" // Ringostat refused the key (401/403); waits for an admin
)

// RingostatConn is a tenant's connection to its Ringostat project's API and
// the progress of the work done with it. AuthKey is sealed (encrypted) by
// the caller; the store never sees it in the clear.
type RingostatConn struct {
	TenantID  string
	BaseURL   string
	ProjectID string
	AuthKey   []byte // sealed Auth-key
	State     string
	LastError string // Ringostat's own words for a broken connection
	ErrorAt   time.Time
	// The contacts push: PushCursor is the last entity the full push sent
	// ("kind/id", "" before the first), PushDone whether it finished, Pushed how many
	// contacts were sent since connecting, PushError the last failure ("" after
	// a success), PushAt the last attempt.
	PushCursor string
	PushDone   bool
	Pushed     int
	PushError  string
	PushAt     time.Time
	// The call-log reconciliation: ReconciledUntil is the end of the last
	// window read, Recovered how many calls it ingested that no webhook had
	// brought, ReconcileError the last failure, ReconcileAt the last attempt.
	ReconciledUntil time.Time
	Recovered       int
	ReconcileError  string
	ReconcileAt     time.Time
	UpdatedAt       time.Time
}

// RingostatPush is what one step of the contacts push records.
type RingostatPush struct {
	// Cursor and Done replace the full push's position; with Keep they are
	// left alone (a push of changes, not of the full index).
	Cursor string
	Done   bool
	Keep   bool
	Pushed int    // added to the count
	Error  string // replaces the last error; "" clears it
}

// RingostatReconcile is what one reconciliation pass records.
type RingostatReconcile struct {
	Until     time.Time // replaces ReconciledUntil unless zero
	Recovered int       // added to the count
	Error     string    // replaces the last error; "" clears it
}

// Ringostat stores Ringostat connections, and reads the phone index by
// entity for the contacts push.
type Ringostat interface {
	// PutRingostat inserts or replaces a tenant's connection: base URL,
	// project id, sealed key and ReconciledUntil come from c; the state
	// becomes active, and the push and counters start over. UpdatedAt is
	// the store's clock. ENOTFOUND if the tenant does not exist.
	PutRingostat(ctx context.Context, c RingostatConn) error
	// RingostatConn returns a tenant's connection. ENOTFOUND if none.
	RingostatConn(ctx context.Context, tenantID string) (RingostatConn, error)
	// ListRingostat returns every connection ordered by tenant.
	ListRingostat(ctx context.Context) ([]RingostatConn, error)
	// DeleteRingostat removes a tenant's connection. ENOTFOUND if none.
	DeleteRingostat(ctx context.Context, tenantID string) error
	// SetRingostatState sets the state and last error and stamps UpdatedAt
	// (and ErrorAt when lastError is not empty). ENOTFOUND.
	SetRingostatState(ctx context.Context, tenantID, state, lastError string) error
	// SaveRingostatPush records a push step and stamps PushAt. ENOTFOUND.
	SaveRingostatPush(ctx context.Context, tenantID string, p RingostatPush) error
	// SaveRingostatReconcile records a reconciliation pass and stamps
	// ReconcileAt. ENOTFOUND.
	SaveRingostatReconcile(ctx context.Context, tenantID string, r RingostatReconcile) error
	// LeaseRingostat makes holder the one instance working a tenant's
	// connection for ttl, unless another holder's lease has not run out,
	// and reports whether it does; a holder renews its own lease the same
	// way. ENOTFOUND if the tenant has no connection.
	LeaseRingostat(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error)
	// IndexEntities returns every index row of the first limit entities of
	// a tenant that sort after after (by kind, then entity id), ordered by
	// kind, entity id, phone. A zero after starts at the beginning.
	IndexEntities(ctx context.Context, tenantID string, after EntityRef, limit int) ([]domain.IndexEntry, error)
	// EntityIndex returns every index row of the named entities of a tenant,
	// ordered by kind, entity id, phone; entities without rows are skipped.
	EntityIndex(ctx context.Context, tenantID string, refs []EntityRef) ([]domain.IndexEntry, error)
	// SetEventField sets one field of a stored call event (an automatic
	// call-back attempt is recorded on the missed call's event), keeping
	// the others. ENOTFOUND if the event does not exist.
	SetEventField(ctx context.Context, tenantID, eventID, key, value string) error
	// ClaimEventField sets one field of a stored call event unless the
	// event has it already, and reports whether it set it: of two
	// instances racing to claim an event's call-back, one wins. ENOTFOUND
	// if the event does not exist.
	ClaimEventField(ctx context.Context, tenantID, eventID, key, value string) (bool, error)
}
