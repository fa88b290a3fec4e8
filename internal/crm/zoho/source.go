package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// source is one connected Zoho CRM account; it implements crm.Source and
// is safe for concurrent use.
type source struct {
	http         *crm.HTTP
	now          func() time.Time
	webhookToken string

	metaMu  sync.Mutex
	layouts map[string]*layoutSlot // by module, read once per connection (fields.go)
}

var _ crm.Source = (*source)(nil)

// idsPerRead is how many ids one GET /{module}?ids= takes.
const idsPerRead = 100

// maxUserPages bounds the users listing (200 users a page).
const maxUserPages = 100

// Get reads entities by reference, up to 100 a request per module;
// references Zoho does not return (deleted, or never existed) come back in
// Batch.Deleted. Deals come with their contact's and account's phones, and
// contacts and accounts with their deals (their phones are the deals'
// too). Errors: EINVALID for a kind this adapter does not sync,
// *crm.AuthError when Zoho rejects the credentials, other CRM and
// transport errors wrapped.
func (s *source) Get(ctx context.Context, refs []crm.Ref) (crm.Batch, error) {
	var b crm.Batch
	byModule := map[string][]string{}
	var order []module
	seen := make(map[crm.Ref]bool, len(refs))
	for _, r := range refs {
		m, ok := moduleOf(r.Kind)
		if !ok {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho: no module holds %q entities", r.Kind)
		}
		if _, ok := byModule[m.name]; !ok {
			order = append(order, m)
			byModule[m.name] = nil
		}
		if r.ID != "" && !seen[r] {
			seen[r] = true
			byModule[m.name] = append(byModule[m.name], r.ID)
		}
	}
	var items []item
	for _, m := range order {
		ids := byModule[m.name]
		if len(ids) == 0 {
			continue
		}
		v, err := s.view(ctx, m)
		if err != nil {
			return crm.Batch{}, err
		}
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), idsPerRead)]
			ids = ids[len(chunk):]
			got, err := s.read(ctx, v, chunk)
			if err != nil {
				return crm.Batch{}, err
			}
			found := make(map[string]bool, len(got))
			for _, it := range got {
				found[it.ent.ID] = true
			}
			items = append(items, got...)
			for _, id := range chunk {
				if !found[id] {
					b.Deleted = append(b.Deleted, crm.Ref{Kind: m.kind, ID: id})
				}
			}
		}
	}
	ents, err := s.withDeals(ctx, items)
	if err != nil {
		return crm.Batch{}, err
	}
	b.Entities = ents
	return b, nil
}

// withDeals finishes items read together (deals get their customer's
// phones) and adds the deals of the contacts and accounts among them, each
// entity once.
func (s *source) withDeals(ctx context.Context, items []item) ([]crm.Entity, error) {
	known := map[crm.Ref][]string{}
	for _, it := range items {
		if it.ent.Kind == domain.KindContact || it.ent.Kind == domain.KindCompany {
			known[crm.Ref{Kind: it.ent.Kind, ID: it.ent.ID}] = it.ent.Phones
		}
	}
	ents, err := s.finish(ctx, items, known)
	if err != nil {
		return nil, err
	}
	deals, err := s.dealsOf(ctx, ents)
	if err != nil {
		return nil, err
	}
	have := make(map[crm.Ref]bool, len(ents))
	for _, e := range ents {
		have[crm.Ref{Kind: e.Kind, ID: e.ID}] = true
	}
	for _, d := range deals {
		if !have[crm.Ref{Kind: d.Kind, ID: d.ID}] {
			ents = append(ents, d)
		}
	}
	return ents, nil
}

// FindByPhone searches Leads, Contacts and Accounts by phone at once (Zoho
// searches every phone field of a module), Deals too where the account
// gave them phone fields, and adds the deals of the contacts and accounts
// found: a deal of the standard layout is found through its customer. The
// phone is sent as given, E.164 digits. An empty result is not an error.
// Errors: EINVALID for a phone that is not digits, *crm.AuthError when
// Zoho rejects the credentials, the context's error, other CRM and
// transport errors wrapped.
func (s *source) FindByPhone(ctx context.Context, phone string) ([]crm.Entity, error) {
	if phone == "" || strings.Trim(phone, "0123456789") != "" {
		return nil, domain.Errorf(domain.EINVALID, "zoho: phone %q is not E.164 digits", phone)
	}
	all, err := s.views(ctx)
	if err != nil {
		return nil, err
	}
	var searched []view
	for _, v := range all {
		if v.searchable() {
			searched = append(searched, v)
		}
	}
	found := make([][]item, len(searched))
	g, gctx := errgroup.WithContext(ctx)
	for i, v := range searched {
		g.Go(func() error {
			its, err := s.search(gctx, v, phone)
			found[i] = its
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var items []item
	for _, its := range found {
		items = append(items, its...)
	}
	return s.withDeals(ctx, items)
}

// search asks one module for records with the phone.
func (s *source) search(ctx context.Context, v view, phone string) ([]item, error) {
	q := v.query()
	q.Set("phone", phone)
	q.Set("per_page", strconv.Itoa(perPage))
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + v.name + "/search", Query: q})
	if err != nil {
		return nil, fmt.Errorf("zoho: search %s by phone: %w", v.name, err)
	}
	if resp.Status == http.StatusNoContent {
		return nil, nil
	}
	var ans listAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, fmt.Errorf("zoho: search %s by phone: bad answer: %w", v.name, err)
	}
	its, _ := v.items(ans.Data)
	return its, nil
}

// usersAnswer is the answer of GET /users.
type usersAnswer struct {
	Users []struct {
		ID       zid    `json:"id"`
		FullName string `json:"full_name"`
		First    string `json:"first_name"`
		Last     string `json:"last_name"`
		Email    string `json:"email"`
		Status   string `json:"status"`
	} `json:"users"`
	Info pageInfo `json:"info"`
}

// Users lists the account's active users (Owner.id of records is a user's
// id). Errors: *crm.AuthError when Zoho rejects the credentials, other CRM
// and transport errors wrapped.
func (s *source) Users(ctx context.Context) ([]crm.User, error) {
	var out []crm.User
	for page := 1; page <= maxUserPages; page++ {
		q := url.Values{"type": {"ActiveUsers"}, "per_page": {strconv.Itoa(perPage)}, "page": {strconv.Itoa(page)}}
		resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/users", Query: q})
		if err != nil {
			return nil, fmt.Errorf("zoho: list users: %w", err)
		}
		if resp.Status == http.StatusNoContent {
			break
		}
		var ans usersAnswer
		if err := json.Unmarshal(resp.Body, &ans); err != nil {
			return nil, fmt.Errorf("zoho: list users: bad answer: %w", err)
		}
		for _, u := range ans.Users {
			name := strings.TrimSpace(u.FullName)
			if name == "" {
				name = strings.TrimSpace(u.First + " " + u.Last)
			}
			out = append(out, crm.User{ID: string(u.ID), Name: name, Email: u.Email,
				Active: strings.EqualFold(u.Status, "active")})
		}
		if !ans.Info.MoreRecords || len(ans.Users) == 0 {
			break
		}
	}
	return out, nil
}
