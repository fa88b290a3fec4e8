package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- call events ---

func callEvent(tenant, uniqueID string, kind domain.EventKind, partition string) domain.CallEvent {
	return domain.CallEvent{TenantID: tenant, UniqueID: uniqueID, Kind: kind, Partition: partition,
		Fields: map[string]string{"uniqueid": uniqueID, "caller": partition, "odd": "\x00ü\"'"}}
}

// insertOne stores one event through InsertEvents.
func (e *env) insertOne(ev domain.CallEvent, enqueue func(ctx context.Context, tx any) error) (string, bool, error) {
	var enq func(context.Context, any, []domain.CallEvent) error
	if enqueue != nil {
		enq = func(ctx context.Context, tx any, _ []domain.CallEvent) error { return enqueue(ctx, tx) }
	}
	got, err := e.s.InsertEvents(e.ctx, []domain.CallEvent{ev}, enq)
	if err != nil {
		return "", false, err
	}
	if len(got) != 1 {
		return "", false, fmt.Errorf("InsertEvents of one event returned %d results", len(got))
	}
	return got[0].ID, got[0].Created, nil
}

func (e *env) insert(t *testing.T, ev domain.CallEvent) (string, bool) {
	t.Helper()
	id, created, err := e.insertOne(ev, nil)
	if err != nil {
		t.Fatalf("InsertEvent(%s/%s): %v", ev.UniqueID, ev.Kind, err)
	}
	return id, created
}

func testEventInsertOnce(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	ev := callEvent("a", "call-1", domain.EventCallEnd, "380671234567")
	id, created := e.insert(t, ev)
	if !created || len(id) != 32 {
		t.Fatalf("first insert: id=%q created=%v, want a 32-digit id, created", id, created)
	}
	again, created := e.insert(t, ev)
	if created || again != id {
		t.Fatalf("same (tenant, uniqueid, kind) again: id=%q created=%v, want %q, not created", again, created, id)
	}
	other, created := e.insert(t, callEvent("a", "call-1", domain.EventCallStart, "380671234567"))
	if !created || other == id {
		t.Fatalf("another kind of the same call: id=%q created=%v, want a new event", other, created)
	}
	if _, created := e.insert(t, callEvent("b", "call-1", domain.EventCallEnd, "380671234567")); !created {
		t.Fatal("the same call id at another tenant must be another event")
	}
	got, err := e.s.Event(e.ctx, "a", id)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s a call-1 call_end 380671234567 %v %s waiting 0", id, ev.Fields, stamp(start))
	if s := fmt.Sprintf("%s %s %s %s %s %v %s %s %d", got.ID, got.TenantID, got.UniqueID, got.Kind, got.Partition,
		got.Fields, got.ReceivedAt, got.State, got.Attempts); s != want {
		t.Fatalf("stored event\n got %s\nwant %s", s, want)
	}
	_, err = e.s.Event(e.ctx, "b", id)
	wantCode(t, err, domain.ENOTFOUND, "event of another tenant")
	_, _, err = e.insertOne(callEvent("nobody", "x", domain.EventCallEnd, "1"), nil)
	wantCode(t, err, domain.ENOTFOUND, "event of an unknown tenant")
}

