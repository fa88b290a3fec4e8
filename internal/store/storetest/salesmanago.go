package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- SALESmanago connections and links ---

func fmtSM(c store.SMConn) string {
	return fmt.Sprintf("%q url=%q client=%q owner=%q secrets=%s state=%q error=%q error_at=%s full=%t sm=%s zoho=%s "+
		"slot=%s run=%q/%s/%q counts=%d/%d/%d/%d updated=%s",
		c.TenantID, c.BaseURL, c.ClientID, c.OwnerEmail, fmtBytes(c.Secrets), c.State, c.LastError, fmtTime(c.ErrorAt),
		c.FullDone, fmtTime(c.SMCursor), fmtTime(c.ZohoCursor), fmtTime(c.LastSlot), c.RunKind, fmtTime(c.RunAt), c.RunError,
		c.ToZoho, c.ToSM, c.Conflicts, c.Skipped, fmtTime(c.UpdatedAt))
}

func fmtSMLink(l store.SMLink) string {
	return fmt.Sprintf("%q/%q sm=%q zoho=%s/%q seen=%q|%q updated=%s", l.TenantID, l.Email, l.SMID, l.ZohoModule, l.ZohoID,
		l.SMSeen, l.ZohoSeen, fmtTime(l.UpdatedAt))
}

func (e *env) sm(t *testing.T, what string, want store.SMConn) {
	t.Helper()
	got, err := e.s.SMConn(e.ctx, want.TenantID)
	if err != nil {
		t.Fatalf("%s: SMConn(%q): %v", what, want.TenantID, err)
	}
	same(t, what, fmtSM, []store.SMConn{got}, []store.SMConn{want})
}

func (e *env) putSM(t *testing.T, id string) {
	t.Helper()
	if err := e.s.PutSM(e.ctx, store.SMConn{TenantID: id, BaseURL: "https://app3.salesmanago.pl", ClientID: "c",
		OwnerEmail: "boss@example.com", Secrets: []byte{1}}); err != nil {
		t.Fatal(err)
	}
}

