package zoho_test

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
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// clock is a settable clock shared by the fake and the adapter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	fake  *zohofake.Server
	store *crmtest.TokenStore
	sleep *crmtest.NoSleep
	clock *clock
	src   crm.Source
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{fake: zohofake.New(t), sleep: &crmtest.NoSleep{},
		clock: &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	e.fake.SetClock(e.clock.Now)
	tok, ok := zoho.Seed(e.fake.Creds())
	if !ok {
		t.Fatal("Seed: ok=false for the fake's credentials")
	}
	e.store = crmtest.NewTokenStore(tok)
	src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: e.fake.URL(), Creds: e.fake.Creds()},
		crm.Deps{Tokens: e.store, Sleep: e.sleep.Sleep, Now: e.clock.Now, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.src = src
	return e
}

// full runs a full sync to the end.
func full(t *testing.T, src crm.Source) (map[crm.Ref]crm.Entity, string) {
	t.Helper()
	got := map[crm.Ref]crm.Entity{}
	cursor := ""
	for range 1000 {
		b, err := src.Full(context.Background(), cursor)
		if err != nil {
			t.Fatalf("Full(%s): %v", cursor, err)
		}
		for _, e := range b.Entities {
			got[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
		}
		cursor = b.Cursor
		if b.Done {
			return got, cursor
		}
	}
	t.Fatal("full sync did not finish")
	return nil, ""
}

// changes runs one round of changes to the end.
func changes(t *testing.T, src crm.Source, cursor string) (map[crm.Ref]crm.Entity, []crm.Ref, string) {
	t.Helper()
	got := map[crm.Ref]crm.Entity{}
	var deleted []crm.Ref
	for range 1000 {
		b, err := src.Changes(context.Background(), cursor)
		if err != nil {
			t.Fatalf("Changes(%s): %v", cursor, err)
		}
		for _, e := range b.Entities {
			got[crm.Ref{Kind: e.Kind, ID: e.ID}] = e
		}
		deleted = append(deleted, b.Deleted...)
		cursor = b.Cursor
		if b.Done {
			return got, deleted, cursor
		}
	}
	t.Fatal("changes did not finish")
	return nil, nil, ""
}

func contactID(i int) string { return fmt.Sprintf("4150868000001%06d", i) }

func TestCheck(t *testing.T) {
	valid := map[string]string{"client_id": "1000.X", "client_secret": "s", "refresh_token": "1000.a.b"}
	for _, tc := range []struct {
		name, drop, set, val, want string
	}{
		{name: "valid"},
		{name: "no client_id", drop: "client_id", want: "credentials.client_id: required"},
		{name: "no client_secret", drop: "client_secret", want: "credentials.client_secret: required"},
		{name: "no refresh_token", drop: "refresh_token", want: "credentials.refresh_token: required"},
		{name: "blank client_id", set: "client_id", val: "  ", want: "credentials.client_id: required"},
		{name: "eu accounts", set: "accounts_url", val: "https://accounts.zoho.eu"},
		{name: "plain http", set: "accounts_url", val: "http://accounts.zoho.eu", want: "credentials.accounts_url: plain http"},
		{name: "accounts with query", set: "accounts_url", val: "https://accounts.zoho.eu?x=1", want: "credentials.accounts_url: must not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range valid {
				if k != tc.drop {
					m[k] = v
				}
			}
			if tc.set != "" {
				m[tc.set] = tc.val
			}
			b, _ := json.Marshal(m)
			err := zoho.Check(b)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), tc.want) {
				t.Fatalf("Check = %v, want EINVALID %q", err, tc.want)
			}
		})
	}
	for _, raw := range []string{``, `[]`, `"x"`, `{`} {
		if err := zoho.Check(json.RawMessage(raw)); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Check(%q) = %v, want EINVALID", raw, err)
		}
	}
}

