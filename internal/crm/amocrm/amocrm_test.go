package amocrm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	oauth := `"client_id":"id","client_secret":"secret","redirect_uri":"https://cr.example/cb","refresh_token":"r"`
	for _, tc := range []struct {
		creds string
		want  string // error message, "" for none
	}{
		{`{` + oauth + `}`, ""},
		{`{` + oauth + `,"access_token":"a","expires_at":"2026-05-01T10:00:00Z"}`, ""},
		{`{"long_lived_token":"tok"}`, ""},
		{`{"crm":"amocrm","base_url":"https://acme.amocrm.ru","long_lived_token":"tok"}`, ""},
		{``, "credentials.client_id: required (or credentials.long_lived_token)"},
		{`{}`, "credentials.client_id: required (or credentials.long_lived_token)"},
		{`[1]`, "credentials: not a JSON object"},
		{`{"client_id":5}`, "credentials.client_id: must be a string"},
		{`{"client_id":"id","client_secret":"s","redirect_uri":"https://cr.example/cb"}`, "credentials.refresh_token: required"},
		{`{"client_secret":"s","redirect_uri":"https://cr.example/cb","refresh_token":"r"}`, "credentials.client_id: required"},
		{`{"client_id":"id","redirect_uri":"https://cr.example/cb","refresh_token":"r"}`, "credentials.client_secret: required"},
		{`{"client_id":"id","client_secret":"s","refresh_token":"r"}`, "credentials.redirect_uri: required"},
		{`{"client_id":"id","client_secret":"s","redirect_uri":"/cb","refresh_token":"r"}`, "credentials.redirect_uri: must be an absolute URL, as registered in the integration"},
		{`{` + oauth + `,"access_token":"a","expires_at":"tomorrow"}`, "credentials.expires_at: must be an RFC 3339 time such as 2026-05-01T10:00:00Z"},
		{`{` + oauth + `,"expires_at":"2026-05-01T10:00:00Z"}`, "credentials.access_token: required with expires_at"},
		{`{` + oauth + `,"long_lived_token":"tok"}`, "credentials.client_id: not allowed with long_lived_token; send one or the other"},
		{`{"long_lived_token":"a\nb"}`, "credentials.long_lived_token: must be one line"},
	} {
		err := amocrm.Adapter.Check(json.RawMessage(tc.creds))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%s) = %v, want nil", tc.creds, err)
		case tc.want != "" && (domain.ErrorCode(err) != domain.EINVALID || domain.ErrorMessage(err) != tc.want):
			t.Errorf("Check(%s) = %v, want EINVALID %q", tc.creds, err, tc.want)
		}
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	tok, ok := amocrm.Adapter.Seed(json.RawMessage(`{"client_id":"id","client_secret":"s","redirect_uri":"https://cr.example/cb",
		"refresh_token":"r1","access_token":"a1","expires_at":"2026-05-01T10:00:00+03:00"}`))
	want := crm.Token{Access: "a1", Refresh: "r1", Expiry: time.Date(2026, 5, 1, 7, 0, 0, 0, time.UTC)}
	if !ok || tok.Access != want.Access || tok.Refresh != want.Refresh || !tok.Expiry.Equal(want.Expiry) {
		t.Errorf("Seed(OAuth) = %+v, %v; want %+v, true", tok, ok, want)
	}
	tok, ok = amocrm.Adapter.Seed(json.RawMessage(`{"client_id":"id","client_secret":"s","redirect_uri":"https://cr.example/cb","refresh_token":"r1"}`))
	if !ok || tok.Access != "" || tok.Refresh != "r1" || !tok.Expiry.IsZero() {
		t.Errorf("Seed(refresh token only) = %+v, %v; want only the refresh token", tok, ok)
	}
	if _, ok := amocrm.Adapter.Seed(json.RawMessage(`{"long_lived_token":"t"}`)); ok {
		t.Error("Seed(long-lived token) ok = true, want false")
	}
	if _, ok := amocrm.Adapter.Seed(json.RawMessage(`{}`)); ok {
		t.Error("Seed({}) ok = true, want false")
	}
	if amocrm.Adapter.Name != "amocrm" {
		t.Errorf("Adapter.Name = %q", amocrm.Adapter.Name)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	creds := json.RawMessage(`{"client_id":"id","client_secret":"s","redirect_uri":"https://cr.example/cb","refresh_token":"r"}`)
	if _, err := amocrm.New(crm.Config{BaseURL: "http://acme.amocrm.ru", Creds: creds}, crm.Deps{Tokens: nil}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("New(plain http to a remote host) = %v, want EINVALID", err)
	}
	if _, err := amocrm.New(crm.Config{BaseURL: "https://acme.amocrm.ru", Creds: creds}, crm.Deps{}); err == nil {
		t.Error("New(OAuth without a token store) = nil error")
	}
	if _, err := amocrm.New(crm.Config{BaseURL: "https://acme.amocrm.ru", Creds: json.RawMessage(`{}`)}, crm.Deps{}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("New(empty creds) = %v, want EINVALID", err)
	}
}

