package retailcrm

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// kindPath is the API collection of each entity kind callrouter indexes.
var kindPath = map[domain.EntityKind]string{
	domain.KindContact: "/api/v5/customers",
	domain.KindDeal:    "/api/v5/orders",
}

type customerAnswer struct {
	envelope
	Customer customer `json:"customer"`
}

type orderAnswer struct {
	envelope
	Order order `json:"order"`
}

// Get reads contacts (customers) and deals (orders). One entity of a kind
// is read by id (/api/v5/customers/{id}?by=id), several with one list call
// per 100 (filter[ids][]); missing ones, and ids that cannot be retailCRM's,
// are reported in Deleted. Errors: EINVALID for kinds retailCRM has no
// entity for, and those of the CRM calls.
func (s *Source) Get(ctx context.Context, refs []crm.Ref) (crm.Batch, error) {
	var b crm.Batch
	ids := map[domain.EntityKind][]int64{}
	seen := make(map[crm.Ref]bool, len(refs))
	for _, r := range refs {
		if _, ok := kindPath[r.Kind]; !ok {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm: no %q entities, only contacts (customers) and deals (orders)", r.Kind)
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		id, err := strconv.ParseInt(r.ID, 10, 64)
		if err != nil || id <= 0 {
			b.Deleted = append(b.Deleted, r)
			continue
		}
		ids[r.Kind] = append(ids[r.Kind], id)
	}
	var open func(string) bool
	if len(ids[domain.KindDeal]) > 0 {
		var err error
		if open, err = s.openFunc(ctx); err != nil {
			return crm.Batch{}, err
		}
	}
	for _, kind := range []domain.EntityKind{domain.KindContact, domain.KindDeal} {
		all := ids[kind]
		for len(all) > 0 {
			n := min(len(all), pageLimit)
			var err error
			if n == 1 {
				err = s.getOne(ctx, kind, all[0], open, &b)
			} else {
				err = s.getMany(ctx, kind, all[:n], open, &b)
			}
			if err != nil {
				return crm.Batch{}, err
			}
			all = all[n:]
		}
	}
	return b, nil
}

// getOne reads one entity by id into b; retailCRM's 404 "Not found" puts
// it in b.Deleted.
func (s *Source) getOne(ctx context.Context, kind domain.EntityKind, id int64, open func(string) bool, b *crm.Batch) error {
	path := kindPath[kind] + "/" + strconv.FormatInt(id, 10)
	// by=id: retailCRM's default for these methods is the external id.
	q := url.Values{"by": {"id"}}
	var err error
	var e crm.Entity
	switch kind {
	case domain.KindContact:
		var a customerAnswer
		if err = s.get(ctx, path, q, false, &a); err == nil {
			e = a.Customer.entity()
		}
	default:
		var a orderAnswer
		if err = s.get(ctx, path, q, false, &a); err == nil {
			e = a.Order.entity(open)
		}
	}
	switch {
	case isNotFound(err):
		b.Deleted = append(b.Deleted, crm.Ref{Kind: kind, ID: idString(id)})
	case err != nil:
		return err
	default:
		b.Entities = append(b.Entities, e)
	}
	return nil
}

// getMany reads up to 100 entities with one list call into b; the ones the
// list lacks go to b.Deleted.
func (s *Source) getMany(ctx context.Context, kind domain.EntityKind, ids []int64, open func(string) bool, b *crm.Batch) error {
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		q.Add("filter[ids][]", strconv.FormatInt(id, 10))
		want[idString(id)] = false
	}
	var got []crm.Entity
	switch kind {
	case domain.KindContact:
		var a customersAnswer
		if err := s.get(ctx, kindPath[kind], q, false, &a); err != nil {
			return err
		}
		for i := range a.Customers {
			got = append(got, a.Customers[i].entity())
		}
	default:
		var a ordersAnswer
		if err := s.get(ctx, kindPath[kind], q, false, &a); err != nil {
			return err
		}
		for i := range a.Orders {
			got = append(got, a.Orders[i].entity(open))
		}
	}
	for _, e := range got {
		found, asked := want[e.ID]
		if !asked {
			// A list that ignored the filter would make every entity not
			// on its first page look deleted: refuse rather than wipe.
			return fmt.Errorf("%s GET %s: filter[ids] ignored: got id %s that was not asked for", name, kindPath[kind], e.ID)
		}
		if !found {
			want[e.ID] = true
			b.Entities = append(b.Entities, e)
		}
	}
	for _, id := range ids {
		if !want[idString(id)] {
			b.Deleted = append(b.Deleted, crm.Ref{Kind: kind, ID: idString(id)})
		}
	}
	return nil
}