func TestSeed(t *testing.T) {
	tok, ok := zoho.Seed(json.RawMessage(`{"client_id":"1000.X","client_secret":"s","refresh_token":"1000.r.t"}`))
	if !ok || tok.Refresh != "1000.r.t" || tok.Access != "" || !tok.Expiry.IsZero() {
		t.Fatalf("Seed = %+v, %v; want the refresh token alone", tok, ok)
	}
	if _, ok := zoho.Seed(json.RawMessage(`{"client_id":"1000.X"}`)); ok {
		t.Fatal("Seed of incomplete credentials: ok=true")
	}
	if zoho.Adapter.Name != "zoho" || zoho.Adapter.Check == nil || zoho.Adapter.Seed == nil || zoho.Adapter.New == nil {
		t.Fatalf("Adapter = %+v", zoho.Adapter)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	creds := json.RawMessage(`{"client_id":"1000.X","client_secret":"s","refresh_token":"1000.r.t"}`)
	store := crmtest.NewTokenStore(crm.Token{Refresh: "1000.r.t"})
	if _, err := zoho.New(crm.Config{BaseURL: "http://www.zohoapis.com", Creds: creds}, crm.Deps{Tokens: store}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("plain http base URL: %v, want EINVALID", err)
	}
	if _, err := zoho.New(crm.Config{BaseURL: "https://www.zohoapis.com", Creds: json.RawMessage(`{}`)}, crm.Deps{Tokens: store}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("empty credentials: %v, want EINVALID", err)
	}
	if _, err := zoho.New(crm.Config{BaseURL: "https://www.zohoapis.com", Creds: creds}, crm.Deps{}); err == nil {
		t.Error("no token store: nil error")
	}
}

func TestFullSyncAllModules(t *testing.T) {
	e := setup(t)
	e.fake.SetUsers([]crm.User{{ID: "4150868000000225013", Name: "Patricia Boyle", Email: "patricia.boyle@example.com", Active: true}})
	want := []crm.Entity{
		{Kind: domain.KindLead, ID: "4150868000000002175", Name: "John Doe", Phones: []string{"+1-555-123-4567", "+1 555 765 4321"}, OwnerID: "4150868000000225013", Open: true},
		{Kind: domain.KindLead, ID: "4150868000000002176", Name: "Lost One", Phones: []string{"+380 44 000 0001"}, OwnerID: "4150868000000225013", Open: false},
		{Kind: domain.KindDeal, ID: "4150868000000003001", Name: "Big deal", Phones: []string{"+380441112233"}, OwnerID: "4150868000000225099", Open: true},
		{Kind: domain.KindDeal, ID: "4150868000000003002", Name: "Old deal", Phones: []string{"+380441112234"}, Open: false},
		{Kind: domain.KindContact, ID: "4150868000000004001", Name: "Jane Roe", Phones: []string{"+1 (555) 000-1111", "555-0002", "555-0003", "555-0004"}, OwnerID: "4150868000000225013", Open: true},
		{Kind: domain.KindCompany, ID: "4150868000000005001", Name: "Zylker Corp", Phones: []string{"+1-555-999-0000"}, OwnerID: "4150868000000225013", Open: true},
	}
	for _, ent := range want {
		e.fake.Put(ent)
	}
	got, cursor := full(t, e.src)
	// The deals' phones live on the contacts the fake links them to (Deals
	// have no phone field): two more contacts.
	if len(got) != len(want)+2 {
		t.Fatalf("full sync returned %d entities, want %d: %v", len(got), len(want)+2, got)
	}
	for _, w := range want {
		g := got[crm.Ref{Kind: w.Kind, ID: w.ID}]
		if g.Name != w.Name || g.OwnerID != w.OwnerID || g.Open != w.Open || !slices.Equal(g.Phones, w.Phones) {
			t.Errorf("%s %s = %+v, want %+v", w.Kind, w.ID, g, w)
		}
		if !g.UpdatedAt.Equal(e.clock.Now()) {
			t.Errorf("%s %s UpdatedAt = %v, want %v", w.Kind, w.ID, g.UpdatedAt, e.clock.Now())
		}
	}
	if !strings.Contains(cursor, `"mode":"changes"`) {
		t.Errorf("cursor after a full sync = %s, want a changes cursor", cursor)
	}
	for _, r := range e.fake.Requests() {
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent && r.Status != http.StatusNotModified {
			t.Errorf("%s %s?%s answered %d", r.Method, r.Path, r.Query.Encode(), r.Status)
		}
		if r.Path == "/crm/v8/settings/fields" || r.Query.Has("ids") {
			continue // field metadata; the deals' contacts by id
		}
		if r.Query.Get("sort_by") != "Modified_Time" || r.Query.Get("sort_order") != "asc" || r.Query.Get("fields") == "" {
			t.Errorf("list request %s?%s: want fields, sort_by=Modified_Time, sort_order=asc", r.Path, r.Query.Encode())
		}
	}
}

func TestOpenFlags(t *testing.T) {
	e := setup(t)
	owner := map[string]any{"name": "P B", "id": "4150868000000225013", "email": "pb@example.com"}
	lead := func(status string, converted bool) string {
		return e.fake.PutRecord("Leads", map[string]any{"Last_Name": "L", "Full_Name": "L " + status, "Phone": "+15550001",
			"Lead_Status": status, "$converted": converted, "Owner": owner})
	}
	deal := func(stage string) string {
		return e.fake.PutRecord("Deals", map[string]any{"Deal_Name": "D " + stage, "Stage": stage, "Phone": "+15550002", "Owner": owner})
	}
	open := map[crm.Ref]bool{
		{Kind: domain.KindLead, ID: lead("Not Contacted", false)}:       true,
		{Kind: domain.KindLead, ID: lead("Contacted", false)}:           true,
		{Kind: domain.KindLead, ID: lead("Junk Lead", false)}:           false,
		{Kind: domain.KindLead, ID: lead("Lost Lead", false)}:           false,
		{Kind: domain.KindLead, ID: lead("Not Qualified", false)}:       false,
		{Kind: domain.KindLead, ID: lead("Contacted", true)}:            false, // converted
		{Kind: domain.KindDeal, ID: deal("Qualification")}:              true,
		{Kind: domain.KindDeal, ID: deal("Negotiation/Review")}:         true,
		{Kind: domain.KindDeal, ID: deal("Closed Won")}:                 false,
		{Kind: domain.KindDeal, ID: deal("Closed Lost")}:                false,
		{Kind: domain.KindDeal, ID: deal("Closed-Lost to Competition")}: false,
	}
	got, _ := full(t, e.src)
	for ref, want := range open {
		g, ok := got[ref]
		if !ok {
			t.Errorf("%v missing from the full sync (converted leads must be listed too)", ref)
			continue
		}
		if g.Open != want {
			t.Errorf("%s %q: Open = %v, want %v", ref.Kind, g.Name, g.Open, want)
		}
		if g.OwnerID != "4150868000000225013" {
			t.Errorf("%v OwnerID = %q", ref, g.OwnerID)
		}
	}
}

// TestFullSyncLargeModule lists more than 2000 contacts modified in the
// same second: page numbers up to page 10, then page tokens.
func TestFullSyncLargeModule(t *testing.T) {
	e := setup(t)
	const n = 2500
	for i := range n {
		e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: contactID(i), Name: "C", Phones: []string{fmt.Sprintf("+38050%07d", i)}, Open: true})
	}
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "1", Name: "L", Phones: []string{"+1555"}, Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindCompany, ID: "2", Name: "A", Phones: []string{"+1556"}, Open: true})
	got, _ := full(t, e.src)
	if len(got) != n+2 {
		t.Fatalf("full sync returned %d entities, want %d", len(got), n+2)
	}
	for i := range n {
		if _, ok := got[crm.Ref{Kind: domain.KindContact, ID: contactID(i)}]; !ok {
			t.Fatalf("contact %d missing", i)
		}
	}
	tokens, maxPage := 0, 0
	for _, r := range e.fake.Requests() {
		if r.Status >= 400 {
			t.Errorf("%s?%s answered %d", r.Path, r.Query.Encode(), r.Status)
		}
		if r.Query.Get("page_token") != "" {
			tokens++
		}
		var p int
		fmt.Sscan(r.Query.Get("page"), &p)
		maxPage = max(maxPage, p)
	}
	if tokens < 2 || maxPage != 10 {
		t.Errorf("%d page_token requests, last page number %d; want pages 1-10 then page tokens", tokens, maxPage)
	}
}

