package crmsync_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// The CRM faults of a sync, a webhook and a live lookup, on every fake CRM
// behind a crmtest.Proxy: down, slow, 429 storms, 5xx, malformed JSON, a
// token revoked mid-sync. What must hold whatever the fault: the sync
// reports it (naming the CRM), the integration stays active unless the CRM
// rejected the credentials, nothing is applied from an answer that could
// not be read, and routing keeps answering from the index.

// rateLimit is each fake CRM's request limit per second, for the proxy's
// meter (which also counts the failures it injects).
var rateLimit = map[string]int{"amocrm": amocrmfake.RPS, "zoho": zohofake.MeterRPS, "retailcrm": 10, "uspacy": uspacyfake.RateLimit}

// faultWorld is a world whose CRM is reached through a fault proxy, with
// Anna's client indexed by a first sync.
type faultWorld struct {
	*world
	proxy *crmtest.Proxy
	sleep *crmtest.NoSleep
	crm   string
	fake  crmfakes.Fake
}

func newFaultWorld(t *testing.T, f crmfakes.Entry) *faultWorld {
	t.Helper()
	fake := f.New(t)
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}})
	fake.Put(contact("1001", "067 111 22 33", "501"))
	proxy := crmtest.NewProxy(t, fake.URL(), rateLimit[f.CRM]*rateScale)
	sleep := &crmtest.NoSleep{}
	w := newWorldAt(t, storetest.Backends()[0].Open(t), f.CRM, fake, proxy.URL(), sleep)
	w.sync()
	if got := w.target("380671112233"); got != "sip_anna" {
		t.Fatalf("after the first sync: %q, want sip_anna", got)
	}
	return &faultWorld{world: w, proxy: proxy, sleep: sleep, crm: f.CRM, fake: fake}
}

// eachCRM runs fn for every fake CRM, in parallel.
func eachCRM(t *testing.T, fn func(t *testing.T, w *faultWorld)) {
	for _, f := range crmfakes.All() {
		t.Run(f.CRM, func(t *testing.T) {
			t.Parallel()
			fn(t, newFaultWorld(t, f))
		})
	}
}

func (w *faultWorld) integration() store.Integration {
	w.t.Helper()
	in, err := w.st.Integration(context.Background(), "acme")
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

// failedSync runs a cycle that must fail and checks what every failure
// but a rejected token leaves: the error names the CRM, the integration
// is still active with the error recorded, its position is unchanged,
// nothing of the new client 1009 is indexed and Anna's client still
// routes to her.
func (w *faultWorld) failedSync(ctx context.Context) error {
	w.t.Helper()
	before := w.integration()
	res, err := w.engine.Syncer.Sync(ctx, "acme", 0)
	if err == nil {
		w.t.Fatalf("sync succeeded through the fault: %+v", res)
	}
	if !strings.Contains(err.Error(), w.crm) && !errors.Is(err, context.DeadlineExceeded) {
		w.t.Errorf("sync error %q does not name the CRM %s", err, w.crm)
	}
	in := w.integration()
	if in.State != store.IntegrationActive || in.LastError == "" {
		w.t.Errorf("integration after a failed sync: state %q, last error %q; want active with the error", in.State, in.LastError)
	}
	if in.Cursor != before.Cursor || in.Phase != before.Phase {
		w.t.Errorf("a failed sync moved the position from %s %q to %s %q", before.Phase, before.Cursor, in.Phase, in.Cursor)
	}
	if got := w.target("380671112233"); got != "sip_anna" {
		w.t.Errorf("routing during the fault: %q, want sip_anna from the index", got)
	}
	if rows, _ := w.st.LookupSuffix(context.Background(), "acme", phone.Suffix("380500001009")); len(rows) != 0 {
		w.t.Errorf("the failed sync indexed %+v", rows)
	}
	return err
}

// change puts client 1009 (Boris's) into the CRM after the index's last
// sync, so the next cycle has something to apply.
func (w *faultWorld) change() {
	w.clock.Advance(1100 * time.Millisecond) // CRMs stamp changes in whole seconds
	w.fake.Put(contact("1009", "+380 50 000 10 09", "502"))
}

// recovered runs a cycle after the fault and checks it applied 1009.
func (w *faultWorld) recovered() {
	w.t.Helper()
	w.sync()
	if got := w.target("380500001009"); got != "sip_boris" {
		w.t.Fatalf("after the fault: %q, want sip_boris", got)
	}
	if in := w.integration(); in.LastError != "" || in.State != store.IntegrationActive {
		w.t.Fatalf("after the fault: state %q, last error %q", in.State, in.LastError)
	}
}

// TestCRMDownSyncReportsAndRoutingGoesOn: connections to the CRM are
// refused. The sync fails naming the CRM, the integration stays active,
// routing answers from the index and a live lookup falls back to on_miss;
// once the CRM is back the next cycle catches up.
func TestCRMDownSyncReportsAndRoutingGoesOn(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		w.change()
		w.proxy.Down()
		err := w.failedSync(context.Background())
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("sync error %q does not say the connection was refused", err)
		}
		res := w.route.Route(context.Background(), w.reg.Lookup("acme"), []byte("380631234567"), time.Now())
		if res.Target != "" || res.Reason != lookup.ReasonNoMatch {
			t.Errorf("live lookup with the CRM down: %+v, want on_miss: no forward", res)
		}
		w.proxy.Up()
		w.recovered()
	})
}

