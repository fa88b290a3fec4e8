// Package jobs runs callrouter's background work on River, in the same way
// on both store backends: CRM sync cycles are per-tenant jobs, run by one
// instance at a time under the tenant's sync lease, and a periodic job that
// only River's elected leader inserts enqueues one for every active
// integration each interval (unless one waits already). Jobs and sync
// positions live in the database, so a sync interrupted by a crash or a
// deploy is picked up again by whichever instance is alive.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
)

// SyncArgs is one sync cycle of one tenant's integration.
type SyncArgs struct {
	TenantID string `json:"tenant_id"`
}

// Kind implements river.JobArgs.
func (SyncArgs) Kind() string { return "crm_sync" }

// InsertOpts: sync jobs are not unique in River (see leasedSync: a job
// left running by a killed instance would block its tenant's sync for an
// hour); the sync lease keeps two cycles of a tenant from running at once,
// and the tick adds no job for a tenant that has one waiting.
func (SyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueCRM, MaxAttempts: 10}
}

// EventArgs drains the waiting call events of some clients of one tenant.
// One job carries the clients of one group commit (up to
// partitionsPerJob), because a River insert per client cost more than the
// rest of storing an event.
type EventArgs struct {
	TenantID  string `json:"tenant_id"`
	Partition string `json:"partition,omitempty"`
	// Partitions are more clients to drain, in order.
	Partitions []string `json:"partitions,omitempty"`
}

// partitionsPerJob bounds one event job, so a large batch still spreads
// over workers and instances.
const partitionsPerJob = 32

// partitions returns every client the job drains.
func (a EventArgs) partitions() []string {
	if a.Partition == "" {
		return a.Partitions
	}
	return append([]string{a.Partition}, a.Partitions...)
}

// Kind implements river.JobArgs.
func (EventArgs) Kind() string { return "call_events" }

// InsertOpts: event jobs are not unique. River's uniqueness must count
// running jobs, and a job left "running" by a crashed instance would then
// block its client's events until River rescues it an hour later. The
// partition's lease (events.Processor) keeps two drains of one client from
// running at once on any instance instead, so its events apply in order and
// two calls from a new number make one lead; a job that finds the lease
// taken snoozes a second, one that finds nothing left ends at once.
func (EventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueEvents, MaxAttempts: 10}
}

// sweepArgs is the periodic job that enqueues event partitions left
// without a job.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "call_events_sweep" }

// TenantLister lists every tenant (store.Tenants).
type TenantLister interface {
	ListTenants(ctx context.Context) ([]domain.Tenant, error)
}

// Drainer applies a partition's waiting events (events.Processor).
type Drainer interface {
	Drain(ctx context.Context, tenantID, partition string) error
}

// tickArgs is the periodic job that enqueues sync cycles.
type tickArgs struct{}

func (tickArgs) Kind() string { return "crm_sync_tick" }

const (
	queueCRM    = "crm"
	queueEvents = "events"
)

// Syncer runs a tenant's sync cycle when it is due (crmsync.Syncer).
type Syncer interface {
	SyncDue(ctx context.Context, tenantID string, maxPages int) (crmsync.Result, error)
}

