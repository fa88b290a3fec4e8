package amocrm

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
)

// Get reads entities by reference with filter[id][], up to idsPerRequest
// per request; the ones amoCRM does not return are in Batch.Deleted. Leads
// come with their contacts' phones; the leads of the contacts read are in
// Batch.Refetch (their phones may have changed with the contact's), except
// those read here too. Errors: EINVALID for a kind amoCRM has not (deals)
// or an id that is not an integer, and the CRM's errors.
func (s *source) Get(ctx context.Context, refs []crm.Ref) (crm.Batch, error) {
	ids := map[domain.EntityKind][]int64{}
	seen := map[crm.Ref]bool{}
	for _, r := range refs {
		if _, ok := kindPath(r.Kind); !ok {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "%s: amoCRM has no %q entities", name, r.Kind)
		}
		id, err := strconv.ParseInt(r.ID, 10, 64)
		if err != nil || id <= 0 {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "%s: %s id %q is not an amoCRM id", name, r.Kind, r.ID)
		}
		if r := (crm.Ref{Kind: r.Kind, ID: strconv.FormatInt(id, 10)}); !seen[r] {
			seen[r] = true
			ids[r.Kind] = append(ids[r.Kind], id)
		}
	}
	var b crm.Batch
	known := map[int64][]string{} // contact phones, for the leads
	for ki := range numKinds {
		k := syncKind(ki)
		if len(ids[k]) == 0 {
			continue
		}
		with := ""
		switch k {
		case domain.KindLead:
			with = "contacts"
		case domain.KindContact:
			with = "leads"
		}
		items, err := s.byIDs(ctx, k, ids[k], with)
		if err != nil {
			return crm.Batch{}, err
		}
		found := map[int64]bool{}
		for i := range items {
			found[items[i].ID] = true
		}
		switch k {
		case domain.KindLead:
			ents, err := s.leads(ctx, items, known)
			if err != nil {
				return crm.Batch{}, fmt.Errorf("read leads by id: %w", err)
			}
			b.Entities = append(b.Entities, ents...)
		default:
			for i := range items {
				e := items[i].entity(k)
				if k == domain.KindContact {
					known[items[i].ID] = e.Phones
				}
				b.Entities = append(b.Entities, e)
			}
		}
		if k == domain.KindContact {
			for _, ref := range refetchLeads(items, 0) {
				if !seen[ref] {
					b.Refetch = append(b.Refetch, ref)
				}
			}
		}
		for _, id := range ids[k] {
			if !found[id] {
				b.Deleted = append(b.Deleted, crm.Ref{Kind: k, ID: strconv.FormatInt(id, 10)})
			}
		}
	}
	return b, nil
}

// FindByPhone returns the contacts whose phone ends with the same last nine
// digits (phone.SuffixLen) as the given E.164 digits, then their leads
// (open or not); none is an empty result. amoCRM's search matches the last
// ten digits anywhere in a field, so its hits are checked here. Errors:
// EINVALID for a phone without digits, and the CRM's errors.
func (s *source) FindByPhone(ctx context.Context, number string) ([]crm.Entity, error) {
	d := digits(number)
	if d == "" {
		return nil, domain.Errorf(domain.EINVALID, "%s: phone %q has no digits", name, number)
	}
	query := d[max(0, len(d)-10):]
	p, err := s.list(ctx, "/api/v4/contacts", url.Values{
		"query": {query},
		"with":  {"leads"},
		"limit": {strconv.Itoa(findLimit)},
	})
	if err != nil {
		return nil, fmt.Errorf("find contacts by phone: %w", err)
	}
	var out []crm.Entity
	known := map[int64][]string{}
	var leadIDs []int64
	for _, c := range p.Embedded.Contacts {
		phones := c.phones()
		if !slices.ContainsFunc(phones, func(p string) bool { return sameNumber(digits(p), d) }) {
			continue
		}
		known[c.ID] = phones
		out = append(out, c.entity(domain.KindContact))
		for _, l := range c.Embedded.Leads {
			if !slices.Contains(leadIDs, l.ID) {
				leadIDs = append(leadIDs, l.ID)
			}
		}
	}
	if len(leadIDs) == 0 {
		return out, nil
	}
	items, err := s.byIDs(ctx, domain.KindLead, leadIDs, "contacts")
	if err != nil {
		return nil, fmt.Errorf("find leads by phone: %w", err)
	}
	leads, err := s.leads(ctx, items, known)
	if err != nil {
		return nil, fmt.Errorf("find leads by phone: %w", err)
	}
	return append(out, leads...), nil
}

// sameNumber reports whether two digit strings end alike in the last
// phone.SuffixLen digits, or entirely when one is shorter: the engine's
// index matches callers the same way.
func sameNumber(a, b string) bool {
	n := min(phone.SuffixLen, len(a), len(b))
	return n > 0 && a[len(a)-n:] == b[len(b)-n:] && (n == phone.SuffixLen || len(a) == len(b))
}

// digits returns the ASCII digits of s.
func digits(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	return string(b)
}

// Users lists the account's users, 250 a page. Errors are the CRM's.
func (s *source) Users(ctx context.Context) ([]crm.User, error) {
	var out []crm.User
	for page := 1; ; page++ {
		p, err := s.list(ctx, "/api/v4/users", url.Values{
			"limit": {strconv.Itoa(pageLimit)},
			"page":  {strconv.Itoa(page)},
		})
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		for _, u := range p.Embedded.Users {
			out = append(out, crm.User{ID: strconv.FormatInt(u.ID, 10), Name: u.Name, Email: u.Email, Active: u.Rights.IsActive})
		}
		if !p.more(len(p.Embedded.Users), pageLimit) {
			return out, nil
		}
	}
}
