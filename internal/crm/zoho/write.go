package zoho

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crm.Writer = (*source)(nil)

// UTM custom fields: Zoho accounts that take call-tracking attribution add
// these to Leads and Deals (the naming the tenants' Zoho layouts use).
const (
	fieldUTMSource   = "rs_utm_source"
	fieldUTMMedium   = "rs_utm_medium"
	fieldUTMCampaign = "rs_utm_campaign"
	fieldUTMTerm     = "rs_utm_term"
	fieldUTMContent  = "rs_utm_content"
	fieldClientID    = "rs_google_client_id"
)

// utmFields lists the UTM fields, for reads.
var utmFields = [...]string{fieldUTMSource, fieldUTMMedium, fieldUTMCampaign, fieldUTMTerm, fieldUTMContent, fieldClientID}

// subjectMax is the length of Zoho's Subject fields (Calls, Tasks).
const subjectMax = 255

// startTimeLayout is how Zoho takes date-times: always with a numeric
// offset, never "Z".
const startTimeLayout = "2006-01-02T15:04:05-07:00"

// marker is how an idempotency key is written into a record, for Find.
func marker(key string) string {
	if key == "" {
		return ""
	}
	return "[cr:" + key + "]"
}

// utmValues maps utm to Zoho's fields, the empty ones left out.
func utmValues(u crm.UTM) map[string]any {
	out := map[string]any{}
	for f, v := range map[string]string{
		fieldUTMSource: u.Source, fieldUTMMedium: u.Medium, fieldUTMCampaign: u.Campaign,
		fieldUTMTerm: u.Term, fieldUTMContent: u.Content, fieldClientID: u.ClientID,
	} {
		if v != "" {
			out[f] = v
		}
	}
	return out
}

// CreateLead creates a record in Leads: Zoho leads carry their own Phone,
// which the phone search and the sync read, so no contact is made. The
// lead is Last_Name and Company = lead.Title (Company is mandatory in the
// standard layout), Phone "+digits", Owner when lead.OwnerID is set, the
// UTM custom fields when set, and the key marker in Description. Zoho
// leads have no pipeline, so lead.Pipeline is ignored. A given
// lead.ContactID is returned as Created.Contact (Zoho keeps leads apart
// from contacts, and calls link to either). "trigger":[] keeps workflow
// rules from running on the insert: an assignment rule would otherwise
// move the lead away from the owner callrouter chose.
func (s *source) CreateLead(ctx context.Context, lead crm.NewLead) (crm.Created, error) {
	if lead.Phone == "" || strings.Trim(lead.Phone, "0123456789") != "" {
		return crm.Created{}, domain.Errorf(domain.EINVALID, "zoho: lead phone %q is not E.164 digits", lead.Phone)
	}
	title := strings.TrimSpace(lead.Title)
	if title == "" {
		title = "+" + lead.Phone
	}
	rec := utmValues(lead.UTM)
	if len(rec) > 0 {
		// Zoho refuses a record carrying a field the layout lacks: the
		// UTM fields the account has not created are left out (and shown
		// in /status, see MissingFields) rather than failing the call.
		l, err := s.layoutOf(ctx, "Leads")
		if err != nil {
			return crm.Created{}, err
		}
		for f := range rec {
			if !l.has(f) {
				delete(rec, f)
			}
		}
	}
	rec["Last_Name"] = title
	rec["Company"] = title
	rec["Phone"] = "+" + lead.Phone
	if lead.OwnerID != "" {
		rec["Owner"] = map[string]any{"id": lead.OwnerID}
	}
	if m := marker(lead.Key); m != "" {
		rec["Description"] = "Created by callrouter for a call from +" + lead.Phone + "\n" + m
	}
	mapped(rec, lead.Fields, lead.Tags)
	id, err := s.insert(ctx, "Leads", rec)
	if err != nil {
		return crm.Created{}, err
	}
	out := crm.Created{Lead: crm.Ref{Kind: domain.KindLead, ID: id}}
	if lead.ContactID != "" {
		out.Contact = crm.Ref{Kind: domain.KindContact, ID: lead.ContactID}
	}
	return out, nil
}

