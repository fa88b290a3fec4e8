// Package crmsync keeps each tenant's phone index true to its CRM: full
// syncs on activation, incremental syncs after, CRM webhooks, and live
// lookups on a miss. Every change goes through one path (apply): phones are
// normalized with the tenant's country, the entity's index rows replaced in
// one transaction, and the cache keys of old and new phones invalidated
// (here, and through Config.Peers on the other instances), so the very
// next route request sees the CRM's state.
package crmsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

var (
	entitiesApplied = metrics.NewCounter(`callrouter_sync_entities_applied_total`)
	entitiesDeleted = metrics.NewCounter(`callrouter_sync_entities_deleted_total`)
	phonesRejected  = metrics.NewCounter(`callrouter_sync_phones_rejected_total`)
	syncPages       = metrics.NewCounter(`callrouter_sync_pages_total`)
	syncErrors      = metrics.NewCounter(`callrouter_sync_errors_total`)
	brokenTotal     = metrics.NewCounter(`callrouter_sync_integrations_broken_total`)
	liveLookups     = metrics.NewCounter(`callrouter_live_lookups_total`)
	liveErrors      = metrics.NewCounter(`callrouter_live_lookup_errors_total`)
	staleSkipped    = metrics.NewCounter(`callrouter_sync_stale_entities_skipped_total`)
	sweptKeys       = metrics.NewCounter(`callrouter_sync_swept_keys_total`)
	reconciles      = metrics.NewCounter(`callrouter_sync_reconciliations_total`)
	usersChanged    = metrics.NewCounter(`callrouter_crm_users_changes_total`)
	usersErrors     = metrics.NewCounter(`callrouter_crm_users_refresh_errors_total`)
)

// Engine syncs CRMs into the phone index. It is safe for concurrent use;
// sync cycles of one tenant are serialized, while webhooks and live
// lookups apply alongside a running cycle (see order).
type Engine struct {
	store    store.Store
	cache    *cache.Cache
	tenants  *tenant.Registry
	adapters map[string]crm.Adapter
	box      *secret.Box
	deps     crm.Deps
	log      *zap.Logger
	now      func() time.Time
	peers    notify.Publisher

	mu      sync.Mutex
	sources map[string]*conn // by tenant
	limits  map[string]*crm.Limiters
	locks   map[string]*sync.Mutex // by tenant: one sync cycle at a time
	orders  map[string]*order      // by tenant: the order of index writes
}

// conn is a connected Source and the configuration it was built from.
// Progress and token saves leave the configuration alone, so the Source,
// and with it the HTTP client's rate limiter, lives across pages and syncs.
type conn struct {
	src    crm.Source
	config string
	// registered is set once the source registered callrouter as the
	// CRM's telephony integration (crm.Registrar); a new conn (connect,
	// activation, restart) registers again before its first write.
	registered atomic.Bool
}

// configKey identifies an integration's configuration; sealed credentials
// differ on every PUT (fresh nonce), so a re-connect always rebuilds.
func configKey(in store.Integration) string {
	return in.CRM + "\x00" + in.BaseURL + "\x00" + string(in.Creds)
}

// Config wires an Engine.
type Config struct {
	Store    store.Store
	Cache    *cache.Cache
	Tenants  *tenant.Registry
	Adapters []crm.Adapter
	Box      *secret.Box
	// Deps are passed to adapters (tests inject transports and clocks);
	// Tokens is filled per integration by the engine.
	Deps crm.Deps
	Log  *zap.Logger
	Now  func() time.Time
	// Peers, when set, hears the cache keys of every applied batch (the
	// other instances hear them from the database's own announcement; see
	// notify).
	Peers notify.Publisher
}