// Config configures a Runner.
type Config struct {
	Syncer Syncer
	Store  store.Integrations
	// Interval is how often every active integration gets a sync cycle.
	Interval time.Duration
	// Parallel bounds the sync cycles an instance runs at once.
	Parallel int
	// PagesPerJob bounds one cycle; a longer sync continues in the next job
	// of the same tenant, so one huge full sync does not starve the others.
	PagesPerJob int
	// PollInterval is how often an instance looks for new jobs when the
	// database cannot notify it (SQLite).
	PollInterval time.Duration
	// Events applies call events; nil runs no event jobs.
	Events Drainer
	// EventStore finds partitions whose events wait without a job.
	EventStore store.Events
	// EventWorkers bounds the partitions an instance drains at once.
	EventWorkers int
	// SweepInterval is how often waiting events without a job are looked
	// for; SweepAge is how long an event waits before it counts as such.
	SweepInterval time.Duration
	SweepAge      time.Duration
	// Tenants lists every tenant, for the backlog gauges of tenants without
	// a CRM; nil publishes those of tenants with an integration only.
	Tenants TenantLister
	Log     *zap.Logger
	// Instance names this instance: River's client id (river_leader and
	// attempted_by show it) and the holder of its sync leases. River makes
	// one up when empty.
	Instance string
	// Leases, when set, make one instance at a time run a tenant's sync
	// cycle; SyncLeaseTTL (default 10s) is how soon a survivor takes over
	// the sync of a crashed instance.
	Leases       store.SyncLeases
	SyncLeaseTTL time.Duration
	// SALESmanago, when set with SMStore, runs the SALESmanago ⇄ Zoho CRM
	// contact sync: a tick every SMTick (default 1 min) enqueues the
	// passes due; a connection whose last pass failed waits SMRetry
	// (default 5 min) before the next. Now is the tick's clock (default
	// time.Now).
	SALESmanago *smsync.Engine
	SMStore     SMStore
	SMTick      time.Duration
	SMRetry     time.Duration
	Now         func() time.Time
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.PagesPerJob <= 0 {
		c.PagesPerJob = 200
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.EventWorkers <= 0 {
		c.EventWorkers = 8
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 10 * time.Second
	}
	if c.SweepAge <= 0 {
		c.SweepAge = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.SyncLeaseTTL <= 0 {
		c.SyncLeaseTTL = 10 * time.Second
	}
	if c.SMTick <= 0 {
		c.SMTick = time.Minute
	}
	if c.SMRetry <= 0 {
		c.SMRetry = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Runner is a started or startable River client with callrouter's workers.
type Runner struct {
	start    func(context.Context) error
	stop     func(context.Context) error
	insert   func(context.Context, river.JobArgs) error
	insertTx func(ctx context.Context, tx any, as []river.JobArgs) error
	// smWaiting lists the tenants with a SALESmanago pass waiting; nil
	// without the SALESmanago sync.
	smWaiting func(ctx context.Context) (map[string]bool, error)
	smStore   SMStore
	log       *zap.Logger
}

// NewPostgres migrates River's tables in the pool's schema and returns a
// Runner on them.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Runner, error) {
	return newRunner(ctx, riverpgxv5.New(pool), cfg)
}

// NewSQLite migrates River's tables in the SQLite database and returns a
// Runner on them. db must allow one open connection only: SQLite has one
// writer, and River's concurrent maintenance would otherwise meet
// SQLITE_BUSY.
func NewSQLite(ctx context.Context, db *sql.DB, cfg Config) (*Runner, error) {
	return newRunner(ctx, riversqlite.New(db), cfg)
}

// MigratePostgres applies River's migrations in the pool's schema, logging
// through log; `router migrate` runs it so an operator can migrate before
// the first serve. Errors come from River or the database.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, log *zap.Logger) error {
	return migrate(ctx, riverpgxv5.New(pool), riverLogger(log))
}

// MigrateSQLite applies River's migrations in the SQLite database, logging
// through log. Errors come from River or the database.
func MigrateSQLite(ctx context.Context, db *sql.DB, log *zap.Logger) error {
	return migrate(ctx, riversqlite.New(db), riverLogger(log))
}

func migrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], logger *slog.Logger) error {
	mig, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// riverLogger hands River's slog records to the server's zap core, so they
// share its level, format and output instead of a second JSON stream of
// River's own on stderr.
func riverLogger(log *zap.Logger) *slog.Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return slog.New(zapslog.NewHandler(log.Core(), zapslog.WithName("river")))
}