// CreateCall creates a record in Calls: Call_Type Outbound for outgoing
// calls, Inbound for answered incoming ones and Missed for the others;
// Call_Start_Time; Call_Duration "mm:ss" of the talk time (not for missed
// calls, which Zoho does not time); Call_Result "Answered" or the
// disposition; Owner = call.UserID; What_Id + $se_module for the lead or
// deal and Who_Id for the contact. Subject is "Incoming call +digits
// [cr:KEY]", and Description holds the phone, line, disposition, times,
// recording link and PBX call id, one "Label: value" a line, and the key
// marker again.
func (s *source) CreateCall(ctx context.Context, call crm.NewCall) (string, error) {
	phone := plusDigits(call.Phone)
	var subject, typ string
	switch {
	case call.Outgoing:
		subject, typ = "Outgoing call "+phone, "Outbound"
	case call.Answered:
		subject, typ = "Incoming call "+phone, "Inbound"
	default:
		subject, typ = "Missed call "+phone, "Missed"
	}
	subject = cmp.Or(call.Texts.Subject, subject)
	start := call.Start
	if start.IsZero() {
		start = s.now()
	}
	rec := map[string]any{
		"Subject":         withMarker(subject, call.Key),
		"Call_Type":       typ,
		"Call_Start_Time": crm.In(start, call.Zone).Format(startTimeLayout),
		"Call_Result":     callResult(call),
	}
	if typ != "Missed" {
		rec["Call_Duration"] = mmss(call.Duration)
	}
	if call.UserID != "" {
		rec["Owner"] = map[string]any{"id": call.UserID}
	}
	if err := link(rec, call.Lead, call.Contact); err != nil {
		return "", err
	}
	var d strings.Builder
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&d, "%s: %s\n", label, v)
		}
	}
	if call.Texts.Note != "" {
		// The caller's lines, in the tenant's language.
		d.WriteString(call.Texts.Note + "\n")
		d.WriteString(marker(call.Key))
		rec["Description"] = strings.TrimSpace(d.String())
		return s.insert(ctx, "Calls", rec)
	}
	line("Phone", phone)
	line("Line", call.Line)
	line("Disposition", call.Disposition)
	if typ != "Missed" {
		line("Talk time", call.Duration.Round(time.Second).String())
	}
	if call.Wait > 0 {
		line("Wait", call.Wait.Round(time.Second).String())
	}
	line("Recording", call.Recording)
	line("PBX call id", call.CallID)
	d.WriteString(marker(call.Key))
	rec["Description"] = strings.TrimSpace(d.String())
	return s.insert(ctx, "Calls", rec)
}

// CreateTask creates a record in Tasks: Subject = the text and the key
// marker, Due_Date (Zoho tasks have a due date, not a time: the time goes
// into Description), Status "Not Started", Priority "High", Owner =
// task.UserID, What_Id + $se_module for the lead or deal, Who_Id for the
// contact.
func (s *source) CreateTask(ctx context.Context, task crm.NewTask) (string, error) {
	text := strings.TrimSpace(task.Text)
	if text == "" {
		text = "Call back " + plusDigits(task.Phone)
	}
	rec := map[string]any{
		"Subject":  withMarker(text, task.Key),
		"Status":   "Not Started",
		"Priority": "High",
	}
	var d strings.Builder
	d.WriteString(text + "\n")
	if !task.Due.IsZero() {
		// The date as the project's calendar has it: a task due at 00:30 in
		// Kyiv is due that day, not the UTC day before.
		due := crm.In(task.Due, task.Zone)
		rec["Due_Date"] = due.Format(time.DateOnly)
		fmt.Fprintf(&d, "Due: %s\n", due.Format(startTimeLayout))
	}
	if task.Phone != "" {
		fmt.Fprintf(&d, "Phone: %s\n", plusDigits(task.Phone))
	}
	d.WriteString(marker(task.Key))
	rec["Description"] = strings.TrimSpace(d.String())
	if task.UserID != "" {
		rec["Owner"] = map[string]any{"id": task.UserID}
	}
	if err := link(rec, task.Lead, task.Contact); err != nil {
		return "", err
	}
	return s.insert(ctx, "Tasks", rec)
}

