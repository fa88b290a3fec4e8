package amocrmfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// amoCRM's call_status for "had a conversation".
const callStatusConversation = 4

// utmCodes are the field codes of the account's tracking-data lead fields,
// in crm.UTM's field order.
var utmCodes = [...]string{"UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_TERM", "UTM_CONTENT", "GCLIENTID"}

// utmFieldID is the id of the first tracking-data field; the others follow.
const utmFieldID = 264920

func utmPtrs(u *crm.UTM) [len(utmCodes)]*string {
	return [...]*string{&u.Source, &u.Medium, &u.Campaign, &u.Term, &u.Content, &u.ClientID}
}

// utmJSON renders a lead's UTM fields as custom_fields_values (null when
// all are empty, as amoCRM renders a lead without field values).
func utmJSON(u crm.UTM) []customField {
	var out []customField
	for i, v := range utmPtrs(&u) {
		if *v == "" {
			continue
		}
		code := utmCodes[i]
		out = append(out, customField{FieldID: utmFieldID + int64(i), FieldName: strings.ToLower(code), FieldCode: &code,
			FieldType: "tracking_data", Values: []customValues{{Value: *v}}})
	}
	return out
}

// note is a call note (call_in, call_out) of a lead or contact.
type note struct {
	id          int64
	typ         string
	entity      crm.Ref
	responsible int64
	createdBy   int64
	createdAt   int64
	params      map[string]any
}

// task is a task created through the API.
type task struct {
	id           int64
	text         string
	entityType   string // leads, contacts, companies or ""
	entityID     int64
	responsible  int64
	typeID       int64
	completeTill int64
	createdAt    int64
}

// Written implements crmtest.Writes: what clients created through the API.
func (s *Server) Written() crmtest.Written {
	s.mu.Lock()
	defer s.mu.Unlock()
	return crmtest.Written{
		Contacts: slices.Clone(s.written.Contacts),
		Leads:    slices.Clone(s.written.Leads),
		Calls:    slices.Clone(s.written.Calls),
		Tasks:    slices.Clone(s.written.Tasks),
	}
}

// SetUTM implements crmtest.Writes: it sets a lead's tracking-data fields
// and stamps the lead as changed.
func (s *Server) SetUTM(r crm.Ref, u crm.UTM) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leadLocked(r)
	if l == nil {
		s.t.Errorf("amocrmfake: SetUTM: no lead %v", r)
		return
	}
	l.utm = u
	l.touch(s.now().Unix())
}

// UTM implements crmtest.Writes: a lead's tracking-data fields.
func (s *Server) UTM(r crm.Ref) crm.UTM {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leadLocked(r)
	if l == nil {
		s.t.Errorf("amocrmfake: UTM: no lead %v", r)
		return crm.UTM{}
	}
	return l.utm
}

func (s *Server) leadLocked(r crm.Ref) *record {
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if r.Kind != domain.KindLead || err != nil {
		return nil
	}
	return s.records[domain.KindLead][id]
}

// CallNote returns the note type (call_in, call_out), params and
// created_by of the call with id, as POST /api/v4/calls stored it; ok is
// false for an unknown id. Tests check here what Written does not show.
func (s *Server) CallNote(id string) (typ string, params map[string]any, createdBy int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ns := range s.notes {
		for _, n := range ns {
			if strconv.FormatInt(n.id, 10) == id {
				return n.typ, maps.Clone(n.params), n.createdBy, true
			}
		}
	}
	return "", nil, 0, false
}

// FailWrites implements crmtest.Writes: the next n POST, PUT and PATCH
// requests to the API fail with status and amoCRM's body for it.
func (s *Server) FailWrites(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode, s.failWrite = status, n
}

// LeadKind implements crmtest.Writes: amoCRM calls are filed under leads.
func (s *Server) LeadKind() domain.EntityKind { return domain.KindLead }

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// failedWrite answers a write FailWrites asked to fail, and reports so.
func (s *Server) failedWrite(w http.ResponseWriter) bool {
	s.mu.Lock()
	status := s.failCode
	fail := s.failWrite > 0
	if fail {
		s.failWrite--
	}
	s.mu.Unlock()
	if !fail {
		return false
	}
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "<html><body><h1>429 Too Many Requests</h1></body></html>\n")
	case http.StatusBadRequest:
		validationError(w, "0", "InvalidValue", "name", "This value is not valid.")
	case http.StatusUnauthorized:
		problem(w, status, "Unauthorized", "Unauthorized")
	default:
		text := http.StatusText(status)
		problem(w, status, text, text)
	}
	return true
}

// validationError answers amoCRM's 400 for a request body that fails
// validation.
func validationError(w http.ResponseWriter, requestID, code, path, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{
		"validation-errors": []any{map[string]any{"request_id": requestID, "errors": []any{
			map[string]any{"code": code, "path": path, "detail": detail}}}},
		"title":  "Bad Request",
		"type":   "https://httpstatus.es/400",
		"status": http.StatusBadRequest,
		"detail": "Request validation failed",
	})
}

