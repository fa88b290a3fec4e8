package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

func open(t testing.TB, url, schema string, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	url := storetest.PostgresURL(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return open(t, url, storetest.FreshSchema(t, url), postgres.WithNow(now))
	})
}

func TestMigrateConcurrently(t *testing.T) {
	url := storetest.PostgresURL(t)
	schema := storetest.FreshSchema(t, url)
	// Instances starting together: each Open migrates the same new schema.
	const n = 4
	dbs := make([]*postgres.DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(t.Context(), url, postgres.WithSchema(schema)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	v, err := dbs[0].Version(t.Context())
	if err != nil || v < 1 {
		t.Fatalf("Version = %d, %v; want >= 1", v, err)
	}
	if err := dbs[1].CreateTenant(t.Context(), domain.Tenant{ID: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	db := open(t, url, schema)
	if v2, err := db.Version(t.Context()); err != nil || v2 != v {
		t.Fatalf("Version after reopen = %d, %v; want %d", v2, err, v)
	}
	if _, err := db.Tenant(t.Context(), "acme"); err != nil {
		t.Fatalf("Tenant after reopen: %v", err)
	}
}

func TestSearchPathFromURL(t *testing.T) {
	url := storetest.PostgresURL(t)
	schema := storetest.FreshSchema(t, url)
	// Without WithSchema the URL's search_path decides, and that schema
	// must already exist.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	conn.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(t.Context(), withParam(url, "search_path", schema))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if err := db.SetMeta(t.Context(), "k", "v"); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	conn, err = pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var v string
	if err := conn.QueryRow(t.Context(), `SELECT value FROM `+pgx.Identifier{schema, "meta"}.Sanitize()+` WHERE key = 'k'`).Scan(&v); err != nil || v != "v" {
		t.Fatalf("meta in schema %s = %q, %v; want the value just set", schema, v, err)
	}
}

func withParam(url, k, v string) string {
	sep := "?"
	for i := range len(url) {
		if url[i] == '?' {
			sep = "&"
		}
	}
	return url + sep + k + "=" + v
}

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://a:secret@host:notaport/db")
	if domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("Open of a bad URL = %v, want an invalid error", err)
	}
}

// load fills the store with n rows over one tenant and returns the
// suffixes used.
func load(b *testing.B, db *postgres.DB, url, schema string, n int) []string {
	b.Helper()
	suffixes := storetest.Load(b, db, n, 10_000)
	ctx := context.Background()
	// Fresh statistics and visibility map, as autovacuum would have soon
	// after a real load.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE `+pgx.Identifier{schema, "phone_index"}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	return suffixes
}

func benchDB(b *testing.B) (db *postgres.DB, url, schema string) {
	url = storetest.PostgresURL(b)
	schema = storetest.FreshSchema(b, url)
	return open(b, url, schema), url, schema
}

func BenchmarkLookupSuffix(b *testing.B) {
	db, url, schema := benchDB(b)
	storetest.BenchLookupSuffix(b, db, load(b, db, url, schema, 100_000))
}

func BenchmarkUpsertIndex(b *testing.B) {
	db, _, _ := benchDB(b)
	storetest.BenchUpsertIndex(b, db)
}

func BenchmarkReplaceEntities(b *testing.B) {
	db, _, _ := benchDB(b)
	storetest.BenchReplaceEntities(b, db, 100_000)
}

func BenchmarkScanIndex(b *testing.B) {
	db, url, schema := benchDB(b)
	load(b, db, url, schema, 100_000)
	storetest.BenchScanIndex(b, db)
}
