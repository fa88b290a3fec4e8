package events_test

import (
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// TestConfiguredMatrix: the tenant's matrix decides what each kind of call
// creates; a row set to [] creates nothing, a row may add a task where the
// default has none, and the language setting words titles and tasks.
func TestConfiguredMatrix(t *testing.T) {
	settings := domain.Settings{Language: "uk", Matrix: domain.Matrix{domain.RowIncomingMissedNew: {}, domain.RowOutgoingNew: {"call"},
		domain.RowIncomingAnsweredKnown: {"call", "task"}}}
	each(t, settings, func(t *testing.T, w *world, _ bool) {
		known := w.known("8201", "+380501000201", boris)
		missed := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "m1", "caller": "380671000801",
			"disposition": "NO ANSWER", "employee_number": "sip_anna"})
		out := w.post(domain.EventOutgoingEnd, map[string]string{"uniqueid": "m2", "caller": "sip_anna", "dst": "380671000802",
			"disposition": "ANSWERED", "billsec": "20", "employee_number": "sip_anna"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "m3", "caller": "380501000201",
			"disposition": "ANSWERED", "billsec": "30", "employee_number": "sip_anna"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "m4", "caller": "380671000804",
			"disposition": "ANSWERED", "billsec": "30", "employee_number": "sip_anna"})
		w.mustDrain()
		wr := w.fake.Written()

		// incoming_missed_new = []: nothing at all, and the event says why.
		if ls, cs := leadsOf(wr, "380671000801"), callsOf(wr, "380671000801"); len(ls)+len(cs) != 0 {
			t.Errorf("an empty row created leads %+v calls %+v", ls, cs)
		}
		if ev := w.event(missed); ev.State != domain.EventDone || !strings.Contains(ev.Note, "creates nothing") {
			t.Errorf("empty row event: %q %q", ev.State, ev.Note)
		}
		// outgoing_new = [call]: no lead; a new client has nothing to file
		// the call under, so nothing is written.
		if ls := leadsOf(wr, "380671000802"); len(ls) != 0 {
			t.Errorf("a row without lead created %+v", ls)
		}
		if ev := w.event(out); ev.State != domain.EventDone || !strings.Contains(ev.Note, "call not filed") {
			t.Errorf("call without a parent: %q %q", ev.State, ev.Note)
		}
		// incoming_answered_known = [call, task]: the call and a follow-up
		// task, in Ukrainian, for the answering manager.
		oneCall(t, wr, "380501000201")
		task := taskFor(t, wr, known.ID, "")
		if task.UserID != anna || !strings.Contains(task.Text, "Опрацювати дзвінок +380501000201") {
			t.Errorf("follow-up task: %+v", task)
		}
		// The default row still makes the lead, titled in Ukrainian.
		if l := oneLead(t, wr, "380671000804"); l.Title != "Дзвінок +380671000804" {
			t.Errorf("lead title %q", l.Title)
		}
		if len(wr.Tasks) != 1 {
			t.Errorf("tasks: %+v, want only the follow-up", wr.Tasks)
		}
	})
}
