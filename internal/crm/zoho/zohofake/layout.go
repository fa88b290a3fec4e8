package zohofake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// field is one field of a module's layout, as GET /settings/fields lists
// it.
type field struct {
	api    string
	typ    string // data_type: text, phone, lookup, ownerlookup, picklist, ...
	custom bool
}

// standardLayouts are the fields of Zoho's standard layouts the fake
// knows, per module (reference/crm-apis.md §2 and §8): Deals have no
// phone field, they reach their customer through the Contact_Name and
// Account_Name lookups; Accounts have one phone (Phone). Every account
// the fake starts also has the six rs_ custom fields on Leads and Deals,
// as the tenants' layouts do (seed 000); RemoveField takes them away.
var standardLayouts = map[string][]field{
	"Leads": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Full_Name", typ: "text"}, {api: "First_Name", typ: "text"},
		{api: "Last_Name", typ: "text"}, {api: "Company", typ: "text"}, {api: "Email", typ: "email"},
		{api: "Phone", typ: "phone"}, {api: "Mobile", typ: "phone"}, {api: "Lead_Status", typ: "picklist"},
		{api: "Lead_Source", typ: "picklist"}, {api: "Description", typ: "textarea"},
		{api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
		{api: "Fax", typ: "text"}, {api: "Street", typ: "text"}, {api: "City", typ: "text"}, {api: "State", typ: "text"},
		{api: "Zip_Code", typ: "text"}, {api: "Country", typ: "text"}, {api: "Email_Opt_Out", typ: "boolean"},
	},
	"Deals": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Deal_Name", typ: "text"}, {api: "Stage", typ: "picklist"},
		{api: "Contact_Name", typ: "lookup"}, {api: "Account_Name", typ: "lookup"}, {api: "Pipeline", typ: "picklist"},
		{api: "Amount", typ: "currency"}, {api: "Closing_Date", typ: "date"}, {api: "Description", typ: "textarea"},
		{api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
	},
	"Contacts": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Full_Name", typ: "text"}, {api: "First_Name", typ: "text"},
		{api: "Last_Name", typ: "text"}, {api: "Email", typ: "email"}, {api: "Phone", typ: "phone"},
		{api: "Mobile", typ: "phone"}, {api: "Home_Phone", typ: "phone"}, {api: "Other_Phone", typ: "phone"},
		{api: "Account_Name", typ: "lookup"}, {api: "Date_of_Birth", typ: "date"}, {api: "Description", typ: "textarea"},
		{api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
		{api: "Fax", typ: "text"}, {api: "Mailing_Street", typ: "text"}, {api: "Mailing_City", typ: "text"},
		{api: "Mailing_State", typ: "text"}, {api: "Mailing_Zip", typ: "text"}, {api: "Mailing_Country", typ: "text"},
		{api: "Email_Opt_Out", typ: "boolean"},
	},
	"Accounts": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Account_Name", typ: "text"}, {api: "Phone", typ: "phone"},
		{api: "Fax", typ: "text"}, {api: "Website", typ: "website"}, {api: "Description", typ: "textarea"},
		{api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
	},
	"Calls": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Subject", typ: "text"}, {api: "Call_Type", typ: "picklist"},
		{api: "Call_Start_Time", typ: "datetime"}, {api: "Call_Duration", typ: "text"}, {api: "Call_Result", typ: "picklist"},
		{api: "Call_Purpose", typ: "picklist"}, {api: "Description", typ: "textarea"}, {api: "Who_Id", typ: "lookup"},
		{api: "What_Id", typ: "lookup"}, {api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
	},
	"Tasks": {
		{api: "Owner", typ: "ownerlookup"}, {api: "Subject", typ: "text"}, {api: "Due_Date", typ: "date"},
		{api: "Status", typ: "picklist"}, {api: "Priority", typ: "picklist"}, {api: "Description", typ: "textarea"},
		{api: "Who_Id", typ: "lookup"}, {api: "What_Id", typ: "lookup"},
		{api: "Created_Time", typ: "datetime"}, {api: "Modified_Time", typ: "datetime"},
	},
}

// defaultLayouts returns the layouts a new fake account starts with.
func defaultLayouts() map[string][]field {
	out := make(map[string][]field, len(standardLayouts))
	for m, fs := range standardLayouts {
		out[m] = slices.Clone(fs)
		if m == "Leads" || m == "Deals" {
			for _, f := range utmFields {
				out[m] = append(out[m], field{api: f, typ: "text", custom: true})
			}
			out[m] = append(out[m], field{api: LeadCustomField, typ: "text", custom: true})
		}
		if m == "Contacts" {
			out[m] = append(out[m], field{api: ContactCustomField, typ: "text", custom: true})
		}
		if m == "Leads" || m == "Deals" || m == "Contacts" {
			// Records take tags on insert as Tag: [{"name": …}].
			out[m] = append(out[m], field{api: "Tag", typ: "text"})
		}
	}
	return out
}

