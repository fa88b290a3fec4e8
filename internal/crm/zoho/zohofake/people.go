package zohofake

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// serveUpsert is POST /crm/v8/{module}/upsert: up to 100 records, each
// matched on duplicate_check_fields (default: the module's unique fields,
// Email for Leads and Contacts, Account_Name for Accounts) and updated, or
// checked like an insert and created. Answers 200 with per-record
// "action":"insert"|"update", 207 when some are refused, 400 when all are.
func (s *Server) serveUpsert(w http.ResponseWriter, r *http.Request) {
	module, ok := s.module(w, r)
	if !ok {
		return
	}
	var body struct {
		Data    []map[string]any `json:"data"`
		Dup     []string         `json:"duplicate_check_fields"`
		Trigger []string         `json:"trigger"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "body is not a valid JSON", map[string]any{"expected_data_type": "jsonobject"})
		return
	}
	switch {
	case len(body.Data) == 0:
		writeError(w, http.StatusBadRequest, "MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": "data", "json_path": "$.data"})
		return
	case len(body.Data) > maxRecordsIn:
		writeError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "limit exceeded", map[string]any{"limit": maxRecordsIn, "api_name": "data"})
		return
	}
	dup := body.Dup
	if len(dup) == 0 {
		dup = []string{"Email"}
		if module == "Accounts" {
			dup = []string{"Account_Name"}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name := s.unknownFieldLocked(module, dup); name != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"api_name": name, "json_path": "$.duplicate_check_fields"})
		return
	}
	out := make([]any, 0, len(body.Data))
	done := 0
	for i, f := range body.Data {
		if name := s.unknownFieldLocked(module, slices.Sorted(maps.Keys(f))); name != "" {
			out = append(out, recordError("INVALID_DATA", "invalid data", name, i, nil))
			continue
		}
		if acc, ok := f["Account_Name"]; ok && module != "Accounts" {
			id := lookupID(acc)
			if id == "" || s.records["Accounts"][id] == nil {
				out = append(out, recordError("INVALID_DATA", "the id given seems to be invalid", "Account_Name", i, nil))
				continue
			}
			f["Account_Name"] = map[string]any{"id": id, "name": s.records["Accounts"][id].fields["Account_Name"]}
		}
		if o, ok := f["Owner"]; ok {
			if lookupID(o) == "" {
				out = append(out, recordError("INVALID_DATA", "invalid data", "Owner", i, map[string]any{"expected_data_type": "lookup"}))
				continue
			}
			f["Owner"] = s.ownerLocked(lookupID(o))
		}
		if d, ok := f["Date_of_Birth"]; ok && d != nil {
			if ds, _ := d.(string); !validDate(ds) {
				out = append(out, recordError("INVALID_DATA", "invalid data", "Date_of_Birth", i, map[string]any{"expected_data_type": "date"}))
				continue
			}
		}
		if rec := s.matchLocked(module, dup, f); rec != nil {
			nf := maps.Clone(rec.fields)
			for k, v := range f {
				if k != "id" && k != "Created_Time" && k != "Modified_Time" {
					nf[k] = v
				}
			}
			fullName(module, nf)
			s.putLocked(module, rec.id, nf)
			out = append(out, upserted(rec, "update"))
			done++
			continue
		}
		if e := s.checkLocked(module, f, i); e != nil {
			out = append(out, e)
			continue
		}
		item := s.createLocked(module, f)
		item["action"] = "insert"
		out = append(out, item)
		done++
	}
	status := http.StatusOK
	switch done {
	case 0:
		status = http.StatusBadRequest
	case len(body.Data):
	default:
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, map[string]any{"data": out})
}

func fullName(module string, f map[string]any) {
	if module == "Leads" || module == "Contacts" {
		first, _ := f["First_Name"].(string)
		last, _ := f["Last_Name"].(string)
		f["Full_Name"] = strings.TrimSpace(first + " " + last)
	}
}

func upserted(rec *record, action string) map[string]any {
	by := map[string]any{"name": "Patricia Boyle", "id": "4150868000000225013"}
	return map[string]any{"code": "SUCCESS", "duplicate_field": nil, "action": action, "details": map[string]any{
		"Modified_Time": rec.fields["Modified_Time"], "Modified_By": by, "Created_Time": rec.fields["Created_Time"],
		"id": rec.id, "Created_By": by}, "message": "record updated", "status": "success"}
}

// matchLocked finds the record of module whose dup fields all equal f's
// (e-mails case-insensitively); converted leads are not matched.
func (s *Server) matchLocked(module string, dup []string, f map[string]any) *record {
	var ids []string
	for id, rec := range s.records[module] {
		if !convertedMatches(rec, module, "") {
			continue
		}
		all := true
		for _, d := range dup {
			a, _ := f[d].(string)
			b, _ := rec.fields[d].(string)
			if a == "" || !strings.EqualFold(a, b) {
				all = false
				break
			}
		}
		if all {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.SortFunc(ids, compareIDs)
	return s.records[module][ids[0]]
}

// serveConvert is POST /crm/v8/Leads/{id}/actions/convert: the lead
// becomes a contact (its personal fields, the address as the mailing
// address) and, when it has a Company, an account found or created by
// name; the lead is marked $converted and leaves the lists. A lead
// converted already, or unknown, is refused with INVALID_DATA.
func (s *Server) serveConvert(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("module") != "Leads" {
		writeError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid", map[string]any{"resource_path_index": 0})
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	lead := s.records["Leads"][id]
	if lead == nil {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "the id given seems to be invalid", map[string]any{"id": id})
		return
	}
	if conv, _ := lead.fields["$converted"].(bool); conv {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "the lead has already been converted", map[string]any{"id": id})
		return
	}
	lf := lead.fields
	cf := map[string]any{}
	for _, k := range []string{"First_Name", "Last_Name", "Email", "Phone", "Mobile", "Fax", "Email_Opt_Out", "Owner"} {
		if v, ok := lf[k]; ok {
			cf[k] = v
		}
	}
	for from, to := range map[string]string{"Street": "Mailing_Street", "City": "Mailing_City", "State": "Mailing_State",
		"Zip_Code": "Mailing_Zip", "Country": "Mailing_Country"} {
		if v, ok := lf[from]; ok {
			cf[to] = v
		}
	}
	var account any
	if company, _ := lf["Company"].(string); company != "" {
		acc := s.matchLocked("Accounts", []string{"Account_Name"}, map[string]any{"Account_Name": company})
		accID := ""
		if acc != nil {
			accID = acc.id
		} else {
			accID = s.putLocked("Accounts", "", map[string]any{"Account_Name": company, "Owner": lf["Owner"]})
		}
		cf["Account_Name"] = map[string]any{"id": accID, "name": company}
		account = map[string]any{"id": accID, "name": company}
	}
	fullName("Contacts", cf)
	contactID := s.putLocked("Contacts", "", cf)
	nl := maps.Clone(lf)
	nl["$converted"] = true
	nl["$converted_detail"] = map[string]any{"contact": contactID}
	s.putLocked("Leads", id, nl)
	writeJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{"code": "SUCCESS", "status": "success",
		"message": "Successfully converted", "details": map[string]any{
			"Contacts": map[string]any{"id": contactID, "name": cf["Full_Name"]}, "Accounts": account, "Deals": nil}}}})
}
