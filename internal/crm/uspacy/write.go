package uspacy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crm.Writer = (*source)(nil)

// integrationCode names callrouter as the source of the calls it records
// (a call's integration_code).
const integrationCode = "callrouter"

// findPage is how many calls or activities Find reads of a search answer.
const findPage = 100

// Marker returns the text callrouter puts in a call's note and a task's
// description so that Find can recognise what an earlier create made.
func Marker(key string) string { return "[cr:" + key + "]" }

// ExternalID returns the numeric external_id a call created with key
// carries. Both SDKs type external_id as a number, so the key (letters,
// digits, '_' and '-') is hashed (FNV-1a, 64 bits, cut to the 53 bits a
// JavaScript number holds exactly) instead of being sent as text, which
// the CRM might refuse and so lose the call for good.
func ExternalID(key string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	id := int64(h.Sum64() & (1<<53 - 1))
	if id == 0 {
		id = 1
	}
	return id
}

// send posts or patches body as JSON.
func (s *source) send(ctx context.Context, method, path string, body any) (*crm.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s: encode %s %s: %w", name, method, path, err)
	}
	return s.api.Do(ctx, crm.Request{Method: method, Path: path, Body: b, ContentType: "application/json"})
}

// jsonID returns s as a JSON number when it is a Uspacy id, the way the
// SDKs send owners and ids, else as a string for the CRM to judge.
func jsonID(s string) any {
	if isID(s) {
		return json.Number(s)
	}
	return s
}

// createdID reads the id of what a create answered: the record itself,
// or the record wrapped in {"data":{…}}.
func createdID(what string, body []byte) (string, error) {
	r, err := decodeEntity(body)
	if err != nil {
		return "", fmt.Errorf("%s: create %s: answer is not the expected JSON: %w", name, what, err)
	}
	if r.ID == "" {
		return "", fmt.Errorf("%s: create %s: answer carries no id", name, what)
	}
	return string(r.ID), nil
}

// CreateLead creates a lead (POST /crm/v1/entities/leads/) titled
// lead.Title, with the phone in its own phone field, the owner, the UTM
// fields and, for lead.Pipeline, the kanban stage to start in. Uspacy
// leads hold their own phones and have no contact link, so no contact is
// created; a given ContactID is only reported back. Errors: EINVALID for
// a phone without digits; as for Get otherwise.
func (s *source) CreateLead(ctx context.Context, lead crm.NewLead) (crm.Created, error) {
	phone := digits(lead.Phone)
	if phone == "" {
		return crm.Created{}, domain.Errorf(domain.EINVALID, "uspacy: phone %q has no digits", lead.Phone)
	}
	title := strings.TrimSpace(lead.Title)
	if title == "" {
		title = "+" + phone // Uspacy requires a title
	}
	body := map[string]any{
		"title": title,
		"phone": []map[string]any{{"value": "+" + phone, "type": "work"}},
	}
	if lead.OwnerID != "" {
		body["owner"] = jsonID(lead.OwnerID)
	}
	if lead.Pipeline != "" {
		// Records carry only their stage: the funnel follows from it.
		body["kanban_stage_id"] = jsonID(lead.Pipeline)
	}
	for field, v := range utmFields(lead.UTM) {
		body[field] = v
	}
	for field, v := range lead.Fields {
		if _, set := body[field]; !set {
			body[field] = v
		}
	}
	resp, err := s.send(ctx, http.MethodPost, "/crm/v1/entities/leads/", body)
	if err != nil {
		return crm.Created{}, fmt.Errorf("%s: create lead: %w", name, err)
	}
	id, err := createdID("lead", resp.Body)
	if err != nil {
		return crm.Created{}, err
	}
	c := crm.Created{Lead: crm.Ref{Kind: domain.KindLead, ID: id}}
	if lead.ContactID != "" {
		c.Contact = crm.Ref{Kind: domain.KindContact, ID: lead.ContactID}
	}
	return c, nil
}

// utmFields returns the non-empty UTM fields under Uspacy's names. Uspacy
// has no field for the analytics client id, which is dropped.
func utmFields(u crm.UTM) map[string]string {
	m := map[string]string{}
	for field, v := range map[string]string{
		"utm_source": u.Source, "utm_medium": u.Medium, "utm_campaign": u.Campaign,
		"utm_term": u.Term, "utm_content": u.Content,
	} {
		if v = strings.TrimSpace(v); v != "" {
			m[field] = v
		}
	}
	return m
}

