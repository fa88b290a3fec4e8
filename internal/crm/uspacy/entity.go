package uspacy

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// table is one Uspacy CRM table callrouter indexes.
type table struct {
	name string // path segment under /crm/v1/entities/ and webhook table_name
	kind domain.EntityKind
}

// tables lists the indexed tables in the order syncs page them (the default
// owner_order). A function rather than a package variable, so that nothing
// can change it.
func tables() [4]table {
	return [4]table{
		{"leads", domain.KindLead},
		{"deals", domain.KindDeal},
		{"contacts", domain.KindContact},
		{"companies", domain.KindCompany},
	}
}

// tableIndex returns the position of the table called name in tables, -1
// when there is none. Singular names are accepted too: webhook senders are
// not consistent about them.
func tableIndex(name string) int {
	name = strings.ToLower(strings.TrimSpace(name))
	for i, t := range tables() {
		if name == t.name || name == string(t.kind) {
			return i
		}
	}
	return -1
}

// tableOf returns the table that holds entities of kind k.
func tableOf(k domain.EntityKind) (table, bool) {
	for _, t := range tables() {
		if t.kind == k {
			return t, true
		}
	}
	return table{}, false
}

// flexString decodes any JSON scalar as text and null as "". Uspacy sends
// ids and owners as numbers or as strings depending on the endpoint and
// the account's age (the Go SDK has a FlexInt for this); an object yields
// its "id", in case a user is ever expanded in place. It never fails on
// valid JSON: one odd field must not stop a sync.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*f = ""
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(strings.TrimSpace(s))
	case '{':
		var o struct {
			ID flexString `json:"id"`
		}
		if json.Unmarshal(b, &o) == nil {
			*f = o.ID
		}
	case '[', 'n': // arrays carry no scalar; null is empty
	default: // a number or a boolean, kept as written
		*f = flexString(b)
	}
	return nil
}

// flexInt decodes a JSON number or numeric string; anything else is 0.
type flexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*f = 0
	if n, err := strconv.ParseFloat(string(s), 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) {
		*f = flexInt(n)
	}
	return nil
}

// flexTime decodes a timestamp as Unix seconds: a number or numeric string
// (milliseconds are recognised by their size) or an RFC 3339 or
// "2006-01-02 15:04:05" string. Unreadable or absent timestamps are 0.
type flexTime int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexTime) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*f = parseTime(string(s))
	return nil
}

func parseTime(s string) flexTime {
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n > 1e11 { // milliseconds: 1e11 s is the year 5138
			n /= 1000
		}
		if n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return 0
		}
		return flexTime(n)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return flexTime(t.Unix())
		}
	}
	return 0
}

// flexBool decodes true/false, 0/1 and their string forms.
type flexBool bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexBool) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	switch strings.ToLower(string(s)) {
	case "true", "1":
		*f = true
	default:
		*f = false
	}
	return nil
}

// valueList decodes Uspacy's multi-value fields (phone, email): an array of
// {"id","type","value","main","sort"} objects, tolerating plain strings or
// numbers in the array, a single value instead of an array, and null.
type valueList []string