// invalid is a validation failure found before anything is written.
type invalid struct{ requestID, code, path, detail string }

func (v *invalid) write(w http.ResponseWriter) {
	validationError(w, v.requestID, v.code, v.path, v.detail)
}

// serveWrites serves the endpoints clients write through, and the reads
// that go with them; false for other requests.
func (s *Server) serveWrites(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/api/v4/leads/complex":
		s.addLeads(w, r, true) // new contacts allowed
	case r.Method == http.MethodPost && path == "/api/v4/leads":
		s.addLeads(w, r, false)
	case r.Method == http.MethodPost && path == "/api/v4/contacts":
		s.addContacts(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/api/v4/leads/unsorted/"):
		s.addUnsorted(w, r, strings.TrimPrefix(path, "/api/v4/leads/unsorted/"))
	case r.Method == http.MethodGet && path == "/api/v4/leads/unsorted":
		s.listUnsorted(w, r)
	case r.Method == http.MethodGet && (path == "/api/v4/leads/custom_fields" || path == "/api/v4/contacts/custom_fields"):
		s.listCustomFields(w, r, strings.Split(path, "/")[3])
	case r.Method == http.MethodPost && path == "/api/v4/calls":
		s.addCalls(w, r)
	case r.Method == http.MethodPost && path == "/api/v4/tasks":
		s.addTasks(w, r)
	case r.Method == http.MethodGet && path == "/api/v4/tasks":
		s.listTasks(w, r)
	default:
		rest, ok := strings.CutPrefix(path, "/api/v4/")
		parts := strings.Split(rest, "/")
		if !ok || len(parts) < 2 || len(parts) > 3 {
			return false
		}
		kind, known := kindOf(parts[0])
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if !known || err != nil {
			return false
		}
		switch {
		case len(parts) == 3 && parts[2] == "notes" && r.Method == http.MethodGet:
			s.listNotes(w, r, crm.Ref{Kind: kind, ID: strconv.FormatInt(id, 10)})
		case len(parts) == 2 && kind == domain.KindLead && r.Method == http.MethodGet:
			s.getLead(w, r, id)
		case len(parts) == 2 && kind == domain.KindLead && r.Method == http.MethodPatch:
			s.patchLead(w, r, id)
		case len(parts) == 2 && kind == domain.KindContact && r.Method == http.MethodPatch:
			s.patchContact(w, r, id)
		default:
			return false
		}
	}
	return true
}

// kindOf is the kind of an entity path segment.
func kindOf(plural string) (domain.EntityKind, bool) {
	switch plural {
	case "leads":
		return domain.KindLead, true
	case "contacts":
		return domain.KindContact, true
	case "companies":
		return domain.KindCompany, true
	}
	return "", false
}