// TestCRMSlowSyncIsBoundedByItsContext: a CRM that never answers holds a
// sync only as long as its context; routing answers from the index
// meanwhile.
func TestCRMSlowSyncIsBoundedByItsContext(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		w.change()
		w.fake.SetDelay(-1)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := w.failedSync(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("sync against a hanging CRM: %v, want the context's deadline", err)
		}
		// Slow but answering: the sync gets there.
		w.fake.SetDelay(30 * time.Millisecond)
		w.recovered()
	})
}

// Test429StormIsRetriedWithinTheRateLimit: 429s are retried after their
// Retry-After, the requests (refused ones included) never go above the
// CRM's rate limit (the proxy's meter fails the test otherwise), and a
// storm longer than the retries fails the cycle, which the next one
// resumes.
func Test429StormIsRetriedWithinTheRateLimit(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		w.change()
		waits := len(w.sleep.Waits)
		w.proxy.Fail(http.StatusTooManyRequests, 2, 2*time.Second)
		w.sync()
		if got := w.sleep.Waits[waits:]; len(got) != 2 || got[0] != 2*time.Second || got[1] != 2*time.Second {
			t.Errorf("waits after two 429s with Retry-After: 2: %v, want [2s 2s]", got)
		}
		if got := w.target("380500001009"); got != "sip_boris" {
			t.Fatalf("after the retried 429s: %q, want sip_boris", got)
		}

		w.clock.Advance(1100 * time.Millisecond) // CRMs stamp changes in whole seconds
		w.fake.Put(contact("1009", "+380 50 000 10 09", "501"))
		w.proxy.Fail(http.StatusTooManyRequests, 100, time.Second)
		res, err := w.engine.Syncer.Sync(context.Background(), "acme", 0)
		var se *crm.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || !strings.Contains(err.Error(), w.crm) {
			t.Fatalf("sync in a 429 storm: %+v, %v; want the CRM's 429", res, err)
		}
		if in := w.integration(); in.State != store.IntegrationActive || !strings.Contains(in.LastError, "429") {
			t.Errorf("integration after a 429 storm: %q %q", in.State, in.LastError)
		}
		w.proxy.Fail(0, 0, 0)
		w.sync()
		if got := w.target("380500001009"); got != "sip_anna" {
			t.Fatalf("after the storm: %q, want sip_anna", got)
		}
		t.Logf("%s: %d requests, peak %d/s of %d allowed", w.crm, w.proxy.Meter().Count(), w.proxy.Meter().Peak(), rateLimit[w.crm]*rateScale)
	})
}

