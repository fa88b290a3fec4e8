package zohofake

import (
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crmtest.Writes = (*Server)(nil)

// activityModules are the activity modules the fake accepts records in;
// they are searchable but not listed by the sync endpoints.
var activityModules = map[string]bool{"Calls": true, "Tasks": true}

// maxRecordsIn is how many records one insert or update takes.
const maxRecordsIn = 100

// utmFields map the UTM custom fields of Leads and Deals.
var utmFields = [...]string{"rs_utm_source", "rs_utm_medium", "rs_utm_campaign", "rs_utm_term", "rs_utm_content", "rs_google_client_id"}

// mandatory are the fields Zoho's standard layouts require on insert.
var mandatory = map[string][]string{
	"Leads":    {"Last_Name", "Company"},
	"Contacts": {"Last_Name"},
	"Deals":    {"Deal_Name", "Stage"},
	"Accounts": {"Account_Name"},
	"Calls":    {"Subject", "Call_Type", "Call_Start_Time"},
	"Tasks":    {"Subject"},
}

// keyMarker finds an idempotency key written as "[cr:KEY]".
var keyMarker = regexp.MustCompile(`\[cr:([A-Za-z0-9_-]{1,40})\]`)

// Written returns what clients created through the API, in creation order.
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

// SetUTM sets the UTM custom fields of a lead or deal (empty ones are
// cleared), as an edit: Modified_Time moves on.
func (s *Server) SetUTM(r crm.Ref, u crm.UTM) {
	m, ok := moduleOf(r.Kind)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[m][r.ID]
	if !ok || rec == nil {
		s.t.Errorf("zohofake: SetUTM: no record %s %s", r.Kind, r.ID)
		return
	}
	f := maps.Clone(rec.fields)
	for i, v := range utmStrings(u) {
		if v == "" {
			delete(f, utmFields[i])
		} else {
			f[utmFields[i]] = v
		}
	}
	s.putLocked(m, r.ID, f)
}

// UTM returns the UTM custom fields of a lead or deal, created or Put.
func (s *Server) UTM(r crm.Ref) crm.UTM {
	m, _ := moduleOf(r.Kind)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[m][r.ID]
	if rec == nil {
		return crm.UTM{}
	}
	return utmOf(rec.fields)
}

// FailWrites makes the next n POST, PUT and PATCH API requests fail with
// status and Zoho's error body for it (429 with Retry-After: 1).
func (s *Server) FailWrites(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failWrites = status, n
}

// LeadKind is what the adapter's CreateLead makes: a record in Leads.
func (s *Server) LeadKind() domain.EntityKind { return domain.KindLead }

func utmStrings(u crm.UTM) [6]string {
	return [6]string{u.Source, u.Medium, u.Campaign, u.Term, u.Content, u.ClientID}
}

func utmOf(f map[string]any) crm.UTM {
	var v [6]string
	for i, name := range utmFields {
		v[i], _ = f[name].(string)
	}
	return crm.UTM{Source: v[0], Medium: v[1], Campaign: v[2], Term: v[3], Content: v[4], ClientID: v[5]}
}

// writeFailure answers an injected write failure the way Zoho words it.
func writeFailure(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusBadRequest:
		writeJSON(w, status, map[string]any{"data": []any{map[string]any{"code": "INVALID_DATA",
			"details": map[string]any{"api_name": "Phone", "json_path": "$.data[0].Phone"},
			"message": "invalid data", "status": "error"}}})
	case status == http.StatusUnauthorized:
		writeError(w, status, "INVALID_TOKEN", "invalid oauth token", nil)
	case status == http.StatusForbidden:
		writeError(w, status, "NO_PERMISSION", "permission denied to create", map[string]any{"permissions": []string{"Crm_Implied_Create"}})
	case status == http.StatusNotFound:
		writeError(w, status, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", nil)
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		writeError(w, status, "TOO_MANY_REQUESTS", "Rate limit exceeded, Please try again later", nil)
	case status >= 500:
		writeError(w, status, "INTERNAL_ERROR", "Internal Server Error", nil)
	default:
		writeError(w, status, "INVALID_REQUEST", "the request is not valid", nil)
	}
}

// recordModule validates the {module} of a record path: the synced
// modules and the activity modules.
func recordModule(w http.ResponseWriter, r *http.Request) (string, bool) {
	m := r.PathValue("module")
	if _, ok := moduleKinds[m]; !ok && !activityModules[m] {
		writeError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid",
			map[string]any{"resource_path_index": 0})
		return "", false
	}
	return m, true
}

