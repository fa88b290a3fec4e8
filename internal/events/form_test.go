package events_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
)

// mapFields sets the tenant's form and call mappings onto the fake
// account's custom fields.
func mapFields(t *testing.T, w *world) {
	t.Helper()
	contactField, dealField := w.fake.CustomField("contact"), w.fake.CustomField("deal")
	patch := admin.SettingsPatch{
		FormMapping: admin.Give(domain.Mapping{
			domain.MapContact: {{CRMField: contactField, Source: "ringostat", Value: "landing"},
				{CRMField: "name", Source: "form", Value: "name,first-name"},
				{CRMField: "tags", Source: "constant", Value: "Website"}},
			domain.MapDeal: {{CRMField: dealField, Source: "form", Value: "visit_id, visit"}},
		}),
		CallMapping: admin.Give(domain.Mapping{
			domain.MapDeal: {{CRMField: dealField, Source: "ringostat", Value: "roistat"}},
		}),
	}
	if _, err := w.admin.PatchTenant(context.Background(), "test", "acme", admin.TenantPatch{SettingsPatch: patch}); err != nil {
		t.Fatal(err)
	}
}

// TestFormCreatesContactDealTask: a form with a new phone makes a contact,
// a deal in the default pipeline and a task for the default owner, in that
// order, with the mapped fields and the automation tag; the same post
// again makes nothing more.
func TestFormCreatesContactDealTask(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		mapFields(t, w)
		form := map[string]string{"phone": "+38 (067) 100-09-01", "first-name": "Ivan", "email": "Ivan@Example.com",
			"landing": "https://shop.example/a", "visit": "12345", "utm_source": "google"}
		id := w.post(domain.EventForm, form)
		if again := w.post(domain.EventForm, form); again != id {
			t.Fatalf("a double post stored a second event: %s and %s", id, again)
		}
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone {
			t.Fatalf("form event: %q %q", ev.State, ev.Note)
		}
		wr := w.fake.Written()
		if len(wr.Contacts) != 1 {
			t.Fatalf("contacts %+v, want one", wr.Contacts)
		}
		c := wr.Contacts[0]
		if c.Phone != "380671000901" || c.Name != "Ivan" || c.OwnerID != olga {
			t.Errorf("contact %+v", c)
		}
		if got := c.Fields[w.fake.CustomField("contact")]; got != "https://shop.example/a" {
			t.Errorf("mapped contact field: %q (contact %+v)", got, c)
		}
		l := oneLead(t, wr, "380671000901")
		if l.Pipeline != "" || l.OwnerID != olga || l.UTM.Source != "google" || !strings.Contains(l.Title, "Ivan") {
			t.Errorf("deal %+v", l)
		}
		if got := l.Fields[w.fake.CustomField("deal")]; got != "12345" {
			t.Errorf("mapped deal field: %q (deal %+v)", got, l)
		}
		if l.ContactID != "" && l.ContactID != c.ID {
			t.Errorf("deal linked to %s, want the form's contact %s", l.ContactID, c.ID)
		}
		if w.crmName() == "amocrm" && (!slices.Contains(c.Tags, events.FormTag) || !slices.Contains(c.Tags, "Website") ||
			!slices.Contains(l.Tags, events.FormTag)) {
			t.Errorf("amoCRM tags: contact %q deal %q", c.Tags, l.Tags)
		}
		task := taskFor(t, wr, l.ID, c.ID)
		if task.UserID != olga || !strings.Contains(task.Text, "Ivan") {
			t.Errorf("task %+v", task)
		}
		if !(c.Seq < l.Seq && l.Seq < task.Seq) {
			t.Errorf("order contact %d, deal %d, task %d; want contact → deal → task", c.Seq, l.Seq, task.Seq)
		}
		if got := w.target("0671000901"); got != "sip_olga" {
			t.Errorf("the form's client routes to the deal's owner at once: %q", got)
		}

		// The same client sends the form again later: found, nothing new
		// but the task.
		w.clock.Advance(3600e9)
		again := w.post(domain.EventForm, form)
		w.mustDrain()
		if ev := w.event(again); ev.State != domain.EventDone || !strings.Contains(ev.Note, "client found") {
			t.Fatalf("repeated form: %q %q", ev.State, ev.Note)
		}
		wr = w.fake.Written()
		if len(wr.Contacts) != 1 || len(leadsOf(wr, "380671000901")) != 1 || len(wr.Tasks) != 2 {
			t.Errorf("a known client's form made contacts %d, deals %d, tasks %d; want 1, 1, 2",
				len(wr.Contacts), len(leadsOf(wr, "380671000901")), len(wr.Tasks))
		}
	})
}

