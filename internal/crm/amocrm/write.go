package amocrm

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crm.Writer = (*source)(nil)

// callSource is the "source" amoCRM shows for calls callrouter records.
const callSource = "callrouter"

// taskTypeCall is amoCRM's built-in task type "Звонок" (call).
const taskTypeCall = 1

// amoCRM's call_status values (adding-calls documentation).
const (
	callNotAvailable = 3 // "not available": no answer, cancelled, voicemail
	callConversation = 4 // "had a conversation"
	callNoConnection = 6 // "no connection": the call failed
	callBusy         = 7 // "busy"
)

// findCallLeadContacts bounds the contacts of a lead whose notes Find
// reads when the call is not in the lead's own notes.
const findCallLeadContacts = 5

// utmCodes are the field_code of amoCRM's tracking-data lead fields, in
// crm.UTM's field order.
var utmCodes = [...]string{"UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_TERM", "UTM_CONTENT", "GCLIENTID"}

// utmValues returns the fields of u in utmCodes order.
func utmValues(u *crm.UTM) [len(utmCodes)]*string {
	return [...]*string{&u.Source, &u.Medium, &u.Campaign, &u.Term, &u.Content, &u.ClientID}
}

// fieldValue is one entry of custom_fields_values as amoCRM takes it.
type fieldValue struct {
	FieldID   int64        `json:"field_id,omitempty"`
	FieldCode string       `json:"field_code,omitempty"`
	Values    []valueEntry `json:"values"`
}

// mappedFields returns the custom_fields_values entries of a tenant's
// mapping: a numeric crm_field is the field's id, anything else its
// field_code (amoCRM's own fields, e.g. EMAIL, POSITION). Sorted by
// address, so a retry sends the same body.
func mappedFields(m map[string]string) []fieldValue {
	out := make([]fieldValue, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f := fieldValue{Values: []valueEntry{{Value: m[k]}}}
		if id, err := strconv.ParseInt(k, 10, 64); err == nil && id > 0 {
			f.FieldID = id
		} else {
			f.FieldCode = strings.ToUpper(k)
		}
		out = append(out, f)
	}
	return out
}

// tag is an entry of _embedded.tags: amoCRM creates a tag named anew.
type tag struct {
	Name string `json:"name"`
}

func tagsOf(names []string) []tag {
	var out []tag
	for _, n := range names {
		out = append(out, tag{Name: n})
	}
	return out
}

type valueEntry struct {
	Value    string `json:"value"`
	EnumCode string `json:"enum_code,omitempty"`
}

// utmFields returns the custom field values setting the non-empty fields
// of u; nil when u is empty.
func utmFields(u crm.UTM) []fieldValue {
	var out []fieldValue
	for i, v := range utmValues(&u) {
		if *v != "" {
			out = append(out, fieldValue{FieldCode: utmCodes[i], Values: []valueEntry{{Value: *v}}})
		}
	}
	return out
}

// phoneField is a contact's PHONE field holding number (E.164 digits).
func phoneField(number string) fieldValue {
	return fieldValue{FieldCode: "PHONE", Values: []valueEntry{{Value: "+" + number, EnumCode: "WORK"}}}
}

// optID parses an optional amoCRM id: 0 for "", EINVALID naming field for
// anything but a positive integer.
func optID(field, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, domain.Errorf(domain.EINVALID, "%s: %s %q is not an amoCRM id", name, field, v)
	}
	return id, nil
}

// newLead is a lead in a POST /api/v4/leads or /api/v4/leads/complex body.
type newLead struct {
	Name              string       `json:"name"`
	ResponsibleUserID int64        `json:"responsible_user_id,omitempty"`
	PipelineID        int64        `json:"pipeline_id,omitempty"`
	CustomFields      []fieldValue `json:"custom_fields_values,omitempty"`
	Embedded          struct {
		Contacts []newContact `json:"contacts"`
		Tags     []tag        `json:"tags,omitempty"`
	} `json:"_embedded"`
}

// newContact is an embedded contact: a new one (name, phone) for the
// complex add, an existing one (id) for a plain add.
type newContact struct {
	ID                int64        `json:"id,omitempty"`
	Name              string       `json:"name,omitempty"`
	ResponsibleUserID int64        `json:"responsible_user_id,omitempty"`
	CustomFields      []fieldValue `json:"custom_fields_values,omitempty"`
	Embedded          *contactTags `json:"_embedded,omitempty"`
}

