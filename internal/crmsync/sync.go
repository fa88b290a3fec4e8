package crmsync

// Sync cycles: full and incremental pages applied to the index in order,
// the reconciliation sweep, and the order that keeps a late page from
// undoing a newer change.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
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

// Result reports one sync cycle.
type Result struct {
	Phase   string
	Pages   int
	Applied int
	Deleted int
	// Swept counts the phone keys whose rows the end of a full sync
	// removed (entities the CRM no longer returned).
	Swept int
	Done  bool // the cycle reached the end of what the CRM has now
}

// Sync runs one cycle for a tenant: pages of the full sync until it is
// done (then the phase becomes incremental), or pages of changes until
// there are none, at most maxPages pages (0: no bound). Progress is stored
// after every page, so a cycle cut short resumes where it stopped. A CRM
// that rejects the credentials marks the integration broken with the CRM's
// text and returns the *crm.AuthError. An inactive or broken integration
// is not synced (nil error, zero Result). Cycles of one tenant run one at a
// time; webhooks and live lookups do not wait for them, and a page read
// before their change does not undo it (see order).
//
// A full sync is also a reconciliation: it rewrites the index row of every
// entity the CRM returns, and its last page removes the tenant's rows it
// did not write (store.FinishFullSync), the entities deleted in the CRM
// that no deletion feed or webhook reported. A cycle that reaches the end
// also refreshes the tenant's list of CRM users (refreshUsers).
func (e *Engine) Sync(ctx context.Context, tenantID string, maxPages int) (Result, error) {
	l := e.lock(tenantID)
	l.Lock()
	defer l.Unlock()
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if in.State != store.IntegrationActive {
		return Result{}, nil
	}
	res := Result{Phase: in.Phase}
	phase, cursor, synced := in.Phase, in.Cursor, in.Synced
	if phase == store.PhaseFull && cursor == "" {
		e.checkFields(ctx, tenantID, src)
		// The CRM's telephony methods may refuse calls until callrouter is
		// registered; a failed registration fails the cycle, which starts
		// over (and registers again) next time.
		if err := e.register(ctx, tenantID, src); err != nil {
			return res, e.failed(ctx, in, phase, cursor, synced, err)
		}
		// Every row this full sync writes is seen from now on; the rows it
		// leaves unseen are swept at its end.
		if err := e.store.StartFullSync(ctx, tenantID); err != nil {
			return res, fmt.Errorf("start full sync of %s: %w", tenantID, err)
		}
	}
	o := e.orderOf(tenantID)
	for maxPages <= 0 || res.Pages < maxPages {
		b, applied, deleted, err := e.page(ctx, tenantID, src, o, phase, cursor)
		if err != nil {
			return res, e.failed(ctx, in, phase, cursor, synced, err)
		}
		syncPages.Inc()
		res.Pages++
		res.Applied += applied
		res.Deleted += deleted
		synced += applied
		cursor = b.Cursor
		fullDone := b.Done && phase == store.PhaseFull
		if fullDone {
			phase = store.PhaseIncremental
		}
		done := b.Done
		// An admin who reconnected, deactivated or restarted the
		// integration meanwhile reset its sync: this cycle's position is
		// stale and must not overwrite the reset.
		if changed, err := e.changed(ctx, in); err != nil || changed {
			return res, err
		}
		if err := e.store.SaveSyncProgress(ctx, tenantID, store.SyncProgress{Phase: phase, Cursor: cursor, Synced: synced, Success: done}); err != nil {
			return res, fmt.Errorf("save sync progress of %s: %w", tenantID, err)
		}
		if done {
			res.Done, res.Phase = true, phase
			if fullDone {
				n, err := e.sweep(ctx, tenantID)
				res.Swept = n
				if err != nil {
					return res, err
				}
			}
			e.refreshUsers(ctx, tenantID, src)
			return res, nil
		}
	}
	res.Phase = phase
	return res, nil
}

// sweep ends a full sync: the index rows it did not write go (entities the
// CRM no longer returns), and their cache keys are invalidated here and on
// the other instances. It returns the number of keys removed.
func (e *Engine) sweep(ctx context.Context, tenantID string) (int, error) {
	removed, err := e.store.FinishFullSync(ctx, tenantID)
	if err != nil {
		return 0, fmt.Errorf("sweep the index of %s after its full sync: %w", tenantID, err)
	}
	if len(removed) == 0 {
		return 0, nil
	}
	sweptKeys.Add(len(removed))
	e.log.Info("full sync removed index rows of entities the CRM no longer returns",
		zap.String("tenant", tenantID), zap.Int("keys", len(removed)))
	e.cache.Invalidate(tenantID, removed...)
	if e.peers != nil {
		if err := e.peers.Publish(ctx, notify.Keys(tenantID, removed)); err != nil {
			return len(removed), fmt.Errorf("announce the sweep of %s: %w", tenantID, err)
		}
	}
	return len(removed), nil
}