// TestServerErrorsRetriedThenReported: a CRM's 5xx on a read is retried
// with backoff; a lasting one fails the cycle with the CRM's status.
func TestServerErrorsRetriedThenReported(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		w.change()
		w.proxy.Fail(http.StatusInternalServerError, 100, 0)
		err := w.failedSync(context.Background())
		var se *crm.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusInternalServerError {
			t.Errorf("sync against a failing CRM: %v, want its 500", err)
		}
		waits := len(w.sleep.Waits)
		w.proxy.Fail(http.StatusBadGateway, 2, 0)
		w.recovered()
		if got := w.sleep.Waits[waits:]; len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
			t.Errorf("backoffs after two 502s: %v, want [1s 2s]", got)
		}
	})
}

// TestMalformedJSONAppliesNothing: an answer that is not the JSON it
// should be fails the page with an error naming the CRM, applies nothing
// of it and panics nowhere; a live lookup answered so falls back.
func TestMalformedJSONAppliesNothing(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		w.change()
		w.proxy.Garbage(1)
		w.failedSync(context.Background())
		w.proxy.Garbage(1)
		res := w.route.Route(context.Background(), w.reg.Lookup("acme"), []byte("380631234567"), time.Now())
		if res.Target != "" || res.Reason != lookup.ReasonNoMatch {
			t.Errorf("live lookup answered with garbage: %+v, want on_miss: no forward", res)
		}
		w.proxy.Garbage(0)
		w.recovered()
	})
}

// TestTokenRevokedMidSync: the CRM revokes the token while a cycle is
// under way. The cycle stops at the next page with the integration broken
// and the CRM's words recorded; what was read before stays indexed; no
// further cycle asks the CRM anything; after the admin reconnects, syncing
// resumes and completes.
func TestTokenRevokedMidSync(t *testing.T) {
	eachCRM(t, func(t *testing.T, w *faultWorld) {
		// A fresh account state: enough kinds that a full cycle takes
		// several pages.
		w.fake.Put(crm.Entity{Kind: w.fake.LeadKind(), ID: "2001", Name: "Deal 2001", Phones: []string{"+380 50 000 20 01"}, OwnerID: "502", Open: true})
		w.fake.Put(contact("1002", "+380 50 000 10 02", "502"))
		integ := admin.IntegrationInput{CRM: w.crm, BaseURL: w.proxy.URL(), Credentials: admin.SecretJSON(w.fake.Creds())}
		if _, err := admin.New(w.st, w.reg, w.cache, admin.WithCRMs(w.engine.Conns), admin.WithCRMAllowPrivate(true)).
			PutIntegration(context.Background(), "test", "acme", integ); err != nil {
			t.Fatal(err)
		}
		// The full sync runs page by page (as a cycle cut short by its page
		// bound) until a page with records is in: the sync is under way.
		var first crmsync.Result
		for range 10 {
			res, err := w.engine.Syncer.Sync(context.Background(), "acme", 1)
			if err != nil {
				t.Fatal(err)
			}
			if first = res; res.Applied > 0 || res.Done {
				break
			}
		}
		if first.Applied == 0 || first.Done {
			t.Fatalf("no page of records before the end of the full sync: %+v", first)
		}
		w.fake.Revoke()
		r, err := w.engine.Syncer.Sync(context.Background(), "acme", 0)
		if !crm.IsAuth(err) || r.Done {
			t.Fatalf("sync with the token revoked mid-sync: %+v, %v; want an auth error", r, err)
		}
		var ae *crm.AuthError
		errors.As(err, &ae)
		in := w.integration()
		if in.State != store.IntegrationBroken || in.LastError != ae.Message || in.LastError == "" {
			t.Fatalf("integration after the revocation: %q %q, want broken with the CRM's %q", in.State, in.LastError, ae.Message)
		}
		if got := w.target("380671112233"); got != "sip_anna" {
			t.Errorf("routing after the revocation: %q, want sip_anna from the index", got)
		}
		asked := w.proxy.Requests()
		if res, err := w.engine.Syncer.Sync(context.Background(), "acme", 0); err != nil || res.Pages != 0 || w.proxy.Requests() != asked {
			t.Fatalf("sync of the broken integration: %+v, %v, %d requests; want nothing asked", res, err, w.proxy.Requests()-asked)
		}

		w.fake.Reauthorize()
		integ = admin.IntegrationInput{CRM: w.crm, BaseURL: w.proxy.URL(), Credentials: admin.SecretJSON(w.fake.Creds())}
		if _, err := admin.New(w.st, w.reg, w.cache, admin.WithCRMs(w.engine.Conns), admin.WithCRMAllowPrivate(true)).
			PutIntegration(context.Background(), "test", "acme", integ); err != nil {
			t.Fatal(err)
		}
		w.sync()
		for caller, want := range map[string]string{"380671112233": "sip_anna", "380500002001": "sip_boris", "380500001002": "sip_boris"} {
			if got := w.target(caller); got != want {
				t.Errorf("after reconnecting: %s → %q, want %q", caller, got, want)
			}
		}
	})
}

