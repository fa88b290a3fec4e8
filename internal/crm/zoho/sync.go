package zoho

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

const (
	// perPage is Zoho's largest page.
	perPage = 200
	// discretePages is how far page numbers go: Zoho serves the first 2000
	// records of a listing by page number and the rest only by page_token.
	discretePages = 2000 / perPage
	// overlap is how far before a round's start the next round reads
	// changes again: it covers clock skew between us and Zoho and records
	// committed with a Modified_Time a little before they became visible.
	// Re-reading a record is harmless; missing one is not.
	overlap = 2 * time.Minute
	// maxSteps bounds the requests one Full or Changes call makes while it
	// skips empty answers (304, 204, a module with nothing new).
	maxSteps = 16
	// ifModifiedSinceLayout is how Zoho writes times.
	ifModifiedSinceLayout = "2006-01-02T15:04:05-07:00"
)

const (
	modeFull    = "full"
	modeChanges = "changes"
	stepDeleted = "deleted"
	stepList    = "list"
)

// cursor is the position of a sync, stored as JSON between pages.
//
// A module's records are listed sorted by Modified_Time, ascending, in
// windows: each window asks for the records modified since From
// (If-Modified-Since) and the next window starts one second before the
// latest Modified_Time read (Mark), so reading resumes by time rather than
// by offset. Offsets shift when records are edited or deleted during a
// sync (an edited record moves to the end, and the record behind it slips
// into a page already read, unseen); windows do not. Only where more than
// a page of records share one second (imports, mass updates) does a
// window go on by page number, up to Zoho's 2000-record limit, and then by
// page_token.
type cursor struct {
	V    int    `json:"v"`
	Mode string `json:"mode"` // modeFull or modeChanges
	// Start is when this full sync or round of changes began.
	Start time.Time `json:"start,omitzero"`
	// Since is where a round of changes starts: the previous round's (or
	// the full sync's) Start less the overlap.
	Since  time.Time `json:"since,omitzero"`
	Module string    `json:"module,omitempty"`
	Step   string    `json:"step,omitempty"` // changes: stepDeleted, then stepList
	Page   int       `json:"page,omitempty"`
	Token  string    `json:"page_token,omitempty"`
	// From is the current window's If-Modified-Since (zero: none).
	From time.Time `json:"from,omitzero"`
	// Mark is the latest Modified_Time read in the current listing.
	Mark time.Time `json:"mark,omitzero"`
	// Reread is set when the current window was started again after Zoho
	// refused its page token.
	Reread bool `json:"reread,omitempty"`
}

const cursorVersion = 1

func decodeCursor(raw, mode string) (cursor, error) {
	var c cursor
	if err := json.Unmarshal([]byte(raw), &c); err != nil || c.V != cursorVersion || c.Mode != mode {
		return c, domain.Errorf(domain.EINVALID, "zoho: %q is not a %s sync cursor of this adapter", raw, mode)
	}
	if c.Module != "" {
		if _, ok := moduleNamed(c.Module); !ok {
			return c, domain.Errorf(domain.EINVALID, "zoho: cursor names unknown module %q", c.Module)
		}
	}
	return c, nil
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // a struct of strings, ints and times
	return string(b)
}

// changesFrom is the cursor incremental syncs continue from after a sync
// (full or a round of changes) that began at start.
func changesFrom(start time.Time) string {
	return cursor{V: cursorVersion, Mode: modeChanges, Since: start.Add(-overlap).UTC().Truncate(time.Second)}.encode()
}

// nextModule returns the module after name, ok=false after the last.
func nextModule(name string) (string, bool) {
	for i, m := range modules {
		if m.name == name && i+1 < len(modules) {
			return modules[i+1].name, true
		}
	}
	return "", false
}