func testSMPutGet(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	in := store.SMConn{TenantID: "a", BaseURL: "https://app3.salesmanago.pl", ClientID: "client1", OwnerEmail: "boss@example.com",
		Secrets: allBytes(), State: "ignored", LastError: "ignored", ToZoho: 9, FullDone: true}
	if err := e.s.PutSM(e.ctx, in); err != nil {
		t.Fatal(err)
	}
	want := store.SMConn{TenantID: "a", BaseURL: in.BaseURL, ClientID: "client1", OwnerEmail: "boss@example.com",
		Secrets: allBytes(), State: store.SMActive, UpdatedAt: stamp(start)}
	e.sm(t, "after put", want)

	// Progress, an error, then a replacement: everything but the new
	// configuration starts over.
	e.clock.Advance(time.Minute)
	now := stamp(start.Add(time.Minute))
	if err := e.s.SetSMState(e.ctx, "a", store.SMBroken, "Not authenticated"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveSMProgress(e.ctx, "a", store.SMProgress{SMCursor: start, ZohoCursor: start.Add(time.Second), FullDone: true,
		Slot: start.Add(-time.Hour), Kind: "full", Error: "", ToZoho: 3, ToSM: 4, Conflicts: 1, Skipped: 2}); err != nil {
		t.Fatal(err)
	}
	want.State, want.LastError, want.ErrorAt, want.UpdatedAt = store.SMBroken, "Not authenticated", now, now
	want.SMCursor, want.ZohoCursor, want.FullDone, want.LastSlot = stamp(start), stamp(start.Add(time.Second)), true, stamp(start.Add(-time.Hour))
	want.RunKind, want.RunAt, want.ToZoho, want.ToSM, want.Conflicts, want.Skipped = "full", now, 3, 4, 1, 2
	e.sm(t, "after progress", want)

	e.clock.Advance(time.Minute)
	in2 := store.SMConn{TenantID: "a", BaseURL: "https://www.salesmanago.com", ClientID: "client2", OwnerEmail: "x@example.com", Secrets: []byte{1}}
	if err := e.s.PutSM(e.ctx, in2); err != nil {
		t.Fatal(err)
	}
	e.sm(t, "after replace", store.SMConn{TenantID: "a", BaseURL: in2.BaseURL, ClientID: "client2", OwnerEmail: "x@example.com",
		Secrets: []byte{1}, State: store.SMActive, UpdatedAt: stamp(start.Add(2 * time.Minute))})

	e.putSM(t, "b")
	list, err := e.s.ListSM(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].TenantID != "a" || list[1].TenantID != "b" {
		t.Fatalf("ListSM: got %d connections, want a and b in order", len(list))
	}
	if err := e.s.DeleteSM(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.SMConn(e.ctx, "a")
	wantCode(t, err, domain.ENOTFOUND, "SMConn after delete")
	wantCode(t, e.s.DeleteSM(e.ctx, "a"), domain.ENOTFOUND, "DeleteSM twice")
}

func testSMNotFound(t *testing.T, e *env) {
	e.tenant(t, "a")
	wantCode(t, e.s.PutSM(e.ctx, store.SMConn{TenantID: "nope", BaseURL: "u", ClientID: "c", OwnerEmail: "o", Secrets: []byte{1}}),
		domain.ENOTFOUND, "PutSM of an unknown tenant")
	_, err := e.s.SMConn(e.ctx, "a")
	wantCode(t, err, domain.ENOTFOUND, "SMConn without a connection")
	wantCode(t, e.s.SetSMState(e.ctx, "a", store.SMBroken, "x"), domain.ENOTFOUND, "SetSMState")
	wantCode(t, e.s.SaveSMProgress(e.ctx, "a", store.SMProgress{ToSM: 1}), domain.ENOTFOUND, "SaveSMProgress")
	_, err = e.s.LeaseSM(e.ctx, "a", "h", time.Second)
	wantCode(t, err, domain.ENOTFOUND, "LeaseSM")
	wantCode(t, e.s.PutSMLinks(e.ctx, "a", []store.SMLink{{Email: "x@example.com"}}), domain.ENOTFOUND, "PutSMLinks without a connection")
}

func testSMProgress(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.putSM(t, "a")
	steps := []store.SMProgress{
		{SMCursor: start, ToSM: 100},
		{ZohoCursor: start.Add(time.Hour), FullDone: true, ToZoho: 50, Kind: "full"},
		{ToZoho: 3, Kind: "incremental", Error: "zoho: 503"},
		{Conflicts: 2}, // a step without a kind keeps the last pass's error
	}
	for _, p := range steps {
		if err := e.s.SaveSMProgress(e.ctx, "a", p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.s.SMConn(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !got.SMCursor.Equal(stamp(start)) || !got.ZohoCursor.Equal(stamp(start.Add(time.Hour))) || !got.FullDone ||
		got.ToSM != 100 || got.ToZoho != 53 || got.Conflicts != 2 || got.RunKind != "incremental" || got.RunError != "zoho: 503" {
		t.Fatalf("after steps: %s", fmtSM(got))
	}
	if err := e.s.SaveSMProgress(e.ctx, "a", store.SMProgress{Kind: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.s.SMConn(e.ctx, "a"); got.RunError != "" || !got.FullDone || got.RunKind != "scheduled" {
		t.Fatalf("a successful pass clears the error and keeps FullDone: %s", fmtSM(got))
	}
}

func testSMLease(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.putSM(t, "a")
	lease := func(holder string) bool {
		t.Helper()
		ok, err := e.s.LeaseSM(e.ctx, "a", holder, 10*time.Second)
		if err != nil {
			t.Fatalf("LeaseSM(%s): %v", holder, err)
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
	// A holder done with its pass lets the next one start at once: its
	// last progress write releases its lease with it. A release by a
	// former holder leaves the current holder's lease where it is.
	if err := e.s.SaveSMProgress(e.ctx, "a", store.SMProgress{Kind: "incremental", Release: "h1"}); err != nil {
		t.Fatal(err)
	}
	if lease("h1") {
		t.Fatal("a release by a former holder freed the current holder's lease")
	}
	if err := e.s.SaveSMProgress(e.ctx, "a", store.SMProgress{Kind: "incremental", Release: "h2"}); err != nil {
		t.Fatal(err)
	}
	if !lease("h1") {
		t.Fatal("a released lease is still held")
	}
}

func testSMLinks(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	e.putSM(t, "a")
	e.putSM(t, "b")
	links := []store.SMLink{
		{Email: "zed@example.com", SMID: "s2", ZohoModule: "Leads", ZohoID: "z2", SMSeen: `{"name":"Zed"}`, ZohoSeen: `{"name":"Zed"}`},
		{Email: "ann@example.com", SMID: "s1", ZohoModule: "Contacts", ZohoID: "z1", SMSeen: `{"name":"Ann"}`, ZohoSeen: `{}`},
	}
	if err := e.s.PutSMLinks(e.ctx, "a", links); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PutSMLinks(e.ctx, "b", links[:1]); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.SMLinks(e.ctx, "a", []string{"zed@example.com", "ann@example.com", "nobody@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.SMLink{links[1], links[0]}
	for i := range want {
		want[i].TenantID, want[i].UpdatedAt = "a", stamp(start)
	}
	same(t, "links", fmtSMLink, got, want)

	// A replacement moves the link (a converted lead) and its fingerprints.
	e.clock.Advance(time.Minute)
	moved := store.SMLink{Email: "zed@example.com", SMID: "s2", ZohoModule: "Contacts", ZohoID: "z9", SMSeen: `{"s":1}`, ZohoSeen: `{"s":2}`}
	if err := e.s.PutSMLinks(e.ctx, "a", []store.SMLink{moved}); err != nil {
		t.Fatal(err)
	}
	got, err = e.s.SMLinks(e.ctx, "a", []string{"zed@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	moved.TenantID, moved.UpdatedAt = "a", stamp(start.Add(time.Minute))
	same(t, "moved link", fmtSMLink, got, []store.SMLink{moved})
	if n, err := e.s.CountSMLinks(e.ctx, "a"); err != nil || n != 2 {
		t.Fatalf("CountSMLinks = %d, %v", n, err)
	}
	wantCode(t, e.s.PutSMLinks(e.ctx, "a", []store.SMLink{{Email: ""}}), domain.EINVALID, "a link without an e-mail")
	wantCode(t, e.s.PutSMLinks(e.ctx, "a", []store.SMLink{{Email: "x@e.com"}, {Email: "x@e.com"}}), domain.EINVALID, "a link twice")

	// Disconnecting drops the tenant's links, not another's.
	if err := e.s.DeleteSM(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.s.CountSMLinks(e.ctx, "a"); err != nil || n != 0 {
		t.Fatalf("links after disconnect = %d, %v", n, err)
	}
	if n, err := e.s.CountSMLinks(e.ctx, "b"); err != nil || n != 1 {
		t.Fatalf("the other tenant's links = %d, %v", n, err)
	}
}
