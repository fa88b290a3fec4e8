package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// People is the part of a Zoho source the SALESmanago contact sync uses
// (package smsync): leads and contacts with their personal fields, listed
// by Modified_Time, upserted by e-mail, and leads converted into contacts.
// A crm.Source of this package implements it.
//
// Requests: GET /crm/v8/{Leads|Contacts}?fields=…&sort_by=Modified_Time
// &sort_order=asc&per_page=200 with If-Modified-Since (page numbers up to
// 2000 records, then page tokens); POST /crm/v8/{module}/upsert with
// duplicate_check_fields ["Email"] (Accounts: ["Account_Name"]), at most
// 100 records and "trigger":[]; POST /crm/v8/Leads/{id}/actions/convert
// (5 credits). Fields (reference/crm-apis.md §2 and Zoho's standard
// layouts): Leads First_Name, Last_Name, Email, Phone, Fax, Company,
// Street, City, State, Zip_Code, Country, Email_Opt_Out; Contacts the same
// with Account_Name (a lookup to Accounts) for the company, Mailing_Street,
// Mailing_City, Mailing_State, Mailing_Zip, Mailing_Country and
// Date_of_Birth; a field the account's layout lacks is neither read nor
// written. Unconfirmed: the convert answer's shape (v8's
// {"data":[{"code":"SUCCESS","details":{"Contacts":{"id"}}}]} and v2's
// {"data":[{"Contacts":"id"}]} are both read).
type People interface {
	// ListPeople returns a page of module's records modified after since
	// (all when zero), oldest change first, and the cursor of the next page
	// ("" at the end); page "" starts. EINVALID for another module.
	ListPeople(ctx context.Context, module string, since time.Time, page string) ([]Person, string, error)
	// UpsertPeople inserts or updates up to 100 records of module by
	// e-mail and returns their ids in order. A record Zoho refuses makes
	// the whole call an error naming it (the others were written).
	UpsertPeople(ctx context.Context, module string, people []Person) ([]string, error)
	// UpsertAccounts finds or creates accounts by name (up to 100) and
	// returns their ids by name.
	UpsertAccounts(ctx context.Context, names []string) (map[string]string, error)
	// ConvertLead converts a lead into a contact and returns the contact's
	// id.
	ConvertLead(ctx context.Context, leadID string) (string, error)
	// Users lists the account's active users.
	Users(ctx context.Context) ([]crm.User, error)
}

// Modules of People.
const (
	ModuleLeads    = "Leads"
	ModuleContacts = "Contacts"
)

// Person is a Zoho lead or contact as the contact sync sees it.
type Person struct {
	Module    string // Leads or Contacts
	ID        string
	FirstName string
	LastName  string
	Email     string
	Phone     string
	Fax       string
	// Company is a lead's Company, a contact's account name; AccountID the
	// contact's account (written when set).
	Company   string
	AccountID string
	Street    string
	City      string
	State     string
	Zip       string
	Country   string
	Birthday  string // yyyy-mm-dd; contacts only
	OptOut    bool
	OwnerID   string
	OwnerMail string
	Modified  time.Time
}

var _ People = (*source)(nil)

// personFields maps Person's fields to each module's API names.
var personFields = map[string][]string{
	ModuleLeads: {"First_Name", "Last_Name", "Email", "Phone", "Fax", "Company", "Street", "City", "State", "Zip_Code",
		"Country", "Email_Opt_Out", "Owner", "Modified_Time"},
	ModuleContacts: {"First_Name", "Last_Name", "Email", "Phone", "Fax", "Account_Name", "Mailing_Street", "Mailing_City",
		"Mailing_State", "Mailing_Zip", "Mailing_Country", "Date_of_Birth", "Email_Opt_Out", "Owner", "Modified_Time"},
}

// peopleFields returns the fields of module the account's layout has.
func (s *source) peopleFields(ctx context.Context, module string) ([]string, error) {
	all, ok := personFields[module]
	if !ok {
		return nil, domain.Errorf(domain.EINVALID, "module: %q is not Leads or Contacts", module)
	}
	l, err := s.layoutOf(ctx, module)
	if err != nil {
		return nil, err
	}
	if l.guessed {
		return all, nil // the standard layout is assumed
	}
	out := make([]string, 0, len(all))
	for _, f := range all {
		if l.has(f) {
			out = append(out, f)
		}
	}
	return out, nil
}

type personRecord struct {
	ID        zid        `json:"id"`
	FirstName string     `json:"First_Name"`
	LastName  string     `json:"Last_Name"`
	Email     string     `json:"Email"`
	Phone     string     `json:"Phone"`
	Fax       string     `json:"Fax"`
	Company   string     `json:"Company"`
	Account   lookupName `json:"Account_Name"`
	Street    string     `json:"Street"`
	City      string     `json:"City"`
	State     string     `json:"State"`
	Zip       string     `json:"Zip_Code"`
	Country   string     `json:"Country"`
	MStreet   string     `json:"Mailing_Street"`
	MCity     string     `json:"Mailing_City"`
	MState    string     `json:"Mailing_State"`
	MZip      string     `json:"Mailing_Zip"`
	MCountry  string     `json:"Mailing_Country"`
	Birth     string     `json:"Date_of_Birth"`
	OptOut    bool       `json:"Email_Opt_Out"`
	Owner     *struct {
		ID    zid    `json:"id"`
		Email string `json:"email"`
	} `json:"Owner"`
	Modified string `json:"Modified_Time"`
}