// New returns an Engine.
func New(cfg Config) *Engine {
	e := &Engine{store: cfg.Store, cache: cfg.Cache, tenants: cfg.Tenants, adapters: map[string]crm.Adapter{},
		box: cfg.Box, deps: cfg.Deps, log: cfg.Log, now: cfg.Now, peers: cfg.Peers,
		sources: map[string]*conn{}, limits: map[string]*crm.Limiters{}, locks: map[string]*sync.Mutex{},
		orders: map[string]*order{}}
	for _, a := range cfg.Adapters {
		e.adapters[a.Name] = a
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// Adapter returns the adapter named crm.
func (e *Engine) Adapter(name string) (crm.Adapter, bool) {
	a, ok := e.adapters[name]
	return a, ok
}

// CRMs returns the names of the supported CRMs, sorted.
func (e *Engine) CRMs() []string {
	names := make([]string, 0, len(e.adapters))
	for n := range e.adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Seal encrypts a tenant's credentials or token for the store.
func (e *Engine) Seal(tenantID, purpose string, plaintext []byte) []byte {
	return e.box.Seal(plaintext, aad(tenantID, purpose))
}

func aad(tenantID, purpose string) []byte { return []byte(tenantID + "\x00" + purpose) }

// source returns the connected Source of a tenant's integration, building
// it again when the integration changed.
func (e *Engine) source(ctx context.Context, tenantID string) (crm.Source, store.Integration, error) {
	in, err := e.store.Integration(ctx, tenantID)
	if err != nil {
		return nil, in, err
	}
	e.mu.Lock()
	c := e.sources[tenantID]
	e.mu.Unlock()
	if c != nil && c.config == configKey(in) {
		return c.src, in, nil
	}
	a, ok := e.adapters[in.CRM]
	if !ok {
		return nil, in, domain.Errorf(domain.EINVALID, "crm: %q is not supported", in.CRM)
	}
	creds, err := e.box.Open(in.Creds, aad(tenantID, "creds"))
	if err != nil {
		return nil, in, fmt.Errorf("open credentials of %s: %w", tenantID, err)
	}
	deps := e.deps
	deps.Tokens = &tokenStore{e: e, tenantID: tenantID}
	e.mu.Lock()
	if e.limits[tenantID] == nil {
		lims := &crm.Limiters{Account: tenantID}
		// On PostgreSQL several instances may talk to this account: they
		// share its rate limit through the database.
		if ss, ok := e.store.(crm.SlotStore); ok {
			lims.Shared = ss
		}
		e.limits[tenantID] = lims
	}
	deps.Limiters = e.limits[tenantID]
	e.mu.Unlock()
	src, err := a.New(crm.Config{CRM: in.CRM, BaseURL: in.BaseURL, Creds: creds}, deps)
	if err != nil {
		return nil, in, err
	}
	e.mu.Lock()
	e.sources[tenantID] = &conn{src: src, config: configKey(in)}
	e.mu.Unlock()
	return src, in, nil
}

// Forget drops the cached connection of a tenant (after a config change).
func (e *Engine) Forget(tenantID string) {
	e.mu.Lock()
	delete(e.sources, tenantID)
	e.mu.Unlock()
}

// lock returns the mutex that serializes a tenant's sync cycles.
func (e *Engine) lock(tenantID string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.locks[tenantID]
	if l == nil {
		l = &sync.Mutex{}
		e.locks[tenantID] = l
	}
	return l
}

// orderOf returns the write order of a tenant's index.
func (e *Engine) orderOf(tenantID string) *order {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.orders[tenantID]
	if o == nil {
		o = &order{touched: map[store.EntityRef]touch{}, inflight: map[uint64]int{}}
		e.orders[tenantID] = o
	}
	return o
}

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

// Webhook applies a CRM change notification for a tenant. EINVALID when
// the body is not a notification of the tenant's CRM, ENOTFOUND without an
// integration; an inactive integration ignores it.
//
// It does not wait for a sync cycle in progress: only the index write is
// ordered with the cycle's pages (see order), so a notification is applied
// within the time its CRM reads take.
func (e *Engine) Webhook(ctx context.Context, tenantID, contentType string, body []byte) error {
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		return err
	}
	if in.State != store.IntegrationActive {
		return nil
	}
	o := e.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	b, err := src.Webhook(ctx, contentType, body)
	if err != nil {
		return err
	}
	if _, _, err := e.apply(ctx, tenantID, src, b, o, start); err != nil {
		var ae *crm.AuthError
		if errors.As(err, &ae) {
			return e.failed(ctx, in, in.Phase, in.Cursor, in.Synced, err)
		}
		return err
	}
	return nil
}

// Lookup searches the tenant's CRM for a phone on a route miss, indexes
// what it finds and returns the index rows of the phone's suffix. It
// returns nil rows without error when the integration is not active.
func (e *Engine) Lookup(ctx context.Context, tenantID, number string) ([]domain.IndexEntry, error) {
	liveLookups.Inc()
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil, nil
		}
		liveErrors.Inc()
		return nil, err
	}
	if in.State != store.IntegrationActive {
		return nil, nil
	}
	o := e.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	found, err := src.FindByPhone(ctx, number)
	if err != nil {
		liveErrors.Inc()
		return nil, err
	}
	if len(found) > 0 {
		if _, _, err := e.apply(ctx, tenantID, src, crm.Batch{Entities: found}, o, start); err != nil {
			liveErrors.Inc()
			return nil, err
		}
	}
	return e.store.LookupSuffix(ctx, tenantID, phone.Suffix(number))
}