// readJSON decodes a JSON request body into v; false after answering 400.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		problem(w, http.StatusUnsupportedMediaType, "Unsupported Media Type", "Content-Type must be application/json")
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		validationError(w, "0", "InvalidType", "", "The request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// inField is a custom field value set in a request.
type inField struct {
	FieldID   int64  `json:"field_id"`
	FieldCode string `json:"field_code"`
	Values    []struct {
		Value    any    `json:"value"`
		EnumCode string `json:"enum_code"`
		EnumID   int64  `json:"enum_id"`
	} `json:"values"`
}

type inContact struct {
	ID                int64     `json:"id"`
	Name              string    `json:"name"`
	FirstName         string    `json:"first_name"`
	LastName          string    `json:"last_name"`
	ResponsibleUserID int64     `json:"responsible_user_id"`
	CustomFields      []inField `json:"custom_fields_values"`
	Embedded          struct {
		Tags []inTag `json:"tags"`
	} `json:"_embedded"`
}

// inTag is an entry of _embedded.tags: by id, or a name (created anew).
type inTag struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func tagNames(in []inTag) []string {
	var out []string
	for _, t := range in {
		out = append(out, t.Name)
	}
	return out
}

type inLead struct {
	Name              string    `json:"name"`
	ResponsibleUserID int64     `json:"responsible_user_id"`
	PipelineID        int64     `json:"pipeline_id"`
	CustomFields      []inField `json:"custom_fields_values"`
	RequestID         string    `json:"request_id"`
	Embedded          struct {
		Contacts []inContact `json:"contacts"`
		Tags     []inTag     `json:"tags"`
	} `json:"_embedded"`
}

// fieldText is a value as text.
func fieldText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Custom text fields of the fake account beyond the built-in ones, as an
// admin would add them: a lead field for roistat's visit id, a contact
// field for the landing page.
const (
	LeadCustomFieldID    = 300100
	ContactCustomFieldID = 400100
)

// CustomField implements crmtest.Writes.
func (s *Server) CustomField(entity string) string {
	if entity == "contact" {
		return strconv.Itoa(ContactCustomFieldID)
	}
	return strconv.Itoa(LeadCustomFieldID)
}

// leadFields reads a lead's fields: the tracking-data fields and the
// account's custom lead field, refusing any other.
func leadFields(fields []inField, prefix, requestID string, base crm.UTM) (crm.UTM, map[string]string, *invalid) {
	u := base
	var custom map[string]string
	for i, f := range fields {
		if f.FieldID == LeadCustomFieldID {
			if custom == nil {
				custom = map[string]string{}
			}
			if len(f.Values) > 0 {
				custom[strconv.Itoa(LeadCustomFieldID)] = fieldText(f.Values[0].Value)
			}
			continue
		}
		j := slices.Index(utmCodes[:], f.FieldCode)
		if j < 0 && f.FieldID >= utmFieldID && f.FieldID < utmFieldID+int64(len(utmCodes)) {
			j = int(f.FieldID - utmFieldID)
		}
		if j < 0 {
			return u, nil, &invalid{requestID, "NotSupportedChoice", fmt.Sprintf("%scustom_fields_values.%d.field_code", prefix, i),
				"The value you selected is not a valid choice."}
		}
		v := ""
		if len(f.Values) > 0 {
			v = fieldText(f.Values[0].Value)
		}
		*utmPtrs(&u)[j] = v
	}
	return u, custom, nil
}

// inContactFields is what a new contact's custom_fields_values hold.
type inContactFields struct {
	phones []string
	email  string
	custom map[string]string
}

// contactFields reads a new contact's PHONE, EMAIL and the account's
// custom contact field, refusing any other.
func contactFields(fields []inField, prefix, requestID string) (inContactFields, *invalid) {
	var c inContactFields
	for i, f := range fields {
		switch {
		case f.FieldCode == "PHONE" || f.FieldID == phoneFieldID:
			for _, v := range f.Values {
				if p := fieldText(v.Value); p != "" {
					c.phones = append(c.phones, p)
				}
			}
		case f.FieldCode == "EMAIL":
			if len(f.Values) > 0 {
				c.email = fieldText(f.Values[0].Value)
			}
		case f.FieldID == ContactCustomFieldID:
			if len(f.Values) > 0 {
				c.custom = map[string]string{strconv.Itoa(ContactCustomFieldID): fieldText(f.Values[0].Value)}
			}
		default:
			return c, &invalid{requestID, "NotSupportedChoice", fmt.Sprintf("%scustom_fields_values.%d.field_code", prefix, i),
				"The value you selected is not a valid choice."}
		}
	}
	return c, nil
}

// checkUserLocked rejects a responsible user the account does not have
// (checked only once SetUsers gave the account users).
func (s *Server) checkUserLocked(id int64, path, requestID string) *invalid {
	if id == 0 || len(s.users) == 0 {
		return nil
	}
	if slices.ContainsFunc(s.users, func(u crm.User) bool { return u.ID == strconv.FormatInt(id, 10) }) {
		return nil
	}
	return &invalid{requestID, "NotSupportedChoice", path, "The value you selected is not a valid choice."}
}

// addLeads serves POST /api/v4/leads and /api/v4/leads/complex: every item
// is validated before anything is created, and a new contact is created
// before its lead.
func (s *Server) addLeads(w http.ResponseWriter, r *http.Request, isComplex bool) {
	var in []inLead
	if !readJSON(w, r, &in) {
		return
	}
	if len(in) == 0 || len(in) > 50 {
		validationError(w, "0", "InvalidValue", "", "Send 1 to 50 leads")
		return
	}
	host := r.Host
	s.mu.Lock()
	defer s.mu.Unlock()
	type plan struct {
		utm      crm.UTM
		custom   map[string]string
		phones   [][]string // per contact, new ones only
		fields   []inContactFields
		existing []int64 // per contact, 0 for new ones
	}
	plans := make([]plan, len(in))
	for i, l := range in {
		rid := cmp.Or(l.RequestID, strconv.Itoa(i))
		p := &plans[i]
		var bad *invalid
		if p.utm, p.custom, bad = leadFields(l.CustomFields, "", rid, crm.UTM{}); bad != nil {
			bad.write(w)
			return
		}
		if bad := s.checkUserLocked(l.ResponsibleUserID, "responsible_user_id", rid); bad != nil {
			bad.write(w)
			return
		}
		if l.PipelineID < 0 {
			validationError(w, rid, "NotSupportedChoice", "pipeline_id", "The value you selected is not a valid choice.")
			return
		}
		for j, c := range l.Embedded.Contacts {
			prefix := fmt.Sprintf("_embedded.contacts.%d.", j)
			if c.ID != 0 {
				if s.records[domain.KindContact][c.ID] == nil {
					validationError(w, rid, "NotFound", prefix+"id", "Contact not found")
					return
				}
				p.existing, p.phones, p.fields = append(p.existing, c.ID), append(p.phones, nil), append(p.fields, inContactFields{})
				continue
			}
			if !isComplex {
				// A plain add links existing contacts only.
				validationError(w, rid, "InvalidValue", prefix+"id", "This value should not be blank.")
				return
			}
			cf, bad := contactFields(c.CustomFields, prefix, rid)
			if bad == nil {
				bad = s.checkUserLocked(c.ResponsibleUserID, prefix+"responsible_user_id", rid)
			}
			if bad != nil {
				bad.write(w)
				return
			}
			p.existing, p.phones, p.fields = append(p.existing, 0), append(p.phones, cf.phones), append(p.fields, cf)
		}
	}
	now := s.now().Unix()
	var complexOut []any
	var leadsOut []any
	for i, l := range in {
		p := plans[i]
		rid := cmp.Or(l.RequestID, strconv.Itoa(i))
		var contacts []int64
		for j, c := range l.Embedded.Contacts {
			if p.existing[j] != 0 {
				contacts = append(contacts, p.existing[j])
				continue
			}
			s.nextID++
			name := strings.TrimSpace(cmp.Or(c.Name, strings.TrimSpace(c.FirstName+" "+c.LastName)))
			rec := &record{kind: domain.KindContact, id: s.nextID, name: name, phones: p.phones[j],
				responsible: c.ResponsibleUserID, createdAt: now, email: p.fields[j].email, custom: maps.Clone(p.fields[j].custom)}
			rec.touch(now)
			s.records[domain.KindContact][rec.id] = rec
			contacts = append(contacts, rec.id)
			s.writeSeq++
			s.written.Contacts = append(s.written.Contacts, crmtest.WrittenContact{Seq: s.writeSeq,
				ID: strconv.FormatInt(rec.id, 10), Phone: firstDigits(rec.phones), OwnerID: owner(rec.responsible),
				Name: name, Email: p.fields[j].email, Fields: p.fields[j].custom, Tags: tagNames(c.Embedded.Tags)})
		}
		s.nextID++
		lead := &record{kind: domain.KindLead, id: s.nextID, name: l.Name, responsible: l.ResponsibleUserID,
			status: StatusOpen, createdAt: now, contacts: contacts, pipeline: l.PipelineID, utm: p.utm, custom: maps.Clone(p.custom)}
		lead.touch(now)
		s.records[domain.KindLead][lead.id] = lead
		wl := crmtest.WrittenLead{Kind: domain.KindLead, ID: strconv.FormatInt(lead.id, 10), Title: l.Name,
			OwnerID: owner(lead.responsible), UTM: p.utm, Fields: p.custom, Tags: tagNames(l.Embedded.Tags)}
		if l.PipelineID != 0 {
			wl.Pipeline = strconv.FormatInt(l.PipelineID, 10)
		}
		if len(contacts) > 0 {
			wl.ContactID = strconv.FormatInt(contacts[0], 10)
			wl.Phone = firstDigits(s.records[domain.KindContact][contacts[0]].phones)
		}
		s.writeSeq++
		wl.Seq = s.writeSeq
		s.written.Leads = append(s.written.Leads, wl)
		var contactID any // null when the lead has no contact
		if len(contacts) > 0 {
			contactID = contacts[0]
		}
		complexOut = append(complexOut, map[string]any{"id": lead.id, "contact_id": contactID, "company_id": nil,
			"request_id": []string{rid}, "merged": false})
		leadsOut = append(leadsOut, map[string]any{"id": lead.id, "request_id": rid,
			"_links": selfLinks(host, "/api/v4/leads", lead.id)})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	if isComplex {
		json.NewEncoder(w).Encode(complexOut)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"_links":    links{Self: link{"http://" + host + "/api/v4/leads"}},
		"_embedded": map[string]any{"leads": leadsOut},
	})
}

// addCalls serves POST /api/v4/calls. Like amoCRM, it files each call
// under the contact holding its phone (last ten digits; the lowest id when
// several do), or under that contact's lead when it has exactly one
// active lead, as a call_in or call_out note whose id is the call's. A
// phone no contact holds gets a 400 and nothing is added.
func (s *Server) addCalls(w http.ResponseWriter, r *http.Request) {
	var in []struct {
		Direction         string  `json:"direction"`
		Uniq              string  `json:"uniq"`
		Duration          *int64  `json:"duration"`
		Source            string  `json:"source"`
		Link              string  `json:"link"`
		Phone             string  `json:"phone"`
		CallResult        string  `json:"call_result"`
		CallStatus        int64   `json:"call_status"`
		CallResponsible   any     `json:"call_responsible"`
		ResponsibleUserID int64   `json:"responsible_user_id"`
		CreatedBy         int64   `json:"created_by"`
		CreatedAt         int64   `json:"created_at"`
		RequestID         *string `json:"request_id"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if len(in) == 0 || len(in) > 50 {
		validationError(w, "0", "InvalidValue", "", "Send 1 to 50 calls")
		return
	}
	host := r.Host
	s.mu.Lock()
	defer s.mu.Unlock()
	type target struct{ contact, lead int64 }
	targets := make([]target, len(in))
	for i, c := range in {
		rid := strconv.Itoa(i)
		if c.RequestID != nil {
			rid = *c.RequestID
		}
		var bad *invalid
		switch {
		case c.Direction != "inbound" && c.Direction != "outbound":
			bad = &invalid{rid, "NotSupportedChoice", "direction", "The value you selected is not a valid choice."}
		case c.Duration == nil || *c.Duration < 0:
			bad = &invalid{rid, "InvalidValue", "duration", "This value should be a non-negative integer."}
		case c.Source == "":
			bad = &invalid{rid, "NotBlank", "source", "This value should not be blank."}
		case digits(c.Phone) == "":
			bad = &invalid{rid, "NotBlank", "phone", "This value should not be blank."}
		case c.CallStatus < 0 || c.CallStatus > 7:
			bad = &invalid{rid, "NotSupportedChoice", "call_status", "The value you selected is not a valid choice."}
		}
		if bad == nil {
			bad = s.checkUserLocked(c.ResponsibleUserID, "responsible_user_id", rid)
		}
		if bad != nil {
			bad.write(w)
			return
		}
		contact := s.contactByPhoneLocked(digits(c.Phone))
		if contact == 0 {
			validationError(w, rid, "NotFound", "phone", "Entity with this phone not found")
			return
		}
		targets[i] = target{contact: contact, lead: s.singleActiveLeadLocked(contact)}
	}
	now := s.now().Unix()
	var out []any
	for i, c := range in {
		rid := strconv.Itoa(i)
		if c.RequestID != nil {
			rid = *c.RequestID
		}
		t := targets[i]
		entity := crm.Ref{Kind: domain.KindContact, ID: strconv.FormatInt(t.contact, 10)}
		if t.lead != 0 {
			entity = crm.Ref{Kind: domain.KindLead, ID: strconv.FormatInt(t.lead, 10)}
		}
		typ := "call_in"
		if c.Direction == "outbound" {
			typ = "call_out"
		}
		s.nextID++
		n := &note{id: s.nextID, typ: typ, entity: entity, responsible: c.ResponsibleUserID, createdBy: c.CreatedBy,
			createdAt: cmp.Or(c.CreatedAt, now), params: map[string]any{
				"uniq": c.Uniq, "duration": *c.Duration, "source": c.Source, "link": c.Link, "phone": c.Phone,
				"call_result": c.CallResult, "call_status": c.CallStatus}}
		s.notes[entity] = append(s.notes[entity], n)
		wc := crmtest.WrittenCall{ID: strconv.FormatInt(n.id, 10), Key: c.Uniq, Outgoing: c.Direction == "outbound",
			Answered: c.CallStatus == callStatusConversation, Phone: digits(c.Phone), Start: time.Unix(n.createdAt, 0).UTC(),
			Duration: time.Duration(*c.Duration) * time.Second, Recording: c.Link, UserID: owner(c.ResponsibleUserID),
			ContactID: strconv.FormatInt(t.contact, 10), Text: c.CallResult}
		if t.lead != 0 {
			wc.LeadID = strconv.FormatInt(t.lead, 10)
		}
		s.writeSeq++
		wc.Seq = s.writeSeq
		s.written.Calls = append(s.written.Calls, wc)
		eid, _ := strconv.ParseInt(entity.ID, 10, 64)
		path := "/api/v4/" + plural(entity.Kind)
		out = append(out, map[string]any{"id": n.id, "entity_id": eid, "entity_type": plural(entity.Kind),
			"account_id": AccountID, "request_id": rid,
			"_embedded": map[string]any{"entity": map[string]any{"id": eid, "_links": selfLinks(host, path, eid)}}})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"calls": out}})
}

// contactByPhoneLocked returns the lowest-id contact with a phone ending
// like number (last ten digits, all when shorter); 0 for none.
func (s *Server) contactByPhoneLocked(number string) int64 {
	want := number[max(0, len(number)-10):]
	for _, id := range sortedIDs(s.records[domain.KindContact]) {
		for _, p := range s.records[domain.KindContact][id].phones {
			d := digits(p)
			if d[max(0, len(d)-10):] == want {
				return id
			}
		}
	}
	return 0
}

// singleActiveLeadLocked returns the contact's only open lead, 0 when it
// has none or several.
func (s *Server) singleActiveLeadLocked(contact int64) int64 {
	var found int64
	for _, id := range sortedIDs(s.records[domain.KindLead]) {
		l := s.records[domain.KindLead][id]
		if l.status == StatusWon || l.status == StatusLost || !slices.Contains(l.contacts, contact) {
			continue
		}
		if found != 0 {
			return 0
		}
		found = id
	}
	return found
}

// addTasks serves POST /api/v4/tasks.
func (s *Server) addTasks(w http.ResponseWriter, r *http.Request) {
	var in []struct {
		Text              string  `json:"text"`
		CompleteTill      *int64  `json:"complete_till"`
		EntityID          int64   `json:"entity_id"`
		EntityType        string  `json:"entity_type"`
		ResponsibleUserID int64   `json:"responsible_user_id"`
		TaskTypeID        int64   `json:"task_type_id"`
		RequestID         *string `json:"request_id"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if len(in) == 0 || len(in) > 50 {
		validationError(w, "0", "InvalidValue", "", "Send 1 to 50 tasks")
		return
	}
	host := r.Host
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range in {
		rid := strconv.Itoa(i)
		if t.RequestID != nil {
			rid = *t.RequestID
		}
		kind, known := kindOf(t.EntityType)
		var bad *invalid
		switch {
		case strings.TrimSpace(t.Text) == "":
			bad = &invalid{rid, "NotBlank", "text", "This value should not be blank."}
		case t.CompleteTill == nil:
			bad = &invalid{rid, "NotBlank", "complete_till", "This value should not be blank."}
		case t.EntityID != 0 && !known:
			bad = &invalid{rid, "NotSupportedChoice", "entity_type", "The value you selected is not a valid choice."}
		case t.EntityID != 0 && s.records[kind][t.EntityID] == nil:
			bad = &invalid{rid, "NotFound", "entity_id", "Entity not found"}
		case t.TaskTypeID < 0:
			bad = &invalid{rid, "NotSupportedChoice", "task_type_id", "The value you selected is not a valid choice."}
		}
		if bad == nil {
			bad = s.checkUserLocked(t.ResponsibleUserID, "responsible_user_id", rid)
		}
		if bad != nil {
			bad.write(w)
			return
		}
	}
	now := s.now().Unix()
	var out []any
	for i, t := range in {
		rid := strconv.Itoa(i)
		if t.RequestID != nil {
			rid = *t.RequestID
		}
		s.nextID++
		tk := &task{id: s.nextID, text: t.Text, responsible: t.ResponsibleUserID, typeID: cmp.Or(t.TaskTypeID, 1),
			completeTill: *t.CompleteTill, createdAt: now}
		if t.EntityID != 0 {
			tk.entityType, tk.entityID = t.EntityType, t.EntityID
		}
		s.tasks = append(s.tasks, tk)
		wt := crmtest.WrittenTask{ID: strconv.FormatInt(tk.id, 10), Text: t.Text, UserID: owner(t.ResponsibleUserID),
			Due: time.Unix(tk.completeTill, 0).UTC()}
		switch tk.entityType {
		case "leads":
			wt.LeadID = strconv.FormatInt(tk.entityID, 10)
		case "contacts":
			wt.ContactID = strconv.FormatInt(tk.entityID, 10)
		}
		s.writeSeq++
		wt.Seq = s.writeSeq
		s.written.Tasks = append(s.written.Tasks, wt)
		out = append(out, map[string]any{"id": tk.id, "request_id": rid, "_links": selfLinks(host, "/api/v4/tasks", tk.id)})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{
		"_links":    links{Self: link{"http://" + host + "/api/v4/tasks"}},
		"_embedded": map[string]any{"tasks": out},
	})
}

// listTasks serves GET /api/v4/tasks with filter[entity_type],
// filter[entity_id][] (or filter[entity_id]), limit and page, oldest
// first; 204 when none match.
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, ok := paging(w, q, maxLimit)
	if !ok {
		return
	}
	typ := q.Get("filter[entity_type]")
	ids := map[int64]bool{}
	for _, v := range append(q["filter[entity_id][]"], q["filter[entity_id]"]...) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			badRequest(w, "filter[entity_id]", "ids must be integers")
			return
		}
		ids[n] = true
	}
	host := r.Host
	s.mu.Lock()
	var match []*task
	for _, t := range s.tasks {
		if typ != "" && t.entityType != typ || len(ids) > 0 && !ids[t.entityID] {
			continue
		}
		match = append(match, t)
	}
	items, next := pageOf(match, limit, page)
	out := make([]any, len(items))
	for i, t := range items {
		var entityID, entityType any // null for a task of no entity
		if t.entityType != "" {
			entityID, entityType = t.entityID, t.entityType
		}
		out[i] = map[string]any{"id": t.id, "created_by": t.responsible, "updated_by": t.responsible,
			"created_at": t.createdAt, "updated_at": t.createdAt, "responsible_user_id": t.responsible, "group_id": 0,
			"entity_id": entityID, "entity_type": entityType, "is_completed": false, "task_type_id": t.typeID,
			"text": t.text, "duration": 0, "complete_till": t.completeTill, "result": []any{}, "account_id": AccountID,
			"_links": selfLinks(host, "/api/v4/tasks", t.id)}
	}
	s.mu.Unlock()
	writePage(w, r, "tasks", out, page, next)
}

