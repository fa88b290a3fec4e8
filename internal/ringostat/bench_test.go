package ringostat_test

import (
	"fmt"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/store"
)

// BenchmarkPushFull measures callrouter's side of the full contacts push
// (index read by entity, contacts built, sent to the fake API) with the
// rate limit lifted: 10,000 entities in batches of 100 per op. The
// deployed rate is the limit's, 100 contacts × 2 requests/s.
func BenchmarkPushFull(b *testing.B) {
	h := newHarness(b, nil, func(c *ringostat.Config) { c.PushBatch = ringostat.DefaultPushBatch })
	const n = 10000
	rows := make([]domain.IndexEntry, 0, n)
	for i := range n {
		rows = append(rows, row(domain.KindContact, fmt.Sprintf("C%05d", i), fmt.Sprintf("38067%07d", i), "anna", "Client"))
	}
	h.index(rows...)
	b.ResetTimer()
	for b.Loop() {
		if err := h.st.SaveRingostatPush(h.ctx, "acme", store.RingostatPush{}); err != nil {
			b.Fatal(err)
		}
		if err := h.m.Push(h.ctx, "acme"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "contacts/s")
}

// BenchmarkObserveWithoutCallbacks is the ingest path's share of the
// Ringostat manager for a tenant without automatic call-backs: presence
// bookkeeping only, no number parsed.
func BenchmarkObserveWithoutCallbacks(b *testing.B) {
	h := newHarness(b, nil)
	fields := map[string]string{"uniqueid": "b.1", "caller": "380671234567", "disposition": "NO ANSWER", "employee_number": "sip_anna"}
	b.ReportAllocs()
	for b.Loop() {
		h.m.Observe("acme", "e1", domain.EventCallEnd, fields)
	}
}