// FillUTM reads the lead's (or deal's) UTM fields with GET
// /{module}/{id}?fields=… and, only when all of them are empty, writes utm
// with PUT /{module}/{id}. Only the UTM fields the module's layout has are
// read and written; a module with none of them is left alone (false). Reading and writing are two requests: a UTM set by
// someone in between is overwritten, a window accepted for attribution.
// A record Zoho does not return (204) is a 404 *crm.StatusError. Errors:
// EINVALID for a reference that is not a lead or deal.
func (s *source) FillUTM(ctx context.Context, lead crm.Ref, utm crm.UTM) (bool, error) {
	m, ok := moduleOf(lead.Kind)
	if !ok || (m.kind != domain.KindLead && m.kind != domain.KindDeal) || lead.ID == "" {
		return false, domain.Errorf(domain.EINVALID, "zoho: UTM fields are on leads and deals, not %q %q", lead.Kind, lead.ID)
	}
	if utm.Empty() {
		return false, nil
	}
	l, err := s.layoutOf(ctx, m.name)
	if err != nil {
		return false, err
	}
	var fields []string
	for _, f := range utmFields {
		if l.has(f) {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return false, nil // the account keeps no UTM fields on this module
	}
	vals := utmValues(utm)
	for f := range vals {
		if !l.has(f) {
			delete(vals, f)
		}
	}
	if len(vals) == 0 {
		return false, nil
	}
	path := apiPrefix + "/" + m.name + "/" + url.PathEscape(lead.ID)
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: path,
		Query: url.Values{"fields": {strings.Join(fields, ",")}}})
	if err != nil {
		return false, fmt.Errorf("zoho: read UTM of %s %s: %w", m.name, lead.ID, err)
	}
	if resp.Status == http.StatusNoContent {
		return false, &crm.StatusError{CRM: "zoho", Method: http.MethodGet, Path: path, Status: http.StatusNotFound,
			Message: "no such record"}
	}
	var ans struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil || len(ans.Data) == 0 {
		return false, fmt.Errorf("zoho: read UTM of %s %s: bad answer: %s", m.name, lead.ID, crm.Snippet(resp.Body))
	}
	for _, f := range fields {
		if v, ok := ans.Data[0][f]; ok && v != nil && v != "" {
			return false, nil
		}
	}
	body, _ := json.Marshal(map[string]any{"data": []any{vals}, "trigger": []string{}})
	resp, err = s.http.Do(ctx, crm.Request{Method: http.MethodPut, Path: path, Body: body, ContentType: "application/json"})
	if err != nil {
		return false, fmt.Errorf("zoho: write UTM of %s %s: %w", m.name, lead.ID, err)
	}
	if _, err := recordResult(resp, http.MethodPut, path); err != nil {
		return false, fmt.Errorf("zoho: write UTM of %s %s: %w", m.name, lead.ID, err)
	}
	return true, nil
}

