package amocrm

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

// cursorVersion is written into every cursor so that a later format can
// tell old cursors apart.
const cursorVersion = 1

// skew bounds the difference between callrouter's clock and amoCRM's
// (and how late amoCRM may stamp a change). A time this far before our
// now is in amoCRM's past: no record or event will get it any more.
const skew = 10 * time.Minute

// cursor is the position of a sync, stored by the engine between pages.
//
// A pass walks phases: each kind in syncKind order, then (incremental
// passes only) the deletion events. Within a kind it pages by keyset:
// records with updated_at ≥ From, oldest first, page Page of them.
type cursor struct {
	V    int  `json:"v"`
	Full bool `json:"full,omitempty"`
	// Phase is the kind's index (see syncKind); numKinds is the event phase.
	Phase int `json:"phase"`
	// From is the keyset position in the current kind: an updated_at (unix
	// seconds). The event phase pages by number from Events instead.
	From int64 `json:"from,omitempty"`
	// Page is the page of records at From, or of events, from 1.
	Page int `json:"page"`
	// Pos holds per kind the updated_at the next pass starts from: for
	// kinds this pass has finished, where they ended; for the others, where
	// this pass started them.
	Pos [numKinds]int64 `json:"pos"`
	// Events is the created_at from which this pass reads deletion events;
	// EventsMax is the latest created_at it has seen there.
	Events    int64 `json:"events"`
	EventsMax int64 `json:"events_max,omitempty"`
	// Started is when the full sync began (unix seconds, our clock).
	Started int64 `json:"started"`
}

func (c *cursor) encode() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("amocrm: BUG: encode cursor: %v", err))
	}
	return string(b)
}

// decodeCursor parses a cursor of the wanted mode; EINVALID otherwise.
func decodeCursor(s string, full bool) (*cursor, error) {
	var c cursor
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.V != cursorVersion ||
		c.Phase < 0 || c.Phase > numKinds || c.Page < 1 || c.Full && c.Phase == numKinds {
		return nil, domain.Errorf(domain.EINVALID, "%s: cursor %q is not an amoCRM sync position", name, s)
	}
	if c.Full != full {
		if full {
			return nil, domain.Errorf(domain.EINVALID, "%s: cursor is an incremental position, not a full sync's", name)
		}
		return nil, domain.Errorf(domain.EINVALID, "%s: cursor is a full sync's position; finish the full sync first", name)
	}
	return &c, nil
}

// Full returns the next page of a full sync, starting at cursor "" (see
// the package documentation for the order). Done comes with the last
// page; its Cursor starts incremental syncs. Errors: EINVALID for a cursor
// that is not a full sync's, and the CRM's errors (*crm.AuthError,
// *crm.StatusError, transport and context errors, wrapped).
func (s *source) Full(ctx context.Context, cur string) (crm.Batch, error) {
	var c *cursor
	if cur == "" {
		now := s.now().Unix()
		c = &cursor{V: cursorVersion, Full: true, Page: 1, Started: now, Events: now - skewSeconds}
	} else {
		var err error
		if c, err = decodeCursor(cur, true); err != nil {
			return crm.Batch{}, err
		}
	}
	return s.step(ctx, c)
}

// Changes returns the next page of changes after cursor, which comes from
// a finished Full or an earlier Changes. Done ends a pass; its Cursor is
// where the next pass starts. Errors: EINVALID for a cursor that is not an
// incremental position, and the CRM's errors as for Full.
func (s *source) Changes(ctx context.Context, cur string) (crm.Batch, error) {
	c, err := decodeCursor(cur, false)
	if err != nil {
		return crm.Batch{}, err
	}
	return s.step(ctx, c)
}

// step reads pages until one has something to report or the pass ends,
// and returns it with the cursor after it.
func (s *source) step(ctx context.Context, c *cursor) (crm.Batch, error) {
	for {
		var b crm.Batch
		var err error
		if c.Phase < numKinds {
			b, err = s.kindPage(ctx, c)
		} else {
			b, err = s.eventPage(ctx, c)
		}
		if err != nil {
			return crm.Batch{}, err
		}
		if c.Phase > numKinds || c.Full && c.Phase == numKinds {
			// The pass is over: the next one starts at the first kind.
			next := cursor{V: cursorVersion, Phase: 0, From: c.Pos[0], Page: 1, Pos: c.Pos,
				Events: c.Events, Started: c.Started}
			b.Cursor, b.Done = next.encode(), true
			return b, nil
		}
		if len(b.Entities) > 0 || len(b.Deleted) > 0 || len(b.Refetch) > 0 {
			b.Cursor = c.encode()
			return b, nil
		}
	}
}