func testEventEnqueueInTx(t *testing.T, e *env) {
	e.tenant(t, "a")
	calls := 0
	boom := errors.New("queue full")
	_, _, err := e.insertOne(callEvent("a", "c1", domain.EventCallEnd, "p"), func(_ context.Context, tx any) error {
		calls++
		if tx == nil {
			t.Error("enqueue got no transaction")
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("a failing enqueue must fail the insert, got %v", err)
	}
	if _, err := e.s.NextEvent(e.ctx, "a", "p"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("the event of a failed enqueue must not be stored, NextEvent = %v", err)
	}
	id, created, err := e.insertOne(callEvent("a", "c1", domain.EventCallEnd, "p"), func(context.Context, any) error {
		calls++
		return nil
	})
	if err != nil || !created {
		t.Fatalf("retry after a failed enqueue: created=%v err=%v", created, err)
	}
	if _, _, err := e.insertOne(callEvent("a", "c1", domain.EventCallEnd, "p"), func(context.Context, any) error {
		calls++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("enqueue called %d times, want 2 (not for the duplicate)", calls)
	}
	got, err := e.s.NextEvent(e.ctx, "a", "p")
	if err != nil || got.ID != id {
		t.Fatalf("NextEvent = %v, %v; want %s", got.ID, err, id)
	}
}

func testEventPartitionOrder(t *testing.T, e *env) {
	e.tenant(t, "a")
	var ids []string
	for i := range 5 {
		e.clock.Advance(-time.Second) // arrival order, not clock order, decides
		id, _ := e.insert(t, callEvent("a", fmt.Sprintf("c%d", i), domain.EventCallEnd, "p1"))
		ids = append(ids, id)
		e.insert(t, callEvent("a", fmt.Sprintf("d%d", i), domain.EventCallEnd, "p2"))
	}
	for i, want := range ids {
		got, err := e.s.NextEvent(e.ctx, "a", "p1")
		if err != nil || got.ID != want {
			t.Fatalf("NextEvent #%d = %s, %v; want %s", i, got.ID, err, want)
		}
		if err := e.s.FinishEvent(e.ctx, "a", got.ID, domain.EventDone, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.s.NextEvent(e.ctx, "a", "p1")
	wantCode(t, err, domain.ENOTFOUND, "NextEvent of a drained partition")
	if _, err := e.s.NextEvent(e.ctx, "a", "p2"); err != nil {
		t.Fatalf("the other partition still waits: %v", err)
	}
}

func testEventFinishAndAttempts(t *testing.T, e *env) {
	e.tenant(t, "a")
	id, _ := e.insert(t, callEvent("a", "c1", domain.EventCallEnd, "p"))
	for want := 1; want <= 3; want++ {
		n, err := e.s.NoteAttempt(e.ctx, "a", id, fmt.Sprintf("try %d", want), start.Add(time.Duration(want)*time.Hour))
		if err != nil || n != want {
			t.Fatalf("NoteAttempt = %d, %v; want %d", n, err, want)
		}
	}
	if got, _ := e.s.Event(e.ctx, "a", id); got.Note != "try 3" || !got.RetryAt.Equal(stamp(start.Add(3*time.Hour))) {
		t.Fatalf("after attempts: note %q retry at %s", got.Note, got.RetryAt)
	}
	e.clock.Advance(time.Minute)
	if err := e.s.FinishEvent(e.ctx, "a", id, domain.EventFailed, "CRM said no"); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.Event(e.ctx, "a", id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != domain.EventFailed || got.Note != "CRM said no" || got.Attempts != 3 ||
		!got.ProcessedAt.Equal(stamp(start.Add(time.Minute))) {
		t.Fatalf("finished event: state=%q note=%q attempts=%d processed=%s", got.State, got.Note, got.Attempts, got.ProcessedAt)
	}
	wantCode(t, e.s.FinishEvent(e.ctx, "a", id, domain.EventDone, ""), domain.ENOTFOUND, "finishing a finished event")
	_, err = e.s.NoteAttempt(e.ctx, "a", id, "x", start)
	wantCode(t, err, domain.ENOTFOUND, "an attempt on a finished event")
	st, err := e.s.EventStats(e.ctx, "a")
	if err != nil || st.Failed != 1 || st.Waiting != 0 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
}

func testEventWaitingPartitions(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	e.insert(t, callEvent("a", "c1", domain.EventCallEnd, "p1"))
	e.insert(t, callEvent("a", "c2", domain.EventCallEnd, "p1"))
	done, _ := e.insert(t, callEvent("a", "c3", domain.EventCallEnd, "p3"))
	if err := e.s.FinishEvent(e.ctx, "a", done, domain.EventDone, ""); err != nil {
		t.Fatal(err)
	}
	e.insert(t, callEvent("b", "c1", domain.EventCallEnd, "p1"))
	e.clock.Advance(time.Minute)
	e.insert(t, callEvent("a", "c4", domain.EventCallEnd, "p4")) // too recent
	far := start.Add(24 * time.Hour)
	parts, err := e.s.WaitingPartitions(e.ctx, "", start.Add(30*time.Second), far, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(parts); got != "[{a p1} {b p1}]" {
		t.Fatalf("WaitingPartitions = %s", got)
	}
	parts, err = e.s.WaitingPartitions(e.ctx, "a", start.Add(2*time.Minute), far, 10)
	if err != nil || fmt.Sprint(parts) != "[{a p1} {a p4}]" {
		t.Fatalf("WaitingPartitions(a) = %v, %v", parts, err)
	}
	parts, err = e.s.WaitingPartitions(e.ctx, "", start.Add(2*time.Minute), far, 1)
	if err != nil || len(parts) != 1 {
		t.Fatalf("limit 1: %v, %v", parts, err)
	}
	// A partition whose events all wait for a retry later is not due.
	p4, err := e.s.NextEvent(e.ctx, "a", "p4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.NoteAttempt(e.ctx, "a", p4.ID, "CRM down", start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	parts, err = e.s.WaitingPartitions(e.ctx, "a", start.Add(2*time.Minute), start.Add(30*time.Minute), 10)
	if err != nil || fmt.Sprint(parts) != "[{a p1}]" {
		t.Fatalf("with p4 waiting for a retry in an hour: %v, %v", parts, err)
	}
	parts, err = e.s.WaitingPartitions(e.ctx, "a", start.Add(2*time.Minute), start.Add(time.Hour), 10)
	if err != nil || fmt.Sprint(parts) != "[{a p1} {a p4}]" {
		t.Fatalf("once p4's retry is due: %v, %v", parts, err)
	}
}

func testEventDropWaiting(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	old, _ := e.insert(t, callEvent("a", "old", domain.EventCallEnd, "p"))
	e.insert(t, callEvent("b", "old", domain.EventCallEnd, "p"))
	e.clock.Advance(72 * time.Hour)
	recent, _ := e.insert(t, callEvent("a", "new", domain.EventCallEnd, "p"))
	n, err := e.s.DropWaiting(e.ctx, "a", start.Add(time.Hour), "too old to resend")
	if err != nil || n != 1 {
		t.Fatalf("DropWaiting = %d, %v; want 1", n, err)
	}
	got, _ := e.s.Event(e.ctx, "a", old)
	if got.State != domain.EventDropped || got.Note != "too old to resend" {
		t.Fatalf("old event: %q %q", got.State, got.Note)
	}
	if next, err := e.s.NextEvent(e.ctx, "a", "p"); err != nil || next.ID != recent {
		t.Fatalf("the recent event must still wait: %s %v", next.ID, err)
	}
	st, err := e.s.EventStats(e.ctx, "a")
	if err != nil || st.Dropped != 1 || st.Waiting != 1 || !st.OldestWaiting.Equal(stamp(start.Add(72*time.Hour))) {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	if st, _ := e.s.EventStats(e.ctx, "b"); st.Waiting != 1 || st.Dropped != 0 {
		t.Fatalf("another tenant's events must not be dropped: %+v", st)
	}
}

func testEventRejected(t *testing.T, e *env) {
	e.tenant(t, "a")
	for i, body := range [][]byte{[]byte(`{"broken`), allBytes(), {}} {
		e.clock.Advance(time.Second)
		if err := e.s.RejectEvent(e.ctx, domain.RejectedEvent{TenantID: "a", Reason: fmt.Sprintf("reason %d", i),
			ContentType: "application/json", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.s.ListRejected(e.ctx, "a", 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("ListRejected = %d rows, %v", len(got), err)
	}
	if got[0].Reason != "reason 2" || len(got[0].Body) != 0 || got[1].Reason != "reason 1" ||
		string(got[1].Body) != string(allBytes()) || !got[1].ReceivedAt.Equal(stamp(start.Add(2*time.Second))) {
		t.Fatalf("rejected rows, newest first: %+v", got)
	}
	st, err := e.s.EventStats(e.ctx, "a")
	if err != nil || st.Rejected != 3 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	wantCode(t, e.s.RejectEvent(e.ctx, domain.RejectedEvent{TenantID: "nobody", Reason: "x"}), domain.ENOTFOUND,
		"rejected body of an unknown tenant")
}

// testRejectedTrimAndExpire is the cap and the retention of rejected
// bodies: trimming keeps a tenant's newest, expiry drops the old ones, and
// neither touches another tenant's.
func testRejectedTrimAndExpire(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	for i := range 5 {
		e.clock.Advance(time.Hour)
		for _, id := range []string{"a", "b"} {
			if err := e.s.RejectEvent(e.ctx, domain.RejectedEvent{TenantID: id, Reason: fmt.Sprintf("r%d", i), Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	reasons := func(id string) string {
		t.Helper()
		got, err := e.s.ListRejected(e.ctx, id, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range got {
			out = append(out, r.Reason)
		}
		return strings.Join(out, ",")
	}
	if n, err := e.s.TrimRejected(e.ctx, "a", 10); err != nil || n != 0 {
		t.Fatalf("trim under the cap: %d, %v; want nothing deleted", n, err)
	}
	if n, err := e.s.TrimRejected(e.ctx, "a", 3); err != nil || n != 2 || reasons("a") != "r4,r3,r2" {
		t.Fatalf("trim to 3: %d deleted, %v, left %s; want the oldest 2 gone", n, err, reasons("a"))
	}
	// Bodies were received at start+1h … start+5h: expire those before 3h30.
	if n, err := e.s.ExpireRejected(e.ctx, "b", start.Add(3*time.Hour+30*time.Minute)); err != nil || n != 3 || reasons("b") != "r4,r3" {
		t.Fatalf("expire: %d deleted, %v, left %s; want the 3 older gone", n, err, reasons("b"))
	}
	if reasons("a") != "r4,r3,r2" {
		t.Fatalf("expiring b's bodies touched a's: %s", reasons("a"))
	}
	if n, err := e.s.TrimRejected(e.ctx, "a", 0); err != nil || n != 3 || reasons("a") != "" {
		t.Fatalf("trim to 0: %d, %v, left %s", n, err, reasons("a"))
	}
}

// testEventBatch is group commit: several events in one transaction,
// duplicates inside the batch and against stored events found, the jobs
// enqueued for the stored ones only, in order, and a batch naming an
// unknown tenant storing nothing.
func testEventBatch(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	old, _ := e.insert(t, callEvent("a", "old", domain.EventCallEnd, "p1"))
	batch := []domain.CallEvent{
		callEvent("a", "n1", domain.EventCallEnd, "p1"),
		callEvent("a", "old", domain.EventCallEnd, "p1"),
		callEvent("b", "n1", domain.EventCallEnd, "p2"),
		callEvent("a", "n1", domain.EventCallEnd, "p1"),
		callEvent("a", "n2", domain.EventCallStart, "p3"),
	}
	var (
		calls  int
		stored []string
	)
	got, err := e.s.InsertEvents(e.ctx, batch, func(_ context.Context, tx any, evs []domain.CallEvent) error {
		calls++
		if tx == nil {
			t.Error("enqueue got no transaction")
		}
		for _, ev := range evs {
			if ev.ID == "" {
				t.Errorf("enqueued event %s has no id", ev.UniqueID)
			}
			stored = append(stored, ev.TenantID+"/"+ev.UniqueID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(batch) {
		t.Fatalf("%d results for %d events", len(got), len(batch))
	}
	created := fmt.Sprint(got[0].Created, got[1].Created, got[2].Created, got[3].Created, got[4].Created)
	if created != "true false true false true" {
		t.Fatalf("created flags %s, want true false true false true", created)
	}
	if got[1].ID != old || got[3].ID != got[0].ID || got[0].ID == got[2].ID || got[4].ID == got[0].ID {
		t.Fatalf("ids %+v: a duplicate must carry the first event's id (old %s)", got, old)
	}
	if calls != 1 || fmt.Sprint(stored) != "[a/n1 b/n1 a/n2]" {
		t.Fatalf("enqueue called %d times with %v, want once with [a/n1 b/n1 a/n2]", calls, stored)
	}
	for i, want := range []string{"a", "a", "b", "a", "a"} {
		ev, err := e.s.Event(e.ctx, want, got[i].ID)
		if err != nil || ev.UniqueID != batch[i].UniqueID || ev.State != "waiting" {
			t.Fatalf("event %d (%s): %+v, %v", i, got[i].ID, ev, err)
		}
	}
	next, err := e.s.NextEvent(e.ctx, "a", "p1")
	if err != nil || next.ID != old {
		t.Fatalf("NextEvent(p1) = %s, %v; want the older event %s first", next.ID, err, old)
	}

	_, err = e.s.InsertEvents(e.ctx, []domain.CallEvent{callEvent("a", "n9", domain.EventCallEnd, "p9"),
		callEvent("nobody", "n9", domain.EventCallEnd, "p9")}, nil)
	wantCode(t, err, domain.ENOTFOUND, "a batch with an event of an unknown tenant")
	if _, err := e.s.NextEvent(e.ctx, "a", "p9"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("a failed batch must store nothing, NextEvent(p9) = %v", err)
	}
	if res, err := e.s.InsertEvents(e.ctx, nil, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v, %v", res, err)
	}
}

func testEventConcurrentDuplicates(t *testing.T, e *env) {
	e.tenant(t, "a")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[string]int{}
		created int
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, c, err := e.insertOne(callEvent("a", "same", domain.EventCallEnd, "p"), func(context.Context, any) error { return nil })
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[id]++
			if c {
				created++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Fatalf("20 concurrent posts of one event: ids %v, %d created; want one id, one created", ids, created)
	}
}

func testWriteBeginFinish(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	begin := func(tenant, key string) (domain.CRMWrite, bool) {
		t.Helper()
		w, fresh, err := e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: tenant, Key: key, Kind: "lead"})
		if err != nil {
			t.Fatalf("BeginWrite(%s, %s): %v", tenant, key, err)
		}
		return w, fresh
	}
	if w, fresh := begin("a", "k1"); !fresh || w.EntityID != "" || w.Kind != "lead" || w.Key != "k1" || !w.CreatedAt.Equal(stamp(start)) {
		t.Fatalf("first BeginWrite = %+v fresh=%v", w, fresh)
	}
	e.clock.Advance(time.Second)
	if w, fresh := begin("a", "k1"); fresh || w.EntityID != "" || !w.CreatedAt.Equal(stamp(start)) {
		t.Fatalf("BeginWrite of an unfinished key must return the first record, not fresh: %+v fresh=%v", w, fresh)
	}
	if err := e.s.FinishWrite(e.ctx, "a", "k1", "lead:42"); err != nil {
		t.Fatal(err)
	}
	if w, fresh := begin("a", "k1"); fresh || w.EntityID != "lead:42" {
		t.Fatalf("BeginWrite of a finished key = %+v fresh=%v; want its entity", w, fresh)
	}
	if w, fresh := begin("b", "k1"); !fresh || w.EntityID != "" {
		t.Fatalf("keys are per tenant: %+v fresh=%v", w, fresh)
	}
	wantCode(t, e.s.FinishWrite(e.ctx, "a", "nope", "1"), domain.ENOTFOUND, "FinishWrite without BeginWrite")
	_, _, err := e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: "nobody", Key: "k", Kind: "lead"})
	wantCode(t, err, domain.ENOTFOUND, "BeginWrite of an unknown tenant")
}

func testEventLease(t *testing.T, e *env) {
	e.tenant(t, "a")
	lease := func(p, holder string) bool {
		t.Helper()
		ok, err := e.s.LeasePartition(e.ctx, "a", p, holder, 10*time.Second)
		if err != nil {
			t.Fatalf("LeasePartition(%s, %s): %v", p, holder, err)
		}
		return ok
	}
	if !lease("p", "h1") {
		t.Fatal("a free partition must be leased")
	}
	if lease("p", "h2") {
		t.Fatal("a held partition must not be leased by another holder")
	}
	if !lease("p", "h1") {
		t.Fatal("the holder renews its own lease")
	}
	if !lease("q", "h2") {
		t.Fatal("leases are per partition")
	}
	e.clock.Advance(9 * time.Second)
	if lease("p", "h2") {
		t.Fatal("the renewed lease has not run out")
	}
	e.clock.Advance(2 * time.Second)
	if !lease("p", "h2") {
		t.Fatal("an expired lease (a crashed holder) is taken over")
	}
	if err := e.s.ReleasePartition(e.ctx, "a", "p", "h1"); err != nil {
		t.Fatal(err)
	}
	if lease("p", "h1") {
		t.Fatal("releasing someone else's lease must leave it alone")
	}
	if err := e.s.ReleasePartition(e.ctx, "a", "p", "h2"); err != nil {
		t.Fatal(err)
	}
	if !lease("p", "h1") {
		t.Fatal("a released partition is free")
	}
	_, err := e.s.LeasePartition(e.ctx, "nobody", "p", "h", time.Second)
	wantCode(t, err, domain.ENOTFOUND, "lease of an unknown tenant")
}

func testEventList(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	ids := map[string]string{}
	for _, c := range []struct{ call, part string }{
		{"c1", "380671111111"}, {"c2", "380672222222"}, {"c3", "380671111111"}, {"c4", "380673333333"},
	} {
		e.clock.Advance(time.Second)
		id, _ := e.insert(t, callEvent("a", c.call, domain.EventCallEnd, c.part))
		ids[c.call] = id
	}
	e.insert(t, callEvent("b", "c1", domain.EventCallEnd, "380671111111"))
	if err := e.s.FinishEvent(e.ctx, "a", ids["c1"], domain.EventDone, "lead 7"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.FinishEvent(e.ctx, "a", ids["c2"], domain.EventFailed, "refused"); err != nil {
		t.Fatal(err)
	}
	list := func(f store.EventFilter) []string {
		t.Helper()
		evs, err := e.s.ListEvents(e.ctx, "a", f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			if ev.TenantID != "a" {
				t.Fatalf("ListEvents of a returned an event of %q", ev.TenantID)
			}
			out = append(out, ev.UniqueID)
		}
		return out
	}
	// Failed first, then waiting newest first, then the rest.
	if got := fmt.Sprint(list(store.EventFilter{})); got != "[c2 c4 c3 c1]" {
		t.Fatalf("all: %s, want [c2 c4 c3 c1]", got)
	}
	if got := fmt.Sprint(list(store.EventFilter{State: domain.EventWaiting})); got != "[c4 c3]" {
		t.Fatalf("waiting: %s", got)
	}
	if got := fmt.Sprint(list(store.EventFilter{Partition: "380671111111"})); got != "[c3 c1]" {
		t.Fatalf("one client: %s", got)
	}
	if got := fmt.Sprint(list(store.EventFilter{Limit: 2})); got != "[c2 c4]" {
		t.Fatalf("limit 2: %s", got)
	}
	c3, err := e.s.Event(e.ctx, "a", ids["c3"])
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(list(store.EventFilter{Before: c3.ReceivedAt})); got != "[c2 c1]" {
		t.Fatalf("before c3: %s", got)
	}
	if evs, err := e.s.ListEvents(e.ctx, "nobody", store.EventFilter{}); err != nil || len(evs) != 0 {
		t.Fatalf("unknown tenant: %v, %v", evs, err)
	}
}

// testEventHistory is bounded history: finished events are counted as they
// finish (EventStats reads no history) and deleted after their retention,
// oldest first and at most limit at a time, with the completed CRM writes
// of that age; waiting events and the in-flight writes stay, and another
// tenant's history is untouched.
func testEventHistory(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	// Two CRM writes made at the start: one completed, one whose answer
	// was lost.
	old := domain.CRMWrite{TenantID: "a", Key: "k-old", Kind: "lead"}
	if _, fresh, err := e.s.BeginWrite(e.ctx, old); err != nil || !fresh {
		t.Fatalf("BeginWrite: %v, %v", fresh, err)
	}
	if err := e.s.FinishWrite(e.ctx, "a", "k-old", "L1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: "a", Key: "k-lost", Kind: "lead"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 6 {
		e.clock.Advance(time.Hour)
		id, _ := e.insert(t, callEvent("a", fmt.Sprintf("h%d", i), domain.EventCallEnd, fmt.Sprintf("p%d", i)))
		ids = append(ids, id)
	}
	e.clock.Advance(time.Hour)
	bID, _ := e.insert(t, callEvent("b", "hb", domain.EventCallEnd, "pb"))
	for i, state := range []string{domain.EventDone, domain.EventDone, domain.EventFailed, "", domain.EventDropped} {
		if state == "" {
			continue
		}
		if err := e.s.FinishEvent(e.ctx, "a", ids[i], state, "finished"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.FinishEvent(e.ctx, "b", bID, domain.EventDone, ""); err != nil {
		t.Fatal(err)
	}
	stats := func(id string) domain.EventStats {
		t.Helper()
		st, err := e.s.EventStats(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st.OldestWaiting = st.OldestWaiting.UTC()
		return st
	}
	// Events arrived at start+1h … start+6h; h3 and h5 still wait.
	want := domain.EventStats{Waiting: 2, Done: 2, Failed: 1, Dropped: 1, OldestWaiting: start.Add(4 * time.Hour).Truncate(time.Microsecond).UTC()}
	if got := stats("a"); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}

	// Retention up to start+5h30: h0 h1 h2 (finished) and h4 (dropped) are
	// older; h3 waits and stays. Two at a time, oldest first.
	cut := start.Add(5*time.Hour + 30*time.Minute)
	if n, err := e.s.ExpireEvents(e.ctx, "a", cut, 2); err != nil || n != 2 {
		t.Fatalf("first batch: %d, %v; want 2", n, err)
	}
	if _, err := e.s.Event(e.ctx, "a", ids[0]); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("the oldest finished event after expiry: %v, want ENOTFOUND", err)
	}
	if _, err := e.s.Event(e.ctx, "a", ids[2]); err != nil {
		t.Fatalf("the third finished event went in the first batch of two: %v", err)
	}
	if n, err := e.s.ExpireEvents(e.ctx, "a", cut, 100); err != nil || n != 2 {
		t.Fatalf("second batch: %d, %v; want 2", n, err)
	}
	if n, err := e.s.ExpireEvents(e.ctx, "a", cut, 100); err != nil || n != 0 {
		t.Fatalf("third batch: %d, %v; want nothing left", n, err)
	}
	want = domain.EventStats{Waiting: 2, OldestWaiting: start.Add(4 * time.Hour).Truncate(time.Microsecond).UTC()}
	if got := stats("a"); got != want {
		t.Fatalf("stats after expiry = %+v, want %+v", got, want)
	}
	for _, i := range []int{3, 5} {
		if ev, err := e.s.Event(e.ctx, "a", ids[i]); err != nil || ev.State != domain.EventWaiting {
			t.Fatalf("waiting event h%d after expiry: %+v, %v", i, ev, err)
		}
	}
	if got := stats("b"); got.Done != 1 {
		t.Fatalf("tenant b after a's expiry: %+v", got)
	}
	if _, fresh, err := e.s.BeginWrite(e.ctx, old); err != nil || !fresh {
		t.Fatalf("a completed write older than the retention is kept: fresh=%v, %v", fresh, err)
	}
	if _, fresh, err := e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: "a", Key: "k-lost", Kind: "lead"}); err != nil || fresh {
		t.Fatalf("a write whose answer was lost was expired: fresh=%v, %v", fresh, err)
	}
}

// ListEvents with MarketingID finds the tenant's events whose fields carry
// that client_id, and no other: not a longer id it is a prefix of, not one
// its LIKE wildcards ("%", "_") would match, not another tenant's.
func testEventListByMarketingID(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	for _, ev := range []struct{ tenant, call, part, client string }{
		{"a", "m1", "380671111111", "GA1.2.3"},
		{"a", "m2", "email:x@example.com", "GA1.2.3"},
		{"a", "m3", "380672222222", "GA1.2.30"},
		{"a", "m4", "380673333333", "a_b%c"},
		{"a", "m5", "380674444444", "aXbYYc"},
		{"a", "m6", "380675555555", ""},
		{"b", "m1", "380671111111", "GA1.2.3"},
	} {
		in := callEvent(ev.tenant, ev.call, domain.EventCallEnd, ev.part)
		if ev.client != "" {
			in.Fields["client_id"] = ev.client
		}
		e.insert(t, in)
	}
	for id, want := range map[string][]string{"GA1.2.3": {"m1", "m2"}, "a_b%c": {"m4"}, "a_b": nil, "nobody": nil} {
		evs, err := e.s.ListEvents(e.ctx, "a", store.EventFilter{MarketingID: id})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			if ev.TenantID != "a" {
				t.Fatalf("ListEvents of a returned an event of %q", ev.TenantID)
			}
			got = append(got, ev.UniqueID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("events with client_id %q: %v, want %v", id, got, want)
		}
	}
}
