package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// The change log hands out increasing seqs in append order, reads them
// back after a position, and keeps its high-water mark when trimmed empty,
// so a reader can tell a gap from an empty log; a second process on the
// same file sees what the first appended.
func TestChangeLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "callrouter.db")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	a := open(t, path, sqlite.WithNow(clock))
	b := open(t, path)

	if last, err := b.LastChange(ctx); err != nil || last != 0 {
		t.Fatalf("LastChange of a new log: %d, %v", last, err)
	}
	if err := a.AppendChanges(ctx, []string{"one", "two"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := a.AppendChanges(ctx, []string{"three"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendChanges(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := b.ChangesAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Payload != "one" || got[1].Payload != "two" || got[2].Payload != "three" ||
		got[1].Seq != got[0].Seq+1 || got[2].Seq != got[1].Seq+1 {
		t.Fatalf("ChangesAfter(0): %+v", got)
	}
	if more, err := b.ChangesAfter(ctx, got[0].Seq, 1); err != nil || len(more) != 1 || more[0].Payload != "two" {
		t.Fatalf("ChangesAfter(first, limit 1): %+v, %v", more, err)
	}
	if err := a.TrimChanges(ctx, now); err != nil {
		t.Fatal(err)
	}
	left, err := b.ChangesAfter(ctx, 0, 10)
	if err != nil || len(left) != 1 || left[0].Payload != "three" {
		t.Fatalf("after trimming the first minute: %+v, %v", left, err)
	}
	if err := a.TrimChanges(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if last, err := b.LastChange(ctx); err != nil || last != got[2].Seq {
		t.Fatalf("LastChange of a trimmed log: %d, %v; want %d", last, err, got[2].Seq)
	}
	if err := a.AppendChanges(ctx, []string{"four"}); err != nil {
		t.Fatal(err)
	}
	if next, err := b.ChangesAfter(ctx, got[2].Seq, 10); err != nil || len(next) != 1 || next[0].Seq != got[2].Seq+1 {
		t.Fatalf("a seq after a trim is never reused: %+v, %v", next, err)
	}
}