// TestFullSyncByTime lists records modified at different times: each page
// starts a window at the last time read, so no page number goes past 1
// and records edited or deleted during the sync do not make others slip
// past unseen.
func TestFullSyncByTime(t *testing.T) {
	e := setup(t)
	const n = 1000
	for i := range n {
		e.clock.Advance(time.Second)
		e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: contactID(i), Name: "C", Phones: []string{fmt.Sprintf("+38050%07d", i)}, Open: true})
	}
	got := map[crm.Ref]crm.Entity{}
	cursor := ""
	for page := 0; ; page++ {
		if page == 200 {
			t.Fatal("full sync did not finish")
		}
		b, err := e.src.Full(context.Background(), cursor)
		if err != nil {
			t.Fatalf("Full: %v", err)
		}
		for _, ent := range b.Entities {
			got[crm.Ref{Kind: ent.Kind, ID: ent.ID}] = ent
		}
		if page == 2 {
			// Edit and delete records already read: with offsets, the
			// records behind them would move into pages already read.
			e.clock.Advance(time.Second)
			for i := range 50 {
				e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: contactID(i), Name: "Edited", Phones: []string{"+1"}, Open: true})
				e.fake.Delete(crm.Ref{Kind: domain.KindContact, ID: contactID(100 + i)})
			}
		}
		cursor = b.Cursor
		if b.Done {
			break
		}
	}
	for i := range n {
		if _, ok := got[crm.Ref{Kind: domain.KindContact, ID: contactID(i)}]; !ok {
			t.Errorf("contact %d never listed", i)
		}
	}
	if g := got[crm.Ref{Kind: domain.KindContact, ID: contactID(0)}]; g.Name != "Edited" {
		t.Errorf("contact edited during the sync: %+v, want the edit read at the end", g)
	}
	for _, r := range e.fake.Requests() {
		if r.Query.Get("page_token") != "" || r.Query.Get("page") != "1" && r.Query.Get("page") != "" {
			t.Errorf("request %s?%s: want only first pages of time windows", r.Path, r.Query.Encode())
		}
	}
}

