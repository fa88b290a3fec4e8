package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
)

// The SALESmanago ⇄ Zoho CRM contact sync runs as River jobs too: a
// periodic tick, which only the elected leader inserts, looks at every
// active connection and enqueues a pass for each one that smsync.Engine.Due
// says is due (the first full sync, a 00/06/12/18 pass in the tenant's
// zone, or an incremental pass once the interval has passed); an admin's
// "sync now" enqueues a manual pass. Any instance may run a pass; the
// engine's lease keeps a tenant's passes on one instance at a time and a
// per-tenant lock here keeps them one at a time within it.

// SMPassArgs is one pass of a tenant's SALESmanago sync: a manual one
// (asked by an admin), or the pass due when the job runs.
type SMPassArgs struct {
	TenantID string `json:"tenant_id"`
	Manual   bool   `json:"manual,omitempty"`
}

// Kind implements river.JobArgs.
func (SMPassArgs) Kind() string { return "salesmanago_pass" }

// InsertOpts: like sync jobs, passes are not unique in River (a job left
// running by a killed instance would block the tenant for an hour); the
// tick adds none for a tenant that has one waiting. A failed pass is
// recorded by the engine and tried again by a later tick, not by River.
func (SMPassArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueSM, MaxAttempts: 3}
}

// smTickArgs is the periodic job that enqueues the passes due.
type smTickArgs struct{}

func (smTickArgs) Kind() string { return "salesmanago_tick" }

const queueSM = "salesmanago"

// SMStore is what the SALESmanago jobs read of the store.
type SMStore interface {
	ListSM(ctx context.Context) ([]store.SMConn, error)
	SMConn(ctx context.Context, tenantID string) (store.SMConn, error)
	Tenant(ctx context.Context, id string) (domain.Tenant, error)
}

// smPassTimeout bounds one pass: under the engine's 30-minute lease,
// which a pass does not renew. A pass cut short resumes from its stored
// chunks in the next one.
const smPassTimeout = 25 * time.Minute

// smBusySnooze is how long a manual pass waits when the tenant's pass is
// already running. Short: the pass it met may be the one ending as it
// arrived (its lock and lease let go a moment after its record is
// written), and "sync now" should not then wait half a minute.
const smBusySnooze = 5 * time.Second

// tenantLocks lets one pass of a tenant run at a time in this process.
type tenantLocks struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (l *tenantLocks) try(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[id] {
		return false
	}
	if l.busy == nil {
		l.busy = map[string]bool{}
	}
	l.busy[id] = true
	return true
}

func (l *tenantLocks) release(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.busy, id)
}

// smPassWorker runs passes.
type smPassWorker struct {
	river.WorkerDefaults[SMPassArgs]
	cfg   *Config
	locks *tenantLocks
}

// Timeout implements river.Worker.
func (w *smPassWorker) Timeout(*river.Job[SMPassArgs]) time.Duration { return smPassTimeout }

// Work runs the pass: a manual one, or the one due now (none when another
// job ran it meanwhile). A pass that finds the tenant's sync running
// elsewhere is dropped (a manual one waits and tries again); a failed
// pass is not retried by River: the engine recorded its error, and the
// tick tries again after the retry interval.
func (w *smPassWorker) Work(ctx context.Context, job *river.Job[SMPassArgs]) error {
	id, manual := job.Args.TenantID, job.Args.Manual
	if !w.locks.try(id) {
		if manual {
			return river.JobSnooze(smBusySnooze)
		}
		return nil
	}
	defer w.locks.release(id)
	kind, slot := smsync.KindManual, time.Time{}
	if !manual {
		c, err := w.cfg.SMStore.SMConn(ctx, id)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil // disconnected meanwhile
		}
		if err != nil {
			return fmt.Errorf("salesmanago connection of %s: %w", id, err)
		}
		loc, err := w.cfg.location(ctx, id)
		if err != nil {
			return err
		}
		if kind, slot = w.cfg.SALESmanago.Due(c, w.cfg.Now(), loc); kind == "" {
			return nil
		}
	}
	res, err := w.cfg.SALESmanago.Run(ctx, id, kind, slot)
	switch code := domain.ErrorCode(err); {
	case errors.Is(err, smsync.ErrBusy):
		if manual {
			return river.JobSnooze(smBusySnooze)
		}
		return nil
	case err != nil && (code == domain.ENOTFOUND || code == domain.ECONFLICT):
		return nil // disconnected or paused meanwhile
	case err != nil:
		// Recorded as the connection's last error by the engine.
		w.cfg.Log.Warn("salesmanago pass failed", zap.String("tenant", id), zap.String("kind", kind), zap.Error(err))
		return nil
	}
	w.cfg.Log.Info("salesmanago pass", zap.String("tenant", id), zap.String("kind", res.Kind), zap.Int("persons", res.Persons),
		zap.Int("to_zoho", res.ToZoho), zap.Int("to_salesmanago", res.ToSM), zap.Int("conflicts", res.Conflicts))
	return nil
}

