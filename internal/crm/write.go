package crm

import (
	"context"
	"errors"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// Writer creates what a call leaves in the CRM: a lead (with a contact
// where the CRM needs one), the call record and the call-back task. Every
// adapter's Source implements it.
//
// Each create carries Key, an idempotency key callrouter stores with the id
// the CRM returns. If callrouter dies between the CRM's answer and storing
// the id, the retry asks Find for the entity the key made before creating
// it again; adapters therefore put the key where the CRM can search for it
// (amoCRM's call "uniq", retailCRM's externalId, a marker in a task's
// text), and say in their package doc how.
//
// Errors: *AuthError when the CRM rejects the credentials, *StatusError
// for any other refusal after retries (IsPermanent tells a refusal that a
// retry cannot fix), ctx errors, and transport errors.
type Writer interface {
	// CreateLead creates a lead or deal for a client, titled with its phone,
	// and the contact holding the phone first when lead.ContactID is "" and
	// the CRM keeps phones on contacts. The created lead must be found by
	// FindByPhone of its phone afterwards (search indexes allowing).
	CreateLead(ctx context.Context, lead NewLead) (Created, error)
	// CreateCall records a finished call, linked to lead and contact.
	CreateCall(ctx context.Context, call NewCall) (string, error)
	// CreateTask creates a task for a user, linked to lead and contact.
	CreateTask(ctx context.Context, task NewTask) (string, error)
	// FillUTM writes utm into the lead's UTM fields when every one of them
	// is empty and reports whether it wrote; a lead with any UTM field set
	// keeps its attribution.
	FillUTM(ctx context.Context, lead Ref, utm UTM) (bool, error)
	// Find returns the id of the entity of kind an earlier create with key
	// made, searching under parent (the lead or contact it was linked to);
	// "" when there is none. ErrNotSearchable when this CRM cannot search
	// for that kind of write.
	Find(ctx context.Context, kind WriteKind, key string, parent Ref) (string, error)
}

// WriteKind is a kind of entity Writer creates.
type WriteKind string

// Write kinds.
const (
	WriteLead WriteKind = "lead"
	WriteCall WriteKind = "call"
	WriteTask WriteKind = "task"
	WriteUTM  WriteKind = "utm"
)

// ErrNotSearchable is Find's answer for writes the CRM offers no way to
// search; the caller then creates again, accepting a duplicate in the
// narrow window between the CRM's answer and storing its id.
var ErrNotSearchable = errors.New("crm: this CRM cannot search for that write")

// ErrInactive says a tenant has no active integration to write to (none,
// inactive or broken); call events wait for one.
var ErrInactive = errors.New("crm: the tenant's CRM integration is not active")

// UTM is the marketing attribution of a call.
type UTM struct {
	Source   string `json:"utm_source,omitempty"`
	Medium   string `json:"utm_medium,omitempty"`
	Campaign string `json:"utm_campaign,omitempty"`
	Term     string `json:"utm_term,omitempty"`
	Content  string `json:"utm_content,omitempty"`
	// ClientID is the Google Analytics client id (Zoho's rs_google_client_id).
	ClientID string `json:"client_id,omitempty"`
}

// Empty reports whether no field is set.
func (u UTM) Empty() bool { return u == UTM{} }

// NewLead is a lead to create.
type NewLead struct {
	Key string
	// Phone is the client's number in E.164 digits without '+'.
	Phone string
	// Title names the lead; callrouter uses the client's number.
	Title string
	// OwnerID is the responsible CRM user; "" leaves it to the CRM.
	OwnerID string
	// ContactID links an existing contact instead of creating one.
	ContactID string
	// Pipeline is the CRM's pipeline (funnel, order type) id; "" is the
	// CRM's default.
	Pipeline string
	UTM      UTM
	// Fields are further CRM fields of the lead by the CRM's address (field
	// id or code, API name), value as text: the tenant's call or form
	// mapping.
	Fields map[string]string
	// ContactFields are those of the contact made with the lead.
	ContactFields map[string]string
	// Tags are tag names for CRMs that tag leads.
	Tags []string
}

// Created is what CreateLead made.
type Created struct {
	Lead Ref
	// Contact is the contact linked to the lead, created or given; zero
	// when the CRM's lead holds the phone itself.
	Contact Ref
}

// NewCall is a call record to create.
type NewCall struct {
	Key string
	// CallID is the PBX's call id (uniqueid).
	CallID   string
	Outgoing bool
	// Answered is false for missed calls (no answer, busy, failed,
	// voicemail, or no talk time).
	Answered bool
	// Disposition is the PBX's disposition, upper case.
	Disposition string
	// Phone is the client's number (E.164 digits); Line is the other end:
	// the number the client dialled, or the employee's.
	Phone string
	Line  string
	Start time.Time
	// Zone is the project's time zone: CRMs that take local times (retailCRM)
	// or offsets (Zoho) get Start in it. nil is UTC.
	Zone *time.Location
	// Duration is the talk time (billsec); Wait the time before an answer.
	Duration time.Duration
	Wait     time.Duration
	// Recording is the link to the call's recording, "" when none.
	Recording string
	// UserID is the answering or calling manager's CRM user id.
	UserID  string
	Lead    Ref
	Contact Ref
	// Texts are the record's words in the tenant's language; a field left
	// "" takes the adapter's English.
	Texts CallTexts
}

// CallTexts are the human-readable parts of a call record, written in the
// tenant's language by the caller (events' texts), so that each adapter
// only decides where they go.
type CallTexts struct {
	// Subject titles the record, e.g. "Missed call +380671234567".
	Subject string
	// Result is the outcome in a few words ("answered", "missed (BUSY)"),
	// amoCRM's call_result.
	Result string
	// Note is the record's description: one "label: value" line each for
	// the phone (always first), line, disposition, talk time, wait,
	// recording and the PBX call id.
	Note string
}

// NewTask is a task to create.
type NewTask struct {
	Key  string
	Text string
	Due  time.Time
	// Zone is the project's time zone, as in NewCall. nil is UTC.
	Zone    *time.Location
	UserID  string
	Phone   string
	Lead    Ref
	Contact Ref
}

// IsPermanent reports whether err is a CRM refusal that retrying the same
// request cannot fix: a 4xx answer other than 408, 409, 423 and 429.
// Credentials rejected (*AuthError) are not permanent: the request works
// again once an admin reconnects.
func IsPermanent(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case 408, 409, 423, 429:
		return false
	}
	return se.Status >= 400 && se.Status < 500
}

