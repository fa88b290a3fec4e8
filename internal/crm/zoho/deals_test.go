package zoho_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// dealWorld puts a contact, an account and an open deal linked to both
// through Contact_Name and Account_Name, the deal owned by u9.
func dealWorld(t *testing.T, e *env) {
	t.Helper()
	e.fake.PutRecord("Contacts", map[string]any{"id": "c1", "Full_Name": "Jane Roe", "Last_Name": "Roe",
		"Phone": "+380501111111", "Owner": map[string]any{"id": "u1"}})
	e.fake.PutRecord("Contacts", map[string]any{"id": "c2", "Full_Name": "John Roe", "Last_Name": "Roe",
		"Mobile": "+380502222222", "Owner": map[string]any{"id": "u2"}})
	e.fake.PutRecord("Accounts", map[string]any{"id": "a1", "Account_Name": "Roe Ltd", "Phone": "+380443333333",
		"Owner": map[string]any{"id": "u1"}})
	e.fake.PutRecord("Deals", map[string]any{"id": "d1", "Deal_Name": "Roof", "Stage": "Qualification",
		"Contact_Name": map[string]any{"id": "c1", "name": "Jane Roe"}, "Account_Name": map[string]any{"id": "a1", "name": "Roe Ltd"},
		"Owner": map[string]any{"id": "u9"}})
}

// TestDealsIndexedByContactAndAccountPhones: a full sync indexes a deal
// under its contact's and account's phones, never asking Zoho for deal
// fields the standard layout lacks.
func TestDealsIndexedByContactAndAccountPhones(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	got, _ := full(t, e.src)
	d := got[crm.Ref{Kind: domain.KindDeal, ID: "d1"}]
	if d.OwnerID != "u9" || !d.Open || !slices.Equal(d.Phones, []string{"+380501111111", "+380443333333"}) {
		t.Errorf("deal = %+v, want owner u9, open, the phones of c1 and a1", d)
	}
	for _, r := range e.fake.Requests() {
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent && r.Status != http.StatusNotModified {
			t.Errorf("%s %s?%s answered %d", r.Method, r.Path, r.Query.Encode(), r.Status)
		}
		if r.Path == "/crm/v8/Deals" {
			for f := range strings.SplitSeq(r.Query.Get("fields"), ",") {
				if f == "Phone" || f == "Mobile" {
					t.Errorf("deals listed with fields=%s: the standard layout has no %s", r.Query.Get("fields"), f)
				}
			}
		}
	}
}

// TestDealsFollowTheirContact: a contact's new phone moves its deals in the
// next round of changes, and so does a deal moved to another contact.
func TestDealsFollowTheirContact(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	_, cursor := full(t, e.src)
	e.clock.Advance(10 * 60e9)

	e.fake.PutRecord("Contacts", map[string]any{"id": "c1", "Full_Name": "Jane Roe", "Last_Name": "Roe",
		"Phone": "+380507777777", "Owner": map[string]any{"id": "u1"}})
	got, _, cursor := changes(t, e.src, cursor)
	d, ok := got[crm.Ref{Kind: domain.KindDeal, ID: "d1"}]
	if !ok || !slices.Equal(d.Phones, []string{"+380507777777", "+380443333333"}) {
		t.Fatalf("after c1's phone changed: deal = %+v (present %v), want c1's new phone and a1's", d, ok)
	}
	e.clock.Advance(10 * 60e9)

	e.fake.PutRecord("Deals", map[string]any{"id": "d1", "Deal_Name": "Roof", "Stage": "Qualification",
		"Contact_Name": map[string]any{"id": "c2", "name": "John Roe"}, "Owner": map[string]any{"id": "u9"}})
	got, _, _ = changes(t, e.src, cursor)
	d = got[crm.Ref{Kind: domain.KindDeal, ID: "d1"}]
	if !slices.Equal(d.Phones, []string{"+380502222222"}) {
		t.Errorf("after d1 moved to c2 (no account): deal phones = %v, want c2's", d.Phones)
	}
}

