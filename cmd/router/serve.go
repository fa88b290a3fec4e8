package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	webconsole "github.com/callrouter/callrouter/internal/console"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/httpapi"
	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/report"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/smsync"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/tenant"
)

// serveConfig is `router serve`'s configuration: every flag has an
// environment twin, the flag winning.
type serveConfig struct {
	listen          string
	db              string
	adminToken      string
	logFormat       string
	logLevel        string
	cacheItems      int64
	negativeTTL     time.Duration
	storeTimeout    time.Duration
	shutdownTimeout time.Duration
	secretKey       string
	syncInterval    time.Duration
	liveTimeout     time.Duration
	// crmAllowPrivate lets CRM base URLs reach loopback, private and
	// link-local addresses (fakes, on-premises CRMs).
	crmAllowPrivate bool
	// instanceID names this process among the instances sharing the
	// database; generated when empty.
	instanceID string
	// debugListen, when set, serves net/http/pprof there, for profiling a
	// live instance; keep it on loopback.
	debugListen string
	// Ringostat: how often presence is polled, index changes pushed and
	// the call log read.
	ringostatPoll      time.Duration
	ringostatPush      time.Duration
	ringostatReconcile time.Duration
	// salesmanagoInterval is the least time between incremental passes of
	// the SALESmanago ⇄ Zoho CRM contact sync.
	salesmanagoInterval time.Duration
	// reusePort binds the listener with SO_REUSEPORT, so a successor can
	// bind the same address while this process still serves.
	reusePort bool
	// drainDelay is how long a SIGTERM leaves the listener accepting
	// (with reusePort) before it closes and in-flight requests drain.
	drainDelay time.Duration
	// eventRetention is how long rejected bodies (and finished events)
	// are kept for a tenant that sets no event_retention_days;
	// retentionInterval is how often they are swept.
	eventRetention    time.Duration
	retentionInterval time.Duration
	// decisionLogSample is the share of route decisions logged (0 off).
	decisionLogSample float64
	// opened, when set, is given the store once it is open (tests: to
	// make an SQLite disk look full).
	opened func(store.Store)
	// crmRateScale, when set, multiplies the request rates the CRM
	// adapters keep to (tests: with their fakes' limits raised as much, a
	// test is not paced by a real account's few requests per second).
	crmRateScale float64
}

const defaultDB = "data/callrouter.db"

// serveUsage heads `router serve -h`.
const serveUsage = `usage: router serve [flags]

runs the server: the route, event and webhook endpoints, the admin API and
console, the CRM syncs. Every flag has an environment twin (named after it
in parentheses); a flag given beats its twin.
`