func (r personRecord) person(module string) Person {
	p := Person{Module: module, ID: string(r.ID), FirstName: r.FirstName, LastName: r.LastName, Email: r.Email,
		Phone: r.Phone, Fax: r.Fax, OptOut: r.OptOut}
	if module == ModuleLeads {
		p.Company, p.Street, p.City, p.State, p.Zip, p.Country = r.Company, r.Street, r.City, r.State, r.Zip, r.Country
	} else {
		p.Company, p.AccountID = r.Account.Name, string(r.Account.ID)
		p.Street, p.City, p.State, p.Zip, p.Country = r.MStreet, r.MCity, r.MState, r.MZip, r.MCountry
		p.Birthday = r.Birth
	}
	if r.Owner != nil {
		p.OwnerID, p.OwnerMail = string(r.Owner.ID), r.Owner.Email
	}
	if t, err := time.Parse(time.RFC3339, r.Modified); err == nil {
		p.Modified = t.UTC()
	}
	return p
}

// ListPeople implements People. Errors: EINVALID for a bad module or page
// cursor, *crm.AuthError, other CRM and transport errors wrapped.
func (s *source) ListPeople(ctx context.Context, module string, since time.Time, page string) ([]Person, string, error) {
	fields, err := s.peopleFields(ctx, module)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{"fields": {strings.Join(fields, ",")}, "per_page": {strconv.Itoa(perPage)},
		"sort_by": {"Modified_Time"}, "sort_order": {"asc"}}
	num := 1
	switch {
	case page == "":
	case strings.HasPrefix(page, "p:"):
		if num, err = strconv.Atoi(page[2:]); err != nil || num < 1 {
			return nil, "", domain.Errorf(domain.EINVALID, "page: %q is not a page cursor", page)
		}
	case strings.HasPrefix(page, "t:"):
		num = 0
		q.Set("page_token", page[2:])
	default:
		return nil, "", domain.Errorf(domain.EINVALID, "page: %q is not a page cursor", page)
	}
	if num > 0 {
		q.Set("page", strconv.Itoa(num))
	}
	req := crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + module, Query: q}
	if !since.IsZero() {
		req.Header = http.Header{"If-Modified-Since": {since.UTC().Format(ifModifiedSinceLayout)}}
	}
	resp, err := s.http.Do(ctx, req)
	if err != nil {
		return nil, "", fmt.Errorf("zoho: list %s: %w", module, err)
	}
	if resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified {
		return nil, "", nil
	}
	var ans struct {
		Data []personRecord `json:"data"`
		Info pageInfo       `json:"info"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("zoho: list %s: bad answer: %w", module, err)
	}
	out := make([]Person, 0, len(ans.Data))
	for _, r := range ans.Data {
		out = append(out, r.person(module))
	}
	if !ans.Info.MoreRecords {
		return out, "", nil
	}
	switch {
	case num > 0 && num < discretePages:
		return out, "p:" + strconv.Itoa(num+1), nil
	case ans.Info.NextPageToken != nil && *ans.Info.NextPageToken != "":
		return out, "t:" + *ans.Info.NextPageToken, nil
	}
	return nil, "", fmt.Errorf("zoho: list %s: more records but no next_page_token", module)
}

// record returns the API record of p for module, with the fields the
// layout has.
func (p Person) record(module string, has func(string) bool) map[string]any {
	rec := map[string]any{}
	set := func(k string, v any) {
		if has(k) {
			rec[k] = v
		}
	}
	set("First_Name", p.FirstName)
	set("Last_Name", p.LastName)
	set("Email", p.Email)
	set("Phone", p.Phone)
	set("Fax", p.Fax)
	set("Email_Opt_Out", p.OptOut)
	if p.OwnerID != "" {
		set("Owner", map[string]any{"id": p.OwnerID})
	}
	if module == ModuleLeads {
		set("Company", p.Company)
		set("Street", p.Street)
		set("City", p.City)
		set("State", p.State)
		set("Zip_Code", p.Zip)
		set("Country", p.Country)
		return rec
	}
	if p.AccountID != "" {
		set("Account_Name", map[string]any{"id": p.AccountID})
	}
	set("Mailing_Street", p.Street)
	set("Mailing_City", p.City)
	set("Mailing_State", p.State)
	set("Mailing_Zip", p.Zip)
	set("Mailing_Country", p.Country)
	if p.Birthday != "" {
		set("Date_of_Birth", p.Birthday)
	} else {
		set("Date_of_Birth", nil)
	}
	return rec
}

// upsert posts records to module's upsert and returns their ids in order.
func (s *source) upsert(ctx context.Context, module string, recs []map[string]any, dup string) ([]string, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if len(recs) > idsPerRead {
		return nil, domain.Errorf(domain.EINVALID, "data: at most %d records an upsert, got %d", idsPerRead, len(recs))
	}
	path := apiPrefix + "/" + module + "/upsert"
	body, err := json.Marshal(map[string]any{"data": recs, "duplicate_check_fields": []string{dup}, "trigger": []string{}})
	if err != nil {
		return nil, fmt.Errorf("zoho: upsert %s: %w", module, err)
	}
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodPost, Path: path, Body: body, ContentType: "application/json"})
	if err != nil {
		return nil, fmt.Errorf("zoho: upsert %s: %w", module, err)
	}
	var ans struct {
		Data []struct {
			zohoError
			Status  string          `json:"status"`
			Details json.RawMessage `json:"details"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil || len(ans.Data) != len(recs) {
		return nil, fmt.Errorf("zoho: upsert %s: bad answer (HTTP %d): %s", module, resp.Status, crm.Snippet(resp.Body))
	}
	ids := make([]string, len(recs))
	var refused []string
	for i, r := range ans.Data {
		if r.Code != "SUCCESS" {
			refused = append(refused, fmt.Sprintf("record %d: %s %s", i, r.text(), crm.Snippet(r.Details)))
			continue
		}
		var d struct {
			ID zid `json:"id"`
		}
		if json.Unmarshal(r.Details, &d) != nil || d.ID == "" {
			return nil, fmt.Errorf("zoho: upsert %s: no id for record %d: %s", module, i, crm.Snippet(resp.Body))
		}
		ids[i] = string(d.ID)
	}
	if len(refused) > 0 {
		return ids, &crm.StatusError{CRM: "zoho", Method: http.MethodPost, Path: path, Status: http.StatusBadRequest,
			Message: strings.Join(refused, "; ")}
	}
	return ids, nil
}