// listNotes serves GET /api/v4/{leads,contacts,companies}/{id}/notes with
// filter[note_type][] (or a comma-separated filter[note_type]), limit and
// page; 204 when none match. The fake keeps call notes only.
func (s *Server) listNotes(w http.ResponseWriter, r *http.Request, entity crm.Ref) {
	q := r.URL.Query()
	limit, page, ok := paging(w, q, maxLimit)
	if !ok {
		return
	}
	types := map[string]bool{}
	for _, v := range q["filter[note_type][]"] {
		types[v] = true
	}
	for _, v := range strings.Split(q.Get("filter[note_type]"), ",") {
		if v != "" {
			types[v] = true
		}
	}
	host := r.Host
	s.mu.Lock()
	var match []*note
	for _, n := range s.notes[entity] {
		if len(types) == 0 || types[n.typ] {
			match = append(match, n)
		}
	}
	items, next := pageOf(match, limit, page)
	out := make([]any, len(items))
	eid, _ := strconv.ParseInt(entity.ID, 10, 64)
	for i, n := range items {
		out[i] = map[string]any{"id": n.id, "entity_id": eid, "created_by": n.createdBy, "updated_by": n.createdBy,
			"created_at": n.createdAt, "updated_at": n.createdAt, "responsible_user_id": n.responsible, "group_id": 0,
			"note_type": n.typ, "params": n.params, "account_id": AccountID,
			"_links": links{Self: link{fmt.Sprintf("http://%s/api/v4/%s/%d/notes/%d", host, plural(entity.Kind), eid, n.id)}}}
	}
	s.mu.Unlock()
	writePage(w, r, "notes", out, page, next)
}

