// Package events turns the PBX's call events into CRM records: it parses
// the events endpoint's bodies, stores each event with its job in one
// transaction, and applies the scenario matrix of DESIGN.md one event at a
// time per client number, with every CRM create keyed for idempotency so a
// retry or a crash never makes a second lead, call or task.
package events

import (
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
)

// Field names the PBX uses, first non-empty wins. Ringostat lets admins
// name webhook parameters, so each meaning has the names seen in its
// call log export and in public receivers.
var (
	uniqueIDKeys    = []string{"uniqueid", "call_id", "uuid", "callid", "unique_id"}
	incomingClient  = []string{"caller", "caller_number", "callerid", "caller_id", "from", "src", "phone", "userfield", "additional_call_data.userfield"}
	outgoingClient  = []string{"dst", "to", "called", "destination", "callee", "phone", "client_number"}
	incomingLine    = []string{"dst", "did", "called_did", "to", "pool_name"}
	outgoingLine    = []string{"caller", "caller_number", "from", "src"}
	employeeKeys    = []string{"employee_number", "employee", "connected_with", "sip", "manager"}
	recordingKeys   = []string{"recording", "recording_wav", "record", "call_record_link"}
	answeredResults = map[string]bool{"ANSWERED": true, "PROPER": true}
)

// first returns the first non-empty value of keys.
func first(fields map[string]string, keys []string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(fields[k]); v != "" {
			return v
		}
	}
	return ""
}

// Call is a call event read for the scenario matrix.
type Call struct {
	Kind     domain.EventKind
	UniqueID string
	Outgoing bool
	// Answered is false for missed calls.
	Answered    bool
	Disposition string
	// Client is the client's number as sent; Line the other end.
	Client   string
	Line     string
	Employee string
	Start    time.Time
	Talk     time.Duration
	Wait     time.Duration
	// Recording is the recording's link.
	Recording string
	UTM       crm.UTM
}

// ReadCall reads the fields of a stored event. A calldate without a zone is
// read in loc (the tenant's time zone; nil is UTC); the event's receipt
// time stands in for a missing or unreadable calldate.
func ReadCall(ev domain.CallEvent, loc *time.Location) Call {
	f := ev.Fields
	c := Call{Kind: ev.Kind, UniqueID: ev.UniqueID, Employee: first(f, employeeKeys), Recording: first(f, recordingKeys)}
	c.Outgoing = outgoing(ev.Kind, f)
	c.Client = clientField(c.Outgoing, f)
	if c.Outgoing {
		c.Line = first(f, outgoingLine)
	} else {
		c.Line = first(f, incomingLine)
	}
	c.Disposition = strings.ToUpper(strings.TrimSpace(f["disposition"]))
	talk, hasTalk := seconds(f["billsec"])
	c.Talk = talk
	c.Wait, _ = seconds(f["waittime"])
	// Ringostat: answered is ANSWERED or PROPER; no talk time is missed
	// whatever the disposition says. With no disposition, talk time alone
	// decides.
	switch {
	case c.Disposition != "":
		c.Answered = answeredResults[c.Disposition] && (!hasTalk || talk > 0)
	default:
		c.Answered = talk > 0
	}
	c.Start = parseTime(f["calldate"], loc)
	if c.Start.IsZero() {
		c.Start = ev.ReceivedAt
	}
	c.UTM = crm.UTM{Source: f["utm_source"], Medium: f["utm_medium"], Campaign: f["utm_campaign"],
		Term: f["utm_term"], Content: f["utm_content"], ClientID: f["client_id"]}
	return c
}

// outgoing reports whether an event belongs to an outgoing call: by its
// kind, or by the PBX's call_type.
func outgoing(kind domain.EventKind, fields map[string]string) bool {
	if kind.Outgoing() {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(fields["call_type"])) {
	case "out", "outgoing", "outbound":
		return true
	}
	return false
}

// clientField returns the client's number as sent: the caller of an incoming
// call, the number dialled by an outgoing one.
func clientField(outgoing bool, fields map[string]string) string {
	if outgoing {
		return first(fields, outgoingClient)
	}
	return first(fields, incomingClient)
}

// seconds reads a count of seconds ("42", "42.5"); ok is false when the
// field is absent or unreadable.
func seconds(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 7*24*3600 {
		return 0, false
	}
	return time.Duration(v * float64(time.Second)), true
}

// calldate layouts seen in Ringostat's exports and webhook date formats:
// with a zone (the call log's example has an offset without a colon,
// "2019-06-02T09:30:47+0300", which RFC 3339 refuses), then without.
var (
	zonedLayouts = []string{time.RFC3339, "2006-01-02T15:04:05-0700", "2006-01-02 15:04:05-07:00", "2006-01-02 15:04:05-0700"}
	localLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "02.01.2006 15:04:05", "2006-01-02 15:04"}
)

// parseTime reads a calldate: one of zonedLayouts, one of localLayouts read
// in loc (nil is UTC), or Unix seconds; zero when unreadable. The result is
// in UTC.
func parseTime(s string, loc *time.Location) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if loc == nil {
		loc = time.UTC
	}
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t.UTC()
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 1e9 && n < 1e10 {
		return time.Unix(n, 0).UTC()
	}
	return time.Time{}
}

// ClientNumber returns the client's number normalized with the tenant's
// country (E.164 digits), or ok=false when it is missing or not a phone
// number (anonymous callers, SIP-only calls).
func (c Call) ClientNumber(country string) (string, bool) {
	return normalized(c.Client, country)
}

func normalized(raw, country string) (string, bool) {
	if raw == "" {
		return "", false
	}
	n, err := phone.Ingest(raw, country)
	return n, err == nil
}

// Partition returns the processing partition of an event: its client's
// normalized number, so all events of one client are applied in order and
// one at a time; an event without one gets a partition of its own call.
func Partition(kind domain.EventKind, uniqueID string, fields map[string]string, country string) string {
	if n, ok := normalized(clientField(outgoing(kind, fields), fields), country); ok {
		return n
	}
	return "call:" + uniqueID
}
