package httpapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// flakyEvents is the store's events side with a switch that makes it fail,
// as a database that is down.
type flakyEvents struct {
	store.Events
	down atomic.Bool
}

func (f *flakyEvents) InsertEvents(ctx context.Context, evs []domain.CallEvent, enqueue func(context.Context, any, []domain.CallEvent) error) ([]store.Inserted, error) {
	if f.down.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return f.Events.InsertEvents(ctx, evs, enqueue)
}

// recordingQueue records the partitions whose jobs were enqueued, and
// checks each came with the event's transaction.
type recordingQueue struct {
	mu    sync.Mutex
	parts []store.Partition
}

func (q *recordingQueue) EnqueueTx(_ context.Context, tx any, parts []store.Partition) error {
	if tx == nil {
		return errors.New("no transaction")
	}
	q.mu.Lock()
	q.parts = append(q.parts, parts...)
	q.mu.Unlock()
	return nil
}

func (q *recordingQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.parts)
}

func (e *env) postEvent(secret, query, contentType, body string) answer {
	e.t.Helper()
	return e.do("POST", "/pbx/acme/events?key="+secret+"&"+query, contentType, body, nil)
}

func TestEventsEndpointStoresOnceAndAcknowledges(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	body := `{"uniqueid":"1700000000.1","caller":"380671234567","disposition":"ANSWERED","billsec":"12","employee_number":"sip_anna","utm_source":"google","custom_thing":"kept"}`
	a := e.postEvent(secret, "event=call_end", "application/json", body)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	id, _ := a.json(t)["id"].(string)
	if len(id) != 32 {
		t.Fatalf("answer %s: want {\"id\": 32 hex digits}", a.body)
	}
	ev, err := e.st.Event(context.Background(), "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != domain.EventCallEnd || ev.UniqueID != "1700000000.1" || ev.Partition != "380671234567" ||
		ev.Fields["custom_thing"] != "kept" || ev.State != domain.EventWaiting {
		t.Fatalf("stored event: %+v", ev)
	}
	if _, ok := ev.Fields["key"]; ok {
		t.Fatal("the webhook secret was stored with the event")
	}
	// The PBX's form encoding and the same call again: the same id, nothing
	// more stored or enqueued.
	again := e.postEvent(secret, "", "application/x-www-form-urlencoded",
		"event=after_call&uniqueid=1700000000.1&caller=380671234567")
	if again.status != 200 || again.json(t)["id"] != id {
		t.Fatalf("the same (uniqueid, kind) again: %d %s, want id %s", again.status, again.body, id)
	}
	if n := e.queued.count(); n != 1 {
		t.Fatalf("%d jobs enqueued, want 1", n)
	}
	// Another kind of the same call is another event.
	if a := e.postEvent(secret, "event=call_start&uniqueid=1700000000.1&caller=380671234567", "", ""); a.status != 200 || a.json(t)["id"] == id {
		t.Fatalf("call_start of the same call: %d %s", a.status, a.body)
	}
	st, _ := e.st.EventStats(context.Background(), "acme")
	if st.Waiting != 2 {
		t.Fatalf("stats %+v, want 2 waiting", st)
	}
}

func TestEventsEndpointRejectsAndKeepsBadBodies(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	for _, tc := range []struct{ query, ct, body, want string }{
		{"event=call_end", "application/json", `{"uniqueid":"1",`, "body: invalid JSON"},
		{"", "application/json", `{"uniqueid":"1"}`, "event: missing"},
		{"event=teleport", "application/json", `{"uniqueid":"1"}`, `event: unknown kind`},
		{"event=call_end", "application/json", `{"caller":"380671234567"}`, "uniqueid: missing"},
	} {
		a := e.postEvent(secret, tc.query, tc.ct, tc.body)
		if a.status != 400 || !strings.Contains(a.body, tc.want) {
			t.Errorf("%s %s: %d %s, want 400 naming %q", tc.query, tc.body, a.status, a.body, tc.want)
		}
	}
	rej := e.mustAdmin(200, "GET", "tenants/acme/events/rejected", "")
	if !strings.Contains(rej.body, `{\"uniqueid\":\"1\",`) || !strings.Contains(rej.body, "event: unknown kind") {
		t.Fatalf("rejected bodies are kept with their reasons: %s", rej.body)
	}
	if st, _ := e.st.EventStats(context.Background(), "acme"); st.Rejected != 4 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEventsEndpointGuards(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	ok := "event=call_end&uniqueid=9&caller=380671234567"
	if a := e.do("POST", "/pbx/acme/events?"+ok, "", "", nil); a.status != 401 {
		t.Errorf("no key: %d", a.status)
	}
	if a := e.do("POST", "/pbx/acme/events?key=wrong&"+ok, "", "", nil); a.status != 401 {
		t.Errorf("wrong key: %d", a.status)
	}
	if a := e.do("POST", "/pbx/nobody/events?key="+secret+"&"+ok, "", "", nil); a.status != 404 {
		t.Errorf("unknown tenant: %d", a.status)
	}
	if a := e.do("DELETE", "/pbx/acme/events?key="+secret+"&"+ok, "", "", nil); a.status != 405 {
		t.Errorf("DELETE: %d", a.status)
	}
	if a := e.postEvent(secret, "event=call_end", "application/json", `{"uniqueid":"1","x":"`+strings.Repeat("a", maxEventBody)+`"}`); a.status != 413 {
		t.Errorf("a body over 64 KiB: %d", a.status)
	}
	if a := e.do("POST", "/pbx/acme/events", "", "", map[string]string{"X-Router-Key": secret}); a.status != 400 {
		t.Errorf("key in the header, no event: %d, want 400", a.status)
	}

	// A store that cannot take the event: 503, never 200, nothing queued.
	e.events.down.Store(true)
	a := e.postEvent(secret, ok, "", "")
	if a.status != 503 || strings.Contains(a.body, `"id"`) {
		t.Fatalf("store down: %d %s, want 503 without an id", a.status, a.body)
	}
	e.events.down.Store(false)
	if a := e.postEvent(secret, ok, "", ""); a.status != 200 {
		t.Fatalf("store back: %d %s", a.status, a.body)
	}
	if n := e.queued.count(); n != 1 {
		t.Fatalf("%d jobs enqueued, want 1", n)
	}
}

// recordingObserver records the events the endpoint reports as stored.
type recordingObserver struct {
	mu    sync.Mutex
	heard []string
}

func (o *recordingObserver) Observe(tenantID, _ string, kind domain.EventKind, fields map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.heard = append(o.heard, tenantID+" "+string(kind)+" "+fields["employee_number"])
}

func (o *recordingObserver) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.heard...)
}