// Full returns the next page of a full sync of Leads, Deals, Contacts and
// Accounts, in that order. The last page has Done set and a Cursor for
// Changes. Errors: EINVALID for a cursor that is not a full-sync cursor,
// *crm.AuthError when Zoho rejects the credentials, other CRM and
// transport errors wrapped.
func (s *source) Full(ctx context.Context, raw string) (crm.Batch, error) {
	c := cursor{V: cursorVersion, Mode: modeFull, Start: s.now().UTC(), Module: modules[0].name, Page: 1}
	if raw != "" {
		var err error
		if c, err = decodeCursor(raw, modeFull); err != nil {
			return crm.Batch{}, err
		}
	}
	for range maxSteps {
		m, _ := moduleNamed(c.Module)
		ents, more, err := s.listPage(ctx, m, &c)
		if err != nil {
			return crm.Batch{}, err
		}
		if !more {
			next, ok := nextModule(m.name)
			if !ok {
				return crm.Batch{Entities: ents, Cursor: changesFrom(c.Start), Done: true}, nil
			}
			c = cursor{V: cursorVersion, Mode: modeFull, Start: c.Start, Module: next, Page: 1}
		}
		if len(ents) > 0 {
			return crm.Batch{Entities: ents, Cursor: c.encode()}, nil
		}
	}
	return crm.Batch{Cursor: c.encode()}, nil
}

// Changes returns the next page of changes after cursor: per module, the
// records deleted since the cursor's time (Batch.Deleted) and then the
// records modified since (Batch.Entities). When a round has gone through
// every module it returns Done and the cursor of the next round. Errors:
// EINVALID for a cursor that is not from Full or Changes, *crm.AuthError
// when Zoho rejects the credentials, other CRM and transport errors
// wrapped.
func (s *source) Changes(ctx context.Context, raw string) (crm.Batch, error) {
	if raw == "" {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho: changes need the cursor of a finished full sync")
	}
	c, err := decodeCursor(raw, modeChanges)
	if err != nil {
		return crm.Batch{}, err
	}
	if c.Since.IsZero() {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho: changes cursor without a start time")
	}
	if c.Start.IsZero() {
		c = cursor{V: cursorVersion, Mode: modeChanges, Start: s.now().UTC(), Since: c.Since,
			Module: modules[0].name, Step: stepDeleted, Page: 1}
	}
	for range maxSteps {
		m, _ := moduleNamed(c.Module)
		if c.Step == stepDeleted {
			refs, more, err := s.deletedPage(ctx, m, &c)
			if err != nil {
				return crm.Batch{}, err
			}
			if !more {
				c.Step, c.Page, c.Token, c.From, c.Mark = stepList, 1, "", c.Since, time.Time{}
			}
			if len(refs) > 0 {
				return crm.Batch{Deleted: refs, Cursor: c.encode()}, nil
			}
			continue
		}
		ents, more, err := s.listPage(ctx, m, &c)
		if err != nil {
			return crm.Batch{}, err
		}
		if !more {
			next, ok := nextModule(m.name)
			if !ok {
				return crm.Batch{Entities: ents, Cursor: changesFrom(c.Start), Done: true}, nil
			}
			c = cursor{V: cursorVersion, Mode: modeChanges, Start: c.Start, Since: c.Since,
				Module: next, Step: stepDeleted, Page: 1}
		}
		if len(ents) > 0 {
			return crm.Batch{Entities: ents, Cursor: c.encode()}, nil
		}
	}
	return crm.Batch{Cursor: c.encode()}, nil
}

