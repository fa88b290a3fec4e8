// Package lookup makes the routing decision for a live call: normalize the
// caller, find the index rows of that phone in the cache (or, on a miss, in
// the store within the route budget), pick the owner by the tenant's
// owner_order and map them to a SIP login or phone.
//
// A decision always comes back before the tenant's budget runs out: trouble
// behind the cache becomes a "no forward" answer with a reason, never an
// error, because a live call must never wait or fail on our account.
package lookup

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/singleflight"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Reason says why a route answer is what it is; it is sent to the PBX as
// the X-Route-Reason header.
type Reason uint8

// The reasons of DESIGN.md, in the order of their metric counters.
const (
	ReasonOwner Reason = iota
	ReasonDefaultOwner
	ReasonNoMatch
	ReasonUnmappedOwner
	ReasonInvalidCaller
	ReasonTimeout
	ReasonUnavailable
	// ReasonOwnerOffline and ReasonOwnerBusy: the owner's SIP login is
	// offline or in a call (tenant setting presence), and the call went to
	// the default owner or to the PBX's next block (on_unavailable).
	ReasonOwnerOffline
	ReasonOwnerBusy
	// NumReasons is the number of reasons, for arrays indexed by Reason.
	NumReasons
)

const numReasons = NumReasons

var reasonNames = [numReasons]string{
	"owner", "default_owner", "no_match", "unmapped_owner", "invalid_caller", "timeout", "unavailable",
	"owner_offline", "owner_busy",
}

// String returns the reason as sent in X-Route-Reason.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Result is a routing decision. An empty Target means "no forward": the PBX
// moves on to the next block of its scheme.
type Result struct {
	Target string
	Reason Reason
}

// Source reads the phone index on a cache miss (store.Index.LookupSuffix).
type Source interface {
	LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error)
}

// Availability is what the PBX's presence says of a SIP login.
type Availability uint8

// The availabilities a Presence reports.
const (
	// Unknown: no fresh presence (polls failing longer than the limit, or
	// none yet): the login is treated as available, never trusted as gone.
	Unknown Availability = iota
	Free
	Offline
	Busy
)

// Presence tells, from memory, whether a tenant's SIP login can take a call
// (ringostat.Presence). It must not allocate, block or call the network:
// it runs on the route path.
type Presence interface {
	Availability(tenantID, login string, now time.Time) Availability
}

// Live searches the tenant's CRM for a phone the index does not have,
// indexes what it finds and returns the index rows of the phone's suffix
// (crmsync.Live.Lookup).
type Live interface {
	Lookup(ctx context.Context, tenantID, phone string) ([]domain.IndexEntry, error)
}

var (
	reasonCounters [numReasons]*metrics.Counter
	storeReads     = metrics.NewCounter(`callrouter_route_store_reads_total`)
	storeErrors    = metrics.NewCounter(`callrouter_route_store_errors_total`)
	storeDuration  = metrics.NewPrometheusHistogramExt(`callrouter_route_store_read_duration_seconds`, metrics.ExponentialBuckets(50e-6, 2, 16))
	liveFailures   = metrics.NewCounter(`callrouter_route_live_lookup_failures_total`)
)

func init() {
	for i, n := range reasonNames {
		reasonCounters[i] = metrics.NewCounter(`callrouter_route_reasons_total{reason="` + n + `"}`)
	}
}

// Service routes calls. It is safe for concurrent use.
type Service struct {
	cache *cache.Cache
	src   Source
	live  Live
	// storeTimeout and liveTimeout bound the store read and the CRM search
	// a miss starts. They are detached from the call's budget on purpose:
	// the call stops waiting at its deadline, but a slow answer still
	// reaches the index and the cache for the next call.
	storeTimeout time.Duration
	liveTimeout  time.Duration
	group        singleflight.Group
	presence     Presence // nil: presence-aware routing off
}

// New returns a Service over a cache and the store behind it.
func New(c *cache.Cache, src Source, storeTimeout time.Duration) *Service {
	if storeTimeout <= 0 {
		storeTimeout = 2 * time.Second
	}
	return &Service{cache: c, src: src, storeTimeout: storeTimeout, liveTimeout: 3 * time.Second}
}

// WithLive enables CRM searches on misses for tenants with live_lookup,
// each bounded by timeout.
func (s *Service) WithLive(l Live, timeout time.Duration) *Service {
	s.live = l
	if timeout > 0 {
		s.liveTimeout = timeout
	}
	return s
}

// WithPresence enables presence-aware routing for tenants whose presence
// setting is not off.
func (s *Service) WithPresence(p Presence) *Service {
	s.presence = p
	return s
}

// Route decides where to send a call from caller for tenant t. start is when
// the request arrived; the answer is due by start + t.Budget. On a cache hit
// it does not allocate.
func (s *Service) Route(ctx context.Context, t *tenant.Config, caller []byte, start time.Time) Result {
	var buf [24]byte
	num, ok := phone.Fast(buf[:0], caller, t.Region)
	if !ok {
		n, err := phone.Normalize(string(caller), t.Settings.DefaultCountry)
		if err != nil {
			return count(Result{Reason: ReasonInvalidCaller})
		}
		num = append(buf[:0], n...)
	}
	suffix := phone.SuffixBytes(num)
	// Most keys have one row; a key with more than four spills to the heap.
	var rowBuf [4]cache.Row
	if rows, ok := s.cache.GetCounted(t.ID, suffix, rowBuf[:0], t.CacheCounts); ok {
		return count(s.present(t, Decide(t, rows, num), start))
	}
	rows, reason, ok := s.miss(ctx, t, string(num), start.Add(t.Budget))
	if !ok {
		return count(Result{Reason: reason})
	}
	return count(s.present(t, Decide(t, rows, num), start))
}

