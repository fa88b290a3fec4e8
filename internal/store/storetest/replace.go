package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- phone index: ReplaceEntities ---

func (e *env) replace(t *testing.T, tenant string, entities []store.EntityRef, rows []domain.IndexEntry) []string {
	t.Helper()
	got, err := e.s.ReplaceEntities(e.ctx, tenant, entities, rows)
	if err != nil {
		t.Fatalf("ReplaceEntities(%q, %d entities, %d rows): %v", tenant, len(entities), len(rows), err)
	}
	return got
}

func (e *env) upsert(t *testing.T, rows ...domain.IndexEntry) {
	t.Helper()
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
}

func ref(kind domain.EntityKind, id string) store.EntityRef {
	return store.EntityRef{Kind: kind, ID: id}
}

func wantSuffixes(t *testing.T, what string, got, want []string) {
	t.Helper()
	if want == nil && got != nil {
		t.Fatalf("%s returned suffixes %q, want nil", what, got)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s returned suffixes %q, want %q", what, got, want)
	}
}

// indexFixture stores rows around contact C1 of acme: the same id as a
// lead, another contact, and the same contact id in another tenant.
func indexFixture(t *testing.T, e *env) []domain.IndexEntry {
	e.tenant(t, "acme")
	e.tenant(t, "beta")
	rows := []domain.IndexEntry{
		entry("acme", domain.KindContact, "C1", "380501234567"),
		entry("acme", domain.KindContact, "C1", "370671112233"),
		entry("acme", domain.KindContact, "C1", "0501234567"), // same suffix as the first
		entry("acme", domain.KindLead, "C1", "380501234567"),  // same id, other kind
		entry("acme", domain.KindContact, "C2", "380931234567"),
		entry("beta", domain.KindContact, "C1", "380501234567"), // same entity, other tenant
	}
	e.upsert(t, rows...)
	return stamped(start, rows...)
}

func testReplaceEntities(t *testing.T, e *env) {
	old := indexFixture(t, e)
	e.clock.Advance(time.Minute)
	now := stamp(e.clock.Now())

	kept := entry("acme", domain.KindContact, "C1", "380501234567")
	kept.Name, kept.Open = "Renamed", false
	added := entry("acme", domain.KindContact, "C1", "380991112233")
	explicit := entry("acme", domain.KindContact, "C1", "380441112233")
	explicit.UpdatedAt = start.Add(-time.Hour + 999*time.Nanosecond) // kept, truncated
	got := e.replace(t, "acme", []store.EntityRef{ref(domain.KindContact, "C1")},
		[]domain.IndexEntry{kept, added, explicit})
	// Every suffix the old rows had, each once, in order, including the
	// one the new rows still use.
	wantSuffixes(t, "ReplaceEntities", got, []string{"501234567", "671112233"})

	fresh := stamped(now, kept, added, explicit)
	want := scanOrder(append(slices.Clone(old[3:]), fresh...))
	same(t, "rows after ReplaceEntities", fmtIndex, e.scan(t), want)
	same(t, "LookupSuffix of a kept suffix", fmtIndex, e.lookup(t, "acme", "501234567"),
		[]domain.IndexEntry{fresh[0], old[3]})
	same(t, "LookupSuffix of a new suffix", fmtIndex, e.lookup(t, "acme", "991112233"), fresh[1:2])
	if got := e.lookup(t, "acme", "671112233"); len(got) != 0 {
		t.Fatalf("LookupSuffix of a removed suffix = %v, want none", got)
	}
	if n := e.count(t, "acme"); n != 5 {
		t.Fatalf("CountIndex = %d, want 5", n)
	}

	// Several entities at once, one of them new, one emptied, one named
	// twice.
	e.clock.Advance(time.Minute)
	deal := entry("acme", domain.KindDeal, "D1", "380931234567")
	got = e.replace(t, "acme", []store.EntityRef{
		ref(domain.KindContact, "C2"), ref(domain.KindDeal, "D1"), ref(domain.KindLead, "C1"), ref(domain.KindDeal, "D1"),
	}, []domain.IndexEntry{deal})
	wantSuffixes(t, "ReplaceEntities of several", got, []string{"501234567", "931234567"})
	want = scanOrder([]domain.IndexEntry{fresh[0], fresh[1], fresh[2], stamped(e.clock.Now(), deal)[0], old[5]})
	same(t, "rows after replacing several", fmtIndex, e.scan(t), want)
}

