package ringostat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Ingester stores a recovered call event through the same idempotent path
// as the events endpoint (events.Ingest), reporting whether it was new.
type Ingester interface {
	StoreNew(ctx context.Context, t *tenant.Config, in events.Incoming) (string, bool, error)
}

// Store is what the manager reads and writes.
type Store interface {
	store.Ringostat
	store.Index
	store.Meta
	// Integration names the CRM the contacts come from (for origin and links).
	Integration(ctx context.Context, tenantID string) (store.Integration, error)
	// ListEvents lists stored call events (the call-backs a restart must
	// schedule again).
	ListEvents(ctx context.Context, tenantID string, f store.EventFilter) ([]domain.CallEvent, error)
}

// Config wires a Manager. Zero durations take the defaults below.
type Config struct {
	Store    Store
	Box      *secret.Box
	Tenants  *tenant.Registry
	Presence *Presence
	Ingest   Ingester
	// HTTP calls Ringostat; its transport should be crm.NewTransport's, so
	// base URLs are guarded like CRM URLs.
	HTTP *http.Client
	Log  *zap.Logger
	Now  func() time.Time
	// Instance names this process for the leases that make one instance
	// push and reconcile a tenant (every instance polls presence: each
	// routes from its own memory).
	Instance string

	PollInterval      time.Duration // presence polls; DefaultPollInterval
	PushInterval      time.Duration // how often index changes are pushed; DefaultPushInterval
	ReconcileInterval time.Duration // call-log reads; DefaultReconcileInterval
	// ReconcileOverlap is how far each call-log window reaches back into
	// the previous one; DefaultReconcileOverlap.
	ReconcileOverlap time.Duration
	// ReconcileLag keeps the window's end this far behind now, so the
	// webhook of a call that just ended is not raced; DefaultReconcileLag.
	ReconcileLag time.Duration
	// MaxCalls is the most calls one /calls/list request returns:
	// MaxCallsPerRequest (tests lower it).
	MaxCalls  int
	PushBatch int     // contacts per sync request; DefaultPushBatch
	PushRate  float64 // sync requests per second; DefaultPushRate
}

// Defaults of Config.
const (
	DefaultPollInterval      = 5 * time.Second
	DefaultPushInterval      = 2 * time.Second
	DefaultReconcileInterval = 3 * time.Minute
	DefaultReconcileOverlap  = 15 * time.Minute
	DefaultReconcileLag      = 2 * time.Minute
	DefaultPushBatch         = 100
	DefaultPushRate          = 2.0
	// StaleFactor: presence older than this many poll intervals is stale.
	StaleFactor = 3
	// maxOpenHold bounds how long an unfinished call in the log holds the
	// reconciliation window back.
	maxOpenHold = 6 * time.Hour
	callTimeout = 60 * time.Second
)

// Manager does a tenant's work with Ringostat: presence polls, the
// contacts push and the call-log reconciliation. It is safe for concurrent
// use.
type Manager struct {
	cfg     Config
	log     *zap.Logger
	now     func() time.Time
	limiter *rate.Limiter

	mu      sync.Mutex
	clients map[string]cachedClient
	pending map[string]map[string]struct{} // tenant → changed suffix keys to push
	full    map[string]bool                // tenant → the full push must start over
	// callbacks wait for their delay, by tenant and client number.
	callbacks map[string]*pendingCallback
	cancelled []*pendingCallback // cancelled call-backs not yet recorded
	changed   chan struct{}
}

type cachedClient struct {
	updated time.Time
	c       *Client
	conn    store.RingostatConn
}

// NewManager returns a Manager for cfg.
func NewManager(cfg Config) *Manager {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.PushInterval <= 0 {
		cfg.PushInterval = DefaultPushInterval
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = DefaultReconcileInterval
	}
	if cfg.ReconcileOverlap <= 0 {
		cfg.ReconcileOverlap = DefaultReconcileOverlap
	}
	if cfg.ReconcileLag <= 0 {
		cfg.ReconcileLag = DefaultReconcileLag
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = MaxCallsPerRequest
	}
	if cfg.PushBatch <= 0 {
		cfg.PushBatch = DefaultPushBatch
	}
	if cfg.PushRate <= 0 {
		cfg.PushRate = DefaultPushRate
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: callTimeout}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Presence == nil {
		cfg.Presence = NewPresence(StaleFactor * cfg.PollInterval)
	}
	return &Manager{cfg: cfg, log: cfg.Log, now: cfg.Now, limiter: rate.NewLimiter(rate.Limit(cfg.PushRate), 1),
		clients: map[string]cachedClient{}, pending: map[string]map[string]struct{}{}, full: map[string]bool{}, callbacks: map[string]*pendingCallback{},
		changed: make(chan struct{}, 1)}
}

