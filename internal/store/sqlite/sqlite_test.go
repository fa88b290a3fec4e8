package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// load fills a fresh database with n rows over one tenant, 1000 per
// batch, and returns the suffixes used.
func load(b *testing.B, db *sqlite.DB, n int) []string {
	b.Helper()
	ctx := context.Background()
	if err := db.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings()}); err != nil {
		b.Fatal(err)
	}
	suffixes := make([]string, 0, n)
	batch := make([]domain.IndexEntry, 0, 1000)
	for i := range n {
		phone := fmt.Sprintf("380%09d", i*7919%1_000_000_000)
		batch = append(batch, domain.IndexEntry{
			TenantID: "acme", Phone: phone, Suffix: phone[3:], Kind: domain.KindContact,
			EntityID: fmt.Sprint(i), Open: true, OwnerID: fmt.Sprint(i % 50), Name: "Contact name",
		})
		suffixes = append(suffixes, phone[3:])
		if len(batch) == cap(batch) || i == n-1 {
			if err := db.UpsertIndex(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return suffixes
}

func BenchmarkLookupSuffix(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	suffixes := load(b, db, 100_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rows, err := db.LookupSuffix(ctx, "acme", suffixes[i*31%len(suffixes)])
		if err != nil || len(rows) != 1 {
			b.Fatalf("LookupSuffix = %d rows, %v", len(rows), err)
		}
	}
}

func BenchmarkUpsertIndex(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	if err := db.CreateTenant(ctx, domain.Tenant{ID: "acme"}); err != nil {
		b.Fatal(err)
	}
	batch := make([]domain.IndexEntry, 1000)
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		b.StopTimer()
		for i := range batch {
			phone := fmt.Sprintf("380%09d", (n*len(batch)+i)*7919%1_000_000_000)
			batch[i] = domain.IndexEntry{
				TenantID: "acme", Phone: phone, Suffix: phone[3:], Kind: domain.KindLead,
				EntityID: fmt.Sprint(n*len(batch) + i), Open: true, OwnerID: "7", Name: "Lead",
			}
		}
		b.StartTimer()
		if err := db.UpsertIndex(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}

// BenchmarkScanIndex measures streaming: one op is one row delivered to
// fn, scans restarting over 100k rows as often as b.N needs.
func BenchmarkScanIndex(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	load(b, db, 100_000)
	ctx := context.Background()
	errDone := errors.New("done")
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; {
		err := db.ScanIndex(ctx, func(domain.IndexEntry) error {
			if left--; left == 0 {
				return errDone
			}
			return nil
		})
		if err != nil && !errors.Is(err, errDone) {
			b.Fatal(err)
		}
	}
}
