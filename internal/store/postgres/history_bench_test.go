package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

var historySize = flag.Int("history", 5_000_000, "finished call events of the history benchmarks (a year of a busy project)")

// BenchmarkEventStatsHistory is /status and the sweep's per-tenant read
// with no history and with -history finished events: the two should cost
// the same, since only waiting events and counters are read.
//
//	go test -run '^$' -bench EventStatsHistory -benchtime 2000x ./internal/store/postgres
func BenchmarkEventStatsHistory(b *testing.B) {
	url := storetest.PostgresURL(b)
	for _, n := range []int{0, *historySize} {
		b.Run(fmt.Sprintf("finished=%d", n), func(b *testing.B) {
			ctx := context.Background()
			schema := storetest.FreshSchema(b, url)
			db := open(b, url, schema)
			if err := db.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), SecretHash: []byte("x")}); err != nil {
				b.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `SET search_path = `+pgx.Identifier{schema}.Sanitize()); err != nil {
				b.Fatal(err)
			}
			// A year of finished events and a small backlog, written in SQL
			// at once: the triggers count them as the service's writes would.
			if _, err := conn.Exec(ctx, `INSERT INTO call_events (id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at, processed_at)
SELECT 'e' || i, 'acme', 'u' || i, 'call_end', 'p' || (i % 10000), '{}', now() - interval '365 days' + i * interval '6 seconds', 'done', '', 1, now(), now()
FROM generate_series(1, $1) AS i`, n); err != nil {
				b.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `INSERT INTO call_events (id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at)
SELECT 'w' || i, 'acme', 'w' || i, 'call_end', 'w', '{}', now(), 'waiting', '', 0, now() FROM generate_series(1, 20) AS i`); err != nil {
				b.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `VACUUM ANALYZE call_events`); err != nil {
				b.Fatal(err)
			}
			// What /status cost before the counters: a count of every event
			// by state. Timed here once, for comparison.
			t0 := time.Now()
			for range 5 {
				if _, err := conn.Exec(ctx, `SELECT state, count(*), min(received_at) FROM call_events WHERE tenant_id = 'acme' GROUP BY state`); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("the count by state over the whole history took %s a read", time.Since(t0)/5)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				st, err := db.EventStats(ctx, "acme")
				if err != nil || st.Waiting != 20 || st.Done != n {
					b.Fatalf("stats %+v, %v", st, err)
				}
			}
		})
	}
}