func phoneOf(i int) string { return fmt.Sprintf("+38 (067) %07d", 1000000+i) }

func TestFullSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	start := e.clock.Now()
	// The first 300 contacts share one second, more than a page, so the
	// sync must page within a second; the rest spread over seconds.
	for i := 1; i <= 600; i++ {
		if i > 300 && i%7 == 0 {
			e.clock.Advance(time.Second)
		}
		c := crm.Entity{Kind: domain.KindContact, ID: strconv.Itoa(i), Name: fmt.Sprintf("Контакт %d", i), OwnerID: strconv.Itoa(100 + i%5)}
		if i%10 != 0 { // every tenth has no phone: custom_fields_values is null
			c.Phones = []string{phoneOf(i)}
		}
		if i == 1 {
			c.Phones = append(c.Phones, "8 (044) 555-00-01")
		}
		f.Put(c)
	}
	e.clock.Advance(time.Second)
	for j := 1; j <= 300; j++ { // more than a page, and more contacts than one filter[id][] request takes
		l := crm.Entity{Kind: domain.KindLead, ID: strconv.Itoa(j), Name: fmt.Sprintf("Сделка %d", j), OwnerID: strconv.Itoa(200 + j%3), Open: j%4 != 0}
		if j == 7 {
			l.Phones = []string{"+7 912 000-00-07"} // held by an auto contact
		}
		f.Put(l)
		if j != 7 {
			f.LinkContacts(int64(j), int64(j))
		}
	}
	f.LinkContacts(1, 2)
	f.SetLeadStatus(5, amocrmfake.StatusWon)
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "1", Name: "ООО Ромашка", OwnerID: "100", Phones: []string{"+380 44 000 00 01"}})
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "2", Name: "ТОВ Без телефону", OwnerID: "101"})
	for i := 3; i <= 260; i++ {
		f.Put(crm.Entity{Kind: domain.KindCompany, ID: strconv.Itoa(i), Name: fmt.Sprintf("Компанія %d", i), OwnerID: "102", Phones: []string{phoneOf(10000 + i)}})
	}

	r, cur := drain(t, e.src.Full, "")

	counts := map[domain.EntityKind]int{}
	for ref := range r.entities {
		counts[ref.Kind]++
	}
	if want := map[domain.EntityKind]int{domain.KindContact: 601, domain.KindLead: 300, domain.KindCompany: 260}; !mapsEqual(counts, want) {
		t.Errorf("entities by kind = %v, want %v (600 contacts and lead 7's auto contact)", counts, want)
	}
	if len(r.deleted) != 0 || len(r.refetch) != 0 {
		t.Errorf("full sync deleted %v, refetch %v; want none", r.deleted, r.refetch)
	}
	c1 := r.entity(t, contactRef(1))
	if want := []string{phoneOf(1), "8 (044) 555-00-01"}; !slices.Equal(c1.Phones, want) || c1.OwnerID != "101" || c1.Name != "Контакт 1" ||
		!c1.Open || !c1.UpdatedAt.Equal(start) {
		t.Errorf("contact 1 = %+v, want phones %q as stored, owner 101, open, updated %v", c1, want, start)
	}
	if c := r.entity(t, contactRef(3)); !slices.Equal(c.Phones, []string{phoneOf(3)}) {
		t.Errorf("contact 3 (with a checkbox field beside PHONE) phones = %q", c.Phones)
	}
	if c := r.entity(t, contactRef(10)); len(c.Phones) != 0 || c.OwnerID != "100" {
		t.Errorf("contact 10 (null custom_fields_values) = %+v, want no phones, owner 100", c)
	}
	for id, want := range map[int][]string{
		1:   {phoneOf(1), "8 (044) 555-00-01", phoneOf(2)},
		2:   {phoneOf(2)},
		7:   {"+7 912 000-00-07"},
		10:  nil,
		299: {phoneOf(299)},
	} {
		if l := r.entity(t, leadRef(id)); !slices.Equal(l.Phones, want) {
			t.Errorf("lead %d phones = %q, want its contacts' %q", id, l.Phones, want)
		}
	}
	for id, open := range map[int]bool{1: true, 4: false, 5: false, 6: true, 8: false} {
		if l := r.entity(t, leadRef(id)); l.Open != open {
			t.Errorf("lead %d Open = %v, want %v", id, l.Open, open)
		}
	}
	if l := r.entity(t, leadRef(3)); l.OwnerID != "200" || l.Name != "Сделка 3" {
		t.Errorf("lead 3 = %+v, want owner 200", l)
	}
	auto := crm.Ref{Kind: domain.KindContact, ID: "900000001"}
	if c := r.entity(t, auto); c.OwnerID != "" || !slices.Equal(c.Phones, []string{"+7 912 000-00-07"}) {
		t.Errorf("auto contact = %+v, want lead 7's phone and no owner", c)
	}
	if c := r.entity(t, companyRef(1)); !slices.Equal(c.Phones, []string{"+380 44 000 00 01"}) || c.OwnerID != "100" || !c.Open {
		t.Errorf("company 1 = %+v", c)
	}
	if c := r.entity(t, companyRef(2)); len(c.Phones) != 0 {
		t.Errorf("company 2 phones = %q, want none", c.Phones)
	}

	pages := map[string]int{}
	for _, req := range f.Requests() {
		path, query, _ := strings.Cut(strings.TrimPrefix(req, "GET "), "?")
		if strings.Contains(query, "order%5Bupdated_at%5D=asc") {
			pages[path]++
		}
		if strings.Count(query, "filter%5Bid%5D%5B%5D=") > 200 {
			t.Errorf("%s asks for more than 200 ids", path)
		}
	}
	for path, want := range map[string]int{"/api/v4/contacts": 4, "/api/v4/leads": 2, "/api/v4/companies": 2} {
		if pages[path] < want {
			t.Errorf("%s read in %d pages, want at least %d", path, pages[path], want)
		}
	}
	if r.batches < 4 {
		t.Errorf("full sync took %d batches, want one per page", r.batches)
	}
	if cur == "" {
		t.Error("the final batch has no cursor for incremental syncs")
	}
}