// endedStatus is a call's ended_call_status: answered, or busy or missed
// for a call nobody talked on.
func endedStatus(c crm.NewCall) string {
	switch {
	case c.Answered:
		return "answered"
	case strings.EqualFold(c.Disposition, "BUSY"):
		return "busy"
	}
	return "missed"
}

// linkFields adds the id field that links a call to r (lead_id, deal_id,
// contact_id or company_id) and returns the table it names.
func linkFields(body map[string]any, r crm.Ref) string {
	if r.ID == "" {
		return ""
	}
	t, ok := tableOf(r.Kind)
	if !ok {
		return ""
	}
	body[string(r.Kind)+"_id"] = jsonID(r.ID)
	return t.name
}

// CreateCall records a finished call with POST /crm/v1/events/call: the
// direction (call_type), ended_call_status, from and to, begin and end
// time, the talk time (duration, seconds), the recording link, the user
// (employees), the links to call.Lead and call.Contact, and the key twice:
// as ExternalID in external_id and as Marker in the note. Errors as for
// Get.
func (s *source) CreateCall(ctx context.Context, call crm.NewCall) (string, error) {
	client := "+" + digits(call.Phone)
	from, to, callType, subject := client, call.Line, "incoming", "Incoming call "+client
	if call.Outgoing {
		from, to, callType, subject = call.Line, client, "outgoing", "Outgoing call "+client
	}
	start := call.Start
	if start.IsZero() {
		start = s.now()
	}
	dur := int64(call.Duration / time.Second)
	note := Marker(call.Key)
	switch {
	case call.Texts.Note != "":
		note = call.Texts.Note + "\n" + note
	case call.Disposition != "":
		note = call.Disposition + " " + note
	}
	if call.Texts.Subject != "" {
		subject = call.Texts.Subject
	}
	body := map[string]any{
		"integration_code":  integrationCode,
		"external_id":       ExternalID(call.Key),
		"call_type":         callType,
		"ended_call_status": endedStatus(call),
		"from":              from,
		"to":                to,
		"begin_time":        start.Unix(),
		"end_time":          start.Add(call.Wait + call.Duration).Unix(),
		"duration":          dur,
		"subject":           subject,
		"note":              note,
	}
	if call.Recording != "" {
		body["call_record_link"] = call.Recording
	}
	if call.UserID != "" {
		body["employees"] = []any{jsonID(call.UserID)}
	}
	// The lead is the main entity when there is one: the call shows in its
	// timeline, and in the contact's through contact_id.
	table := linkFields(body, call.Contact)
	if call.Contact.ID != "" && call.Contact.Kind == domain.KindContact {
		body["contacts"] = []any{jsonID(call.Contact.ID)}
	}
	if t := linkFields(body, call.Lead); t != "" {
		table = t
	}
	if table != "" {
		body["entity_table"] = table
	}
	resp, err := s.send(ctx, http.MethodPost, "/crm/v1/events/call", body)
	if err != nil {
		return "", fmt.Errorf("%s: create call: %w", name, err)
	}
	return createdID("call", resp.Body)
}

// crmEntities is a task's crm_entities: the linked records by table.
func crmEntities(refs ...crm.Ref) map[string][]map[string]any {
	m := map[string][]map[string]any{}
	for _, r := range refs {
		if t, ok := tableOf(r.Kind); ok && r.ID != "" {
			m[t.name] = append(m[t.name], map[string]any{"id": jsonID(r.ID)})
		}
	}
	return m
}

// taskTitle is the first line of a task's text, cut to a title's length.
func taskTitle(text string) string {
	title, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	title = strings.TrimSpace(title)
	if r := []rune(title); len(r) > 120 {
		title = string(r[:119]) + "…"
	}
	if title == "" {
		title = "Call back"
	}
	return title
}

