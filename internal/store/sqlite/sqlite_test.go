package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

func open(t testing.TB, path string, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		// A parent directory that does not exist yet: Open creates it.
		return open(t, filepath.Join(t.TempDir(), "data", "router.db"), sqlite.WithNow(now))
	})
}

func TestMigrateOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "router.db")
	// Two processes starting at once are two independent Opens.
	dbs := make([]*sqlite.DB, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = sqlite.Open(t.Context(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	v1, err := dbs[0].Version(t.Context())
	if err != nil || v1 < 1 {
		t.Fatalf("Version = %d, %v; want >= 1", v1, err)
	}
	if err := dbs[0].CreateTenant(t.Context(), domain.Tenant{ID: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	// Reopening applies nothing twice and keeps the data.
	db := open(t, path)
	if v, err := db.Version(t.Context()); err != nil || v != v1 {
		t.Fatalf("Version after reopen = %d, %v; want %d", v, err, v1)
	}
	if _, err := db.Tenant(t.Context(), "acme"); err != nil {
		t.Fatalf("Tenant after reopen: %v", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "x.db?mode=ro"} {
		if _, err := sqlite.Open(t.Context(), p); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Open(%q) = %v, want an invalid error", p, err)
		}
	}
}

func BenchmarkLookupSuffix(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	storetest.BenchLookupSuffix(b, db, storetest.Load(b, db, 100_000, 1000))
}

func BenchmarkUpsertIndex(b *testing.B) {
	storetest.BenchUpsertIndex(b, open(b, filepath.Join(b.TempDir(), "bench.db")))
}

func BenchmarkReplaceEntities(b *testing.B) {
	storetest.BenchReplaceEntities(b, open(b, filepath.Join(b.TempDir(), "bench.db")), 100_000)
}

// BenchmarkWarmFromSQLite is the route cache's warm-up from 100,000 SQLite
// index rows: the store's scan and the index build run side by side
// (cache.Warm), so an op takes about the longer of the two.
func BenchmarkWarmFromSQLite(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	storetest.Load(b, db, 100_000, 1000)
	b.ReportAllocs()
	for b.Loop() {
		c, err := cache.New(cache.Config{MaxItems: 1 << 18})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Warm(context.Background(), db.ScanIndex); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkScanIndex(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	storetest.Load(b, db, 100_000, 1000)
	storetest.BenchScanIndex(b, db)
}
