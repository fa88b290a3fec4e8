package uspacy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

const (
	// perPage is the page size of syncs; 100 is the most the SDKs ask for.
	perPage = 100
	// overlap is how far before a pass's start the next pass looks, so that
	// a record written while the pass started, with a timestamp a little
	// older than the commit, is not missed.
	overlap = 2 * time.Minute
)

// cursor is the position of a full sync or of a changes pass; see the
// package documentation.
type cursor struct {
	V     int    `json:"v"`
	Inc   bool   `json:"inc,omitempty"`
	Table string `json:"table"`
	Page  int    `json:"page"`
	// Start is the CRM's clock, in Unix seconds, when this pass began; 0
	// until its first answer.
	Start int64 `json:"start,omitempty"`
	// Since is the update time from which a changes pass reports records.
	Since int64 `json:"since,omitempty"`
	// Unsorted records that the CRM was seen ignoring the sort order, so
	// changes passes cannot stop early.
	Unsorted bool `json:"unsorted,omitempty"`
}

// parseCursor decodes a cursor for Full (inc false) or Changes (inc true).
// EINVALID for anything this adapter did not hand out.
func parseCursor(s string, inc bool) (cursor, error) {
	if s == "" {
		if inc {
			return cursor{}, domain.Errorf(domain.EINVALID, "uspacy: changes need the cursor of a finished full sync")
		}
		return cursor{V: 1, Table: tables()[0].name, Page: 1}, nil
	}
	var c cursor
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.V != 1 || c.Page < 1 || tableIndex(c.Table) < 0 {
		return cursor{}, domain.Errorf(domain.EINVALID, "uspacy: unknown sync cursor %q", s)
	}
	if c.Inc != inc {
		return cursor{}, domain.Errorf(domain.EINVALID, "uspacy: cursor %q belongs to the other kind of sync", s)
	}
	return c, nil
}

func (c cursor) String() string {
	b, err := json.Marshal(c)
	if err != nil { // a struct of plain fields always marshals
		panic(err)
	}
	return string(b)
}

// next moves c to the first page of the next table; ok is false after the
// last one.
func (c cursor) next() (_ cursor, ok bool) {
	ts, i := tables(), tableIndex(c.Table)+1
	if i >= len(ts) {
		return c, false
	}
	c.Table, c.Page = ts[i].name, 1
	return c, true
}

// finish returns the changes cursor that follows a pass that began at
// c.Start.
func (c cursor) finish() cursor {
	return cursor{V: 1, Inc: true, Table: tables()[0].name, Page: 1, Since: c.Start - int64(overlap/time.Second), Unsorted: c.Unsorted}
}

// item is one record of a page with its update time.
type item struct {
	crm.Entity
	updated int64
}

// listing is one page of a table.
type listing struct {
	items []item
	last  bool      // no page follows
	desc  bool      // the page is in descending updated_at order
	date  time.Time // the CRM's clock when it answered
}

// envelope is Uspacy's list answer.
type envelope struct {
	Data []rawEntity `json:"data"`
	Meta struct {
		CurrentPage flexInt `json:"current_page"`
		LastPage    flexInt `json:"last_page"`
	} `json:"meta"`
}

// list reads one page of table t, newest change first.
func (s *source) list(ctx context.Context, t table, page int) (listing, error) {
	q := url.Values{
		"page": {strconv.Itoa(page)},
		"list": {strconv.Itoa(perPage)},
		// The JS SDK's sortModel filter, [{updated_at: "desc"}], as its HTTP
		// client encodes nested arrays. Unconfirmed; list checks the order.
		"sortModel[0][updated_at]": {"desc"},
	}
	resp, err := s.get(ctx, "/crm/v1/entities/"+t.name+"/", q)
	if err != nil {
		return listing{}, fmt.Errorf("%s: list %s page %d: %w", name, t.name, page, err)
	}
	var env envelope
	if err := json.Unmarshal(resp.Body, &env); err != nil {
		return listing{}, fmt.Errorf("%s: list %s page %d: %w", name, t.name, page, err)
	}
	if cp := int(env.Meta.CurrentPage); cp != 0 && cp != page {
		// Paging on would fetch the same page forever.
		return listing{}, fmt.Errorf("%s: list %s: asked for page %d, got page %d", name, t.name, page, cp)
	}
	l := listing{date: s.serverTime(resp), desc: true}
	var prev int64
	for i := range env.Data {
		e, ok := env.Data[i].entity(t.kind)
		if !ok {
			continue // no id: nothing to index or read again
		}
		u := env.Data[i].updated()
		if u != 0 {
			if prev != 0 && u > prev {
				l.desc = false
			}
			prev = u
		}
		l.items = append(l.items, item{Entity: e, updated: u})
	}
	if lp := int(env.Meta.LastPage); lp > 0 {
		l.last = page >= lp
	} else {
		l.last = len(env.Data) < perPage
	}
	l.last = l.last || len(env.Data) == 0
	return l, nil
}

// Full returns the next page of a full sync of leads, deals, contacts and
// companies, starting at cursor "". Errors: EINVALID for a cursor it did
// not hand out; *crm.AuthError when Uspacy rejects the credentials;
// *crm.StatusError or transport errors otherwise.
func (s *source) Full(ctx context.Context, cur string) (crm.Batch, error) {
	c, err := parseCursor(cur, false)
	if err != nil {
		return crm.Batch{}, err
	}
	l, err := s.list(ctx, tables()[tableIndex(c.Table)], c.Page)
	if err != nil {
		return crm.Batch{}, err
	}
	if c.Start == 0 {
		c.Start = l.date.Unix()
	}
	c.Unsorted = c.Unsorted || !l.desc
	b := crm.Batch{Entities: make([]crm.Entity, 0, len(l.items))}
	for _, it := range l.items {
		b.Entities = append(b.Entities, it.Entity)
	}
	return advance(b, c, l.last), nil
}

// Changes returns the next page of records changed since the cursor, which
// comes from a finished Full or an earlier Changes; Done marks the end of a
// pass over all tables, and its Cursor starts the next pass. Deletions are
// not seen (see the package documentation). Errors as for Full.
func (s *source) Changes(ctx context.Context, cur string) (crm.Batch, error) {
	c, err := parseCursor(cur, true)
	if err != nil {
		return crm.Batch{}, err
	}
	l, err := s.list(ctx, tables()[tableIndex(c.Table)], c.Page)
	if err != nil {
		return crm.Batch{}, err
	}
	if c.Start == 0 {
		c.Start = l.date.Unix()
	}
	c.Unsorted = c.Unsorted || !l.desc
	var b crm.Batch
	older := false
	for _, it := range l.items {
		// An unknown update time counts as changed: reading a record again
		// is cheap, missing one is not.
		if it.updated == 0 || it.updated >= c.Since {
			b.Entities = append(b.Entities, it.Entity)
		} else {
			older = true
		}
	}
	// Sorted newest first, everything after an older record is older too.
	return advance(b, c, l.last || older && !c.Unsorted), nil
}

// advance sets b's cursor after a page at c: the next page, the next table,
// or, after the last table, the changes cursor that follows the pass.
func advance(b crm.Batch, c cursor, tableDone bool) crm.Batch {
	if !tableDone {
		c.Page++
		b.Cursor = c.String()
		return b
	}
	if n, ok := c.next(); ok {
		b.Cursor = n.String()
		return b
	}
	b.Cursor, b.Done = c.finish().String(), true
	return b
}