// UnmarshalJSON implements json.Unmarshaler.
func (v *valueList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*v = nil
	if len(b) == 0 {
		return nil
	}
	if b[0] != '[' {
		b = append(append([]byte{'['}, b...), ']') // one value as a list of one
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	for _, it := range items {
		it = bytes.TrimSpace(it)
		var s flexString
		if len(it) > 0 && it[0] == '{' {
			var o struct {
				Value flexString `json:"value"`
			}
			if json.Unmarshal(it, &o) != nil {
				continue
			}
			s = o.Value
		} else if s.UnmarshalJSON(it) != nil {
			continue
		}
		if s != "" {
			*v = append(*v, string(s))
		}
	}
	return nil
}

// related decodes the contacts or companies a deal embeds, keeping their
// phones; ids or anything else in their place decode to nothing.
type related []valueList

// UnmarshalJSON implements json.Unmarshaler.
func (r *related) UnmarshalJSON(b []byte) error {
	*r = nil
	var items []json.RawMessage
	if json.Unmarshal(b, &items) != nil {
		return nil
	}
	for _, it := range items {
		var o struct {
			Phone valueList `json:"phone"`
		}
		if json.Unmarshal(it, &o) == nil && len(o.Phone) > 0 {
			*r = append(*r, o.Phone)
		}
	}
	return nil
}

// rawEntity is a CRM record as Uspacy sends it, reduced to what routing
// needs.
type rawEntity struct {
	ID        flexString `json:"id"`
	Title     flexString `json:"title"`
	FirstName flexString `json:"first_name"`
	LastName  flexString `json:"last_name"`
	Owner     flexString `json:"owner"`
	CreatedAt flexTime   `json:"created_at"`
	UpdatedAt flexTime   `json:"updated_at"`
	// DeletedAt is set on records in the trash (unconfirmed: Laravel's
	// soft-delete column, which the trash listing is likely built on).
	DeletedAt    flexTime   `json:"deleted_at"`
	KanbanStatus flexString `json:"kanban_status"`
	Converted    flexBool   `json:"converted"`
	Phone        valueList  `json:"phone"`
	Email        valueList  `json:"email"`
	Contacts     related    `json:"contacts"`
	Companies    related    `json:"companies"`
}

// updated is the record's last change in Unix seconds, its creation when it
// was never changed, 0 when unknown.
func (r *rawEntity) updated() int64 {
	if r.UpdatedAt != 0 {
		return int64(r.UpdatedAt)
	}
	return int64(r.CreatedAt)
}

// entity converts r, a record of kind k; ok is false for a record without
// an id, which cannot be indexed or read again.
func (r *rawEntity) entity(k domain.EntityKind) (e crm.Entity, ok bool) {
	if r.ID == "" {
		return crm.Entity{}, false
	}
	e = crm.Entity{Kind: k, ID: string(r.ID), Name: string(r.Title), Open: r.open(k)}
	if e.Name == "" {
		e.Name = strings.TrimSpace(string(r.FirstName) + " " + string(r.LastName))
	}
	if owner := string(r.Owner); owner != "0" {
		e.OwnerID = owner
	}
	if u := r.updated(); u != 0 {
		e.UpdatedAt = time.Unix(u, 0).UTC()
	}
	e.Phones = dedupe(r.Phone)
	if k == domain.KindDeal {
		// Uspacy deals have no phone field: a deal's phones are those of the
		// contacts and companies it embeds, which is what makes a caller's
		// number find their open deal.
		for _, group := range [][]valueList{r.Contacts, r.Companies} {
			for _, phones := range group {
				e.Phones = dedupe(append(e.Phones, phones...))
			}
		}
	}
	return e, true
}

// open reports whether a record of kind k is still being worked on. Leads
// and deals are closed in a final kanban status: the SDKs know exactly two,
// SUCCESS and FAIL (the keys of a funnel's reasons); a converted lead has
// become a deal or contact and is closed as well. A missing or any other
// status (the working stages) is open.
func (r *rawEntity) open(k domain.EntityKind) bool {
	if k != domain.KindLead && k != domain.KindDeal {
		return true
	}
	switch strings.ToUpper(string(r.KanbanStatus)) {
	case "SUCCESS", "FAIL":
		return false
	}
	return !(k == domain.KindLead && bool(r.Converted))
}

// dedupe drops empty and repeated phones, keeping the first of each.
func dedupe(phones []string) []string {
	out := phones[:0:0]
	for _, p := range phones {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		dup := false
		for _, q := range out {
			if q == p {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// decodeEntity decodes one record as GET /crm/v1/entities/{table}/{id}
// answers it: bare, or wrapped in {"data":{…}} the way list items are.
func decodeEntity(body []byte) (rawEntity, error) {
	var wrapped struct {
		ID   json.RawMessage `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &wrapped); err != nil {
		return rawEntity{}, err
	}
	if wrapped.ID == nil && len(bytes.TrimSpace(wrapped.Data)) > 0 && bytes.TrimSpace(wrapped.Data)[0] == '{' {
		body = wrapped.Data
	}
	var r rawEntity
	err := json.Unmarshal(body, &r)
	return r, err
}

// digits returns the decimal digits of s.
func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isID reports whether s is a Uspacy record id: decimal digits only, which
// also keeps it safe to put in a path.
func isID(s string) bool {
	return s != "" && len(s) <= 20 && digits(s) == s
}
