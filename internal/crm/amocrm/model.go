package amocrm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// amoCRM's closed lead statuses, the same in every pipeline.
const (
	statusWon  = 142
	statusLost = 143
)

// numKinds is how many kinds a sync walks.
const numKinds = 3

// syncKind returns the i-th kind a sync walks: contacts first, so that
// their phones are fresh when leads are read, then leads and companies.
func syncKind(i int) domain.EntityKind {
	switch i {
	case 0:
		return domain.KindContact
	case 1:
		return domain.KindLead
	default:
		return domain.KindCompany
	}
}

// kindPath returns the list endpoint of a kind amoCRM has; ok is false for
// other kinds.
func kindPath(k domain.EntityKind) (path string, ok bool) {
	switch k {
	case domain.KindContact:
		return "/api/v4/contacts", true
	case domain.KindLead:
		return "/api/v4/leads", true
	case domain.KindCompany:
		return "/api/v4/companies", true
	}
	return "", false
}

// listPage is one page of an amoCRM list (HAL).
type listPage struct {
	Links struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
	Embedded struct {
		Contacts  []apiEntity `json:"contacts"`
		Leads     []apiEntity `json:"leads"`
		Companies []apiEntity `json:"companies"`
		Users     []apiUser   `json:"users"`
		Events    []apiEvent  `json:"events"`
	} `json:"_embedded"`
}

// entities returns the page's records of kind k.
func (p *listPage) entities(k domain.EntityKind) []apiEntity {
	switch k {
	case domain.KindContact:
		return p.Embedded.Contacts
	case domain.KindLead:
		return p.Embedded.Leads
	default:
		return p.Embedded.Companies
	}
}

// more reports whether a page of n items with limit may have a successor.
func (p *listPage) more(n, limit int) bool { return p.Links.Next != nil && n >= limit }

// apiEntity is a contact, lead or company as amoCRM lists it.
type apiEntity struct {
	ID                int64      `json:"id"`
	Name              string     `json:"name"`
	ResponsibleUserID int64      `json:"responsible_user_id"`
	StatusID          int64      `json:"status_id"`
	UpdatedAt         int64      `json:"updated_at"`
	CustomFields      []apiField `json:"custom_fields_values"` // may be null
	Embedded          struct {
		Contacts []apiRef `json:"contacts"` // leads, with=contacts
		Leads    []apiRef `json:"leads"`    // contacts, with=leads
	} `json:"_embedded"`
}

type apiRef struct {
	ID int64 `json:"id"`
}

// apiField is one custom field value set; field_code is null for fields an
// account created, and values are strings, numbers or booleans by type.
type apiField struct {
	FieldCode string `json:"field_code"`
	Values    []struct {
		Value json.RawMessage `json:"value"`
	} `json:"values"`
}

// phones returns the values of the PHONE field, as stored.
func (e *apiEntity) phones() []string {
	var out []string
	for _, f := range e.CustomFields {
		if f.FieldCode != "PHONE" {
			continue
		}
		for _, v := range f.Values {
			var s string
			if json.Unmarshal(v.Value, &s) != nil {
				// A number stored without quotes: keep its digits.
				s = string(v.Value)
				if _, err := strconv.ParseFloat(s, 64); err != nil {
					continue
				}
			}
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// entity converts a record of kind k; leads get phones from the caller.
func (e *apiEntity) entity(k domain.EntityKind) crm.Entity {
	out := crm.Entity{
		Kind:      k,
		ID:        strconv.FormatInt(e.ID, 10),
		Name:      e.Name,
		Open:      true,
		UpdatedAt: time.Unix(e.UpdatedAt, 0).UTC(),
	}
	if e.ResponsibleUserID > 0 {
		out.OwnerID = strconv.FormatInt(e.ResponsibleUserID, 10)
	}
	if k == domain.KindLead {
		out.Open = e.StatusID != statusWon && e.StatusID != statusLost
	} else {
		out.Phones = e.phones()
	}
	return out
}

// apiUser is a user as amoCRM lists it.
type apiUser struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Rights struct {
		IsActive bool `json:"is_active"`
	} `json:"rights"`
}

// apiEvent is an entry of the event feed.
type apiEvent struct {
	Type       string `json:"type"`
	EntityID   int64  `json:"entity_id"`
	EntityType string `json:"entity_type"`
	CreatedAt  int64  `json:"created_at"`
}

// list reads one page of a list endpoint; 204 is an empty page. Errors are
// those of get and a wrapped decoding error.
func (s *source) list(ctx context.Context, path string, q url.Values) (*listPage, error) {
	resp, err := s.get(ctx, path, q)
	if err != nil {
		return nil, err
	}
	p := &listPage{}
	if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(resp.Body, p); err != nil {
		return nil, fmt.Errorf("%s GET %s: decode answer: %w", name, path, err)
	}
	return p, nil
}

// byIDs reads the records of kind k with the given ids (any number), with
// the given embedded relations ("" for none).
func (s *source) byIDs(ctx context.Context, k domain.EntityKind, ids []int64, with string) ([]apiEntity, error) {
	path, _ := kindPath(k)
	var out []apiEntity
	for chunk := range slices.Chunk(ids, idsPerRequest) {
		q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
		for _, id := range chunk {
			q.Add("filter[id][]", strconv.FormatInt(id, 10))
		}
		if with != "" {
			q.Set("with", with)
		}
		// One page holds a whole chunk; follow _links.next all the same.
		for page := 1; ; page++ {
			q.Set("page", strconv.Itoa(page))
			p, err := s.list(ctx, path, q)
			if err != nil {
				return nil, fmt.Errorf("read %s records by id: %w", k, err)
			}
			items := p.entities(k)
			out = append(out, items...)
			if !p.more(len(items), pageLimit) {
				break
			}
		}
	}
	return out, nil
}

// contactPhones adds to known the phones of the contacts in ids it lacks.
func (s *source) contactPhones(ctx context.Context, ids []int64, known map[int64][]string) error {
	var missing []int64
	asked := map[int64]bool{}
	for _, id := range ids {
		if _, ok := known[id]; !ok && !asked[id] {
			asked[id] = true
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cs, err := s.byIDs(ctx, domain.KindContact, missing, "")
	if err != nil {
		return err
	}
	for _, id := range missing {
		known[id] = nil // deleted meanwhile: no phones
	}
	for i := range cs {
		known[cs[i].ID] = cs[i].phones()
	}
	return nil
}

// leads converts lead records, giving each the phones of its linked
// contacts (read with with=contacts), fetching the phones it does not
// know yet into known (which may be nil).
func (s *source) leads(ctx context.Context, items []apiEntity, known map[int64][]string) ([]crm.Entity, error) {
	if known == nil {
		known = map[int64][]string{}
	}
	var ids []int64
	for i := range items {
		for _, c := range items[i].Embedded.Contacts {
			ids = append(ids, c.ID)
		}
	}
	if err := s.contactPhones(ctx, ids, known); err != nil {
		return nil, err
	}
	out := make([]crm.Entity, len(items))
	for i := range items {
		e := items[i].entity(domain.KindLead)
		for _, c := range items[i].Embedded.Contacts {
			for _, p := range known[c.ID] {
				if !slices.Contains(e.Phones, p) {
					e.Phones = append(e.Phones, p)
				}
			}
		}
		out[i] = e
	}
	return out, nil
}
