package zoho_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho"
)

func TestPeopleUpsertListConvert(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	pp := e.src.(zoho.People)
	e.fake.SetUsers([]crm.User{{ID: "u1", Name: "Anna", Email: "anna@example.com", Active: true}})
	ids, err := pp.UpsertPeople(ctx, zoho.ModuleLeads, []zoho.Person{
		{FirstName: "Jan", LastName: "Kowalski", Email: "jan@example.com", Phone: "+48 600 100 200", Company: "Acme",
			City: "Kraków", State: "małopolskie", OptOut: true, OwnerID: "u1"},
		{LastName: "Nowak", Email: "ewa@example.com", Company: "Nowak"},
	})
	if err != nil || len(ids) != 2 || ids[0] == "" {
		t.Fatalf("upsert: %v %v", ids, err)
	}
	// The same e-mail again updates the lead, it does not add one.
	e.clock.Advance(time.Minute)
	again, err := pp.UpsertPeople(ctx, zoho.ModuleLeads, []zoho.Person{{LastName: "Kowalski", Email: "JAN@example.com", Company: "Acme", Fax: "+48 12 000", City: "Kraków", OptOut: true}})
	if err != nil || again[0] != ids[0] {
		t.Fatalf("upsert again: %v %v (first %s)", again, err, ids[0])
	}
	var all []zoho.Person
	for page := ""; ; {
		got, next, err := pp.ListPeople(ctx, zoho.ModuleLeads, time.Time{}, page)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
		if next == "" {
			break
		}
		page = next
	}
	if len(all) != 2 || all[1].Email != "JAN@example.com" || all[1].Fax != "+48 12 000" || all[1].OwnerMail != "anna@example.com" ||
		!all[1].OptOut || all[1].City != "Kraków" {
		t.Fatalf("listed = %+v", all)
	}
	// If-Modified-Since leaves out what did not change since.
	changed, _, err := pp.ListPeople(ctx, zoho.ModuleLeads, e.clock.Now().Add(-30*time.Second), "")
	if err != nil || len(changed) != 1 || changed[0].ID != ids[0] {
		t.Fatalf("changed = %+v, %v", changed, err)
	}
	contactID, err := pp.ConvertLead(ctx, ids[0])
	if err != nil || contactID == "" {
		t.Fatalf("convert: %q %v", contactID, err)
	}
	if _, err := pp.ConvertLead(ctx, ids[0]); err == nil || !strings.Contains(err.Error(), "already been converted") {
		t.Fatalf("second convert: %v", err)
	}
	contacts, _, err := pp.ListPeople(ctx, zoho.ModuleContacts, time.Time{}, "")
	if err != nil || len(contacts) != 1 || contacts[0].ID != contactID || contacts[0].Company != "Acme" || contacts[0].City != "Kraków" {
		t.Fatalf("contacts = %+v, %v", contacts, err)
	}
	leads, _, err := pp.ListPeople(ctx, zoho.ModuleLeads, time.Time{}, "")
	if err != nil || len(leads) != 1 || leads[0].Email != "ewa@example.com" {
		t.Fatalf("a converted lead leaves the list: %+v, %v", leads, err)
	}
	accs, err := pp.UpsertAccounts(ctx, []string{"Acme", "Other"})
	if err != nil || accs["Acme"] != contacts[0].AccountID || accs["Other"] == "" {
		t.Fatalf("accounts = %v, %v (contact's %s)", accs, err, contacts[0].AccountID)
	}
	// Refusals are Zoho's: a bad birthday on a contact, a lead without Company.
	_, err = pp.UpsertPeople(ctx, zoho.ModuleContacts, []zoho.Person{{LastName: "X", Email: "x@example.com", Birthday: "02.01.1980"}})
	if !crm.IsPermanent(err) || !strings.Contains(err.Error(), "INVALID_DATA") {
		t.Fatalf("bad birthday: %v", err)
	}
	_, err = pp.UpsertPeople(ctx, zoho.ModuleLeads, []zoho.Person{{LastName: "Y", Email: "y@example.com"}})
	if !crm.IsPermanent(err) || !strings.Contains(err.Error(), "MANDATORY_NOT_FOUND") {
		t.Fatalf("lead without company: %v", err)
	}
}