// TestFullSyncEdits changes and deletes records a full sync has read
// while it runs: paging by page number alone would then skip records that
// moved up a page; the keyset on updated_at must not.
func TestFullSyncEdits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	for i := 1; i <= 600; i++ {
		e.clock.Advance(time.Second)
		f.Put(crm.Entity{Kind: domain.KindContact, ID: strconv.Itoa(i), Name: fmt.Sprintf("Контакт %d", i), OwnerID: "100", Phones: []string{phoneOf(i)}})
	}
	b, err := e.src.Full(context.Background(), "")
	if err != nil || len(b.Entities) != 250 {
		t.Fatalf("first page: %d entities, %v", len(b.Entities), err)
	}
	e.clock.Advance(time.Second)
	for i := 1; i <= 10; i++ {
		f.Put(crm.Entity{Kind: domain.KindContact, ID: strconv.Itoa(i), Name: "Змінений", OwnerID: "101", Phones: []string{phoneOf(i)}})
	}
	for i := 11; i <= 20; i++ {
		f.Delete(contactRef(i))
	}
	r, _ := drain(t, e.src.Full, b.Cursor)
	for _, en := range b.Entities {
		if ref := (crm.Ref{Kind: en.Kind, ID: en.ID}); r.entities[ref].ID == "" {
			r.entities[ref] = en
		}
	}
	for i := 21; i <= 600; i++ {
		if _, ok := r.entities[contactRef(i)]; !ok {
			t.Errorf("contact %d skipped after records before it changed", i)
		}
	}
	for i := 1; i <= 10; i++ {
		if c := r.entity(t, contactRef(i)); c.OwnerID != "101" {
			t.Errorf("contact %d changed during the sync = %+v, want its new owner", i, c)
		}
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	for i := 1; i <= 30; i++ {
		if i%5 == 0 {
			e.clock.Advance(time.Second)
		}
		f.Put(crm.Entity{Kind: domain.KindContact, ID: strconv.Itoa(i), Name: fmt.Sprintf("Контакт %d", i), OwnerID: "100", Phones: []string{phoneOf(i)}})
	}
	for j := 1; j <= 10; j++ {
		e.clock.Advance(time.Second)
		f.Put(crm.Entity{Kind: domain.KindLead, ID: strconv.Itoa(j), Name: fmt.Sprintf("Сделка %d", j), OwnerID: "200", Open: true})
		f.LinkContacts(int64(j), int64(j))
	}
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "11", Name: "Сделка 11", OwnerID: "200", Open: true, Phones: []string{"+7 912 000-00-11"}})
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "1", Name: "ООО Ромашка", OwnerID: "100", Phones: []string{"+380 44 000 00 01"}})

	full, cur := drain(t, e.src.Full, "")
	boundary := map[domain.EntityKind]time.Time{} // latest update per kind
	for _, en := range full.entities {
		if en.UpdatedAt.After(boundary[en.Kind]) {
			boundary[en.Kind] = en.UpdatedAt
		}
	}

	e.clock.Advance(time.Minute)
	changedAt := e.clock.Now()
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "3", Name: "Контакт 3", OwnerID: "100", Phones: []string{"+38 (067) 777-77-77"}})
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "2", Name: "Сделка 2", OwnerID: "201", Open: true})
	f.SetLeadStatus(6, amocrmfake.StatusWon)
	f.Delete(contactRef(5))
	f.Delete(leadRef(11))
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "2", Name: "ТОВ Нова", OwnerID: "102", Phones: []string{"+380 44 000 00 02"}})
	e.clock.Advance(time.Second)

	inc, cur2 := drain(t, e.src.Changes, cur)
	if c := inc.entity(t, contactRef(3)); !slices.Equal(c.Phones, []string{"+38 (067) 777-77-77"}) {
		t.Errorf("changed contact 3 phones = %q", c.Phones)
	}
	if !inc.refetch[leadRef(3)] {
		t.Errorf("refetch = %v, want lead 3, whose contact's phone changed", inc.refetch)
	}
	if inc.refetch[leadRef(1)] {
		t.Error("refetch has lead 1, whose contact did not change")
	}
	if l := inc.entity(t, leadRef(2)); l.OwnerID != "201" || !slices.Equal(l.Phones, []string{phoneOf(2)}) {
		t.Errorf("lead 2 after a responsible change = %+v", l)
	}
	if l := inc.entity(t, leadRef(6)); l.Open {
		t.Error("lead 6 won, still Open")
	}
	if l := inc.entity(t, leadRef(5)); len(l.Phones) != 0 {
		t.Errorf("lead 5 lost its deleted contact but has phones %q", l.Phones)
	}
	if c := inc.entity(t, companyRef(2)); c.OwnerID != "102" || c.Name != "ТОВ Нова" {
		t.Errorf("new company 2 = %+v", c)
	}
	for _, d := range []crm.Ref{contactRef(5), leadRef(11), {Kind: domain.KindContact, ID: "900000001"}} {
		if !inc.deleted[d] {
			t.Errorf("deleted = %v, want %v in it", inc.deleted, d)
		}
	}
	changed := map[crm.Ref]bool{contactRef(3): true, leadRef(2): true, leadRef(6): true, leadRef(5): true, companyRef(2): true}
	for r, en := range inc.entities {
		if !changed[r] && !en.UpdatedAt.Equal(boundary[r.Kind]) {
			t.Errorf("unchanged %v (updated %v) in the incremental sync; only the full sync's last second (%v) is read again",
				r, en.UpdatedAt, boundary[r.Kind])
		}
	}

	// Nothing changed since: a pass reads at most the last second again.
	e.clock.Advance(time.Minute)
	again, cur3 := drain(t, e.src.Changes, cur2)
	for r, en := range again.entities {
		if en.UpdatedAt.Before(changedAt) {
			t.Errorf("second pass returned %v updated %v, before the last pass's changes", r, en.UpdatedAt)
		}
	}
	for d := range again.deleted {
		if !inc.deleted[d] {
			t.Errorf("second pass deleted %v, which the first did not", d)
		}
	}

	// Once the last changes are well in the past, a quiet pass reads
	// nothing again: four requests (three kinds and the events), all empty.
	e.clock.Advance(11 * time.Minute)
	_, cur4 := drain(t, e.src.Changes, cur3)
	n := len(f.Requests())
	quiet, cur5 := drain(t, e.src.Changes, cur4)
	if len(quiet.entities)+len(quiet.deleted)+len(quiet.refetch) != 0 {
		t.Errorf("quiet pass = %d entities, deleted %v, refetch %v; want nothing", len(quiet.entities), quiet.deleted, quiet.refetch)
	}
	if reqs := f.Requests()[n:]; len(reqs) != 4 {
		t.Errorf("quiet pass sent %d requests, want 4: %q", len(reqs), reqs)
	}

	// A change after that is seen, with the leads of a changed contact.
	e.clock.Advance(time.Second)
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "1", Name: "Контакт 1", OwnerID: "105", Phones: []string{phoneOf(1)}})
	last, _ := drain(t, e.src.Changes, cur5)
	if c := last.entity(t, contactRef(1)); c.OwnerID != "105" || !last.refetch[leadRef(1)] {
		t.Errorf("contact 1 after a responsible change = %+v, refetch %v; want owner 105 and lead 1 refetched", c, last.refetch)
	}
}

func TestCursorErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.src.Changes(ctx, ""); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf(`Changes("") = %v, want EINVALID`, err)
	}
	if _, err := e.src.Full(ctx, "garbage"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf(`Full("garbage") = %v, want EINVALID`, err)
	}
	b, err := e.src.Full(ctx, "") // an empty account: done at once
	if err != nil || !b.Done {
		t.Fatalf("Full on an empty account = %+v, %v; want done", b, err)
	}
	if _, err := e.src.Full(ctx, b.Cursor); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Full(incremental cursor) = %v, want EINVALID", err)
	}
	if len(e.fake.Requests()) != 3 {
		t.Errorf("empty full sync sent %d requests, want 3 (one per kind): %q", len(e.fake.Requests()), e.fake.Requests())
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "1", Name: "Іван", OwnerID: "100", Phones: []string{"+380501111111"}})
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "2", Name: "Петро", OwnerID: "101", Phones: []string{"+380502222222"}})
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "1", Name: "Угода 1", OwnerID: "200", Open: true})
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "2", Name: "Угода 2", OwnerID: "201", Open: true})
	f.LinkContacts(1, 1, 2)
	f.LinkContacts(2, 2)
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "1", Name: "ТОВ", OwnerID: "100", Phones: []string{"+380443333333"}})

	b, err := e.src.Get(context.Background(), []crm.Ref{contactRef(1), contactRef(2), leadRef(1), companyRef(1), contactRef(999), leadRef(998)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[crm.Ref]crm.Entity{}
	for _, en := range b.Entities {
		got[crm.Ref{Kind: en.Kind, ID: en.ID}] = en
	}
	if len(got) != 4 {
		t.Errorf("Get returned %d entities, want 4: %+v", len(got), b.Entities)
	}
	if l := got[leadRef(1)]; !slices.Equal(l.Phones, []string{"+380501111111", "+380502222222"}) || l.OwnerID != "200" {
		t.Errorf("lead 1 = %+v, want both contacts' phones", l)
	}
	if c := got[companyRef(1)]; !slices.Equal(c.Phones, []string{"+380443333333"}) {
		t.Errorf("company 1 = %+v", c)
	}
	if want := []crm.Ref{contactRef(999), leadRef(998)}; !slices.Equal(b.Deleted, want) {
		t.Errorf("Deleted = %v, want %v", b.Deleted, want)
	}
	// Lead 1 was read here; lead 2 takes contact 2's phone, so it is read again.
	if want := []crm.Ref{leadRef(2)}; !slices.Equal(b.Refetch, want) {
		t.Errorf("Refetch = %v, want %v", b.Refetch, want)
	}

	// One request per kind: the lead's contacts were read as contacts.
	if reqs := f.Requests(); len(reqs) != 3 {
		t.Errorf("Get sent %d requests, want 3: %q", len(reqs), reqs)
	}

	for _, bad := range []crm.Ref{{Kind: domain.KindDeal, ID: "1"}, {Kind: domain.KindContact, ID: "abc"}} {
		if _, err := e.src.Get(context.Background(), []crm.Ref{bad}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Get(%v) = %v, want EINVALID", bad, err)
		}
	}
}

func TestFindByPhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "1", Name: "Іван", OwnerID: "100", Phones: []string{"+380 (50) 123-45-67"}})
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "2", Name: "Іван (national)", OwnerID: "101", Phones: []string{"050-123-45-67"}})
	// amoCRM's search also finds this one (the query's digits are inside
	// its number), but it is another number.
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "3", Name: "Other", OwnerID: "102", Phones: []string{"+380 50 123 45 678"}})
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "4", Name: "Дружина", OwnerID: "103", Phones: []string{"+380 50 765 43 21"}})
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "1", Name: "Відкрита", OwnerID: "200", Open: true})
	f.LinkContacts(1, 1, 4)
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "2", Name: "Закрита", OwnerID: "201", Open: false})
	f.LinkContacts(2, 2)
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "3", Name: "Чужа", OwnerID: "202", Open: true})
	f.LinkContacts(3, 3)

	got, err := e.src.FindByPhone(context.Background(), "380501234567")
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[crm.Ref]crm.Entity{}
	for _, en := range got {
		byRef[crm.Ref{Kind: en.Kind, ID: en.ID}] = en
	}
	for _, r := range []crm.Ref{contactRef(1), contactRef(2), leadRef(1), leadRef(2)} {
		if _, ok := byRef[r]; !ok {
			t.Errorf("FindByPhone lacks %v: %+v", r, got)
		}
	}
	if len(byRef) != 4 {
		t.Errorf("FindByPhone = %d entities, want 4 (not contact 3 nor lead 3): %+v", len(byRef), got)
	}
	if l := byRef[leadRef(1)]; l.OwnerID != "200" || !l.Open || !slices.Equal(l.Phones, []string{"+380 (50) 123-45-67", "+380 50 765 43 21"}) {
		t.Errorf("lead 1 = %+v, want open, owner 200, both contacts' phones", l)
	}
	if l := byRef[leadRef(2)]; l.Open {
		t.Errorf("closed lead 2 = %+v, want Open false", l)
	}
	reqs := f.Requests()
	if !slices.ContainsFunc(reqs, func(r string) bool { return strings.Contains(r, "query=0501234567") }) {
		t.Errorf("no search by the last ten digits in %q", reqs)
	}

	n := len(f.Requests())
	got, err = e.src.FindByPhone(context.Background(), "380999999999")
	if err != nil || len(got) != 0 {
		t.Errorf("FindByPhone(unknown) = %+v, %v; want nothing, nil (amoCRM answers 204)", got, err)
	}
	if reqs := f.Requests()[n:]; len(reqs) != 1 {
		t.Errorf("a miss took %d requests, want 1: %q", len(reqs), reqs)
	}
	if _, err := e.src.FindByPhone(context.Background(), "+"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FindByPhone(no digits) = %v, want EINVALID", err)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	f := amocrmfake.New(t)
	var users []crm.User
	for i := 1; i <= 300; i++ {
		users = append(users, crm.User{ID: strconv.Itoa(1000 + i), Name: fmt.Sprintf("Менеджер %d", i),
			Email: fmt.Sprintf("m%d@example.com", i), Active: i%7 != 0})
	}
	f.SetUsers(users)
	// Long-lived token, and a base URL pasted with the API path.
	src, err := amocrm.New(crm.Config{BaseURL: f.URL() + "/api/v4/", Creds: f.LongLivedCreds()}, crm.Deps{Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, users) {
		t.Errorf("Users = %d users, want the 300 set (first %+v, got %+v)", len(got), users[0], got[:min(1, len(got))])
	}
	if n := len(f.Requests()); n != 2 {
		t.Errorf("Users took %d requests, want 2 pages of 250", n)
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.fake
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "3", Name: "Іван Петренко", OwnerID: "100", Phones: []string{"+380501111111", "+380502222222"}})
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "4", Name: "Угода", OwnerID: "200", Open: true})
	f.Put(crm.Entity{Kind: domain.KindCompany, ID: "5", Name: "ТОВ", OwnerID: "100"})
	f.Put(crm.Entity{Kind: domain.KindContact, ID: "6", Name: "Видалений", OwnerID: "100"})
	f.Delete(contactRef(6))
	ctx := context.Background()

	for _, tc := range []struct {
		ref              crm.Ref
		refetch, deleted []crm.Ref
	}{
		{ref: contactRef(3), refetch: []crm.Ref{contactRef(3)}},
		{ref: leadRef(4), refetch: []crm.Ref{leadRef(4)}},
		{ref: companyRef(5), refetch: []crm.Ref{companyRef(5)}},
		{ref: contactRef(6), deleted: []crm.Ref{contactRef(6)}},
	} {
		ct, body, ok := f.Notification(tc.ref)
		if !ok {
			t.Fatalf("no notification for %v", tc.ref)
		}
		b, err := e.src.Webhook(ctx, ct, body)
		if err != nil || !slices.Equal(b.Refetch, tc.refetch) || !slices.Equal(b.Deleted, tc.deleted) || len(b.Entities) != 0 {
			t.Errorf("Webhook(%s) = %+v, %v; want refetch %v, deleted %v", body, b, err, tc.refetch, tc.deleted)
		}
	}
	if _, _, ok := f.Notification(crm.Ref{Kind: domain.KindDeal, ID: "1"}); ok {
		t.Error("a notification for a deal, which amoCRM has not")
	}

	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, ct, body   string
		refetch, deleted []crm.Ref
	}{
		{name: "lead status", ct: form,
			body: "leads%5Bstatus%5D%5B0%5D%5Bid%5D=25399013&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142&leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=3104455" +
				"&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=30002413&account%5Bid%5D=29138932&account%5Bsubdomain%5D=acme",
			refetch: []crm.Ref{leadRef(25399013)}},
		{name: "raw brackets, several entities and actions", ct: form + "; charset=UTF-8",
			body: "contacts[delete][0][id]=5&contacts[delete][0][type]=contact&contacts[add][0][id]=6&contacts[add][0][type]=company" +
				"&contacts[add][0][name]=%D0%A2%D0%9E%D0%92&leads[responsible][0][id]=7&leads[responsible][0][responsible_user_id]=3" +
				"&leads[responsible][0][old_responsible_user_id]=2&companies[update][0][id]=8&contacts[update][1][id]=5" +
				"&contacts[update][0][id]=9&contacts[update][0][custom_fields][0][values][0][value]=%2B380501234567&account[subdomain]=acme",
			deleted: []crm.Ref{contactRef(5)},
			refetch: []crm.Ref{companyRef(6), companyRef(8), contactRef(9), leadRef(7)}},
		{name: "note only", ct: form, body: "contacts[note][0][note][element_id]=5&contacts[note][0][note][text]=hi&account[id]=1"},
		{name: "no content type", body: "leads[add][0][id]=12&account[id]=1", refetch: []crm.Ref{leadRef(12)}},
	} {
		b, err := e.src.Webhook(ctx, tc.ct, []byte(tc.body))
		if err != nil || !slices.Equal(b.Refetch, tc.refetch) || !slices.Equal(b.Deleted, tc.deleted) {
			t.Errorf("%s: Webhook = %+v, %v; want refetch %v, deleted %v", tc.name, b, err, tc.refetch, tc.deleted)
		}
	}

	for _, tc := range []struct{ name, ct, body string }{
		{"JSON", "application/json", `{"leads":{"update":[{"id":1}]}}`},
		{"not a form", form, "hello world"},
		{"bad escape", form, "leads[update][0][id]=%zz"},
		{"bad id", form, "leads[update][0][id]=abc&account[id]=1"},
		{"empty", form, ""},
	} {
		if _, err := e.src.Webhook(ctx, tc.ct, []byte(tc.body)); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: Webhook = %v, want EINVALID", tc.name, err)
		}
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("parsing webhooks sent %d requests, want none", n)
	}
}
