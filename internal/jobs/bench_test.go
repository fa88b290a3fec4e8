package jobs_test

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/jobs"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

type noDrain struct{}

func (noDrain) Drain(context.Context, string, string) error { return nil }

// BenchmarkEventIngest is the durable part of the events endpoint: parse,
// then the event row and its River job in one committed transaction, on
// each store backend; -cpu sets the concurrent posters. The runner is not
// started, so the figure is the ingest alone.
func BenchmarkEventIngest(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := be.Open(b)
			if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), SecretHash: []byte("x")}); err != nil {
				b.Fatal(err)
			}
			r, err := runner(ctx, st, jobs.Config{Store: st, Events: noDrain{}, EventStore: st})
			if err != nil {
				b.Fatal(err)
			}
			reg := tenant.NewRegistry(st)
			if err := reg.LoadAll(ctx); err != nil {
				b.Fatal(err)
			}
			t := reg.Lookup("acme")
			// As serve runs them: one committer on SQLite's single writer.
			committers := 4
			if be.Name == "sqlite" {
				committers = 1
			}
			g := events.NewIngest(st, r, nil, committers)
			defer g.Close()
			var (
				seq  atomic.Int64
				mu   sync.Mutex
				acks []time.Duration
			)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				defer func() {
					mu.Lock()
					acks = append(acks, mine...)
					mu.Unlock()
				}()
				for pb.Next() {
					start := time.Now()
					n := seq.Add(1)
					q := url.Values{"event": {"call_end"}, "uniqueid": {"1700000000." + strconv.FormatInt(n, 10)},
						"caller": {"38067" + strconv.FormatInt(1000000+n%5000, 10)}, "disposition": {"ANSWERED"}, "billsec": {"42"}}
					in, err := events.Parse("", q, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := g.Store(ctx, t, in); err != nil {
						b.Fatal(err)
					}
					mine = append(mine, time.Since(start))
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// The ack latency a poster sees: parse and the durable commit of
			// its batch.
			slices.Sort(acks)
			if len(acks) > 0 {
				b.ReportMetric(float64(acks[len(acks)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
