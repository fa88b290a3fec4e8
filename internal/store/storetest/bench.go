package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// Load fills st with n index rows of tenant "acme", batchSize per
// UpsertIndex, and returns their suffixes.
func Load(b testing.TB, st store.Store, n, batchSize int) []string {
	b.Helper()
	ctx := context.Background()
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings()}); err != nil {
		b.Fatal(err)
	}
	suffixes := make([]string, 0, n)
	batch := make([]domain.IndexEntry, 0, batchSize)
	for i := range n {
		phone := fmt.Sprintf("380%09d", i*7919%1_000_000_000)
		batch = append(batch, domain.IndexEntry{
			TenantID: "acme", Phone: phone, Suffix: phone[3:], Kind: domain.KindContact,
			EntityID: fmt.Sprint(i), Open: true, OwnerID: fmt.Sprint(i % 50), Name: "Contact name",
		})
		suffixes = append(suffixes, phone[3:])
		if len(batch) == cap(batch) || i == n-1 {
			if err := st.UpsertIndex(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return suffixes
}

// BenchLookupSuffix measures the route miss path's point read over the
// suffixes Load returned.
func BenchLookupSuffix(b *testing.B, st store.Store, suffixes []string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rows, err := st.LookupSuffix(ctx, "acme", suffixes[i*31%len(suffixes)])
		if err != nil || len(rows) != 1 {
			b.Fatalf("LookupSuffix = %d rows, %v", len(rows), err)
		}
	}
}

// BenchUpsertIndex measures imports: one op is a batch of 1000 new rows,
// and ns/row is reported beside it.
func BenchUpsertIndex(b *testing.B, st store.Store) {
	ctx := context.Background()
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme"}); err != nil {
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
		if err := st.UpsertIndex(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}

// BenchScanIndex measures the warm-up stream: one op is one row delivered
// to fn, scans restarting as often as b.N needs.
func BenchScanIndex(b *testing.B, st store.Store) {
	ctx := context.Background()
	errDone := errors.New("done")
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; {
		err := st.ScanIndex(ctx, func(domain.IndexEntry) error {
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

// BenchReplaceEntities measures a sync page: one op replaces the 4 phones
// of each of 250 entities (1000 rows) with 4 others, in a tenant of
// otherRows more rows; ns/row is reported beside it.
func BenchReplaceEntities(b *testing.B, st store.Store, otherRows int) {
	const (
		entities = 250
		per      = 4
	)
	ctx := context.Background()
	Load(b, st, otherRows, 10_000)
	refs := make([]store.EntityRef, entities)
	for i := range refs {
		refs[i] = store.EntityRef{Kind: domain.KindLead, ID: fmt.Sprintf("page-%d", i)}
	}
	page := func(gen int) []domain.IndexEntry {
		rows := make([]domain.IndexEntry, 0, entities*per)
		for i, r := range refs {
			for p := range per {
				phone := fmt.Sprintf("38%d%07d%d", gen%2, i, p)
				rows = append(rows, domain.IndexEntry{
					TenantID: "acme", Phone: phone, Suffix: phone[3:], Kind: r.Kind,
					EntityID: r.ID, Open: true, OwnerID: "7", Name: "Lead",
				})
			}
		}
		return rows
	}
	pages := [2][]domain.IndexEntry{page(0), page(1)}
	if _, err := st.ReplaceEntities(ctx, "acme", refs, pages[1]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		removed, err := st.ReplaceEntities(ctx, "acme", refs, pages[n%2])
		if err != nil || len(removed) != entities*per {
			b.Fatalf("ReplaceEntities = %d suffixes, %v", len(removed), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entities*per), "ns/row")
}