// parseServe reads serve's flags and their environment twins. -h and --help
// print the flags to help and return flag.ErrHelp; a bad value is an
// error naming the flag.
func parseServe(args []string, help io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("router serve", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", env("ROUTER_LISTEN", "127.0.0.1:8080"), "address to listen on (ROUTER_LISTEN)")
	fs.StringVar(&c.db, "db", env("ROUTER_DB", defaultDB), "SQLite file, or a postgres:// URL (ROUTER_DB)")
	// Secrets take no default from the environment here: -h prints
	// defaults. The environment is read after parsing (secretFromEnv).
	fs.StringVar(&c.adminToken, "admin-token", "", "admin API bearer token; when empty one is generated at first start, printed once and only its hash stored (ROUTER_ADMIN_TOKEN)")
	fs.StringVar(&c.logFormat, "log-format", env("ROUTER_LOG_FORMAT", "json"), "json or console (ROUTER_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", env("ROUTER_LOG_LEVEL", "info"), "debug, info, warn or error (ROUTER_LOG_LEVEL)")
	fs.Int64Var(&c.cacheItems, "cache-items", envInt("ROUTER_CACHE_ITEMS", 0), "capacity in keys of the run-time overlay (unknown callers remembered, and keys too large for the flat index); 0 = 262144 (ROUTER_CACHE_ITEMS)")
	fs.DurationVar(&c.negativeTTL, "negative-ttl", envDuration("ROUTER_NEGATIVE_TTL", 30*time.Second), "how long an unknown caller is remembered as unknown (ROUTER_NEGATIVE_TTL)")
	fs.DurationVar(&c.storeTimeout, "store-timeout", envDuration("ROUTER_STORE_TIMEOUT", 2*time.Second), "bound of a store read on a cache miss (ROUTER_STORE_TIMEOUT)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration("ROUTER_SHUTDOWN_TIMEOUT", 15*time.Second), "how long shutdown waits for in-flight requests (ROUTER_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.secretKey, "secret-key", "", "32-byte key (hex or base64) encrypting CRM credentials at rest; when empty a key file secret.key is created beside the SQLite database, or in ./data for PostgreSQL (ROUTER_SECRET_KEY)")
	fs.DurationVar(&c.syncInterval, "sync-interval", envDuration("ROUTER_SYNC_INTERVAL", 30*time.Second), "how often each CRM integration gets an incremental sync (ROUTER_SYNC_INTERVAL)")
	fs.DurationVar(&c.liveTimeout, "live-timeout", envDuration("ROUTER_LIVE_TIMEOUT", 3*time.Second), "bound of a CRM search started by a route miss with live_lookup; the call itself waits at most its route budget (ROUTER_LIVE_TIMEOUT)")
	fs.StringVar(&c.debugListen, "debug-listen", env("ROUTER_DEBUG_LISTEN", ""), "address for net/http/pprof (/debug/pprof/), off when empty; bind it to loopback (ROUTER_DEBUG_LISTEN)")
	fs.StringVar(&c.instanceID, "instance-id", env("ROUTER_INSTANCE_ID", ""), "this instance's name among those sharing the database, unique to it (the job queue's client id, origin of its change announcements); default host name and a random suffix (ROUTER_INSTANCE_ID)")
	fs.BoolVar(&c.reusePort, "reuseport", envBool("ROUTER_REUSEPORT", false), "bind the listener with SO_REUSEPORT, so a new process can start on the same address before this one stops: restarts refuse no connection (ROUTER_REUSEPORT=1)")
	fs.DurationVar(&c.drainDelay, "drain-delay", envDuration("ROUTER_DRAIN_DELAY", 2*time.Second), "with --reuseport, how long SIGTERM keeps accepting before closing the listener and draining: time for the successor to bind and warm (ROUTER_DRAIN_DELAY)")
	fs.BoolVar(&c.crmAllowPrivate, "crm-allow-private", envBool("ROUTER_CRM_ALLOW_PRIVATE", false), "let CRM base URLs reach loopback, private (RFC 1918, CGNAT) and link-local addresses; off, such connections are refused at dial time (ROUTER_CRM_ALLOW_PRIVATE=1)")
	fs.DurationVar(&c.ringostatPoll, "ringostat-presence-interval", envDuration("ROUTER_RINGOSTAT_PRESENCE_INTERVAL", ringostat.DefaultPollInterval), "how often the SIP logins' presence is read from Ringostat, for tenants with presence on; presence older than 3 intervals is ignored (ROUTER_RINGOSTAT_PRESENCE_INTERVAL)")
	fs.DurationVar(&c.ringostatPush, "ringostat-push-interval", envDuration("ROUTER_RINGOSTAT_PUSH_INTERVAL", ringostat.DefaultPushInterval), "how often phone-index changes are pushed to Ringostat Smart Phone (ROUTER_RINGOSTAT_PUSH_INTERVAL)")
	fs.DurationVar(&c.ringostatReconcile, "ringostat-reconcile-interval", envDuration("ROUTER_RINGOSTAT_RECONCILE_INTERVAL", ringostat.DefaultReconcileInterval), "how often Ringostat's call log is read to recover call events whose webhook never arrived (ROUTER_RINGOSTAT_RECONCILE_INTERVAL)")
	fs.DurationVar(&c.salesmanagoInterval, "salesmanago-interval", envDuration("ROUTER_SALESMANAGO_INTERVAL", 5*time.Minute), "how often the SALESmanago ⇄ Zoho CRM contact sync reads both sides' changes between its 00/06/12/18 passes; at least 1m (ROUTER_SALESMANAGO_INTERVAL)")
	fs.Float64Var(&c.decisionLogSample, "decision-log-sample", envFloat("ROUTER_DECISION_LOG_SAMPLE", 0), "share of route decisions logged at info with tenant, call id, masked caller, reason, target and latency: 0 off, 0.01 one in a hundred, 1 all (ROUTER_DECISION_LOG_SAMPLE)")
	fs.DurationVar(&c.eventRetention, "event-retention", envDuration("ROUTER_EVENT_RETENTION", domain.DefaultEventRetentionDays*24*time.Hour), "how long finished call events and rejected event bodies are kept for a tenant whose event_retention_days is 0; at least 72h (ROUTER_EVENT_RETENTION)")
	fs.DurationVar(&c.retentionInterval, "retention-interval", envDuration("ROUTER_RETENTION_INTERVAL", 10*time.Minute), "how often expired finished events and rejected bodies are deleted (ROUTER_RETENTION_INTERVAL)")
	if err := parseFlags(fs, args, serveUsage, help); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	secretFromEnv(fs, "admin-token", &c.adminToken, "ROUTER_ADMIN_TOKEN")
	secretFromEnv(fs, "secret-key", &c.secretKey, "ROUTER_SECRET_KEY")
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--ringostat-presence-interval", c.ringostatPoll}, {"--ringostat-push-interval", c.ringostatPush},
		{"--ringostat-reconcile-interval", c.ringostatReconcile}} {
		if d.v < time.Second {
			return c, fmt.Errorf("%s: must be at least 1s, got %s", d.name, d.v)
		}
	}
	if c.salesmanagoInterval < time.Minute {
		return c, fmt.Errorf("--salesmanago-interval: must be at least 1m, got %s", c.salesmanagoInterval)
	}
	if c.syncInterval < time.Second {
		return c, fmt.Errorf("--sync-interval: must be at least 1s, got %s", c.syncInterval)
	}
	if c.logFormat != "json" && c.logFormat != "console" {
		return c, fmt.Errorf("--log-format: must be json or console, got %q", c.logFormat)
	}
	if c.eventRetention < domain.MinEventRetentionDays*24*time.Hour {
		return c, fmt.Errorf("--event-retention: must be at least %dd (%s), got %s", domain.MinEventRetentionDays, domain.MinEventRetentionDays*24*time.Hour, c.eventRetention)
	}
	if !(c.decisionLogSample >= 0 && c.decisionLogSample <= 1) {
		return c, fmt.Errorf("--decision-log-sample: must be between 0 and 1, got %v", c.decisionLogSample)
	}
	if c.retentionInterval < time.Second {
		return c, fmt.Errorf("--retention-interval: must be at least 1s, got %s", c.retentionInterval)
	}
	if c.negativeTTL <= 0 {
		return c, fmt.Errorf("--negative-ttl: must be positive, got %s", c.negativeTTL)
	}
	if c.drainDelay < 0 {
		return c, fmt.Errorf("--drain-delay: must not be negative, got %s", c.drainDelay)
	}
	return c, nil
}

// secretFromEnv gives a secret flag its environment twin's value unless
// the flag was set: the flag still wins, and the value never becomes a
// default that -h would print.
func secretFromEnv(fs *flag.FlagSet, name string, v *string, envName string) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if !set {
		*v = env(envName, "")
	}
}