// readData decodes a write body {"data":[...], "trigger":[...]}.
func readData(w http.ResponseWriter, r *http.Request) ([]map[string]any, bool) {
	var body struct {
		Data    []map[string]any `json:"data"`
		Trigger []string         `json:"trigger"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "body is not a valid JSON", map[string]any{"expected_data_type": "jsonobject"})
		return nil, false
	}
	switch {
	case len(body.Data) == 0:
		writeError(w, http.StatusBadRequest, "MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": "data", "json_path": "$.data"})
		return nil, false
	case len(body.Data) > maxRecordsIn:
		writeError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "limit exceeded", map[string]any{"limit": maxRecordsIn, "api_name": "data"})
		return nil, false
	}
	return body.Data, true
}

// recordError is one record's refusal inside a "data" answer.
func recordError(code, msg, field string, i int, extra map[string]any) map[string]any {
	d := map[string]any{"api_name": field, "json_path": "$.data[" + strconv.Itoa(i) + "]." + field}
	maps.Copy(d, extra)
	return map[string]any{"code": code, "details": d, "message": msg, "status": "error"}
}

// serveCreate is POST /crm/v8/{module}: every record is checked (the
// standard layout's mandatory fields, picklists, formats, lookups) and
// created or refused on its own; 201 when all are created, 400 when none
// is, 207 for a mix.
func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	module, ok := recordModule(w, r)
	if !ok {
		return
	}
	data, ok := readData(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, 0, len(data))
	created := 0
	for i, f := range data {
		if e := s.checkLocked(module, f, i); e != nil {
			out = append(out, e)
			continue
		}
		out = append(out, s.createLocked(module, f))
		created++
	}
	status := http.StatusCreated
	switch created {
	case 0:
		status = http.StatusBadRequest
	case len(data):
	default:
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, map[string]any{"data": out})
}

// Custom fields of the fake account beyond the UTM ones, by API name, as
// an admin would add them: roistat's visit id on Leads and Deals, the
// landing page on Contacts.
const (
	LeadCustomField    = "Roistat_Visit"
	ContactCustomField = "Landing_Page"
)

// CustomField implements crmtest.Writes.
func (s *Server) CustomField(entity string) string {
	if entity == "contact" {
		return ContactCustomField
	}
	return LeadCustomField
}

// customOf returns the custom field name of a record, nil when unset.
func customOf(f map[string]any, name string) map[string]string {
	if v, ok := f[name].(string); ok {
		return map[string]string{name: v}
	}
	return nil
}

// tagsOf returns the names of a record's Tag field.
func tagsOf(f map[string]any) []string {
	ts, _ := f["Tag"].([]any)
	var out []string
	for _, t := range ts {
		if m, ok := t.(map[string]any); ok {
			n, _ := m["name"].(string)
			out = append(out, n)
		}
	}
	return out
}

// checkLocked validates one record of an insert; nil when it is good.
func (s *Server) checkLocked(module string, f map[string]any, i int) map[string]any {
	names := slices.Sorted(maps.Keys(f))
	if name := s.unknownFieldLocked(module, names); name != "" {
		return recordError("INVALID_DATA", "invalid data", name, i, nil)
	}
	for _, name := range mandatory[module] {
		if v, _ := f[name].(string); strings.TrimSpace(v) == "" {
			return recordError("MANDATORY_NOT_FOUND", "required field not found", name, i, nil)
		}
	}
	if o, ok := f["Owner"]; ok {
		if id := lookupID(o); id == "" {
			return recordError("INVALID_DATA", "invalid data", "Owner", i, map[string]any{"expected_data_type": "lookup"})
		}
	}
	if module == "Calls" {
		typ, _ := f["Call_Type"].(string)
		if !slices.Contains([]string{"Inbound", "Outbound", "Missed"}, typ) {
			return recordError("INVALID_DATA", "invalid data", "Call_Type", i, map[string]any{"supported_values": []string{"Inbound", "Outbound", "Missed"}})
		}
		if st, _ := f["Call_Start_Time"].(string); !validTime(st) {
			return recordError("INVALID_DATA", "invalid data", "Call_Start_Time", i, map[string]any{"expected_data_type": "datetime"})
		}
		dur, has := f["Call_Duration"].(string)
		if !has && typ != "Missed" {
			return recordError("MANDATORY_NOT_FOUND", "required field not found", "Call_Duration", i, nil)
		}
		if _, ok := parseMMSS(dur); has && !ok {
			return recordError("INVALID_DATA", "invalid data", "Call_Duration", i, nil)
		}
	}
	if d, ok := f["Due_Date"]; ok {
		if ds, _ := d.(string); !validDate(ds) {
			return recordError("INVALID_DATA", "invalid data", "Due_Date", i, map[string]any{"expected_data_type": "date"})
		}
	}
	if what, ok := f["What_Id"]; ok {
		se, _ := f["$se_module"].(string)
		if _, known := moduleKinds[se]; !known {
			return recordError("MANDATORY_NOT_FOUND", "required field not found", "$se_module", i, nil)
		}
		if id := lookupID(what); id == "" || s.records[se][id] == nil {
			return recordError("INVALID_DATA", "the id given seems to be invalid", "What_Id", i, nil)
		}
	}
	if who, ok := f["Who_Id"]; ok {
		if id := lookupID(who); id == "" || s.records["Contacts"][id] == nil {
			return recordError("INVALID_DATA", "the id given seems to be invalid", "Who_Id", i, nil)
		}
	}
	return nil
}

// createLocked stores a checked record, notes it in Written and returns
// its success item.
func (s *Server) createLocked(module string, in map[string]any) map[string]any {
	f := make(map[string]any, len(in)+2)
	for k, v := range in {
		if k != "id" {
			f[k] = v
		}
	}
	if o, ok := f["Owner"]; ok {
		f["Owner"] = s.ownerLocked(lookupID(o))
	}
	if what, ok := f["What_Id"]; ok {
		se, _ := f["$se_module"].(string)
		id := lookupID(what)
		f["What_Id"] = map[string]any{"id": id, "name": displayName(s.records[se][id])}
	}
	if who, ok := f["Who_Id"]; ok {
		id := lookupID(who)
		f["Who_Id"] = map[string]any{"id": id, "name": displayName(s.records["Contacts"][id])}
	}
	if module == "Leads" || module == "Contacts" {
		first, _ := f["First_Name"].(string)
		last, _ := f["Last_Name"].(string)
		f["Full_Name"] = strings.TrimSpace(first + " " + last)
	}
	id := s.putLocked(module, "", f)
	s.noteLocked(module, id, f)
	rec := s.records[module][id]
	by := map[string]any{"name": "Patricia Boyle", "id": "4150868000000225013"}
	return map[string]any{"code": "SUCCESS", "details": map[string]any{
		"Modified_Time": rec.fields["Modified_Time"], "Modified_By": by, "Created_Time": rec.fields["Created_Time"],
		"id": id, "Created_By": by, "$approval_state": "approved",
	}, "message": "record added", "status": "success"}
}

// noteLocked records a creation in Written.
func (s *Server) noteLocked(module, id string, f map[string]any) {
	s.seq++
	str := func(name string) string { v, _ := f[name].(string); return v }
	owner := lookupID(f["Owner"])
	phone := digits(str("Phone"))
	if phone == "" {
		phone = digits(str("Mobile"))
	}
	switch module {
	case "Contacts":
		s.written.Contacts = append(s.written.Contacts, crmtest.WrittenContact{Seq: s.seq, ID: id, Phone: phone, OwnerID: owner,
			Name: str("Last_Name"), Email: str("Email"), Fields: customOf(f, ContactCustomField), Tags: tagsOf(f)})
	case "Leads":
		s.written.Leads = append(s.written.Leads, crmtest.WrittenLead{Seq: s.seq, Kind: domain.KindLead, ID: id,
			Title: str("Last_Name"), Phone: phone, OwnerID: owner, UTM: utmOf(f), Fields: customOf(f, LeadCustomField),
			Tags: tagsOf(f)})
	case "Deals":
		pipeline := str("Pipeline")
		if pipeline == "" {
			pipeline = lookupID(f["Pipeline"])
		}
		s.written.Leads = append(s.written.Leads, crmtest.WrittenLead{Seq: s.seq, Kind: domain.KindDeal, ID: id,
			Title: str("Deal_Name"), Phone: phone, OwnerID: owner, ContactID: lookupID(f["Contact_Name"]),
			Pipeline: pipeline, UTM: utmOf(f)})
	case "Calls":
		typ := str("Call_Type")
		dur, _ := parseMMSS(str("Call_Duration"))
		c := crmtest.WrittenCall{Seq: s.seq, ID: id, Key: keyOf(str("Subject"), str("Description")),
			Outgoing: typ == "Outbound",
			Answered: typ == "Inbound" || typ == "Outbound" && (str("Call_Result") == "Answered" || dur > 0),
			Phone:    digits(firstValue(str("Description"))), Start: parseStart(str("Call_Start_Time")), Duration: dur,
			Recording: linkValue(str("Description")), UserID: owner, ContactID: lookupID(f["Who_Id"]),
			Text: strings.TrimSpace(strings.TrimSpace(keyMarker.ReplaceAllString(str("Subject"), "")) + "\n" +
				strings.TrimSpace(keyMarker.ReplaceAllString(str("Description"), "")))}
		if se := str("$se_module"); se == "Leads" || se == "Deals" {
			c.LeadID = lookupID(f["What_Id"])
		}
		s.written.Calls = append(s.written.Calls, c)
	case "Tasks":
		t := crmtest.WrittenTask{Seq: s.seq, ID: id, UserID: owner, ContactID: lookupID(f["Who_Id"]),
			Text: strings.TrimSpace(keyMarker.ReplaceAllString(str("Subject"), ""))}
		if se := str("$se_module"); se == "Leads" || se == "Deals" {
			t.LeadID = lookupID(f["What_Id"])
		}
		if d, err := time.Parse(time.DateOnly, str("Due_Date")); err == nil {
			t.Due = d
		}
		s.written.Tasks = append(s.written.Tasks, t)
	}
}

// serveRecord is GET /crm/v8/{module}/{id}: the record with the fields
// asked for (all when none), 204 when there is none.
func (s *Server) serveRecord(w http.ResponseWriter, r *http.Request) {
	module, ok := recordModule(w, r)
	if !ok {
		return
	}
	var fields []string
	if f := r.URL.Query().Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.unknownFieldLocked(module, fields); f != "" {
		refuseUnknownField(w, f)
		return
	}
	rec := s.records[module][r.PathValue("id")]
	if rec == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": []any{project(rec, fields)}})
}

// serveUpdate is PUT /crm/v8/{module}/{id}: the fields given replace the
// record's, and Modified_Time moves on.
func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request) {
	module, ok := recordModule(w, r)
	if !ok {
		return
	}
	data, ok := readData(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[module][id]
	if rec == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"data": []any{map[string]any{"code": "INVALID_DATA",
			"details": map[string]any{"id": id}, "message": "the id given seems to be invalid", "status": "error"}}})
		return
	}
	if name := s.unknownFieldLocked(module, slices.Sorted(maps.Keys(data[0]))); name != "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"data": []any{recordError("INVALID_DATA", "invalid data", name, 0, nil)}})
		return
	}
	f := maps.Clone(rec.fields)
	for k, v := range data[0] {
		switch k {
		case "id", "Created_Time", "Modified_Time":
		case "Owner":
			f[k] = s.ownerLocked(lookupID(v))
		default:
			f[k] = v
		}
	}
	s.putLocked(module, id, f)
	by := map[string]any{"name": "Patricia Boyle", "id": "4150868000000225013"}
	writeJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{"code": "SUCCESS", "details": map[string]any{
		"Modified_Time": f["Modified_Time"], "Modified_By": by, "Created_Time": f["Created_Time"],
		"id": id, "Created_By": by, "$approval_state": "approved",
	}, "message": "record updated", "status": "success"}}})
}

// hasWord reports whether any text field of rec contains word (lower
// case), the way Zoho's word search matches.
func hasWord(rec *record, word string) bool {
	for _, v := range rec.fields {
		if s, ok := v.(string); ok && strings.Contains(strings.ToLower(s), word) {
			return true
		}
	}
	return false
}

// lookupID is the id of a lookup value {"id": ...}, or of a bare id.
func lookupID(v any) string {
	switch x := v.(type) {
	case map[string]any:
		switch id := x["id"].(type) {
		case string:
			return id
		case float64:
			return strconv.FormatFloat(id, 'f', -1, 64)
		}
	case string:
		return x
	}
	return ""
}

// displayName is what Zoho shows for a record in lookups.
func displayName(rec *record) string {
	if rec == nil {
		return ""
	}
	for _, f := range []string{"Full_Name", "Deal_Name", "Account_Name", "Subject"} {
		if v, _ := rec.fields[f].(string); v != "" {
			return v
		}
	}
	return ""
}

// parseStart reads a datetime field with its offset; zero when unreadable.
func parseStart(v string) time.Time {
	t, err := time.Parse(timeLayout, v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func validTime(v string) bool {
	_, err := time.Parse(timeLayout, v)
	return err == nil
}

func validDate(v string) bool {
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}

// parseMMSS parses a Call_Duration "mm:ss" (minutes may exceed 59).
func parseMMSS(v string) (time.Duration, bool) {
	m, sec, ok := strings.Cut(v, ":")
	if !ok {
		return 0, false
	}
	mi, err1 := strconv.Atoi(m)
	si, err2 := strconv.Atoi(sec)
	if err1 != nil || err2 != nil || mi < 0 || si < 0 || si > 59 || len(sec) != 2 {
		return 0, false
	}
	return time.Duration(mi)*time.Minute + time.Duration(si)*time.Second, true
}

// keyOf finds the "[cr:KEY]" marker in the texts given, first match wins.
func keyOf(texts ...string) string {
	for _, t := range texts {
		if m := keyMarker.FindStringSubmatch(t); m != nil {
			return m[1]
		}
	}
	return ""
}

// descLine returns the value of a "Label: value" line of a description.
// firstValue is the value of a call Description's first "label: value"
// line, the client's phone whatever the language of the labels.
func firstValue(desc string) string {
	line, _, _ := strings.Cut(desc, "\n")
	_, v, _ := strings.Cut(line, ": ")
	return strings.TrimSpace(v)
}

// linkValue is the first value of a call Description that is a link: the
// recording.
func linkValue(desc string) string {
	for line := range strings.SplitSeq(desc, "\n") {
		if _, v, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(strings.TrimSpace(v), "http") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Reauthorize ends a Revoke: Creds returns working credentials again.
func (s *Server) Reauthorize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = false
}

// Fields implements crmtest.Writes: the account's custom field
// (LeadCustomField, ContactCustomField) values of a record.
func (s *Server) Fields(r crm.Ref) map[string]string {
	module, ok := moduleOf(r.Kind)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[module][r.ID]
	if rec == nil {
		return nil
	}
	var out map[string]string
	for _, name := range []string{LeadCustomField, ContactCustomField} {
		if v, ok := rec.fields[name].(string); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}