// TestCallMappingFillsDealField: a call's Ringostat variable (roistat)
// goes into the mapped field of the lead it creates.
func TestCallMappingFillsDealField(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		mapFields(t, w)
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "r1", "caller": "380671000911", "roistat": "777",
			"disposition": "ANSWERED", "billsec": "9", "employee_number": "sip_anna"})
		w.mustDrain()
		l := oneLead(t, w.fake.Written(), "380671000911")
		if got := l.Fields[w.fake.CustomField("deal")]; got != "777" {
			t.Errorf("roistat in the lead's mapped field: %q (lead %+v)", got, l)
		}
	})
}

// TestFormRowNothing: form_entities [] makes a form create nothing.
func TestFormRowNothing(t *testing.T) {
	each(t, domain.Settings{FormEntities: []string{}}, func(t *testing.T, w *world, _ bool) {
		id := w.post(domain.EventForm, map[string]string{"phone": "380671000921"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone || !strings.Contains(ev.Note, "creates nothing") {
			t.Fatalf("form event: %q %q", ev.State, ev.Note)
		}
		if wr := w.fake.Written(); len(wr.Contacts)+len(wr.Leads)+len(wr.Tasks) != 0 {
			t.Fatalf("an empty form row created %+v", wr)
		}
	})
}

// TestMappingUnknownFieldRefusedOnSave: where the CRM lists its fields
// (amoCRM, Zoho CRM, retailCRM) a mapping naming a field the account
// lacks is refused when saved, naming it; Uspacy's is saved and left to
// the CRM.
func TestMappingUnknownFieldRefusedOnSave(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		mapFields(t, w) // the account's own fields are accepted
		_, err := w.admin.PatchTenant(context.Background(), "test", "acme",
			admin.TenantPatch{SettingsPatch: admin.SettingsPatch{FormMapping: admin.Give(domain.Mapping{
				domain.MapDeal: {{CRMField: "No_Such_Field_999", Source: "constant", Value: "x"}}})}})
		if w.crmName() == "uspacy" {
			if err != nil {
				t.Fatalf("Uspacy lists no fields, the mapping is saved: %v", err)
			}
			return
		}
		if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "form_mapping.deal[0].crm_field:") ||
			!strings.Contains(domain.ErrorMessage(err), "No_Such_Field_999") {
			t.Fatalf("an unknown field: %v", err)
		}
	})
}

// TestFormWithOnlyEmailFindsContact: a form carrying only an e-mail finds
// the contact an earlier form made by searching the CRM by e-mail, and
// makes no second contact or deal.
func TestFormWithOnlyEmailFindsContact(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		w.post(domain.EventForm, map[string]string{"phone": "0671000931", "email": "olena@example.com", "name": "Olena"})
		w.mustDrain()
		w.clock.Advance(3600e9)
		id := w.post(domain.EventForm, map[string]string{"email": "Olena@Example.com", "message": "call me"})
		w.mustDrain()
		ev := w.event(id)
		wr := w.fake.Written()
		if ev.State != domain.EventDone || !strings.Contains(ev.Note, "client found") {
			t.Fatalf("e-mail-only form: %q %q", ev.State, ev.Note)
		}
		if len(wr.Contacts) != 1 || len(wr.Leads) != 1 || len(wr.Tasks) != 2 {
			t.Fatalf("contacts %d, deals %d, tasks %d; want 1, 1, 2 (only the task is new)", len(wr.Contacts), len(wr.Leads), len(wr.Tasks))
		}
		if tk := wr.Tasks[1]; tk.ContactID != wr.Contacts[0].ID && tk.LeadID == "" {
			t.Errorf("the task is not linked to the found contact: %+v", tk)
		}
	})
}