// refreshUsers stores the CRM's users as its users call lists them now and,
// when the list changed, publishes the tenant's configuration again, so a
// user deactivated or removed in the CRM stops being a routing target (see
// tenant.Config.Active). A failure is logged and counted: the next cycle
// tries again, and routing keeps the last list meanwhile.
func (e *Engine) refreshUsers(ctx context.Context, tenantID string, src crm.Source) {
	users, err := src.Users(ctx)
	if err == nil {
		var changed bool
		if changed, err = e.store.ReplaceCRMUsers(ctx, tenantID, storeUsers(users)); err == nil && changed {
			usersChanged.Inc()
			err = e.reload(ctx, tenantID)
		}
	}
	if err != nil {
		usersErrors.Inc()
		e.log.Warn("refresh CRM users", zap.String("tenant", tenantID), zap.Error(err))
	}
}

// storeUsers converts the CRM's users for the store, keeping the first of
// ids listed twice (pages that shifted while being read).
func storeUsers(users []crm.User) []store.CRMUser {
	out := make([]store.CRMUser, 0, len(users))
	seen := make(map[string]bool, len(users))
	for _, u := range users {
		if u.ID == "" || seen[u.ID] {
			continue
		}
		seen[u.ID] = true
		out = append(out, store.CRMUser{ID: u.ID, Name: u.Name, Email: u.Email, Active: u.Active})
	}
	return out
}

// reload publishes a tenant's configuration again, here and on the other
// instances.
func (e *Engine) reload(ctx context.Context, tenantID string) error {
	if err := e.tenants.Reload(ctx, tenantID); err != nil {
		return fmt.Errorf("reload tenant %s: %w", tenantID, err)
	}
	if e.peers != nil {
		if err := e.peers.Publish(ctx, notify.Tenant(tenantID)); err != nil {
			return fmt.Errorf("announce tenant %s: %w", tenantID, err)
		}
	}
	return nil
}

// page reads one page of the cycle and writes it to the index. The tenant's
// index is locked only while the page is written (order), so webhooks and
// live lookups are applied while a slow CRM answers the page.
func (e *Engine) page(ctx context.Context, tenantID string, src crm.Source, o *order, phase, cursor string) (b crm.Batch, applied, deleted int, err error) {
	start := o.begin()
	defer o.end(start)
	if phase == store.PhaseFull {
		b, err = src.Full(ctx, cursor)
	} else {
		b, err = src.Changes(ctx, cursor)
	}
	if err != nil {
		return b, 0, 0, err
	}
	applied, deleted, err = e.apply(ctx, tenantID, src, b, o, start)
	return b, applied, deleted, err
}

// changed reports whether an admin changed the integration since in was
// read (Put and SetIntegrationState stamp UpdatedAt; progress and token
// saves do not).
func (e *Engine) changed(ctx context.Context, in store.Integration) (bool, error) {
	cur, err := e.store.Integration(ctx, in.TenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-read integration of %s: %w", in.TenantID, err)
	}
	return !cur.UpdatedAt.Equal(in.UpdatedAt), nil
}

