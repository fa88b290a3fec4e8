package uspacy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/uspacy"
	"github.com/callrouter/callrouter/internal/domain"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		creds string
		err   string // "" when valid
	}{
		{`{"client_id":"id","client_secret":"secret"}`, ""},
		{`{"refresh_token":"r"}`, ""},
		{`{"refresh_token":"r","access_token":"a"}`, ""},
		{`{"client_id":"id","client_secret":"secret","refresh_token":"r"}`, ""},
		{`{}`, "credentials.client_id: required"},
		{`{"client_id":"id"}`, "credentials.client_secret: required"},
		{`{"client_id":"id","client_secret":"  "}`, "credentials.client_secret: required"},
		{`{"client_secret":"secret"}`, "credentials.client_id: required"},
		{`{"access_token":"a"}`, "credentials.refresh_token: required"},
		{`{"clientId":"id"}`, "credentials.client_id: required"},
		{`[]`, "credentials: want a JSON object with client_id and client_secret, or refresh_token"},
		{`nope`, "credentials: want a JSON object with client_id and client_secret, or refresh_token"},
	} {
		err := uspacy.Check(json.RawMessage(tc.creds))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Check(%s) = %v, want nil", tc.creds, err)
		case tc.err != "" && (domain.ErrorCode(err) != domain.EINVALID || domain.ErrorMessage(err) != tc.err):
			t.Errorf("Check(%s) = %v, want EINVALID %q", tc.creds, err, tc.err)
		}
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	// App credentials: no access token yet, but something that makes
	// crm.OAuth ask the adapter, which then signs in.
	tok, ok := uspacy.Seed(json.RawMessage(`{"client_id":"id","client_secret":"secret"}`))
	if !ok || tok.Access != "" || tok.Refresh == "" {
		t.Errorf("Seed(app) = %+v, %v; want no access token and a sign-in marker", tok, ok)
	}

	// A token pair is stored as it is, with the expiry from the JWT.
	exp := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	access := jwt(t, map[string]any{"exp": exp.Unix(), "domain": "acme.uspacy.ua"})
	tok, ok = uspacy.Seed(json.RawMessage(fmt.Sprintf(`{"refresh_token":"r.r.r","access_token":%q,"client_id":"id","client_secret":"s"}`, access)))
	if !ok || tok.Access != access || tok.Refresh != "r.r.r" || !tok.Expiry.Equal(exp) {
		t.Errorf("Seed(pair) = %+v, %v; want the pair expiring %v", tok, ok, exp)
	}

	if _, ok := uspacy.Seed(json.RawMessage(`{}`)); ok {
		t.Error("Seed({}) ok, want refused")
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	good := json.RawMessage(`{"client_id":"id","client_secret":"secret"}`)
	store := crmtest.NewTokenStore(crm.Token{})
	for name, tc := range map[string]struct {
		cfg  crm.Config
		deps crm.Deps
	}{
		"bad credentials": {crm.Config{BaseURL: "https://acme.uspacy.ua", Creds: json.RawMessage(`{}`)}, crm.Deps{Tokens: store}},
		"plain http":      {crm.Config{BaseURL: "http://acme.uspacy.ua", Creds: good}, crm.Deps{Tokens: store}},
		"no token store":  {crm.Config{BaseURL: "https://acme.uspacy.ua", Creds: good}, crm.Deps{}},
	} {
		if _, err := uspacy.New(tc.cfg, tc.deps); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: New = %v, want EINVALID", name, err)
		}
	}
	if uspacy.Adapter.Name != "uspacy" {
		t.Errorf("Adapter.Name = %q", uspacy.Adapter.Name)
	}
}

func TestFullSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// 130 leads, 110 deals, 230 contacts, 20 companies: 2+2+3+1 pages.
	want := populate(e.fake, 130, 110, 230, 20)

	got, batches, cur := fullSync(t, e.src)
	if batches != 8 {
		t.Errorf("full sync took %d batches, want 8", batches)
	}
	if len(got) != len(want) {
		t.Errorf("full sync saw %d entities, want %d", len(got), len(want))
	}
	closed := 0
	for ref, w := range want {
		g, ok := got[ref]
		if !ok {
			t.Errorf("%v missing", ref)
			continue
		}
		if d := same(g, w); d != "" {
			t.Errorf("%v: %s", ref, d)
		}
		if !g.UpdatedAt.Equal(t0) {
			t.Errorf("%v: updated %v, want %v", ref, g.UpdatedAt, t0)
		}
		if !g.Open {
			closed++
		}
	}
	// Every fourth lead and deal is closed, SUCCESS or FAIL by id parity;
	// owners alternate between numbers and strings the same way.
	if closed != 130/4+110/4 {
		t.Errorf("%d closed entities, want %d", closed, 130/4+110/4)
	}
	if n := e.fake.Meter().Count(); n != 9 {
		t.Errorf("%d requests, want 8 pages and 1 sign-in", n)
	}

	// The cursor that ends a full sync starts changes, not another full sync.
	if _, err := e.src.Full(ctx(t), cur); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Full(changes cursor) = %v, want EINVALID", err)
	}
	for _, bad := range []string{"", "{", `{"v":2,"table":"leads","page":1}`, `{"v":1,"table":"tasks","page":1,"inc":true}`, `{"v":1,"table":"leads","page":1}`} {
		if _, err := e.src.Changes(ctx(t), bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Changes(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	populate(e.fake, 5, 5, 120, 5)
	// Syncs look back two minutes before they start; these are older.
	e.clock.Add(10 * time.Minute)
	_, _, cur := fullSync(t, e.src)

	e.clock.Add(30 * time.Minute)
	changed := map[crm.Ref]crm.Entity{}
	for _, c := range []crm.Entity{entity(domain.KindContact, 30005), entity(domain.KindLead, 10099), entity(domain.KindDeal, 20002), entity(domain.KindContact, 30120)} {
		switch c.Kind {
		case domain.KindContact:
			c.Phones = append(c.Phones, "+380 93 000 00 01")
		case domain.KindDeal:
			c.Open, c.OwnerID = false, "77"
		}
		e.fake.Put(c)
		changed[crm.Ref{Kind: c.Kind, ID: c.ID}] = c
	}
	e.clock.Add(5 * time.Minute)

	before := e.fake.Meter().Count()
	got, batches, cur := changesPass(t, e.src, cur)
	if len(got) != len(changed) {
		t.Errorf("changes saw %d entities, want %d: %v", len(got), len(changed), keys(got))
	}
	for ref, w := range changed {
		if d := same(got[ref], w); d != "" {
			t.Errorf("%v: %s", ref, d)
		}
	}
	// Sorted newest first, each table takes one page: the first older
	// record ends it; then each table's (empty) trash.
	if n := e.fake.Meter().Count() - before; n != 8 || batches != 8 {
		t.Errorf("changes pass took %d requests in %d batches, want 8 and 8", n, batches)
	}

	// The next pass starts where this one started (less the overlap), so
	// it sees nothing again.
	e.clock.Add(5 * time.Minute)
	if got, _, _ := changesPass(t, e.src, cur); len(got) != 0 {
		t.Errorf("second pass saw %v, want nothing", keys(got))
	}
}

func TestChangesWhenTheCRMIgnoresTheSortOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.fake.IgnoreSort(true)
	for i := 1; i <= 150; i++ { // oldest first, as the default id order returns them
		e.fake.Put(entity(domain.KindContact, 30000+i))
		e.clock.Add(time.Second)
	}
	e.clock.Add(10 * time.Minute)
	_, _, cur := fullSync(t, e.src)

	e.clock.Add(10 * time.Minute)
	e.fake.Put(entity(domain.KindContact, 30001)) // first page
	e.fake.Put(entity(domain.KindContact, 30150)) // last page, behind older records
	e.clock.Add(time.Minute)

	got, _, _ := changesPass(t, e.src, cur)
	if want := []string{"30001", "30150"}; !slices.Equal(keys(got), want) {
		t.Errorf("changes saw %v, want contacts %v", keys(got), want)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	contact, deal := entity(domain.KindContact, 30001), entity(domain.KindDeal, 20003)
	e.fake.Put(contact)
	e.fake.Put(deal)
	missing := crm.Ref{Kind: domain.KindLead, ID: "10404"}

	b, err := e.src.Get(ctx(t), []crm.Ref{{Kind: contact.Kind, ID: contact.ID}, missing, {Kind: deal.Kind, ID: deal.ID}})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(b.Entities) != 2 || same(b.Entities[0], contact) != "" || same(b.Entities[1], deal) != "" {
		t.Errorf("Get entities = %+v, want %+v and %+v (the deal's phones from its contact)", b.Entities, contact, deal)
	}
	if !slices.Equal(b.Deleted, []crm.Ref{missing}) {
		t.Errorf("Get deleted = %v, want %v", b.Deleted, missing)
	}

	for _, bad := range []crm.Ref{{Kind: "task", ID: "1"}, {Kind: domain.KindLead, ID: "../users"}, {Kind: domain.KindLead, ID: ""}} {
		if _, err := e.src.Get(ctx(t), []crm.Ref{bad}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Get(%v) = %v, want EINVALID", bad, err)
		}
	}
}

func TestFindByPhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "31", Name: "Formatted", Phones: []string{"+380 (50) 123-45-67"}, OwnerID: "10", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "12", Name: "Local", Phones: []string{"050 555 00 00", "0501234567"}, OwnerID: "11", Open: true})
	// The fake's search, like a text search, finds this one too: its digits
	// contain the nine searched for, but the number is another.
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "32", Name: "Decoy", Phones: []string{"+380 50 123 45 678"}, OwnerID: "12", Open: true})

	got, err := e.src.FindByPhone(ctx(t), "380501234567")
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	var ids []string
	for _, g := range got {
		ids = append(ids, string(g.Kind)+"/"+g.ID+"/"+g.OwnerID)
	}
	if want := []string{"lead/12/11", "contact/31/10"}; !slices.Equal(ids, want) {
		t.Errorf("FindByPhone = %v, want %v", ids, want)
	}

	got, err = e.src.FindByPhone(ctx(t), "380991112233")
	if err != nil || len(got) != 0 {
		t.Errorf("FindByPhone(miss) = %v, %v; want nothing", got, err)
	}
	if _, err := e.src.FindByPhone(ctx(t), "+"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FindByPhone(no digits) = %v, want EINVALID", err)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	want := []crm.User{
		{ID: "7", Name: "Olena Shevchenko", Email: "olena@example.com", Active: true},
		{ID: "8", Name: "Petro", Active: false},
	}
	e.fake.SetUsers(want)
	got, err := e.src.Users(ctx(t))
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Users = %+v, want %+v", got, want)
	}
}

