// Package cache holds the phone index in memory for the route hot path,
// keyed by tenant and national-suffix key, with positive entries (the index
// rows of that key) and negative entries (no row, kept for a TTL), warmed
// from the store at start and invalidated on every write.
//
// Positive entries live in a flat index (flat.go): records packed into one
// byte slab and an open-addressing table of uint64 slots, read without locks
// or allocation and invisible to the garbage collector, which at a million
// keys used to mark three million small objects every cycle. Ristretto, the
// mandated cache, keeps what is bounded only by its own admission policy:
// negative entries (any caller can make one, so they must be evictable) and
// the rare key whose fields do not fit the flat layout. Changes never write
// a record twice: an invalidation kills the key's slot, a fill appends a new
// record, and the index compacts itself when the dead outweigh the living.
//
// Like CoreDNS's cache plugin it counts hits, misses and negative hits, and
// it never is the source of truth: a miss always falls back to the store.
package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
	indexKeys    = metrics.NewGauge(`callrouter_cache_index_keys`, nil)
	indexBytes   = metrics.NewGauge(`callrouter_cache_index_bytes`, nil)
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

// Counts are one tenant's cache counters on this instance. The zero value
// is ready; counting is atomic, so the route hot path neither allocates nor
// waits.
type Counts struct {
	hits, negativeHits, misses atomic.Uint64
}

// Read returns the counters; a nil Counts reads as zero.
func (n *Counts) Read() Stats {
	if n == nil {
		return Stats{}
	}
	return Stats{Hits: n.hits.Load(), NegativeHits: n.negativeHits.Load(), Misses: n.misses.Load()}
}

func (n *Counts) hit() {
	hits.Inc()
	if n != nil {
		n.hits.Add(1)
	}
}

func (n *Counts) negativeHit() {
	negativeHits.Inc()
	if n != nil {
		n.negativeHits.Add(1)
	}
}

func (n *Counts) miss() {
	misses.Inc()
	if n != nil {
		n.misses.Add(1)
	}
}

// ReadStats returns the process-wide cache counters.
func ReadStats() Stats {
	return Stats{Hits: hits.Get(), NegativeHits: negativeHits.Get(), Misses: misses.Get()}
}

// Config sizes a Cache.
type Config struct {
	// MaxItems bounds the keys ristretto holds: negative entries and keys
	// too large for the flat index. The flat index itself holds every
	// indexed key and is bounded by the index.
	MaxItems int64
	// NegativeTTL is how long a "no row" answer is served before the store
	// is asked again.
	NegativeTTL time.Duration
	// Now is the clock negative entries expire on; time.Now when nil.
	Now func() time.Time
}

// Cache is the in-memory phone index. It is safe for concurrent use.
type Cache struct {
	flat   *flat
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
	// warming, under fillMu, records what is invalidated while a warm-up
	// scans; nil when none is under way.
	warming *warmLog

	ready atomic.Bool
}

// New returns an empty cache. It returns ristretto's error for a bad size.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxItems <= 0 {
		return nil, errors.New("cache: MaxItems must be positive")
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *Entry]{
		// Ristretto wants about ten counters per item it will hold when
		// full.
		NumCounters: max(cfg.MaxItems*10, 1024),
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
	seed := maphash.MakeSeed()
	return &Cache{flat: newFlat(seed), rc: rc, seed: seed, negTTL: cfg.NegativeTTL, now: cfg.Now}, nil
}

// Close stops the cache's goroutines.
func (c *Cache) Close() { c.rc.Close() }

// Get appends the rows cached for (tenant, suffix) to buf and counts a hit,
// a negative hit or a miss. ok is false on a miss (an expired negative entry
// is one); a negative hit returns no rows. The rows' strings point into the
// index and stay valid as long as they are referenced. It does not allocate
// while buf has room for the key's rows, so pass a small array's slice.
func (c *Cache) Get(tenant string, suffix []byte, buf []Row) (rows []Row, ok bool) {
	return c.GetCounted(tenant, suffix, buf, nil)
}

// GetCounted is Get that also counts the outcome in n, the tenant's own
// counters (nil: process-wide only). It allocates no more than Get.
func (c *Cache) GetCounted(tenant string, suffix []byte, buf []Row, n *Counts) (rows []Row, ok bool) {
	h := c.flat.hash(tenant, suffix)
	if rows, ok := c.flat.get(h, tenant, suffix, buf); ok {
		n.hit()
		return rows, true
	}
	// Collisions are harmless: the entry's own tenant and suffix are
	// compared before it is used.
	e, ok := c.rc.Get(h)
	if !ok || e.Tenant != tenant || e.Suffix != string(suffix) {
		n.miss()
		return buf, false
	}
	if e.Negative() {
		if c.now().UnixNano() >= e.expires {
			n.miss()
			return buf, false
		}
		n.negativeHit()
		return buf, true
	}
	n.hit()
	return append(buf, e.Rows...), true
}

