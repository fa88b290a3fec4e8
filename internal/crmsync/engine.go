// Package crmsync keeps each tenant's phone index true to its CRM: full
// syncs on activation, incremental syncs after, CRM webhooks, and live
// lookups on a miss. Every change goes through one path (indexer.apply):
// phones are normalized with the tenant's country, the entity's index rows
// replaced in one transaction, and the cache keys of old and new phones
// invalidated (here, and through Config.Peers on the other instances), so
// the very next route request sees the CRM's state.
//
// The work is split by concern, each part wired with only what it uses:
//
//   - Conns: each tenant's connected crm.Source, built from its sealed
//     credentials, with its token store and rate limiters; the CRM account
//     (users, fields, telephony registration) and the integration's state
//     (broken, failed). The admin service uses it.
//   - indexer: the one write path (apply), with each tenant's order of
//     index writes, shared by the three parts below.
//   - Syncer: full and incremental sync cycles, the reconciliation sweep
//     and the CRM users' refresh. The job runner uses it.
//   - Live: CRM webhooks and live lookups, applied alongside a running
//     cycle. The HTTP API and routing use it.
//   - Calls: the CRM side of call events (the writer, indexing what it
//     made, checking linked entities). The events processor uses it.
//
// New wires them together into an Engine.
package crmsync

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
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

// Engine is the CRM side of callrouter, its parts wired together. Each
// consumer takes the part it needs. All parts are safe for concurrent use.
type Engine struct {
	// Conns connects tenants' CRMs and reads their accounts.
	Conns *Conns
	// Syncer runs sync cycles.
	Syncer *Syncer
	// Live applies CRM webhooks and looks phones up in the CRM.
	Live *Live
	// Calls is what processing call events needs of the CRM.
	Calls *Calls
}

// Config wires an Engine.
type Config struct {
	Store    store.Store
	Cache    *cache.Cache
	Tenants  *tenant.Registry
	Adapters []crm.Adapter
	Box      *secret.Box
	// Deps are passed to adapters (tests inject transports and clocks);
	// Tokens is filled per integration by Conns.
	Deps crm.Deps
	Log  *zap.Logger
	Now  func() time.Time
	// Peers, when set, hears the cache keys of every applied batch (the
	// other instances hear them from the database's own announcement; see
	// notify).
	Peers notify.Publisher
}

// New returns an Engine whose parts share one connection cache and one
// indexer, so that a webhook, a live lookup or a call event's write is
// ordered with the sync cycle's pages (see order).
func New(cfg Config) *Engine {
	log, now := cfg.Log, cfg.Now
	if log == nil {
		log = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	conns := newConns(cfg.Store, cfg.Adapters, cfg.Box, cfg.Deps, log)
	index := newIndexer(cfg.Store, cfg.Cache, cfg.Tenants, cfg.Peers, log, now)
	live := &Live{conns: conns, index: index, store: cfg.Store}
	return &Engine{
		Conns:  conns,
		Syncer: newSyncer(conns, index, cfg.Store, cfg.Tenants, cfg.Peers, log, now),
		Live:   live,
		Calls:  &Calls{conns: conns, index: index, live: live},
	}
}
