package domain

import (
	"strings"
	"time"
)

// EventKind is a call event the PBX posts.
type EventKind string

// The call events callrouter acts on.
const (
	EventCallStart     EventKind = "call_start"     // incoming call, before it is answered
	EventCallAnswered  EventKind = "call_answered"  // incoming call picked up
	EventCallEnd       EventKind = "call_end"       // incoming call finished, answered or missed
	EventOutgoingStart EventKind = "outgoing_start" // outgoing call dialled
	EventOutgoingEnd   EventKind = "outgoing_end"   // outgoing call finished
	EventForm          EventKind = "form"           // a form sent from the client's website
)

// eventAliases maps the names PBX webhook setups use for the same moments
// (Ringostat's own labels and those of public receivers) to the kinds.
var eventAliases = map[string]EventKind{
	"call_start": EventCallStart, "start": EventCallStart, "incoming_start": EventCallStart,
	"before_call": EventCallStart, "call_before": EventCallStart, "ringing": EventCallStart,

	"call_answered": EventCallAnswered, "answered": EventCallAnswered, "answer": EventCallAnswered,
	"pickup": EventCallAnswered, "call_pickup": EventCallAnswered, "incoming_answered": EventCallAnswered,

	"call_end": EventCallEnd, "end": EventCallEnd, "after_call": EventCallEnd, "call_after": EventCallEnd,
	"incoming_end": EventCallEnd, "hangup": EventCallEnd, "missed": EventCallEnd, "call_missed": EventCallEnd,
	"completed": EventCallEnd,

	"outgoing_start": EventOutgoingStart, "outgoing_before": EventOutgoingStart, "out_start": EventOutgoingStart,
	"outbound_start": EventOutgoingStart,

	"outgoing_end": EventOutgoingEnd, "outgoing_after": EventOutgoingEnd, "out_end": EventOutgoingEnd,
	"outbound_end": EventOutgoingEnd, "outgoing_hangup": EventOutgoingEnd,

	"form": EventForm, "form_submit": EventForm, "form_sent": EventForm,
}

// ParseEventKind returns the kind named s or one of its aliases, in any
// case, with '-' or ' ' for '_'; ok is false for anything else.
func ParseEventKind(s string) (EventKind, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.NewReplacer("-", "_", " ", "_").Replace(s)
	k, ok := eventAliases[s]
	return k, ok
}

// Outgoing reports whether the kind belongs to an outgoing call.
func (k EventKind) Outgoing() bool { return k == EventOutgoingStart || k == EventOutgoingEnd }

// Event states.
const (
	EventWaiting = "waiting" // stored, not yet applied to the CRM
	EventDone    = "done"    // applied (or nothing to do); Note says what
	EventFailed  = "failed"  // the CRM refused it for good; Note has its words
	EventDropped = "dropped" // waited through a broken integration and was not resent
)

// CallEvent is one stored call event.
type CallEvent struct {
	ID       string
	TenantID string
	UniqueID string // the PBX's call id
	Kind     EventKind
	// Partition orders processing: events of one partition (the client's
	// number) are applied one at a time, in arrival order.
	Partition string
	// Fields are every field the PBX sent, values decoded, nested JSON
	// objects flattened to dotted keys.
	Fields     map[string]string
	ReceivedAt time.Time
	State      string
	Note       string
	Attempts   int
	// RetryAt is when a failed attempt may be tried again; ReceivedAt
	// before any attempt.
	RetryAt     time.Time
	ProcessedAt time.Time
}

// RejectedEvent is a body the events endpoint answered 400, kept for
// inspection.
type RejectedEvent struct {
	ID          int64
	TenantID    string
	ReceivedAt  time.Time
	Reason      string
	ContentType string
	Body        []byte
}

// EventStats counts a tenant's events by state.
type EventStats struct {
	Waiting  int `json:"waiting"`
	Done     int `json:"done"`
	Failed   int `json:"failed"`
	Dropped  int `json:"dropped"`
	Rejected int `json:"rejected"`
	// OldestWaiting is when the oldest waiting event arrived.
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
}

// Add counts n events of a finished state (done, failed, dropped); other
// states are ignored.
func (s *EventStats) Add(state string, n int) {
	switch state {
	case EventDone:
		s.Done += n
	case EventFailed:
		s.Failed += n
	case EventDropped:
		s.Dropped += n
	}
}

// CRMWrite is one create in a CRM made for a call event, keyed by an
// idempotency key. EntityID is "" while the create is in flight or its
// answer was lost.
type CRMWrite struct {
	TenantID  string
	Key       string
	Kind      string
	EntityID  string
	CreatedAt time.Time
}
