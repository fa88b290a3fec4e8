package events_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// proxyLimit is each fake CRM's request limit per second for the fault
// proxy's meter, which sees every request (retailCRM: its API and
// telephony limits together; the fake's own meters check each).
var proxyLimit = map[string]int{"amocrm": amocrmfake.RPS, "zoho": zohofake.MeterRPS, "retailcrm": 10 + 40, "uspacy": uspacyfake.RateLimit}

// TestEventsRideOutCRMFaults: a missed call from a new number while the
// CRM is down, slow, in a 429 or 5xx storm, or answering malformed JSON.
// The attempt fails without touching the integration (still active), the
// event waits for its retry with backoff, and once the CRM is well the
// retry makes exactly one lead, one call and one call-back task: nothing
// is lost and nothing doubled.
func TestEventsRideOutCRMFaults(t *testing.T) {
	for _, f := range crmfakes.All() {
		t.Run(f.CRM, func(t *testing.T) {
			t.Parallel()
			fake := f.New(t)
			w := newWorld(t, storetest.Backends()[0].Open(t), f.CRM, fake, domain.Settings{})
			proxy := crmtest.NewProxy(t, fake.URL(), proxyLimit[f.CRM]*rateScale)
			if _, err := w.admin.PutIntegration(context.Background(), "test", "acme", admin.IntegrationInput{CRM: f.CRM, BaseURL: proxy.URL(), Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
				t.Fatal(err)
			}
			w.sync()

			faults := []struct {
				name          string
				inject, heal  func()
				bound         time.Duration // of the failing attempt; 0: none
				retriedInside bool          // the CRM client's own retries get through
			}{
				{name: "down", inject: proxy.Down, heal: proxy.Up},
				{name: "hanging", inject: func() { fake.SetDelay(-1) }, heal: func() { fake.SetDelay(0) }, bound: 300 * time.Millisecond},
				{name: "short 429 storm", inject: func() { proxy.Fail(http.StatusTooManyRequests, 2, time.Second) }, heal: func() {}, retriedInside: true},
				{name: "long 429 storm", inject: func() { proxy.Fail(http.StatusTooManyRequests, 1000, time.Second) }, heal: func() { proxy.Fail(0, 0, 0) }},
				{name: "503 storm", inject: func() { proxy.Fail(http.StatusServiceUnavailable, 1000, 0) }, heal: func() { proxy.Fail(0, 0, 0) }},
				{name: "500 storm", inject: func() { proxy.Fail(http.StatusInternalServerError, 1000, 0) }, heal: func() { proxy.Fail(0, 0, 0) }},
				{name: "502 once", inject: func() { proxy.Fail(http.StatusBadGateway, 1, 0) }, heal: func() {}, retriedInside: true},
				{name: "malformed JSON", inject: func() { proxy.Garbage(1) }, heal: func() {}},
			}
			for i, fault := range faults {
				caller := "38067200000" + string(rune('0'+i))
				before := w.fake.Written()
				fault.inject()
				id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "f" + caller, "caller": caller, "disposition": "NO ANSWER"})
				err := w.drainWithin(fault.bound)
				if fault.retriedInside {
					if err != nil {
						t.Fatalf("%s: %v, want the CRM client's retries to get through", fault.name, err)
					}
				} else {
					if err == nil {
						t.Fatalf("%s: the attempt succeeded", fault.name)
					}
					ev := w.event(id)
					if ev.State != domain.EventWaiting {
						t.Fatalf("%s: event %q (%s), want waiting", fault.name, ev.State, ev.Note)
					}
					if fault.bound == 0 && (ev.Attempts != 1 || !ev.RetryAt.After(w.clock.Now()) || ev.Note == "") {
						t.Fatalf("%s: attempts %d, retry at %s, note %q; want one attempt noted with a retry time", fault.name, ev.Attempts, ev.RetryAt, ev.Note)
					}
					if fault.bound == 0 && !strings.Contains(ev.Note, f.CRM) {
						t.Errorf("%s: the attempt's note %q does not name the CRM", fault.name, ev.Note)
					}
					in, err := w.st.Integration(context.Background(), "acme")
					if err != nil || in.State != store.IntegrationActive {
						t.Fatalf("%s: integration %q, %v; want active", fault.name, in.State, err)
					}
					fault.heal()
					w.clock.Advance(events.Backoff(1))
					w.queue.Enqueue(context.Background(), partition(caller))
					w.mustDrain()
				}
				if ev := w.event(id); ev.State != domain.EventDone {
					t.Fatalf("%s: after the CRM recovered: %q %q", fault.name, ev.State, ev.Note)
				}
				wr := w.fake.Written()
				oneLead(t, wr, caller)
				oneCall(t, wr, caller)
				if n := len(wr.Tasks) - len(before.Tasks); n != 1 {
					t.Fatalf("%s: %d call-back tasks made, want 1", fault.name, n)
				}
			}
			t.Logf("%s: %d requests through the proxy, peak %d/s", f.CRM, proxy.Meter().Count(), proxy.Meter().Peak())
		})
	}
}

// drainWithin is drain with its attempts bounded by d (0: unbounded).
func (w *world) drainWithin(d time.Duration) error {
	w.t.Helper()
	if d == 0 {
		return w.drain()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var first error
	for _, p := range w.queue.take() {
		if err := w.proc.Drain(ctx, p.TenantID, p.Partition); err != nil && first == nil {
			first = err
		}
	}
	if first != nil && !errors.Is(first, context.DeadlineExceeded) {
		w.t.Errorf("bounded drain: %v, want the bound's deadline", first)
	}
	return first
}