// Find looks for the call or task an earlier create with key made, with
// Zoho's word search: GET /{Calls|Tasks}/search?word=KEY. Word search
// matches loosely, so a hit must carry the exact "[cr:KEY]" marker in its
// Subject, and, when parent is given, be linked to it (What_Id or Who_Id;
// a call on a lead carries no Who_Id, so a contact parent also matches
// one without). Leads and UTM writes are not searchable by key here
// (crm.ErrNotSearchable): a lead is found again by its phone.
func (s *source) Find(ctx context.Context, kind crm.WriteKind, key string, parent crm.Ref) (string, error) {
	var mod string
	switch kind {
	case crm.WriteCall:
		mod = "Calls"
	case crm.WriteTask:
		mod = "Tasks"
	default:
		return "", crm.ErrNotSearchable
	}
	if key == "" {
		return "", nil
	}
	q := url.Values{"word": {key}, "fields": {"Subject,What_Id,Who_Id,$se_module"}, "per_page": {strconv.Itoa(perPage)}}
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + mod + "/search", Query: q})
	if err != nil {
		return "", fmt.Errorf("zoho: search %s by key: %w", mod, err)
	}
	if resp.Status == http.StatusNoContent {
		return "", nil
	}
	var ans struct {
		Data []struct {
			ID      zid     `json:"id"`
			Subject string  `json:"Subject"`
			What    *lookup `json:"What_Id"`
			Who     *lookup `json:"Who_Id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return "", fmt.Errorf("zoho: search %s by key: bad answer: %w", mod, err)
	}
	m := marker(key)
	for _, r := range ans.Data {
		if r.ID == "" || !strings.Contains(r.Subject, m) {
			continue
		}
		var what, who string
		if r.What != nil {
			what = string(r.What.ID)
		}
		if r.Who != nil {
			who = string(r.Who.ID)
		}
		if parent.ID == "" || what == parent.ID || who == parent.ID ||
			parent.Kind == domain.KindContact && who == "" {
			return string(r.ID), nil
		}
	}
	return "", nil
}

// link sets What_Id/$se_module and Who_Id of a call or task. Zoho files a
// lead as the "who" of an activity itself, and its UI disables the
// contact when a lead is chosen, so a contact goes with a deal or an
// account, not with a lead.
func link(rec map[string]any, lead, contact crm.Ref) error {
	if lead.ID != "" {
		if lead.Kind == domain.KindContact {
			contact = lead
		} else {
			m, ok := moduleOf(lead.Kind)
			if !ok {
				return domain.Errorf(domain.EINVALID, "zoho: cannot link an activity to %q", lead.Kind)
			}
			rec["What_Id"] = map[string]any{"id": lead.ID}
			rec["$se_module"] = m.name
			if m.kind == domain.KindLead {
				return nil
			}
		}
	}
	if contact.ID != "" {
		rec["Who_Id"] = map[string]any{"id": contact.ID}
	}
	return nil
}

// insert posts one record to module and returns its id.
func (s *source) insert(ctx context.Context, module string, rec map[string]any) (string, error) {
	path := apiPrefix + "/" + module
	body, err := json.Marshal(map[string]any{"data": []any{rec}, "trigger": []string{}})
	if err != nil {
		return "", fmt.Errorf("zoho: create in %s: %w", module, err)
	}
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodPost, Path: path, Body: body, ContentType: "application/json"})
	if err != nil {
		return "", fmt.Errorf("zoho: create in %s: %w", module, err)
	}
	id, err := recordResult(resp, http.MethodPost, path)
	if err != nil {
		return "", fmt.Errorf("zoho: create in %s: %w", module, err)
	}
	return id, nil
}

// recordResult reads the per-record result of a one-record insert or
// update. Zoho answers a batch with 201/200, or 207 when records differ;
// a record refused inside a 2xx answer (MANDATORY_NOT_FOUND, INVALID_DATA,
// DUPLICATE_DATA...) is a validation failure and comes back as a 400
// *crm.StatusError, so crm.IsPermanent holds as it does for a plain 400.
func recordResult(resp *crm.Response, method, path string) (string, error) {
	var ans struct {
		Data []struct {
			zohoError
			Status  string          `json:"status"`
			Details json.RawMessage `json:"details"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil || len(ans.Data) == 0 {
		return "", fmt.Errorf("bad answer (HTTP %d): %s", resp.Status, crm.Snippet(resp.Body))
	}
	r := ans.Data[0]
	if r.Code != "SUCCESS" || strings.EqualFold(r.Status, "error") {
		msg := r.text()
		if len(r.Details) > 0 && string(r.Details) != "{}" && string(r.Details) != "null" {
			msg += " " + crm.Snippet(r.Details)
		}
		return "", &crm.StatusError{CRM: "zoho", Method: method, Path: path, Status: http.StatusBadRequest, Message: msg}
	}
	var d struct {
		ID zid `json:"id"`
	}
	if err := json.Unmarshal(r.Details, &d); err != nil || d.ID == "" {
		return "", fmt.Errorf("no record id in the answer: %s", crm.Snippet(resp.Body))
	}
	return string(d.ID), nil
}

// callResult is the Call_Result of a call: "Answered", or what the PBX
// said happened.
func callResult(c crm.NewCall) string {
	if c.Answered {
		return "Answered"
	}
	switch strings.ToUpper(strings.TrimSpace(c.Disposition)) {
	case "NO ANSWER", "NOANSWER", "NO_ANSWER":
		return "No answer"
	case "BUSY":
		return "Busy"
	case "FAILED":
		return "Failed"
	case "VOICEMAIL":
		return "Voicemail"
	}
	return "Not answered"
}

// mmss formats a duration as Zoho's Call_Duration: minutes (any number)
// and seconds.
func mmss(d time.Duration) string {
	sec := int64(d.Round(time.Second) / time.Second)
	if sec < 0 {
		sec = 0
	}
	return fmt.Sprintf("%02d:%02d", sec/60, sec%60)
}

// plusDigits writes E.164 digits with '+'; anything else stays as given.
func plusDigits(p string) string {
	if p != "" && strings.Trim(p, "0123456789") == "" {
		return "+" + p
	}
	return p
}

// withMarker appends the key marker to a subject, shortening the subject
// so that the marker always fits Zoho's 255 characters.
func withMarker(subject, key string) string {
	m := marker(key)
	room := subjectMax
	if m != "" {
		room -= len(m) + 1
	}
	if utf8.RuneCountInString(subject) > room {
		r := []rune(subject)
		subject = string(r[:room-1]) + "…"
	}
	if m == "" {
		return subject
	}
	return subject + " " + m
}

// mapped puts a tenant's mapped fields (Zoho API names) and tags into a
// record. Standard fields callrouter sets itself keep callrouter's value.
func mapped(rec map[string]any, fields map[string]string, tags []string) {
	for k, v := range fields {
		if _, set := rec[k]; !set {
			rec[k] = v
		}
	}
	if len(tags) > 0 {
		t := make([]map[string]any, 0, len(tags))
		for _, n := range tags {
			t = append(t, map[string]any{"name": n})
		}
		rec["Tag"] = t
	}
}

var _ crm.ContactWriter = (*source)(nil)

// CreateContact creates a record in Contacts: Last_Name (the name, else
// the phone or e-mail; mandatory in the standard layout), Phone
// "+digits", Email, Owner, the mapped fields by API name, Tag, and the key
// marker in Description. Errors: EINVALID without phone and e-mail, and
// the CRM's.
func (s *source) CreateContact(ctx context.Context, c crm.NewContact) (crm.Ref, error) {
	if c.Phone == "" && c.Email == "" {
		return crm.Ref{}, domain.Errorf(domain.EINVALID, "zoho: a new contact needs a phone or an e-mail")
	}
	if c.Phone != "" && strings.Trim(c.Phone, "0123456789") != "" {
		return crm.Ref{}, domain.Errorf(domain.EINVALID, "zoho: contact phone %q is not E.164 digits", c.Phone)
	}
	name := strings.TrimSpace(c.Name)
	if name == "" {
		name = c.Email
		if c.Phone != "" {
			name = "+" + c.Phone
		}
	}
	rec := map[string]any{"Last_Name": name}
	if c.Phone != "" {
		rec["Phone"] = "+" + c.Phone
	}
	if c.Email != "" {
		rec["Email"] = c.Email
	}
	if c.OwnerID != "" {
		rec["Owner"] = map[string]any{"id": c.OwnerID}
	}
	if m := marker(c.Key); m != "" {
		rec["Description"] = "Created by callrouter\n" + m
	}
	mapped(rec, c.Fields, c.Tags)
	id, err := s.insert(ctx, "Contacts", rec)
	if err != nil {
		return crm.Ref{}, err
	}
	return crm.Ref{Kind: domain.KindContact, ID: id}, nil
}

var _ crm.EmailFinder = (*source)(nil)

// FindContactByEmail searches Contacts with GET
// /crm/v8/Contacts/search?email=… (Zoho matches the e-mail fields
// exactly) and returns the first hit; 204 is none. Errors: the CRM's.
func (s *source) FindContactByEmail(ctx context.Context, email string) (crm.Ref, error) {
	const path = apiPrefix + "/Contacts/search"
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: path,
		Query: url.Values{"email": {email}, "fields": {"Email"}}})
	if err != nil {
		return crm.Ref{}, fmt.Errorf("zoho: search contacts by e-mail: %w", err)
	}
	if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
		return crm.Ref{}, nil
	}
	var a struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return crm.Ref{}, fmt.Errorf("zoho: search contacts by e-mail: decode answer: %w", err)
	}
	if len(a.Data) == 0 || a.Data[0].ID == "" {
		return crm.Ref{}, nil
	}
	return crm.Ref{Kind: domain.KindContact, ID: a.Data[0].ID}, nil
}

