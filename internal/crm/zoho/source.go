package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
}

var _ crm.Source = (*source)(nil)

// idsPerRead is how many ids one GET /{module}?ids= takes.
const idsPerRead = 100

// maxUserPages bounds the users listing (200 users a page).
const maxUserPages = 100

// Get reads entities by reference, up to 100 a request per module;
// references Zoho does not return (deleted, or never existed) come back in
// Batch.Deleted. Errors: EINVALID for a kind this adapter does not sync,
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
	for _, m := range order {
		ids := byModule[m.name]
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), idsPerRead)]
			ids = ids[len(chunk):]
			ents, err := s.readIDs(ctx, m, chunk)
			if err != nil {
				return crm.Batch{}, err
			}
			found := make(map[string]bool, len(ents))
			for _, e := range ents {
				found[e.ID] = true
			}
			b.Entities = append(b.Entities, ents...)
			for _, id := range chunk {
				if !found[id] {
					b.Deleted = append(b.Deleted, crm.Ref{Kind: m.kind, ID: id})
				}
			}
		}
	}
	return b, nil
}

// readIDs reads records of m by id.
func (s *source) readIDs(ctx context.Context, m module, ids []string) ([]crm.Entity, error) {
	q := m.query()
	q.Set("ids", strings.Join(ids, ","))
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + m.name, Query: q})
	if err != nil {
		return nil, fmt.Errorf("zoho: read %s by id: %w", m.name, err)
	}
	if resp.Status == http.StatusNoContent {
		return nil, nil
	}
	var ans listAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, fmt.Errorf("zoho: read %s by id: bad answer: %w", m.name, err)
	}
	ents, _ := m.entities(ans.Data)
	return ents, nil
}

// FindByPhone searches Leads, Contacts and Accounts by phone at once (Zoho
// searches every phone field of a module; Deals have no phone search
// worth asking). The phone is sent as given, E.164 digits. An empty result
// is not an error. Errors: EINVALID for a phone that is not digits,
// *crm.AuthError when Zoho rejects the credentials, the context's error,
// other CRM and transport errors wrapped.
func (s *source) FindByPhone(ctx context.Context, phone string) ([]crm.Entity, error) {
	if phone == "" || strings.Trim(phone, "0123456789") != "" {
		return nil, domain.Errorf(domain.EINVALID, "zoho: phone %q is not E.164 digits", phone)
	}
	var searched []module
	for _, m := range modules {
		if m.search {
			searched = append(searched, m)
		}
	}
	found := make([][]crm.Entity, len(searched))
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range searched {
		g.Go(func() error {
			ents, err := s.search(gctx, m, phone)
			found[i] = ents
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []crm.Entity
	for _, ents := range found {
		out = append(out, ents...)
	}
	return out, nil
}

// search asks one module for records with the phone.
func (s *source) search(ctx context.Context, m module, phone string) ([]crm.Entity, error) {
	q := m.query()
	q.Set("phone", phone)
	q.Set("per_page", strconv.Itoa(perPage))
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + m.name + "/search", Query: q})
	if err != nil {
		return nil, fmt.Errorf("zoho: search %s by phone: %w", m.name, err)
	}
	if resp.Status == http.StatusNoContent {
		return nil, nil
	}
	var ans listAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, fmt.Errorf("zoho: search %s by phone: bad answer: %w", m.name, err)
	}
	ents, _ := m.entities(ans.Data)
	return ents, nil
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
