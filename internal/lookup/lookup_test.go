package lookup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/tenant"
)

// memSource is an in-memory phone index with a switchable failure mode, so
// the miss path can be driven into slowness and errors.
type memSource struct {
	mu    sync.Mutex
	rows  []domain.IndexEntry
	reads atomic.Int32
	block chan struct{} // when set, reads wait for it to close
	err   error
}

func (m *memSource) LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error) {
	m.reads.Add(1)
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	var out []domain.IndexEntry
	for _, r := range m.rows {
		if r.TenantID == tenantID && r.Suffix == suffix {
			out = append(out, r)
		}
	}
	return out, nil
}

func entry(ph string, kind domain.EntityKind, id, owner string, open bool) domain.IndexEntry {
	return domain.IndexEntry{TenantID: "acme", Phone: ph, Suffix: phone.Suffix(ph), Kind: kind, EntityID: id, OwnerID: owner, Open: open}
}

func testTenant(mut func(*domain.Settings), emps ...domain.Employee) *tenant.Config {
	s := domain.DefaultSettings()
	s.DefaultCountry = "UA"
	if mut != nil {
		mut(&s)
	}
	return tenant.Build(domain.Tenant{ID: "acme", Settings: s, DefaultOwner: "boss", SecretHash: tenant.HashSecret("k")}, emps, nil)
}

var staff = []domain.Employee{
	{CRMUserID: "anna", SIP: "sip_anna", Phone: "380501111111"},
	{CRMUserID: "boris", Phone: "380502222222"},
	{CRMUserID: "boss", SIP: "sip_boss"},
}

func TestDecide(t *testing.T) {
	caller := []byte("380671234567")
	tests := []struct {
		name   string
		mut    func(*domain.Settings)
		emps   []domain.Employee
		rows   []domain.IndexEntry
		target string
		reason Reason
	}{
		{"lead owner with SIP login", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}, "sip_anna", ReasonOwner},
		{"owner without SIP gets phone", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "boris", true)}, "380502222222", ReasonOwner},
		{"lead beats contact by default order", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "boris", true), entry("380671234567", domain.KindLead, "L1", "anna", true)},
			"sip_anna", ReasonOwner},
		{"owner_order contact first", func(s *domain.Settings) { s.OwnerOrder = []domain.EntityKind{domain.KindContact, domain.KindLead} }, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true), entry("380671234567", domain.KindContact, "C1", "boris", true)},
			"380502222222", ReasonOwner},
		{"closed lead is skipped", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", false), entry("380671234567", domain.KindDeal, "D1", "boris", true)},
			"380502222222", ReasonOwner},
		{"kind outside owner_order is ignored", func(s *domain.Settings) { s.OwnerOrder = []domain.EntityKind{domain.KindLead} }, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "boris", true)}, "", ReasonNoMatch},
		{"entity without responsible is skipped", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "", true), entry("380671234567", domain.KindContact, "C1", "anna", true)},
			"sip_anna", ReasonOwner},
		{"unmapped owner goes to default owner", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "ghost", true)}, "sip_boss", ReasonDefaultOwner},
		{"unmapped owner with on_unmapped=next", func(s *domain.Settings) { s.OnUnmapped = domain.PolicyNext }, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "ghost", true)}, "", ReasonUnmappedOwner},
		{"unmapped owner and unmapped default owner", nil, staff[:2],
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "ghost", true)}, "", ReasonUnmappedOwner},
		{"no owner, on_miss=next", nil, staff, nil, "", ReasonNoMatch},
		{"no owner, on_miss=default_owner", func(s *domain.Settings) { s.OnMiss = domain.PolicyDefaultOwner }, staff, nil, "sip_boss", ReasonDefaultOwner},
		{"no owner, on_miss=default_owner, default owner unmapped", func(s *domain.Settings) { s.OnMiss = domain.PolicyDefaultOwner }, staff[:2], nil, "", ReasonNoMatch},
		{"national-only CRM phone matches the international caller", nil, staff,
			[]domain.IndexEntry{entry("671234567", domain.KindContact, "C1", "anna", true)}, "sip_anna", ReasonOwner},
		{"same last digits in another country do not match", nil, staff,
			[]domain.IndexEntry{entry("79671234567", domain.KindContact, "C1", "anna", true)}, "", ReasonNoMatch},
		{"most recent row of a kind wins", nil, staff,
			[]domain.IndexEntry{entry("380671234567", domain.KindLead, "L2", "boris", true), entry("380671234567", domain.KindLead, "L1", "anna", true)},
			"380502222222", ReasonOwner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(testTenant(tc.mut, tc.emps...), Rows(tc.rows), caller)
			if got.Target != tc.target || got.Reason != tc.reason {
				t.Fatalf("Decide = {%q %s}, want {%q %s}", got.Target, got.Reason, tc.target, tc.reason)
			}
		})
	}
}

func newService(t *testing.T, src Source) (*Service, *cache.Cache) {
	t.Helper()
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return New(c, src, time.Second), c
}

