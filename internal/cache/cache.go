// Package cache holds the phone index in memory for the route hot path: a
// ristretto cache keyed by tenant and national-suffix key, with positive
// entries (the index rows of that key) and negative entries (no row, kept for
// a TTL), warmed from the store at start and invalidated on every write.
//
// Like CoreDNS's cache plugin it counts hits, misses and negative hits, and
// it never is the source of truth: a miss always falls back to the store.
package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/callrouter/callrouter/internal/domain"
)

// Row is the part of an index row routing needs.
type Row struct {
	Phone    string
	Kind     domain.EntityKind
	EntityID string
	OwnerID  string
	Open     bool
}

// Entry is the cached answer for one (tenant, suffix) key. Rows are ordered
// most recently updated first; an Entry without rows is a negative entry.
type Entry struct {
	Tenant string
	Suffix string
	Rows   []Row
	// expires is when a negative entry stops being served, on the cache's
	// own clock (ristretto's TTL only reclaims the memory later).
	// Unix nanoseconds, not a time.Time: 16 bytes less on each of a
	// million entries.
	expires int64
}

// Negative reports whether the entry records that no row has this key.
func (e *Entry) Negative() bool { return len(e.Rows) == 0 }

var (
	hits         = metrics.NewCounter(`callrouter_cache_hits_total`)
	negativeHits = metrics.NewCounter(`callrouter_cache_negative_hits_total`)
	misses       = metrics.NewCounter(`callrouter_cache_misses_total`)
	fills        = metrics.NewCounter(`callrouter_cache_fills_total`)
	staleFills   = metrics.NewCounter(`callrouter_cache_fills_discarded_total`)
	invalidates  = metrics.NewCounter(`callrouter_cache_invalidations_total`)
)

// Stats are the cache's counters since the process started.
type Stats struct {
	Hits, NegativeHits, Misses uint64
}

// HitRatio returns (hits+negative hits)/lookups, 0 without lookups.
func (s Stats) HitRatio() float64 {
	all := s.Hits + s.NegativeHits + s.Misses
	if all == 0 {
		return 0
	}
	return float64(s.Hits+s.NegativeHits) / float64(all)
}

// ReadStats returns the process-wide cache counters.
func ReadStats() Stats {
	return Stats{Hits: hits.Get(), NegativeHits: negativeHits.Get(), Misses: misses.Get()}
}

// Config sizes a Cache.
type Config struct {
	// MaxItems bounds the number of keys; size it well above the index so
	// TinyLFU admission never has to refuse a warm-up key.
	MaxItems int64
	// NegativeTTL is how long a "no row" answer is served before the store
	// is asked again.
	NegativeTTL time.Duration
	// Now is the clock negative entries expire on; time.Now when nil.
	Now func() time.Time
}

// Cache is the in-memory phone index. It is safe for concurrent use.
type Cache struct {
	rc     *ristretto.Cache[uint64, *Entry]
	seed   maphash.Seed
	negTTL time.Duration
	now    func() time.Time

	// fillMu and epoch close the race between a miss that read the store
	// before a write committed and the write's invalidation: an invalidation
	// bumps epoch under the write lock, and a fill is applied under the read
	// lock only if the epoch it started from is still current.
	fillMu sync.RWMutex
	epoch  atomic.Uint64

	ready atomic.Bool
}

// New returns an empty cache. It returns ristretto's error for a bad size.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxItems <= 0 {
		return nil, errors.New("cache: MaxItems must be positive")
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *Entry]{
		// Ristretto wants ten counters per item it will hold when full;
		// callrouter sizes MaxItems at twice the index, so five per slot
		// is ten per indexed key, at half the sketch's memory.
		NumCounters: max(cfg.MaxItems*5, 1024),
		MaxCost:     cfg.MaxItems,
		BufferItems: 64,
		// Costs are item counts: without this ristretto adds its own per-item
		// size to each cost and silently drops most of a warm-up.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{rc: rc, seed: maphash.MakeSeed(), negTTL: cfg.NegativeTTL, now: cfg.Now}, nil
}

// Close stops the cache's goroutines.
func (c *Cache) Close() { c.rc.Close() }

// key hashes tenant and suffix. Collisions are harmless: Get compares the
// entry's own tenant and suffix before using it.
func (c *Cache) key(tenant string, suffix []byte) uint64 {
	return maphash.String(c.seed, tenant) ^ (maphash.Bytes(c.seed, suffix) * 0x9e3779b97f4a7c15)
}

// keyString is key for a string suffix; maphash gives equal hashes for equal
// bytes whether they come as a string or a slice.
func (c *Cache) keyString(tenant, suffix string) uint64 {
	return maphash.String(c.seed, tenant) ^ (maphash.String(c.seed, suffix) * 0x9e3779b97f4a7c15)
}

// Get returns the entry for (tenant, suffix) and counts a hit, a negative
// hit or a miss; an expired negative entry is a miss. It does not allocate.
func (c *Cache) Get(tenant string, suffix []byte) (*Entry, bool) {
	e, ok := c.rc.Get(c.key(tenant, suffix))
	if !ok || e.Tenant != tenant || e.Suffix != string(suffix) {
		misses.Inc()
		return nil, false
	}
	if e.Negative() {
		if c.now().UnixNano() >= e.expires {
			misses.Inc()
			return nil, false
		}
		negativeHits.Inc()
	} else {
		hits.Inc()
	}
	return e, true
}