type telephonyManagerAnswer struct {
	envelope
	Manager *struct {
		ID int64 `json:"id"`
	} `json:"manager"`
	Customer *customer `json:"customer"`
}

// FindByPhone asks retailCRM's telephony manager method for the customer
// with the phone (E.164 digits) and returns it as a contact owned by its
// responsible manager, or nothing. It uses the telephony rate limit.
// Errors: EINVALID for a phone that is not digits, and those of the CRM
// call.
func (s *Source) FindByPhone(ctx context.Context, phone string) ([]crm.Entity, error) {
	phone = strings.TrimPrefix(strings.TrimSpace(phone), "+")
	if phone == "" || strings.Trim(phone, "0123456789") != "" {
		return nil, domain.Errorf(domain.EINVALID, "phone: %q is not a number in international digits", phone)
	}
	// ignoreStatus: the responsible manager is wanted even when they are
	// busy or offline; callrouter applies its own fallbacks.
	q := url.Values{"phone": {phone}, "details": {"1"}, "ignoreStatus": {"1"}}
	var a telephonyManagerAnswer
	if err := s.get(ctx, "/api/v5/telephony/manager", q, true, &a); err != nil {
		return nil, err
	}
	if a.Customer == nil || a.Customer.ID == 0 {
		return nil, nil
	}
	e := a.Customer.entity()
	// The answer's customer has no managerId: the manager block is the
	// responsible user.
	e.OwnerID = ""
	if a.Manager != nil {
		e.OwnerID = idString(a.Manager.ID)
	}
	if len(e.Phones) == 0 {
		e.Phones = []string{phone}
	}
	return []crm.Entity{e}, nil
}

type usersAnswer struct {
	envelope
	Pagination pagination `json:"pagination"`
	Users      []struct {
		ID        int64  `json:"id"`
		Active    bool   `json:"active"`
		Email     string `json:"email"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
	} `json:"users"`
}

// Users lists the users offered for mapping: the active members of the
// account's manager groups (user groups with isManager, from
// /api/v5/user-groups), as the seed requires; all active users when the
// account has no such group or the key may not read the groups. Extension
// stays empty: users carry no telephony code in retailCRM's API (a user's
// code appears only as manager.code in telephony answers). Errors: those of
// the CRM calls.
func (s *Source) Users(ctx context.Context) ([]crm.User, error) {
	groups, err := s.managerGroups(ctx)
	if err != nil && !isAccessDenied(err) {
		return nil, err
	}
	var out []crm.User
	for page := 1; ; page++ {
		q := url.Values{"filter[active]": {"1"}, "limit": {strconv.Itoa(pageLimit)}, "page": {strconv.Itoa(page)}}
		for _, g := range groups {
			q.Add("filter[groups][]", g)
		}
		var a usersAnswer
		if err := s.get(ctx, "/api/v5/users", q, false, &a); err != nil {
			return nil, err
		}
		for _, u := range a.Users {
			out = append(out, crm.User{ID: idString(u.ID), Name: fullName(u.FirstName, u.LastName), Email: u.Email, Active: u.Active})
		}
		if a.Pagination.last(page) || len(a.Users) == 0 {
			return out, nil
		}
	}
}
