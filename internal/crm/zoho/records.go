package zoho

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// module is one Zoho module that owns phones.
type module struct {
	name string // API name, as in the URL path
	kind domain.EntityKind
	// fields are the fields of Zoho's standard layout a read asks for
	// (Zoho requires fields= on lists). A connected account's own layout
	// (see view) drops those it lacks and adds its custom phone fields.
	fields []string
	// search is false for modules Zoho cannot search by phone in the
	// standard layout (Deals have no phone field); such a module is
	// searched only where the account added phone fields to it.
	search bool
	// allLeads asks for converted leads too (with their $converted flag):
	// Zoho hides them by default, and a lead converted after the full sync
	// must come back closed instead of staying open in the index for ever.
	allLeads bool
}

// standardPhones are the phone fields of Zoho's standard layouts.
var standardPhones = [...]string{"Phone", "Mobile", "Home_Phone", "Other_Phone"}

// modules are synced in this order, the default owner order.
var modules = [...]module{
	{name: "Leads", kind: domain.KindLead, search: true, allLeads: true,
		fields: []string{"Full_Name", "First_Name", "Last_Name", "Company", "Phone", "Mobile", "Owner", "Lead_Status", "$converted", "Modified_Time"}},
	// A deal of the standard layout has no phone: it reaches its customer
	// through the Contact_Name and Account_Name lookups, and is indexed
	// under their phones (deals.go).
	{name: "Deals", kind: domain.KindDeal,
		fields: []string{"Deal_Name", "Stage", "Contact_Name", "Account_Name", "Owner", "Modified_Time"}},
	{name: "Contacts", kind: domain.KindContact, search: true,
		fields: []string{"Full_Name", "First_Name", "Last_Name", "Phone", "Mobile", "Home_Phone", "Other_Phone", "Owner", "Modified_Time"}},
	// The standard Accounts layout has one phone field, Phone.
	{name: "Accounts", kind: domain.KindCompany, search: true,
		fields: []string{"Account_Name", "Phone", "Owner", "Modified_Time"}},
}

// moduleNamed returns the module with API name name (any case).
func moduleNamed(name string) (module, bool) {
	for _, m := range modules {
		if strings.EqualFold(m.name, name) {
			return m, true
		}
	}
	return module{}, false
}

// moduleOf returns the module holding entities of kind k.
func moduleOf(k domain.EntityKind) (module, bool) {
	for _, m := range modules {
		if m.kind == k {
			return m, true
		}
	}
	return module{}, false
}

// view is a module as one connected account has it: the fields its
// layout has of those wanted, and its phone fields, custom ones included.
type view struct {
	module
	fields []string
	phones []string
}

// query returns the parameters every read of v's records carries.
func (v view) query() url.Values {
	q := url.Values{"fields": {strings.Join(v.fields, ",")}}
	if v.allLeads {
		q.Set("converted", "both")
	}
	return q
}

// searchable reports whether a phone search of the module can find
// anything: it has phone fields in this account.
func (v view) searchable() bool { return v.search || len(v.phones) > 0 }

// closedLeadStatuses are the standard Lead_Status values of a lead nobody
// works on any more.
var closedLeadStatuses = [...]string{"Junk Lead", "Lost Lead", "Not Qualified"}

// record is a Zoho record with the fields any module's list asks for;
// custom phone fields are read apart (phonesOf).
type record struct {
	ID           zid        `json:"id"`
	Phone        string     `json:"Phone"`
	Mobile       string     `json:"Mobile"`
	HomePhone    string     `json:"Home_Phone"`
	OtherPhone   string     `json:"Other_Phone"`
	Owner        *lookup    `json:"Owner"`
	FullName     string     `json:"Full_Name"`
	FirstName    string     `json:"First_Name"`
	LastName     string     `json:"Last_Name"`
	Company      string     `json:"Company"`
	DealName     string     `json:"Deal_Name"`
	AccountName  lookupName `json:"Account_Name"`
	ContactName  lookupName `json:"Contact_Name"`
	LeadStatus   string     `json:"Lead_Status"`
	Stage        string     `json:"Stage"`
	Converted    bool       `json:"$converted"`
	ModifiedTime string     `json:"Modified_Time"`
}

// lookup is a reference to another record or user: {"name","id","email"}.
type lookup struct {
	ID   zid    `json:"id"`
	Name string `json:"name"`
}

