package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// A deal of Zoho's standard layout has no phone: it reaches its customer
// through Contact_Name and Account_Name (reference/crm-apis.md §8). So a
// deal is indexed under its own phone fields (custom ones, where the
// account has them) and the phones of its contact and account:
//   - a deal read (list, ids, related list) gets them from its contact and
//     account, read by id when not at hand (finish);
//   - a contact or account read by an incremental sync, a notification
//     (Get) or a live lookup brings its deals along, read with the related
//     list GET /{Contacts|Accounts}/{id}/Deals (dealsOf), so a changed
//     phone moves the deals with it;
//   - a deal whose contact changes is modified itself, and read again.

// finish turns decoded records into entities: each deal gets the phones
// of its contact and account, from known (filled as they are read) or
// read by id.
func (s *source) finish(ctx context.Context, items []item, known map[crm.Ref][]string) ([]crm.Entity, error) {
	need := map[domain.EntityKind][]string{}
	for _, it := range items {
		if it.ent.Kind != domain.KindDeal {
			continue
		}
		for _, r := range it.links() {
			if _, ok := known[r]; !ok && !slices.Contains(need[r.Kind], r.ID) {
				need[r.Kind] = append(need[r.Kind], r.ID)
			}
		}
	}
	for _, kind := range [...]domain.EntityKind{domain.KindContact, domain.KindCompany} {
		ids := need[kind]
		if len(ids) == 0 {
			continue
		}
		m, _ := moduleOf(kind)
		v, err := s.view(ctx, m)
		if err != nil {
			return nil, err
		}
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), idsPerRead)]
			ids = ids[len(chunk):]
			got, err := s.read(ctx, v, chunk)
			if err != nil {
				return nil, err
			}
			for _, id := range chunk {
				known[crm.Ref{Kind: kind, ID: id}] = nil // gone: no phones
			}
			for _, g := range got {
				known[crm.Ref{Kind: kind, ID: g.ent.ID}] = g.ent.Phones
			}
		}
	}
	out := make([]crm.Entity, 0, len(items))
	for _, it := range items {
		e := it.ent
		for _, r := range it.links() {
			for _, p := range known[r] {
				if !slices.Contains(e.Phones, p) {
					e.Phones = append(e.Phones, p)
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// links are the contact and account a deal reaches its customer through.
func (it item) links() []crm.Ref {
	var out []crm.Ref
	if it.contact != "" {
		out = append(out, crm.Ref{Kind: domain.KindContact, ID: it.contact})
	}
	if it.account != "" {
		out = append(out, crm.Ref{Kind: domain.KindCompany, ID: it.account})
	}
	return out
}

// read reads records of v by id; those Zoho does not return are left
// out. Deals come without their customer's phones (see finish).
func (s *source) read(ctx context.Context, v view, ids []string) ([]item, error) {
	q := v.query()
	q.Set("ids", strings.Join(ids, ","))
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + v.name, Query: q})
	if err != nil {
		return nil, fmt.Errorf("zoho: read %s by id: %w", v.name, err)
	}
	if resp.Status == http.StatusNoContent {
		return nil, nil
	}
	var ans listAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, fmt.Errorf("zoho: read %s by id: bad answer: %w", v.name, err)
	}
	items, _ := v.items(ans.Data)
	return items, nil
}

// dealsOf returns the deals of the contacts and accounts among parents,
// with phones: the parents' phones as given (just read) and those of
// their other link read by id. Other kinds among parents are ignored.
func (s *source) dealsOf(ctx context.Context, parents []crm.Entity) ([]crm.Entity, error) {
	known := map[crm.Ref][]string{}
	var refs []crm.Ref
	for _, p := range parents {
		if p.Kind != domain.KindContact && p.Kind != domain.KindCompany {
			continue
		}
		r := crm.Ref{Kind: p.Kind, ID: p.ID}
		if _, ok := known[r]; !ok {
			refs = append(refs, r)
		}
		known[r] = p.Phones
	}
	if len(refs) == 0 {
		return nil, nil
	}
	dm, _ := moduleOf(domain.KindDeal)
	dv, err := s.view(ctx, dm)
	if err != nil {
		return nil, err
	}
	found := make([][]item, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Concurrency)
	for i, r := range refs {
		g.Go(func() error {
			its, err := s.related(gctx, dv, r)
			found[i] = its
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var items []item
	seen := map[string]bool{}
	for _, its := range found {
		for _, it := range its {
			if !seen[it.ent.ID] {
				seen[it.ent.ID] = true
				items = append(items, it)
			}
		}
	}
	return s.finish(ctx, items, known)
}

// related reads the deals of one contact or account: GET
// /{Contacts|Accounts}/{id}/Deals, 204 when it has none.
func (s *source) related(ctx context.Context, dv view, parent crm.Ref) ([]item, error) {
	pm, _ := moduleOf(parent.Kind)
	path := apiPrefix + "/" + pm.name + "/" + url.PathEscape(parent.ID) + "/Deals"
	var out []item
	for page := 1; page <= discretePages; page++ {
		q := url.Values{"fields": {strings.Join(dv.fields, ",")}, "per_page": {strconv.Itoa(perPage)}, "page": {strconv.Itoa(page)}}
		resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: path, Query: q})
		if err != nil {
			return nil, fmt.Errorf("zoho: deals of %s %s: %w", pm.name, parent.ID, err)
		}
		if resp.Status == http.StatusNoContent {
			break
		}
		var ans listAnswer
		if err := json.Unmarshal(resp.Body, &ans); err != nil {
			return nil, fmt.Errorf("zoho: deals of %s %s: bad answer: %w", pm.name, parent.ID, err)
		}
		its, _ := dv.items(ans.Data)
		out = append(out, its...)
		if !ans.Info.MoreRecords || len(ans.Data) == 0 {
			break
		}
	}
	return out, nil
}