// AddField adds a custom field to a module's layout (dataType as Zoho
// names it: "phone", "text", ...). A phone field is searched, listed and
// filled by Put like the standard ones.
func (s *Server) AddField(module, apiName, dataType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.layouts[module]; !ok {
		s.t.Errorf("zohofake: AddField: unknown module %q", module)
		return
	}
	if s.hasFieldLocked(module, apiName) {
		return
	}
	s.layouts[module] = append(s.layouts[module], field{api: apiName, typ: dataType, custom: true})
}

// RemoveField removes a field from a module's layout, as an admin
// deleting a custom field (or an account that never created it): reads
// asking for it and writes carrying it are refused with INVALID_DATA.
func (s *Server) RemoveField(module, apiName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.layouts[module] = slices.DeleteFunc(s.layouts[module], func(f field) bool { return f.api == apiName })
}

// hasFieldLocked reports whether module's layout has the field. System
// fields ("id", "$converted", "$se_module", ...) are always there.
func (s *Server) hasFieldLocked(module, api string) bool {
	if api == "id" || strings.HasPrefix(api, "$") {
		return true
	}
	return slices.ContainsFunc(s.layouts[module], func(f field) bool { return f.api == api })
}

// phoneFieldsLocked are the phone fields of module's layout, in layout
// order (the order Put fills them).
func (s *Server) phoneFieldsLocked(module string) []string {
	var out []string
	for _, f := range s.layouts[module] {
		if f.typ == "phone" {
			out = append(out, f.api)
		}
	}
	return out
}

// unknownFieldLocked returns the first of fields module's layout lacks,
// "" when it has them all.
func (s *Server) unknownFieldLocked(module string, fields []string) string {
	for _, f := range fields {
		if !s.hasFieldLocked(module, f) {
			return f
		}
	}
	return ""
}

// refuseUnknownField answers a read whose fields= names a field the
// layout lacks, as Zoho does: 400 INVALID_DATA naming the field
// (details.api_name). Unconfirmed: the exact message text.
func refuseUnknownField(w http.ResponseWriter, name string) {
	writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"api_name": name})
}

// RefuseFieldMetadata makes GET /settings/fields answer 401
// OAUTH_SCOPE_MISMATCH, as for a token granted without the
// ZohoCRM.settings.fields.READ scope.
func (s *Server) RefuseFieldMetadata() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseMeta = true
}

// serveFields is GET /crm/v8/settings/fields?module=…: the module's
// layout fields.
func (s *Server) serveFields(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	refuse := s.refuseMeta
	s.mu.Unlock()
	if refuse {
		writeError(w, http.StatusUnauthorized, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", nil)
		return
	}
	module := r.URL.Query().Get("module")
	if module == "" {
		writeError(w, http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
			map[string]any{"param_name": "module"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	layout, ok := s.layouts[module]
	if !ok {
		writeError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid",
			map[string]any{"param_name": "module"})
		return
	}
	out := make([]map[string]any, 0, len(layout))
	for i, f := range layout {
		jsonType := "string"
		switch f.typ {
		case "lookup", "ownerlookup":
			jsonType = "jsonobject"
		}
		out = append(out, map[string]any{
			"api_name": f.api, "field_label": strings.ReplaceAll(f.api, "_", " "), "display_label": strings.ReplaceAll(f.api, "_", " "),
			"data_type": f.typ, "json_type": jsonType, "custom_field": f.custom, "visible": true,
			"id": strconv.Itoa(4150868000000002000 + i),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"fields": out})
}

// serveRelated is GET /crm/v8/{Contacts|Accounts}/{id}/Deals: the deals
// whose Contact_Name (Account_Name) is the record, 204 when none. Other
// related lists are not served.
func (s *Server) serveRelated(w http.ResponseWriter, r *http.Request) {
	parent, related := r.PathValue("module"), r.PathValue("related")
	var lookupField string
	switch {
	case parent == "Contacts" && related == "Deals":
		lookupField = "Contact_Name"
	case parent == "Accounts" && related == "Deals":
		lookupField = "Account_Name"
	default:
		writeError(w, http.StatusBadRequest, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", nil)
		return
	}
	q := r.URL.Query()
	if q.Get("fields") == "" {
		writeError(w, http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", map[string]any{"param_name": "fields"})
		return
	}
	fields := strings.Split(q.Get("fields"), ",")
	perPage, bad := intParam(q, "per_page", maxPerPage, 1, maxPerPage)
	page, bad2 := intParam(q, "page", 1, 1, discreteLimit/maxPerPage)
	if bad != "" || bad2 != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad + bad2})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.unknownFieldLocked(related, fields); f != "" {
		refuseUnknownField(w, f)
		return
	}
	id := r.PathValue("id")
	var sel []*record
	for _, rec := range s.records[related] {
		if lookupID(rec.fields[lookupField]) == id {
			sel = append(sel, rec)
		}
	}
	slices.SortFunc(sel, func(a, b *record) int { return compareIDs(a.id, b.id) })
	offset := (page - 1) * perPage
	if offset >= len(sel) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	end := min(offset+perPage, len(sel))
	data := make([]map[string]any, 0, end-offset)
	for _, rec := range sel[offset:end] {
		data = append(data, project(rec, fields))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "info": map[string]any{
		"per_page": perPage, "count": len(data), "page": page, "more_records": end < len(sel),
	}})
}