// smTickWorker enqueues the passes due.
type smTickWorker struct {
	river.WorkerDefaults[smTickArgs]
	cfg     *Config
	waiting func(ctx context.Context) (map[string]bool, error)
	insert  func(ctx context.Context, a river.JobArgs) error
}

// Work enqueues a pass for every active connection with a pass due and
// none waiting. A connection whose last pass failed waits SMRetry after
// it before the next.
func (w *smTickWorker) Work(ctx context.Context, _ *river.Job[smTickArgs]) error {
	conns, err := w.cfg.SMStore.ListSM(ctx)
	if err != nil {
		return fmt.Errorf("list salesmanago connections: %w", err)
	}
	waiting, err := w.waiting(ctx)
	if err != nil {
		return err
	}
	now := w.cfg.Now()
	for _, c := range conns {
		if c.State != store.SMActive || waiting[c.TenantID] {
			continue
		}
		if c.RunError != "" && now.Before(c.RunAt.Add(w.cfg.SMRetry)) {
			continue
		}
		loc, err := w.cfg.location(ctx, c.TenantID)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
		}
		if kind, _ := w.cfg.SALESmanago.Due(c, now, loc); kind == "" {
			continue
		}
		if err := w.insert(ctx, SMPassArgs{TenantID: c.TenantID}); err != nil {
			return fmt.Errorf("enqueue salesmanago pass of %s: %w", c.TenantID, err)
		}
	}
	return nil
}

// location returns the tenant's time zone, in which the scheduled passes
// fall.
func (c *Config) location(ctx context.Context, tenantID string) (*time.Location, error) {
	t, err := c.SMStore.Tenant(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", tenantID, err)
	}
	return t.Settings.Location(), nil
}

// SyncSALESmanago enqueues a manual pass of a tenant's SALESmanago sync
// (an admin's "sync now"). Errors come from River.
func (r *Runner) SyncSALESmanago(ctx context.Context, tenantID string) error {
	return r.insert(ctx, SMPassArgs{TenantID: tenantID, Manual: true})
}

// NudgeSALESmanago asks for a pass of a tenant's SALESmanago sync after its
// Zoho CRM announced a change (a notification), so the change reaches
// SALESmanago in seconds instead of at the next incremental pass. A pass
// already waiting takes it along: a burst of notifications makes one pass.
// It does nothing for a tenant without an active connection, or on a
// runner without the SALESmanago sync. Errors come from the store or River.
func (r *Runner) NudgeSALESmanago(ctx context.Context, tenantID string) error {
	if r.smWaiting == nil {
		return nil
	}
	c, err := r.smStore.SMConn(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil
	}
	if err != nil {
		return fmt.Errorf("salesmanago connection of %s: %w", tenantID, err)
	}
	if c.State != store.SMActive {
		return nil
	}
	waiting, err := r.smWaiting(ctx)
	if err != nil {
		return fmt.Errorf("salesmanago passes waiting: %w", err)
	}
	if waiting[tenantID] {
		return nil
	}
	return r.insert(ctx, SMPassArgs{TenantID: tenantID, Manual: true})
}
