package crmsync

// The order of one tenant's index writes, which keeps a late read from
// undoing a newer change.

import (
	"sync"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// order keeps one tenant's index writes true to the order in which their
// data was read from the CRM. Sync pages, webhooks and live lookups read
// the CRM without a lock (a slow CRM must not hold a webhook behind a
// 200-page sync) and write the index under mu, one batch at a time. A
// writer skips an entity that another writer stored after this one began
// reading, unless its own copy carries a strictly newer CRM update time:
// so a sync page read before a webhook's change never undoes it, nor does
// a webhook read before a sync page undo the page, whichever write reaches
// the store first. This holds within one instance, as the per-tenant lock
// it replaces did.
type order struct {
	mu       sync.Mutex
	seq      uint64                    // writes so far
	touched  map[store.EntityRef]touch // writes a read in flight may predate
	inflight map[uint64]int            // begin's seq → reads in flight
}

// touch is the last write of one entity.
type touch struct {
	seq     uint64
	updated time.Time // the CRM's update time of what was written; zero: unknown
	deleted bool
}

// begin marks the start of a read from the CRM whose result will be
// written; end must follow.
func (o *order) begin() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.seq
	o.inflight[s]++
	return s
}

// end forgets a read begun at start, and the writes no read in flight can
// predate.
func (o *order) end(start uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inflight[start]--; o.inflight[start] <= 0 {
		delete(o.inflight, start)
	}
	if len(o.inflight) == 0 {
		clear(o.touched)
		return
	}
	oldest := uint64(1<<64 - 1)
	for s := range o.inflight {
		oldest = min(oldest, s)
	}
	for r, t := range o.touched {
		if t.seq <= oldest {
			delete(o.touched, r)
		}
	}
}

// stale reports whether another writer stored r after a read begun at
// start, with nothing in this copy (updated, zero for a deletion) proving
// it newer. Callers hold mu.
func (o *order) stale(r store.EntityRef, start uint64, updated time.Time) bool {
	t, ok := o.touched[r]
	if !ok || t.seq <= start {
		return false
	}
	return t.deleted || updated.IsZero() || t.updated.IsZero() || !updated.After(t.updated)
}

// fresh drops from a batch read since start the entities that are stale
// (another writer stored them since), with their rows. Callers hold mu.
func (o *order) fresh(refs []store.EntityRef, rows []domain.IndexEntry, start uint64, updated map[store.EntityRef]time.Time) ([]store.EntityRef, []domain.IndexEntry) {
	if len(o.touched) == 0 {
		return refs, rows
	}
	var skip map[store.EntityRef]bool
	for _, r := range refs {
		if o.stale(r, start, updated[r]) {
			if skip == nil {
				skip = map[store.EntityRef]bool{}
			}
			skip[r] = true
		}
	}
	if skip == nil {
		return refs, rows
	}
	staleSkipped.Add(len(skip))
	keptRefs := make([]store.EntityRef, 0, len(refs)-len(skip))
	for _, r := range refs {
		if !skip[r] {
			keptRefs = append(keptRefs, r)
		}
	}
	keptRows := make([]domain.IndexEntry, 0, len(rows))
	for _, row := range rows {
		if !skip[store.EntityRef{Kind: row.Kind, ID: row.EntityID}] {
			keptRows = append(keptRows, row)
		}
	}
	return keptRefs, keptRows
}