// CreateTask creates a planned task activity with POST
// /activities/v1/activities: the text's first line as title, the text and
// Marker(task.Key) as description, now as start_time, the due time as
// end_time, responsible_id, and crm_entities linking the lead and contact.
// Errors as for Get.
func (s *source) CreateTask(ctx context.Context, task crm.NewTask) (string, error) {
	due := task.Due
	if due.IsZero() {
		due = s.now()
	}
	start := min(s.now().Unix(), due.Unix())
	body := map[string]any{
		"title":        taskTitle(task.Text),
		"type":         "task",
		"status":       "planned",
		"priority":     "neutral",
		"description":  strings.TrimSpace(task.Text) + "\n\n" + Marker(task.Key),
		"start_time":   start,
		"end_time":     due.Unix(),
		"crm_entities": crmEntities(task.Lead, task.Contact),
	}
	if task.UserID != "" {
		body["responsible_id"] = jsonID(task.UserID)
	}
	resp, err := s.send(ctx, http.MethodPost, "/activities/v1/activities", body)
	if err != nil {
		return "", fmt.Errorf("%s: create task: %w", name, err)
	}
	return createdID("task", resp.Body)
}

// rawUTM is the UTM part of a lead or deal.
type rawUTM struct {
	Source   flexString `json:"utm_source"`
	Medium   flexString `json:"utm_medium"`
	Campaign flexString `json:"utm_campaign"`
	Term     flexString `json:"utm_term"`
	Content  flexString `json:"utm_content"`
}

// FillUTM reads the lead or deal (GET /crm/v1/entities/{table}/{id}) and,
// when its five UTM fields are all empty, writes the non-empty ones of utm
// with PATCH on the same path and reports true. Uspacy has no field for
// utm.ClientID, so a utm with nothing else writes nothing. Errors:
// EINVALID for a kind other than lead or deal or a bad id; as for Get.
func (s *source) FillUTM(ctx context.Context, lead crm.Ref, utm crm.UTM) (bool, error) {
	if lead.Kind != domain.KindLead && lead.Kind != domain.KindDeal {
		return false, domain.Errorf(domain.EINVALID, "uspacy: UTM fields are on leads and deals, not %q", lead.Kind)
	}
	if !isID(lead.ID) {
		return false, domain.Errorf(domain.EINVALID, "uspacy: %q is not a %s id", lead.ID, lead.Kind)
	}
	t, _ := tableOf(lead.Kind)
	path := "/crm/v1/entities/" + t.name + "/" + lead.ID
	resp, err := s.get(ctx, path, nil)
	if err != nil {
		return false, fmt.Errorf("%s: read UTM of %s %s: %w", name, lead.Kind, lead.ID, err)
	}
	body := resp.Body
	var wrapped struct {
		ID   json.RawMessage `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &wrapped) == nil && wrapped.ID == nil && bytes.HasPrefix(bytes.TrimSpace(wrapped.Data), []byte("{")) {
		body = wrapped.Data
	}
	var cur rawUTM
	if err := json.Unmarshal(body, &cur); err != nil {
		return false, fmt.Errorf("%s: read UTM of %s %s: %w", name, lead.Kind, lead.ID, err)
	}
	if cur != (rawUTM{}) {
		return false, nil // the record keeps its attribution
	}
	fields := utmFields(utm)
	if len(fields) == 0 {
		return false, nil
	}
	if _, err := s.send(ctx, http.MethodPatch, path, fields); err != nil {
		return false, fmt.Errorf("%s: write UTM of %s %s: %w", name, lead.Kind, lead.ID, err)
	}
	return true, nil
}

// found is a call or an activity as a search lists it.
type found struct {
	ID          flexString `json:"id"`
	ExternalID  flexString `json:"external_id"`
	Note        string     `json:"note"`
	Description string     `json:"description"`
}

// Find returns the id of the call (kind crm.WriteCall) or task
// (crm.WriteTask) created with key, "" when there is none. It searches
// GET /crm/v1/events/call or GET /activities/v1/activities with
// search=key (the SDKs' list filter; which fields it searches is
// unconfirmed) and keeps only an answer that carries Marker(key) in its
// note or description, or, for a call, ExternalID(key) as external_id.
// Keys are unique, so parent is not needed to tell calls apart. Leads and
// UTM writes are crm.ErrNotSearchable: Uspacy has no field to hold a key
// on a lead, and callrouter finds leads by phone. Errors as for Get.
func (s *source) Find(ctx context.Context, kind crm.WriteKind, key string, _ crm.Ref) (string, error) {
	var path string
	switch kind {
	case crm.WriteCall:
		path = "/crm/v1/events/call"
	case crm.WriteTask:
		path = "/activities/v1/activities"
	default:
		return "", crm.ErrNotSearchable
	}
	if key == "" {
		return "", domain.Errorf(domain.EINVALID, "uspacy: find needs a key")
	}
	q := url.Values{"search": {key}, "page": {"1"}, "list": {strconv.Itoa(findPage)}}
	resp, err := s.get(ctx, path, q)
	if err != nil {
		return "", fmt.Errorf("%s: find %s %s: %w", name, kind, key, err)
	}
	var env struct {
		Data []found `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &env); err != nil {
		return "", fmt.Errorf("%s: find %s %s: %w", name, kind, key, err)
	}
	marker, ext := Marker(key), strconv.FormatInt(ExternalID(key), 10)
	for _, f := range env.Data {
		if f.ID == "" {
			continue
		}
		text := f.Description
		if kind == crm.WriteCall {
			text = f.Note
			if string(f.ExternalID) == ext {
				return string(f.ID), nil
			}
		}
		if strings.Contains(text, marker) {
			return string(f.ID), nil
		}
	}
	return "", nil
}