type contactTags struct {
	Tags []tag `json:"tags,omitempty"`
}

// postJSON sends a JSON write. Errors are those of crm.HTTP.Do.
func (s *source) postJSON(ctx context.Context, method, path string, body any) (*crm.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: encode request: %w", name, method, path, err)
	}
	return s.api.Do(ctx, crm.Request{Method: method, Path: path, Body: b, ContentType: "application/json"})
}

// decode parses a successful answer into v.
func decode(resp *crm.Response, method, path string, v any) error {
	if err := json.Unmarshal(resp.Body, v); err != nil {
		return fmt.Errorf("%s %s %s: decode answer (HTTP %d): %w", name, method, path, resp.Status, err)
	}
	return nil
}

// CreateLead creates the lead. Without lead.ContactID it is one
// POST /api/v4/leads/complex making the lead and its contact (named
// lead.Title, holding the phone as +digits in PHONE/WORK) together, so no
// lead is ever left without the contact FindByPhone needs. With ContactID
// it is POST /api/v4/leads with that contact embedded by id. Both carry
// responsible_user_id (lead.OwnerID), pipeline_id (lead.Pipeline) and the
// UTM tracking fields when set. Errors: EINVALID for ids that are not
// amoCRM's or a new contact without a phone, and the CRM's errors.
func (s *source) CreateLead(ctx context.Context, lead crm.NewLead) (crm.Created, error) {
	owner, err := optID("owner", lead.OwnerID)
	if err != nil {
		return crm.Created{}, err
	}
	pipeline, err := optID("pipeline", lead.Pipeline)
	if err != nil {
		return crm.Created{}, err
	}
	contact, err := optID("contact", lead.ContactID)
	if err != nil {
		return crm.Created{}, err
	}
	l := newLead{Name: lead.Title, ResponsibleUserID: owner, PipelineID: pipeline,
		CustomFields: append(utmFields(lead.UTM), mappedFields(lead.Fields)...)}
	l.Embedded.Tags = tagsOf(lead.Tags)
	if contact != 0 {
		l.Embedded.Contacts = []newContact{{ID: contact}}
		const path = "/api/v4/leads"
		resp, err := s.postJSON(ctx, http.MethodPost, path, []newLead{l})
		if err != nil {
			return crm.Created{}, fmt.Errorf("create lead: %w", err)
		}
		var a struct {
			Embedded struct {
				Leads []struct {
					ID int64 `json:"id"`
				} `json:"leads"`
			} `json:"_embedded"`
		}
		if err := decode(resp, http.MethodPost, path, &a); err != nil {
			return crm.Created{}, err
		}
		if len(a.Embedded.Leads) == 0 || a.Embedded.Leads[0].ID <= 0 {
			return crm.Created{}, fmt.Errorf("%s POST %s: answer (HTTP %d) names no lead", name, path, resp.Status)
		}
		return crm.Created{
			Lead:    crm.Ref{Kind: domain.KindLead, ID: strconv.FormatInt(a.Embedded.Leads[0].ID, 10)},
			Contact: crm.Ref{Kind: domain.KindContact, ID: strconv.FormatInt(contact, 10)},
		}, nil
	}
	number := digits(lead.Phone)
	if number == "" {
		return crm.Created{}, domain.Errorf(domain.EINVALID, "%s: a new lead's contact needs a phone, got %q", name, lead.Phone)
	}
	l.Embedded.Contacts = []newContact{{Name: lead.Title, ResponsibleUserID: owner,
		CustomFields: append([]fieldValue{phoneField(number)}, mappedFields(lead.ContactFields)...)}}
	const path = "/api/v4/leads/complex"
	resp, err := s.postJSON(ctx, http.MethodPost, path, []newLead{l})
	if err != nil {
		return crm.Created{}, fmt.Errorf("create lead and contact: %w", err)
	}
	var a []struct {
		ID        int64 `json:"id"`
		ContactID int64 `json:"contact_id"`
	}
	if err := decode(resp, http.MethodPost, path, &a); err != nil {
		return crm.Created{}, err
	}
	if len(a) == 0 || a[0].ID <= 0 || a[0].ContactID <= 0 {
		return crm.Created{}, fmt.Errorf("%s POST %s: answer (HTTP %d) names no lead and contact", name, path, resp.Status)
	}
	return crm.Created{
		Lead:    crm.Ref{Kind: domain.KindLead, ID: strconv.FormatInt(a[0].ID, 10)},
		Contact: crm.Ref{Kind: domain.KindContact, ID: strconv.FormatInt(a[0].ContactID, 10)},
	}, nil
}