// SetIngest sets where recovered call events go, for wiring in which the
// ingest is made after the manager; call it before Run.
func (m *Manager) SetIngest(in Ingester) { m.cfg.Ingest = in }

// Presence returns the presence the manager's polls fill.
func (m *Manager) Presence() *Presence { return m.cfg.Presence }

func aad(tenantID string) []byte { return []byte(tenantID + "\x00ringostat") }

// Seal encrypts a tenant's Auth-key for the store.
func (m *Manager) Seal(tenantID string, authKey []byte) []byte {
	return m.cfg.Box.Seal(authKey, aad(tenantID))
}

// Changed tells the manager a tenant's connection was put or removed: the
// cached client is dropped, presence forgotten, and the loop wakes.
func (m *Manager) Changed(tenantID string) {
	m.mu.Lock()
	delete(m.clients, tenantID)
	m.mu.Unlock()
	m.cfg.Presence.Forget(tenantID)
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// IndexChanged queues the phone-index keys of a tenant whose rows changed,
// for the next push (see Tee).
func (m *Manager) IndexChanged(tenantID string, suffixes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.pending[tenantID]
	if set == nil {
		set = map[string]struct{}{}
		m.pending[tenantID] = set
	}
	for _, s := range suffixes {
		set[s] = struct{}{}
	}
}

// IndexFlushed says any of a tenant's index rows may have changed: the full
// push starts over.
func (m *Manager) IndexFlushed(tenantID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.full[tenantID] = true
}

// client returns a tenant's connection and a client for it. ENOTFOUND
// without a connection.
func (m *Manager) client(ctx context.Context, tenantID string) (*Client, store.RingostatConn, error) {
	conn, err := m.cfg.Store.RingostatConn(ctx, tenantID)
	if err != nil {
		return nil, store.RingostatConn{}, err
	}
	m.mu.Lock()
	cc, ok := m.clients[tenantID]
	m.mu.Unlock()
	if ok && cc.updated.Equal(conn.UpdatedAt) {
		return cc.c, conn, nil
	}
	key, err := m.cfg.Box.Open(conn.AuthKey, aad(tenantID))
	if err != nil {
		return nil, conn, fmt.Errorf("ringostat key of %s: %w", tenantID, err)
	}
	c, err := NewClient(conn.BaseURL, string(key), conn.ProjectID, m.cfg.HTTP)
	if err != nil {
		return nil, conn, err
	}
	m.mu.Lock()
	m.clients[tenantID] = cachedClient{updated: conn.UpdatedAt, c: c, conn: conn}
	m.mu.Unlock()
	return c, conn, nil
}

// failed records err: a refused key marks the connection broken with
// Ringostat's words (shown in /status); the rest is returned for the
// caller to record where it belongs.
func (m *Manager) failed(ctx context.Context, tenantID string, err error) error {
	var re *Error
	if errors.As(err, &re) && re.Auth() {
		counter("callrouter_ringostat_auth_failures_total", tenantID).Inc()
		msg := fmt.Sprintf("%d %s", re.Status, re.Message)
		if serr := m.cfg.Store.SetRingostatState(ctx, tenantID, store.RingostatBroken, msg); serr != nil {
			return errors.Join(err, serr)
		}
		m.Changed(tenantID)
	}
	return err
}

// PollPresence reads the SIP logins online and speaking into memory, for
// a tenant whose presence setting is not off. A failed poll leaves the
// last snapshot, which goes stale after StaleFactor intervals.
func (m *Manager) PollPresence(ctx context.Context, tenantID string) error {
	t := m.cfg.Tenants.Lookup(tenantID)
	if t == nil || t.Presence == domain.PresenceOff || t.Presence == "" {
		return nil
	}
	c, conn, err := m.client(ctx, tenantID)
	if err != nil || conn.State != store.RingostatActive {
		return err
	}
	polledAt := m.now()
	online, err := c.Online(ctx)
	if err == nil {
		var speaking []string
		if speaking, err = c.Speaking(ctx); err == nil {
			m.cfg.Presence.Polled(tenantID, online, speaking, polledAt)
			counter("callrouter_ringostat_presence_polls_total", tenantID).Inc()
			return nil
		}
	}
	counter("callrouter_ringostat_presence_poll_failures_total", tenantID).Inc()
	return m.failed(ctx, tenantID, err)
}

func counter(name, tenantID string) *metrics.Counter {
	return metrics.GetOrCreateCounter(name + `{tenant="` + tenantID + `"}`)
}

// Run works every connection until ctx ends: presence every
// PollInterval, index changes every PushInterval (and the full push after
// connecting), the call log every ReconcileInterval, due call-backs every
// second. Push and reconciliation of a tenant run on one instance at a
// time (a lease); presence polls run beside them, so a long full push
// never lets presence go stale.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	type due struct{ poll, push, reconcile time.Time }
	next := map[string]*due{}
	var (
		bmu       sync.Mutex
		polling   = map[string]bool{}
		working   = map[string]bool{}
		wg        sync.WaitGroup
		conns     []store.RingostatConn
		loaded    time.Time
		haveConns bool
	)
	defer wg.Wait()
	m.RecoverCallbacks(ctx)
	// start runs f for a tenant unless the same kind of work still runs.
	start := func(busy map[string]bool, id string, f func()) {
		bmu.Lock()
		if busy[id] {
			bmu.Unlock()
			return
		}
		busy[id] = true
		bmu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { bmu.Lock(); busy[id] = false; bmu.Unlock() }()
			f()
		}()
	}
	for {
		now := m.now()
		if !haveConns || now.Sub(loaded) >= 10*time.Second {
			if cs, err := m.cfg.Store.ListRingostat(ctx); err == nil {
				conns, loaded, haveConns = cs, now, true
			} else if ctx.Err() == nil {
				m.log.Warn("ringostat: list connections", zap.Error(err))
			}
		}
		for _, c := range conns {
			if c.State != store.RingostatActive {
				continue
			}
			id := c.TenantID
			d := next[id]
			if d == nil {
				d = &due{}
				next[id] = d
			}
			if !now.Before(d.poll) {
				d.poll = now.Add(m.cfg.PollInterval)
				start(polling, id, func() { m.poll(ctx, id) })
			}
			push, rec := !now.Before(d.push), !now.Before(d.reconcile)
			if push {
				d.push = now.Add(m.cfg.PushInterval)
			}
			if rec {
				d.reconcile = now.Add(m.cfg.ReconcileInterval)
			}
			if push || rec {
				start(working, id, func() { m.work(ctx, id, push, rec) })
			}
		}
		m.Callbacks(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-m.changed:
			haveConns = false
			clear(next)
		}
	}
}