// SyncDue runs Sync unless the integration is incremental and its CRM's
// MinInterval has not passed since the last cycle (Zoho's daily credits):
// what the periodic job calls. Result is zero when the cycle was not due.
//
// When the tenant's reconcile_interval_hours have passed since the last
// reconciliation (store.Integration.ReconciledAt; never is due), the cycle
// starts a full sync instead of reading changes: its end removes the index
// rows of entities the CRM no longer returns, whatever its deletion feed
// missed (items purged from a trash, deletions older than the feed keeps,
// webhooks lost). Like any full sync it spans as many jobs as it takes and
// resumes after a restart; changes made meanwhile are read after it.
func (e *Engine) SyncDue(ctx context.Context, tenantID string, maxPages int) (Result, error) {
	in, err := e.store.Integration(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if a, ok := e.adapters[in.CRM]; ok && in.Phase == store.PhaseIncremental && !in.LastSyncAt.IsZero() &&
		e.now().Sub(in.LastSyncAt) < a.MinInterval {
		return Result{Done: true, Phase: in.Phase}, nil
	}
	if in.State == store.IntegrationActive && in.Phase == store.PhaseIncremental && e.reconcileDue(in) {
		if err := e.reconcile(ctx, in); err != nil {
			return Result{}, err
		}
	}
	return e.Sync(ctx, tenantID, maxPages)
}

// reconcileDue reports whether an incremental integration's periodic
// reconciliation is due.
func (e *Engine) reconcileDue(in store.Integration) bool {
	hours := domain.DefaultReconcileIntervalHours
	if t := e.tenants.Lookup(in.TenantID); t != nil && t.Settings.ReconcileIntervalHours > 0 {
		hours = t.Settings.ReconcileIntervalHours
	}
	return in.ReconciledAt.IsZero() || e.now().Sub(in.ReconciledAt) >= time.Duration(hours)*time.Hour
}

// reconcile turns an incremental integration back to the start of a full
// sync, under the tenant's cycle lock so no cycle in flight saves its
// position over it. The state, times and last error are kept: the admin
// sees a full sync in progress, not a reset.
func (e *Engine) reconcile(ctx context.Context, in store.Integration) error {
	l := e.lock(in.TenantID)
	l.Lock()
	defer l.Unlock()
	cur, err := e.store.Integration(ctx, in.TenantID)
	if err != nil {
		return err
	}
	if cur.Phase != store.PhaseIncremental || !cur.UpdatedAt.Equal(in.UpdatedAt) || !cur.ReconciledAt.Equal(in.ReconciledAt) {
		return nil // someone else moved it meanwhile
	}
	reconciles.Inc()
	e.log.Info("periodic reconciliation: starting a full sync", zap.String("tenant", in.TenantID))
	if err := e.store.SaveSyncProgress(ctx, in.TenantID, store.SyncProgress{Phase: store.PhaseFull}); err != nil {
		return fmt.Errorf("start the reconciliation of %s: %w", in.TenantID, err)
	}
	return nil
}

// failed records a failed cycle; an authentication failure also breaks the
// integration until an admin reconnects it. Nothing is recorded when the
// integration changed meanwhile: the failure belongs to a configuration
// that no longer exists.
func (e *Engine) failed(ctx context.Context, in store.Integration, phase, cursor string, synced int, err error) error {
	tenantID := in.TenantID
	if changed, cerr := e.changed(context.WithoutCancel(ctx), in); cerr != nil || changed {
		return errors.Join(err, cerr)
	}
	syncErrors.Inc()
	msg := err.Error()
	var ae *crm.AuthError
	if errors.As(err, &ae) {
		brokenTotal.Inc()
		msg = ae.Message
		if serr := e.store.SetIntegrationState(ctx, tenantID, store.IntegrationBroken, msg, false); serr != nil {
			return errors.Join(err, serr)
		}
		e.log.Warn("integration broken: the CRM rejected the credentials", zap.String("tenant", tenantID), zap.String("crm_error", msg))
	}
	if serr := e.store.SaveSyncProgress(context.WithoutCancel(ctx), tenantID,
		store.SyncProgress{Phase: phase, Cursor: cursor, Synced: synced, Error: msg}); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// apply writes one batch to the index: refetched entities are read first,
// every named entity's rows are replaced, and the cache keys of old and new
// phones are invalidated. start is when the batch's read from the CRM
// began (o.begin): entities another writer stored since are left as that
// writer left them, unless the batch's copy is newer by the CRM's clock.
func (e *Engine) apply(ctx context.Context, tenantID string, src crm.Source, b crm.Batch, o *order, start uint64) (applied, deleted int, err error) {
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
	if t := e.tenants.Lookup(tenantID); t != nil {
		country = t.Settings.DefaultCountry
	}
	refs := make([]store.EntityRef, 0, len(b.Entities)+len(b.Deleted))
	seen := make(map[store.EntityRef]int, cap(refs))
	updated := make(map[store.EntityRef]time.Time, len(b.Entities))
	var rows []domain.IndexEntry
	now := e.now().UTC()
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
		rows = append(rows, e.rows(tenantID, country, ent, now)...)
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
		removed, err = e.store.ReplaceEntities(ctx, tenantID, refs, rows)
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
	e.cache.Invalidate(tenantID, suffixes...)
	if e.peers != nil {
		// The batch is committed; failing it makes a sync page or a webhook
		// retry, which applies and announces it again.
		if err := e.peers.Publish(ctx, notify.Keys(tenantID, suffixes)); err != nil {
			return 0, 0, fmt.Errorf("announce batch of %s: %w", tenantID, err)
		}
	}
	entitiesApplied.Add(applied)
	entitiesDeleted.Add(deleted)
	return applied, deleted, nil
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

// rows turns a CRM entity into index rows, one per distinct valid phone.
func (e *Engine) rows(tenantID, country string, ent crm.Entity, now time.Time) []domain.IndexEntry {
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
