package jobs

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/riverqueue/river"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// The sweep publishes the backlog gauges of every tenant, one without a
// CRM integration included (its events wait as well).
func TestSweepPublishesBacklogOfTenantsWithoutCRM(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			id := "nocrm-" + b.Name
			if err := st.CreateTenant(ctx, domain.Tenant{ID: id, Settings: domain.DefaultSettings()}); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Store: st, EventStore: st, Tenants: st}
			cfg.defaults()
			if err := sweep(ctx, cfg, func(context.Context, river.JobArgs) error { return nil }); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			metrics.WritePrometheus(&buf, false)
			for _, want := range []string{
				`callrouter_events_waiting{tenant="` + id + `"} 0`,
				`callrouter_events_oldest_waiting_seconds{tenant="` + id + `"} 0`,
			} {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}
