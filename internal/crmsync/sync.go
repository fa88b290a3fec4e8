package crmsync

// Sync cycles: full and incremental pages applied to the index in order,
// the periodic reconciliation and the CRM users' refresh.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Syncer runs sync cycles: one at a time per tenant, while webhooks, live
// lookups and call events apply alongside (see order). It is safe for
// concurrent use.
type Syncer struct {
	conns   *Conns
	index   *indexer
	store   store.Store
	tenants *tenant.Registry
	peers   notify.Publisher
	log     *zap.Logger
	now     func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex // by tenant: one sync cycle at a time
}

func newSyncer(conns *Conns, index *indexer, st store.Store, tenants *tenant.Registry, peers notify.Publisher, log *zap.Logger, now func() time.Time) *Syncer {
	return &Syncer{conns: conns, index: index, store: st, tenants: tenants, peers: peers, log: log, now: now,
		locks: map[string]*sync.Mutex{}}
}

// lock returns the mutex that serializes a tenant's sync cycles.
func (s *Syncer) lock(tenantID string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[tenantID]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[tenantID] = l
	}
	return l
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
func (s *Syncer) Sync(ctx context.Context, tenantID string, maxPages int) (Result, error) {
	l := s.lock(tenantID)
	l.Lock()
	defer l.Unlock()
	src, in, err := s.conns.source(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if in.State != store.IntegrationActive {
		return Result{}, nil
	}
	res := Result{Phase: in.Phase}
	phase, cursor, synced := in.Phase, in.Cursor, in.Synced
	if phase == store.PhaseFull && cursor == "" {
		s.conns.checkFields(ctx, tenantID, src)
		// The CRM's telephony methods may refuse calls until callrouter is
		// registered; a failed registration fails the cycle, which starts
		// over (and registers again) next time.
		if err := s.conns.register(ctx, tenantID, src); err != nil {
			return res, s.conns.failed(ctx, in, phase, cursor, synced, err)
		}
		// Every row this full sync writes is seen from now on; the rows it
		// leaves unseen are swept at its end.
		if err := s.store.StartFullSync(ctx, tenantID); err != nil {
			return res, fmt.Errorf("start full sync of %s: %w", tenantID, err)
		}
	}
	o := s.index.orderOf(tenantID)
	for maxPages <= 0 || res.Pages < maxPages {
		b, applied, deleted, err := s.page(ctx, tenantID, src, o, phase, cursor)
		if err != nil {
			return res, s.conns.failed(ctx, in, phase, cursor, synced, err)
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
		if changed, err := s.conns.changed(ctx, in); err != nil || changed {
			return res, err
		}
		if err := s.store.SaveSyncProgress(ctx, tenantID, store.SyncProgress{Phase: phase, Cursor: cursor, Synced: synced, Success: done}); err != nil {
			return res, fmt.Errorf("save sync progress of %s: %w", tenantID, err)
		}
		if done {
			res.Done, res.Phase = true, phase
			if fullDone {
				n, err := s.index.sweep(ctx, tenantID)
				res.Swept = n
				if err != nil {
					return res, err
				}
			}
			s.refreshUsers(ctx, tenantID, src)
			return res, nil
		}
	}
	res.Phase = phase
	return res, nil
}

// refreshUsers stores the CRM's users as its users call lists them now and,
// when the list changed, publishes the tenant's configuration again, so a
// user deactivated or removed in the CRM stops being a routing target (see
// tenant.Config.Active). A failure is logged and counted: the next cycle
// tries again, and routing keeps the last list meanwhile.
func (s *Syncer) refreshUsers(ctx context.Context, tenantID string, src crm.Source) {
	users, err := src.Users(ctx)
	if err == nil {
		var changed bool
		if changed, err = s.store.ReplaceCRMUsers(ctx, tenantID, storeUsers(users)); err == nil && changed {
			usersChanged.Inc()
			err = s.reload(ctx, tenantID)
		}
	}
	if err != nil {
		usersErrors.Inc()
		s.log.Warn("refresh CRM users", zap.String("tenant", tenantID), zap.Error(err))
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
func (s *Syncer) reload(ctx context.Context, tenantID string) error {
	if err := s.tenants.Reload(ctx, tenantID); err != nil {
		return fmt.Errorf("reload tenant %s: %w", tenantID, err)
	}
	if s.peers != nil {
		if err := s.peers.Publish(ctx, notify.Tenant(tenantID)); err != nil {
			return fmt.Errorf("announce tenant %s: %w", tenantID, err)
		}
	}
	return nil
}

// page reads one page of the cycle and writes it to the index. The tenant's
// index is locked only while the page is written (order), so webhooks and
// live lookups are applied while a slow CRM answers the page.
func (s *Syncer) page(ctx context.Context, tenantID string, src crm.Source, o *order, phase, cursor string) (b crm.Batch, applied, deleted int, err error) {
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
	applied, deleted, err = s.index.apply(ctx, tenantID, src, b, o, start)
	return b, applied, deleted, err
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
func (s *Syncer) SyncDue(ctx context.Context, tenantID string, maxPages int) (Result, error) {
	in, err := s.store.Integration(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if a, ok := s.conns.Adapter(in.CRM); ok && in.Phase == store.PhaseIncremental && !in.LastSyncAt.IsZero() &&
		s.now().Sub(in.LastSyncAt) < a.MinInterval {
		return Result{Done: true, Phase: in.Phase}, nil
	}
	if in.State == store.IntegrationActive && in.Phase == store.PhaseIncremental && s.reconcileDue(in) {
		if err := s.reconcile(ctx, in); err != nil {
			return Result{}, err
		}
	}
	return s.Sync(ctx, tenantID, maxPages)
}

// reconcileDue reports whether an incremental integration's periodic
// reconciliation is due.
func (s *Syncer) reconcileDue(in store.Integration) bool {
	hours := domain.DefaultReconcileIntervalHours
	if t := s.tenants.Lookup(in.TenantID); t != nil && t.Settings.ReconcileIntervalHours > 0 {
		hours = t.Settings.ReconcileIntervalHours
	}
	return in.ReconciledAt.IsZero() || s.now().Sub(in.ReconciledAt) >= time.Duration(hours)*time.Hour
}

// reconcile turns an incremental integration back to the start of a full
// sync, under the tenant's cycle lock so no cycle in flight saves its
// position over it. The state, times and last error are kept: the admin
// sees a full sync in progress, not a reset.
func (s *Syncer) reconcile(ctx context.Context, in store.Integration) error {
	l := s.lock(in.TenantID)
	l.Lock()
	defer l.Unlock()
	cur, err := s.store.Integration(ctx, in.TenantID)
	if err != nil {
		return err
	}
	if cur.Phase != store.PhaseIncremental || !cur.UpdatedAt.Equal(in.UpdatedAt) || !cur.ReconciledAt.Equal(in.ReconciledAt) {
		return nil // someone else moved it meanwhile
	}
	reconciles.Inc()
	s.log.Info("periodic reconciliation: starting a full sync", zap.String("tenant", in.TenantID))
	if err := s.store.SaveSyncProgress(ctx, in.TenantID, store.SyncProgress{Phase: store.PhaseFull}); err != nil {
		return fmt.Errorf("start the reconciliation of %s: %w", in.TenantID, err)
	}
	return nil
}
