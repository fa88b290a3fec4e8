// Package notify carries the changes that make an instance's in-memory
// state stale — a tenant's routing configuration, phone-index keys in the
// route cache — to every other instance on the same database, so a change
// made through any instance is routed by all of them within a second.
//
// On PostgreSQL a change travels as a NOTIFY on the channel
// callrouter_changes (one channel per schema) and each instance LISTENs on
// a dedicated connection (Postgres). On SQLite it is appended to a change
// log that the other processes on the file poll every second (Poller).
//
// A change is announced by the database, in the transaction that commits
// it: triggers on the tables a tenant's routing is built from (tenants,
// employees, stop_list, crm_users) and on phone_index send the NOTIFY
// (PostgreSQL delivers it on commit and never without it) or write the
// change-log row (SQLite), see migration 0017. An instance that dies
// between commit and anything after it cannot leave the others stale, and
// a change made by hand in psql or the sqlite3 shell is announced too.
// Those announcements carry no origin, so every instance applies them, the
// writer included (a second invalidation of keys it already dropped).
// Publish remains for explicit announcements.
//
// An instance that may have missed announcements (its listening connection
// was lost, or it fell behind the trimmed log) rebuilds its whole route
// cache from the index, or empties it, and reloads every tenant once it
// hears again (Applier.Resync).
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Kind says what a Change asks the other instances to do.
type Kind string

// The kinds of change.
const (
	// KindTenant: reload the tenant's routing configuration (settings,
	// default owner, employees, stop list, webhook secret, integration).
	KindTenant Kind = "tenant"
	// KindKeys: drop the route-cache entries of these phone-index keys
	// (national suffixes) of the tenant.
	KindKeys Kind = "keys"
	// KindFlush: drop the tenant's cached phone-index entries, all of them
	// (sent instead of a key list too long to announce).
	KindFlush Kind = "flush"
)

// Change is one announcement.
type Change struct {
	Tenant string
	Kind   Kind
	// Keys are the phone-index suffix keys of a KindKeys change.
	Keys []string
}

// Tenant announces that a tenant's routing configuration changed.
func Tenant(tenantID string) Change { return Change{Tenant: tenantID, Kind: KindTenant} }

// Keys announces that the phone-index rows of these suffix keys of a
// tenant changed.
func Keys(tenantID string, keys []string) Change {
	return Change{Tenant: tenantID, Kind: KindKeys, Keys: keys}
}

// Flush announces that any of a tenant's phone-index rows may have changed.
func Flush(tenantID string) Change { return Change{Tenant: tenantID, Kind: KindFlush} }

// Publisher hears changes this instance committed. A Bus's Publish sends
// an explicit announcement to the other instances, on top of the one the
// database sent with the commit; the router's services publish to a local
// hook only (the Ringostat contacts push, see ringostat.Manager.Tee).
type Publisher interface {
	// Publish announces changes, in order. It returns the database's error;
	// the changes themselves are committed already, so a caller reports the
	// error (the other instances may be stale) rather than undoing them.
	Publish(ctx context.Context, changes ...Change) error
}

// Applier applies the other instances' changes to this instance.
type Applier interface {
	// Apply applies one change. An error (the store could not be read)
	// makes the bus Resync later, since the change is then only half
	// applied.
	Apply(ctx context.Context, c Change) error
	// Resync reloads everything: announcements may have been missed.
	Resync(ctx context.Context) error
}

// Bus is one instance's end of change propagation: it publishes this
// instance's changes and, once started, applies everyone else's.
type Bus interface {
	Publisher
	// Start subscribes and returns once the subscription is live, so that
	// state read from the database after Start returns misses no change;
	// from then on it applies the other instances' changes to a until Close
	// or until ctx ends. It returns the database's error.
	Start(ctx context.Context, a Applier) error
	// Close stops applying changes and releases the subscription. It
	// returns nil.
	Close() error
}

// Local is the Applier of a router instance: its tenant registry and its
// route cache.
type Local struct {
	Tenants *tenant.Registry
	Cache   *cache.Cache
	// Scan, when set, reads the whole phone index: Resync then builds the
	// route cache again beside the one serving and swaps it in, instead of
	// emptying it, so calls do not all fall to the store the moment the
	// database comes back.
	Scan cache.Scanner
}

// Apply reloads a tenant or invalidates cache keys. A flush empties the
// whole cache: ristretto cannot enumerate one tenant's keys, and a miss
// only costs a store read. It returns the store's error of a reload.
func (l Local) Apply(ctx context.Context, c Change) error {
	switch c.Kind {
	case KindTenant:
		return l.Tenants.Reload(ctx, c.Tenant)
	case KindKeys:
		// Invalidate bumps the cache's epoch, so a fill that read the store
		// before the change committed cannot put the old rows back.
		l.Cache.Invalidate(c.Tenant, c.Keys...)
	case KindFlush:
		l.Cache.InvalidateAll()
	default:
		return fmt.Errorf("notify: unknown change kind %q", c.Kind)
	}
	return nil
}

