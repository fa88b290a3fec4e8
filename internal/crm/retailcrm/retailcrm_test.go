package retailcrm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// t0 is the fake account's clock in tests that check times.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// connect connects to an account whose telephony integration is
// registered, as callrouter's sync leaves it.
func connect(t *testing.T, f *retailcrmfake.Server) (crm.Source, *crmtest.NoSleep) {
	t.Helper()
	f.SetTelephonyRegistered()
	return connectWith(t, f.URL(), f.Creds())
}

func connectWith(t *testing.T, baseURL string, creds json.RawMessage) (crm.Source, *crmtest.NoSleep) {
	t.Helper()
	ns := &crmtest.NoSleep{}
	src, err := retailcrm.Adapter.New(crm.Config{CRM: "retailcrm", BaseURL: baseURL, Creds: creds}, crm.Deps{Sleep: ns.Sleep, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src, ns
}

func contact(id int, name, owner string, phones ...string) crm.Entity {
	return crm.Entity{Kind: domain.KindContact, ID: fmt.Sprint(id), Name: name, OwnerID: owner, Phones: phones, Open: true}
}

func deal(id int, number, owner string, open bool, phones ...string) crm.Entity {
	return crm.Entity{Kind: domain.KindDeal, ID: fmt.Sprint(id), Name: number, OwnerID: owner, Phones: phones, Open: open}
}

func ref(kind domain.EntityKind, id int) crm.Ref { return crm.Ref{Kind: kind, ID: fmt.Sprint(id)} }

// fullSync runs a full sync to its end and returns the entities and the
// final cursor.
func fullSync(t *testing.T, src crm.Source) ([]crm.Entity, string) {
	t.Helper()
	var all []crm.Entity
	cur := ""
	for range 1000 {
		b, err := src.Full(context.Background(), cur)
		if err != nil {
			t.Fatalf("Full(%q): %v", cur, err)
		}
		if len(b.Deleted)+len(b.Refetch) > 0 {
			t.Errorf("Full batch has deletions or refetches: %+v", b)
		}
		all = append(all, b.Entities...)
		cur = b.Cursor
		if b.Done {
			return all, cur
		}
	}
	t.Fatal("full sync never finished")
	return nil, ""
}

func byRef(es []crm.Entity) map[crm.Ref]crm.Entity {
	m := make(map[crm.Ref]crm.Entity, len(es))
	for _, e := range es {
		m[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
	}
	return m
}

type cursorJSON struct {
	Kind           string `json:"kind"`
	CustomersSince int64  `json:"customers_since"`
	OrdersSince    int64  `json:"orders_since"`
}

func decodeCursor(t *testing.T, c string) cursorJSON {
	t.Helper()
	var out cursorJSON
	if err := json.Unmarshal([]byte(c), &out); err != nil {
		t.Fatalf("cursor %q is not JSON: %v", c, err)
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for creds, want := range map[string]string{
		`{"api_key":"k3y"}`:               "",
		`{"api_key":"k3y","site":"shop"}`: "",
		`{"api_key":"k3y","extra":true}`:  "",
		``:                                "credentials.api_key: required",
		`{}`:                              "credentials.api_key: required",
		`{"api_key":"   "}`:               "credentials.api_key: required",
		`{"api_key":"a\nb"}`:              "credentials.api_key: must be one line",
		`{"api_key":5}`:                   "credentials.api_key: must be a string",
		`{"api_key":"k3y","site":["a"]}`:  "credentials.site: must be a string",
		`["k3y"]`:                         "credentials: not a JSON object",
		`not json`:                        "credentials: not a JSON object",
	} {
		err := retailcrm.Adapter.Check(json.RawMessage(creds))
		switch {
		case want == "" && err != nil:
			t.Errorf("Check(%s) = %v, want ok", creds, err)
		case want != "" && (domain.ErrorCode(err) != domain.EINVALID || domain.ErrorMessage(err) != want):
			t.Errorf("Check(%s) = %v, want EINVALID %q", creds, err, want)
		}
	}
	if _, ok := retailcrm.Adapter.Seed(json.RawMessage(`{"api_key":"k"}`)); ok || retailcrm.Adapter.Name != "retailcrm" {
		t.Errorf("Seed ok=%v, Name=%q: want a static-key adapter named retailcrm", ok, retailcrm.Adapter.Name)
	}
	if _, err := retailcrm.Adapter.New(crm.Config{BaseURL: "http://acme.retailcrm.ru", Creds: json.RawMessage(`{"api_key":"k"}`)}, crm.Deps{}); domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "base_url:") {
		t.Errorf("New with plain http to a remote host = %v, want EINVALID base_url", err)
	}
	if _, err := retailcrm.Adapter.New(crm.Config{BaseURL: "https://acme.retailcrm.ru", Creds: json.RawMessage(`{}`)}, crm.Deps{}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("New without a key = %v, want EINVALID", err)
	}
}

func TestFullSyncPagesCustomersThenOrders(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetClock(func() time.Time { return t0 })
	const customers, orders = 230, 130
	for i := 1; i <= customers; i++ {
		f.Put(contact(i, fmt.Sprintf("Ivan Petrov%d", i), fmt.Sprint(i%7), fmt.Sprintf("+7 (900) 000-%04d", i), fmt.Sprintf("8900111%04d", i)))
	}
	for i := 1; i <= orders; i++ {
		f.Put(deal(i, fmt.Sprintf("%dC", i), "3", i%2 == 0, fmt.Sprintf("+7901%07d", i), fmt.Sprintf("+7902%07d", i), fmt.Sprintf("+7903%07d", i)))
	}
	src, _ := connect(t, f)

	all, cur := fullSync(t, src)

	got := byRef(all)
	if len(all) != customers+orders || len(got) != len(all) {
		t.Fatalf("full sync returned %d entities (%d distinct), want %d", len(all), len(got), customers+orders)
	}
	c := got[ref(domain.KindContact, 7)]
	want := crm.Entity{Kind: domain.KindContact, ID: "7", Name: "Ivan Petrov7", Phones: []string{"+7 (900) 000-0007", "89001110007"}, Open: true, UpdatedAt: t0}
	if !equalEntity(c, want) {
		t.Errorf("customer 7 = %+v, want %+v (managerId 0 means no owner)", c, want)
	}
	if c := got[ref(domain.KindContact, 8)]; c.OwnerID != "1" {
		t.Errorf("customer 8 owner = %q, want managerId 1", c.OwnerID)
	}
	d := got[ref(domain.KindDeal, 12)]
	want = crm.Entity{Kind: domain.KindDeal, ID: "12", Name: "12C", OwnerID: "3", Open: true, UpdatedAt: t0,
		Phones: []string{"+79010000012", "+79020000012", "+79030000012"}}
	if !equalEntity(d, want) {
		t.Errorf("order 12 = %+v, want %+v", d, want)
	}
	if d := got[ref(domain.KindDeal, 13)]; d.Open {
		t.Errorf("order 13 (status complete) is open")
	}
	cj := decodeCursor(t, cur)
	if cj.Kind != "" || cj.CustomersSince != f.LastHistoryID(domain.KindContact) || cj.OrdersSince != f.LastHistoryID(domain.KindDeal) {
		t.Errorf("final cursor %s; want the history ends %d and %d", cur, f.LastHistoryID(domain.KindContact), f.LastHistoryID(domain.KindDeal))
	}
	// 3 + 2 pages, and the history ends found in two requests per feed.
	if n := f.Calls("/api/v5/customers"); n != 3 {
		t.Errorf("customers listed in %d requests, want 3", n)
	}
	if n := f.Calls("/api/v5/customers/history"); n != 2 {
		t.Errorf("customers history read %d times to find its end, want 2", n)
	}
}

func equalEntity(a, b crm.Entity) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Name == b.Name && a.OwnerID == b.OwnerID && a.Open == b.Open &&
		a.UpdatedAt.Equal(b.UpdatedAt) && slices.Equal(a.Phones, b.Phones)
}

func TestFullSyncUsesTheRateLimitWithoutExceedingIt(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	for i := 1; i <= 1900; i++ {
		f.Put(contact(i, "C", "", fmt.Sprintf("+7900%07d", i)))
	}
	for i := 1; i <= 150; i++ {
		f.Put(deal(i, "", "", true, fmt.Sprintf("+7901%07d", i)))
	}
	src, _ := connect(t, f)
	start := time.Now()
	all, _ := fullSync(t, src)
	elapsed := time.Since(start)
	if len(all) != 2050 {
		t.Fatalf("got %d entities, want 2050", len(all))
	}
	// The meter fails the test by itself above 10 a second; how close the
	// client gets is the benchmark suite's figure, not a check here.
	m := f.Meter()
	if m.Count() < 25 {
		t.Errorf("full sync: %d requests; want at least 25 pages to hold the client to the rate", m.Count())
	}
	t.Logf("%d requests in %v, peak %d in one second", m.Count(), elapsed.Round(time.Millisecond), m.Peak())
}

func TestOrderOpenFollowsStatusGroups(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.AddStatus("delivered", "complete")
	f.AddStatus("client-refused", "cancel")
	f.AddStatus("approved-by-phone", "approval")
	status := map[int]string{1: "new", 2: "complete", 3: "cancel-other", 4: "no-call", 5: "delivered", 6: "client-refused", 7: "assembling", 8: "approved-by-phone"}
	var refs []crm.Ref
	for id := 1; id <= len(status); id++ {
		f.Put(deal(id, "", "", true, "+79990000000"))
		if status[id] != "new" {
			f.SetOrderStatus(fmt.Sprint(id), status[id])
		}
		refs = append(refs, ref(domain.KindDeal, id))
	}
	check := func(t *testing.T, want map[int]bool) {
		src, _ := connect(t, f)
		b, err := src.Get(context.Background(), refs)
		if err != nil {
			t.Fatal(err)
		}
		got := byRef(b.Entities)
		for id, open := range want {
			if e, ok := got[ref(domain.KindDeal, id)]; !ok || e.Open != open {
				t.Errorf("order with status %s: open=%v (found %v), want %v", status[id], e.Open, ok, open)
			}
		}
	}
	t.Run("status reference", func(t *testing.T) {
		check(t, map[int]bool{1: true, 2: false, 3: false, 4: false, 5: false, 6: false, 7: true, 8: true})
	})
	t.Run("reference unavailable", func(t *testing.T) {
		// A passing outage is an error, not a reason to guess.
		f.Inject503(4)
		src, _ := connect(t, f)
		var se *crm.StatusError
		if _, err := src.Get(context.Background(), refs); !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
			t.Errorf("Get while the reference answers 503: %v, want the StatusError", err)
		}
	})
	t.Run("reference denied", func(t *testing.T) {
		f.Deny("/api/v5/reference/statuses")
		// Without the reference only retailCRM's default final codes are
		// known; the account's own ones count as open.
		check(t, map[int]bool{1: true, 2: false, 3: false, 4: false, 5: true, 6: true, 7: true, 8: true})
	})
}

// changes reads incremental batches until Done.
func changes(t *testing.T, src crm.Source, cur string) ([]crm.Batch, string) {
	t.Helper()
	var out []crm.Batch
	for range 100 {
		b, err := src.Changes(context.Background(), cur)
		if err != nil {
			t.Fatalf("Changes(%s): %v", cur, err)
		}
		out = append(out, b)
		cur = b.Cursor
		if b.Done {
			return out, cur
		}
	}
	t.Fatal("changes never done")
	return nil, ""
}

func refs(es []crm.Entity) []crm.Ref {
	out := make([]crm.Ref, 0, len(es))
	for _, e := range es {
		out = append(out, crm.Ref{Kind: e.Kind, ID: e.ID})
	}
	return out
}

func sameRefs(a, b []crm.Ref) bool {
	key := func(r crm.Ref) string { return string(r.Kind) + "/" + r.ID }
	ka, kb := make([]string, 0, len(a)), make([]string, 0, len(b))
	for _, r := range a {
		ka = append(ka, key(r))
	}
	for _, r := range b {
		kb = append(kb, key(r))
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

func TestChangesFollowHistory(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetClock(func() time.Time { return t0 })
	for i := 1; i <= 5; i++ {
		f.Put(contact(i, "Client", "1", fmt.Sprintf("+7900000000%d", i)))
	}
	for i := 1; i <= 3; i++ {
		f.Put(deal(i, "", "1", true, fmt.Sprintf("+7911000000%d", i)))
	}
	src, _ := connect(t, f)
	_, cur := fullSync(t, src)
	start := decodeCursor(t, cur)

	later := t0.Add(time.Hour)
	f.SetClock(func() time.Time { return later })
	f.Put(contact(6, "New Client", "2", "+79000000006"))         // created: carried whole
	f.Put(contact(1, "Client", "1", "+79000000099"))             // phone changed
	f.Put(contact(2, "Client", "3", "+79000000002"))             // manager changed
	f.Noise("3", 5)                                              // segments: nothing to do
	f.Delete(ref(domain.KindContact, 4))                         // deleted
	f.Put(contact(7, "Twice", "2", "+79000000007"))              // created, then
	f.Put(contact(7, "Twice", "2", "+79000000007", "+79000077")) // changed: refetch
	f.Put(contact(8, "Gone", "2", "+79000000008"))               // created, then
	f.Delete(ref(domain.KindContact, 8))                         // deleted: deleted only
	f.Put(deal(4, "4A", "2", true, "+79110000004"))              // created
	f.SetOrderStatus("1", "complete")                            // status changed
	f.Delete(ref(domain.KindDeal, 2))                            // deleted

	bs, cur := changes(t, src, cur)
	if len(bs) != 1 {
		t.Fatalf("got %d batches, want 1", len(bs))
	}
	b := bs[0]
	if want := []crm.Ref{ref(domain.KindContact, 6), ref(domain.KindDeal, 4)}; !sameRefs(refs(b.Entities), want) {
		t.Errorf("Entities %v, want %v", refs(b.Entities), want)
	}
	for _, e := range b.Entities {
		if e.Kind == domain.KindContact && (e.Name != "New Client" || e.OwnerID != "2" || !slices.Equal(e.Phones, []string{"+79000000006"}) || !e.UpdatedAt.Equal(later)) {
			t.Errorf("created customer = %+v", e)
		}
		if e.Kind == domain.KindDeal && (e.Name != "4A" || !e.Open || e.OwnerID != "2") {
			t.Errorf("created order = %+v", e)
		}
	}
	if want := []crm.Ref{ref(domain.KindContact, 1), ref(domain.KindContact, 2), ref(domain.KindContact, 7), ref(domain.KindDeal, 1)}; !sameRefs(b.Refetch, want) {
		t.Errorf("Refetch %v, want %v", b.Refetch, want)
	}
	if want := []crm.Ref{ref(domain.KindContact, 4), ref(domain.KindContact, 8), ref(domain.KindDeal, 2)}; !sameRefs(b.Deleted, want) {
		t.Errorf("Deleted %v, want %v", b.Deleted, want)
	}
	end := decodeCursor(t, cur)
	if end.CustomersSince != f.LastHistoryID(domain.KindContact) || end.OrdersSince != f.LastHistoryID(domain.KindDeal) {
		t.Errorf("cursor %s, want the history ends %d/%d", cur, f.LastHistoryID(domain.KindContact), f.LastHistoryID(domain.KindDeal))
	}

	// The refetches read the new state.
	got, err := src.Get(context.Background(), b.Refetch)
	if err != nil {
		t.Fatal(err)
	}
	m := byRef(got.Entities)
	if e := m[ref(domain.KindContact, 1)]; !slices.Equal(e.Phones, []string{"+79000000099"}) {
		t.Errorf("customer 1 after phone change: %+v", e)
	}
	if e := m[ref(domain.KindContact, 2)]; e.OwnerID != "3" {
		t.Errorf("customer 2 after manager change: %+v", e)
	}
	if e := m[ref(domain.KindDeal, 1)]; e.Open || !e.UpdatedAt.Equal(later) {
		t.Errorf("order 1 after completion: %+v", e)
	}

	// Nothing new: an empty batch at the same position.
	bs, cur2 := changes(t, src, cur)
	if b := bs[0]; len(bs) != 1 || len(b.Entities)+len(b.Refetch)+len(b.Deleted) != 0 || cur2 != cur {
		t.Errorf("idle Changes = %+v, cursor %s → %s", bs, cur, cur2)
	}

	// More than a page of changes: paged by sinceId, Done only at the end.
	f.Noise("3", 150)
	f.Put(contact(5, "Client", "4", "+79000000005"))
	bs, cur = changes(t, src, cur2)
	if len(bs) != 2 || bs[0].Done {
		t.Fatalf("151 changes came in %d batches, want 2 with the first not done", len(bs))
	}
	if !sameRefs(bs[1].Refetch, []crm.Ref{ref(domain.KindContact, 5)}) || len(bs[0].Refetch) != 0 {
		t.Errorf("refetches %v then %v, want only customer 5 at the end", bs[0].Refetch, bs[1].Refetch)
	}
	if got := decodeCursor(t, cur).CustomersSince; got != f.LastHistoryID(domain.KindContact) {
		t.Errorf("cursor at %d, want %d", got, f.LastHistoryID(domain.KindContact))
	}

	since := f.SinceIDs(domain.KindContact)
	if since[0] != start.CustomersSince || !slices.IsSorted(since) {
		t.Errorf("sinceId sequence %v: want it to start at the full sync's %d and never go back", since, start.CustomersSince)
	}
	for _, kind := range []domain.EntityKind{domain.KindContact, domain.KindDeal} {
		for id, n := range f.HistoryReads(kind) {
			if n > 1 {
				t.Errorf("%s history record %d read %d times", kind, id, n)
			}
		}
	}
}

func TestChangesSkipRecordsAtTheCursor(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	for i := 1; i <= 5; i++ {
		f.Put(contact(i, "C", "", "+7900000000"+fmt.Sprint(i)))
	}
	src, _ := connect(t, f)
	_, cur := fullSync(t, src)
	// Should sinceId include the record it names, the one already read is
	// not processed again.
	f.InjectAnswer(http.StatusOK, "application/json", `{"success":true,"generatedAt":"2026-03-14 10:00:00","history":[
		{"id":5,"createdAt":"2026-03-14 09:00:00","source":"user","field":"phones","oldValue":null,"newValue":"1","customer":{"id":5,"site":"s"}},
		{"id":6,"createdAt":"2026-03-14 09:00:01","source":"user","field":"manager","oldValue":null,"newValue":{"id":2},"customer":{"id":2,"site":"s"}}],
		"pagination":{"limit":100,"totalCount":2,"currentPage":1,"totalPageCount":1}}`)
	b, err := src.Changes(context.Background(), cur)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRefs(b.Refetch, []crm.Ref{ref(domain.KindContact, 2)}) || decodeCursor(t, b.Cursor).CustomersSince != 6 {
		t.Errorf("Refetch %v, cursor %s; want customer 2 only and position 6", b.Refetch, b.Cursor)
	}
}

func TestCursorsAreChecked(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	src, _ := connect(t, f)
	ctx := context.Background()
	b, err := src.Full(ctx, "")
	if err != nil || b.Done { // the orders phase follows even with no customers
		t.Fatalf("Full: %+v, %v", b, err)
	}
	for name, call := range map[string]func() error{
		"changes from nothing":      func() error { _, err := src.Changes(ctx, ""); return err },
		"changes mid full sync":     func() error { _, err := src.Changes(ctx, b.Cursor); return err },
		"changes from garbage":      func() error { _, err := src.Changes(ctx, "{"); return err },
		"full from garbage":         func() error { _, err := src.Full(ctx, "page 2"); return err },
		"full from a changes state": func() error { _, err := src.Full(ctx, `{"customers_since":3}`); return err },
	} {
		if err := call(); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	for i := 1; i <= 3; i++ {
		f.Put(contact(i, "Anna Ivanova", "5", fmt.Sprintf("+7495000000%d", i)))
	}
	f.Put(deal(10, "10A", "5", true, "+74950000010"))
	f.Put(deal(11, "11A", "6", false, "+74950000011"))
	src, _ := connect(t, f)
	ctx := context.Background()

	b, err := src.Get(ctx, []crm.Ref{ref(domain.KindContact, 2)})
	if err != nil || len(b.Entities) != 1 || b.Entities[0].ID != "2" || b.Entities[0].Name != "Anna Ivanova" || len(b.Deleted) != 0 {
		t.Errorf("Get(contact 2) = %+v, %v", b, err)
	}
	if f.Calls("/api/v5/customers/2") != 1 {
		t.Errorf("one entity is read by id")
	}
	b, err = src.Get(ctx, []crm.Ref{ref(domain.KindContact, 99)})
	if err != nil || len(b.Entities) != 0 || !sameRefs(b.Deleted, []crm.Ref{ref(domain.KindContact, 99)}) {
		t.Errorf("Get(missing contact) = %+v, %v; want it deleted", b, err)
	}

	b, err = src.Get(ctx, []crm.Ref{
		ref(domain.KindContact, 1), ref(domain.KindContact, 3), ref(domain.KindContact, 99), {Kind: domain.KindContact, ID: "abc"},
		ref(domain.KindDeal, 10), ref(domain.KindDeal, 11), ref(domain.KindDeal, 12), ref(domain.KindContact, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []crm.Ref{ref(domain.KindContact, 1), ref(domain.KindContact, 3), ref(domain.KindDeal, 10), ref(domain.KindDeal, 11)}; !sameRefs(refs(b.Entities), want) {
		t.Errorf("Entities %v, want %v", refs(b.Entities), want)
	}
	if want := []crm.Ref{ref(domain.KindContact, 99), {Kind: domain.KindContact, ID: "abc"}, ref(domain.KindDeal, 12)}; !sameRefs(b.Deleted, want) {
		t.Errorf("Deleted %v, want %v", b.Deleted, want)
	}
	if e := byRef(b.Entities)[ref(domain.KindDeal, 11)]; e.Open || e.OwnerID != "6" {
		t.Errorf("order 11 = %+v", e)
	}
	if f.Calls("/api/v5/customers") != 1 || f.Calls("/api/v5/orders") != 1 {
		t.Errorf("several entities of a kind are read with one list call: customers %d, orders %d",
			f.Calls("/api/v5/customers"), f.Calls("/api/v5/orders"))
	}

	if _, err := src.Get(ctx, []crm.Ref{ref(domain.KindCompany, 1)}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Get(company) = %v, want EINVALID", err)
	}

	// A base URL pasted with the API root works; a wrong path is an
	// error, never a deletion.
	withRoot, _ := connectWith(t, f.URL()+"/api/v5/", f.Creds())
	if b, err := withRoot.Get(ctx, []crm.Ref{ref(domain.KindContact, 1)}); err != nil || len(b.Entities) != 1 {
		t.Errorf("base URL with /api/v5: %+v, %v", b, err)
	}
	wrong, _ := connectWith(t, f.URL()+"/crm", f.Creds())
	var se *crm.StatusError
	if b, err := wrong.Get(ctx, []crm.Ref{ref(domain.KindContact, 1)}); !errors.As(err, &se) || se.Status != http.StatusNotFound || len(b.Deleted) != 0 {
		t.Errorf("wrong base path: %+v, %v; want a 404 StatusError", b, err)
	}
}

func TestFindByPhone(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetUsers([]crm.User{{ID: "7", Name: "Olga Manager", Email: "olga@example.com", Active: true, Extension: "101"}})
	f.Put(contact(1, "Petr Sidorov", "7", "+7 (495) 123-45-67", "89031234567"))
	f.Put(contact(2, "No Manager", "", "380501112233"))
	src, _ := connect(t, f)
	ctx := context.Background()

	es, err := src.FindByPhone(ctx, "74951234567")
	want := crm.Entity{Kind: domain.KindContact, ID: "1", Name: "Petr Sidorov", OwnerID: "7", Open: true,
		Phones: []string{"+7 (495) 123-45-67", "89031234567"}}
	if err != nil || len(es) != 1 || !equalEntity(es[0], want) {
		t.Errorf("FindByPhone(hit) = %+v, %v; want %+v", es, err, want)
	}
	es, err = src.FindByPhone(ctx, "380501112233")
	if err != nil || len(es) != 1 || es[0].ID != "2" || es[0].OwnerID != "" {
		t.Errorf("FindByPhone(no manager) = %+v, %v", es, err)
	}
	es, err = src.FindByPhone(ctx, "15550001234")
	if err != nil || len(es) != 0 {
		t.Errorf("FindByPhone(miss) = %+v, %v; want nothing", es, err)
	}
	if _, err := src.FindByPhone(ctx, "12ab"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FindByPhone(letters) = %v, want EINVALID", err)
	}
	if f.TelephonyMeter().Count() != 3 || f.Meter().Count() != 0 {
		t.Errorf("telephony requests %d, other requests %d; want 3 and 0", f.TelephonyMeter().Count(), f.Meter().Count())
	}
}

func TestFindByPhoneStaysWithinTheTelephonyLimit(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	const n = 48
	for i := 1; i <= n; i++ {
		f.Put(contact(i, "C", "1", fmt.Sprintf("+7900%07d", i)))
	}
	src, _ := connect(t, f)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			es, err := src.FindByPhone(context.Background(), fmt.Sprintf("7900%07d", i))
			if err == nil && (len(es) != 1 || es[0].ID != fmt.Sprint(i)) {
				err = fmt.Errorf("phone %d found %+v", i, es)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	tm := f.TelephonyMeter()
	if tm.Count() != n || tm.Peak() > 40 || f.Meter().Count() != 0 {
		t.Errorf("%d telephony requests, peak %d/s, %d others", tm.Count(), tm.Peak(), f.Meter().Count())
	}
	t.Logf("%d parallel lookups in %v, peak %d in one second", n, time.Since(start).Round(time.Millisecond), tm.Peak())
}

func TestUsers(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	var users []crm.User
	for i := 1; i <= 130; i++ {
		users = append(users, crm.User{ID: fmt.Sprint(i), Name: fmt.Sprintf("Manager %d", i), Email: fmt.Sprintf("m%d@example.com", i), Active: i%10 != 0})
	}
	f.SetUsers(users)
	src, _ := connect(t, f)
	got, err := src.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 117 {
		t.Fatalf("got %d users, want the 117 active ones", len(got))
	}
	if want := (crm.User{ID: "11", Name: "Manager 11", Email: "m11@example.com", Active: true}); got[9] != want {
		t.Errorf("10th user = %+v, want %+v", got[9], want)
	}
	if n := f.Calls("/api/v5/users"); n != 2 {
		t.Errorf("users read in %d requests, want 2 pages of 100", n)
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	src, _ := connect(t, f)
	ctx := context.Background()
	const form, js = "application/x-www-form-urlencoded", "application/json"
	for _, tc := range []struct {
		ct, body string
		refetch  crm.Ref
		deleted  crm.Ref
	}{
		{js, `{"type":"customer","id":42}`, ref(domain.KindContact, 42), crm.Ref{}},
		{js + "; charset=utf-8", `{"type":"order","id":"17","deleted":true}`, crm.Ref{}, ref(domain.KindDeal, 17)},
		{js, `{"type":"Order","id":17,"deleted":"false"}`, ref(domain.KindDeal, 17), crm.Ref{}},
		{"", ` {"type":"customer","id":" 5 "}`, ref(domain.KindContact, 5), crm.Ref{}},
		{form, `type=order&id=5`, ref(domain.KindDeal, 5), crm.Ref{}},
		{form, `type=customer&id=9&deleted=1`, crm.Ref{}, ref(domain.KindContact, 9)},
		{"text/plain", `type=customer&id=9`, ref(domain.KindContact, 9), crm.Ref{}},
	} {
		b, err := src.Webhook(ctx, tc.ct, []byte(tc.body))
		if err != nil {
			t.Errorf("Webhook(%s, %s): %v", tc.ct, tc.body, err)
			continue
		}
		var wantR, wantD []crm.Ref
		if tc.refetch.ID != "" {
			wantR = []crm.Ref{tc.refetch}
		}
		if tc.deleted.ID != "" {
			wantD = []crm.Ref{tc.deleted}
		}
		if !slices.Equal(b.Refetch, wantR) || !slices.Equal(b.Deleted, wantD) || len(b.Entities) != 0 {
			t.Errorf("Webhook(%s, %s) = %+v; want refetch %v, deleted %v", tc.ct, tc.body, b, wantR, wantD)
		}
	}
	for _, tc := range []struct{ ct, body string }{
		{js, ``},
		{js, `{"type":"customer"`},
		{js, `["customer",1]`},
		{js, `{"type":"product","id":1}`},
		{js, `{"type":"customer"}`},
		{js, `{"type":"customer","id":"x1"}`},
		{js, `{"type":"customer","id":-3}`},
		{js, `{"type":"customer","id":1.5}`},
		{js, `{"type":"customer","id":{"n":1}}`},
		{js, `{"type":"customer","id":1,"deleted":"maybe"}`},
		{form, `type=customer&id=1&deleted=perhaps`},
		{form, `type=customer&id=%zz`},
		{form, `id=3`},
	} {
		if _, err := src.Webhook(ctx, tc.ct, []byte(tc.body)); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Webhook(%s, %q) = %v, want EINVALID", tc.ct, tc.body, err)
		}
	}

	// What the fake's trigger posts round-trips.
	f.Put(contact(3, "C", "", "+79000000003"))
	for _, del := range []bool{false, true} {
		if del {
			f.Delete(ref(domain.KindContact, 3))
		}
		ct, body, ok := f.Notification(ref(domain.KindContact, 3))
		b, err := src.Webhook(ctx, ct, body)
		got := b.Refetch
		if del {
			got = b.Deleted
		}
		if !ok || err != nil || !slices.Equal(got, []crm.Ref{ref(domain.KindContact, 3)}) {
			t.Errorf("notification (deleted=%v) %s → %+v, %v", del, body, b, err)
		}
	}
	if _, _, ok := f.Notification(ref(domain.KindCompany, 1)); ok {
		t.Errorf("retailCRM has no company notifications")
	}
}

func TestRejectedKeysAndDeadAccountsAreAuthErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var ae *crm.AuthError

	f := retailcrmfake.New(t)
	wrong, _ := connectWith(t, f.URL(), json.RawMessage(`{"api_key":"not-the-key-8c1d"}`))
	_, err := wrong.Users(ctx)
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Message != `Wrong "apiKey" value.` {
		t.Errorf("wrong key: %v, want an AuthError 403 with retailCRM's message", err)
	}
	if err != nil && strings.Contains(err.Error(), "not-the-key-8c1d") {
		t.Errorf("the error %q shows the key", err)
	}

	src, _ := connect(t, f)
	f.Revoke()
	if _, err := src.Full(ctx, ""); !errors.As(err, &ae) || ae.Message != `Wrong "apiKey" value.` {
		t.Errorf("revoked key: %v, want an AuthError", err)
	}

	dead := retailcrmfake.New(t)
	dead.KillAccount()
	src, _ = connect(t, dead)
	if _, err := src.FindByPhone(ctx, "79000000000"); !errors.As(err, &ae) || ae.Message != "HTML answer (status 405)" {
		t.Errorf("dead account: %v, want an AuthError with a short HTML note", err)
	}

	g := retailcrmfake.New(t)
	src, _ = connect(t, g)
	g.InjectAnswer(http.StatusOK, "application/json", `{"success":false,"errorMsg":"Account does not exist."}`)
	if _, err := src.Users(ctx); !errors.As(err, &ae) || ae.Message != "Account does not exist." {
		t.Errorf("account does not exist (status 200): %v, want an AuthError", err)
	}
	g.InjectAnswer(http.StatusBadRequest, "application/json", `{"success":false,"errorMsg":"\"apiKey\" is missing."}`)
	if _, err := src.Users(ctx); !errors.As(err, &ae) {
		t.Errorf("missing key: %v, want an AuthError", err)
	}

	var se *crm.StatusError
	g.Deny("/api/v5/users")
	if _, err := src.Users(ctx); !errors.As(err, &se) || crm.IsAuth(err) || se.Status != http.StatusForbidden || se.Message != "Access denied." {
		t.Errorf("access denied: %v, want a StatusError, not an AuthError", err)
	}
	g.InjectAnswer(http.StatusBadRequest, "application/json",
		`{"success":false,"errorMsg":"Errors in the input parameters","errors":{"limit":"This value should be one of 20, 50, 100.","page":"Too big."}}`)
	want := "Errors in the input parameters (limit: This value should be one of 20, 50, 100.; page: Too big.)"
	if _, err := src.FindByPhone(ctx, "79000000000"); !errors.As(err, &se) || se.Message != want {
		t.Errorf("validation error: %v, want message %q", err, want)
	}
	g.InjectAnswer(http.StatusBadRequest, "application/json", `{"success":false,"errors":["first problem","second problem"]}`)
	if _, err := src.FindByPhone(ctx, "79000000000"); !errors.As(err, &se) || se.Message != "first problem; second problem" {
		t.Errorf("error list: %v", err)
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetUsers([]crm.User{{ID: "1", Name: "A", Active: true}})
	src, ns := connect(t, f)
	ctx := context.Background()

	f.InjectRetry(http.StatusServiceUnavailable, 2, "3")
	f.InjectRetry(http.StatusTooManyRequests, 1, "1")
	if users, err := src.Users(ctx); err != nil || len(users) != 1 {
		t.Fatalf("Users after 503, 503, 429: %v, %v", users, err)
	}
	if want := []time.Duration{3 * time.Second, 3 * time.Second, time.Second}; !slices.Equal(ns.Waits, want) {
		t.Errorf("waited %v, want %v", ns.Waits, want)
	}
	// Users reads the manager groups first: the retries land on that request.
	if n := f.Calls("/api/v5/user-groups") + f.Calls("/api/v5/users"); n != 5 {
		t.Errorf("%d requests, want 5 (3 retried, the groups, the users)", n)
	}

	f.Inject503(4) // one more than the retries
	var se *crm.StatusError
	if _, err := src.Users(ctx); !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Errorf("503 four times: %v, want a StatusError 503", err)
	}
	if n := len(ns.Waits); n != 6 || ns.Waits[3] != time.Second {
		t.Errorf("waits %v: without Retry-After the client backs off from 1 s", ns.Waits)
	}
}

// TestRegisterTelephonyModule: the account refuses the telephony methods
// until callrouter is registered as its telephony integration module; the
// registration carries the extension codes and external numbers, and
// registering again edits the same module.
func TestRegisterTelephonyModule(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetUsers([]crm.User{{ID: "7", Name: "Anna A", Active: true}, {ID: "8", Name: "Boris B", Active: true}})
	src, _ := connectWith(t, f.URL(), f.Creds())
	ctx := context.Background()
	w := src.(crm.Writer)
	call := crm.NewCall{Key: "k1", Answered: true, Phone: "380671234567", Start: t0, Duration: time.Minute, UserID: "7"}
	var se *crm.StatusError
	if _, err := w.CreateCall(ctx, call); !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("calls upload before registering: %v, want the account's refusal", err)
	}
	if _, err := src.FindByPhone(ctx, "380671234567"); err == nil {
		t.Fatal("telephony/manager answered before registering")
	}
	reg := crm.Registration{ClientID: "acme", Codes: []crm.ExtensionCode{{Code: "sip_anna", UserID: "7"}, {Code: "101", UserID: "8"},
		{Code: "x", UserID: "not-retailcrm"}}, ExternalPhones: []string{"380441110000"}}
	if err := src.(crm.Registrar).Register(ctx, reg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	m, ok := f.Modules()["callrouter"]
	if !ok || !m.Active || m.IntegrationCode != "callrouter" || m.ClientID != "acme" || m.Integrations.Telephony == nil {
		t.Fatalf("module %+v", m)
	}
	tel := m.Integrations.Telephony
	if len(tel.AdditionalCodes) != 2 || tel.AdditionalCodes[0].Code != "sip_anna" || tel.AdditionalCodes[0].UserID != "7" ||
		tel.AdditionalCodes[1].Code != "101" || len(tel.ExternalPhones) != 1 || tel.ExternalPhones[0].ExternalPhone != "+380441110000" ||
		tel.ExternalPhones[0].SiteCode != retailcrmfake.Site || tel.AllowEdit {
		t.Fatalf("telephony %+v", tel)
	}
	if _, err := w.CreateCall(ctx, call); err != nil {
		t.Fatalf("calls upload after registering: %v", err)
	}
	if err := src.(crm.Registrar).Register(ctx, crm.Registration{ClientID: "acme"}); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	if n := f.ModuleEdits("callrouter"); n != 2 || len(f.Modules()) != 1 {
		t.Fatalf("%d edits of %d modules, want one module edited twice", n, len(f.Modules()))
	}
	// Another code from the credentials.
	other, _ := connectWith(t, f.URL(), json.RawMessage(`{"api_key":"retailcrm-fake-key-5f2b","module_code":"callrouter-2"}`))
	if err := other.(crm.Registrar).Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Modules()["callrouter-2"]; !ok {
		t.Fatalf("modules %v, want callrouter-2", f.Modules())
	}
	if err := retailcrm.Check(json.RawMessage(`{"api_key":"k","module_code":"Bad Code/.."}`)); domain.ErrorCode(err) != domain.EINVALID ||
		!strings.Contains(err.Error(), "module_code") {
		t.Fatalf("bad module code: %v", err)
	}
}

// TestUsersAreTheManagerGroup: the users offered for mapping are the active
// members of the manager groups.
func TestUsersAreTheManagerGroup(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.SetUsers([]crm.User{{ID: "1", Name: "Anna", Active: true}, {ID: "2", Name: "Boss", Active: true},
		{ID: "3", Name: "Gone", Active: false}, {ID: "4", Name: "Both", Active: true}})
	f.SetUserGroups("2", "director")
	f.SetUserGroups("4", "director", "manager")
	src, _ := connect(t, f)
	users, err := src.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	if !slices.Equal(ids, []string{"1", "4"}) {
		t.Fatalf("users %v, want the active managers 1 and 4", ids)
	}
	// A key that may not read the groups still lists the active users.
	f.Deny("/api/v5/user-groups")
	if users, err = src.Users(context.Background()); err != nil || len(users) != 3 {
		t.Fatalf("without the groups: %+v %v, want the 3 active users", users, err)
	}
}