// runServe runs `router serve`: help goes to stdout, the generated admin
// token's notice to stderr, the log to stderr.
func runServe(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stdout)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("starting", zap.String("version", version))
	return serve(ctx, cfg, log, stderr, nil)
}

// serve runs the server until ctx ends, then drains in-flight requests.
// listening, when not nil, receives the bound address once the listener is
// open (tests use it with --listen 127.0.0.1:0).
func serve(ctx context.Context, cfg serveConfig, log *zap.Logger, console io.Writer, listening chan<- string) error {
	st, err := openStore(ctx, cfg.db, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.opened != nil {
		cfg.opened(st)
	}
	box, err := secretBox(cfg, log)
	if err != nil {
		return err
	}
	if err := secret.VerifyKey(ctx, box, st); err != nil {
		return err
	}
	if cfg.crmAllowPrivate {
		log.Warn("--crm-allow-private: CRM base URLs may reach loopback, private and link-local addresses")
	}

	adminHash, err := adminTokenHash(ctx, st, cfg.adminToken, dataDir(cfg.db), console, log)
	if err != nil {
		return err
	}
	reg := tenant.NewRegistry(st)
	items := cfg.cacheItems
	if items == 0 {
		// The flat index holds every indexed key however many; ristretto
		// only remembers unknown callers, and TinyLFU evicts the rarest of
		// them when an attacker dials random numbers.
		items = 1 << 18
	}
	c, err := cache.New(cache.Config{MaxItems: items, NegativeTTL: cfg.negativeTTL})
	if err != nil {
		return err
	}
	defer c.Close()
	// The other instances' changes are heard from before the tenants and
	// the index are read (LoadAll, warm), so none falls in between.
	instance := cmp.Or(cfg.instanceID, newInstanceID())
	peers, err := openBus(ctx, st, instance, log)
	if err != nil {
		return err
	}
	// Until Close, not ctx: requests drained after a SIGTERM still see the
	// other instances' changes.
	if err := peers.Start(context.WithoutCancel(ctx), notify.Local{Tenants: reg, Cache: c, Scan: st.ScanIndex}); err != nil {
		return err
	}
	defer peers.Close()
	if err := reg.LoadAll(ctx); err != nil {
		return fmt.Errorf("load tenants: %w", err)
	}

	rsm := ringostat.NewManager(ringostat.Config{Store: st, Box: box, Tenants: reg, Log: log, Instance: instance,
		HTTP:         &http.Client{Transport: crm.NewTransport(cfg.crmAllowPrivate), Timeout: time.Minute},
		PollInterval: cfg.ringostatPoll, PushInterval: cfg.ringostatPush, ReconcileInterval: cfg.ringostatReconcile})
	// The database announces every change to the other instances in the
	// transaction that commits it (see internal/notify); what the services
	// publish is this instance's own feed of index changes, pushed to
	// Ringostat Smart Phone.
	pub := rsm.Tee(nil)
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box, Log: log,
		Deps: crm.Deps{Transport: crm.NewTransport(cfg.crmAllowPrivate), RateScale: cfg.crmRateScale}, Peers: pub})
	sme := smsync.New(smsync.Config{Store: st, Zoho: zohoPeople(engine.Calls), Box: box, Log: log, Instance: instance,
		Transport: crm.NewTransport(cfg.crmAllowPrivate), Every: cfg.salesmanagoInterval})
	processor := events.NewProcessor(events.Config{Store: st, Tenants: reg, CRM: engine.Calls, Log: log})
	runner, err := newRunner(ctx, st, jobs.Config{Syncer: engine.Syncer, Store: st, Interval: cfg.syncInterval,
		Events: processor, EventStore: st, Tenants: st, Log: log, Instance: instance, Leases: st,
		SALESmanago: sme, SMStore: st, SMTick: min(time.Minute, cfg.salesmanagoInterval), SMRetry: cfg.salesmanagoInterval})
	if err != nil {
		return err
	}
	ingest := events.NewIngest(st, runner, nil, ingestCommitters(st))
	rsm.SetIngest(ingest)
	// Closed after the HTTP server has drained, so every event it was
	// handed is committed before the process exits.
	defer ingest.Close()

	sessions, err := webconsole.NewSessions(ctx, st, nil, 0)
	if err != nil {
		return err
	}
	board := webconsole.NewBoard(nil, 0)
	defer board.Close()

	// Route decisions for the routing report: written off the route path
	// until the HTTP server has drained (this defer runs after the drain
	// below), so the decisions of the last requests are kept too.
	decisions := report.NewRecorder(st, report.RecorderConfig{Log: log})
	dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
	ddone := make(chan struct{})
	go func() { defer close(ddone); decisions.Run(dctx) }()
	defer func() { dcancel(); <-ddone }()

	srv := httpapi.New(httpapi.Config{
		Tenants: reg,
		Router:  lookup.New(c, st, cfg.storeTimeout).WithLive(engine.Live, cfg.liveTimeout).WithPresence(rsm.Presence()),
		Admin: admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithSyncs(runner), admin.WithCRMAllowPrivate(cfg.crmAllowPrivate), admin.WithPeers(pub),
			admin.WithEvents(events.NewReplay(st, runner.Enqueue, nil)), admin.WithRingostat(rsm),
			admin.WithSALESmanago(smAdmin{sme, runner})),
		Webhooks:          crmWebhooks{live: engine.Live, runner: runner, log: log},
		Events:            ingest,
		Observer:          rsm,
		Ready:             c.Ready,
		AdminTokenHash:    adminHash,
		DecisionLogSample: cfg.decisionLogSample,
		Sessions:          sessions,
		Board:             board,
		Decisions:         decisions,
		Log:               log,
	})
	hs := srv.FastHTTP()
	ln, err := listen(ctx, cfg.listen, cfg.reusePort)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.listen, err)
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("instance", instance), zap.Int("tenants", reg.Len()),
		zap.Int64("cache_items", items))
	if listening != nil {
		listening <- ln.Addr().String()
	}

	go sweepHistory(ctx, st, cfg.eventRetention, cfg.retentionInterval, log)

	// Serve while warming: until the cache is warm, misses read the store,
	// which is slower but correct, and /readyz says so.
	go warm(ctx, c, st, log)

	// The job runner outlives ctx on purpose: shutdown stops it gracefully
	// below, letting a running sync page finish.
	if err := runner.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	if cfg.debugListen != "" {
		dl, err := net.Listen("tcp", cfg.debugListen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.debugListen, err)
		}
		defer dl.Close()
		log.Info("debug listening", zap.String("addr", dl.Addr().String()))
		go func() { _ = http.Serve(dl, debugMux()) }()
	}
	// Ringostat work stops with ctx; what it was ingesting is committed
	// before the ingest closes (deferred above, after this returns).
	rctx, rcancel := context.WithCancel(ctx)
	rdone := make(chan struct{})
	go func() { defer close(rdone); rsm.Run(rctx) }()
	defer func() { rcancel(); <-rdone }()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if cfg.reusePort && cfg.drainDelay > 0 {
		// A successor bound with SO_REUSEPORT shares the address: keep
		// taking this process's share of new connections until it is up,
		// so none is refused, then stop.
		log.Info("stopping: still accepting while the successor starts", zap.Duration("drain_delay", cfg.drainDelay))
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-time.After(cfg.drainDelay):
		}
	}
	log.Info("shutting down: draining in-flight requests", zap.Duration("timeout", cfg.shutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	board.Close() // live board streams would hold the drain up to their lifetime
	if err := hs.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := runner.Stop(sctx); err != nil {
		return fmt.Errorf("stop jobs: %w", err)
	}
	log.Info("stopped")
	return nil
}

// crmWebhooks applies a CRM's change notifications to the phone index and,
// for a tenant whose Zoho CRM feeds a SALESmanago sync, asks for a pass of
// that sync, so a change made in Zoho reaches SALESmanago in seconds.
type crmWebhooks struct {
	live   *crmsync.Live
	runner *jobs.Runner
	log    *zap.Logger
}

// Webhook returns the index's error; a pass that cannot be asked for is
// only logged, since the next scheduled pass carries the change anyway.
func (w crmWebhooks) Webhook(ctx context.Context, tenantID, contentType string, body []byte) error {
	if err := w.live.Webhook(ctx, tenantID, contentType, body); err != nil {
		return err
	}
	if err := w.runner.NudgeSALESmanago(ctx, tenantID); err != nil {
		w.log.Warn("ask for a salesmanago pass after a CRM notification", zap.String("tenant", tenantID), zap.Error(err))
	}
	return nil
}

// smAdmin is the SALESmanago sync as the admin service uses it: the
// engine seals the secrets, the job runner runs a pass now.
type smAdmin struct {
	*smsync.Engine
	runner *jobs.Runner
}

// SyncNow enqueues a manual pass.
func (a smAdmin) SyncNow(ctx context.Context, tenantID string) error {
	return a.runner.SyncSALESmanago(ctx, tenantID)
}

// zohoPeople finds the Zoho side of a tenant's SALESmanago sync: its
// active CRM integration, which must be Zoho CRM.
func zohoPeople(c *crmsync.Calls) smsync.ZohoSource {
	return func(ctx context.Context, tenantID string) (zoho.People, error) {
		w, err := c.Writer(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		p, ok := w.(zoho.People)
		if !ok {
			return nil, domain.Errorf(domain.ECONFLICT, "integration: the CRM of %s is not Zoho CRM; the SALESmanago sync works with Zoho CRM only", tenantID)
		}
		return p, nil
	}
}

// sweepHistory deletes expired rejected event bodies, finished call
// events and the route decisions of the routing report every interval until ctx ends; def is the retention of a tenant
// that sets none.
func sweepHistory(ctx context.Context, st store.Store, def, interval time.Duration, log *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tenants, err := st.ListTenants(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("retention sweep: list tenants", zap.Error(err))
			}
			continue
		}
		now := time.Now()
		n, err := events.ExpireRejected(ctx, st, tenants, def, now)
		if err != nil && ctx.Err() == nil {
			log.Warn("retention sweep", zap.Error(err))
		}
		m, err := events.ExpireEvents(ctx, st, tenants, def, now)
		if err != nil && ctx.Err() == nil {
			log.Warn("retention sweep", zap.Error(err))
		}
		d, err := report.Expire(ctx, st, tenants, def, now)
		if err != nil && ctx.Err() == nil {
			log.Warn("retention sweep", zap.Error(err))
		}
		if n > 0 || m > 0 || d > 0 {
			log.Info("retention sweep: expired event history", zap.Int("rejected_bodies", n), zap.Int("finished_events", m),
				zap.Int("route_decisions", d))
		}
	}
}