// callStatus maps a call's outcome to amoCRM's call_status, and a short
// call_result text.
func callStatus(c crm.NewCall) (int, string) {
	d := strings.ToUpper(strings.TrimSpace(c.Disposition))
	switch {
	case c.Answered:
		return callConversation, "answered"
	case d == "BUSY":
		return callBusy, "busy"
	case d == "FAILED" || d == "CONGESTION" || d == "CHANUNAVAIL":
		return callNoConnection, "no connection (" + d + ")"
	case d == "":
		return callNotAvailable, "missed"
	default:
		return callNotAvailable, "missed (" + d + ")"
	}
}

// CreateCall records the call with POST /api/v4/calls: direction,
// uniq = call.Key, duration (talk seconds), source "callrouter", link (the
// recording), phone (+digits), call_status and call_result, and the user as
// responsible_user_id and created_by. amoCRM takes no entity ids here: it
// files the call under the contact holding the phone, or that contact's
// single active lead, so call.Lead and call.Contact only need to exist
// with the phone (CreateLead sees to that). The id returned is the call
// note's. Errors: EINVALID for a call without a phone or a user id that is
// not amoCRM's; a *crm.StatusError 400 when amoCRM finds nothing with the
// phone (the call is not added), and the CRM's other errors.
func (s *source) CreateCall(ctx context.Context, call crm.NewCall) (string, error) {
	user, err := optID("user", call.UserID)
	if err != nil {
		return "", err
	}
	number := digits(call.Phone)
	if number == "" {
		return "", domain.Errorf(domain.EINVALID, "%s: call %q has no phone", name, call.Key)
	}
	status, result := callStatus(call)
	if call.Texts.Result != "" {
		result = call.Texts.Result
	}
	direction := "inbound"
	if call.Outgoing {
		direction = "outbound"
	}
	type apiCall struct {
		Direction         string `json:"direction"`
		Uniq              string `json:"uniq"`
		Duration          int64  `json:"duration"`
		Source            string `json:"source"`
		Link              string `json:"link,omitempty"`
		Phone             string `json:"phone"`
		CallResult        string `json:"call_result"`
		CallStatus        int    `json:"call_status"`
		ResponsibleUserID int64  `json:"responsible_user_id,omitempty"`
		CreatedBy         int64  `json:"created_by,omitempty"`
		CreatedAt         int64  `json:"created_at,omitempty"`
		RequestID         string `json:"request_id"`
	}
	c := apiCall{Direction: direction, Uniq: call.Key, Duration: int64(call.Duration / time.Second), Source: callSource,
		Link: call.Recording, Phone: "+" + number, CallResult: result, CallStatus: status,
		ResponsibleUserID: user, CreatedBy: user, RequestID: "0"}
	if !call.Start.IsZero() {
		c.CreatedAt = call.Start.Unix()
	}
	const path = "/api/v4/calls"
	resp, err := s.postJSON(ctx, http.MethodPost, path, []apiCall{c})
	if err != nil {
		return "", fmt.Errorf("create call: %w", err)
	}
	var a struct {
		Embedded struct {
			Calls []struct {
				ID int64 `json:"id"`
			} `json:"calls"`
			Errors json.RawMessage `json:"errors"`
		} `json:"_embedded"`
	}
	if err := decode(resp, http.MethodPost, path, &a); err != nil {
		return "", err
	}
	if len(a.Embedded.Calls) == 0 || a.Embedded.Calls[0].ID <= 0 {
		// A 2xx answer that added nothing (amoCRM lists refusals under
		// _embedded.errors): the same request will be refused again.
		return "", &crm.StatusError{CRM: name, Method: http.MethodPost, Path: path, Status: http.StatusBadRequest,
			Message: "the call was not added: " + crm.Snippet(a.Embedded.Errors)}
	}
	return strconv.FormatInt(a.Embedded.Calls[0].ID, 10), nil
}