// Resync rebuilds the route cache from the index (Scan) or, without Scan or
// when the rebuild cannot be installed, empties it; then it reloads every
// tenant. It returns the store's error; the cache never keeps what it held
// before either way.
func (l Local) Resync(ctx context.Context) error {
	var warmErr error
	if l.Scan != nil {
		ws, err := l.Cache.Warm(ctx, l.Scan)
		if !ws.Replaced {
			l.Cache.InvalidateAll()
			warmErr = err
		}
	} else {
		l.Cache.InvalidateAll()
	}
	if err := l.Tenants.LoadAll(ctx); err != nil {
		return fmt.Errorf("notify: reload tenants: %w", err)
	}
	if warmErr != nil && !errors.Is(warmErr, cache.ErrIndexChanged) && !errors.Is(warmErr, cache.ErrWarming) {
		// Emptied instead; a failed scan means the store is not back.
		return fmt.Errorf("notify: rebuild the route cache: %w", warmErr)
	}
	return nil
}

// Config configures a Bus.
type Config struct {
	// Origin identifies this instance in its announcements; required.
	Origin string
	// Log receives connection losses and failed applications; nop if nil.
	Log *zap.Logger
	// MaxPayload bounds one announcement in bytes (default 7000; PostgreSQL
	// refuses NOTIFY payloads of 8000 bytes or more). A longer key list is
	// split over several announcements.
	MaxPayload int
	// MaxParts bounds the announcements one key list is split into (default
	// 64, about 35,000 keys); a longer list is announced as one KindFlush.
	MaxParts int
	// Now is the clock of the delay metric; time.Now if nil.
	Now func() time.Time

	// Probe is how long a PostgreSQL listener waits for a notification
	// before it checks its connection with a ping (default 15s).
	Probe time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (defaults 100ms and 5s; doubling).
	MinBackoff, MaxBackoff time.Duration

	// PollInterval is how often a Poller reads the change log (default 1s).
	PollInterval time.Duration
	// Retention is how long change-log entries are kept (default 10 min).
	// A poller further behind resyncs.
	Retention time.Duration
}

func (c *Config) defaults() error {
	if c.Origin == "" {
		return fmt.Errorf("notify: Config.Origin is required")
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 7000
	}
	if c.MaxParts <= 0 {
		c.MaxParts = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Probe <= 0 {
		c.Probe = 15 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(5*time.Second, c.MinBackoff)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 10 * time.Minute
	}
	return nil
}

var (
	published = metrics.NewCounter(`callrouter_notify_published_total`)
	flushed   = metrics.NewCounter(`callrouter_notify_flushes_published_total`)
	applied   = metrics.NewCounter(`callrouter_notify_applied_total`)
	resyncs   = metrics.NewCounter(`callrouter_notify_resyncs_total`)
	failures  = metrics.NewCounter(`callrouter_notify_errors_total`)
	// delay is publish → applied here, by the publisher's clock: a second
	// of skew between hosts shows as a second here.
	delay = metrics.NewPrometheusHistogramExt(`callrouter_notify_delay_seconds`, metrics.ExponentialBuckets(0.001, 2, 16))
)

// message is an announcement on the wire.
type message struct {
	Origin string   `json:"origin"`
	At     int64    `json:"at"` // Unix microseconds on the publisher's clock
	Tenant string   `json:"tenant"`
	Kind   Kind     `json:"kind"`
	Keys   []string `json:"keys,omitempty"`
}

// encode turns changes into payloads of at most cfg.MaxPayload bytes: a
// key list is deduplicated and split, and announced as one KindFlush when
// it would take more than cfg.MaxParts payloads. An empty key list is
// dropped.
func encode(cfg *Config, changes []Change) ([]string, error) {
	at := cfg.Now().UnixMicro()
	var out []string
	add := func(m message) error {
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("notify: encode: %w", err)
		}
		if len(b) > cfg.MaxPayload {
			return fmt.Errorf("notify: a %s change of tenant %q is %d bytes, over the %d-byte payload limit", m.Kind, m.Tenant, len(b), cfg.MaxPayload)
		}
		out = append(out, string(b))
		return nil
	}
	for _, c := range changes {
		m := message{Origin: cfg.Origin, At: at, Tenant: c.Tenant, Kind: c.Kind}
		switch c.Kind {
		case KindTenant, KindFlush:
			if err := add(m); err != nil {
				return nil, err
			}
			if c.Kind == KindFlush {
				flushed.Inc()
			}
		case KindKeys:
			parts, err := split(cfg, m, c.Keys)
			if err != nil {
				return nil, err
			}
			if len(parts) > cfg.MaxParts {
				flushed.Inc()
				parts = nil
				if err := add(message{Origin: cfg.Origin, At: at, Tenant: c.Tenant, Kind: KindFlush}); err != nil {
					return nil, err
				}
			}
			out = append(out, parts...)
		default:
			return nil, fmt.Errorf("notify: unknown change kind %q", c.Kind)
		}
	}
	return out, nil
}

