package cache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// The point of the flat index: a warm index of many keys is a handful of
// heap objects, not several per key, so the GC has nothing to mark in it.
func TestWarmIndexIsAFewHeapObjects(t *testing.T) {
	const keys = 50_000
	rows := indexRows(1, keys)
	for i := range rows {
		rows[i].OwnerID = fmt.Sprintf("u%d", i%50) // a tenant has a few dozen managers
	}
	c := newCache(t, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := c.Warm(context.Background(), scanOf(rows)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	objects := int64(after.HeapObjects) - int64(before.HeapObjects)
	// The slab, the table, the interned strings and the writer's maps are
	// what remains: a few hundred objects, whatever the number of keys.
	if objects > 2_000 {
		t.Fatalf("warm index of %d keys holds %d more heap objects; want at most 2000", keys, objects)
	}
	st := c.flat.stats()
	if st.Keys != keys {
		t.Fatalf("flat keys = %d, want %d", st.Keys, keys)
	}
	// About 60 bytes a key of slab and table, two rows per key here.
	if per := st.Bytes / keys; per > 160 {
		t.Fatalf("flat index uses %d bytes a key (%+v); want at most 160", per, st)
	}
	runtime.KeepAlive(rows)
}

func TestGetHitDoesNotAllocate(t *testing.T) {
	c := newCache(t, nil)
	if _, err := c.Warm(context.Background(), scanOf(indexRows(2, 1000))); err != nil {
		t.Fatal(err)
	}
	key := []byte("000000777")
	var buf [4]Row
	allocs := testing.AllocsPerRun(1000, func() {
		rows, ok := c.Get("t1", key, buf[:0])
		if !ok || len(rows) != 2 {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Get hit allocates %v times", allocs)
	}
}

// Changes at run time append records and kill slots; the index compacts
// itself, so a key rewritten many times does not grow it without bound, and
// every other key survives the compactions.
func TestRewritesCompactAndKeepOtherKeys(t *testing.T) {
	c := newCache(t, nil)
	if _, err := c.Warm(context.Background(), scanOf(indexRows(1, 2000))); err != nil {
		t.Fatal(err)
	}
	start := c.flat.stats()
	for i := range 20_000 {
		c.Invalidate("t0", "000000042")
		owner := fmt.Sprintf("owner-%d", i%7)
		row := Row{Phone: "380000000042", Kind: domain.KindDeal, EntityID: fmt.Sprintf("D%d", i), OwnerID: owner, Open: true}
		if !c.Fill(c.Epoch(), "t0", "000000042", []Row{row}) {
			t.Fatal("Fill refused")
		}
	}
	end := c.flat.stats()
	if end.SlabBytes > 2*start.SlabBytes+(2<<20) {
		t.Fatalf("slab grew from %d to %d bytes over rewrites of one key; want compaction", start.SlabBytes, end.SlabBytes)
	}
	got, ok := c.Get("t0", []byte("000000042"), nil)
	if !ok || len(got) != 1 || got[0].EntityID != "D19999" || got[0].OwnerID != "owner-0" || got[0].Kind != domain.KindDeal {
		t.Fatalf("rewritten key = %+v, %v", got, ok)
	}
	for i := range 2000 {
		if i == 42 {
			continue
		}
		s := fmt.Sprintf("%09d", i)
		got, ok := c.Get("t0", []byte(s), nil)
		if !ok || len(got) != 2 || got[0].EntityID != "lead"+s || got[1].EntityID != "contact"+s {
			t.Fatalf("key %s after compactions = %+v, %v", s, got, ok)
		}
	}
}

// Fills grow the table past its warm size; every key stays findable.
func TestFillsGrowTheTable(t *testing.T) {
	c := newCache(t, nil)
	for i := range 5000 {
		s := fmt.Sprintf("%09d", i)
		if !c.Fill(c.Epoch(), "t9", s, []Row{{Phone: "48" + s, Kind: domain.KindContact, EntityID: "C" + s, OwnerID: "u", Open: i%2 == 0}}) {
			t.Fatal("Fill refused")
		}
	}
	for i := range 5000 {
		s := fmt.Sprintf("%09d", i)
		got, ok := c.Get("t9", []byte(s), nil)
		if !ok || len(got) != 1 || got[0].Phone != "48"+s || got[0].Open != (i%2 == 0) {
			t.Fatalf("key %s = %+v, %v", s, got, ok)
		}
	}
	if _, ok := c.Get("t8", []byte("000000001"), nil); ok {
		t.Fatal("another tenant's key found")
	}
	c.InvalidateAll()
	if _, ok := c.Get("t9", []byte("000000001"), nil); ok {
		t.Fatal("key found after InvalidateAll")
	}
}

// Readers never lock: run them against writers that invalidate, refill and
// force rebuilds, and check that every answer is a whole, consistent record
// of the key asked for (the race detector checks the memory accesses).
func TestConcurrentReadersSeeWholeRecords(t *testing.T) {
	c := newCache(t, nil)
	const keys = 3000
	if _, err := c.Warm(context.Background(), scanOf(indexRows(1, keys))); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var bad atomic.Value
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf [4]Row
			for i := r; !stop.Load(); i += 7 {
				s := fmt.Sprintf("%09d", i%keys)
				rows, ok := c.Get("t0", []byte(s), buf[:0])
				if !ok {
					continue // invalidated and not yet refilled
				}
				for _, row := range rows {
					if !strings.HasSuffix(row.Phone, s) || !strings.HasSuffix(row.EntityID, s) {
						bad.Store(fmt.Sprintf("key %s answered %+v", s, rows))
					}
				}
			}
		}()
	}
	for i := range 20_000 {
		s := fmt.Sprintf("%09d", (i*31)%keys)
		c.Invalidate("t0", s)
		if i%3 != 0 {
			c.Fill(c.Epoch(), "t0", s, []Row{{Phone: "380" + s, Kind: domain.KindLead, EntityID: fmt.Sprintf("v%d-%s", i, s), OwnerID: "w", Open: true}})
		}
	}
	stop.Store(true)
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
}