// TestFullSyncExpiredPageToken resumes a full sync a day later, inside a
// crowded second whose page token has expired: the window is read again
// from page 1, once.
func TestFullSyncExpiredPageToken(t *testing.T) {
	e := setup(t)
	for i := range 2300 {
		e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: contactID(i), Name: "C", Open: true})
	}
	got := map[string]bool{}
	cursor := ""
	paused := false
	for range 100 {
		if !paused && strings.Contains(cursor, `"page_token"`) {
			e.clock.Advance(25 * time.Hour)
			e.fake.ExpireAccessTokens()
			paused = true
		}
		b, err := e.src.Full(context.Background(), cursor)
		if err != nil {
			t.Fatalf("Full: %v", err)
		}
		for _, ent := range b.Entities {
			got[ent.ID] = true
		}
		cursor = b.Cursor
		if b.Done {
			break
		}
	}
	if !paused || len(got) != 2300 {
		t.Fatalf("paused=%v, %d contacts; want a pause on a page token and all 2300", paused, len(got))
	}
}

func TestFullSyncPageTokenLimit(t *testing.T) {
	e := setup(t)
	e.fake.SetPageTokenLimit(2200)
	for i := range 2500 {
		e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: contactID(i), Name: "C", Open: true})
	}
	cursor := ""
	for range 100 {
		b, err := e.src.Full(context.Background(), cursor)
		if err != nil {
			var se *crm.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "PAGINATION_LIMIT_EXCEEDED") {
				t.Fatalf("Full: %v, want a PAGINATION_LIMIT_EXCEEDED status error", err)
			}
			return
		}
		if b.Done {
			t.Fatal("full sync finished past the page token limit")
		}
		cursor = b.Cursor
	}
	t.Fatal("full sync kept going past the page token limit")
}

func TestCursorErrors(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	for _, c := range []string{"x", `{"v":1,"mode":"changes","since":"2026-01-01T00:00:00Z"}`, `{"v":9,"mode":"full"}`, `{"v":1,"mode":"full","module":"Tasks"}`} {
		if _, err := e.src.Full(ctx, c); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Full(%s) = %v, want EINVALID", c, err)
		}
	}
	for _, c := range []string{"", "x", `{"v":1,"mode":"full"}`, `{"v":1,"mode":"changes"}`} {
		if _, err := e.src.Changes(ctx, c); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Changes(%q) = %v, want EINVALID", c, err)
		}
	}
}

func TestChanges(t *testing.T) {
	e := setup(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "One", Phones: []string{"+15550001"}, Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "l1", Name: "Lead", Phones: []string{"+15550002"}, Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindDeal, ID: "d1", Name: "Deal", Phones: []string{"+15550003"}, Open: true})
	e.clock.Advance(time.Hour)
	_, cursor := full(t, e.src)

	// Nothing changed: every list and deleted feed answers 304.
	e.clock.Advance(10 * time.Minute)
	before := len(e.fake.Requests())
	got, deleted, cursor := changes(t, e.src, cursor)
	if len(got) != 0 || len(deleted) != 0 {
		t.Fatalf("changes with nothing changed: %v, %v", got, deleted)
	}
	reqs := e.fake.Requests()[before:]
	if len(reqs) != 8 {
		t.Errorf("%d requests for an empty round, want 8 (4 modules × list and deleted feed)", len(reqs))
	}
	for _, r := range reqs {
		if r.Status != http.StatusNotModified || r.IfModifiedSince == "" {
			t.Errorf("%s If-Modified-Since %q answered %d, want 304", r.Path, r.IfModifiedSince, r.Status)
		}
	}

	// One edit, one new record, one deletion.
	e.clock.Advance(time.Minute)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "One", Phones: []string{"+15550009"}, OwnerID: "u2", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindCompany, ID: "a1", Name: "Acme", Phones: []string{"+15550004"}, Open: true})
	e.fake.Delete(crm.Ref{Kind: domain.KindLead, ID: "l1"})
	e.clock.Advance(10 * time.Minute)
	got, deleted, cursor = changes(t, e.src, cursor)
	if len(got) != 2 || !slices.Equal(got[crm.Ref{Kind: domain.KindContact, ID: "c1"}].Phones, []string{"+15550009"}) ||
		got[crm.Ref{Kind: domain.KindContact, ID: "c1"}].OwnerID != "u2" || got[crm.Ref{Kind: domain.KindCompany, ID: "a1"}].Name != "Acme" {
		t.Errorf("changed entities = %+v", got)
	}
	if !slices.Equal(deleted, []crm.Ref{{Kind: domain.KindLead, ID: "l1"}}) {
		t.Errorf("deleted = %v, want lead l1", deleted)
	}

	// The round after sees nothing again.
	e.clock.Advance(10 * time.Minute)
	got, deleted, _ = changes(t, e.src, cursor)
	if len(got) != 0 || len(deleted) != 0 {
		t.Errorf("second round: %v, %v; want nothing", got, deleted)
	}
}

