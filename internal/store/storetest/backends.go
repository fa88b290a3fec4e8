package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// DefaultPostgresURL is the database tests use when POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL returns the test database URL once it answers. When it does
// not, the test is skipped, or fails if REQUIRE_POSTGRES=1 (CI), so the
// PostgreSQL suites can never silently not run there.
func PostgresURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("POSTGRES_URL")
	if url == "" {
		url = DefaultPostgresURL
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("POSTGRES_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL at %s is unreachable and REQUIRE_POSTGRES=1: %v", where, err)
		}
		t.Skipf("PostgreSQL at %s is unreachable, skipping (set POSTGRES_URL, or REQUIRE_POSTGRES=1 to fail instead): %v", where, err)
	}
	return url
}

// FreshSchema returns a schema name no other test or run uses, and drops
// that schema when t ends.
func FreshSchema(t testing.TB, url string) string {
	t.Helper()
	schema := "storetest_" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// sqliteTemplate is an SQLite store's file as Open leaves it, migrated
// once per test process: each test's store starts as a copy of it and
// Open finds every migration applied. Migrating each one afresh costs
// about 0.2 s under the race detector (twelve synced transactions of DDL
// to parse), for each of the hundreds of stores a test run opens. The
// migrations themselves are tested by the sqlite package on new files.
var sqliteTemplate = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "storetest-template-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "callrouter.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		return nil, err
	}
	// Everything into the main file, so that the file alone is the store.
	if _, err := db.Writer().ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%s-wal still holds %d bytes after a checkpoint and close", path, fi.Size())
	}
	return os.ReadFile(path)
})

// SQLiteFile returns the path of a new SQLite store in a temporary
// directory, migrated and empty, for a test that opens the store itself.
func SQLiteFile(t testing.TB) string {
	t.Helper()
	tmpl, err := sqliteTemplate()
	if err != nil {
		t.Fatalf("migrate the template store: %v", err)
	}
	path := filepath.Join(t.TempDir(), "callrouter.db")
	if err := os.WriteFile(path, tmpl, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Backend opens a fresh, empty store of one kind for a test.
type Backend struct {
	Name string
	Open func(t testing.TB) store.Store
	// OpenAt is Open with the store's clock, which stamps what the store
	// stamps itself, set to now.
	OpenAt func(t testing.TB, now func() time.Time) store.Store
}

// Backends returns both store backends for tests that must pass on each:
// SQLite in a temporary directory, PostgreSQL in a fresh schema (skipped or
// failed as PostgresURL says when the database is unreachable).
func Backends() []Backend {
	openSQLite := func(t testing.TB, now func() time.Time) store.Store {
		t.Helper()
		db, err := sqlite.Open(context.Background(), SQLiteFile(t), sqlite.WithNow(now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	openPostgres := func(t testing.TB, now func() time.Time) store.Store {
		t.Helper()
		url := PostgresURL(t)
		db, err := postgres.Open(context.Background(), url, postgres.WithSchema(FreshSchema(t, url)), postgres.WithNow(now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return []Backend{
		{Name: "sqlite", OpenAt: openSQLite, Open: func(t testing.TB) store.Store { return openSQLite(t, time.Now) }},
		{Name: "postgres", OpenAt: openPostgres, Open: func(t testing.TB) store.Store { return openPostgres(t, time.Now) }},
	}
}
