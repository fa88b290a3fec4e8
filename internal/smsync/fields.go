package smsync

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/salesmanago"
)

// Field names of a person as the sync compares them.
const (
	fName     = "name"
	fEmail    = "email"
	fPhone    = "phone"
	fFax      = "fax"
	fCompany  = "company"
	fState    = "state" // state or province
	fStreet   = "street"
	fCity     = "city"
	fZip      = "zip"
	fCountry  = "country"
	fBirthday = "birthday" // yyyy-mm-dd, or --mm-dd without a year
	fOptOut   = "optout"   // "true" or "false"
	fCustomer = "customer" // "true": SALESmanago CUSTOMER / Zoho contact
	fOwner    = "owner"    // the owning user's e-mail, lower-case
)

// fieldNames lists every synced field in a fixed order.
var fieldNames = []string{fName, fEmail, fPhone, fFax, fCompany, fState, fStreet, fCity, fZip, fCountry, fBirthday,
	fOptOut, fCustomer, fOwner}

// values are a person's synced fields on one side.
type values map[string]string

func (v values) encode() string {
	b, _ := json.Marshal(map[string]string(v)) // a map of strings always encodes
	return string(b)
}

func decodeValues(s string) values {
	if s == "" {
		return nil
	}
	var v values
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil
	}
	return v
}

func (v values) equal(o values) bool {
	for _, k := range fieldNames {
		if v[k] != o[k] {
			return false
		}
	}
	return true
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// smBirthday turns SALESmanago's yyyyMMdd or MMdd into the sync's form.
func smBirthday(b string) string {
	switch len(b) {
	case 8:
		return b[:4] + "-" + b[4:6] + "-" + b[6:]
	case 4:
		return "--" + b[:2] + "-" + b[2:]
	}
	return ""
}

// toSMBirthday is the inverse of smBirthday.
func toSMBirthday(b string) string {
	if strings.HasPrefix(b, "--") && len(b) == 7 {
		return b[2:4] + b[5:]
	}
	if len(b) == 10 {
		return b[:4] + b[5:7] + b[8:]
	}
	return ""
}

func fromSM(c salesmanago.Contact) values {
	return values{fName: strings.TrimSpace(c.Name), fEmail: strings.ToLower(strings.TrimSpace(c.Email)), fPhone: c.Phone,
		fFax: c.Fax, fCompany: c.Company, fState: c.Province, fStreet: c.Address.Street, fCity: c.Address.City,
		fZip: c.Address.ZipCode, fCountry: c.Address.Country, fBirthday: smBirthday(c.Birthday),
		fOptOut: boolStr(c.OptedOut), fCustomer: boolStr(c.State == salesmanago.StateCustomer),
		fOwner: strings.ToLower(c.Owner)}
}

func fromZoho(p zoho.Person) values {
	return values{fName: strings.TrimSpace(strings.TrimSpace(p.FirstName) + " " + strings.TrimSpace(p.LastName)),
		fEmail: strings.ToLower(strings.TrimSpace(p.Email)), fPhone: p.Phone, fFax: p.Fax, fCompany: p.Company,
		fState: p.State, fStreet: p.Street, fCity: p.City, fZip: p.Zip, fCountry: p.Country, fBirthday: p.Birthday,
		fOptOut: boolStr(p.OptOut), fCustomer: boolStr(p.Module == zoho.ModuleContacts), fOwner: strings.ToLower(p.OwnerMail)}
}

// splitName splits a full name into Zoho's First_Name and Last_Name (which
// Zoho requires): the last word is the last name.
func splitName(name, email string) (first, last string) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", email // Last_Name is mandatory
	}
	if i := strings.LastIndexByte(name, ' '); i > 0 {
		return strings.TrimSpace(name[:i]), name[i+1:]
	}
	return "", name
}

// side is one side's view of a person in a pass.
type side struct {
	now      values    // what the side holds (its fingerprint when it did not change)
	seen     values    // its fingerprint from the last pass; nil before the first
	modified time.Time // when it changed; zero when it was not read this pass
	present  bool      // the person exists on this side
}

func (s side) changed(k string) bool {
	if !s.present {
		return false
	}
	return s.seen == nil || s.now[k] != s.seen[k]
}

// keep is merge's verdict for a field each side keeps as it is.
const keep = "\x00keep"

// merge decides every field: a field one side changed since the last pass
// takes that side's value; a field both changed to different values takes
// the later change's value and counts a conflict. Between two records met
// for the first time an empty value gives way, and otherwise the later
// change wins (not counted as a conflict: there was no earlier agreement).
func merge(sm, zh side) (values, int) {
	out := values{}
	conflicts := 0
	smLater := !sm.modified.Before(zh.modified)
	for _, k := range fieldNames {
		a, b := sm.now[k], zh.now[k]
		switch {
		case !zh.present:
			out[k] = a
		case !sm.present:
			out[k] = b
		case a == b:
			out[k] = a
		case sm.seen == nil || zh.seen == nil:
			switch {
			case k == fOptOut:
				// An opt-out on either side is kept: sending to a person
				// who opted out is the costlier mistake.
				out[k] = "true"
			case b == "":
				out[k] = a
			case a == "":
				out[k] = b
			case smLater:
				out[k] = a
			default:
				out[k] = b
			}
		case sm.changed(k) && zh.changed(k):
			conflicts++
			if smLater {
				out[k] = a
			} else {
				out[k] = b
			}
		case sm.changed(k):
			out[k] = a
		case zh.changed(k):
			out[k] = b
		default:
			// Neither changed, yet they differ: a value one side cannot
			// hold (a lead's birthday, a cleared field SALESmanago keeps).
			// Each keeps its own.
			out[k] = keep
		}
	}
	return out, conflicts
}
