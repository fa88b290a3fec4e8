package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
)

// The writer commits with synchronous=FULL: in WAL mode NORMAL leaves the
// last commits, already acknowledged with a 200, to the next checkpoint's
// fsync, and a power loss would take them.
func TestWriterCommitsDurably(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "router.db"))
	ctx := context.Background()
	conn, err := db.Writer().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sync int
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if sync < 2 || mode != "wal" {
		t.Fatalf("writer: synchronous=%d journal_mode=%s, want FULL (2) or EXTRA (3) in wal", sync, mode)
	}
}