var _ crm.FieldUpdater = (*source)(nil)

// UpdateFields writes fields (API names) onto a lead, deal or contact
// with PUT /crm/v8/{Leads|Deals|Contacts}/{id} {"data":[fields],
// "trigger":[]}: Zoho changes the fields sent and keeps the others.
// Errors: EINVALID for another kind or an empty id, and the CRM's (400
// INVALID_DATA naming a field the layout lacks or an id it does not have).
func (s *source) UpdateFields(ctx context.Context, ref crm.Ref, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	m, ok := moduleOf(ref.Kind)
	if !ok || m.kind == domain.KindCompany || ref.ID == "" {
		return domain.Errorf(domain.EINVALID, "zoho: mapped fields are written on leads, deals and contacts, not %q %q", ref.Kind, ref.ID)
	}
	rec := make(map[string]any, len(fields))
	for k, v := range fields {
		rec[k] = v
	}
	path := apiPrefix + "/" + m.name + "/" + url.PathEscape(ref.ID)
	body, err := json.Marshal(map[string]any{"data": []any{rec}, "trigger": []string{}})
	if err != nil {
		return fmt.Errorf("zoho: update %s %s: %w", m.name, ref.ID, err)
	}
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodPut, Path: path, Body: body, ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("zoho: update %s %s: %w", m.name, ref.ID, err)
	}
	if _, err := recordResult(resp, http.MethodPut, path); err != nil {
		return fmt.Errorf("zoho: update %s %s: %w", m.name, ref.ID, err)
	}
	return nil
}
