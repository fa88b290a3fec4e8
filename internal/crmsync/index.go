package crmsync

// The index side: every change read from a CRM is written to the phone
// index here, in the tenant's order.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// indexer writes what was read from the CRMs to the phone index: the one
// path of every change, whichever part read it. It keeps each tenant's
// order of index writes (see order), which the parts share.
type indexer struct {
	store   store.Store
	cache   *cache.Cache
	tenants *tenant.Registry
	peers   notify.Publisher
	log     *zap.Logger
	now     func() time.Time

	mu     sync.Mutex
	orders map[string]*order // by tenant: the order of index writes
}

func newIndexer(st store.Store, c *cache.Cache, tenants *tenant.Registry, peers notify.Publisher, log *zap.Logger, now func() time.Time) *indexer {
	return &indexer{store: st, cache: c, tenants: tenants, peers: peers, log: log, now: now, orders: map[string]*order{}}
}

// orderOf returns the write order of a tenant's index.
func (x *indexer) orderOf(tenantID string) *order {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.orders[tenantID]
	if o == nil {
		o = &order{touched: map[store.EntityRef]touch{}, inflight: map[uint64]int{}}
		x.orders[tenantID] = o
	}
	return o
}

// apply writes one batch to the index: refetched entities are read first,
// every named entity's rows are replaced, and the cache keys of old and new
// phones are invalidated. start is when the batch's read from the CRM
// began (o.begin): entities another writer stored since are left as that
// writer left them, unless the batch's copy is newer by the CRM's clock.
func (x *indexer) apply(ctx context.Context, tenantID string, src crm.Source, b crm.Batch, o *order, start uint64) (applied, deleted int, err error) {
	// A read can name more entities to read (amoCRM: the leads of a changed
	// contact carry its phones); two rounds cover that, and the bound keeps
	// a CRM that keeps answering with more from looping us.
	for refetch, round := b.Refetch, 0; len(refetch) > 0 && round < 2; round++ {
		got, err := src.Get(ctx, refetch)
		if err != nil {
			return 0, 0, err
		}
		b.Entities = append(b.Entities, got.Entities...)
		b.Deleted = append(b.Deleted, got.Deleted...)
		refetch = got.Refetch
	}
	if len(b.Entities) == 0 && len(b.Deleted) == 0 {
		return 0, 0, nil
	}
	country := ""
	if t := x.tenants.Lookup(tenantID); t != nil {
		country = t.Settings.DefaultCountry
	}
	refs := make([]store.EntityRef, 0, len(b.Entities)+len(b.Deleted))
	seen := make(map[store.EntityRef]int, cap(refs))
	updated := make(map[store.EntityRef]time.Time, len(b.Entities))
	var rows []domain.IndexEntry
	now := x.now().UTC()
	// Deletions first: an entity deleted and re-created in one batch keeps
	// its new rows.
	for _, d := range b.Deleted {
		r := store.EntityRef{Kind: d.Kind, ID: d.ID}
		if _, ok := seen[r]; !ok {
			seen[r] = -1
			refs = append(refs, r)
		}
	}
	for _, ent := range b.Entities {
		r := store.EntityRef{Kind: ent.Kind, ID: ent.ID}
		if _, ok := seen[r]; !ok {
			refs = append(refs, r)
		}
		seen[r] = 1
		updated[r] = ent.UpdatedAt
		rows = append(rows, x.rows(tenantID, country, ent, now)...)
	}
	// Later entries of one entity in a batch win, as in the CRM's order.
	rows = lastPerKey(rows)

	o.mu.Lock()
	refs, rows = o.fresh(refs, rows, start, updated)
	for _, r := range refs {
		if seen[r] == 1 {
			applied++
		} else {
			deleted++
		}
	}
	var removed []string
	if len(refs) > 0 {
		removed, err = x.store.ReplaceEntities(ctx, tenantID, refs, rows)
	}
	if err == nil {
		o.seq++
		for _, r := range refs {
			o.touched[r] = touch{seq: o.seq, updated: updated[r], deleted: seen[r] != 1}
		}
	}
	o.mu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("apply batch of %s: %w", tenantID, err)
	}
	if len(refs) == 0 {
		return 0, 0, nil
	}
	suffixes := removed
	for _, r := range rows {
		suffixes = append(suffixes, r.Suffix)
	}
	x.cache.Invalidate(tenantID, suffixes...)
	if x.peers != nil {
		// The batch is committed; failing it makes a sync page or a webhook
		// retry, which applies and announces it again.
		if err := x.peers.Publish(ctx, notify.Keys(tenantID, suffixes)); err != nil {
			return 0, 0, fmt.Errorf("announce batch of %s: %w", tenantID, err)
		}
	}
	entitiesApplied.Add(applied)
	entitiesDeleted.Add(deleted)
	return applied, deleted, nil
}

// rows turns a CRM entity into index rows, one per distinct valid phone.
func (x *indexer) rows(tenantID, country string, ent crm.Entity, now time.Time) []domain.IndexEntry {
	updated := ent.UpdatedAt.UTC()
	if updated.IsZero() {
		updated = now
	}
	out := make([]domain.IndexEntry, 0, len(ent.Phones))
	seen := map[string]bool{}
	for _, raw := range ent.Phones {
		p, err := phone.Ingest(raw, country)
		if err != nil {
			phonesRejected.Inc()
			continue
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, domain.IndexEntry{TenantID: tenantID, Phone: p, Suffix: phone.Suffix(p), Kind: ent.Kind,
			EntityID: ent.ID, Open: ent.Open, OwnerID: ent.OwnerID, Name: ent.Name, UpdatedAt: updated})
	}
	return out
}

func lastPerKey(rows []domain.IndexEntry) []domain.IndexEntry {
	type key struct {
		kind      domain.EntityKind
		id, phone string
	}
	idx := make(map[key]int, len(rows))
	out := rows[:0]
	for _, r := range rows {
		k := key{r.Kind, r.EntityID, r.Phone}
		if i, ok := idx[k]; ok {
			out[i] = r
			continue
		}
		idx[k] = len(out)
		out = append(out, r)
	}
	return out
}

// sweep ends a full sync: the index rows it did not write go (entities the
// CRM no longer returns), and their cache keys are invalidated here and on
// the other instances. It returns the number of keys removed.
func (x *indexer) sweep(ctx context.Context, tenantID string) (int, error) {
	removed, err := x.store.FinishFullSync(ctx, tenantID)
	if err != nil {
		return 0, fmt.Errorf("sweep the index of %s after its full sync: %w", tenantID, err)
	}
	if len(removed) == 0 {
		return 0, nil
	}
	sweptKeys.Add(len(removed))
	x.log.Info("full sync removed index rows of entities the CRM no longer returns",
		zap.String("tenant", tenantID), zap.Int("keys", len(removed)))
	x.cache.Invalidate(tenantID, removed...)
	if x.peers != nil {
		if err := x.peers.Publish(ctx, notify.Keys(tenantID, removed)); err != nil {
			return len(removed), fmt.Errorf("announce the sweep of %s: %w", tenantID, err)
		}
	}
	return len(removed), nil
}