// present applies the tenant's presence setting to a decision: an owner
// whose SIP login is offline (or, with skip_offline_and_busy, in a call)
// gives the call to the default owner (on_unavailable default_owner, when
// they are available) or to the PBX's next block, with reason
// owner_offline or owner_busy. A default owner chosen by on_miss or
// on_unmapped is checked the same way. Phone targets and logins without
// fresh presence pass unchanged. It does not allocate.
func (s *Service) present(t *tenant.Config, r Result, now time.Time) Result {
	if s.presence == nil || t.Presence == domain.PresenceOff || r.Target == "" {
		return r
	}
	reason, ok := s.unavailable(t, r.Target, now)
	if !ok {
		return r
	}
	if r.Reason == ReasonOwner && t.OnUnavailableDefault && t.DefaultTarget != "" && t.DefaultTarget != r.Target {
		if _, gone := s.unavailable(t, t.DefaultTarget, now); !gone {
			return Result{Target: t.DefaultTarget, Reason: reason}
		}
	}
	return Result{Reason: reason}
}

// unavailable reports whether target is a SIP login the tenant's presence
// setting skips, and why.
func (s *Service) unavailable(t *tenant.Config, target string, now time.Time) (Reason, bool) {
	if _, sip := t.SIPLogins[target]; !sip {
		return 0, false
	}
	switch s.presence.Availability(t.ID, target, now) {
	case Offline:
		return ReasonOwnerOffline, true
	case Busy:
		if t.Presence == domain.PresenceSkipOfflineAndBusy {
			return ReasonOwnerBusy, true
		}
	}
	return 0, false
}

// NoCaller is the decision for a request that names no caller at all: no
// forward, reason invalid_caller, counted like every other decision.
func NoCaller() Result {
	return count(Result{Reason: ReasonInvalidCaller})
}

func count(r Result) Result {
	reasonCounters[r.Reason].Inc()
	return r
}

// miss reads the store, and the CRM when the tenant enables live lookups,
// for one phone: one flight per phone however many calls wait on it. The
// call gives up at the deadline; the flight goes on and fills the cache.
func (s *Service) miss(ctx context.Context, t *tenant.Config, num string, deadline time.Time) ([]cache.Row, Reason, bool) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, ReasonTimeout, false
	}
	live := t.Settings.LiveLookup && s.live != nil
	ch := s.group.DoChan(t.ID+"\x00"+num, func() (any, error) {
		return s.read(t.ID, num, live)
	})
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, ReasonUnavailable, false
		}
		return r.Val.([]cache.Row), 0, true
	case <-timer.C:
		return nil, ReasonTimeout, false
	case <-ctx.Done():
		return nil, ReasonTimeout, false
	}
}

func (s *Service) read(tenantID, num string, live bool) ([]cache.Row, error) {
	suffix := phone.Suffix(num)
	ctx, cancel := context.WithTimeout(context.Background(), s.storeTimeout)
	defer cancel()
	epoch := s.cache.Epoch()
	start := time.Now()
	entries, err := s.src.LookupSuffix(ctx, tenantID, suffix)
	storeDuration.UpdateDuration(start)
	storeReads.Inc()
	if err != nil {
		storeErrors.Inc()
		return nil, err
	}
	if len(entries) == 0 && live {
		lctx, lcancel := context.WithTimeout(context.Background(), s.liveTimeout)
		defer lcancel()
		// What the CRM finds is indexed by Lookup, which invalidates the
		// key and so discards the Fill below; the next call reads the store.
		// A CRM that finds nothing leaves the epoch alone: the negative
		// answer is cached for its TTL.
		// A CRM that fails is treated as one that found nothing: the call
		// gets the tenant's on_miss answer, and the negative entry keeps
		// the next calls from piling searches onto a CRM in trouble.
		if found, err := s.live.Lookup(lctx, tenantID, num); err == nil {
			entries = found
		} else {
			liveFailures.Inc()
		}
	}
	rows := Rows(entries)
	s.cache.Fill(epoch, tenantID, suffix, rows)
	return rows, nil
}

// Rows converts index entries to cache rows, keeping their order.
func Rows(entries []domain.IndexEntry) []cache.Row {
	if len(entries) == 0 {
		return nil
	}
	rows := make([]cache.Row, len(entries))
	for i, e := range entries {
		rows[i] = cache.Row{Phone: e.Phone, Kind: e.Kind, EntityID: e.EntityID, OwnerID: e.OwnerID, Open: e.Open}
	}
	return rows
}

// Decide applies the tenant's rules to the index rows that share the
// caller's suffix key. A row owns the call when it is open, has a
// responsible user and its phone is the caller's, or is a national-only
// phone the caller's number ends with. The first owner in owner_order wins;
// rows are most recently updated first within a kind. It does not allocate.
func Decide(t *tenant.Config, rows []cache.Row, caller []byte) Result {
	for _, kind := range t.OwnerOrder {
		for i := range rows {
			r := &rows[i]
			if r.Kind != kind || !r.Open || r.OwnerID == "" || !phone.SameBytes(r.Phone, caller) {
				continue
			}
			if target, ok := t.Targets[r.OwnerID]; ok {
				return Result{Target: target, Reason: ReasonOwner}
			}
			if t.OnUnmappedDefault && t.DefaultTarget != "" {
				return Result{Target: t.DefaultTarget, Reason: ReasonDefaultOwner}
			}
			return Result{Reason: ReasonUnmappedOwner}
		}
	}
	if t.OnMissDefault && t.DefaultTarget != "" {
		return Result{Target: t.DefaultTarget, Reason: ReasonDefaultOwner}
	}
	return Result{Reason: ReasonNoMatch}
}