var _ crm.ContactWriter = (*source)(nil)

// CreateContact creates a contact with POST /crm/v1/entities/contacts/:
// title and first_name (the name, else the phone or e-mail), phone and
// email lists, owner, and the mapped fields by field code. Uspacy's tags
// are not set through this call (unconfirmed), so c.Tags is dropped.
// Errors: EINVALID without phone and e-mail; as for Get otherwise.
func (s *source) CreateContact(ctx context.Context, c crm.NewContact) (crm.Ref, error) {
	phone := digits(c.Phone)
	if phone == "" && c.Email == "" {
		return crm.Ref{}, domain.Errorf(domain.EINVALID, "uspacy: a new contact needs a phone or an e-mail")
	}
	title := strings.TrimSpace(c.Name)
	if title == "" {
		title = c.Email
		if phone != "" {
			title = "+" + phone
		}
	}
	body := map[string]any{"title": title, "first_name": title}
	if phone != "" {
		body["phone"] = []map[string]any{{"value": "+" + phone, "type": "work"}}
	}
	if c.Email != "" {
		body["email"] = []map[string]any{{"value": c.Email, "type": "work"}}
	}
	if c.OwnerID != "" {
		body["owner"] = jsonID(c.OwnerID)
	}
	for field, v := range c.Fields {
		if _, set := body[field]; !set {
			body[field] = v
		}
	}
	resp, err := s.send(ctx, http.MethodPost, "/crm/v1/entities/contacts/", body)
	if err != nil {
		return crm.Ref{}, fmt.Errorf("%s: create contact: %w", name, err)
	}
	id, err := createdID("contact", resp.Body)
	if err != nil {
		return crm.Ref{}, err
	}
	return crm.Ref{Kind: domain.KindContact, ID: id}, nil
}

var _ crm.FieldUpdater = (*source)(nil)

// UpdateFields writes fields (field codes) onto a contact, lead or deal
// with PATCH /crm/v1/entities/{table}/{id}, each field at the top level of
// the body as CreateContact sends them: Uspacy changes what is sent and
// keeps the rest. Errors: EINVALID for another kind or a bad id; as for
// Get otherwise (422 for a value Uspacy refuses).
func (s *source) UpdateFields(ctx context.Context, ref crm.Ref, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	t, ok := tableOf(ref.Kind)
	if !ok || ref.Kind == domain.KindCompany {
		return domain.Errorf(domain.EINVALID, "uspacy: mapped fields are written on contacts, leads and deals, not %q", ref.Kind)
	}
	if !isID(ref.ID) {
		return domain.Errorf(domain.EINVALID, "uspacy: %q is not a %s id", ref.ID, ref.Kind)
	}
	body := make(map[string]any, len(fields))
	for k, v := range fields {
		body[k] = v
	}
	path := "/crm/v1/entities/" + t.name + "/" + ref.ID
	if _, err := s.send(ctx, http.MethodPatch, path, body); err != nil {
		return fmt.Errorf("%s: update %s %s: %w", name, ref.Kind, ref.ID, err)
	}
	return nil
}
