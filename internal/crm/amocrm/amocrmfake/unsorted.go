package amocrmfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
)

// UnsortedRequest is an incoming request filed with POST
// /api/v4/leads/unsorted/{sip|forms}, as tests read it back. Its lead and
// contact are not records of the account: like amoCRM's, they stay out of
// lists and searches until a manager accepts the request (which the fake
// does not model).
type UnsortedRequest struct {
	UID        string
	Category   string // sip or forms
	SourceUID  string
	SourceName string
	PipelineID int64
	CreatedAt  int64
	// Metadata is the request's metadata as sent.
	Metadata map[string]any
	LeadID   int64
	LeadName string
	// LeadFields are the lead's custom fields (CustomField's address) and
	// UTM its tracking-data fields.
	LeadFields    map[string]string
	UTM           crm.UTM
	ContactID     int64
	ContactName   string
	ContactPhones []string
	ContactEmail  string
	ContactFields map[string]string
	Tags          []string
}

// Unsorted returns the requests filed, oldest first.
func (s *Server) Unsorted() []UnsortedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unsorted)
}

// required metadata keys per category: what amocrm-api-php's
// SipMetadata::toApi and FormsMetadata::toApi always send (ip, referer and
// visitor_uid of forms only when set, so they are optional here).
var unsortedRequired = map[string][]string{
	"sip":   {"from", "phone", "called_at", "duration", "link", "service_code", "uniq", "is_call_event_needed"},
	"forms": {"form_id", "form_name", "form_page", "form_sent_at"},
}

// unsortedNonEmpty are the metadata keys that must hold a value, not just
// be present (a call's link may be empty when it has no recording).
var unsortedNonEmpty = []string{"from", "phone", "called_at", "service_code", "uniq", "form_id", "form_name", "form_page", "form_sent_at"}