// lookupName is a text field that is a lookup in some modules (Account_Name
// is text in Accounts and a lookup to one in Contacts and Deals): the
// name, and the id when it is a lookup.
type lookupName struct {
	Name string
	ID   zid
}

// UnmarshalJSON accepts a string, a lookup object or null.
func (n *lookupName) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var l lookup
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*n = lookupName{Name: l.Name, ID: l.ID}
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*n = lookupName{Name: *s}
	}
	return nil
}

// zid is a Zoho record id. Zoho sends ids as long numeric strings, but the
// schema allows int64 numbers, which must not pass through float64.
type zid string

// UnmarshalJSON accepts a string, a number or null.
func (z *zid) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*z = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*z = zid(s)
	default:
		if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
			return fmt.Errorf("zoho: id %s is not a string or an integer", b)
		}
		*z = zid(b)
	}
	return nil
}

// listAnswer is the answer of a list, search or ids read.
type listAnswer struct {
	Data []json.RawMessage `json:"data"`
	Info pageInfo          `json:"info"`
}

// pageInfo is the "info" object of Zoho's list answers.
type pageInfo struct {
	PerPage       int     `json:"per_page"`
	Count         int     `json:"count"`
	Page          int     `json:"page"`
	MoreRecords   bool    `json:"more_records"`
	NextPageToken *string `json:"next_page_token"`
}

// item is a decoded record: its entity and, for a deal, the contact and
// account it reaches its customer through.
type item struct {
	ent              crm.Entity
	contact, account string
}

// items decodes the records of a list answer of v. A record that does not
// decode is skipped rather than failing the whole page: one odd custom
// value must not stop the index from filling. It also returns the latest
// Modified_Time seen. Deals still lack their customer's phones (see
// source.finish).
func (v view) items(data []json.RawMessage) ([]item, time.Time) {
	out := make([]item, 0, len(data))
	var latest time.Time
	for _, raw := range data {
		var r record
		if err := json.Unmarshal(raw, &r); err != nil || r.ID == "" {
			continue
		}
		it := item{ent: v.entity(r, phonesOf(r, raw, v.phones))}
		if v.kind == domain.KindDeal {
			it.contact, it.account = string(r.ContactName.ID), string(r.AccountName.ID)
		}
		if it.ent.UpdatedAt.After(latest) {
			latest = it.ent.UpdatedAt
		}
		out = append(out, it)
	}
	return out, latest
}

// phonesOf reads the phone fields of a record, distinct and in field
// order: the standard ones from r, custom ones from raw, which is decoded
// again only when there are some.
func phonesOf(r record, raw json.RawMessage, fields []string) []string {
	var out []string
	var vals map[string]json.RawMessage
	for _, f := range fields {
		var p string
		switch f {
		case "Phone":
			p = r.Phone
		case "Mobile":
			p = r.Mobile
		case "Home_Phone":
			p = r.HomePhone
		case "Other_Phone":
			p = r.OtherPhone
		default:
			if vals == nil && json.Unmarshal(raw, &vals) != nil {
				continue
			}
			if json.Unmarshal(vals[f], &p) != nil {
				continue
			}
		}
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// entity maps a record of module m with its phones.
func (m module) entity(r record, phones []string) crm.Entity {
	e := crm.Entity{Kind: m.kind, ID: string(r.ID), Open: true, Phones: phones}
	if r.Owner != nil {
		e.OwnerID = string(r.Owner.ID)
	}
	if t, err := time.Parse(time.RFC3339, r.ModifiedTime); err == nil {
		e.UpdatedAt = t
	}
	switch m.kind {
	case domain.KindLead:
		e.Name = personName(r)
		if e.Name == "" {
			e.Name = r.Company
		}
		e.Open = !r.Converted
		for _, s := range closedLeadStatuses {
			if strings.EqualFold(r.LeadStatus, s) {
				e.Open = false
			}
		}
	case domain.KindDeal:
		e.Name = r.DealName
		// "Closed Won", "Closed Lost", "Closed-Lost to Competition" and
		// custom closing stages by the same convention.
		e.Open = !hasPrefixFold(r.Stage, "closed")
	case domain.KindContact:
		e.Name = personName(r)
	case domain.KindCompany:
		e.Name = r.AccountName.Name
	}
	return e
}

func personName(r record) string {
	if n := strings.TrimSpace(r.FullName); n != "" {
		return n
	}
	return strings.TrimSpace(r.FirstName + " " + r.LastName)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