// Epoch returns the invalidation epoch; pass it to Fill after reading the
// store.
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// Fill caches what the store said for (tenant, suffix): rows, or a negative
// entry when rows is empty. It is discarded when an invalidation happened
// since epoch was read, because the rows may predate that write; it reports
// whether the entry was handed to ristretto (which may still drop it).
func (c *Cache) Fill(epoch uint64, tenant, suffix string, rows []Row) bool {
	c.fillMu.RLock()
	defer c.fillMu.RUnlock()
	if c.epoch.Load() != epoch {
		staleFills.Inc()
		return false
	}
	fills.Inc()
	e := &Entry{Tenant: tenant, Suffix: suffix, Rows: rows}
	k := c.keyString(tenant, suffix)
	if len(rows) == 0 {
		e.expires = c.now().Add(c.negTTL).UnixNano()
		return c.rc.SetWithTTL(k, e, 1, 2*c.negTTL)
	}
	return c.rc.Set(k, e, 1)
}

// Wait blocks until ristretto has applied every Set made before the call.
// Sets can still be refused by admission; callers fall back to the store.
func (c *Cache) Wait() { c.rc.Wait() }

// Invalidate removes the entries of the given suffixes of a tenant, so the
// very next lookup reads the store. It takes effect before it returns.
func (c *Cache) Invalidate(tenant string, suffixes ...string) {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.epoch.Add(1)
	for _, s := range suffixes {
		c.rc.Del(c.keyString(tenant, s))
	}
	invalidates.Add(len(suffixes))
}

// InvalidateAll empties the cache, e.g. when a tenant's index is replaced.
func (c *Cache) InvalidateAll() {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.epoch.Add(1)
	c.rc.Clear()
}

// Ready reports whether Warm has completed.
func (c *Cache) Ready() bool { return c.ready.Load() }

// ErrIndexChanged is returned by Warm when the index was written during the
// warm-up; the cache is emptied and the caller should warm again.
var ErrIndexChanged = errors.New("cache warm-up: index changed during warm-up")

// entryWithRow holds an entry and its first row in one allocation: most
// keys have one row, and at a million keys each object saved is megabytes
// of heap and of GC work.
type entryWithRow struct {
	e   Entry
	row [1]Row
}

// newEntry returns an empty entry for (tenant, suffix) with room for one
// row. The suffix shares the phone's bytes when it is the phone's tail, as
// it is for every key the index computes.
func newEntry(tenant, suffix, phone string) *Entry {
	er := &entryWithRow{}
	if strings.HasSuffix(phone, suffix) {
		suffix = phone[len(phone)-len(suffix):]
	}
	er.e = Entry{Tenant: tenant, Suffix: suffix, Rows: er.row[:0]}
	return &er.e
}

// compactRow makes a cached row of an index row, sharing the strings many
// rows repeat: the entity kind and, through owners, the owner's id.
func compactRow(r domain.IndexEntry, owners map[string]string) Row {
	owner, ok := owners[r.OwnerID]
	if !ok {
		owner = r.OwnerID
		owners[owner] = owner
	}
	return Row{Phone: r.Phone, Kind: domain.InternKind(r.Kind), EntityID: r.EntityID, OwnerID: owner, Open: r.Open}
}

// Scanner streams the whole phone index ordered by tenant, then suffix, then
// most recently updated first (store.Index.ScanIndex).
type Scanner func(ctx context.Context, fn func(domain.IndexEntry) error) error

// WarmStats reports a warm-up.
type WarmStats struct {
	Rows     int           // index rows read
	Keys     int           // (tenant, suffix) keys built
	Present  int           // keys found in the cache after Wait
	Retried  int           // keys set a second time after ristretto dropped them
	Duration time.Duration // wall time
}

// Warm loads the whole index through scan, waits for ristretto to apply
// every Set, then reads every key back and sets again what was dropped. It
// marks the cache ready when every key is present and returns an error
// naming how many keys are missing otherwise (the cache is then still
// correct, since misses fall back to the store, but slower).
func (c *Cache) Warm(ctx context.Context, scan Scanner) (WarmStats, error) {
	start := time.Now()
	var (
		st     WarmStats
		keys   []*Entry
		cur    *Entry
		tenant string
		owners = map[string]string{}
		flush  = func() {
			if cur != nil {
				c.rc.Set(c.keyString(cur.Tenant, cur.Suffix), cur, 1)
				keys = append(keys, cur)
			}
		}
	)
	epoch := c.Epoch()
	err := scan(ctx, func(r domain.IndexEntry) error {
		st.Rows++
		if cur == nil || r.TenantID != cur.Tenant || r.Suffix != cur.Suffix {
			flush()
			if r.TenantID != tenant {
				tenant = r.TenantID // share one string per tenant across entries
			}
			cur = newEntry(tenant, r.Suffix, r.Phone)
		}
		cur.Rows = append(cur.Rows, compactRow(r, owners))
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("cache warm-up: %w", err)
	}
	flush()
	st.Keys = len(keys)
	c.rc.Wait()
	// A write committed during the scan may have been invalidated before the
	// scan's older copy of its key was set: the scan cannot be trusted then.
	if c.Epoch() != epoch {
		c.InvalidateAll()
		return st, ErrIndexChanged
	}
	for attempt := 0; attempt < 3; attempt++ {
		missing := 0
		for _, e := range keys {
			if _, ok := c.rc.Get(c.keyString(e.Tenant, e.Suffix)); !ok {
				missing++
				c.rc.Set(c.keyString(e.Tenant, e.Suffix), e, 1)
			}
		}
		st.Retried += missing
		if missing == 0 {
			break
		}
		c.rc.Wait()
	}
	for _, e := range keys {
		if _, ok := c.rc.Get(c.keyString(e.Tenant, e.Suffix)); ok {
			st.Present++
		}
	}
	st.Duration = time.Since(start)
	if st.Present != st.Keys {
		return st, fmt.Errorf("cache warm-up: %d of %d keys missing after Wait; raise the cache size", st.Keys-st.Present, st.Keys)
	}
	c.ready.Store(true)
	return st, nil
}