// addUnsorted serves POST /api/v4/leads/unsorted/{category}: only sip and
// forms may be added (amocrm-api-php: "Only forms and sip"); every item
// needs source_name, source_uid and the category's metadata, a source_uid
// (or a call's uniq) already filed is refused, and the embedded lead and
// contact fields are checked like those of POST /api/v4/leads/complex.
func (s *Server) addUnsorted(w http.ResponseWriter, r *http.Request, category string) {
	if _, ok := unsortedRequired[category]; !ok {
		problem(w, http.StatusNotFound, "Not Found", "Not found")
		return
	}
	var in []struct {
		SourceName string         `json:"source_name"`
		SourceUID  string         `json:"source_uid"`
		PipelineID int64          `json:"pipeline_id"`
		CreatedAt  int64          `json:"created_at"`
		Metadata   map[string]any `json:"metadata"`
		RequestID  string         `json:"request_id"`
		Embedded   struct {
			Leads []struct {
				Name         string    `json:"name"`
				CustomFields []inField `json:"custom_fields_values"`
				Embedded     struct {
					Tags []inTag `json:"tags"`
				} `json:"_embedded"`
			} `json:"leads"`
			Contacts []inContact `json:"contacts"`
		} `json:"_embedded"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if len(in) == 0 || len(in) > 50 {
		validationError(w, "0", "InvalidValue", "", "Send 1 to 50 unsorted")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	made := make([]UnsortedRequest, len(in))
	for i, u := range in {
		rid := cmp.Or(u.RequestID, strconv.Itoa(i))
		blank := func(path string) {
			validationError(w, rid, "NotBlank", path, "This value should not be blank.")
		}
		if strings.TrimSpace(u.SourceName) == "" {
			blank("source_name")
			return
		}
		if strings.TrimSpace(u.SourceUID) == "" {
			blank("source_uid")
			return
		}
		if u.Metadata == nil {
			blank("metadata")
			return
		}
		for _, k := range unsortedRequired[category] {
			v, ok := u.Metadata[k]
			if !ok || v == nil || (slices.Contains(unsortedNonEmpty, k) && fieldText(v) == "") {
				blank("metadata." + k)
				return
			}
		}
		if category == "sip" {
			if _, ok := u.Metadata["is_call_event_needed"].(bool); !ok {
				validationError(w, rid, "InvalidType", "metadata.is_call_event_needed", "This value should be of type bool.")
				return
			}
		}
		uniq := fieldText(u.Metadata["uniq"])
		dup := slices.ContainsFunc(s.unsorted, func(x UnsortedRequest) bool {
			return x.SourceUID == u.SourceUID || (category == "sip" && x.Category == "sip" && fieldText(x.Metadata["uniq"]) == uniq)
		}) || slices.ContainsFunc(made[:i], func(x UnsortedRequest) bool { return x.SourceUID == u.SourceUID })
		if dup {
			validationError(w, rid, "NotUnique", "source_uid", "This value is already used.")
			return
		}
		if u.PipelineID < 0 {
			validationError(w, rid, "NotSupportedChoice", "pipeline_id", "The value you selected is not a valid choice.")
			return
		}
		if len(u.Embedded.Leads) > 1 || len(u.Embedded.Contacts) > 1 {
			validationError(w, rid, "InvalidValue", "_embedded", "One lead and one contact at most.")
			return
		}
		m := UnsortedRequest{Category: category, SourceUID: u.SourceUID, SourceName: u.SourceName, PipelineID: u.PipelineID,
			CreatedAt: u.CreatedAt, Metadata: u.Metadata}
		for _, l := range u.Embedded.Leads {
			utm, custom, bad := leadFields(l.CustomFields, "_embedded.leads.0.", rid, crm.UTM{})
			if bad != nil {
				bad.write(w)
				return
			}
			m.LeadName, m.UTM, m.LeadFields, m.Tags = l.Name, utm, custom, tagNames(l.Embedded.Tags)
			m.LeadID = -1
		}
		for _, c := range u.Embedded.Contacts {
			if c.ID != 0 {
				validationError(w, rid, "InvalidValue", "_embedded.contacts.0.id", "A request's contact is a new one.")
				return
			}
			cf, bad := contactFields(c.CustomFields, "_embedded.contacts.0.", rid)
			if bad != nil {
				bad.write(w)
				return
			}
			m.ContactName = strings.TrimSpace(cmp.Or(c.Name, strings.TrimSpace(c.FirstName+" "+c.LastName)))
			m.ContactPhones, m.ContactEmail, m.ContactFields = cf.phones, cf.email, cf.custom
			m.ContactID = -1
		}
		made[i] = m
	}
	var out []any
	for i := range made {
		m := &made[i]
		s.nextID++
		m.UID = fmt.Sprintf("fake-unsorted-%d", s.nextID)
		emb := map[string]any{"leads": []any{}, "contacts": []any{}, "companies": []any{}}
		if m.LeadID != 0 {
			s.nextID++
			m.LeadID = s.nextID
			emb["leads"] = []any{map[string]any{"id": m.LeadID, "_links": selfLinks(r.Host, "/api/v4/leads", m.LeadID)}}
		}
		if m.ContactID != 0 {
			s.nextID++
			m.ContactID = s.nextID
			emb["contacts"] = []any{map[string]any{"id": m.ContactID, "_links": selfLinks(r.Host, "/api/v4/contacts", m.ContactID)}}
		}
		s.unsorted = append(s.unsorted, *m)
		out = append(out, map[string]any{"uid": m.UID, "account_id": AccountID, "request_id": cmp.Or(in[i].RequestID, strconv.Itoa(i)),
			"_links": links{Self: link{"http://" + r.Host + "/api/v4/leads/unsorted/" + m.UID}}, "_embedded": emb})
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{
		"_total_items": len(out),
		"_links":       links{Self: link{"http://" + r.Host + r.URL.Path}},
		"_embedded":    map[string]any{"unsorted": out},
	})
}

// listUnsorted serves GET /api/v4/leads/unsorted with filter[category][],
// order[created_at], limit (≤ 250) and page; 204 when nothing matches.
func (s *Server) listUnsorted(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, ok := paging(w, q, maxLimit)
	if !ok {
		return
	}
	cats := q["filter[category][]"]
	s.mu.Lock()
	var all []UnsortedRequest
	for _, u := range s.unsorted {
		if len(cats) == 0 || slices.Contains(cats, u.Category) {
			all = append(all, u)
		}
	}
	s.mu.Unlock()
	if q.Get("order[created_at]") == "desc" {
		slices.Reverse(all)
	}
	items, next := pageOf(all, limit, page)
	var out []any
	for _, u := range items {
		emb := map[string]any{"leads": []any{}, "contacts": []any{}, "companies": []any{}}
		if u.LeadID != 0 {
			emb["leads"] = []any{map[string]any{"id": u.LeadID}}
		}
		if u.ContactID != 0 {
			emb["contacts"] = []any{map[string]any{"id": u.ContactID}}
		}
		out = append(out, map[string]any{"uid": u.UID, "source_uid": u.SourceUID, "source_name": u.SourceName,
			"category": u.Category, "pipeline_id": cmp.Or(u.PipelineID, PipelineID), "created_at": u.CreatedAt,
			"metadata": u.Metadata, "account_id": AccountID, "_embedded": emb})
	}
	writePage(w, r, "unsorted", out, page, next)
}