// TestChangesOverlap: a record modified just before a round starts, as
// Zoho's clock saw it, is still read by the next round.
func TestChangesOverlap(t *testing.T) {
	e := setup(t)
	_, cursor := full(t, e.src)
	e.clock.Advance(time.Hour)
	// Zoho's clock runs 30 s behind ours.
	e.fake.SetClock(func() time.Time { return e.clock.Now().Add(-30 * time.Second) })
	_, _, cursor = changes(t, e.src, cursor) // round starts now, sees nothing
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "late", Name: "Late", Phones: []string{"+1"}, Open: true})
	got, _, _ := changes(t, e.src, cursor)
	if _, ok := got[crm.Ref{Kind: domain.KindContact, ID: "late"}]; !ok {
		t.Fatalf("record stamped before the previous round began was not read: %v", got)
	}
}

func TestGet(t *testing.T) {
	e := setup(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "4150868000000004001", Name: "Jane", Phones: []string{"+15550001"}, OwnerID: "u1", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindDeal, ID: "4150868000000003001", Name: "Deal", Phones: []string{"+15550002"}, Open: false})
	var refs []crm.Ref
	for i := range 150 {
		refs = append(refs, crm.Ref{Kind: domain.KindContact, ID: contactID(i)}) // missing
	}
	refs = append(refs,
		crm.Ref{Kind: domain.KindContact, ID: "4150868000000004001"},
		crm.Ref{Kind: domain.KindDeal, ID: "4150868000000003001"},
		crm.Ref{Kind: domain.KindDeal, ID: "4150868000000003001"}, // twice
		crm.Ref{Kind: domain.KindLead, ID: "4150868000000002999"}, // missing
	)
	b, err := e.src.Get(context.Background(), refs)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(b.Entities) != 2 {
		t.Fatalf("Get entities = %+v, want the contact and the deal", b.Entities)
	}
	for _, ent := range b.Entities {
		if ent.ID == "4150868000000004001" && (ent.Name != "Jane" || ent.OwnerID != "u1" || !ent.Open) ||
			ent.ID == "4150868000000003001" && (ent.Kind != domain.KindDeal || ent.Open) {
			t.Errorf("Get entity %+v", ent)
		}
	}
	if len(b.Deleted) != 151 || !slices.Contains(b.Deleted, crm.Ref{Kind: domain.KindLead, ID: "4150868000000002999"}) {
		t.Errorf("Get deleted: %d refs, want 151 including the lead", len(b.Deleted))
	}
	if _, err := e.src.Get(context.Background(), []crm.Ref{{Kind: "task", ID: "1"}}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Get of an unknown kind: %v, want EINVALID", err)
	}
}

func TestFindByPhone(t *testing.T) {
	e := setup(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+380 (50) 123-45-67"}, OwnerID: "u1", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "l1", Name: "Lead", Phones: []string{"+380501234567"}, OwnerID: "u2", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindDeal, ID: "d1", Name: "Deal", Phones: []string{"+380501234567"}, OwnerID: "u3", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c2", Name: "Other", Phones: []string{"+380501234568"}, Open: true})
	got, err := e.src.FindByPhone(context.Background(), "380501234567")
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	var refs []string
	for _, ent := range got {
		refs = append(refs, string(ent.Kind)+":"+ent.ID+":"+ent.OwnerID)
	}
	slices.Sort(refs)
	// The deal has no phone of its own: it is found through the contact
	// holding its phone.
	dealContact := "contact:" + e.fake.DealContact("d1") + ":u3"
	want := []string{"contact:c1:u1", dealContact, "deal:d1:u3", "lead:l1:u2"}
	slices.Sort(want)
	if !slices.Equal(refs, want) {
		t.Errorf("FindByPhone = %v, want %v", refs, want)
	}
	for _, r := range e.fake.Requests() {
		if strings.HasPrefix(r.Path, "/crm/v8/Deals") {
			t.Errorf("Deals searched in a standard layout: %s", r.Path)
		}
	}

	before := len(e.fake.Requests())
	got, err = e.src.FindByPhone(context.Background(), "15550000000")
	if err != nil || len(got) != 0 {
		t.Fatalf("FindByPhone miss = %v, %v; want none", got, err)
	}
	for _, r := range e.fake.Requests()[before:] {
		if r.Status != http.StatusNoContent {
			t.Errorf("miss: %s answered %d, want 204", r.Path, r.Status)
		}
	}
	if _, err := e.src.FindByPhone(context.Background(), "+38050"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FindByPhone(+38050) = %v, want EINVALID", err)
	}
}