func Test429IsRetriedAfterRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil { // signs in
		t.Fatalf("Users: %v", err)
	}
	e.fake.Inject429(2)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users after two 429s: %v", err)
	}
	if want := []time.Duration{2 * time.Second, 2 * time.Second}; !slices.Equal(e.sleep.Waits, want) {
		t.Errorf("waits %v, want %v", e.sleep.Waits, want)
	}
}

func TestHangingCRM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.fake.SetDelay(-1)
	c, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	if _, err := e.src.Users(c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Users against a hanging CRM = %v, want the context's deadline", err)
	}
	e.fake.SetDelay(0)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Errorf("Users once the CRM answers again: %v", err)
	}
}

func TestFullSyncKeepsTheRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	populate(e.fake, 1, 1, 1000, 1) // 13 pages and a sign-in

	start := time.Now()
	got, _, _ := fullSync(t, e.src)
	elapsed := time.Since(start)
	if len(got) != 1003 {
		t.Errorf("full sync saw %d entities, want 1003", len(got))
	}
	// The meter fails the test by itself if a second holds more than 5;
	// how close to 5 the client gets is the benchmark suite's figure.
	t.Logf("full sync: %d requests in %v, peak %d/s", e.fake.Meter().Count(), elapsed, e.fake.Meter().Peak())
}

func keys(m map[crm.Ref]crm.Entity) []string {
	var out []string
	for r := range m {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// Deleted records move to the trash listing and leave the normal one: a
// changes pass reports them deleted. The fake's trash carries deleted_at
// and sorts by it, so a trash page whose oldest deletion predates the
// pass ends that trash; deletions reported by an earlier pass are not
// reported again.
func TestChangesReadTheTrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	populate(e.fake, 5, 5, 150, 5)
	e.clock.Add(10 * time.Minute)
	_, _, cur := fullSync(t, e.src)

	// 120 contacts deleted long ago (a full trash page and more), then one
	// lead and one contact deleted after the full sync.
	for i := 1; i <= 120; i++ {
		e.fake.Delete(crm.Ref{Kind: domain.KindContact, ID: fmt.Sprint(30000 + i)})
	}
	e.clock.Add(10 * time.Minute) // past the overlap passes look back
	if old, _, next := changesPassDeleted(t, e.src, cur); len(old) != 120 {
		t.Fatalf("first pass after 120 deletions reported %d", len(old))
	} else {
		cur = next
	}
	e.clock.Add(30 * time.Minute)
	gone := []crm.Ref{{Kind: domain.KindLead, ID: "10003"}, {Kind: domain.KindContact, ID: "30140"}}
	for _, r := range gone {
		e.fake.Delete(r)
	}
	e.clock.Add(5 * time.Minute)
	before := e.fake.Meter().Count()
	deleted, batches, _ := changesPassDeleted(t, e.src, cur)
	if len(deleted) != len(gone) || !deleted[gone[0]] || !deleted[gone[1]] {
		t.Fatalf("changes pass reported %v deleted, want %v", deleted, gone)
	}
	// 4 tables and 4 trashes, one page each: the contacts' trash page ends
	// at the old deletions instead of paging through them.
	if n := e.fake.Meter().Count() - before; n != 8 || batches != 8 {
		t.Errorf("changes pass took %d requests in %d batches, want 8 and 8", n, batches)
	}
	// A trashed record reads as deleted.
	b, err := e.src.Get(ctx(t), gone)
	if err != nil || len(b.Deleted) != 2 || len(b.Entities) != 0 {
		t.Fatalf("Get of trashed records: %+v, %v; want both deleted", b, err)
	}
}

// changesPassDeleted runs a changes pass and returns the refs it reported
// deleted, the number of batches and the next cursor.
func changesPassDeleted(t *testing.T, src crm.Source, cur string) (map[crm.Ref]bool, int, string) {
	t.Helper()
	deleted := map[crm.Ref]bool{}
	for n := 1; n <= 100; n++ {
		b, err := src.Changes(ctx(t), cur)
		if err != nil {
			t.Fatalf("Changes(%q): %v", cur, err)
		}
		for _, r := range b.Deleted {
			deleted[r] = true
		}
		cur = b.Cursor
		if b.Done {
			return deleted, n, cur
		}
	}
	t.Fatal("changes pass does not end")
	return nil, 0, ""
}