// Epoch returns the invalidation epoch; pass it to Fill after reading the
// store.
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// Fill caches what the store said for (tenant, suffix): rows, or a negative
// entry when rows is empty. It is discarded when an invalidation happened
// since epoch was read, because the rows may predate that write; it reports
// whether the entry was kept (ristretto may still drop a negative entry).
func (c *Cache) Fill(epoch uint64, tenant, suffix string, rows []Row) bool {
	c.fillMu.RLock()
	defer c.fillMu.RUnlock()
	if c.epoch.Load() != epoch {
		staleFills.Inc()
		return false
	}
	fills.Inc()
	k := c.flat.hashString(tenant, suffix)
	if len(rows) > 0 {
		c.flat.mu.Lock()
		ok := c.flat.put(tenant, suffix, rows)
		c.flat.mu.Unlock()
		if ok {
			c.publishSize()
			return true
		}
		return c.rc.Set(k, &Entry{Tenant: tenant, Suffix: suffix, Rows: rows}, 1)
	}
	e := &Entry{Tenant: tenant, Suffix: suffix, expires: c.now().Add(c.negTTL).UnixNano()}
	return c.rc.SetWithTTL(k, e, 1, 2*c.negTTL)
}

// publishSize updates the index gauges.
func (c *Cache) publishSize() {
	st := c.flat.stats()
	indexKeys.Set(float64(st.Keys))
	indexBytes.Set(float64(st.Bytes))
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
	if c.warming != nil {
		for _, s := range suffixes {
			c.warming.keys = append(c.warming.keys, warmKey{tenant, s})
		}
	}
	c.flat.mu.Lock()
	for _, s := range suffixes {
		h := c.flat.hashString(tenant, s)
		c.flat.kill(h, tenant, s)
		c.rc.Del(h)
	}
	c.flat.mu.Unlock()
	invalidates.Add(len(suffixes))
}

// InvalidateAll empties the cache, e.g. when a tenant's index is replaced.
func (c *Cache) InvalidateAll() {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.epoch.Add(1)
	if c.warming != nil {
		c.warming.all = true
	}
	c.flat.mu.Lock()
	c.flat.reset(0)
	c.flat.mu.Unlock()
	c.rc.Clear()
}

// Ready reports whether Warm has completed.
func (c *Cache) Ready() bool { return c.ready.Load() }

// ErrIndexChanged is returned by Warm when the whole cache was flushed
// during the warm-up (a tenant's index replaced); the cache is empty and the
// caller should warm again.
var ErrIndexChanged = errors.New("cache warm-up: index changed during warm-up")

// ErrWarming is returned by Warm when another warm-up is under way.
var ErrWarming = errors.New("cache warm-up: another warm-up is under way")

// warmLog is what was invalidated while a warm-up scanned: the scan may
// have read those keys before their change, so they are killed in the new
// index before it serves.
type warmLog struct {
	keys []warmKey
	all  bool // InvalidateAll: nothing the scan read can be trusted
}

type warmKey struct{ tenant, suffix string }

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
	Present  int           // keys found in the cache when read back
	Killed   int           // keys invalidated during the scan, left to the store
	Replaced bool          // the built index was installed and is serving
	Retried  int           // overflow keys set a second time after ristretto dropped them
	Duration time.Duration // wall time
}