func warm(ctx context.Context, c *cache.Cache, st store.Store, log *zap.Logger) {
	// Warm-up discards the scan's rows as fast as it packs them into the
	// flat index: collecting more often meanwhile keeps the peak resident
	// set near the index's own size, and handing the garbage back when done
	// leaves the instance at that size, not at the warm-up's peak.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	defer debug.FreeOSMemory()
	for attempt := 1; ; attempt++ {
		ws, err := c.Warm(ctx, st.ScanIndex)
		switch {
		case err == nil:
			log.Info("cache warm", zap.Int("rows", ws.Rows), zap.Int("keys", ws.Keys), zap.Int("retried", ws.Retried),
				zap.Duration("took", ws.Duration))
			return
		case errors.Is(err, cache.ErrIndexChanged) && attempt < 5:
			log.Info("index changed during warm-up, warming again", zap.Int("attempt", attempt))
		case ctx.Err() != nil:
			return
		default:
			// The cache still answers correctly through the store; readiness
			// stays false so ops see it.
			log.Error("cache warm-up failed", zap.Error(err), zap.Int("keys", ws.Keys), zap.Int("present", ws.Present))
			return
		}
	}
}

// openStore opens the store named by db: a postgres:// URL or an SQLite
// file path. Opening runs the migrations.
func openStore(ctx context.Context, db string, log *zap.Logger) (store.Store, error) {
	if isPostgres(db) {
		st, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		log.Info("store: postgres")
		return st, nil
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", db, err)
	}
	log.Info("store: sqlite", zap.String("path", db))
	return st, nil
}