// Users lists the CRM users of a tenant's integration. Errors: ENOTFOUND
// without an integration; the CRM's failures as crm.Upstream classes them
// (ECRMERROR, ECRMDOWN, ECRMTIMEOUT).
func (e *Engine) Users(ctx context.Context, tenantID string) ([]crm.User, error) {
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	users, err := src.Users(ctx)
	return users, crm.Upstream(in.CRM, err)
}

// register registers callrouter as the telephony integration of a CRM that
// needs one (crm.Registrar), with the tenant's employees' extension codes
// and its own phone lines.
func (e *Engine) register(ctx context.Context, tenantID string, src crm.Source) error {
	reg, ok := src.(crm.Registrar)
	if !ok {
		return nil
	}
	emps, err := e.store.ListEmployees(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("register: list employees: %w", err)
	}
	stops, err := e.store.ListStops(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("register: list the stop list: %w", err)
	}
	r := crm.Registration{ClientID: tenantID}
	for _, emp := range emps {
		if code := emp.Target(); code != "" {
			r.Codes = append(r.Codes, crm.ExtensionCode{Code: code, UserID: emp.CRMUserID})
		}
	}
	for _, st := range stops {
		if st.Kind != domain.StopClient && isDigits(st.Number) {
			r.ExternalPhones = append(r.ExternalPhones, st.Number)
		}
	}
	if err := reg.Register(ctx, r); err != nil {
		return fmt.Errorf("register callrouter as the telephony integration: %w", err)
	}
	e.mu.Lock()
	if c := e.sources[tenantID]; c != nil && c.src == src {
		c.registered.Store(true)
	}
	e.mu.Unlock()
	return nil
}

// registerOnce registers a Registrar source unless its conn already did,
// so that call events written right after a connect or an activation, before
// the first sync cycle, do not meet a CRM that refuses them.
func (e *Engine) registerOnce(ctx context.Context, tenantID string, src crm.Source) error {
	if _, ok := src.(crm.Registrar); !ok {
		return nil
	}
	e.mu.Lock()
	c := e.sources[tenantID]
	e.mu.Unlock()
	if c != nil && c.src == src && c.registered.Load() {
		return nil
	}
	err := e.register(ctx, tenantID, src)
	if err == nil || crm.IsAuth(err) {
		return err
	}
	return &registerError{err: err}
}

// registerError is a failed registration met by a call event. It hides
// the CRM's status on purpose: a refusal (a key without the
// integration-modules permission) must leave the event to be retried once
// an admin fixes the key, not fail it as a permanent 4xx would.
type registerError struct{ err error }

func (r *registerError) Error() string { return r.err.Error() + " (the event is retried)" }

// isDigits reports whether s is a phone in E.164 digits, not a SIP login.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkFields warns, when a full sync starts (a connect, an activation),
// about the fields the CRM account lacks that callrouter would write; a
// failed check does not stop the sync, /status shows it again.
func (e *Engine) checkFields(ctx context.Context, tenantID string, src crm.Source) {
	fc, ok := src.(crm.FieldChecker)
	if !ok {
		return
	}
	missing, err := fc.MissingFields(ctx)
	switch {
	case err != nil:
		e.log.Warn("cannot check the CRM account's fields", zap.String("tenant", tenantID), zap.Error(err))
	case len(missing) > 0:
		e.log.Warn("the CRM account lacks fields callrouter writes; calls are filed without them",
			zap.String("tenant", tenantID), zap.Strings("fields", missing))
	}
}

// MissingFields names the fields the tenant's CRM account lacks that
// callrouter would write (Zoho's rs_ custom fields on Leads); nil for CRMs
// that need none. The adapter reads them once per connection (a
// reconnect or an activation reads them again). Errors: ENOTFOUND
// without an integration, the CRM's as crm.Upstream classes them.
func (e *Engine) MissingFields(ctx context.Context, tenantID string) ([]string, error) {
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	fc, ok := src.(crm.FieldChecker)
	if !ok {
		return nil, nil
	}
	missing, err := fc.MissingFields(ctx)
	return missing, crm.Upstream(in.CRM, err)
}

// MappableFields lists the fields a mapping may name for entity
// ("contact", "deal") in the tenant's CRM account, with the CRM's name;
// ok is false when the CRM (or the account's token) does not let
// callrouter list them. Errors: ENOTFOUND without an integration, the
// CRM's as crm.Upstream classes them.
func (e *Engine) MappableFields(ctx context.Context, tenantID, entity string) (crmName string, fields []string, ok bool, err error) {
	src, in, err := e.source(ctx, tenantID)
	if err != nil {
		return "", nil, false, err
	}
	fl, can := src.(crm.FieldLister)
	if !can {
		return in.CRM, nil, false, nil
	}
	fields, ok, err = fl.MappableFields(ctx, entity)
	return in.CRM, fields, ok, crm.Upstream(in.CRM, err)
}