// LeadKinds are the entity kinds a call is filed under, in the order a
// known client's open ones are preferred.
var LeadKinds = []domain.EntityKind{domain.KindLead, domain.KindDeal}

// WriteContact is the kind of a contact created on its own (a matrix row
// or a form that asks for a contact).
const WriteContact WriteKind = "contact"

// ContactWriter creates a contact on its own, for matrix rows and forms
// that ask for a contact without a lead. Every adapter's Source
// implements it.
type ContactWriter interface {
	// CreateContact creates a contact holding the phone and/or e-mail and
	// returns it. Errors as Writer's; EINVALID when it has neither phone
	// nor e-mail.
	CreateContact(ctx context.Context, c NewContact) (Ref, error)
}

// NewContact is a contact to create.
type NewContact struct {
	Key string
	// Phone is the client's number in E.164 digits without '+'; "" when
	// only an e-mail is known.
	Phone string
	Email string
	// Name is the contact's name; the phone or e-mail when "".
	Name    string
	OwnerID string
	// Fields are further CRM fields by the CRM's address (field id or code,
	// API name), value as text.
	Fields map[string]string
	// Tags are tag names for CRMs that tag contacts.
	Tags []string
}

// EmailFinder finds a client's contact by e-mail, for website forms that
// carry no phone. Adapters whose CRM can search contacts by e-mail
// implement it.
type EmailFinder interface {
	// FindContactByEmail returns the contact holding email (the most
	// recently updated when several do); a zero Ref when none does.
	// Errors as Writer's.
	FindContactByEmail(ctx context.Context, email string) (Ref, error)
}

// FieldLister lists the fields a CRM account has, so that a tenant's
// mapping naming one the account lacks is refused when it is saved rather
// than failing events later. Adapters of CRMs that let callrouter list
// their fields implement it (amoCRM, Zoho CRM, retailCRM).
type FieldLister interface {
	// MappableFields returns every address a mapping may name for entity
	// ("contact" or "deal") in this account: field ids and codes, or API
	// names. ok is false when the account does not let callrouter list
	// them (a token without the scope). Errors: the CRM's.
	MappableFields(ctx context.Context, entity string) (fields []string, ok bool, err error)
}

// In returns t in zone, or in UTC when zone is nil.
func In(t time.Time, zone *time.Location) time.Time {
	if zone == nil {
		return t.UTC()
	}
	return t.In(zone)
}

// WriteUnsorted is the kind of an incoming request filed for managers to
// accept (amoCRM's unsorted leads) instead of a lead.
const WriteUnsorted WriteKind = "unsorted"

// Categories of an incoming request.
const (
	UnsortedSIP   = "sip"
	UnsortedForms = "forms"
)

// UnsortedWriter files incoming requests (a call, a website form) as
// requests the managers accept or decline in the CRM, instead of leads
// (amoCRM's unsorted leads, Ringostat's "requests"). Only the amoCRM
// adapter implements it.
type UnsortedWriter interface {
	// CreateUnsorted files one request and returns it. Errors as Writer's;
	// EINVALID for a category other than UnsortedSIP or UnsortedForms, or
	// a request without the client's phone (sip) or phone and e-mail
	// (forms).
	CreateUnsorted(ctx context.Context, u NewUnsorted) (Unsorted, error)
}

// NewUnsorted is an incoming request to file.
type NewUnsorted struct {
	// Key is the idempotency key; the adapter makes it the request's own
	// id in the CRM, so that Find(WriteUnsorted) finds it.
	Key      string
	Category string // UnsortedSIP or UnsortedForms
	// Phone is the client's number (E.164 digits), Email the client's
	// e-mail (forms), Name the client's name.
	Phone string
	Email string
	Name  string
	// Title names the request's lead.
	Title string
	// Pipeline is the CRM's pipeline id; "" is the CRM's default.
	Pipeline string
	// At is when the call started or the form was sent.
	At            time.Time
	UTM           UTM
	Fields        map[string]string
	ContactFields map[string]string
	Tags          []string
	// Calls: Line is the number the client called, Duration the talk
	// time, Recording the recording's link.
	Line      string
	Duration  time.Duration
	Recording string
	// Forms: the form's id, name and page, the sender's IP and referrer.
	FormID   string
	FormName string
	FormPage string
	IP       string
	Referer  string
}

// Unsorted is a filed request: its id in the CRM and the lead and contact
// the CRM made inside it (which stay out of the CRM's searches until a
// manager accepts the request).
type Unsorted struct {
	UID     string
	Lead    Ref
	Contact Ref
}

// FieldUpdater writes a tenant's mapped fields onto an entity that
// exists: the contact or open lead a website form found. Every adapter's
// Source implements it.
type FieldUpdater interface {
	// UpdateFields sets fields (the CRM's addresses, values as text) on
	// ref and leaves every other field as it is; none is a no-op. Errors
	// as Writer's; EINVALID for a ref of a kind the CRM has no such
	// fields on.
	UpdateFields(ctx context.Context, ref Ref, fields map[string]string) error
}
