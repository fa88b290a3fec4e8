package amocrm

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crm.UnsortedWriter = (*source)(nil)

// unsortedSource is the source_name amoCRM shows on requests callrouter
// files.
const unsortedSource = "callrouter"

// findUnsortedPages bounds how many pages (250 requests each, newest
// first) Find reads looking for an earlier request.
const findUnsortedPages = 20

// sipMetadata is the metadata of a call request
// (amocrm-api-php SipMetadata::toApi).
type sipMetadata struct {
	From              string `json:"from"`
	Phone             string `json:"phone"`
	CalledAt          int64  `json:"called_at"`
	Duration          int64  `json:"duration"`
	Link              string `json:"link"`
	ServiceCode       string `json:"service_code"`
	Uniq              string `json:"uniq"`
	IsCallEventNeeded bool   `json:"is_call_event_needed"`
}

// formsMetadata is the metadata of a form request
// (amocrm-api-php FormsMetadata::toApi).
type formsMetadata struct {
	FormID     string `json:"form_id"`
	FormName   string `json:"form_name"`
	FormPage   string `json:"form_page"`
	IP         string `json:"ip,omitempty"`
	FormSentAt int64  `json:"form_sent_at"`
	Referer    string `json:"referer,omitempty"`
}

// unsortedLead is the lead embedded in a request.
type unsortedLead struct {
	Name         string       `json:"name"`
	CustomFields []fieldValue `json:"custom_fields_values,omitempty"`
	Embedded     *contactTags `json:"_embedded,omitempty"`
}

// newUnsorted is one item of a POST /api/v4/leads/unsorted/{category} body.
type newUnsorted struct {
	SourceName string `json:"source_name"`
	SourceUID  string `json:"source_uid"`
	PipelineID int64  `json:"pipeline_id,omitempty"`
	CreatedAt  int64  `json:"created_at"`
	Metadata   any    `json:"metadata"`
	Embedded   struct {
		Leads    []unsortedLead `json:"leads"`
		Contacts []newContact   `json:"contacts"`
	} `json:"_embedded"`
	RequestID string `json:"request_id"`
}