// TestFormUpdatesFoundClient: a form from a client the CRM has writes its
// mapped fields onto the found contact and open deal (found → update):
// fields the form fills change, fields it leaves empty keep their values,
// and the deal's UTM, once set, is not overwritten.
func TestFormUpdatesFoundClient(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		mapFields(t, w)
		contactField, dealField := w.fake.CustomField("contact"), w.fake.CustomField("deal")
		w.post(domain.EventForm, map[string]string{"phone": "0671000961", "name": "Taras", "landing": "https://a.example/1",
			"visit": "v1", "utm_source": "google"})
		w.mustDrain()
		wr := w.fake.Written()
		if len(wr.Contacts) != 1 {
			t.Fatalf("contacts %+v, want one", wr.Contacts)
		}
		contact := crm.Ref{Kind: domain.KindContact, ID: wr.Contacts[0].ID}
		l := oneLead(t, wr, "380671000961")
		deal := crm.Ref{Kind: l.Kind, ID: l.ID}

		w.clock.Advance(3600e9)
		id := w.post(domain.EventForm, map[string]string{"phone": "+380671000961", "landing": "https://a.example/2",
			"utm_source": "bing"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone || !strings.Contains(ev.Note, "contact "+contact.ID+" updated") {
			t.Fatalf("second form: %q %q", ev.State, ev.Note)
		}
		if got := w.fake.Fields(contact)[contactField]; got != "https://a.example/2" {
			t.Errorf("the found contact's mapped field: %q, want the second form's", got)
		}
		if got := w.fake.Fields(deal)[dealField]; got != "v1" {
			t.Errorf("the deal's field the second form left empty: %q, want v1 kept", got)
		}
		if u := w.fake.UTM(deal); u.Source != "google" {
			t.Errorf("the deal's UTM source %q, want google kept", u.Source)
		}

		w.clock.Advance(3600e9)
		id = w.post(domain.EventForm, map[string]string{"phone": "380671000961", "visit": "v3"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone || !strings.Contains(ev.Note, string(deal.Kind)+" "+deal.ID+" updated") {
			t.Fatalf("third form: %q %q", ev.State, ev.Note)
		}
		if got := w.fake.Fields(deal)[dealField]; got != "v3" {
			t.Errorf("the found deal's mapped field: %q, want v3", got)
		}
		if got := w.fake.Fields(contact)[contactField]; got != "https://a.example/2" {
			t.Errorf("the contact's field the third form left empty: %q, want it kept", got)
		}
		if wr := w.fake.Written(); len(wr.Contacts) != 1 || len(leadsOf(wr, "380671000961")) != 1 {
			t.Errorf("updates created contacts %d, deals %d; want 1, 1", len(wr.Contacts), len(leadsOf(wr, "380671000961")))
		}
	})
}

// TestFormFillsUTMOfFoundDealWithout: a found open deal without UTM gets
// the form's, by the UTM rule.
func TestFormFillsUTMOfFoundDealWithout(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		ref := w.known("71001", "380671000962", anna)
		id := w.post(domain.EventForm, map[string]string{"phone": "380671000962", "utm_source": "newsletter"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone || !strings.Contains(ev.Note, "UTM written") {
			t.Fatalf("form: %q %q", ev.State, ev.Note)
		}
		if u := w.fake.UTM(ref); u.Source != "newsletter" {
			t.Errorf("UTM %+v", u)
		}
	})
}

// TestFormFoundDealDeletedSinceIndexed: a form whose client's open deal was
// deleted in the CRM after the index read it is not failed by the CRM's
// refusal of the update: the deal is dropped and a new one made.
func TestFormFoundDealDeletedSinceIndexed(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		mapFields(t, w)
		ref := w.known("71002", "380671000963", anna)
		w.fake.Delete(ref) // no sync: the index still has it
		id := w.post(domain.EventForm, map[string]string{"phone": "380671000963", "visit": "v9"})
		w.mustDrain()
		ev := w.event(id)
		if ev.State != domain.EventDone {
			t.Fatalf("form: %q %q", ev.State, ev.Note)
		}
		ls := leadsOf(w.fake.Written(), "380671000963")
		if len(ls) != 1 || ls[0].Fields[w.fake.CustomField("deal")] != "v9" {
			t.Fatalf("deals made %+v (note %q), want one new deal with the form's field", ls, ev.Note)
		}
	})
}

// TestFormWithOnlyClientIDFindsTheCaller: a form carrying only Ringostat's
// client_id (the visitor's Google Analytics id) finds the client by the
// earlier call that carried the same id: no second lead or contact, the
// form's task for that client; an id no kept event carries stays "no
// client".
func TestFormWithOnlyClientIDFindsTheCaller(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "ga1", "caller": "380671000941", "disposition": "NO ANSWER",
			"client_id": "GA1.2.777.888"})
		w.mustDrain()
		before := w.fake.Written()
		if len(leadsOf(before, "380671000941")) != 1 {
			t.Fatalf("the missed call made leads %+v, want one", before.Leads)
		}
		w.clock.Advance(3600e9)
		id := w.post(domain.EventForm, map[string]string{"client_id": "GA1.2.777.888", "message": "call me"})
		unknown := w.post(domain.EventForm, map[string]string{"client_id": "GA1.2.777.88", "message": "hello"})
		w.mustDrain()
		ev := w.event(id)
		if ev.State != domain.EventDone || !strings.Contains(ev.Note, "client by client_id") || !strings.Contains(ev.Note, "client found") {
			t.Fatalf("client_id-only form: %q %q", ev.State, ev.Note)
		}
		// Found: no second deal; a contact only where the missed call's
		// lead had none (the form row makes what the client lacks).
		wr := w.fake.Written()
		if len(leadsOf(wr, "380671000941")) != 1 || len(wr.Contacts) > 1 || len(wr.Tasks) != len(before.Tasks)+1 {
			t.Errorf("after the form: leads %d, contacts %d → %d, tasks %d → %d; want one lead, at most one contact, one task more",
				len(leadsOf(wr, "380671000941")), len(before.Contacts), len(wr.Contacts), len(before.Tasks), len(wr.Tasks))
		}
		for _, c := range wr.Contacts {
			if c.Phone != "380671000941" {
				t.Errorf("contact %+v, want the caller's number", c)
			}
		}
		if ev := w.event(unknown); ev.State != domain.EventDone || ev.Note != "no client phone or e-mail" {
			t.Errorf("a form with a client_id no event carries: %q %q", ev.State, ev.Note)
		}
	})
}
