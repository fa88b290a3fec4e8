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

// Broken marks a tenant's integration broken with the CRM's words after it
// rejected the credentials outside a sync (a call event's write).
func (e *Engine) Broken(ctx context.Context, tenantID string, ae *crm.AuthError) error {
	brokenTotal.Inc()
	e.log.Warn("integration broken: the CRM rejected the credentials", zap.String("tenant", tenantID), zap.String("crm_error", ae.Message))
	return e.store.SetIntegrationState(ctx, tenantID, store.IntegrationBroken, ae.Message, false)
}