// TestGetContactBringsItsDeals: a notification about a contact (read with
// Get) re-reads its deals with the contact's phones.
func TestGetContactBringsItsDeals(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	b, err := e.src.Get(context.Background(), []crm.Ref{{Kind: domain.KindContact, ID: "c1"}})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var deal *crm.Entity
	for i := range b.Entities {
		if b.Entities[i].Kind == domain.KindDeal {
			deal = &b.Entities[i]
		}
	}
	if deal == nil || deal.ID != "d1" || !slices.Equal(deal.Phones, []string{"+380501111111", "+380443333333"}) {
		t.Errorf("Get(c1) = %+v, want c1 and deal d1 with c1's and a1's phones", b.Entities)
	}
	b, err = e.src.Get(context.Background(), []crm.Ref{{Kind: domain.KindDeal, ID: "d1"}})
	if err != nil || len(b.Entities) != 1 || !slices.Equal(b.Entities[0].Phones, []string{"+380501111111", "+380443333333"}) {
		t.Errorf("Get(d1) = %+v, %v; want the deal with its customer's phones", b.Entities, err)
	}
}

// TestFindByPhoneFindsDealThroughContact: a live lookup of the contact's
// phone returns the open deal with the deal's owner.
func TestFindByPhoneFindsDealThroughContact(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	got, err := e.src.FindByPhone(context.Background(), "380501111111")
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	var refs []string
	for _, ent := range got {
		refs = append(refs, string(ent.Kind)+":"+ent.ID+":"+ent.OwnerID)
	}
	slices.Sort(refs)
	if !slices.Equal(refs, []string{"contact:c1:u1", "deal:d1:u9"}) {
		t.Errorf("FindByPhone = %v, want c1 and its deal d1 (owner u9)", refs)
	}
}

// TestCustomDealPhoneField: where an account added a phone field to Deals,
// the deal's own phone is read, indexed and searched.
func TestCustomDealPhoneField(t *testing.T) {
	e := setup(t)
	e.fake.AddField("Deals", "Deal_Phone", "phone")
	e.fake.PutRecord("Deals", map[string]any{"id": "d2", "Deal_Name": "Solo", "Stage": "Qualification",
		"Deal_Phone": "+380509999999", "Owner": map[string]any{"id": "u5"}})
	got, _ := full(t, e.src)
	if d := got[crm.Ref{Kind: domain.KindDeal, ID: "d2"}]; !slices.Equal(d.Phones, []string{"+380509999999"}) {
		t.Errorf("deal with a custom phone field = %+v", d)
	}
	found, err := e.src.FindByPhone(context.Background(), "380509999999")
	if err != nil || len(found) != 1 || found[0].ID != "d2" {
		t.Errorf("FindByPhone of the deal's own phone = %+v, %v; want d2", found, err)
	}
}

// TestFieldMetadataOncePerConnection: the layouts are read once per
// connection, not per sync or lookup.
func TestFieldMetadataOncePerConnection(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	_, cursor := full(t, e.src)
	changes(t, e.src, cursor)
	if _, err := e.src.FindByPhone(context.Background(), "380501111111"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range e.fake.Requests() {
		if r.Path == "/crm/v8/settings/fields" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d field metadata reads, want 4 (one per module)", n)
	}
}

// TestUnreadableMetadataFallsBackToStandardLayout: a token without the
// scope to read field metadata still syncs with the standard layout, and
// MissingFields says why it cannot tell.
func TestUnreadableMetadataFallsBackToStandardLayout(t *testing.T) {
	e := setup(t)
	dealWorld(t, e)
	e.fake.RefuseFieldMetadata()
	got, _ := full(t, e.src)
	if d := got[crm.Ref{Kind: domain.KindDeal, ID: "d1"}]; !slices.Equal(d.Phones, []string{"+380501111111", "+380443333333"}) {
		t.Errorf("deal = %+v, want the phones of c1 and a1", d)
	}
	if _, err := e.src.(crm.FieldChecker).MissingFields(context.Background()); err == nil || !strings.Contains(err.Error(), "ZohoCRM.settings.fields.READ") {
		t.Errorf("MissingFields without metadata: %v, want an error naming the scope", err)
	}
}

// TestFirstLookupReadsLayoutsAtOnce: the first live lookup of a connection
// reads the four modules' field metadata in parallel, not one after
// another, so it fits a call's routing budget.
func TestFirstLookupReadsLayoutsAtOnce(t *testing.T) {
	e := setup(t)
	if _, err := e.src.Users(context.Background()); err != nil { // obtain a token first
		t.Fatal(err)
	}
	e.fake.SetDelay(30 * time.Millisecond)
	if _, err := e.src.FindByPhone(context.Background(), "380501111111"); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.MaxInFlight(); n != 4 {
		t.Errorf("max requests in flight = %d, want 4 (the four layouts at once)", n)
	}
}