// taskMarker is what CreateTask appends to a task's text so that Find can
// recognize it.
func taskMarker(key string) string { return "[cr:" + key + "]" }

// entityType is amoCRM's entity_type of a lead or contact in tasks and
// paths; ok is false for other kinds.
func entityType(k domain.EntityKind) (string, bool) {
	switch k {
	case domain.KindLead:
		return "leads", true
	case domain.KindContact:
		return "contacts", true
	case domain.KindCompany:
		return "companies", true
	}
	return "", false
}

// taskParent is the one entity an amoCRM task is attached to: the lead,
// else the contact; id is 0 for neither.
func taskParent(lead, contact crm.Ref) (typ string, id int64, err error) {
	for _, r := range []crm.Ref{lead, contact} {
		if r.ID == "" {
			continue
		}
		typ, known := entityType(r.Kind)
		if !known {
			return "", 0, domain.Errorf(domain.EINVALID, "%s: amoCRM has no %q entities", name, r.Kind)
		}
		id, err := optID(string(r.Kind), r.ID)
		return typ, id, err
	}
	return "", 0, nil
}

// CreateTask creates a call task (task_type_id 1) with POST /api/v4/tasks:
// text with the marker "[cr:<key>]" appended, complete_till (task.Due, or
// now when zero; amoCRM requires it), responsible_user_id, and entity_id /
// entity_type of the lead, else the contact (an amoCRM task belongs to one
// entity). Errors: EINVALID for ids that are not amoCRM's, and the CRM's
// errors.
func (s *source) CreateTask(ctx context.Context, task crm.NewTask) (string, error) {
	user, err := optID("user", task.UserID)
	if err != nil {
		return "", err
	}
	typ, id, err := taskParent(task.Lead, task.Contact)
	if err != nil {
		return "", err
	}
	due := task.Due
	if due.IsZero() {
		due = s.now()
	}
	text := strings.TrimSpace(task.Text)
	if task.Key != "" {
		text = strings.TrimSpace(text + " " + taskMarker(task.Key))
	}
	type apiTask struct {
		Text              string `json:"text"`
		CompleteTill      int64  `json:"complete_till"`
		EntityID          int64  `json:"entity_id,omitempty"`
		EntityType        string `json:"entity_type,omitempty"`
		ResponsibleUserID int64  `json:"responsible_user_id,omitempty"`
		TaskTypeID        int    `json:"task_type_id"`
		RequestID         string `json:"request_id"`
	}
	const path = "/api/v4/tasks"
	resp, err := s.postJSON(ctx, http.MethodPost, path, []apiTask{{Text: text, CompleteTill: due.Unix(), EntityID: id,
		EntityType: typ, ResponsibleUserID: user, TaskTypeID: taskTypeCall, RequestID: "0"}})
	if err != nil {
		return "", fmt.Errorf("create task: %w", err)
	}
	var a struct {
		Embedded struct {
			Tasks []struct {
				ID int64 `json:"id"`
			} `json:"tasks"`
		} `json:"_embedded"`
	}
	if err := decode(resp, http.MethodPost, path, &a); err != nil {
		return "", err
	}
	if len(a.Embedded.Tasks) == 0 || a.Embedded.Tasks[0].ID <= 0 {
		return "", fmt.Errorf("%s POST %s: answer (HTTP %d) names no task", name, path, resp.Status)
	}
	return strconv.FormatInt(a.Embedded.Tasks[0].ID, 10), nil
}