func TestUsers(t *testing.T) {
	e := setup(t)
	var users []crm.User
	for i := range 250 {
		users = append(users, crm.User{ID: fmt.Sprintf("41508680000002%05d", i), Name: fmt.Sprintf("User %d", i),
			Email: fmt.Sprintf("u%d@example.com", i), Active: i != 7})
	}
	e.fake.SetUsers(users)
	got, err := e.src.Users(context.Background())
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(got) != 249 {
		t.Fatalf("Users returned %d, want the 249 active ones", len(got))
	}
	if got[0] != (crm.User{ID: users[0].ID, Name: "User 0", Email: "u0@example.com", Active: true}) {
		t.Errorf("first user = %+v", got[0])
	}
	for _, r := range e.fake.Requests() {
		if r.Query.Get("type") != "ActiveUsers" {
			t.Errorf("users request %s?%s without type=ActiveUsers", r.Path, r.Query.Encode())
		}
	}
}

func TestWebhook(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+1"}, Open: true})
	ct, body, ok := e.fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "c1"})
	if !ok {
		t.Fatal("no notification for a contact")
	}
	b, err := e.src.Webhook(ctx, ct, body)
	if err != nil || !slices.Equal(b.Refetch, []crm.Ref{{Kind: domain.KindContact, ID: "c1"}}) || len(b.Deleted)+len(b.Entities) != 0 {
		t.Fatalf("insert notification: %+v, %v; want a refetch of c1", b, err)
	}
	e.fake.Delete(crm.Ref{Kind: domain.KindContact, ID: "c1"})
	ct, body, _ = e.fake.Notification(crm.Ref{Kind: domain.KindContact, ID: "c1"})
	b, err = e.src.Webhook(ctx, ct, body)
	if err != nil || !slices.Equal(b.Deleted, []crm.Ref{{Kind: domain.KindContact, ID: "c1"}}) || len(b.Refetch) != 0 {
		t.Fatalf("delete notification: %+v, %v; want c1 deleted", b, err)
	}

	var creds struct {
		Token string `json:"webhook_token"`
	}
	_ = json.Unmarshal(e.fake.Creds(), &creds)
	note := func(module, op, ids, token string) []byte {
		return fmt.Appendf(nil, `{"server_time":1710000000000,"module":%q,"resource_uri":"https://www.zohoapis.com/crm/v8/%s",
			"ids":%s,"affected_fields":[{"Leads":["Phone"]}],"query_params":{},"channel_id":1000000068001,"operation":%q,"token":%q}`,
			module, module, ids, op, token)
	}
	b, err = e.src.Webhook(ctx, "application/json; charset=UTF-8", note("Leads", "update", `["1","2","1"]`, creds.Token))
	if err != nil || !slices.Equal(b.Refetch, []crm.Ref{{Kind: domain.KindLead, ID: "1"}, {Kind: domain.KindLead, ID: "2"}}) {
		t.Errorf("lead update: %+v, %v", b, err)
	}
	b, err = e.src.Webhook(ctx, "application/json", note("Accounts", "insert", `[4150868000000005001]`, creds.Token))
	if err != nil || !slices.Equal(b.Refetch, []crm.Ref{{Kind: domain.KindCompany, ID: "4150868000000005001"}}) {
		t.Errorf("numeric id: %+v, %v", b, err)
	}
	b, err = e.src.Webhook(ctx, "application/json", note("Tasks", "update", `["9"]`, creds.Token))
	if err != nil || len(b.Refetch)+len(b.Deleted)+len(b.Entities) != 0 {
		t.Errorf("module not synced: %+v, %v; want an empty batch", b, err)
	}
	for name, tc := range map[string]struct {
		ct   string
		body []byte
		code string
	}{
		"form body":         {"application/x-www-form-urlencoded", []byte("module=Leads"), domain.EINVALID},
		"not json":          {"application/json", []byte("hello"), domain.EINVALID},
		"array":             {"application/json", []byte(`[{"module":"Leads"}]`), domain.EINVALID},
		"empty object":      {"application/json", []byte(`{}`), domain.EINVALID},
		"no ids":            {"application/json", note("Leads", "update", `[]`, creds.Token), domain.EINVALID},
		"unknown operation": {"application/json", note("Leads", "merge", `["1"]`, creds.Token), domain.EINVALID},
		"wrong token":       {"application/json", note("Leads", "update", `["1"]`, "forged"), domain.EUNAUTHORIZED},
	} {
		if _, err := e.src.Webhook(ctx, tc.ct, tc.body); domain.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

// TestRefreshOnExpiry: the access token is refreshed before it expires,
// and stored before it is used.
func TestRefreshOnExpiry(t *testing.T) {
	e := setup(t)
	e.fake.SetHook(func(r *http.Request) {
		used := strings.TrimPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ")
		if stored := e.store.Token().Access; used != stored {
			t.Errorf("request with an access token that is not the stored one")
		}
	})
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users: %v", err)
	}
	first := e.store.Token()
	if e.fake.Refreshes() != 1 || first.Access == "" || first.Extra["api_domain"] != e.fake.URL() ||
		!first.Expiry.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("after the first call: %d refreshes, token expiry %v, extra %v", e.fake.Refreshes(), first.Expiry, first.Extra)
	}
	e.clock.Advance(56 * time.Minute) // within 5 minutes of expiry
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users: %v", err)
	}
	second := e.store.Token()
	if e.fake.Refreshes() != 2 || second.Access == first.Access {
		t.Fatalf("no refresh before expiry: %d refreshes", e.fake.Refreshes())
	}
	if second.Refresh != first.Refresh || second.Extra["api_domain"] != e.fake.URL() {
		t.Errorf("refresh token or api_domain changed by a refresh")
	}
	for _, r := range e.fake.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("a request was rejected: the token should have been refreshed first")
		}
	}
	if len(e.store.Saves) != 2 {
		t.Errorf("%d token saves, want 2", len(e.store.Saves))
	}
}

