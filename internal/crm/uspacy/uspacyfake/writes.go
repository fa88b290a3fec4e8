package uspacyfake

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crmtest.Writes = (*Server)(nil)

// Messages of write failures.
const (
	// MsgInvalid answers a create or update the CRM refuses (422), and
	// injected 400 and 422 failures.
	MsgInvalid = "The given data was invalid."
	// MsgServerError answers injected 5xx failures.
	MsgServerError = "Server Error"
)

// firstCreatedID is where the ids of records, calls and activities
// clients create start; ids already Put are skipped.
const firstCreatedID = 700001

// markerRE finds the key the uspacy adapter puts in a call's note or an
// activity's description.
var markerRE = regexp.MustCompile(`\[cr:([A-Za-z0-9_-]{1,40})\]`)

// call is a call event a client created.
type call struct {
	id     int64
	fields map[string]any // as the client sent them, with the CRM's own
}

// activity is an activity (task, call, meeting) a client created.
type activity struct {
	id     int64
	fields map[string]any
}

// Written returns what clients created through the API, in creation order.
func (s *Server) Written() crmtest.Written {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.written
	return crmtest.Written{
		Contacts: append([]crmtest.WrittenContact(nil), w.Contacts...),
		Leads:    append([]crmtest.WrittenLead(nil), w.Leads...),
		Calls:    append([]crmtest.WrittenCall(nil), w.Calls...),
		Tasks:    append([]crmtest.WrittenTask(nil), w.Tasks...),
	}
}

// SetUTM sets the UTM fields of a lead or deal; Uspacy has no field for
// the client id, which is dropped.
func (s *Server) SetUTM(r crm.Ref, u crm.UTM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[r.Kind][r.ID]
	if !ok || (r.Kind != domain.KindLead && r.Kind != domain.KindDeal) {
		s.t.Errorf("uspacyfake: SetUTM on %s %s, which is no lead or deal of the account", r.Kind, r.ID)
		return
	}
	u.ClientID = ""
	rec.utm = u
}

// UTM returns the UTM fields of a lead or deal, zero when there is none.
func (s *Server) UTM(r crm.Ref) crm.UTM {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.records[r.Kind][r.ID]; ok {
		return rec.utm
	}
	return crm.UTM{}
}

// FailWrites makes the next n create or update requests (POST, PUT,
// PATCH outside /auth/) fail with status and Uspacy's error body; 429
// carries Retry-After: 1.
func (s *Server) FailWrites(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failN = status, n
}

// LeadKind is what the adapter's CreateLead makes: a Uspacy lead.
func (s *Server) LeadKind() domain.EntityKind { return domain.KindLead }

// serveWrites answers the write endpoints and the call and activity
// lists; it reports false for requests it leaves to serve.
func (s *Server) serveWrites(w http.ResponseWriter, r *http.Request, path string) bool {
	write := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch
	calls := path == "/crm/v1/events/call" || strings.HasPrefix(path, "/crm/v1/events/call/")
	acts := path == "/activities/v1/activities" || strings.HasPrefix(path, "/activities/v1/activities/")
	switch {
	case strings.HasPrefix(path, "/auth/"):
		return false
	case !write && !calls && !acts:
		return false
	}
	if !s.authorized(w, r) {
		return true
	}
	if write && s.injectedFailure(w) {
		return true
	}
	switch {
	case calls && r.Method == http.MethodGet:
		s.listWritten(w, r, path, "/crm/v1/events/call")
	case acts && r.Method == http.MethodGet:
		s.listWritten(w, r, path, "/activities/v1/activities")
	case path == "/crm/v1/events/call" && r.Method == http.MethodPost:
		s.createCall(w, r)
	case path == "/activities/v1/activities" && r.Method == http.MethodPost:
		s.createActivity(w, r)
	case strings.HasPrefix(path, "/crm/v1/entities/"):
		parts := strings.Split(strings.TrimPrefix(path, "/crm/v1/entities/"), "/")
		kind, ok := kindOf(parts[0])
		switch {
		case ok && len(parts) == 1 && r.Method == http.MethodPost:
			s.createEntity(w, r, kind)
		case ok && len(parts) == 2 && r.Method == http.MethodPatch:
			s.patchEntity(w, r, kind, parts[1])
		default:
			writeError(w, http.StatusNotFound, MsgNotFound)
		}
	default:
		writeError(w, http.StatusNotFound, MsgNotFound)
	}
	return true
}