// newRunner starts River on the store's own database.
func newRunner(ctx context.Context, st store.Store, cfg jobs.Config) (*jobs.Runner, error) {
	switch db := st.(type) {
	case *sqlite.DB:
		return jobs.NewSQLite(ctx, db.Writer(), cfg)
	case *postgres.DB:
		return jobs.NewPostgres(ctx, db.Pool(), cfg)
	}
	return nil, fmt.Errorf("jobs: no job queue for store %T", st)
}

// debugMux serves the runtime profiles; it is not the default mux, so
// nothing else registered there is exposed.
func debugMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return m
}

// ingestCommitters is how many event batches commit at once: SQLite has
// one writer, so one; a PostgreSQL pool commits in parallel, and half its
// connections leave the rest to routing misses and jobs.
func ingestCommitters(st store.Store) int {
	if db, ok := st.(*postgres.DB); ok {
		return max(1, int(db.Pool().Config().MaxConns)/2)
	}
	return 1
}

// secretBox returns the box that seals CRM credentials: the configured key,
// or a key file beside the embedded database (created on first start).
func secretBox(cfg serveConfig, log *zap.Logger) (*secret.Box, error) {
	if cfg.secretKey != "" {
		k, err := secret.ParseKey(cfg.secretKey)
		if err != nil {
			return nil, fmt.Errorf("--secret-key: %w", err)
		}
		return secret.New(k)
	}
	if isPostgres(cfg.db) {
		log.Warn("no ROUTER_SECRET_KEY: CRM credentials are sealed with data/secret.key; instances sharing this database must share one ROUTER_SECRET_KEY")
	}
	k, err := secret.LoadOrCreateKeyFile(filepath.Join(dataDir(cfg.db), "secret.key"))
	if err != nil {
		return nil, err
	}
	return secret.New(k)
}

