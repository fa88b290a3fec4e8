package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// SALESmanago connection states.
const (
	SMActive   = "active"   // synced on schedule
	SMInactive = "inactive" // an admin paused it
	SMBroken   = "broken"   // SALESmanago refused the credentials; waits for an admin
)

// SMConn is a tenant's connection to its SALESmanago account for the
// SALESmanago ⇄ Zoho CRM contact sync, and the sync's progress. Secrets
// (the API key and secret) are sealed by the caller; the store never sees
// them in the clear.
type SMConn struct {
	TenantID   string
	BaseURL    string
	ClientID   string
	OwnerEmail string
	Secrets    []byte // sealed {"api_key","api_secret"}
	State      string
	LastError  string // SALESmanago's or Zoho's words for a broken connection
	ErrorAt    time.Time
	// FullDone is set once the first (full) sync finished; SMCursor and
	// ZohoCursor are where the next incremental pass reads each side's
	// changes from (zero before the first pass).
	FullDone   bool
	SMCursor   time.Time
	ZohoCursor time.Time
	// LastSlot is the scheduled slot (00/06/12/18 in the tenant's zone) the
	// last scheduled pass covered; zero before the first.
	LastSlot time.Time
	// The last pass: its kind (full, scheduled, incremental, manual), when it
	// ended, and its error ("" after a success).
	RunKind  string
	RunAt    time.Time
	RunError string
	// Counters since connecting.
	ToZoho    int // records written to Zoho CRM
	ToSM      int // contacts written to SALESmanago
	Conflicts int // fields both sides changed since the pass before
	Skipped   int // records without a usable e-mail
	UpdatedAt time.Time
}

// SMProgress is what one pass (or one step of it) records.
type SMProgress struct {
	// SMCursor and ZohoCursor replace the stored ones unless zero; FullDone
	// sets FullDone when true; Slot replaces LastSlot unless zero.
	SMCursor   time.Time
	ZohoCursor time.Time
	FullDone   bool
	Slot       time.Time
	// Kind, when set, names a finished pass: it replaces RunKind, Error
	// replaces RunError ("" clears it) and RunAt is stamped.
	Kind  string
	Error string
	// Added to the counters.
	ToZoho, ToSM, Conflicts, Skipped int
	// Release, when set, ends that holder's lease (see LeaseSM) in the
	// same write: whoever sees a pass recorded may start the next one.
	Release string
}

// SMLink is one person the sync keeps in step: the SALESmanago contact and
// the Zoho CRM lead or contact with the same e-mail, and what each side
// held after the last pass (the fingerprints: a side whose values equal
// its fingerprint did not change, so nothing is sent back).
type SMLink struct {
	TenantID   string
	Email      string // lower-case; the key
	SMID       string
	ZohoModule string // Leads or Contacts
	ZohoID     string
	SMSeen     string // JSON of the synced fields as SALESmanago held them
	ZohoSeen   string // the same for Zoho CRM
	UpdatedAt  time.Time
}

// SALESmanago stores SALESmanago connections and the sync's per-record
// links.
type SALESmanago interface {
	// PutSM inserts or replaces a tenant's connection: base URL, client id,
	// owner e-mail and sealed secrets come from c; the state becomes active
	// and progress and counters start over (links are kept: the next
	// full pass finds every record unchanged or merges it). UpdatedAt is the
	// store's clock. ENOTFOUND if the tenant does not exist.
	PutSM(ctx context.Context, c SMConn) error
	// SMConn returns a tenant's connection. ENOTFOUND if none.
	SMConn(ctx context.Context, tenantID string) (SMConn, error)
	// ListSM returns every connection ordered by tenant.
	ListSM(ctx context.Context) ([]SMConn, error)
	// DeleteSM removes a tenant's connection and its links. ENOTFOUND if
	// none.
	DeleteSM(ctx context.Context, tenantID string) error
	// SetSMState sets the state and last error, stamps UpdatedAt (and
	// ErrorAt when lastError is not empty). ENOTFOUND.
	SetSMState(ctx context.Context, tenantID, state, lastError string) error
	// SaveSMProgress records a pass or a step of one. ENOTFOUND.
	SaveSMProgress(ctx context.Context, tenantID string, p SMProgress) error
	// LeaseSM makes holder the one instance syncing a tenant for ttl unless
	// another holder's lease has not run out, and reports whether it does;
	// a holder renews its own lease the same way. ENOTFOUND without a
	// connection.
	LeaseSM(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error)
	// SMLinks returns the links of the given e-mails (lower-case) that
	// exist, ordered by e-mail.
	SMLinks(ctx context.Context, tenantID string, emails []string) ([]SMLink, error)
	// PutSMLinks inserts or replaces links, all in one transaction, stamping
	// UpdatedAt. ENOTFOUND if the tenant has no connection; EINVALID for a
	// link without an e-mail.
	PutSMLinks(ctx context.Context, tenantID string, links []SMLink) error
	// CountSMLinks returns how many links a tenant has.
	CountSMLinks(ctx context.Context, tenantID string) (int, error)
}

// SortSMLinks orders links by e-mail, as both backends return them.
func SortSMLinks(links []SMLink) {
	slices.SortFunc(links, func(a, b SMLink) int { return strings.Compare(a.Email, b.Email) })
}

// CheckSMLinks refuses links without an e-mail or listed twice. EINVALID.
func CheckSMLinks(links []SMLink) error {
	seen := make(map[string]bool, len(links))
	for _, l := range links {
		if l.Email == "" {
			return domain.Errorf(domain.EINVALID, "salesmanago link: no email")
		}
		if seen[l.Email] {
			return domain.Errorf(domain.EINVALID, "salesmanago link %q listed twice", l.Email)
		}
		seen[l.Email] = true
	}
	return nil
}
