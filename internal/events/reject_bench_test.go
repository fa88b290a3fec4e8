package events

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// BenchmarkAckDuringJunkFlood measures another tenant's acknowledgement
// (Store, one event at a time on SQLite) while 4 goroutines flood tenant
// junk's events endpoint with bodies it rejects (2000 a second): quiet (no flood), flood
// (the default limits) and flood-unlimited (every junk body written, as
// before the limits). It reports the p50 and p99 acknowledgement time.
func BenchmarkAckDuringJunkFlood(b *testing.B) {
	for _, mode := range []string{"quiet", "flood", "flood-unlimited"} {
		b.Run(mode, func(b *testing.B) {
			cr, _, _, reg := rejectFixture(b)
			g := NewIngest(cr, &partitions{}, nil, 1)
			defer g.Close()
			if mode == "flood-unlimited" {
				g.LimitRejected(rate.Inf, 0)
				g.rejectWriters = make(chan struct{}, 64)
			}
			ctx := context.Background()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if mode != "quiet" {
				for range 4 {
					wg.Go(func() {
						// 500 junk bodies a second each, 2000 in all: a
						// flood, paced so the flooders do not just take the
						// CPU the acknowledgements need.
						junk := make([]byte, 4<<10)
						tick := time.NewTicker(2 * time.Millisecond)
						defer tick.Stop()
						for {
							select {
							case <-stop:
								return
							case <-tick.C:
							}
							_ = g.Reject(ctx, "junk", "body: junk", "", junk)
						}
					})
				}
			}
			good := reg.Lookup("good")
			lat := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				start := time.Now()
				if _, err := g.Store(ctx, good, callEnd("good-"+strconv.Itoa(i), "380671234567")); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				i++
			}
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(cr.writes.Load())/float64(len(lat)), "junk-writes/ack")
		})
	}
}
