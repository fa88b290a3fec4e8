package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// countingStore stores nothing of the phone index but counts it, so the
// memory measured is the import's own and not the database's.
type countingStore struct {
	store.Store
	rows, batches, largest int
}

func (s *countingStore) UpsertIndex(_ context.Context, rows []domain.IndexEntry) error {
	s.rows += len(rows)
	s.batches++
	s.largest = max(s.largest, len(rows))
	return nil
}

// rowSource generates an import body row by row, as a client uploading a
// file would send it, and samples the live heap (after a GC) every
// sampleEvery rows: what the import holds while it reads.
type rowSource struct {
	n, next     int
	jsonl       bool
	pending     []byte
	sampleEvery int
	peak, base  uint64
}

func (r *rowSource) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.next > r.n {
			return 0, io.EOF
		}
		if r.next > 0 && r.next%r.sampleEvery == 0 {
			r.peak = max(r.peak, liveHeap())
		}
		switch {
		case r.next == 0 && !r.jsonl:
			r.pending = []byte("phone,owner_crm_user_id,entity_kind,entity_id,name,open\n")
		case r.next == 0:
		case r.jsonl:
			r.pending = fmt.Appendf(nil, `{"phone":"38067%07d","owner_crm_user_id":"u%d","entity_kind":"lead","entity_id":"L%d","name":"Client %d"}`+"\n", r.next, r.next%50, r.next, r.next)
		default:
			r.pending = fmt.Appendf(nil, "38067%07d,u%d,lead,L%d,Client %d,true\n", r.next, r.next%50, r.next, r.next)
		}
		r.next++
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestImportMemoryStaysFlat imports rows read from a stream, as CSV and as
// JSON lines, and checks that the live heap while it runs grows by less
// than 3 MiB: one batch of rows, not the file and its rows. Reading the
// whole body and then its rows, as the import did before it streamed, holds
// about 18 MB at 50,000 rows (the body, the rows, the entries and a map of
// their keys). The test imports 30,000 rows of each format, enough to tell
// the two apart; IMPORT_ROWS=200000 measures a 200k-row import
// (docs/security.md has its figures).
func TestImportMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 60,000 rows")
	}
	rows := 30_000
	if n, err := strconv.Atoi(os.Getenv("IMPORT_ROWS")); err == nil && n > 0 {
		rows = n
	}
	const limit = 3 << 20
	cs := &countingStore{Store: sqliteStore(t)}
	w := newWorld(t, cs, 1)
	ctx := context.Background()
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
		t.Fatal(err)
	}
	for _, jsonl := range []bool{false, true} {
		cs.rows, cs.batches, cs.largest = 0, 0, 0
		src := &rowSource{n: rows, jsonl: jsonl, sampleEvery: max(rows/20, 1)}
		src.base = liveHeap()
		rep, err := w.svc.Import(ctx, "ops", "acme", "", "", src)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != rows || rep.Accepted != rows || rep.Rejected != 0 || cs.rows != rows {
			t.Fatalf("jsonl=%v: report %+v, stored %d; want all %d rows", jsonl, rep, cs.rows, rows)
		}
		growth := int64(src.peak) - int64(src.base)
		t.Logf("format %s: %d rows in %d batches (largest %d); live heap before %.1f MiB, peak while importing %.1f MiB (growth %.2f MiB)",
			rep.Format, rows, cs.batches, cs.largest, mib(src.base), mib(src.peak), float64(growth)/(1<<20))
		if growth > limit {
			t.Fatalf("format %s: the live heap grew by %.1f MiB during a %d-row import; want under %d MiB (flat)", rep.Format, float64(growth)/(1<<20), rows, limit>>20)
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestImportBodyCutShort: a body that fails midway (the client went away,
// a chunked body over the limit) ends the import with EINVALID wrapping the
// read error; the batches stored before it stay stored and are reported.
func TestImportBodyCutShort(t *testing.T) {
	cs := &countingStore{Store: sqliteStore(t)}
	w := newWorld(t, cs, 1)
	ctx := context.Background()
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
		t.Fatal(err)
	}
	cut := errors.New("connection reset")
	for _, jsonl := range []bool{false, true} {
		cs.rows = 0
		body := io.MultiReader(&rowSource{n: 1500, jsonl: jsonl, sampleEvery: 1 << 30}, iotest.ErrReader(cut))
		rep, err := w.svc.Import(ctx, "ops", "acme", "", "", body)
		if !errors.Is(err, cut) || domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("jsonl=%v: err %v, want invalid wrapping the read error", jsonl, err)
		}
		if cs.rows != 1000 || rep.Accepted != 1000 || !strings.Contains(err.Error(), "1000 rows") {
			t.Fatalf("jsonl=%v: stored %d, report %+v, err %v; want the first batch of 1000 stored and said", jsonl, cs.rows, rep, err)
		}
	}
}
