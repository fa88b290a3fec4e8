package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- Ringostat connections ---

func fmtRingostat(c store.RingostatConn) string {
	return fmt.Sprintf("%q url=%q project=%q key=%s state=%q error=%q error_at=%s push=%q/%t/%d/%q/%s "+
		"reconciled=%s/%d/%q/%s updated=%s",
		c.TenantID, c.BaseURL, c.ProjectID, fmtBytes(c.AuthKey), c.State, c.LastError, fmtTime(c.ErrorAt),
		c.PushCursor, c.PushDone, c.Pushed, c.PushError, fmtTime(c.PushAt),
		fmtTime(c.ReconciledUntil), c.Recovered, c.ReconcileError, fmtTime(c.ReconcileAt), fmtTime(c.UpdatedAt))
}

func (e *env) ringostat(t *testing.T, what string, want store.RingostatConn) {
	t.Helper()
	got, err := e.s.RingostatConn(e.ctx, want.TenantID)
	if err != nil {
		t.Fatalf("%s: RingostatConn(%q): %v", what, want.TenantID, err)
	}
	same(t, what, fmtRingostat, []store.RingostatConn{got}, []store.RingostatConn{want})
}

func testRingostatPutGet(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	until := start.Add(-time.Hour)
	in := store.RingostatConn{TenantID: "a", BaseURL: "https://api.ringostat.net", ProjectID: "123",
		AuthKey: allBytes(), State: "ignored", LastError: "ignored", Pushed: 9, ReconciledUntil: until}
	if err := e.s.PutRingostat(e.ctx, in); err != nil {
		t.Fatal(err)
	}
	want := store.RingostatConn{TenantID: "a", BaseURL: in.BaseURL, ProjectID: "123", AuthKey: allBytes(),
		State: store.RingostatActive, ReconciledUntil: stamp(until), UpdatedAt: stamp(start)}
	e.ringostat(t, "after put", want)

	// Progress, an error, then a replacement: everything but the new
	// configuration starts over.
	e.clock.Advance(time.Minute)
	if err := e.s.SetRingostatState(e.ctx, "a", store.RingostatBroken, "401 Unauthorized: wrong key"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveRingostatPush(e.ctx, "a", store.RingostatPush{Cursor: "contact/C9", Pushed: 5}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveRingostatReconcile(e.ctx, "a", store.RingostatReconcile{Until: start, Recovered: 2}); err != nil {
		t.Fatal(err)
	}
	now := stamp(start.Add(time.Minute))
	want.State, want.LastError, want.ErrorAt, want.UpdatedAt = store.RingostatBroken, "401 Unauthorized: wrong key", now, now
	want.PushCursor, want.Pushed, want.PushAt = "contact/C9", 5, now
	want.ReconciledUntil, want.Recovered, want.ReconcileAt = stamp(start), 2, now
	e.ringostat(t, "after progress", want)

	e.clock.Advance(time.Minute)
	in2 := store.RingostatConn{TenantID: "a", BaseURL: "https://other.example", ProjectID: "456", AuthKey: []byte{1}}
	if err := e.s.PutRingostat(e.ctx, in2); err != nil {
		t.Fatal(err)
	}
	e.ringostat(t, "after replace", store.RingostatConn{TenantID: "a", BaseURL: in2.BaseURL, ProjectID: "456",
		AuthKey: []byte{1}, State: store.RingostatActive, UpdatedAt: stamp(start.Add(2 * time.Minute))})

	if err := e.s.PutRingostat(e.ctx, store.RingostatConn{TenantID: "b", BaseURL: "u", ProjectID: "1", AuthKey: []byte{2}}); err != nil {
		t.Fatal(err)
	}
	list, err := e.s.ListRingostat(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].TenantID != "a" || list[1].TenantID != "b" {
		t.Fatalf("ListRingostat: got %d connections, want a and b in order", len(list))
	}
	if err := e.s.DeleteRingostat(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.RingostatConn(e.ctx, "a")
	wantCode(t, err, domain.ENOTFOUND, "RingostatConn after delete")
	wantCode(t, e.s.DeleteRingostat(e.ctx, "a"), domain.ENOTFOUND, "DeleteRingostat twice")
}

func testRingostatNotFound(t *testing.T, e *env) {
	e.tenant(t, "a")
	wantCode(t, e.s.PutRingostat(e.ctx, store.RingostatConn{TenantID: "nope", BaseURL: "u", ProjectID: "1", AuthKey: []byte{1}}),
		domain.ENOTFOUND, "PutRingostat of an unknown tenant")
	_, err := e.s.RingostatConn(e.ctx, "a")
	wantCode(t, err, domain.ENOTFOUND, "RingostatConn without a connection")
	wantCode(t, e.s.SetRingostatState(e.ctx, "a", store.RingostatBroken, "x"), domain.ENOTFOUND, "SetRingostatState")
	wantCode(t, e.s.SaveRingostatPush(e.ctx, "a", store.RingostatPush{Pushed: 1}), domain.ENOTFOUND, "SaveRingostatPush")
	wantCode(t, e.s.SaveRingostatReconcile(e.ctx, "a", store.RingostatReconcile{Recovered: 1}), domain.ENOTFOUND, "SaveRingostatReconcile")
	_, err = e.s.LeaseRingostat(e.ctx, "a", "h", time.Second)
	wantCode(t, err, domain.ENOTFOUND, "LeaseRingostat")
}

func testRingostatProgress(t *testing.T, e *env) {
	e.tenant(t, "a")
	if err := e.s.PutRingostat(e.ctx, store.RingostatConn{TenantID: "a", BaseURL: "u", ProjectID: "1", AuthKey: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	steps := []store.RingostatPush{
		{Cursor: "contact/C1", Pushed: 100},
		{Cursor: "lead/L7", Done: true, Pushed: 50},
		{Keep: true, Pushed: 3, Error: "503 Service Unavailable"}, // a push of changes keeps the position
	}
	for _, p := range steps {
		if err := e.s.SaveRingostatPush(e.ctx, "a", p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.s.RingostatConn(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.PushCursor != "lead/L7" || !got.PushDone || got.Pushed != 153 || got.PushError != "503 Service Unavailable" {
		t.Fatalf("after pushes: cursor %q done %t pushed %d error %q", got.PushCursor, got.PushDone, got.Pushed, got.PushError)
	}
	if err := e.s.SaveRingostatPush(e.ctx, "a", store.RingostatPush{Keep: true}); err != nil {
		t.Fatal(err)
	}
	// A pass without an end keeps the window; a failure is recorded, a
	// success clears it.
	if err := e.s.SaveRingostatReconcile(e.ctx, "a", store.RingostatReconcile{Until: start, Recovered: 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveRingostatReconcile(e.ctx, "a", store.RingostatReconcile{Error: "timeout"}); err != nil {
		t.Fatal(err)
	}
	got, err = e.s.RingostatConn(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.PushError != "" || !got.ReconciledUntil.Equal(stamp(start)) || got.Recovered != 4 || got.ReconcileError != "timeout" {
		t.Fatalf("after passes: push error %q until %s recovered %d error %q", got.PushError, fmtTime(got.ReconciledUntil),
			got.Recovered, got.ReconcileError)
	}
}

func testRingostatLease(t *testing.T, e *env) {
	e.tenant(t, "a")
	if err := e.s.PutRingostat(e.ctx, store.RingostatConn{TenantID: "a", BaseURL: "u", ProjectID: "1", AuthKey: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	lease := func(holder string) bool {
		t.Helper()
		ok, err := e.s.LeaseRingostat(e.ctx, "a", holder, 10*time.Second)
		if err != nil {
			t.Fatalf("LeaseRingostat(%s): %v", holder, err)
		}
		return ok
	}
	if !lease("h1") || lease("h2") || !lease("h1") {
		t.Fatal("a lease goes to the first holder, is renewed by it and refused to another")
	}
	e.clock.Advance(11 * time.Second)
	if !lease("h2") || lease("h1") {
		t.Fatal("an expired lease is taken over, and then held against the old holder")
	}
}

func testRingostatIndexEntities(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	rows := []domain.IndexEntry{
		entry("a", domain.KindContact, "C1", "380501234567"),
		entry("a", domain.KindContact, "C1", "380671112233"),
		entry("a", domain.KindContact, "C2", "380931234567"),
		entry("a", domain.KindLead, "L1", "380501234567"),
		entry("a", domain.KindLead, "L2", "380441234567"),
		entry("b", domain.KindContact, "C1", "380501234567"),
	}
	for i := range rows {
		rows[i].UpdatedAt = start.Add(time.Duration(i) * time.Second)
	}
	e.upsert(t, rows...)
	key := func(r domain.IndexEntry) string {
		return fmt.Sprintf("%s/%s/%s/%s owner=%s name=%s open=%t suffix=%s", r.TenantID, r.Kind, r.EntityID, r.Phone,
			r.OwnerID, r.Name, r.Open, r.Suffix)
	}
	var got []domain.IndexEntry
	var pages int
	for after := (store.EntityRef{}); ; pages++ {
		page, err := e.s.IndexEntities(e.ctx, "a", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		last := page[len(page)-1]
		after = store.EntityRef{Kind: last.Kind, ID: last.EntityID}
	}
	if pages != 2 {
		t.Fatalf("4 entities in pages of 2 took %d pages", pages)
	}
	same(t, "IndexEntities pages", key, got, rows[:5])
	if !got[0].UpdatedAt.Equal(stamp(rows[0].UpdatedAt)) {
		t.Fatalf("IndexEntities UpdatedAt %s, want %s", fmtTime(got[0].UpdatedAt), fmtTime(stamp(rows[0].UpdatedAt)))
	}
	byRef, err := e.s.EntityIndex(e.ctx, "a", []store.EntityRef{ref(domain.KindLead, "L2"), ref(domain.KindContact, "C1"),
		ref(domain.KindContact, "C1"), ref(domain.KindContact, "gone")})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "EntityIndex", key, byRef, []domain.IndexEntry{rows[0], rows[1], rows[4]})
}

func testRingostatSetEventField(t *testing.T, e *env) {
	e.tenant(t, "a")
	got, err := e.s.InsertEvents(e.ctx, []domain.CallEvent{{TenantID: "a", UniqueID: "u1", Kind: domain.EventCallEnd,
		Partition: "p", Fields: map[string]string{"caller": "380501234567", "odd": "nul\x00and ünïcode"}}},
		func(context.Context, any, []domain.CallEvent) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetEventField(e.ctx, "a", got[0].ID, "auto_callback", "requested: sip_anna → 380501234567"); err != nil {
		t.Fatal(err)
	}
	ev, err := e.s.Event(e.ctx, "a", got[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Fields["auto_callback"] != "requested: sip_anna → 380501234567" || ev.Fields["caller"] != "380501234567" ||
		ev.Fields["odd"] != "nul\x00and ünïcode" || ev.State != domain.EventWaiting {
		t.Fatalf("after SetEventField: state %q fields %q", ev.State, ev.Fields)
	}
	// A claim sets a field only where it is absent.
	if ok, err := e.s.ClaimEventField(e.ctx, "a", got[0].ID, "auto_callback", "claimed"); err != nil || ok {
		t.Fatalf("ClaimEventField of a set field: %v %v, want false", ok, err)
	}
	if ok, err := e.s.ClaimEventField(e.ctx, "a", got[0].ID, "claim", "i1"); err != nil || !ok {
		t.Fatalf("ClaimEventField of an absent field: %v %v, want true", ok, err)
	}
	if ok, err := e.s.ClaimEventField(e.ctx, "a", got[0].ID, "claim", "i2"); err != nil || ok {
		t.Fatalf("a second ClaimEventField: %v %v, want false", ok, err)
	}
	if ev, err := e.s.Event(e.ctx, "a", got[0].ID); err != nil || ev.Fields["claim"] != "i1" || ev.Fields["auto_callback"] != "requested: sip_anna → 380501234567" {
		t.Fatalf("after the claims: %q %v", ev.Fields, err)
	}
	if _, err := e.s.ClaimEventField(e.ctx, "a", "nope", "k", "v"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("ClaimEventField of an unknown event: %v, want ENOTFOUND", err)
	}
	wantCode(t, e.s.SetEventField(e.ctx, "a", "nope", "k", "v"), domain.ENOTFOUND, "SetEventField of an unknown event")
	wantCode(t, e.s.SetEventField(e.ctx, "b", got[0].ID, "k", "v"), domain.ENOTFOUND, "SetEventField of another tenant's event")
}