// CreateUnsorted files an incoming request with POST
// /api/v4/leads/unsorted/sip (a call) or /api/v4/leads/unsorted/forms (a
// form): source_name "callrouter", source_uid = u.Key, pipeline_id when
// set, created_at, the category's metadata, and one lead (u.Title, the
// mapped fields, UTM fields, tags) and one contact (u.Name, PHONE, EMAIL,
// the mapped contact fields, tags) embedded. For calls the metadata's uniq
// is u.Key too and is_call_event_needed is true, so amoCRM adds the call
// to the request itself. Errors: EINVALID for another category, a call
// without a phone, a form without phone and e-mail or a pipeline that is
// not an amoCRM id; the CRM's errors (a 400 validation error for a
// missing or duplicate field).
func (s *source) CreateUnsorted(ctx context.Context, u crm.NewUnsorted) (crm.Unsorted, error) {
	pipeline, err := optID("pipeline", u.Pipeline)
	if err != nil {
		return crm.Unsorted{}, err
	}
	number := digits(u.Phone)
	at := u.At
	if at.IsZero() {
		at = s.now()
	}
	in := newUnsorted{SourceName: unsortedSource, SourceUID: u.Key, PipelineID: pipeline, CreatedAt: at.Unix(), RequestID: "0"}
	switch u.Category {
	case crm.UnsortedSIP:
		if number == "" {
			return crm.Unsorted{}, domain.Errorf(domain.EINVALID, "%s: a call request needs the client's phone", name)
		}
		in.Metadata = sipMetadata{From: "+" + number, Phone: cmpOr(u.Line, "+"+number), CalledAt: at.Unix(),
			Duration: int64(u.Duration / time.Second), Link: u.Recording, ServiceCode: unsortedSource, Uniq: u.Key,
			IsCallEventNeeded: true}
	case crm.UnsortedForms:
		if number == "" && u.Email == "" {
			return crm.Unsorted{}, domain.Errorf(domain.EINVALID, "%s: a form request needs the client's phone or e-mail", name)
		}
		in.Metadata = formsMetadata{FormID: cmp.Or(u.FormID, unsortedSource), FormName: cmp.Or(u.FormName, "Website form"),
			FormPage: cmp.Or(u.FormPage, "-"), IP: u.IP, FormSentAt: at.Unix(), Referer: u.Referer}
	default:
		return crm.Unsorted{}, domain.Errorf(domain.EINVALID, "%s: unsorted category must be sip or forms, got %q", name, u.Category)
	}
	lead := unsortedLead{Name: u.Title, CustomFields: append(utmFields(u.UTM), mappedFields(u.Fields)...)}
	contact := newContact{Name: cmpOr(u.Name, "+"+number, u.Email), CustomFields: mappedFields(u.ContactFields)}
	if len(u.Tags) > 0 {
		lead.Embedded = &contactTags{Tags: tagsOf(u.Tags)}
		contact.Embedded = &contactTags{Tags: tagsOf(u.Tags)}
	}
	var own []fieldValue
	if number != "" {
		own = append(own, phoneField(number))
	}
	if u.Email != "" {
		own = append(own, fieldValue{FieldCode: "EMAIL", Values: []valueEntry{{Value: u.Email, EnumCode: "WORK"}}})
	}
	contact.CustomFields = append(own, contact.CustomFields...)
	in.Embedded.Leads = []unsortedLead{lead}
	in.Embedded.Contacts = []newContact{contact}
	path := "/api/v4/leads/unsorted/" + u.Category
	resp, err := s.postJSON(ctx, http.MethodPost, path, []newUnsorted{in})
	if err != nil {
		return crm.Unsorted{}, fmt.Errorf("create unsorted %s request: %w", u.Category, err)
	}
	var a struct {
		Embedded struct {
			Unsorted []struct {
				UID      string `json:"uid"`
				Embedded struct {
					Leads    []apiRef `json:"leads"`
					Contacts []apiRef `json:"contacts"`
				} `json:"_embedded"`
			} `json:"unsorted"`
		} `json:"_embedded"`
	}
	if err := decode(resp, http.MethodPost, path, &a); err != nil {
		return crm.Unsorted{}, err
	}
	if len(a.Embedded.Unsorted) == 0 || a.Embedded.Unsorted[0].UID == "" {
		return crm.Unsorted{}, fmt.Errorf("%s POST %s: answer (HTTP %d) names no request", name, path, resp.Status)
	}
	got := a.Embedded.Unsorted[0]
	out := crm.Unsorted{UID: got.UID}
	if len(got.Embedded.Leads) > 0 {
		out.Lead = crm.Ref{Kind: domain.KindLead, ID: strconv.FormatInt(got.Embedded.Leads[0].ID, 10)}
	}
	if len(got.Embedded.Contacts) > 0 {
		out.Contact = crm.Ref{Kind: domain.KindContact, ID: strconv.FormatInt(got.Embedded.Contacts[0].ID, 10)}
	}
	return out, nil
}

// findUnsorted pages through the requests not yet accepted or declined,
// GET /api/v4/leads/unsorted (both categories, newest first), for
// source_uid == key and returns the request's uid; "" when none of the
// newest findUnsortedPages pages has it.
func (s *source) findUnsorted(ctx context.Context, key string) (string, error) {
	const path = "/api/v4/leads/unsorted"
	q := url.Values{"filter[category][]": {crm.UnsortedSIP, crm.UnsortedForms}, "order[created_at]": {"desc"},
		"limit": {strconv.Itoa(pageLimit)}}
	for page := 1; page <= findUnsortedPages; page++ {
		q.Set("page", strconv.Itoa(page))
		resp, err := s.get(ctx, path, q)
		if err != nil {
			return "", fmt.Errorf("find unsorted request: %w", err)
		}
		if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
			return "", nil
		}
		var p struct {
			Links struct {
				Next *struct{} `json:"next"`
			} `json:"_links"`
			Embedded struct {
				Unsorted []struct {
					UID       string `json:"uid"`
					SourceUID string `json:"source_uid"`
				} `json:"unsorted"`
			} `json:"_embedded"`
		}
		if err := decode(resp, http.MethodGet, path, &p); err != nil {
			return "", err
		}
		for _, it := range p.Embedded.Unsorted {
			if it.SourceUID == key {
				return it.UID, nil
			}
		}
		if p.Links.Next == nil || len(p.Embedded.Unsorted) < pageLimit {
			return "", nil
		}
	}
	return "", nil
}