func (m *Manager) poll(ctx context.Context, tenantID string) {
	if err := m.PollPresence(ctx, tenantID); err != nil && ctx.Err() == nil {
		m.log.Warn("ringostat: presence poll", zap.String("tenant", tenantID), zap.Error(err))
	}
}

func (m *Manager) work(ctx context.Context, tenantID string, push, rec bool) {
	ttl := max(2*m.cfg.ReconcileInterval, time.Minute)
	ok, err := m.cfg.Store.LeaseRingostat(ctx, tenantID, m.cfg.Instance, ttl)
	if err != nil || !ok {
		return
	}
	if push {
		if err := m.Push(ctx, tenantID); err != nil && ctx.Err() == nil {
			m.log.Warn("ringostat: contacts push", zap.String("tenant", tenantID), zap.Error(err))
		}
	}
	if rec {
		if _, err := m.Reconcile(ctx, tenantID); err != nil && ctx.Err() == nil {
			m.log.Warn("ringostat: call-log reconciliation", zap.String("tenant", tenantID), zap.Error(err))
		}
	}
}

// errText is an error for /status: the message without the Go wrapping.
func errText(err error) string {
	if err == nil {
		return ""
	}
	var re *Error
	if errors.As(err, &re) {
		return fmt.Sprintf("%d %s", re.Status, re.Message)
	}
	s := err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// PresenceCounts returns how many SIP logins of a tenant the last poll
// found online and speaking, when it ran, and whether it is still trusted
// for routing.
func (m *Manager) PresenceCounts(tenantID string) (online, speaking int, polledAt time.Time, fresh bool) {
	online, speaking, polledAt = m.cfg.Presence.Counts(tenantID)
	fresh = !polledAt.IsZero() && m.now().Sub(polledAt) <= m.cfg.Presence.StaleAfter()
	return online, speaking, polledAt, fresh
}
