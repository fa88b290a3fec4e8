package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newCache(t testing.TB, clk *clock) *Cache {
	t.Helper()
	cfg := Config{MaxItems: 1 << 16, NegativeTTL: time.Minute}
	if clk != nil {
		cfg.Now = clk.now
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNewRejectsZeroSize(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with MaxItems 0: want error")
	}
}

func TestFillThenGet(t *testing.T) {
	c := newCache(t, nil)
	if _, ok := c.Get("t1", []byte("671234567"), nil); ok {
		t.Fatal("empty cache: want miss")
	}
	rows := []Row{{Phone: "380671234567", Kind: domain.KindLead, EntityID: "L1", OwnerID: "u1", Open: true}}
	if !c.Fill(c.Epoch(), "t1", "671234567", rows) {
		t.Fatal("Fill refused")
	}
	c.Wait()
	got, ok := c.Get("t1", []byte("671234567"), nil)
	if !ok || len(got) != 1 || got[0] != rows[0] {
		t.Fatalf("Get after Fill = %+v, %v", got, ok)
	}
	if _, ok := c.Get("t2", []byte("671234567"), nil); ok {
		t.Fatal("other tenant, same suffix: want miss")
	}
}

func TestNegativeEntryExpiresOnInjectedClock(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	c := newCache(t, clk)
	c.Fill(c.Epoch(), "t1", "000000001", nil)
	c.Wait()
	got, ok := c.Get("t1", []byte("000000001"), nil)
	if !ok || len(got) != 0 {
		t.Fatalf("negative entry: got %+v, %v", got, ok)
	}
	clk.advance(59 * time.Second)
	if _, ok := c.Get("t1", []byte("000000001"), nil); !ok {
		t.Fatal("negative entry before its TTL: want hit")
	}
	clk.advance(time.Second)
	if _, ok := c.Get("t1", []byte("000000001"), nil); ok {
		t.Fatal("negative entry at its TTL: want miss")
	}
}

func TestInvalidateIsImmediate(t *testing.T) {
	c := newCache(t, nil)
	c.Fill(c.Epoch(), "t1", "671234567", []Row{{Phone: "380671234567", Kind: domain.KindContact, OwnerID: "u1", Open: true}})
	c.Fill(c.Epoch(), "t1", "111111111", nil)
	c.Wait()
	c.Invalidate("t1", "671234567", "111111111")
	if _, ok := c.Get("t1", []byte("671234567"), nil); ok {
		t.Fatal("positive entry after Invalidate: want miss")
	}
	if _, ok := c.Get("t1", []byte("111111111"), nil); ok {
		t.Fatal("negative entry after Invalidate: want miss")
	}
}

// A miss that read the store before a write committed must not cache what it
// read once the write's invalidation has run.
func TestFillAfterInvalidationIsDiscarded(t *testing.T) {
	c := newCache(t, nil)
	epoch := c.Epoch() // the miss path reads the epoch, then the store
	c.Invalidate("t1", "671234567")
	if c.Fill(epoch, "t1", "671234567", []Row{{Phone: "380671234567", Kind: domain.KindLead, OwnerID: "old", Open: true}}) {
		t.Fatal("Fill with a stale epoch was accepted")
	}
	c.Wait()
	if _, ok := c.Get("t1", []byte("671234567"), nil); ok {
		t.Fatal("stale fill is visible")
	}
}

func TestCountersAndHitRatio(t *testing.T) {
	c := newCache(t, nil)
	before := ReadStats()
	c.Fill(c.Epoch(), "t1", "222222222", []Row{{Phone: "380222222222", Kind: domain.KindLead, OwnerID: "u", Open: true}})
	c.Fill(c.Epoch(), "t1", "333333333", nil)
	c.Wait()
	c.Get("t1", []byte("222222222"), nil)
	c.Get("t1", []byte("333333333"), nil)
	c.Get("t1", []byte("444444444"), nil)
	after := ReadStats()
	if d := after.Hits - before.Hits; d != 1 {
		t.Errorf("hits delta = %d, want 1", d)
	}
	if d := after.NegativeHits - before.NegativeHits; d != 1 {
		t.Errorf("negative hits delta = %d, want 1", d)
	}
	if d := after.Misses - before.Misses; d != 1 {
		t.Errorf("misses delta = %d, want 1", d)
	}
	if r := (Stats{Hits: 3, NegativeHits: 1, Misses: 4}).HitRatio(); r != 0.5 {
		t.Errorf("HitRatio = %v, want 0.5", r)
	}
	if r := (Stats{}).HitRatio(); r != 0 {
		t.Errorf("HitRatio without lookups = %v, want 0", r)
	}
}

func indexRows(tenants, perTenant int) []domain.IndexEntry {
	var out []domain.IndexEntry
	for ti := 0; ti < tenants; ti++ {
		for i := 0; i < perTenant; i++ {
			suffix := fmt.Sprintf("%09d", i)
			// two entities share every phone, the lead being newer
			for _, k := range []domain.EntityKind{domain.KindLead, domain.KindContact} {
				out = append(out, domain.IndexEntry{TenantID: fmt.Sprintf("t%d", ti), Phone: "380" + suffix, Suffix: suffix,
					Kind: k, EntityID: string(k) + suffix, OwnerID: "u" + suffix, Open: true})
			}
		}
	}
	return out
}

func scanOf(rows []domain.IndexEntry) Scanner {
	return func(ctx context.Context, fn func(domain.IndexEntry) error) error {
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestWarmLoadsEveryKeyAndVerifies(t *testing.T) {
	c := newCache(t, nil)
	rows := indexRows(3, 5000)
	if c.Ready() {
		t.Fatal("Ready before Warm")
	}
	st, err := c.Warm(context.Background(), scanOf(rows))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != len(rows) || st.Keys != 15000 || st.Present != 15000 {
		t.Fatalf("warm stats = %+v, want 30000 rows, 15000 keys all present", st)
	}
	if !c.Ready() {
		t.Fatal("not Ready after Warm")
	}
	got, ok := c.Get("t2", []byte("000004999"), nil)
	want := []Row{
		{Phone: "380000004999", Kind: domain.KindLead, EntityID: "lead000004999", OwnerID: "u000004999", Open: true},
		{Phone: "380000004999", Kind: domain.KindContact, EntityID: "contact000004999", OwnerID: "u000004999", Open: true},
	}
	if !ok || !slices.Equal(got, want) {
		t.Fatalf("warm entry = %+v, %v; want %+v", got, ok, want)
	}
}

// A key whose fields do not fit the flat layout (here a phone of 300
// digits) is kept by ristretto and verified like the others.
func TestWarmKeepsOversizedKeysInRistretto(t *testing.T) {
	c := newCache(t, nil)
	rows := indexRows(1, 100)
	long := strings.Repeat("7", 300)
	rows = append(rows, domain.IndexEntry{TenantID: "t0", Phone: long, Suffix: "777777777", Kind: domain.KindLead,
		EntityID: "big", OwnerID: "u9", Open: true})
	st, err := c.Warm(context.Background(), scanOf(rows))
	if err != nil || st.Keys != 101 || st.Present != 101 {
		t.Fatalf("Warm = %+v, %v; want 101 keys present", st, err)
	}
	got, ok := c.Get("t0", []byte("777777777"), nil)
	if !ok || len(got) != 1 || got[0].Phone != long || got[0].EntityID != "big" {
		t.Fatalf("oversized key = %+v, %v", got, ok)
	}
}

// A key written while the scan runs may have been read before its change:
// the warm-up leaves it to the store instead of failing.
func TestWarmLeavesOutKeysWrittenDuringTheScan(t *testing.T) {
	c := newCache(t, nil)
	rows := indexRows(1, 10)
	scan := func(ctx context.Context, fn func(domain.IndexEntry) error) error {
		for i, r := range rows {
			if i == 5 {
				c.Invalidate("t0", "000000001") // an import commits mid-scan
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	st, err := c.Warm(context.Background(), scan)
	if err != nil || st.Killed != 1 || st.Keys != 9 || st.Present != 9 || !c.Ready() {
		t.Fatalf("Warm with a concurrent write: %+v, %v; want the written key left out, 9 keys present", st, err)
	}
	if _, ok := c.Get("t0", []byte("000000001"), nil); ok {
		t.Fatal("a key written during the scan was served from the scan")
	}
	if _, ok := c.Get("t0", []byte("000000002"), nil); !ok {
		t.Fatal("an untouched key is missing")
	}
}

// A flush during the scan (a tenant's index replaced) distrusts all of it.
func TestWarmDetectsAFlush(t *testing.T) {
	c := newCache(t, nil)
	rows := indexRows(1, 10)
	scan := func(ctx context.Context, fn func(domain.IndexEntry) error) error {
		for i, r := range rows {
			if i == 5 {
				c.InvalidateAll()
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := c.Warm(context.Background(), scan); !errors.Is(err, ErrIndexChanged) {
		t.Fatalf("Warm with a flush: err = %v, want ErrIndexChanged", err)
	}
	if _, ok := c.Get("t0", []byte("000000002"), nil); ok {
		t.Fatal("an untrusted warm-up left entries behind")
	}
	if _, err := c.Warm(context.Background(), scanOf(rows)); err != nil {
		t.Fatalf("second Warm: %v", err)
	}
}

// Warming a ready cache again (after a lost change feed) serves the old
// index until the new one is installed, then only the new one: gone keys
// and stale negative entries are dropped, and a key written during the
// scan is left to the store.
func TestRewarmReplacesAServingIndex(t *testing.T) {
	c := newCache(t, nil)
	old := indexRows(1, 10)
	if _, err := c.Warm(context.Background(), scanOf(old)); err != nil {
		t.Fatal(err)
	}
	// A phone the cache believes unknown, which the store gained while
	// its change was missed.
	if !c.Fill(c.Epoch(), "t0", "777777777", nil) {
		t.Fatal("negative fill refused")
	}
	c.Wait()
	if _, ok := c.Get("t0", []byte("777777777"), nil); !ok {
		t.Fatal("negative entry not cached")
	}
	fresh := append(indexRows(1, 5), domain.IndexEntry{TenantID: "t0", Phone: "380777777777", Suffix: "777777777",
		Kind: domain.KindLead, EntityID: "new", OwnerID: "u7", Open: true})
	servedDuring := 0
	scan := func(ctx context.Context, fn func(domain.IndexEntry) error) error {
		for i, r := range fresh {
			if i == 2 {
				c.Invalidate("t0", "000000003")
				// The old index still answers while the new one is built.
				for k := 5; k < 10; k++ {
					if _, ok := c.Get("t0", fmt.Appendf(nil, "%09d", k), nil); ok {
						servedDuring++
					}
				}
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	st, err := c.Warm(context.Background(), scan)
	if err != nil || !st.Replaced || st.Killed != 1 || st.Keys != 5 {
		t.Fatalf("rewarm: %+v, %v; want 5 keys, the one written left out", st, err)
	}
	if servedDuring != 5 {
		t.Fatalf("%d of 5 old keys answered during the rewarm, want all", servedDuring)
	}
	for k, want := range map[string]bool{"000000001": true, "000000003": false, "000000007": false} {
		if _, ok := c.Get("t0", []byte(k), nil); ok != want {
			t.Errorf("key %s cached = %v after the rewarm, want %v", k, ok, want)
		}
	}
	got, ok := c.Get("t0", []byte("777777777"), nil)
	if !ok || len(got) != 1 || got[0].EntityID != "new" {
		t.Fatalf("phone gained while changes were missed: %+v, %v; want the new lead, not the stale negative entry", got, ok)
	}
}

func TestWarmPropagatesScanError(t *testing.T) {
	c := newCache(t, nil)
	boom := errors.New("disk on fire")
	_, err := c.Warm(context.Background(), func(context.Context, func(domain.IndexEntry) error) error { return boom })
	if !errors.Is(err, boom) || c.Ready() {
		t.Fatalf("err = %v, ready = %v", err, c.Ready())
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := newCache(b, nil)
	if _, err := c.Warm(context.Background(), scanOf(indexRows(1, 10000))); err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("%09d", i*9))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			var buf [4]Row
			if _, ok := c.Get("t0", keys[i&1023], buf[:0]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// Live lookups fill the index while a warm-up verifies what it installed:
// the verification reads only the index it built, so neither the race
// detector nor the key count sees the fills.
func TestWarmVerifiesWhileLookupsFill(t *testing.T) {
	c := newCache(t, nil)
	rows := indexRows(2, 20000)
	done := make(chan struct{})
	filled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				filled <- n
				return
			default:
			}
			suffix := fmt.Sprintf("9%08d", n%5000)
			c.Fill(c.Epoch(), "t9", suffix, []Row{{Phone: "38" + suffix, Kind: domain.KindLead, EntityID: "x", OwnerID: "u", Open: true}})
			n++
		}
	}()
	st, err := c.Warm(context.Background(), scanOf(rows))
	close(done)
	n := <-filled
	if err != nil || st.Keys != 40000 || st.Present != 40000 {
		t.Fatalf("Warm = %+v, %v; want 40000 keys present (%d fills alongside)", st, err, n)
	}
}