// listPage reads one page of module m's listing at c and moves c on. more
// is false when the listing has ended. Deals come with their customer's
// phones; in a round of changes, changed contacts and accounts bring their
// deals (a full sync reads every deal in its own pass).
func (s *source) listPage(ctx context.Context, m module, c *cursor) (ents []crm.Entity, more bool, err error) {
	v, err := s.view(ctx, m)
	if err != nil {
		return nil, false, err
	}
	q := v.query()
	q.Set("per_page", strconv.Itoa(perPage))
	q.Set("sort_by", "Modified_Time")
	q.Set("sort_order", "asc")
	if c.Token != "" {
		q.Set("page_token", c.Token)
	} else {
		q.Set("page", strconv.Itoa(max(c.Page, 1)))
	}
	req := crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + m.name, Query: q}
	if !c.From.IsZero() {
		req.Header = http.Header{"If-Modified-Since": {c.From.UTC().Format(ifModifiedSinceLayout)}}
	}
	resp, err := s.http.Do(ctx, req)
	if err != nil {
		var se *crm.StatusError
		if c.Token != "" && !c.Reread && errors.As(err, &se) && se.Status == http.StatusBadRequest {
			// Page tokens expire after a day: a sync paused that long in
			// the middle of a crowded second reads that second again from
			// its first page, once.
			c.Page, c.Token, c.Reread = 1, "", true
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("zoho: list %s: %w", m.name, err)
	}
	if resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified {
		return nil, false, nil
	}
	var ans listAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, false, fmt.Errorf("zoho: list %s: bad answer: %w", m.name, err)
	}
	items, latest := v.items(ans.Data)
	if c.Mode == modeChanges {
		ents, err = s.withDeals(ctx, items)
	} else {
		ents, err = s.finish(ctx, items, map[crm.Ref][]string{})
	}
	if err != nil {
		return nil, false, err
	}
	if latest.After(c.Mark) {
		c.Mark = latest
	}
	if !ans.Info.MoreRecords {
		return ents, false, nil
	}
	switch {
	case c.Mark.After(c.From.Add(time.Second)):
		// The page reached past the window's first second: the next
		// window starts a second before the last record read, which
		// covers records of that second not read yet whether Zoho's
		// If-Modified-Since is inclusive or not.
		c.From, c.Page, c.Token, c.Reread = c.Mark.Add(-time.Second), 1, "", false
	case c.Token == "" && c.Page < discretePages:
		c.Page++
	case ans.Info.NextPageToken != nil && *ans.Info.NextPageToken != "":
		c.Token, c.Page = *ans.Info.NextPageToken, 0
	default:
		return nil, false, fmt.Errorf("zoho: list %s: more records but no next_page_token after page %d", m.name, c.Page)
	}
	return ents, true, nil
}

// deletedAnswer is the answer of the deleted-records feed.
type deletedAnswer struct {
	Data []struct {
		ID zid `json:"id"`
	} `json:"data"`
	Info pageInfo `json:"info"`
}

// deletedPage reads one page of module m's deleted records since c.Since
// and moves c on. more is false when the feed has ended.
func (s *source) deletedPage(ctx context.Context, m module, c *cursor) (refs []crm.Ref, more bool, err error) {
	q := url.Values{"type": {"all"}, "per_page": {strconv.Itoa(perPage)}}
	if c.Token != "" {
		q.Set("page_token", c.Token)
	} else {
		q.Set("page", strconv.Itoa(max(c.Page, 1)))
	}
	req := crm.Request{Method: http.MethodGet, Path: apiPrefix + "/" + m.name + "/deleted", Query: q,
		Header: http.Header{"If-Modified-Since": {c.Since.UTC().Format(ifModifiedSinceLayout)}}}
	resp, err := s.http.Do(ctx, req)
	if err != nil {
		return nil, false, fmt.Errorf("zoho: deleted %s: %w", m.name, err)
	}
	if resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified {
		return nil, false, nil
	}
	var ans deletedAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, false, fmt.Errorf("zoho: deleted %s: bad answer: %w", m.name, err)
	}
	for _, d := range ans.Data {
		if d.ID != "" {
			refs = append(refs, crm.Ref{Kind: m.kind, ID: string(d.ID)})
		}
	}
	if !ans.Info.MoreRecords || len(ans.Data) == 0 {
		return refs, false, nil
	}
	// Deleted records never change, so offsets are stable here; past the
	// first 2000 use the page token when Zoho offers one.
	tok := ans.Info.NextPageToken
	switch {
	case (c.Token != "" || c.Page >= discretePages) && tok != nil && *tok != "":
		c.Token, c.Page = *tok, 0
	case c.Token == "":
		c.Page = max(c.Page, 1) + 1
	default:
		return nil, false, fmt.Errorf("zoho: deleted %s: more records but no next_page_token", m.name)
	}
	return refs, true, nil
}