// tokenStore keeps one integration's OAuth token sealed in the store.
type tokenStore struct {
	e        *Engine
	tenantID string
}

func (t *tokenStore) LoadToken(ctx context.Context) (crm.Token, int64, error) {
	in, err := t.e.store.Integration(ctx, t.tenantID)
	if err != nil {
		return crm.Token{}, 0, err
	}
	var tok crm.Token
	if len(in.Token) > 0 {
		pt, err := t.e.box.Open(in.Token, aad(t.tenantID, "token"))
		if err != nil {
			return crm.Token{}, 0, fmt.Errorf("open token of %s: %w", t.tenantID, err)
		}
		if err := json.Unmarshal(pt, &tok); err != nil {
			return crm.Token{}, 0, fmt.Errorf("decode token of %s: %w", t.tenantID, err)
		}
	}
	return tok, in.TokenVersion, nil
}

func (t *tokenStore) SaveToken(ctx context.Context, tok crm.Token, version int64) (int64, error) {
	pt, err := json.Marshal(tok)
	if err != nil {
		return 0, fmt.Errorf("encode token: %w", err)
	}
	return t.e.store.SaveIntegrationToken(ctx, t.tenantID, t.e.Seal(t.tenantID, "token", pt), version)
}

// Writer returns the write side of a tenant's active integration.
// crm.ErrInactive (wrapped) when there is none, or it is inactive or broken.
func (e *Engine) Writer(ctx context.Context, tenantID string) (crm.Writer, error) {
	src, in, err := e.source(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, fmt.Errorf("tenant %s has no integration: %w", tenantID, crm.ErrInactive)
	}
	if err != nil {
		return nil, err
	}
	if in.State != store.IntegrationActive {
		return nil, fmt.Errorf("integration of %s is %s: %w", tenantID, in.State, crm.ErrInactive)
	}
	w, ok := src.(crm.Writer)
	if !ok {
		return nil, fmt.Errorf("crm %s cannot create records: %w", in.CRM, crm.ErrInactive)
	}
	if err := e.registerOnce(ctx, tenantID, src); err != nil {
		return nil, err
	}
	return w, nil
}

// Index puts entities callrouter created in the CRM into the phone index
// and invalidates their cache keys, as a webhook about them would.
func (e *Engine) Index(ctx context.Context, tenantID string, ents []crm.Entity) error {
	o := e.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	_, _, err := e.apply(ctx, tenantID, nil, crm.Batch{Entities: ents}, o, start)
	return err
}

// Gone reads refs from the tenant's CRM and applies what it answers, as a
// webhook naming them would: found entities replace their index rows, and
// those the CRM no longer has lose theirs. It returns the latter. The call
// events processor asks this when the CRM refuses a write linked to an
// entity the index knows. Errors: crm.ErrInactive (wrapped) without an
// active integration, and the CRM's.
func (e *Engine) Gone(ctx context.Context, tenantID string, refs []crm.Ref) ([]crm.Ref, error) {
	src, in, err := e.source(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, fmt.Errorf("tenant %s has no integration: %w", tenantID, crm.ErrInactive)
	}
	if err != nil {
		return nil, err
	}
	if in.State != store.IntegrationActive {
		return nil, fmt.Errorf("integration of %s is %s: %w", tenantID, in.State, crm.ErrInactive)
	}
	o := e.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	b, err := src.Get(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read back %d linked entities: %w", len(refs), err)
	}
	asked := make(map[crm.Ref]bool, len(refs))
	for _, r := range refs {
		asked[r] = true
	}
	var gone []crm.Ref
	for _, d := range b.Deleted {
		if asked[d] {
			gone = append(gone, d)
		}
	}
	if _, _, err := e.apply(ctx, tenantID, src, b, o, start); err != nil {
		return nil, err
	}
	return gone, nil
}

// Broken marks a tenant's integration broken with the CRM's words after it
// rejected the credentials outside a sync (a call event's write).
func (e *Engine) Broken(ctx context.Context, tenantID string, ae *crm.AuthError) error {
	brokenTotal.Inc()
	e.log.Warn("integration broken: the CRM rejected the credentials", zap.String("tenant", tenantID), zap.String("crm_error", ae.Message))
	return e.store.SetIntegrationState(ctx, tenantID, store.IntegrationBroken, ae.Message, false)
}