// getLead serves GET /api/v4/leads/{id} (with=contacts allowed); 204 for
// a lead the account does not have.
func (s *Server) getLead(w http.ResponseWriter, r *http.Request, id int64) {
	with := map[string]bool{}
	for _, v := range strings.Split(r.URL.Query().Get("with"), ",") {
		with[strings.TrimSpace(v)] = true
	}
	s.mu.Lock()
	rec := s.records[domain.KindLead][id]
	var out any
	if rec != nil {
		out = s.recordJSON(rec, with)
	}
	s.mu.Unlock()
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(out)
}

// patchLead serves PATCH /api/v4/leads/{id}: name, responsible_user_id,
// the tracking-data fields and the account's custom lead field in
// custom_fields_values (a field with no values is cleared; fields not sent
// keep their values).
func (s *Server) patchLead(w http.ResponseWriter, r *http.Request, id int64) {
	s.patch(w, r, domain.KindLead, id, func(rec *record, fields []inField) *invalid {
		u, custom, bad := leadFields(fields, "", "0", rec.utm)
		if bad != nil {
			return bad
		}
		rec.utm, rec.custom = u, crmtest.Merged(rec.custom, custom)
		return nil
	})
}

// firstDigits is the digits of the first phone, "" for none.
func firstDigits(phones []string) string {
	if len(phones) == 0 {
		return ""
	}
	return digits(phones[0])
}