// UpsertPeople implements People. Errors: EINVALID for a bad module or
// more than 100 records, *crm.StatusError (400) naming refused records,
// *crm.AuthError, other CRM and transport errors wrapped.
func (s *source) UpsertPeople(ctx context.Context, module string, people []Person) ([]string, error) {
	fields, err := s.peopleFields(ctx, module)
	if err != nil {
		return nil, err
	}
	has := func(f string) bool {
		for _, x := range fields {
			if x == f {
				return true
			}
		}
		return false
	}
	recs := make([]map[string]any, 0, len(people))
	for _, p := range people {
		recs = append(recs, p.record(module, has))
	}
	return s.upsert(ctx, module, recs, "Email")
}

// UpsertAccounts implements People. Errors as UpsertPeople's.
func (s *source) UpsertAccounts(ctx context.Context, names []string) (map[string]string, error) {
	recs := make([]map[string]any, 0, len(names))
	for _, n := range names {
		recs = append(recs, map[string]any{"Account_Name": n})
	}
	ids, err := s.upsert(ctx, "Accounts", recs, "Account_Name")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = ids[i]
	}
	return out, nil
}

// ConvertLead implements People. Errors: *crm.StatusError for Zoho's
// refusal (a lead already converted, say), *crm.AuthError, transport
// errors wrapped.
func (s *source) ConvertLead(ctx context.Context, leadID string) (string, error) {
	path := apiPrefix + "/Leads/" + url.PathEscape(leadID) + "/actions/convert"
	body := []byte(`{"data":[{"overwrite":true,"notify_lead_owner":false,"notify_new_entity_owner":false}]}`)
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodPost, Path: path, Body: body, ContentType: "application/json"})
	if err != nil {
		return "", fmt.Errorf("zoho: convert lead %s: %w", leadID, err)
	}
	var ans struct {
		Data []struct {
			zohoError
			Details  json.RawMessage `json:"details"`
			Contacts json.RawMessage `json:"Contacts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil || len(ans.Data) == 0 {
		return "", fmt.Errorf("zoho: convert lead %s: bad answer (HTTP %d): %s", leadID, resp.Status, crm.Snippet(resp.Body))
	}
	d := ans.Data[0]
	if d.Code != "" && d.Code != "SUCCESS" {
		return "", &crm.StatusError{CRM: "zoho", Method: http.MethodPost, Path: path, Status: http.StatusBadRequest, Message: d.text()}
	}
	contact := d.Contacts
	if len(contact) == 0 {
		var det struct {
			Contacts json.RawMessage `json:"Contacts"`
		}
		_ = json.Unmarshal(d.Details, &det)
		contact = det.Contacts
	}
	var id zid
	if json.Unmarshal(contact, &id) != nil || id == "" {
		var l lookup
		if json.Unmarshal(contact, &l) != nil || l.ID == "" {
			return "", fmt.Errorf("zoho: convert lead %s: no contact in the answer: %s", leadID, crm.Snippet(resp.Body))
		}
		id = l.ID
	}
	return string(id), nil
}