func testReplaceEntitiesDelete(t *testing.T, e *env) {
	old := indexFixture(t, e)
	got := e.replace(t, "acme", []store.EntityRef{ref(domain.KindContact, "C1")}, nil)
	wantSuffixes(t, "ReplaceEntities deleting", got, []string{"501234567", "671112233"})
	same(t, "rows after ReplaceEntities deleting", fmtIndex, e.scan(t), scanOrder(slices.Clone(old[3:])))

	// Nothing left to remove: no suffixes, nil.
	got = e.replace(t, "acme", []store.EntityRef{ref(domain.KindContact, "C1"), ref(domain.KindDeal, "nope")}, []domain.IndexEntry{})
	wantSuffixes(t, "ReplaceEntities of entities without rows", got, nil)
	got = e.replace(t, "acme", nil, nil)
	wantSuffixes(t, "ReplaceEntities of no entities", got, nil)
	same(t, "rows after empty replaces", fmtIndex, e.scan(t), scanOrder(slices.Clone(old[3:])))
}

func testReplaceEntitiesInvalid(t *testing.T, e *env) {
	old := scanOrder(indexFixture(t, e))
	c1 := []store.EntityRef{ref(domain.KindContact, "C1")}
	for _, tc := range []struct {
		name, mention string
		stray         domain.IndexEntry
	}{
		{"an entity not named", "X9", entry("acme", domain.KindContact, "X9", "380507777777")},
		{"the same id of another kind", "380508888888", entry("acme", domain.KindLead, "C1", "380508888888")},
		{"another tenant", "beta", entry("beta", domain.KindContact, "C1", "380509999999")},
	} {
		rows := []domain.IndexEntry{entry("acme", domain.KindContact, "C1", "380501111111"), tc.stray}
		got, err := e.s.ReplaceEntities(e.ctx, "acme", c1, rows)
		wantCode(t, err, domain.EINVALID, "ReplaceEntities with a row of "+tc.name)
		if got != nil {
			t.Errorf("failed ReplaceEntities returned suffixes %q", got)
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("error %q does not name the row (%q)", err, tc.mention)
		}
		same(t, "rows after a rejected ReplaceEntities", fmtIndex, e.scan(t), old)
	}
}

func testReplaceEntitiesUnknownTenant(t *testing.T, e *env) {
	old := scanOrder(indexFixture(t, e))
	ghost := []store.EntityRef{ref(domain.KindContact, "G1")}
	for _, rows := range [][]domain.IndexEntry{
		{entry("ghost", domain.KindContact, "G1", "380501234567")},
		nil, // nothing to insert: still not found
	} {
		got, err := e.s.ReplaceEntities(e.ctx, "ghost", ghost, rows)
		wantCode(t, err, domain.ENOTFOUND, fmt.Sprintf("ReplaceEntities of an unknown tenant with %d rows", len(rows)))
		if got != nil {
			t.Errorf("failed ReplaceEntities returned suffixes %q", got)
		}
		if !strings.Contains(err.Error(), "ghost") {
			t.Errorf("error %q does not name the unknown tenant", err)
		}
	}
	same(t, "rows after ReplaceEntities of an unknown tenant", fmtIndex, e.scan(t), old)
}

func testReplaceEntitiesDuplicate(t *testing.T, e *env) {
	indexFixture(t, e)
	e.clock.Advance(time.Minute)
	first := entry("acme", domain.KindContact, "C1", "380501234567")
	other := entry("acme", domain.KindContact, "C1", "380671234567")
	last := first
	last.OwnerID, last.Name = "the-later-one", "Later"
	got := e.replace(t, "acme", []store.EntityRef{ref(domain.KindContact, "C1")},
		[]domain.IndexEntry{first, other, last})
	wantSuffixes(t, "ReplaceEntities", got, []string{"501234567", "671112233"})
	now := e.clock.Now()
	var c1 []domain.IndexEntry
	for _, r := range e.scan(t) {
		if r.TenantID == "acme" && r.Kind == domain.KindContact && r.EntityID == "C1" {
			c1 = append(c1, r)
		}
	}
	same(t, "rows of the replaced entity", fmtIndex, c1, scanOrder(stamped(now, last, other)))
}

func testReplaceEntitiesIdempotent(t *testing.T, e *env) {
	indexFixture(t, e)
	e.clock.Advance(time.Minute)
	dated := entry("acme", domain.KindContact, "C1", "380441112233")
	dated.UpdatedAt = start.Add(time.Hour)
	entities := []store.EntityRef{ref(domain.KindContact, "C1"), ref(domain.KindDeal, "D1"), ref(domain.KindContact, "C2")}
	rows := []domain.IndexEntry{
		entry("acme", domain.KindContact, "C1", "380501234567"),
		dated,
		entry("acme", domain.KindDeal, "D1", "380937654321"),
	}
	first := e.replace(t, "acme", entities, rows)
	wantSuffixes(t, "first ReplaceEntities", first, []string{"501234567", "671112233", "931234567"})
	after := e.scan(t)
	second := e.replace(t, "acme", entities, rows)
	// The second removes what the first inserted, and inserts it again.
	wantSuffixes(t, "second ReplaceEntities", second, []string{"441112233", "501234567", "937654321"})
	same(t, "rows after the same ReplaceEntities twice", fmtIndex, e.scan(t), after)
}

