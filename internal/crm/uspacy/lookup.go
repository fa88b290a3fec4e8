package uspacy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Get reads entities one by one (Uspacy has no batch read); those the CRM
// does not have (404), or answers with a deletion time (in the trash), are
// reported in Batch.Deleted. Errors: EINVALID for a
// kind Uspacy does not have or an id that is not a Uspacy id;
// *crm.AuthError, *crm.StatusError or transport errors from the CRM.
func (s *source) Get(ctx context.Context, refs []crm.Ref) (crm.Batch, error) {
	var b crm.Batch
	for _, r := range refs {
		t, ok := tableOf(r.Kind)
		if !ok {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy: no %q entities", r.Kind)
		}
		if !isID(r.ID) {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy: %q is not a %s id", r.ID, r.Kind)
		}
		resp, err := s.get(ctx, "/crm/v1/entities/"+t.name+"/"+r.ID, nil)
		if isNotFound(err) {
			b.Deleted = append(b.Deleted, r)
			continue
		}
		if err != nil {
			return crm.Batch{}, fmt.Errorf("%s: get %s %s: %w", name, r.Kind, r.ID, err)
		}
		raw, err := decodeEntity(resp.Body)
		if err != nil {
			return crm.Batch{}, fmt.Errorf("%s: get %s %s: %w", name, r.Kind, r.ID, err)
		}
		if raw.DeletedAt != 0 {
			// In the trash: the plain read may still serve it (unconfirmed).
			b.Deleted = append(b.Deleted, r)
			continue
		}
		if raw.ID == "" {
			raw.ID = flexString(r.ID) // an answer that leaves out what was asked for
		}
		e, _ := raw.entity(r.Kind)
		b.Entities = append(b.Entities, e)
	}
	return b, nil
}

// phoneKey is how many trailing digits identify a phone: the national
// significant number of most countries callrouter serves (Ukraine's is 9),
// so it matches "+380 50 …", "050 …" and "50 …" spellings alike.
const phoneKey = 9

// FindByPhone searches leads and contacts for phone (E.164 digits).
// Whether Uspacy's search matches phones, and how, is unconfirmed: it is
// asked for the last nine digits, and only records with a phone whose
// digits end with those nine are kept. Deals have no phones of their own
// and are found through the index. No match is an empty result. Errors:
// EINVALID for a phone without digits; errors from the CRM as for Get.
func (s *source) FindByPhone(ctx context.Context, phone string) ([]crm.Entity, error) {
	d := digits(phone)
	if d == "" {
		return nil, domain.Errorf(domain.EINVALID, "uspacy: phone %q has no digits", phone)
	}
	key := d[max(0, len(d)-phoneKey):]
	var out []crm.Entity
	for _, k := range []domain.EntityKind{domain.KindLead, domain.KindContact} {
		t, _ := tableOf(k)
		q := url.Values{"search": {key}, "page": {"1"}, "list": {"50"}}
		resp, err := s.get(ctx, "/crm/v1/entities/"+t.name+"/", q)
		if err != nil {
			return nil, fmt.Errorf("%s: search %s: %w", name, t.name, err)
		}
		var env envelope
		if err := json.Unmarshal(resp.Body, &env); err != nil {
			return nil, fmt.Errorf("%s: search %s: %w", name, t.name, err)
		}
		for i := range env.Data {
			e, ok := env.Data[i].entity(k)
			if ok && hasPhone(e.Phones, key) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// hasPhone reports whether one of phones ends with the digits key.
func hasPhone(phones []string, key string) bool {
	for _, p := range phones {
		if strings.HasSuffix(digits(p), key) {
			return true
		}
	}
	return false
}

// rawUser is a user as GET /company/v1/users/ lists it.
type rawUser struct {
	ID        flexString `json:"id"`
	Active    *flexBool  `json:"active"`
	FirstName flexString `json:"firstName"`
	LastName  flexString `json:"lastName"`
	Email     valueList  `json:"email"`
}

// Users lists the account's users, deactivated ones included (Active
// false). Errors from the CRM as for Get.
func (s *source) Users(ctx context.Context) ([]crm.User, error) {
	resp, err := s.get(ctx, "/company/v1/users/", url.Values{"show": {"all"}, "list": {"all"}})
	if err != nil {
		return nil, fmt.Errorf("%s: list users: %w", name, err)
	}
	// With list=all the SDK reads a bare array; a paged answer wraps it in
	// {"data": […]}. Both are accepted.
	var raw []rawUser
	body := bytes.TrimSpace(resp.Body)
	if len(body) > 0 && body[0] == '{' {
		var env struct {
			Data []rawUser `json:"data"`
		}
		err = json.Unmarshal(body, &env)
		raw = env.Data
	} else {
		err = json.Unmarshal(body, &raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: list users: %w", name, err)
	}
	users := make([]crm.User, 0, len(raw))
	for _, u := range raw {
		if u.ID == "" {
			continue
		}
		cu := crm.User{ID: string(u.ID), Name: strings.TrimSpace(string(u.FirstName) + " " + string(u.LastName)),
			Active: u.Active == nil || bool(*u.Active)}
		if len(u.Email) > 0 {
			cu.Email = u.Email[0]
		}
		if cu.Name == "" {
			cu.Name = cu.Email
		}
		users = append(users, cu)
	}
	return users, nil
}

var _ crm.EmailFinder = (*source)(nil)

// FindContactByEmail searches contacts with GET
// /crm/v1/entities/contacts/?search=… and returns the first whose email
// list holds the address (case aside). Whether Uspacy's search covers
// e-mails is unconfirmed; a miss makes a new contact, never a wrong match.
// Errors from the CRM as for Get.
func (s *source) FindContactByEmail(ctx context.Context, email string) (crm.Ref, error) {
	q := url.Values{"search": {email}, "page": {"1"}, "list": {"50"}}
	resp, err := s.get(ctx, "/crm/v1/entities/contacts/", q)
	if err != nil {
		return crm.Ref{}, fmt.Errorf("%s: search contacts by e-mail: %w", name, err)
	}
	var env envelope
	if err := json.Unmarshal(resp.Body, &env); err != nil {
		return crm.Ref{}, fmt.Errorf("%s: search contacts by e-mail: %w", name, err)
	}
	for _, r := range env.Data {
		for _, e := range r.Email {
			if strings.EqualFold(strings.TrimSpace(e), email) {
				return crm.Ref{Kind: domain.KindContact, ID: string(r.ID)}, nil
			}
		}
	}
	return crm.Ref{}, nil
}