// TestWebhookIsNotHeldBehindASync: a webhook arriving while a sync waits
// on a slow CRM is applied at once, and the sync page read before the
// change, written after it, does not undo it.
func TestWebhookIsNotHeldBehindASync(t *testing.T) {
	for _, b := range storetest.Backends() {
		for _, f := range crmfakes.All() {
			t.Run(b.Name+"/"+f.CRM, func(t *testing.T) {
				t.Parallel()
				fake := f.New(t)
				// One word, which every CRM's answer carries whole.
				held1001 := func(owner string) crm.Entity {
					e := contact("1001", "067 111 22 33", owner)
					e.Name = "Heldclient1001"
					return e
				}
				fake.Put(held1001("501"))
				fake.Put(contact("1002", "+380 50 444 55 66", "502"))
				proxy := crmtest.NewProxy(t, fake.URL(), rateLimit[f.CRM]*rateScale)
				w := newWorldAt(t, b.Open(t), f.CRM, fake, proxy.URL(), nil)

				// The page holding 1001 as Anna's is read, then held back: the
				// sync is under way, waiting on its CRM.
				held := proxy.HoldAnswerWhere(func(r *http.Request, body []byte) bool {
					// A page, not retailCRM's history feed read before it.
					return bytes.Contains(body, []byte("Heldclient1001")) && !strings.Contains(r.URL.Path, "history")
				})
				synced := make(chan error, 1)
				go func() {
					_, err := w.engine.Syncer.Sync(context.Background(), "acme", 0)
					synced <- err
				}()
				waitHeld(t, held)
				defer held.Release()

				// Meanwhile 1001 goes to Olga and the CRM says so.
				w.clock.Advance(1100 * time.Millisecond) // a newer update time, in whole seconds
				fake.Put(held1001("503"))
				ct, body, ok := fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "1001"})
				if !ok {
					t.Skipf("%s sends no usable notification for a contact", f.CRM)
				}
				applied := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					applied <- w.engine.Live.Webhook(ctx, "acme", ct, body)
				}()
				select {
				case err := <-applied:
					if err != nil {
						t.Fatalf("webhook during a sync: %v", err)
					}
				case <-time.After(15 * time.Second):
					t.Fatal("the webhook waited for the sync")
				}
				select {
				case err := <-synced:
					t.Fatalf("the sync ended (%v) before the webhook was answered: the webhook waited for it", err)
				default:
				}
				if got := w.target("380671112233"); got != "sip_olga" {
					t.Fatalf("after the webhook: %q, want sip_olga", got)
				}

				held.Release()
				if err := <-synced; err != nil {
					t.Fatalf("sync: %v", err)
				}
				if got := w.target("380671112233"); got != "sip_olga" {
					t.Errorf("the page read before the webhook undid it: %q, want sip_olga", got)
				}
				if got := w.target("380504445566"); got != "sip_boris" {
					t.Errorf("the rest of the held page: %q, want sip_boris", got)
				}
			})
		}
	}
}

func waitHeld(t *testing.T, h *crmtest.Held) {
	t.Helper()
	select {
	case <-h.Held():
	case <-time.After(20 * time.Second):
		t.Fatal("the CRM's answer never came to be held")
	}
}