// testReplaceEntitiesPage replaces a sync page's worth of entities: 250
// entities whose 3 phones become 4 (1000 rows), beside entities left
// alone.
func testReplaceEntitiesPage(t *testing.T, e *env) {
	const (
		entities = 250
		oldPer   = 3
		newPer   = 4
	)
	e.tenant(t, "acme")
	phone := func(gen, i, p int) string { return fmt.Sprintf("38%d%06d%d", 5+gen, i, p) }
	var (
		old, untouched []domain.IndexEntry
		refs           []store.EntityRef
		wantRemoved    []string
	)
	for i := range entities {
		id := fmt.Sprintf("L%03d", i)
		refs = append(refs, ref(domain.KindLead, id))
		for p := range oldPer {
			r := entry("acme", domain.KindLead, id, phone(0, i, p))
			old = append(old, r)
			wantRemoved = append(wantRemoved, r.Suffix)
		}
		untouched = append(untouched, entry("acme", domain.KindContact, id, phone(2, i, 0)))
	}
	e.upsert(t, append(slices.Clone(old), untouched...)...)
	e.clock.Advance(time.Minute)
	var fresh []domain.IndexEntry
	for i := range entities {
		for p := range newPer {
			fresh = append(fresh, entry("acme", domain.KindLead, fmt.Sprintf("L%03d", i), phone(1, i, p)))
		}
	}
	begin := time.Now()
	got := e.replace(t, "acme", refs, fresh)
	t.Logf("ReplaceEntities of %d entities, %d rows: %v", entities, len(fresh), time.Since(begin))
	slices.Sort(wantRemoved)
	wantSuffixes(t, "ReplaceEntities", got, wantRemoved)
	if n, want := e.count(t, "acme"), len(fresh)+len(untouched); n != want {
		t.Fatalf("CountIndex = %d, want %d", n, want)
	}
	want := scanOrder(append(stamped(e.clock.Now(), fresh...), stamped(start, untouched...)...))
	same(t, "rows after ReplaceEntities", fmtIndex, e.scan(t), want)
	if got := e.lookup(t, "acme", old[7].Suffix); len(got) != 0 {
		t.Fatalf("LookupSuffix of a removed suffix = %v, want none", got)
	}
	same(t, "LookupSuffix of a new suffix", fmtIndex, e.lookup(t, "acme", fresh[9].Suffix), stamped(e.clock.Now(), fresh[9]))
}

// testReplaceEntitiesAtomic has a writer swap an entity's two phones,
// which share one suffix, for two others, while readers look the suffix
// up: they must always see two rows of one generation.
func testReplaceEntitiesAtomic(t *testing.T, e *env) {
	const rounds = 30
	e.tenant(t, "acme")
	l1 := []store.EntityRef{ref(domain.KindLead, "L1")}
	gen := func(i int) []domain.IndexEntry {
		a, b := "380501234567", "0501234567"
		if i%2 == 1 {
			a, b = "+380501234567", "501234567"
		}
		rows := []domain.IndexEntry{entry("acme", domain.KindLead, "L1", a), entry("acme", domain.KindLead, "L1", b)}
		for j := range rows {
			rows[j].Suffix, rows[j].Name = "501234567", fmt.Sprintf("gen %d", i)
		}
		return rows
	}
	e.replace(t, "acme", l1, gen(0))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := e.s.LookupSuffix(ctx, "acme", "501234567")
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("LookupSuffix: %w", err))
					}
					return
				}
				if len(got) != 2 || got[0].Name != got[1].Name {
					fail(fmt.Errorf("LookupSuffix during ReplaceEntities saw %d rows: %v", len(got), render(fmtIndex, got)))
					return
				}
			}
		})
	}
	for i := 1; i <= rounds; i++ {
		if _, err := e.s.ReplaceEntities(e.ctx, "acme", l1, gen(i)); err != nil {
			fail(fmt.Errorf("ReplaceEntities: %w", err))
			break
		}
	}
	cancel()
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	same(t, "rows after the swaps", fmtIndex, e.lookup(t, "acme", "501234567"), scanOrder(stamped(start, gen(rounds)...)))
}
