package postgres_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store/storetest"
)

// Commits wait for the WAL flush even on a server whose default is
// synchronous_commit=off: the 200 of an event follows its commit.
func TestCommitsDurablyOnAnAsyncServer(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A role whose default is off stands for a server configured so.
	role := "callrouter_async_test"
	if _, err := conn.Exec(ctx, `DROP ROLE IF EXISTS `+role); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE ROLE `+role+` LOGIN SUPERUSER`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	if _, err := conn.Exec(ctx, `ALTER ROLE `+role+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	asyncURL := "postgres://" + role + "@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database + "?sslmode=disable"
	db := open(t, asyncURL, storetest.FreshSchema(t, url))
	var got string
	if err := db.Pool().QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "on" {
		t.Fatalf("store connections: synchronous_commit=%s, want on", got)
	}
}