// kindPage reads one page of the current kind and advances c.
func (s *source) kindPage(ctx context.Context, c *cursor) (crm.Batch, error) {
	k := syncKind(c.Phase)
	path, _ := kindPath(k)
	t := s.now()
	q := url.Values{
		"limit":             {strconv.Itoa(pageLimit)},
		"page":              {strconv.Itoa(c.Page)},
		"order[updated_at]": {"asc"},
	}
	if c.From > 0 {
		q.Set("filter[updated_at][from]", strconv.FormatInt(c.From, 10))
	}
	// Incremental passes need the leads of changed contacts (see
	// refetchLeads); a full sync reads every lead anyway.
	switch {
	case k == domain.KindLead:
		q.Set("with", "contacts")
	case k == domain.KindContact && !c.Full:
		q.Set("with", "leads")
	}
	p, err := s.list(ctx, path, q)
	if err != nil {
		return crm.Batch{}, fmt.Errorf("sync %s records, page %d: %w", k, c.Page, err)
	}
	items := p.entities(k)

	var b crm.Batch
	if k == domain.KindLead {
		if b.Entities, err = s.leads(ctx, items, nil); err != nil {
			return crm.Batch{}, fmt.Errorf("sync leads: %w", err)
		}
	} else {
		b.Entities = make([]crm.Entity, len(items))
		for i := range items {
			b.Entities[i] = items[i].entity(k)
		}
	}
	if k == domain.KindContact && !c.Full {
		b.Refetch = refetchLeads(items, c.Pos[c.Phase])
	}

	last := c.From
	for i := range items {
		last = max(last, items[i].UpdatedAt)
	}
	switch {
	case !p.more(len(items), pageLimit):
		// The kind is done: the next pass starts where it ended.
		c.Pos[c.Phase] = settle(last, t)
		c.Phase, c.Page, c.From = c.Phase+1, 1, 0
		if c.Phase < numKinds {
			c.From = c.Pos[c.Phase]
		}
	case last > c.From:
		c.From, c.Page = last, 1
	default:
		// A whole page in one second: page on within it.
		c.Page++
	}
	return b, nil
}

// refetchLeads returns the leads of the contacts changed since pos (the
// second pos itself included, since records of that second may have
// changed after the last pass read it): their phones are the contacts'.
func refetchLeads(contacts []apiEntity, pos int64) []crm.Ref {
	var refs []crm.Ref
	seen := map[int64]bool{}
	for i := range contacts {
		if contacts[i].UpdatedAt < pos {
			continue
		}
		for _, l := range contacts[i].Embedded.Leads {
			if !seen[l.ID] {
				seen[l.ID] = true
				refs = append(refs, crm.Ref{Kind: domain.KindLead, ID: strconv.FormatInt(l.ID, 10)})
			}
		}
	}
	return refs
}

// eventPage reads one page of deletion events and advances c. Events are
// paged by number from a fixed created_at: new events only add pages (or,
// newest first, repeat some), so none is skipped.
func (s *source) eventPage(ctx context.Context, c *cursor) (crm.Batch, error) {
	t := s.now()
	q := url.Values{
		"limit":                    {strconv.Itoa(eventPageLimit)},
		"page":                     {strconv.Itoa(c.Page)},
		"filter[created_at][from]": {strconv.FormatInt(c.Events, 10)},
		"filter[type][]":           {"contact_deleted", "lead_deleted", "company_deleted"},
	}
	p, err := s.list(ctx, "/api/v4/events", q)
	if err != nil {
		return crm.Batch{}, fmt.Errorf("sync deletion events: %w", err)
	}
	var b crm.Batch
	seen := map[crm.Ref]bool{}
	for _, e := range p.Embedded.Events {
		c.EventsMax = max(c.EventsMax, e.CreatedAt)
		k := domain.ParseKind(e.EntityType)
		if _, ok := kindPath(k); !ok || e.EntityID <= 0 {
			continue
		}
		ref := crm.Ref{Kind: k, ID: strconv.FormatInt(e.EntityID, 10)}
		if !seen[ref] {
			seen[ref] = true
			b.Deleted = append(b.Deleted, ref)
		}
	}
	if p.more(len(p.Embedded.Events), eventPageLimit) {
		c.Page++
	} else {
		c.Events, c.EventsMax = settle(max(c.Events, c.EventsMax), t), 0
		c.Phase++
	}
	return b, nil
}

// skewSeconds is skew in unix seconds.
const skewSeconds = int64(skew / time.Second)

// settle returns where the next pass reads a feed from, given the latest
// time read from it (last) and when the read of its final page began (t).
// Reads are inclusive, because amoCRM may stamp more changes with the
// second just read; but once that second is skew in the past nothing more
// can come with it, and neither with any second up to t-skew, in which the
// read found nothing. Moving on spares every later pass from reading the
// last second's records again, which after a bulk import can be thousands.
func settle(last int64, t time.Time) int64 {
	return max(last, t.Unix()-skewSeconds)
}