// TestRefreshOn401: Zoho rejects a token it expired early; the adapter
// refreshes once and repeats the request.
func TestRefreshOn401(t *testing.T) {
	e := setup(t)
	e.fake.SetUsers([]crm.User{{ID: "1", Name: "A", Active: true}})
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users: %v", err)
	}
	old := e.store.Token()
	e.fake.ExpireAccessTokens()
	users, err := e.src.Users(context.Background())
	if err != nil || len(users) != 1 {
		t.Fatalf("Users after expiry: %v, %v", users, err)
	}
	tok := e.store.Token()
	if e.fake.Refreshes() != 2 || tok.Access == old.Access || tok.Refresh != old.Refresh || tok.Extra["api_domain"] != e.fake.URL() {
		t.Errorf("after a 401: %d refreshes, refresh token kept %v, api_domain %q", e.fake.Refreshes(), tok.Refresh == old.Refresh, tok.Extra["api_domain"])
	}
	if last := e.store.Saves[len(e.store.Saves)-1]; last.Access != tok.Access {
		t.Errorf("the new access token was not saved")
	}
}

// TestConcurrentRefresh: many callers meeting one rejected token cause one
// refresh.
func TestConcurrentRefresh(t *testing.T) {
	e := setup(t)
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users: %v", err)
	}
	e.fake.ExpireAccessTokens()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.src.FindByPhone(context.Background(), "15550001111"); err != nil {
				t.Errorf("FindByPhone: %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.Refreshes(); n != 2 {
		t.Errorf("%d refreshes, want 2 (the first token and one after the expiry)", n)
	}
}

func TestRevoked(t *testing.T) {
	e := setup(t)
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users: %v", err)
	}
	e.fake.Revoke()
	_, err := e.src.Users(context.Background())
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.CRM != "zoho" || ae.Message != "invalid_code" || ae.Status != http.StatusOK {
		t.Fatalf("after revoke: %v, want *crm.AuthError with Zoho's invalid_code", err)
	}
	tok := e.store.Token()
	if strings.Contains(err.Error(), tok.Refresh) || strings.Contains(err.Error(), tok.Access) {
		t.Errorf("error %q carries a token", err)
	}
	if _, err := e.src.Full(context.Background(), ""); !crm.IsAuth(err) {
		t.Errorf("Full after revoke: %v, want an auth error", err)
	}
}

