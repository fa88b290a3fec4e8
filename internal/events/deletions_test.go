package events_test

import (
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// A call from the number of an entity deleted in the CRM after the index
// read it (no sync or webhook since) is filed as for a new client: the
// CRM refuses the write linked to the dead entity, the processor finds it
// gone, drops its index rows and files the call again, on a new lead,
// instead of failing the event or posting to the dead entity.
func TestDeletedEntityIsFiledAsNewClient(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		answered := w.known("8201", "+380501000201", boris)
		missed := w.known("8202", "+380501000202", boris)
		w.fake.Delete(answered)
		w.fake.Delete(missed)

		a := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "d1", "caller": "380501000201", "disposition": "ANSWERED",
			"billsec": "30", "employee_number": "sip_anna"})
		m := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "d2", "caller": "380501000202", "disposition": "NO ANSWER"})
		w.mustDrain()
		for id, dead := range map[string]crm.Ref{a: answered, m: missed} {
			ev := w.event(id)
			if ev.State != domain.EventDone || !strings.Contains(ev.Note, dead.ID+" deleted in the CRM") {
				t.Fatalf("event on a deleted entity: %q %q, want done with the deletion noted", ev.State, ev.Note)
			}
		}
		wr := w.fake.Written()
		lead := oneLead(t, wr, "380501000201")
		if lead.ID == answered.ID || lead.OwnerID != anna {
			t.Fatalf("answered call's new lead: %+v, want a new lead for Anna", lead)
		}
		if c := oneCall(t, wr, "380501000201"); c.LeadID == answered.ID || c.UserID != anna {
			t.Fatalf("answered call filed as %+v, not on the dead lead %s", c, answered.ID)
		}
		// Missed: as for a new client, the default owner gets the lead and the
		// call-back task, not the dead lead's responsible.
		if lead := oneLead(t, wr, "380501000202"); lead.OwnerID != olga {
			t.Fatalf("missed call's new lead: %+v, want the default owner", lead)
		}
		var tasks int
		for _, tk := range wr.Tasks {
			if tk.LeadID == missed.ID {
				t.Fatalf("task on the dead lead: %+v", tk)
			}
			if tk.UserID == olga {
				tasks++
			}
		}
		if tasks != 1 {
			t.Fatalf("tasks: %+v, want one for the default owner", wr.Tasks)
		}
		// The index forgot the dead lead and knows the new one.
		if got := w.target("380501000201"); got != "sip_anna" {
			t.Fatalf("routing after the re-resolve: %q, want the new lead's Anna", got)
		}
	})
}

// A deactivated CRM user gets no calls or tasks from call events: the
// answering employee's user is inactive, so the default owner is
// responsible; a missed call of a client whose lead belongs to an inactive
// user gets its call-back task for the default owner.
func TestInactiveUsersGetNoWork(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		w.fake.SetUsers([]crm.User{{ID: anna, Name: "Anna", Active: true}, {ID: boris, Name: "Boris", Active: false},
			{ID: olga, Name: "Olga", Active: true}})
		lead := w.known("8301", "+380501000301", boris) // syncs, refreshing the users
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "i1", "caller": "380671000301", "disposition": "ANSWERED",
			"billsec": "30", "employee_number": "sip_boris"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "i2", "caller": "380501000301", "disposition": "NO ANSWER"})
		w.mustDrain()
		wr := w.fake.Written()
		if l := oneLead(t, wr, "380671000301"); l.OwnerID != olga {
			t.Fatalf("lead of a call answered by a deactivated user: owner %q, want the default owner", l.OwnerID)
		}
		if c := oneCall(t, wr, "380671000301"); c.UserID != olga {
			t.Fatalf("call answered by a deactivated user filed for %q, want the default owner", c.UserID)
		}
		// The missed call's call-back task is the default owner's; so is the
		// task for a call answered on a line whose user counts as unmapped.
		onLead := 0
		for _, tk := range wr.Tasks {
			if tk.UserID != olga {
				t.Fatalf("task for %q, want every task for the default owner: %+v", tk.UserID, wr.Tasks)
			}
			if tk.LeadID == lead.ID {
				onLead++
			}
		}
		if onLead != 1 {
			t.Fatalf("missed call of an inactive user's lead: tasks %+v, want one on the lead for the default owner", wr.Tasks)
		}
	})
}

// A client known only by a contact deleted in the CRM since the index read
// it: the CRM refuses the new lead or the call linked to the dead contact
// (amoCRM, Zoho), the processor finds the contact gone and files the call
// as for a client the CRM does not know, with nothing linked to it.
func TestDeletedContactIsNotLinked(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		dead := crm.Ref{Kind: domain.KindContact, ID: "8401"}
		w.fake.Put(crm.Entity{Kind: dead.Kind, ID: dead.ID, Name: "Client", Phones: []string{"+380501000401"}, OwnerID: boris, Open: true})
		w.sync()
		w.fake.Delete(dead)
		id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c1", "caller": "380501000401", "disposition": "ANSWERED",
			"billsec": "30", "employee_number": "sip_anna"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone {
			t.Fatalf("event of a deleted contact's number: %q %q, want done", ev.State, ev.Note)
		}
		wr := w.fake.Written()
		if l := oneLead(t, wr, "380501000401"); l.ContactID == dead.ID || l.OwnerID != anna {
			t.Fatalf("new lead %+v, want one for Anna not linked to the dead contact", l)
		}
		if c := oneCall(t, wr, "380501000401"); c.ContactID == dead.ID {
			t.Fatalf("call %+v linked to the dead contact", c)
		}
	})
}
