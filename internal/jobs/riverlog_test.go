package jobs_test

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// River's migrations run on their own (router migrate) and log through the
// server's zap logger at its level, under the name "river": a second run
// finds nothing left to apply, so the first created River's tables.
func TestRiverMigratesAndLogsThroughZap(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			core, logs := observer.New(zapcore.InfoLevel)
			migrate := func() error {
				switch db := st.(type) {
				case *sqlite.DB:
					return jobs.MigrateSQLite(ctx, db.Writer(), zap.New(core))
				case *postgres.DB:
					return jobs.MigratePostgres(ctx, db.Pool(), zap.New(core))
				}
				t.Fatalf("unknown store %T", st)
				return nil
			}
			if err := migrate(); err != nil {
				t.Fatal(err)
			}
			applied := logs.FilterMessageSnippet("Applied migration").All()
			if len(applied) == 0 {
				t.Fatalf("no River migration logged through zap; got %v", logs.All())
			}
			if applied[0].LoggerName != "river" || applied[0].Level != zapcore.InfoLevel {
				t.Errorf("River's log entry: logger %q level %s, want river at info", applied[0].LoggerName, applied[0].Level)
			}
			logs.TakeAll()
			if err := migrate(); err != nil {
				t.Fatal(err)
			}
			if n := logs.FilterMessageSnippet("Applied migration").Len(); n != 0 {
				t.Errorf("second migration applied %d migrations again", n)
			}
			// A warn-level server hears nothing of River's info chatter.
			quiet, quietLogs := observer.New(zapcore.WarnLevel)
			switch db := st.(type) {
			case *sqlite.DB:
				_ = jobs.MigrateSQLite(ctx, db.Writer(), zap.New(quiet))
			case *postgres.DB:
				_ = jobs.MigratePostgres(ctx, db.Pool(), zap.New(quiet))
			}
			if quietLogs.Len() != 0 {
				t.Errorf("warn-level logger got River's info entries: %v", quietLogs.All())
			}
		})
	}
}