func TestRouteMissReadsStoreOnceThenHitsCache(t *testing.T) {
	src := &memSource{rows: []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}}
	s, c := newService(t, src)
	tc := testTenant(nil, staff...)
	for _, caller := range []string{"+380 (67) 123-45-67", "0671234567", "380671234567"} {
		got := s.Route(context.Background(), tc, []byte(caller), time.Now())
		if got.Target != "sip_anna" || got.Reason != ReasonOwner {
			t.Fatalf("Route(%q) = %+v", caller, got)
		}
		c.Wait()
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("store reads = %d, want 1 (later calls hit the cache)", n)
	}
}

func TestRouteUnknownCallerIsCachedNegative(t *testing.T) {
	src := &memSource{}
	s, c := newService(t, src)
	tc := testTenant(nil, staff...)
	for i := 0; i < 3; i++ {
		if got := s.Route(context.Background(), tc, []byte("380509999999"), time.Now()); got.Reason != ReasonNoMatch {
			t.Fatalf("Route = %+v, want no_match", got)
		}
		c.Wait()
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("store reads = %d, want 1", n)
	}
}

func TestRouteInvalidCaller(t *testing.T) {
	src := &memSource{}
	s, _ := newService(t, src)
	for _, caller := range []string{"anonymous", "12", ""} {
		if got := s.Route(context.Background(), testTenant(nil, staff...), []byte(caller), time.Now()); got.Reason != ReasonInvalidCaller {
			t.Errorf("Route(%q) = %+v, want invalid_caller", caller, got)
		}
	}
	if src.reads.Load() != 0 {
		t.Fatal("an invalid caller reached the store")
	}
}

func TestRouteStoreErrorIsUnavailable(t *testing.T) {
	s, _ := newService(t, &memSource{err: errors.New("connection refused")})
	if got := s.Route(context.Background(), testTenant(nil, staff...), []byte("380671234567"), time.Now()); got.Reason != ReasonUnavailable || got.Target != "" {
		t.Fatalf("Route = %+v, want no forward, unavailable", got)
	}
}

func TestRouteHangingStoreTimesOutAndStillFillsCache(t *testing.T) {
	src := &memSource{block: make(chan struct{}), rows: []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}}
	s, c := newService(t, src)
	tc := testTenant(func(s *domain.Settings) { s.RouteBudgetMS = 20 }, staff...)
	if got := s.Route(context.Background(), tc, []byte("380671234567"), time.Now()); got.Reason != ReasonTimeout || got.Target != "" {
		t.Fatalf("Route with a hanging store = %+v, want no forward, timeout", got)
	}
	close(src.block) // the store answers after the call gave up
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.Wait()
		if _, ok := c.Get("acme", []byte("671234567"), nil); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the late store answer never reached the cache")
		}
		time.Sleep(time.Millisecond)
	}
	if got := s.Route(context.Background(), tc, []byte("380671234567"), time.Now()); got.Target != "sip_anna" {
		t.Fatalf("next call = %+v, want sip_anna from the cache", got)
	}
}

func TestRouteBudgetAlreadySpent(t *testing.T) {
	src := &memSource{}
	s, _ := newService(t, src)
	tc := testTenant(nil, staff...)
	if got := s.Route(context.Background(), tc, []byte("380671234567"), time.Now().Add(-time.Second)); got.Reason != ReasonTimeout {
		t.Fatalf("Route = %+v, want timeout", got)
	}
	if src.reads.Load() != 0 {
		t.Fatal("store read started with no budget left")
	}
}

func TestConcurrentMissesShareOneStoreRead(t *testing.T) {
	src := &memSource{block: make(chan struct{}), rows: []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}}
	s, _ := newService(t, src)
	tc := testTenant(func(s *domain.Settings) { s.RouteBudgetMS = 10000 }, staff...)
	var wg sync.WaitGroup
	results := make([]Result, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.Route(context.Background(), tc, []byte("380671234567"), time.Now())
		}()
	}
	for src.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the other callers join the flight
	close(src.block)
	wg.Wait()
	for i, r := range results {
		if r.Target != "sip_anna" {
			t.Fatalf("caller %d got %+v", i, r)
		}
	}
	if n := src.reads.Load(); n > 2 {
		t.Fatalf("store reads = %d for 50 concurrent misses of one phone, want 1 (2 if a caller arrived after the fill)", n)
	}
}

func TestReasonStrings(t *testing.T) {
	want := []string{"owner", "default_owner", "no_match", "unmapped_owner", "invalid_caller", "timeout", "unavailable"}
	for i, w := range want {
		if got := Reason(i).String(); got != w {
			t.Errorf("Reason(%d) = %q, want %q", i, got, w)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	tc := testTenant(nil, staff...)
	rows := Rows([]domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "boris", true), entry("380671234567", domain.KindLead, "L1", "anna", true)})
	caller := []byte("380671234567")
	b.ReportAllocs()
	for b.Loop() {
		if Decide(tc, rows, caller).Reason != ReasonOwner {
			b.Fatal("wrong decision")
		}
	}
}