func TestBadClientSecret(t *testing.T) {
	e := setup(t)
	var creds map[string]string
	_ = json.Unmarshal(e.fake.Creds(), &creds)
	creds["client_secret"] = "wrong"
	b, _ := json.Marshal(creds)
	// The first request refreshes before it is sent (no access token yet).
	// NoSleep: crm.HTTP currently retries an Authorize error like a
	// transport error, with backoff.
	src, err := zoho.New(crm.Config{BaseURL: e.fake.URL(), Creds: b}, crm.Deps{Tokens: e.store, Now: e.clock.Now, Sleep: e.sleep.Sleep, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Users(context.Background())
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != "invalid_client" {
		t.Fatalf("bad client secret: %v, want *crm.AuthError invalid_client", err)
	}
}

// TestRefreshThrottled: Zoho's "too many requests" answer to refreshes is
// not a rejection of the credentials.
func TestRefreshThrottled(t *testing.T) {
	e := setup(t)
	for i := range 10 {
		e.fake.ExpireAccessTokens()
		if _, err := e.src.Users(context.Background()); err != nil {
			t.Fatalf("Users %d: %v", i, err)
		}
	}
	e.fake.ExpireAccessTokens()
	_, err := e.src.Users(context.Background())
	if err == nil || crm.IsAuth(err) || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("11th refresh in 10 minutes: %v, want a throttling error that is not an auth error", err)
	}
	e.clock.Advance(11 * time.Minute)
	if _, err := e.src.Users(context.Background()); err != nil {
		t.Fatalf("Users after the throttle: %v", err)
	}
}

// TestRefreshHangs: a token endpoint that never answers holds the caller
// no longer than its context.
func TestRefreshHangs(t *testing.T) {
	e := setup(t)
	e.fake.SetTokenDelay(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.src.Users(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("hanging refresh: %v after %v", err, time.Since(start))
	}
}

func TestRetry429(t *testing.T) {
	e := setup(t)
	e.fake.SetUsers([]crm.User{{ID: "1", Name: "A", Active: true}})
	e.fake.Inject429(2, 7*time.Second)
	users, err := e.src.Users(context.Background())
	if err != nil || len(users) != 1 {
		t.Fatalf("Users through 429s: %v, %v", users, err)
	}
	if !slices.Equal(e.sleep.Waits, []time.Duration{7 * time.Second, 7 * time.Second}) {
		t.Errorf("waits = %v, want Retry-After 7s twice", e.sleep.Waits)
	}
	e.fake.Inject429(10, 0)
	_, err = e.src.Users(context.Background())
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || !strings.HasPrefix(se.Message, "TOO_MANY_REQUESTS") {
		t.Fatalf("persistent 429: %v, want a status error with Zoho's code", err)
	}
}

// TestConcurrencyBound: a burst of live lookups never has more than 5
// requests in flight (the fake fails the test beyond that), and uses all 5.
func TestConcurrencyBound(t *testing.T) {
	e := setup(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+15550001111"}, Open: true})
	if _, err := e.src.Users(context.Background()); err != nil { // obtain a token first
		t.Fatalf("Users: %v", err)
	}
	e.fake.SetDelay(20 * time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			got, err := e.src.FindByPhone(context.Background(), "15550001111")
			if err != nil || len(got) != 1 {
				t.Errorf("FindByPhone: %v, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.MaxInFlight(); n != zoho.Concurrency {
		t.Errorf("max in flight = %d, want %d", n, zoho.Concurrency)
	}
	// The users list, the four modules' field metadata once, and per
	// lookup three searches and the found contact's deals.
	if n := e.fake.Meter().Count(); n != 1+4+20*4 {
		t.Errorf("%d metered requests, want %d", n, 1+4+20*4)
	}
}

// TestFakeIsAFake runs the adapter against the fake through the generic
// crmtest.Fake surface, as the sync engine's tests will.
func TestFakeIsAFake(t *testing.T) {
	var f crmtest.Fake = zohofake.New(t)
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+380501234567"}, OwnerID: "u1", Open: true})
	tok, _ := zoho.Seed(f.Creds())
	src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: f.URL(), Creds: f.Creds()}, crm.Deps{Tokens: crmtest.NewTokenStore(tok), Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.FindByPhone(context.Background(), "380501234567")
	if err != nil || len(got) != 1 || got[0].OwnerID != "u1" {
		t.Fatalf("FindByPhone = %+v, %v", got, err)
	}
	f.SetDelay(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := src.FindByPhone(ctx, "380501234567"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FindByPhone against a hanging CRM: %v, want the deadline", err)
	}
}