// Warm loads the whole index through scan into a new flat index built to
// the side, reads every key back, and installs it in one step: until then
// lookups keep what the cache held, so a warm cache can be warmed again
// (after changes may have been missed) without a moment of misses. Keys
// invalidated while the scan ran are left out, since the scan may have read
// them before their change; the next lookup reads the store. Keys too large
// for the flat layout go to ristretto and are set again when its admission
// dropped them. It marks the cache ready when every key is present and
// returns an error naming how many keys are missing otherwise (the cache is
// then still correct, since misses fall back to the store, but slower).
// ErrIndexChanged means the whole cache was flushed during the scan: the
// cache is empty and the caller should warm again; ErrWarming that another
// warm-up is under way; otherwise the scan's error.
func (c *Cache) Warm(ctx context.Context, scan Scanner) (WarmStats, error) {
	start := time.Now()
	log := &warmLog{}
	c.fillMu.Lock()
	if c.warming != nil {
		c.fillMu.Unlock()
		return WarmStats{}, ErrWarming
	}
	c.warming = log
	c.fillMu.Unlock()
	defer func() {
		c.fillMu.Lock()
		if c.warming == log {
			c.warming = nil
		}
		c.fillMu.Unlock()
	}()
	var (
		st       WarmStats
		b        = newFlatBuilder(c.seed)
		overflow []*Entry
		tenant   string
		suffix   string
		rows     []Row
		owners   = map[string]string{}
		flush    = func() {
			if len(rows) == 0 {
				return
			}
			st.Keys++
			if !b.add(tenant, suffix, rows) {
				e := &Entry{Tenant: tenant, Suffix: suffix, Rows: append([]Row(nil), rows...)}
				overflow = append(overflow, e)
			}
			rows = rows[:0]
		}
	)
	err := scanAside(ctx, scan, func(r *domain.IndexEntry) {
		st.Rows++
		if r.TenantID != tenant || r.Suffix != suffix {
			flush()
			tenant, suffix = r.TenantID, r.Suffix
		}
		rows = append(rows, compactRow(*r, owners))
	})
	if err != nil {
		return st, fmt.Errorf("cache warm-up: %w", err)
	}
	flush()
	// Read every record back through the reader's path before anything can
	// change the index: once installed, fills and invalidations write to it
	// concurrently and a count would no longer mean anything.
	st.Present = b.verify()
	// Installing under the fill lock keeps an invalidation from falling
	// between reading the log and serving the new index.
	c.fillMu.Lock()
	if log.all {
		c.fillMu.Unlock()
		return st, ErrIndexChanged
	}
	killed := make(map[warmKey]bool, len(log.keys))
	c.flat.mu.Lock()
	b.install(c.flat)
	for _, k := range log.keys {
		if !killed[k] {
			killed[k] = true
			if c.flat.kill(c.flat.hashString(k.tenant, k.suffix), k.tenant, k.suffix) {
				st.Killed++
				st.Present-- // verify had found it
			}
		}
	}
	c.flat.mu.Unlock()
	st.Replaced = true
	installed := c.Epoch()
	// What ristretto holds (negative entries, keys too large for the flat
	// layout) predates the scan: a warm-up after missed changes must not
	// keep it.
	c.rc.Clear()
	kept := overflow[:0]
	for _, e := range overflow {
		if killed[warmKey{e.Tenant, e.Suffix}] {
			st.Killed++
			continue
		}
		kept = append(kept, e)
		c.rc.Set(c.keyString(e.Tenant, e.Suffix), e, 1)
	}
	overflow = kept
	c.fillMu.Unlock()
	c.publishSize()

	if len(overflow) > 0 {
		c.rc.Wait()
		for attempt := 0; attempt < 3; attempt++ {
			missing := 0
			for _, e := range overflow {
				if _, ok := c.rc.Get(c.keyString(e.Tenant, e.Suffix)); !ok {
					missing++
					// Through Fill: a key invalidated since the install
					// must not come back.
					c.Fill(installed, e.Tenant, e.Suffix, e.Rows)
				}
			}
			st.Retried += missing
			if missing == 0 {
				break
			}
			c.rc.Wait()
		}
		for _, e := range overflow {
			if _, ok := c.rc.Get(c.keyString(e.Tenant, e.Suffix)); ok {
				st.Present++
			}
		}
	}
	st.Duration = time.Since(start)
	st.Keys -= st.Killed
	if st.Present != st.Keys {
		return st, fmt.Errorf("cache warm-up: %d of %d keys missing after the warm-up; raise the cache size", st.Keys-st.Present, st.Keys)
	}
	c.ready.Store(true)
	return st, nil
}

// warmBatch is how many index rows the scan hands the build at a time.
const warmBatch = 4096

// scanAside runs scan on a goroutine of its own and calls fn with each row
// on the caller's, rows handed over in batches: the store's row decoding
// and the index build run side by side, so a warm-up takes about the
// longer of the two instead of their sum (on SQLite, 1M rows: about 2 s
// each). fn must not keep r. The caller drains every batch, so the scan
// never waits on it for good. It returns scan's error.
func scanAside(ctx context.Context, scan Scanner, fn func(r *domain.IndexEntry)) error {
	full := make(chan []domain.IndexEntry, 4)
	empty := make(chan []domain.IndexEntry, 6) // drained batches, reused
	done := make(chan error, 1)
	go func() {
		defer close(full)
		batch := make([]domain.IndexEntry, 0, warmBatch)
		send := func() {
			full <- batch
			select {
			case batch = <-empty:
				batch = batch[:0]
			default:
				batch = make([]domain.IndexEntry, 0, warmBatch)
			}
		}
		err := scan(ctx, func(r domain.IndexEntry) error {
			if batch = append(batch, r); len(batch) == warmBatch {
				send()
			}
			return nil
		})
		if len(batch) > 0 {
			send()
		}
		done <- err
	}()
	for b := range full {
		for i := range b {
			fn(&b[i])
		}
		select {
		case empty <- b:
		default:
		}
	}
	return <-done
}

// keyString is the key's hash for ristretto, the flat index's own.
func (c *Cache) keyString(tenant, suffix string) uint64 { return c.flat.hashString(tenant, suffix) }