// injectedFailure answers a write FailWrites asked to fail.
func (s *Server) injectedFailure(w http.ResponseWriter) bool {
	s.mu.Lock()
	status := s.failStatus
	fail := s.failN > 0
	if fail {
		s.failN--
	}
	s.mu.Unlock()
	if !fail {
		return false
	}
	switch {
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		writeError(w, status, MsgTooMany)
	case status == http.StatusUnauthorized:
		writeError(w, status, MsgUnauthenticated)
	case status == http.StatusNotFound:
		writeError(w, status, MsgNotFound)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		writeInvalid(w, status, "data", "Injected failure.")
	case status >= 500:
		writeError(w, status, MsgServerError)
	default:
		writeError(w, status, http.StatusText(status))
	}
	return true
}

// writeInvalid answers a validation failure the way Laravel, which
// Uspacy runs on, does.
func writeInvalid(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, map[string]any{"message": MsgInvalid, "errors": map[string][]string{field: {msg}}})
}

// readObject decodes a JSON object body, numbers kept as json.Number.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		writeInvalid(w, http.StatusUnprocessableEntity, "body", "The body must be a JSON object.")
		return nil, false
	}
	return m, true
}

// text returns a scalar field as text, "" when absent or null.
func text(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// integer reports whether field k is absent or an integer (number or
// numeric string), as Laravel's "integer" rule checks.
func integer(m map[string]any, k string) bool {
	if v, ok := m[k]; !ok || v == nil {
		return true
	}
	_, err := strconv.ParseInt(text(m, k), 10, 64)
	return err == nil
}

// ids returns the ids in a list field ([1,2] or [{"id":1}]).
func ids(v any) []string {
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil
		}
		list = []any{v} // one object instead of a list
	}
	var out []string
	for _, it := range list {
		switch x := it.(type) {
		case map[string]any:
			if id := text(x, "id"); id != "" {
				out = append(out, id)
			}
		case json.Number:
			out = append(out, x.String())
		case string:
			out = append(out, x)
		}
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// newIDLocked returns an id no record, call or activity has.
func (s *Server) newIDLocked() int64 {
	if s.nextID < firstCreatedID {
		s.nextID = firstCreatedID
	}
	for {
		id := s.nextID
		s.nextID++
		taken := false
		for _, byID := range s.records {
			if _, ok := byID[strconv.FormatInt(id, 10)]; ok {
				taken = true
			}
		}
		if !taken {
			return id
		}
	}
}

func (s *Server) nextSeqLocked() int {
	s.writeSeq++
	return s.writeSeq
}

// existsLocked reports whether the record a link names exists.
func (s *Server) existsLocked(kind domain.EntityKind, id string) bool {
	_, ok := s.records[kind][id]
	return ok
}

// phones reads a record's phone field: [{"value","type"}].
func phones(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, it := range list {
		if o, ok := it.(map[string]any); ok {
			if p := text(o, "value"); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func utmOf(m map[string]any) crm.UTM {
	return crm.UTM{Source: text(m, "utm_source"), Medium: text(m, "utm_medium"), Campaign: text(m, "utm_campaign"),
		Term: text(m, "utm_term"), Content: text(m, "utm_content")}
}

// createEntity answers POST /crm/v1/entities/{table}/ with the new
// record, 201.
func (s *Server) createEntity(w http.ResponseWriter, r *http.Request, kind domain.EntityKind) {
	in, ok := readObject(w, r)
	if !ok {
		return
	}
	title := text(in, "title")
	if kind == domain.KindContact && title == "" {
		title = strings.TrimSpace(text(in, "first_name") + " " + text(in, "last_name"))
	}
	switch {
	case title == "":
		writeInvalid(w, http.StatusUnprocessableEntity, "title", "The title field is required.")
		return
	case !integer(in, "owner"):
		writeInvalid(w, http.StatusUnprocessableEntity, "owner", "The owner must be an integer.")
		return
	case !integer(in, "kanban_stage_id"):
		writeInvalid(w, http.StatusUnprocessableEntity, "kanban_stage_id", "The kanban stage id must be an integer.")
		return
	}
	if _, isList := in["phone"].([]any); in["phone"] != nil && !isList {
		writeInvalid(w, http.StatusUnprocessableEntity, "phone", "The phone must be an array.")
		return
	}
	contacts := ids(in["contacts"])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range contacts {
		if !s.existsLocked(domain.KindContact, c) {
			writeInvalid(w, http.StatusUnprocessableEntity, "contacts", "The selected contacts is invalid.")
			return
		}
	}
	now := s.now().Unix()
	e := crm.Entity{Kind: kind, ID: strconv.FormatInt(s.newIDLocked(), 10), Name: title, Phones: phones(in["phone"]),
		OwnerID: text(in, "owner"), Open: true}
	if kind == domain.KindDeal && len(contacts) > 0 {
		e.Phones = append(e.Phones, s.records[domain.KindContact][contacts[0]].e.Phones...)
	}
	rec := &record{e: e, created: now, updated: now, stage: text(in, "kanban_stage_id")}
	if kind == domain.KindLead || kind == domain.KindDeal {
		rec.utm = utmOf(in)
		rec.custom = customOf(in, LeadCustomField)
	} else {
		rec.custom = customOf(in, ContactCustomField)
	}
	if s.records[kind] == nil {
		s.records[kind] = map[string]*record{}
	}
	s.records[kind][e.ID] = rec
	phone := ""
	if len(e.Phones) > 0 {
		phone = digitsOf(e.Phones[0])
	}
	switch kind {
	case domain.KindContact:
		var email string
		if es, _ := in["email"].([]any); len(es) > 0 {
			if m, ok := es[0].(map[string]any); ok {
				email, _ = m["value"].(string)
			}
		}
		rec.email = email
		s.written.Contacts = append(s.written.Contacts, crmtest.WrittenContact{
			Seq: s.nextSeqLocked(), ID: e.ID, Phone: phone, OwnerID: e.OwnerID, Name: title, Email: email,
			Fields: customOf(in, ContactCustomField)})
	case domain.KindLead, domain.KindDeal:
		s.written.Leads = append(s.written.Leads, crmtest.WrittenLead{
			Seq: s.nextSeqLocked(), Kind: kind, ID: e.ID, Title: title, Phone: phone, OwnerID: e.OwnerID,
			ContactID: first(contacts), Pipeline: rec.stage, UTM: rec.utm, Fields: customOf(in, LeadCustomField)})
	}
	writeJSON(w, http.StatusCreated, s.render(rec))
}

// patchEntity answers PATCH /crm/v1/entities/{table}/{id}: the fields
// sent replace the record's, and the record is answered.
func (s *Server) patchEntity(w http.ResponseWriter, r *http.Request, kind domain.EntityKind, id string) {
	in, ok := readObject(w, r)
	if !ok {
		return
	}
	if !integer(in, "owner") {
		writeInvalid(w, http.StatusUnprocessableEntity, "owner", "The owner must be an integer.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.records[kind][id]
	if !found {
		writeError(w, http.StatusNotFound, MsgNotFound)
		return
	}
	if _, ok := in["title"]; ok {
		rec.e.Name = text(in, "title")
	}
	if _, ok := in["owner"]; ok {
		rec.e.OwnerID = text(in, "owner")
	}
	if _, ok := in["phone"]; ok {
		rec.e.Phones = phones(in["phone"])
	}
	if _, ok := in["kanban_stage_id"]; ok {
		rec.stage = text(in, "kanban_stage_id")
	}
	for field, dst := range map[string]*string{"utm_source": &rec.utm.Source, "utm_medium": &rec.utm.Medium,
		"utm_campaign": &rec.utm.Campaign, "utm_term": &rec.utm.Term, "utm_content": &rec.utm.Content} {
		if _, ok := in[field]; ok {
			*dst = text(in, field)
		}
	}
	code := ContactCustomField
	if kind != domain.KindContact {
		code = LeadCustomField
	}
	if set := customOf(in, code); set != nil {
		if rec.custom == nil {
			rec.custom = map[string]string{}
		}
		maps.Copy(rec.custom, set)
	}
	rec.updated = max(s.now().Unix(), rec.updated+1)
	writeJSON(w, http.StatusOK, s.render(rec))
}

// Fields implements crmtest.Writes: the account's custom field values of
// a record.
func (s *Server) Fields(r crm.Ref) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.records[r.Kind][r.ID]; rec != nil {
		return maps.Clone(rec.custom)
	}
	return nil
}

// linkedLocked checks that every record the fields link exists; it
// answers 422 and reports false when one does not.
func (s *Server) linkedLocked(w http.ResponseWriter, links map[domain.EntityKind][]string) bool {
	for kind, list := range links {
		for _, id := range list {
			if !s.existsLocked(kind, id) {
				t, _ := tableOf(kind)
				writeInvalid(w, http.StatusUnprocessableEntity, t, "The selected "+string(kind)+" is invalid.")
				return false
			}
		}
	}
	return true
}

// keyOf returns the key the adapter marked text with.
func keyOf(text string) string {
	if m := markerRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// createCall answers POST /crm/v1/events/call with the new call, 201.
func (s *Server) createCall(w http.ResponseWriter, r *http.Request) {
	in, ok := readObject(w, r)
	if !ok {
		return
	}
	callType := text(in, "call_type")
	switch {
	case callType != "incoming" && callType != "outgoing":
		writeInvalid(w, http.StatusUnprocessableEntity, "call_type", "The selected call type is invalid.")
		return
	case text(in, "integration_code") == "":
		writeInvalid(w, http.StatusUnprocessableEntity, "integration_code", "The integration code field is required.")
		return
	}
	for _, f := range []string{"external_id", "begin_time", "end_time", "duration", "lead_id", "deal_id", "contact_id", "company_id"} {
		if !integer(in, f) {
			writeInvalid(w, http.StatusUnprocessableEntity, f, "The "+strings.ReplaceAll(f, "_", " ")+" must be an integer.")
			return
		}
	}
	links := map[domain.EntityKind][]string{}
	for _, k := range []domain.EntityKind{domain.KindLead, domain.KindDeal, domain.KindContact, domain.KindCompany} {
		if id := text(in, string(k)+"_id"); id != "" {
			links[k] = append(links[k], id)
		}
	}
	links[domain.KindContact] = append(links[domain.KindContact], ids(in["contacts"])...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.linkedLocked(w, links) {
		return
	}
	c := &call{id: s.newIDLocked(), fields: in}
	in["id"] = c.id
	in["created_at"] = s.now().Unix()
	s.calls = append(s.calls, c)
	phone := text(in, "from")
	if callType == "outgoing" {
		phone = text(in, "to")
	}
	key := keyOf(text(in, "note"))
	if key == "" {
		key = text(in, "external_id")
	}
	dur, _ := strconv.ParseInt(text(in, "duration"), 10, 64)
	begin, _ := strconv.ParseInt(text(in, "begin_time"), 10, 64)
	leadID := text(in, "lead_id")
	if leadID == "" {
		leadID = text(in, "deal_id")
	}
	contactID := text(in, "contact_id")
	if contactID == "" {
		contactID = first(ids(in["contacts"]))
	}
	s.written.Calls = append(s.written.Calls, crmtest.WrittenCall{
		Seq: s.nextSeqLocked(), ID: strconv.FormatInt(c.id, 10), Key: key, Outgoing: callType == "outgoing",
		Answered: text(in, "ended_call_status") == "answered", Phone: digitsOf(phone), Start: time.Unix(begin, 0).UTC(),
		Duration: time.Duration(dur) * time.Second, Recording: text(in, "call_record_link"),
		UserID: first(ids(in["employees"])), LeadID: leadID, ContactID: contactID,
		Text: strings.TrimSpace(markerRE.ReplaceAllString(text(in, "subject")+"\n"+text(in, "note"), "")),
	})
	writeJSON(w, http.StatusCreated, in)
}

// entitiesOf reads an activity's crm_entities: {"leads":[{"id":…}],…},
// or one object per table as the Go SDK reads it.
func entitiesOf(v any) map[domain.EntityKind][]string {
	out := map[domain.EntityKind][]string{}
	m, _ := v.(map[string]any)
	for table, list := range m {
		kind, ok := kindOf(table)
		if !ok {
			continue
		}
		out[kind] = append(out[kind], ids(list)...)
	}
	return out
}

// createActivity answers POST /activities/v1/activities with the new
// activity, 201.
func (s *Server) createActivity(w http.ResponseWriter, r *http.Request) {
	in, ok := readObject(w, r)
	if !ok {
		return
	}
	switch text(in, "type") {
	case "task", "call", "meeting", "chat", "email":
	default:
		writeInvalid(w, http.StatusUnprocessableEntity, "type", "The selected type is invalid.")
		return
	}
	if text(in, "title") == "" {
		writeInvalid(w, http.StatusUnprocessableEntity, "title", "The title field is required.")
		return
	}
	for _, f := range []string{"start_time", "end_time", "responsible_id"} {
		if !integer(in, f) {
			writeInvalid(w, http.StatusUnprocessableEntity, f, "The "+strings.ReplaceAll(f, "_", " ")+" must be an integer.")
			return
		}
	}
	if v, ok := in["crm_entities"]; ok && v != nil {
		if _, isObj := v.(map[string]any); !isObj {
			writeInvalid(w, http.StatusUnprocessableEntity, "crm_entities", "The crm entities must be an object.")
			return
		}
	}
	links := entitiesOf(in["crm_entities"])
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.linkedLocked(w, links) {
		return
	}
	a := &activity{id: s.newIDLocked(), fields: in}
	in["id"] = a.id
	in["created_at"] = s.now().Unix()
	if _, ok := in["status"]; !ok {
		in["status"] = "planned"
	}
	s.activities = append(s.activities, a)
	desc := text(in, "description")
	txt := strings.TrimSpace(markerRE.ReplaceAllString(desc, ""))
	if txt == "" {
		txt = text(in, "title")
	}
	end, _ := strconv.ParseInt(text(in, "end_time"), 10, 64)
	leadID := first(links[domain.KindLead])
	if leadID == "" {
		leadID = first(links[domain.KindDeal])
	}
	s.written.Tasks = append(s.written.Tasks, crmtest.WrittenTask{
		Seq: s.nextSeqLocked(), ID: strconv.FormatInt(a.id, 10), Text: txt, UserID: text(in, "responsible_id"),
		LeadID: leadID, ContactID: first(links[domain.KindContact]), Due: time.Unix(end, 0).UTC(),
	})
	writeJSON(w, http.StatusCreated, in)
}

// listWritten answers GET of the call or activity list (search, page,
// list; newest first) or of one of them by id.
func (s *Server) listWritten(w http.ResponseWriter, r *http.Request, path, base string) {
	s.mu.Lock()
	var all []map[string]any
	if base == "/crm/v1/events/call" {
		for _, c := range s.calls {
			all = append(all, c.fields)
		}
	} else {
		for _, a := range s.activities {
			all = append(all, a.fields)
		}
	}
	// Render while locked: the maps are the stored ones.
	rendered := make([]map[string]any, 0, len(all))
	for _, m := range all {
		b, _ := json.Marshal(m)
		var cp map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		_ = dec.Decode(&cp)
		rendered = append(rendered, cp)
	}
	s.mu.Unlock()

	if id := strings.TrimPrefix(path, base+"/"); id != path {
		for _, m := range rendered {
			if text(m, "id") == id {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		writeError(w, http.StatusNotFound, MsgNotFound)
		return
	}
	q := r.URL.Query()
	search := strings.ToLower(strings.TrimSpace(q.Get("search")))
	var hits []map[string]any
	for _, m := range rendered {
		if search == "" || searchMatches(m, search) {
			hits = append(hits, m)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return lessID(text(hits[j], "id"), text(hits[i], "id")) })
	page := max(atoi(q.Get("page"), 1), 1)
	per := min(max(atoi(q.Get("list"), 20), 1), 100)
	lo, hi := min((page-1)*per, len(hits)), min(page*per, len(hits))
	writeJSON(w, http.StatusOK, envelope(r, hits[lo:hi], page, per, len(hits)))
}

// searchMatches reports whether a call or activity has search in its
// title, subject, note, description, numbers or external id.
func searchMatches(m map[string]any, search string) bool {
	for _, f := range []string{"title", "subject", "note", "description", "from", "to"} {
		if strings.Contains(strings.ToLower(text(m, f)), search) {
			return true
		}
	}
	return text(m, "external_id") == search
}

// Reauthorize ends a Revoke: Creds returns working credentials again.
func (s *Server) Reauthorize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = false
}

// Custom fields of the fake account, by field code: roistat's visit id on
// leads and deals, the landing page on contacts.
const (
	LeadCustomField    = "roistat"
	ContactCustomField = "landing"
)

// CustomField implements crmtest.Writes.
func (s *Server) CustomField(entity string) string {
	if entity == "contact" {
		return ContactCustomField
	}
	return LeadCustomField
}

// customOf returns the custom field code of a created record, nil when
// unset.
func customOf(in map[string]any, code string) map[string]string {
	if v, ok := in[code].(string); ok {
		return map[string]string{code: v}
	}
	return nil
}