// TestEventsObserved: a stored event reaches the observer (Ringostat
// presence between polls); a refused one does not.
func TestEventsObserved(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	if a := e.postEvent(secret, "event=call_answered", "application/json", `{"uniqueid":"u1","employee_number":"sip_anna"}`); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if a := e.postEvent(secret, "event=nonsense", "application/json", `{"uniqueid":"u2","employee_number":"sip_boris"}`); a.status != 400 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := e.heard.list(); len(got) != 1 || got[0] != "acme call_answered sip_anna" {
		t.Fatalf("observed %q", got)
	}
}

// A webhook secret inside a refused body (a `key` field, or the query's
// key repeated anywhere) is not kept in the stored rejected body.
func TestRejectedBodiesLoseTheWebhookKey(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	for _, tc := range []struct{ ct, body string }{
		{"application/json", `{"key":"` + secret + `","uniqueid":"1",`},
		{"application/json", `{"KEY" : "other-secret-value","note":"` + secret + `"}`},
		{"application/x-www-form-urlencoded", `event=teleport&key=form-secret-value&uniqueid=2`},
	} {
		if a := e.postEvent(secret, "", tc.ct, tc.body); a.status != 400 {
			t.Fatalf("%s: %d %s, want 400", tc.body, a.status, a.body)
		}
	}
	rej := e.mustAdmin(200, "GET", "tenants/acme/events/rejected", "").body
	for _, leak := range []string{secret, "other-secret-value", "form-secret-value"} {
		if strings.Contains(rej, leak) {
			t.Errorf("stored rejected bodies carry %q: %s", leak, rej)
		}
	}
	if strings.Count(rej, "[redacted]") < 4 || !strings.Contains(rej, "uniqueid=2") {
		t.Errorf("rejected bodies lost more than the key: %s", rej)
	}
}