// FillUTM reads the lead (GET /api/v4/leads/{id}) and, when none of its
// UTM tracking fields has a value, writes utm with PATCH
// /api/v4/leads/{id} {custom_fields_values}. An empty utm writes nothing.
// Errors: EINVALID for a ref that is not an amoCRM lead, ENOTFOUND when
// amoCRM has no such lead (204), and the CRM's errors.
func (s *source) FillUTM(ctx context.Context, lead crm.Ref, utm crm.UTM) (bool, error) {
	if lead.Kind != domain.KindLead {
		return false, domain.Errorf(domain.EINVALID, "%s: UTM fields are on leads, not %q", name, lead.Kind)
	}
	id, err := optID("lead", lead.ID)
	if err != nil {
		return false, err
	}
	if id == 0 {
		return false, domain.Errorf(domain.EINVALID, "%s: lead id is empty", name)
	}
	if utm.Empty() {
		return false, nil
	}
	path := "/api/v4/leads/" + strconv.FormatInt(id, 10)
	resp, err := s.get(ctx, path, nil)
	if err != nil {
		return false, fmt.Errorf("read lead UTM: %w", err)
	}
	if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
		return false, domain.Errorf(domain.ENOTFOUND, "%s: lead %d not found", name, id)
	}
	var l apiEntity
	if err := decode(resp, http.MethodGet, path, &l); err != nil {
		return false, err
	}
	for _, f := range l.CustomFields {
		if !slices.Contains(utmCodes[:], f.FieldCode) {
			continue
		}
		for _, v := range f.Values {
			var s string
			if json.Unmarshal(v.Value, &s) != nil {
				s = string(v.Value) // a non-string value is still a value
			}
			if s = strings.TrimSpace(s); s != "" && s != "null" {
				return false, nil
			}
		}
	}
	body := map[string]any{"custom_fields_values": utmFields(utm)}
	if _, err := s.postJSON(ctx, http.MethodPatch, path, body); err != nil {
		return false, fmt.Errorf("write lead UTM: %w", err)
	}
	return true, nil
}

// Find looks up an earlier write by its key under parent.
//
//   - WriteCall: the call notes (call_in, call_out) of parent, GET
//     /api/v4/{leads|contacts}/{id}/notes?filter[note_type][]=…, matched by
//     params.uniq; for a lead, then also the notes of its first contacts,
//     since amoCRM files a call under the contact when the contact has
//     several active leads.
//   - WriteTask: GET /api/v4/tasks?filter[entity_type]=…&filter[entity_id][]=…,
//     matched by the "[cr:<key>]" marker in the text.
//   - WriteUnsorted: the requests not yet accepted, GET
//     /api/v4/leads/unsorted, matched by source_uid (see findUnsorted).
//   - WriteLead, WriteUTM, and a zero parent: crm.ErrNotSearchable (amoCRM
//     leads carry no key; FillUTM is idempotent by itself).
func (s *source) Find(ctx context.Context, kind crm.WriteKind, key string, parent crm.Ref) (string, error) {
	if kind == crm.WriteUnsorted && key != "" {
		return s.findUnsorted(ctx, key)
	}
	if kind != crm.WriteCall && kind != crm.WriteTask || parent.ID == "" || key == "" {
		return "", crm.ErrNotSearchable
	}
	typ, known := entityType(parent.Kind)
	if !known {
		return "", domain.Errorf(domain.EINVALID, "%s: amoCRM has no %q entities", name, parent.Kind)
	}
	id, err := optID(string(parent.Kind), parent.ID)
	if err != nil {
		return "", err
	}
	if kind == crm.WriteTask {
		return s.findTask(ctx, typ, id, key)
	}
	found, err := s.findCallNote(ctx, typ, id, key)
	if err != nil || found != "" || parent.Kind != domain.KindLead {
		return found, err
	}
	leads, err := s.byIDs(ctx, domain.KindLead, []int64{id}, "contacts")
	if err != nil {
		return "", fmt.Errorf("find call: %w", err)
	}
	for _, l := range leads {
		for i, c := range l.Embedded.Contacts {
			if i == findCallLeadContacts {
				break
			}
			if found, err := s.findCallNote(ctx, "contacts", c.ID, key); err != nil || found != "" {
				return found, err
			}
		}
	}
	return "", nil
}

// findCallNote pages through an entity's call notes for params.uniq == key.
func (s *source) findCallNote(ctx context.Context, typ string, id int64, key string) (string, error) {
	type note struct {
		ID     int64 `json:"id"`
		Params struct {
			Uniq string `json:"uniq"`
		} `json:"params"`
	}
	q := url.Values{"filter[note_type][]": {"call_in", "call_out"}}
	return findInPages(ctx, s, "call", "/api/v4/"+typ+"/"+strconv.FormatInt(id, 10)+"/notes", "notes", q,
		func(n note) (int64, bool) { return n.ID, n.Params.Uniq == key })
}

