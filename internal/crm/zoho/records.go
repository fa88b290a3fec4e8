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
	name   string // API name, as in the URL path
	kind   domain.EntityKind
	fields string // the fields= parameter: Zoho requires one on lists
	// search is false for modules Zoho cannot search by phone in practice.
	search bool
	// allLeads asks for converted leads too (with their $converted flag):
	// Zoho hides them by default, and a lead converted after the full sync
	// must come back closed instead of staying open in the index for ever.
	allLeads bool
}

// modules are synced in this order, the default owner order.
var modules = [...]module{
	{name: "Leads", kind: domain.KindLead, search: true, allLeads: true,
		fields: "Full_Name,First_Name,Last_Name,Company,Phone,Mobile,Owner,Lead_Status,$converted,Modified_Time"},
	// Zoho's standard Deals layout has no phone field; accounts that route
	// by deal add Phone/Mobile ones, and Zoho's phone search does not reach
	// deals reliably, so they are synced but not searched.
	{name: "Deals", kind: domain.KindDeal,
		fields: "Deal_Name,Stage,Phone,Mobile,Owner,Modified_Time"},
	{name: "Contacts", kind: domain.KindContact, search: true,
		fields: "Full_Name,First_Name,Last_Name,Phone,Mobile,Home_Phone,Other_Phone,Owner,Modified_Time"},
	{name: "Accounts", kind: domain.KindCompany, search: true,
		fields: "Account_Name,Phone,Mobile,Owner,Modified_Time"},
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

// query returns the parameters every read of m's records carries.
func (m module) query() url.Values {
	q := url.Values{"fields": {m.fields}}
	if m.allLeads {
		q.Set("converted", "both")
	}
	return q
}

// closedLeadStatuses are the standard Lead_Status values of a lead nobody
// works on any more.
var closedLeadStatuses = [...]string{"Junk Lead", "Lost Lead", "Not Qualified"}

// record is a Zoho record with the fields any module's list asks for.
type record struct {
	ID           zid        `json:"id"`
	Owner        *lookup    `json:"Owner"`
	FullName     string     `json:"Full_Name"`
	FirstName    string     `json:"First_Name"`
	LastName     string     `json:"Last_Name"`
	Company      string     `json:"Company"`
	DealName     string     `json:"Deal_Name"`
	AccountName  lookupName `json:"Account_Name"`
	Phone        string     `json:"Phone"`
	Mobile       string     `json:"Mobile"`
	HomePhone    string     `json:"Home_Phone"`
	OtherPhone   string     `json:"Other_Phone"`
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
// is text in Accounts and a lookup to one in Contacts and Deals).
type lookupName string

// UnmarshalJSON accepts a string, a lookup object or null.
func (n *lookupName) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var l lookup
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*n = lookupName(l.Name)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*n = lookupName(*s)
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

// entities decodes the records of a list answer of module m. A record that
// does not decode is skipped rather than failing the whole page: one odd
// custom value must not stop the index from filling. It also returns the
// latest Modified_Time seen.
func (m module) entities(data []json.RawMessage) ([]crm.Entity, time.Time) {
	out := make([]crm.Entity, 0, len(data))
	var latest time.Time
	for _, raw := range data {
		var r record
		if err := json.Unmarshal(raw, &r); err != nil || r.ID == "" {
			continue
		}
		e := m.entity(r)
		if e.UpdatedAt.After(latest) {
			latest = e.UpdatedAt
		}
		out = append(out, e)
	}
	return out, latest
}

// entity maps a record of module m.
func (m module) entity(r record) crm.Entity {
	e := crm.Entity{Kind: m.kind, ID: string(r.ID), Open: true}
	if r.Owner != nil {
		e.OwnerID = string(r.Owner.ID)
	}
	if t, err := time.Parse(time.RFC3339, r.ModifiedTime); err == nil {
		e.UpdatedAt = t
	}
	for _, p := range [...]string{r.Phone, r.Mobile, r.HomePhone, r.OtherPhone} {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(e.Phones, p) {
			e.Phones = append(e.Phones, p)
		}
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
		e.Name = string(r.AccountName)
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