// dataDir is where the server keeps its files (secret.key, the first
// start's admin-token): beside the SQLite database, or ./data with
// PostgreSQL.
func dataDir(db string) string {
	if isPostgres(db) {
		return "data"
	}
	return filepath.Dir(db)
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

const metaAdminToken = "admin_token_sha256"

// adminTokenFile is the file, in dataDir, that hands the first start's
// generated admin token to the operator.
const adminTokenFile = "admin-token"

// adminTokenHash returns the hash the admin API checks bearer tokens
// against. A configured token is used as given. Otherwise the stored hash is
// used; at first start a token is generated and its hash stored. The token
// itself is handed over in dir/admin-token (mode 0600, written before the
// hash is used), whose path goes to console and the log, so it survives a
// log redirected to a file; a console that is a terminal shows the token
// too. The token itself is never logged. Errors: the store's, or the file
// that cannot be written (the server then stops: nobody could administer
// it).
func adminTokenHash(ctx context.Context, st store.Meta, configured, dir string, console io.Writer, log *zap.Logger) ([]byte, error) {
	if configured != "" {
		sum := sha256.Sum256([]byte(configured))
		return sum[:], nil
	}
	for {
		v, err := st.GetMeta(ctx, metaAdminToken)
		if err == nil {
			h, err := hex.DecodeString(v)
			if err != nil || len(h) != sha256.Size {
				return nil, fmt.Errorf("stored admin token hash is corrupt")
			}
			return h, nil
		}
		if domain.ErrorCode(err) != domain.ENOTFOUND {
			return nil, fmt.Errorf("read admin token hash: %w", err)
		}
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("generate admin token: %w", err)
		}
		token := "cra_" + hex.EncodeToString(raw)
		sum := sha256.Sum256([]byte(token))
		won, err := st.SetMetaIfAbsent(ctx, metaAdminToken, hex.EncodeToString(sum[:]))
		if err != nil {
			return nil, fmt.Errorf("store admin token hash: %w", err)
		}
		if won {
			path := filepath.Join(dir, adminTokenFile)
			if err := writeSecretFile(path, token+"\n"); err != nil {
				return nil, fmt.Errorf("hand over the generated admin token: %w", err)
			}
			abs, _ := filepath.Abs(path)
			if abs == "" {
				abs = path
			}
			log.Warn("generated an admin token; read it from the file, then delete the file", zap.String("file", abs))
			shown := ""
			if isTerminal(console) {
				shown = "\n    " + token + "\n"
			}
			fmt.Fprintf(console, "\nGenerated admin token (only its hash is stored), written to %s (mode 0600):%s\n"+
				"    export ROUTER_ADMIN_TOKEN=$(cat %s)\n\nthen delete the file.\n\n", abs, shown, abs)
			return sum[:], nil
		}
		// Another instance stored one first: use theirs.
	}
}