// findTask pages through an entity's tasks for the key's marker.
func (s *source) findTask(ctx context.Context, typ string, id int64, key string) (string, error) {
	type task struct {
		ID   int64  `json:"id"`
		Text string `json:"text"`
	}
	marker := taskMarker(key)
	q := url.Values{"filter[entity_type]": {typ}, "filter[entity_id][]": {strconv.FormatInt(id, 10)}}
	return findInPages(ctx, s, "task", "/api/v4/tasks", "tasks", q,
		func(t task) (int64, bool) { return t.ID, strings.Contains(t.Text, marker) })
}

// findInPages pages through an amoCRM list (items under _embedded.<embedded>)
// and returns the id of the first item match accepts; "" when the list
// ends (a 204, no next link, or a short page) without one.
func findInPages[T any](ctx context.Context, s *source, what, path, embedded string, q url.Values,
	match func(T) (int64, bool)) (string, error) {
	q.Set("limit", strconv.Itoa(pageLimit))
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		resp, err := s.get(ctx, path, q)
		if err != nil {
			return "", fmt.Errorf("find %s: %w", what, err)
		}
		if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
			return "", nil
		}
		var p struct {
			Links struct {
				Next *struct{} `json:"next"`
			} `json:"_links"`
			Embedded map[string][]T `json:"_embedded"`
		}
		if err := decode(resp, http.MethodGet, path, &p); err != nil {
			return "", err
		}
		items := p.Embedded[embedded]
		for _, it := range items {
			if id, ok := match(it); ok {
				return strconv.FormatInt(id, 10), nil
			}
		}
		if p.Links.Next == nil || len(items) < pageLimit {
			return "", nil
		}
	}
}

var _ crm.ContactWriter = (*source)(nil)

// CreateContact creates a contact with POST /api/v4/contacts: name,
// responsible_user_id, PHONE (WORK) and EMAIL (WORK) as given, the mapped
// custom fields and tags. Errors: EINVALID without phone and e-mail or
// with an id that is not amoCRM's, and the CRM's (a 400 naming the field
// for a custom field the account lacks).
func (s *source) CreateContact(ctx context.Context, c crm.NewContact) (crm.Ref, error) {
	owner, err := optID("owner", c.OwnerID)
	if err != nil {
		return crm.Ref{}, err
	}
	var fields []fieldValue
	if number := digits(c.Phone); number != "" {
		fields = append(fields, phoneField(number))
	}
	if c.Email != "" {
		fields = append(fields, fieldValue{FieldCode: "EMAIL", Values: []valueEntry{{Value: c.Email, EnumCode: "WORK"}}})
	}
	if len(fields) == 0 {
		return crm.Ref{}, domain.Errorf(domain.EINVALID, "%s: a new contact needs a phone or an e-mail", name)
	}
	nc := newContact{Name: cmpOr(c.Name, "+"+digits(c.Phone), c.Email), ResponsibleUserID: owner,
		CustomFields: append(fields, mappedFields(c.Fields)...)}
	if len(c.Tags) > 0 {
		nc.Embedded = &contactTags{Tags: tagsOf(c.Tags)}
	}
	const path = "/api/v4/contacts"
	resp, err := s.postJSON(ctx, http.MethodPost, path, []newContact{nc})
	if err != nil {
		return crm.Ref{}, fmt.Errorf("create contact: %w", err)
	}
	var a struct {
		Embedded struct {
			Contacts []struct {
				ID int64 `json:"id"`
			} `json:"contacts"`
		} `json:"_embedded"`
	}
	if err := decode(resp, http.MethodPost, path, &a); err != nil {
		return crm.Ref{}, err
	}
	if len(a.Embedded.Contacts) == 0 || a.Embedded.Contacts[0].ID <= 0 {
		return crm.Ref{}, fmt.Errorf("%s POST %s: answer (HTTP %d) names no contact", name, path, resp.Status)
	}
	return crm.Ref{Kind: domain.KindContact, ID: strconv.FormatInt(a.Embedded.Contacts[0].ID, 10)}, nil
}

// cmpOr returns the first of vs that is neither "" nor a bare "+".
func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" && v != "+" {
			return v
		}
	}
	return ""
}

var _ crm.FieldLister = (*source)(nil)

// standardCodes are the field codes amoCRM accounts have on contacts
// whether or not they list them (PHONE, EMAIL, POSITION) and the
// tracking-data codes of leads.
var standardCodes = map[string][]string{
	"contacts": {"PHONE", "EMAIL", "POSITION"},
	"leads":    utmCodes[:],
}