// owner renders a responsible user id, "" for none.
func owner(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// Reauthorize ends a Revoke: Creds returns working credentials again.
func (s *Server) Reauthorize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Revoke cleared the tokens; Creds issues new ones.
}

// addContacts serves POST /api/v4/contacts: every item is validated (its
// fields must be PHONE, EMAIL or the account's custom contact field)
// before anything is created.
func (s *Server) addContacts(w http.ResponseWriter, r *http.Request) {
	var in []inContact
	if !readJSON(w, r, &in) {
		return
	}
	if len(in) == 0 || len(in) > 50 {
		validationError(w, "0", "InvalidValue", "", "Send 1 to 50 contacts")
		return
	}
	host := r.Host
	s.mu.Lock()
	defer s.mu.Unlock()
	fields := make([]inContactFields, len(in))
	for i, c := range in {
		rid := strconv.Itoa(i)
		cf, bad := contactFields(c.CustomFields, "", rid)
		if bad == nil {
			bad = s.checkUserLocked(c.ResponsibleUserID, "responsible_user_id", rid)
		}
		if bad != nil {
			bad.write(w)
			return
		}
		fields[i] = cf
	}
	now := s.now().Unix()
	var out []any
	for i, c := range in {
		s.nextID++
		name := strings.TrimSpace(cmp.Or(c.Name, strings.TrimSpace(c.FirstName+" "+c.LastName)))
		rec := &record{kind: domain.KindContact, id: s.nextID, name: name, phones: fields[i].phones,
			responsible: c.ResponsibleUserID, createdAt: now, email: fields[i].email, custom: maps.Clone(fields[i].custom)}
		rec.touch(now)
		s.records[domain.KindContact][rec.id] = rec
		s.writeSeq++
		s.written.Contacts = append(s.written.Contacts, crmtest.WrittenContact{Seq: s.writeSeq,
			ID: strconv.FormatInt(rec.id, 10), Phone: firstDigits(rec.phones), OwnerID: owner(rec.responsible),
			Name: name, Email: fields[i].email, Fields: fields[i].custom, Tags: tagNames(c.Embedded.Tags)})
		out = append(out, map[string]any{"id": rec.id, "request_id": strconv.Itoa(i),
			"_links": selfLinks(host, "/api/v4/contacts", rec.id)})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{
		"_links":    links{Self: link{"http://" + host + "/api/v4/contacts"}},
		"_embedded": map[string]any{"contacts": out},
	})
}

