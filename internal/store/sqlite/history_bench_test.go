package sqlite_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store/sqlite"
)

var historySize = flag.Int("history", 5_000_000, "finished call events of the history benchmarks (a year of a busy project)")

// BenchmarkEventStatsHistory is /status and the sweep's per-tenant read
// with no history and with -history finished events: the two should cost
// the same, since only waiting events and counters are read.
//
//	go test -run '^$' -bench EventStatsHistory -benchtime 2000x ./internal/store/sqlite
func BenchmarkEventStatsHistory(b *testing.B) {
	for _, n := range []int{0, *historySize} {
		b.Run(fmt.Sprintf("finished=%d", n), func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, b.TempDir()+"/h.db")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), SecretHash: []byte("x")}); err != nil {
				b.Fatal(err)
			}
			// A year of finished events, then a small backlog, written in SQL
			// at once: the triggers count them as the service's writes would.
			start := time.Now().Add(-365 * 24 * time.Hour).UnixMicro()
			if n == 0 {
				// nothing finished yet
			} else if _, err := db.Writer().ExecContext(ctx, `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)
INSERT INTO call_events (id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at, processed_at)
SELECT 'e' || i, 'acme', 'u' || i, 'call_end', 'p' || (i % 10000), '{}', ? + i * 6000000, 'done', '', 1, 0, ? + i * 6000000 FROM g`,
				n, start, start); err != nil {
				b.Fatal(err)
			}
			for i := range 20 {
				if _, err := db.Writer().ExecContext(ctx, `INSERT INTO call_events (id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at)
VALUES (?, 'acme', ?, 'call_end', 'w', '{}', ?, 'waiting', '', 0, 0)`, fmt.Sprintf("w%d", i), fmt.Sprintf("w%d", i), time.Now().UnixMicro()); err != nil {
					b.Fatal(err)
				}
			}
			rows, err := db.Writer().QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT count(*), min(received_at) FROM call_events WHERE tenant_id = 'acme' AND state = 'waiting'`)
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
				var a, c, d any
				var detail string
				if err := rows.Scan(&a, &c, &d, &detail); err != nil {
					b.Fatal(err)
				}
				b.Log("plan: ", detail)
			}
			rows.Close()
			// What /status cost before the counters: a count of every event
			// by state. Timed here once, for comparison.
			t0 := time.Now()
			for range 5 {
				if _, err := db.Writer().ExecContext(ctx, `SELECT state, count(*), min(received_at) FROM call_events WHERE tenant_id = 'acme' GROUP BY state`); err != nil {
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