func newRunner[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config) (*Runner, error) {
	cfg.defaults()
	logger := riverLogger(cfg.Log)
	if err := migrate(ctx, driver, logger); err != nil {
		return nil, err
	}
	var client *river.Client[TTx]
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[SyncArgs]) error {
		return leasedSync(ctx, cfg, job.ID, job.Args.TenantID)
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[tickArgs]) error {
		ins, err := cfg.Store.ListIntegrations(ctx)
		if err != nil {
			return fmt.Errorf("list integrations: %w", err)
		}
		waiting, err := waitingJobs(ctx, client, SyncArgs{}.Kind())
		if err != nil {
			return err
		}
		for _, in := range ins {
			if in.State != store.IntegrationActive || waiting[in.TenantID] {
				continue
			}
			if _, err := client.Insert(ctx, SyncArgs{TenantID: in.TenantID}, nil); err != nil {
				return fmt.Errorf("enqueue sync of %s: %w", in.TenantID, err)
			}
		}
		return nil
	}))
	queues := map[string]river.QueueConfig{
		river.QueueDefault: {MaxWorkers: 1},
		queueCRM:           {MaxWorkers: cfg.Parallel},
	}
	periodic := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.Interval),
		func() (river.JobArgs, *river.InsertOpts) { return tickArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})}
	if cfg.Events != nil {
		queues[queueEvents] = river.QueueConfig{MaxWorkers: cfg.EventWorkers}
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[EventArgs]) error {
			return drainAll(ctx, cfg.Events, job.Args)
		}))
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[sweepArgs]) error {
			return sweep(ctx, cfg, func(ctx context.Context, a river.JobArgs) error {
				_, err := client.Insert(ctx, a, nil)
				return err
			})
		}))
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(cfg.SweepInterval),
			func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	var smWaiting func(ctx context.Context) (map[string]bool, error)
	if cfg.SALESmanago != nil && cfg.SMStore != nil {
		smWaiting = func(ctx context.Context) (map[string]bool, error) {
			return waitingJobs(ctx, client, SMPassArgs{}.Kind())
		}
		queues[queueSM] = river.QueueConfig{MaxWorkers: 2}
		river.AddWorker(workers, &smPassWorker{cfg: &cfg, locks: &tenantLocks{}})
		river.AddWorker(workers, &smTickWorker{cfg: &cfg,
			waiting: smWaiting,
			insert: func(ctx context.Context, a river.JobArgs) error {
				_, err := client.Insert(ctx, a, nil)
				return err
			}})
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(cfg.SMTick),
			func() (river.JobArgs, *river.InsertOpts) { return smTickArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	client, err := river.NewClient(driver, &river.Config{
		ID:                cfg.Instance,
		Logger:            logger,
		FetchPollInterval: cfg.PollInterval,
		JobTimeout:        15 * time.Minute,
		Queues:            queues,
		PeriodicJobs:      periodic,
		Workers:           workers,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Runner{
		start: client.Start,
		stop:  client.Stop,
		insert: func(ctx context.Context, a river.JobArgs) error {
			_, err := client.Insert(ctx, a, nil)
			return err
		},
		insertTx: func(ctx context.Context, tx any, as []river.JobArgs) error {
			t, ok := tx.(TTx)
			if !ok {
				return fmt.Errorf("jobs: enqueue in a %T transaction, want %T", tx, *new(TTx))
			}
			if len(as) == 1 {
				_, err := client.InsertTx(ctx, t, as[0], nil)
				return err
			}
			params := make([]river.InsertManyParams, len(as))
			for i, a := range as {
				params[i].Args = a
			}
			_, err := client.InsertManyTx(ctx, t, params)
			return err
		},
		smWaiting: smWaiting,
		smStore:   cfg.SMStore,
		log:       cfg.Log,
	}, nil
}

// sweep enqueues a job for every partition of an active integration with
// an event that is due and waited longer than SweepAge: an event whose
// retry time has come, one whose job died with its instance, events resent
// after a broken token. A partition that has a job gets a second one, which
// finds the lease taken or nothing left.
func sweep(ctx context.Context, cfg Config, insert func(context.Context, river.JobArgs) error) error {
	ins, err := cfg.Store.ListIntegrations(ctx)
	if err != nil {
		return fmt.Errorf("list integrations: %w", err)
	}
	now := time.Now()
	before := now.Add(-cfg.SweepAge)
	// Every tenant's backlog gauges, a tenant without a CRM included: its
	// events wait too, and an alert on the gauge must see them.
	ids := make([]string, 0, len(ins))
	if cfg.Tenants != nil {
		ts, err := cfg.Tenants.ListTenants(ctx)
		if err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range ts {
			ids = append(ids, t.ID)
		}
	} else {
		for _, in := range ins {
			ids = append(ids, in.TenantID)
		}
	}
	for _, id := range ids {
		st, err := cfg.EventStore.EventStats(ctx, id)
		if err != nil {
			return fmt.Errorf("event stats of %s: %w", id, err)
		}
		events.Publish(id, st, now)
	}
	for _, in := range ins {
		if in.State != store.IntegrationActive {
			continue
		}
		parts, err := cfg.EventStore.WaitingPartitions(ctx, in.TenantID, before, now, 1000)
		if err != nil {
			return fmt.Errorf("waiting partitions of %s: %w", in.TenantID, err)
		}
		for _, p := range parts {
			if err := insert(ctx, EventArgs{TenantID: p.TenantID, Partition: p.Partition}); err != nil {
				return fmt.Errorf("enqueue events of %s: %w", p.TenantID, err)
			}
		}
	}
	return nil
}

// EnqueueTx inserts the jobs of event partitions in tx, the store's open
// transaction (*sql.Tx on SQLite, pgx.Tx on PostgreSQL), so the events and
// their jobs commit together. Errors come from River.
func (r *Runner) EnqueueTx(ctx context.Context, tx any, parts []store.Partition) error {
	return r.insertTx(ctx, tx, eventJobs(parts))
}

// eventJobs groups partitions into jobs per tenant, at most
// partitionsPerJob each, keeping their order.
func eventJobs(parts []store.Partition) []river.JobArgs {
	var (
		jobs []river.JobArgs
		open = map[string]int{} // tenant → index of its job being filled
	)
	for _, p := range parts {
		i, ok := open[p.TenantID]
		if !ok || len(jobs[i].(EventArgs).Partitions) == partitionsPerJob {
			i = len(jobs)
			open[p.TenantID] = i
			jobs = append(jobs, EventArgs{TenantID: p.TenantID})
		}
		a := jobs[i].(EventArgs)
		a.Partitions = append(a.Partitions, p.Partition)
		jobs[i] = a
	}
	return jobs
}

// drainAll drains each of a job's partitions. A partition whose lease is
// taken (another drain runs) snoozes the job a second, after the others
// are done; draining a finished partition again costs one query. Other
// errors are returned after the other partitions had their turn, for
// River to retry.
func drainAll(ctx context.Context, d Drainer, a EventArgs) error {
	var busy bool
	var first error
	for _, p := range a.partitions() {
		err := d.Drain(ctx, a.TenantID, p)
		switch {
		case errors.Is(err, events.ErrBusy):
			busy = true
		case err != nil && first == nil:
			first = err
		}
	}
	if first != nil {
		return first
	}
	if busy {
		return river.JobSnooze(time.Second)
	}
	return nil
}

// Enqueue inserts the job of an event partition (after a resend).
func (r *Runner) Enqueue(ctx context.Context, p store.Partition) error {
	return r.insert(ctx, EventArgs{TenantID: p.TenantID, Partition: p.Partition})
}

// syncJob runs one cycle. A rejected credential has already broken the
// integration, so it is not retried; an unfinished sync continues as soon
// as the queue allows.
func syncJob(ctx context.Context, cfg Config, tenantID string) error {
	res, err := cfg.Syncer.SyncDue(ctx, tenantID, cfg.PagesPerJob)
	switch {
	case crm.IsAuth(err):
		return nil
	case err != nil:
		cfg.Log.Warn("sync cycle failed", zap.String("tenant", tenantID), zap.Error(err))
		return err
	case res.Pages > 0:
		cfg.Log.Info("sync cycle", zap.String("tenant", tenantID), zap.String("phase", res.Phase), zap.Int("pages", res.Pages),
			zap.Int("applied", res.Applied), zap.Int("deleted", res.Deleted), zap.Int("swept", res.Swept), zap.Bool("done", res.Done))
	}
	if !res.Done && res.Pages > 0 {
		return river.JobSnooze(0)
	}
	return nil
}

// Start starts working jobs until Stop.
func (r *Runner) Start(ctx context.Context) error { return r.start(ctx) }

// Stop stops fetching jobs and waits for running ones to finish or ctx to
// end.
func (r *Runner) Stop(ctx context.Context) error { return r.stop(ctx) }

// Kick enqueues a sync cycle of a tenant now (after a connection or an
// activation). A failure is logged: the next periodic round covers it.
func (r *Runner) Kick(tenantID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.insert(ctx, SyncArgs{TenantID: tenantID}); err != nil {
		r.log.Warn("enqueue sync", zap.String("tenant", tenantID), zap.Error(err))
	}
}