// listCustomFields serves GET /api/v4/{leads|contacts}/custom_fields: the
// account's fields of the entity on one page (the fake has few).
func (s *Server) listCustomFields(w http.ResponseWriter, r *http.Request, plural string) {
	type cf struct {
		ID   int64   `json:"id"`
		Name string  `json:"name"`
		Code *string `json:"code"`
		Type string  `json:"type"`
	}
	code := func(c string) *string { return &c }
	var fields []cf
	if plural == "leads" {
		for i, c := range utmCodes {
			fields = append(fields, cf{ID: utmFieldID + int64(i), Name: strings.ToLower(c), Code: code(c), Type: "tracking_data"})
		}
		fields = append(fields, cf{ID: LeadCustomFieldID, Name: "Roistat visit", Type: "text"})
	} else {
		fields = append(fields, cf{ID: phoneFieldID, Name: "Телефон", Code: code("PHONE"), Type: "multitext"},
			cf{ID: phoneFieldID + 1, Name: "Email", Code: code("EMAIL"), Type: "multitext"},
			cf{ID: ContactCustomFieldID, Name: "Landing", Type: "url"})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{
		"_total_items": len(fields), "_page": 1,
		"_links":    links{Self: link{"http://" + r.Host + r.URL.Path}},
		"_embedded": map[string]any{"custom_fields": fields},
	})
}