// split encodes a key list as few payloads as fit, or nil when it is
// empty. One key too long for a payload of its own is an error.
func split(cfg *Config, m message, keys []string) ([]string, error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	head, err := json.Marshal(m) // without keys: {"origin":…,"kind":"keys"}
	if err != nil {
		return nil, fmt.Errorf("notify: encode: %w", err)
	}
	// The keys field goes just before the closing brace.
	base := len(head) + len(`,"keys":[]`)
	var (
		out  []string
		from int
		size = base
	)
	for i, k := range keys {
		q, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("notify: encode: %w", err)
		}
		n := len(q)
		if i > from {
			n++ // the comma
			if size+n > cfg.MaxPayload {
				b, err := json.Marshal(message{Origin: m.Origin, At: m.At, Tenant: m.Tenant, Kind: m.Kind, Keys: keys[from:i]})
				if err != nil {
					return nil, fmt.Errorf("notify: encode: %w", err)
				}
				out = append(out, string(b))
				from, size, n = i, base, len(q)
			}
		}
		if size+n > cfg.MaxPayload {
			return nil, fmt.Errorf("notify: key %q of tenant %q does not fit a payload", k, m.Tenant)
		}
		size += n
	}
	b, err := json.Marshal(message{Origin: m.Origin, At: m.At, Tenant: m.Tenant, Kind: m.Kind, Keys: keys[from:]})
	if err != nil {
		return nil, fmt.Errorf("notify: encode: %w", err)
	}
	return append(out, string(b)), nil
}

// receive applies one payload unless this instance published it. It
// reports false when the change could not be applied, so the caller
// resyncs; an unreadable payload is logged and skipped (resyncing would
// not make it readable).
func receive(ctx context.Context, cfg *Config, payload string, a Applier) bool {
	return receiveAll(ctx, cfg, []string{payload}, a)
}

// receiveAll applies payloads in order, as one run: the change log holds a
// payload per index row written (SQLite's triggers are per row), so
// adjacent key changes of one tenant are merged into one Apply and a
// tenant change repeated back to back is applied once. It reports false
// when a change could not be applied.
func receiveAll(ctx context.Context, cfg *Config, payloads []string, a Applier) bool {
	var (
		run  []Change
		ats  []int64
		good = true
	)
	for _, payload := range payloads {
		var m message
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			failures.Inc()
			cfg.Log.Error("notify: unreadable announcement skipped", zap.Error(err), zap.Int("bytes", len(payload)))
			continue
		}
		if m.Origin == cfg.Origin && m.Origin != "" {
			continue
		}
		ats = append(ats, m.At)
		if n := len(run); n > 0 && run[n-1].Tenant == m.Tenant && run[n-1].Kind == m.Kind {
			switch m.Kind {
			case KindKeys:
				run[n-1].Keys = append(run[n-1].Keys, m.Keys...)
				continue
			case KindTenant, KindFlush:
				continue
			}
		}
		run = append(run, Change{Tenant: m.Tenant, Kind: m.Kind, Keys: m.Keys})
	}
	for _, c := range run {
		if err := a.Apply(ctx, c); err != nil {
			failures.Inc()
			cfg.Log.Warn("notify: a change from another instance could not be applied; resyncing",
				zap.String("tenant", c.Tenant), zap.String("kind", string(c.Kind)), zap.Error(err))
			good = false
		}
	}
	if !good {
		return false
	}
	applied.Add(len(ats))
	now := cfg.Now()
	for _, at := range ats {
		if at > 0 {
			delay.Update(max(0, now.Sub(time.UnixMicro(at)).Seconds()))
		}
	}
	return true
}

// resync runs a.Resync and counts it; it reports success.
func resync(ctx context.Context, cfg *Config, a Applier) bool {
	if err := a.Resync(ctx); err != nil {
		failures.Inc()
		cfg.Log.Warn("notify: resync failed; retrying", zap.Error(err))
		return false
	}
	resyncs.Inc()
	return true
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