// MappableFields lists the custom fields of leads ("deal") or contacts
// with GET /api/v4/{leads|contacts}/custom_fields, every page: each
// field's id and, where it has one, its code. Errors: the CRM's.
func (s *source) MappableFields(ctx context.Context, entity string) ([]string, bool, error) {
	plural := "leads"
	if entity == "contact" {
		plural = "contacts"
	}
	out := slices.Clone(standardCodes[plural])
	path := "/api/v4/" + plural + "/custom_fields"
	q := url.Values{"limit": {"50"}}
	for page := 1; page <= 100; page++ {
		q.Set("page", strconv.Itoa(page))
		resp, err := s.get(ctx, path, q)
		if err != nil {
			return nil, false, fmt.Errorf("list %s fields: %w", plural, err)
		}
		if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
			break
		}
		var p struct {
			Links struct {
				Next *struct{} `json:"next"`
			} `json:"_links"`
			Embedded struct {
				Fields []struct {
					ID   int64   `json:"id"`
					Code *string `json:"code"`
				} `json:"custom_fields"`
			} `json:"_embedded"`
		}
		if err := decode(resp, http.MethodGet, path, &p); err != nil {
			return nil, false, err
		}
		for _, f := range p.Embedded.Fields {
			out = append(out, strconv.FormatInt(f.ID, 10))
			if f.Code != nil && *f.Code != "" {
				out = append(out, *f.Code)
			}
		}
		if p.Links.Next == nil {
			break
		}
	}
	slices.Sort(out)
	return slices.Compact(out), true, nil
}

var _ crm.EmailFinder = (*source)(nil)

// FindContactByEmail searches contacts with GET /api/v4/contacts?query=
// (amoCRM's search covers e-mail fields) and returns the first whose
// EMAIL field holds email exactly (case aside), the most recently updated
// first. Errors: the CRM's.
func (s *source) FindContactByEmail(ctx context.Context, email string) (crm.Ref, error) {
	type contact struct {
		ID           int64 `json:"id"`
		CustomFields []struct {
			FieldCode *string `json:"field_code"`
			Values    []struct {
				Value any `json:"value"`
			} `json:"values"`
		} `json:"custom_fields_values"`
	}
	q := url.Values{"query": {email}, "order[updated_at]": {"desc"}}
	id, err := findInPages(ctx, s, "contact by e-mail", "/api/v4/contacts", "contacts", q, func(c contact) (int64, bool) {
		for _, f := range c.CustomFields {
			if f.FieldCode == nil || *f.FieldCode != "EMAIL" {
				continue
			}
			for _, v := range f.Values {
				if t, ok := v.Value.(string); ok && strings.EqualFold(strings.TrimSpace(t), email) {
					return c.ID, true
				}
			}
		}
		return 0, false
	})
	if err != nil || id == "" {
		return crm.Ref{}, err
	}
	return crm.Ref{Kind: domain.KindContact, ID: id}, nil
}

var _ crm.FieldUpdater = (*source)(nil)

// UpdateFields writes fields onto a lead or contact with PATCH
// /api/v4/{leads|contacts}/{id} {custom_fields_values}: amoCRM replaces
// the values of the fields sent and keeps every other field. Errors:
// EINVALID for another kind or an id that is not amoCRM's, and the CRM's
// (a 400 for a field the account lacks, 404 for a missing entity).
func (s *source) UpdateFields(ctx context.Context, ref crm.Ref, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	if ref.Kind != domain.KindLead && ref.Kind != domain.KindContact {
		return domain.Errorf(domain.EINVALID, "%s: mapped fields are written on leads and contacts, not %q", name, ref.Kind)
	}
	typ, _ := entityType(ref.Kind)
	id, err := optID(string(ref.Kind), ref.ID)
	if err != nil {
		return err
	}
	if id == 0 {
		return domain.Errorf(domain.EINVALID, "%s: %s id is empty", name, ref.Kind)
	}
	path := "/api/v4/" + typ + "/" + strconv.FormatInt(id, 10)
	if _, err := s.postJSON(ctx, http.MethodPatch, path, map[string]any{"custom_fields_values": mappedFields(fields)}); err != nil {
		return fmt.Errorf("update %s %d: %w", ref.Kind, id, err)
	}
	return nil
}
