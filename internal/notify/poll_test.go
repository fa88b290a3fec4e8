package notify

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/store/sqlite"
)

func openSQLite(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Two processes on one SQLite file (two stores, two pollers): each applies
// what the other publishes, in order, and never its own.
func TestPollerTwoInstances(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "callrouter.db")
	recA, recB := &recorder{}, &recorder{}
	var buses []*Poller
	for i, rec := range []*recorder{recA, recB} {
		p, err := NewPoller(openSQLite(t, path), Config{Origin: []string{"a", "b"}[i], PollInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx, rec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		buses = append(buses, p)
	}
	if err := buses[0].Publish(ctx, Tenant("acme"), Keys("acme", []string{"671234567"})); err != nil {
		t.Fatal(err)
	}
	if err := buses[1].Publish(ctx, Flush("beta")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b applies a's changes", 5*time.Second, func() bool { got, _ := recB.snapshot(); return len(got) == 2 })
	waitFor(t, "a applies b's change", 5*time.Second, func() bool { got, _ := recA.snapshot(); return len(got) == 1 })
	gotB, _ := recB.snapshot()
	if gotB[0].Kind != KindTenant || gotB[1].Kind != KindKeys || !slices.Equal(gotB[1].Keys, []string{"671234567"}) {
		t.Fatalf("b applied %+v", gotB)
	}
	// Publishing more after b caught up shows b did not pick up its own.
	if err := buses[0].Publish(ctx, Tenant("gamma")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b applies the next change", 5*time.Second, func() bool { got, _ := recB.snapshot(); return len(got) == 3 })
	gotA, _ := recA.snapshot()
	gotB, resyncs := recB.snapshot()
	if len(gotA) != 1 || gotA[0].Kind != KindFlush || gotA[0].Tenant != "beta" || gotB[2].Tenant != "gamma" || resyncs != 0 {
		t.Fatalf("a applied %+v; b applied %+v with %d resyncs", gotA, gotB, resyncs)
	}
}

// A poller whose position was trimmed away resyncs instead of applying a
// partial log; one that cannot apply a change resyncs too.
func TestPollerResyncs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "callrouter.db")
	writer, err := NewPoller(openSQLite(t, path), Config{Origin: "w"})
	if err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, path)
	reader, err := NewPoller(db, Config{Origin: "r"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	// Driven by hand (poll) instead of Start, so the test decides when the
	// reader reads.
	if reader.last, err = db.LastChange(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Publish(ctx, Tenant("acme"), Tenant("beta")); err != nil {
		t.Fatal(err)
	}
	if err := db.TrimChanges(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := reader.poll(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, resyncs := rec.snapshot(); len(got) != 0 || resyncs != 1 {
		t.Fatalf("after a trimmed gap: applied %+v, %d resyncs; want a resync only", got, resyncs)
	}
	if err := writer.Publish(ctx, Tenant("gamma")); err != nil {
		t.Fatal(err)
	}
	if err := reader.poll(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, resyncs := rec.snapshot(); len(got) != 1 || got[0].Tenant != "gamma" || resyncs != 1 {
		t.Fatalf("after the gap the reader goes on: %+v, %d resyncs", got, resyncs)
	}

	rec.setFail(errors.New("store down"))
	if err := writer.Publish(ctx, Tenant("delta")); err != nil {
		t.Fatal(err)
	}
	if err := reader.poll(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, resyncs := rec.snapshot(); resyncs != 2 {
		t.Fatalf("a change that could not be applied: %d resyncs, want 2", resyncs)
	}
}