// writeSecretFile writes data to path readable by its owner only,
// replacing a file left from an earlier database, through a temporary
// file so no reader sees half of it.
func writeSecretFile(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) //nolint:errcheck // gone after the rename
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// isTerminal reports whether w is a terminal, where showing a secret once
// is safe: unlike a redirected stream it is not kept.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// runMigrate runs `router migrate`: the store's migrations and River's,
// then exit. Help goes to stdout.
func runMigrate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("router migrate", flag.ContinueOnError)
	db := fs.String("db", env("ROUTER_DB", defaultDB), "SQLite file, or a postgres:// URL (ROUTER_DB)")
	if err := parseFlags(fs, args, "usage: router migrate [--db DB]\n\napplies the store's migrations and River's, then exits\n", stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("migrate: unexpected argument %q", fs.Arg(0))
	}
	log, err := newLogger("console", "info")
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := openStore(ctx, *db, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := migrateJobs(ctx, st, log); err != nil {
		return err
	}
	log.Info("migrations applied")
	return nil
}

// migrateJobs applies River's migrations on the store's own database, so
// `router migrate` leaves nothing for the first serve to change.
func migrateJobs(ctx context.Context, st store.Store, log *zap.Logger) error {
	switch db := st.(type) {
	case *sqlite.DB:
		return jobs.MigrateSQLite(ctx, db.Writer(), log)
	case *postgres.DB:
		return jobs.MigratePostgres(ctx, db.Pool(), log)
	}
	return fmt.Errorf("jobs: no job queue for store %T", st)
}

func newLogger(format, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	var zc zap.Config
	if format == "console" {
		zc = zap.NewDevelopmentConfig()
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	// Stack traces for errors only, in both formats (the development
	// config would add them to warnings): an expected failure, a CRM that
	// is down, is a warning and needs none.
	return zc.Build(zap.AddStacktrace(zapcore.ErrorLevel))
}

// listen opens the TCP listener, with SO_REUSEPORT when reusePort is set so
// that an old and a new process can both be bound during a restart.
func listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("SO_REUSEPORT: %w", serr)
			}
			return nil
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}