// The hot path must not allocate: a regression here (an escaping buffer, a
// string conversion) costs every live call. Allocation counts, unlike
// timings, are deterministic enough for a unit test.
func TestRouteCacheHitDoesNotAllocate(t *testing.T) {
	src := &memSource{rows: []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}}
	s, c := newService(t, src)
	tc := testTenant(nil, staff...)
	s.Route(context.Background(), tc, []byte("380671234567"), time.Now())
	c.Wait()
	start := time.Now()
	for _, caller := range []string{"380671234567", "+380 (67) 123-45-67", "0671234567", "00380671234567"} {
		b := []byte(caller)
		allocs := testing.AllocsPerRun(1000, func() {
			if r := s.Route(context.Background(), tc, b, start); r.Target != "sip_anna" {
				t.Fatalf("Route(%q) = %+v", caller, r)
			}
		})
		if allocs != 0 {
			t.Errorf("Route(%q) on a cache hit: %v allocs per call, want 0", caller, allocs)
		}
	}
}

// memLive plays a CRM search for the miss path: it indexes into src what
// it finds, as crmsync.Live.Lookup does.
type memLive struct {
	src   *memSource
	found []domain.IndexEntry
	err   error
	block chan struct{}
	calls atomic.Int32
}

func (l *memLive) Lookup(ctx context.Context, tenantID, number string) ([]domain.IndexEntry, error) {
	l.calls.Add(1)
	if l.block != nil {
		select {
		case <-l.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	l.src.mu.Lock()
	l.src.rows = append(l.src.rows, l.found...)
	l.src.mu.Unlock()
	return l.found, nil
}

func liveTenant(budget int) *tenant.Config {
	return testTenant(func(s *domain.Settings) {
		s.LiveLookup = true
		s.RouteBudgetMS = budget
		s.OnMiss = domain.PolicyDefaultOwner
	}, staff...)
}

func TestLiveLookupOnMiss(t *testing.T) {
	src := &memSource{}
	live := &memLive{src: src, found: []domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "anna", true)}}
	s, c := newService(t, src)
	s.WithLive(live, time.Second)
	if got := s.Route(context.Background(), liveTenant(1000), []byte("380671234567"), time.Now()); got.Target != "sip_anna" {
		t.Fatalf("Route with a live hit = %+v", got)
	}
	c.Wait()
	s.Route(context.Background(), liveTenant(1000), []byte("380671234567"), time.Now())
	if live.calls.Load() != 1 {
		t.Fatalf("CRM searches = %d, want 1: the second call reads the index", live.calls.Load())
	}
	// Tenants without live_lookup never reach the CRM.
	if got := s.Route(context.Background(), testTenant(nil, staff...), []byte("380509990000"), time.Now()); got.Reason != ReasonNoMatch || live.calls.Load() != 1 {
		t.Fatalf("live_lookup off: %+v, searches %d", got, live.calls.Load())
	}
}

func TestLiveLookupHangingCRMAnswersWithinBudget(t *testing.T) {
	src := &memSource{}
	live := &memLive{src: src, block: make(chan struct{}), found: []domain.IndexEntry{entry("380671234567", domain.KindContact, "C1", "anna", true)}}
	s, c := newService(t, src)
	s.WithLive(live, 5*time.Second)
	var wg sync.WaitGroup
	results := make([]Result, 20)
	for i := range results {
		wg.Go(func() { results[i] = s.Route(context.Background(), liveTenant(30), []byte("380671234567"), time.Now()) })
	}
	wg.Wait()
	for i, r := range results {
		if r.Reason != ReasonTimeout || r.Target != "" {
			t.Fatalf("call %d with a hanging CRM = %+v, want no forward, timeout", i, r)
		}
	}
	if n := live.calls.Load(); n != 1 {
		t.Fatalf("CRM searches in flight for one phone = %d, want 1", n)
	}
	close(live.block) // the CRM answers late: the answer still lands
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.Wait()
		if got := s.Route(context.Background(), liveTenant(1000), []byte("380671234567"), time.Now()); got.Target == "sip_anna" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the late CRM answer never reached routing")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveLookupFailureFallsBackToOnMissAndIsCached(t *testing.T) {
	src := &memSource{}
	live := &memLive{src: src, err: errors.New("CRM down")}
	s, c := newService(t, src)
	s.WithLive(live, time.Second)
	for i := 0; i < 3; i++ {
		if got := s.Route(context.Background(), liveTenant(1000), []byte("380671234567"), time.Now()); got.Target != "sip_boss" || got.Reason != ReasonDefaultOwner {
			t.Fatalf("failed CRM search = %+v, want the on_miss answer (default owner)", got)
		}
		c.Wait()
	}
	if live.calls.Load() != 1 {
		t.Fatalf("searches %d: a failing CRM must not be asked on every call", live.calls.Load())
	}
}