// patchContact serves PATCH /api/v4/contacts/{id}: name,
// responsible_user_id and custom_fields_values (PHONE, EMAIL and the
// account's custom contact field; any other is a 400): like amoCRM, the
// fields sent replace those fields' values and the others keep theirs.
func (s *Server) patchContact(w http.ResponseWriter, r *http.Request, id int64) {
	s.patch(w, r, domain.KindContact, id, func(rec *record, fields []inField) *invalid {
		cf, bad := contactFields(fields, "", "0")
		if bad != nil {
			return bad
		}
		for _, f := range fields {
			switch {
			case f.FieldCode == "PHONE" || f.FieldID == phoneFieldID:
				rec.phones = cf.phones
			case f.FieldCode == "EMAIL":
				rec.email = cf.email
			}
		}
		rec.custom = crmtest.Merged(rec.custom, cf.custom)
		return nil
	})
}

// patch serves PATCH /api/v4/{leads|contacts}/{id}: fields checks the
// record's custom_fields_values and, when they are valid, applies them;
// name and responsible_user_id are common to both. Nothing changes when
// any part is refused.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, kind domain.EntityKind, id int64, fields func(rec *record, in []inField) *invalid) {
	var in struct {
		Name              *string   `json:"name"`
		ResponsibleUserID *int64    `json:"responsible_user_id"`
		CustomFields      []inField `json:"custom_fields_values"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[kind][id]
	if rec == nil {
		what := map[domain.EntityKind]string{domain.KindLead: "Lead", domain.KindContact: "Contact"}[kind]
		problem(w, http.StatusNotFound, "Not Found", what+" not found")
		return
	}
	if in.ResponsibleUserID != nil {
		if bad := s.checkUserLocked(*in.ResponsibleUserID, "responsible_user_id", "0"); bad != nil {
			bad.write(w)
			return
		}
	}
	if bad := fields(rec, in.CustomFields); bad != nil {
		bad.write(w)
		return
	}
	if in.Name != nil {
		rec.name = *in.Name
	}
	if in.ResponsibleUserID != nil {
		rec.responsible = *in.ResponsibleUserID
	}
	rec.touch(s.now().Unix())
	path := map[domain.EntityKind]string{domain.KindLead: "/api/v4/leads", domain.KindContact: "/api/v4/contacts"}[kind]
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{"id": rec.id, "updated_at": rec.updatedAt,
		"_links": selfLinks(r.Host, path, rec.id)})
}

// Fields implements crmtest.Writes: the account's custom field values of
// a lead or contact.
func (s *Server) Fields(r crm.Ref) map[string]string {
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.records[r.Kind][id]; rec != nil && len(rec.custom) > 0 {
		return maps.Clone(rec.custom)
	}
	return nil
}
