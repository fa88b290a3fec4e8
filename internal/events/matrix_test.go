package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// each runs fn for every fake CRM on every store backend.
func each(t *testing.T, settings domain.Settings, fn func(t *testing.T, w *world, pipelines bool)) {
	for _, b := range storetest.Backends() {
		for _, f := range crmfakes.All() {
			t.Run(b.Name+"/"+f.CRM, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, b.Open(t), f.CRM, f.New(t), settings)
				fn(t, w, f.Pipelines)
			})
		}
	}
}

func leadsOf(wr crmtest.Written, phone string) []crmtest.WrittenLead {
	var out []crmtest.WrittenLead
	for _, l := range wr.Leads {
		if l.Phone == phone {
			out = append(out, l)
		}
	}
	return out
}

// oneLead returns the only lead written for phone.
func oneLead(t *testing.T, wr crmtest.Written, phone string) crmtest.WrittenLead {
	t.Helper()
	ls := leadsOf(wr, phone)
	if len(ls) != 1 {
		t.Fatalf("leads for %s: %+v, want exactly one", phone, ls)
	}
	return ls[0]
}

func callsOf(wr crmtest.Written, phone string) []crmtest.WrittenCall {
	var out []crmtest.WrittenCall
	for _, c := range wr.Calls {
		if c.Phone == phone {
			out = append(out, c)
		}
	}
	return out
}

func oneCall(t *testing.T, wr crmtest.Written, phone string) crmtest.WrittenCall {
	t.Helper()
	cs := callsOf(wr, phone)
	if len(cs) != 1 {
		t.Fatalf("calls for %s: %+v, want exactly one", phone, cs)
	}
	return cs[0]
}

// TestScenarioMatrix runs every row of DESIGN.md's scenario matrix on every
// CRM and both store backends.
func TestScenarioMatrix(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		// Known clients: open leads owned by Boris.
		knownIn := w.known("8001", "+380501000001", boris)
		knownMissed := w.known("8002", "+380501000002", boris)
		knownOut := w.known("8003", "+380501000003", boris)
		ids := map[string]string{
			"in/answered/new": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c1", "caller": "380671000001",
				"disposition": "ANSWERED", "billsec": "65", "employee_number": "sip_anna", "recording": "https://rec.example/c1.mp3"}),
			"in/answered/known": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c2", "caller": "0501000001",
				"disposition": "ANSWERED", "billsec": "30", "employee_number": "sip_anna"}),
			"in/missed/new": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c3", "caller": "380671000003",
				"disposition": "NO ANSWER", "billsec": "0", "employee_number": "sip_anna"}),
			"in/missed/known": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c4", "caller": "380501000002",
				"disposition": "BUSY", "employee_number": "sip_anna"}),
			"out/new": w.post(domain.EventOutgoingEnd, map[string]string{"uniqueid": "c5", "caller": "sip_anna", "dst": "380671000005",
				"disposition": "ANSWERED", "billsec": "20", "employee_number": "sip_anna"}),
			"out/known": w.post(domain.EventOutgoingEnd, map[string]string{"uniqueid": "c6", "caller": "sip_anna", "dst": "380501000003",
				"disposition": "NO ANSWER", "employee_number": "sip_anna"}),
			"in/answered/unmapped": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "c7", "caller": "380671000007",
				"disposition": "ANSWERED", "billsec": "12", "employee_number": "sip_stranger"}),
		}
		w.mustDrain()
		for name, id := range ids {
			if ev := w.event(id); ev.State != domain.EventDone {
				t.Fatalf("%s: state %q note %q", name, ev.State, ev.Note)
			}
		}
		wr := w.fake.Written()

		// incoming, answered, new client: a lead titled with the number for
		// the answering manager, the call linked to it.
		l := oneLead(t, wr, "380671000001")
		c := oneCall(t, wr, "380671000001")
		if l.Title != "+380671000001" || l.OwnerID != anna || l.Kind != w.fake.LeadKind() {
			t.Errorf("new answered lead: %+v", l)
		}
		if c.Outgoing || !c.Answered || c.UserID != anna || c.Duration != 65*time.Second || c.Recording != "https://rec.example/c1.mp3" {
			t.Errorf("answered call: %+v", c)
		}
		if c.LeadID != l.ID && c.ContactID != l.ContactID {
			t.Errorf("the call is linked to neither the new lead nor its contact: call %+v lead %+v", c, l)
		}
		if got := w.target("380671000001"); got != "sip_anna" {
			t.Errorf("the new lead routes the next call to its owner at once: got %q", got)
		}

		// incoming, answered, known client: the call in the open lead, no
		// new lead, the answering manager responsible.
		if ls := leadsOf(wr, "380501000001"); len(ls) != 0 {
			t.Errorf("a known client got a new lead: %+v", ls)
		}
		c = oneCall(t, wr, "380501000001")
		if !c.Answered || c.UserID != anna || (c.LeadID != knownIn.ID && c.LeadID != "") {
			t.Errorf("known answered call: %+v (lead %s)", c, knownIn.ID)
		}

		// incoming, missed, new client: lead, missed call and call-back task,
		// all for the default owner; contact → lead → call → task.
		l = oneLead(t, wr, "380671000003")
		c = oneCall(t, wr, "380671000003")
		if l.OwnerID != olga || c.Answered || c.UserID != olga {
			t.Errorf("missed new: lead %+v call %+v, want both for the default owner", l, c)
		}
		task := taskFor(t, wr, l.ID, l.ContactID)
		if task.UserID != olga || !strings.Contains(task.Text, "380671000003") {
			t.Errorf("call-back task: %+v", task)
		}
		for _, ct := range wr.Contacts {
			if ct.Phone == "380671000003" && ct.Seq > l.Seq {
				t.Errorf("contact %+v created after its lead %+v", ct, l)
			}
		}
		if !(l.Seq < c.Seq && c.Seq < task.Seq) {
			t.Errorf("creation order lead %d, call %d, task %d; want lead → call → task", l.Seq, c.Seq, task.Seq)
		}

		// incoming, missed, known client: an unsuccessful call in the open
		// lead and a call-back task for the lead's responsible.
		if ls := leadsOf(wr, "380501000002"); len(ls) != 0 {
			t.Errorf("a known client got a new lead: %+v", ls)
		}
		c = oneCall(t, wr, "380501000002")
		task = taskFor(t, wr, knownMissed.ID, "")
		if c.Answered || c.UserID != boris || task.UserID != boris {
			t.Errorf("missed known: call %+v task %+v, want both for the lead's responsible (Boris)", c, task)
		}

		// outgoing, new client: a lead and the call, for the calling manager.
		l = oneLead(t, wr, "380671000005")
		c = oneCall(t, wr, "380671000005")
		if l.OwnerID != anna || !c.Outgoing || c.UserID != anna || !c.Answered {
			t.Errorf("outgoing new: lead %+v call %+v", l, c)
		}
		// outgoing, known client: the call in the open lead, no task even
		// unanswered.
		c = oneCall(t, wr, "380501000003")
		if !c.Outgoing || c.UserID != anna || len(leadsOf(wr, "380501000003")) != 0 {
			t.Errorf("outgoing known: %+v", c)
		}
		for _, tk := range wr.Tasks {
			if tk.LeadID == knownOut.ID {
				t.Errorf("an outgoing call made a task: %+v", tk)
			}
		}

		// A call answered on a SIP login no employee is mapped to: the lead
		// and the call go to the default owner, and so does a task to
		// follow it up (seed 000).
		l = oneLead(t, wr, "380671000007")
		c = oneCall(t, wr, "380671000007")
		if l.OwnerID != olga || c.UserID != olga || !c.Answered {
			t.Errorf("unmapped manager: lead %+v call %+v, want both for the default owner", l, c)
		}
		task = taskFor(t, wr, l.ID, l.ContactID)
		if task.UserID != olga || !strings.Contains(task.Text, "sip_stranger") || !strings.Contains(task.Text, "380671000007") {
			t.Errorf("unmapped manager: task %+v, want one for the default owner naming the line", task)
		}
		if n := len(wr.Tasks); n != 3 {
			t.Errorf("%d tasks, want 3 (the two missed incoming calls and the one answered on an unmapped line)", n)
		}
	})
}

// taskFor returns the one task linked to the lead (or, where the CRM links
// tasks to the contact only, to the contact).
func taskFor(t *testing.T, wr crmtest.Written, leadID, contactID string) crmtest.WrittenTask {
	t.Helper()
	var found []crmtest.WrittenTask
	for _, tk := range wr.Tasks {
		if tk.LeadID == leadID || (tk.LeadID == "" && contactID != "" && tk.ContactID == contactID) {
			found = append(found, tk)
		}
	}
	if len(found) != 1 {
		t.Fatalf("tasks of lead %s: %+v (all: %+v), want one", leadID, found, wr.Tasks)
	}
	return found[0]
}

// TestTwoCallsFromANewNumberMakeOneLead: events of one number are applied
// one at a time in order; the second finds the first one's lead.
func TestTwoCallsFromANewNumberMakeOneLead(t *testing.T) {
	each(t, domain.Settings{LeadOnCallStart: true}, func(t *testing.T, w *world, _ bool) {
		w.post(domain.EventCallStart, map[string]string{"uniqueid": "a", "caller": "380671234567"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "a", "caller": "380671234567", "disposition": "NO ANSWER"})
		w.post(domain.EventCallStart, map[string]string{"uniqueid": "b", "caller": "+380 67 123 45 67"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "b", "caller": "0671234567", "disposition": "ANSWERED",
			"billsec": "10", "employee_number": "sip_boris"})
		w.mustDrain()
		wr := w.fake.Written()
		l := oneLead(t, wr, "380671234567")
		if l.OwnerID != olga {
			t.Errorf("a lead made at call start belongs to the default owner, got %q", l.OwnerID)
		}
		if cs := callsOf(wr, "380671234567"); len(cs) != 2 {
			t.Errorf("calls: %+v, want 2", cs)
		}
	})
}

// TestStopListCreatesNothing: a call to or from one of the project's own
// lines creates nothing, whoever the client is; a client entry blocks that
// client's calls only (issue 11, item 3).
func TestStopListCreatesNothing(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		ctx := context.Background()
		for _, st := range []struct {
			number string
			in     admin.StopInput
		}{
			{"+380441110000", admin.StopInput{Note: "virtual number"}},                // a line, the default kind
			{"sip_reception", admin.StopInput{Kind: "line"}},                          // a SIP login no employee has
			{"+380 50 111 00 00", admin.StopInput{Kind: "line", Note: "FMC of Anna"}}, // an employee's mobile
			{"+380441234567", admin.StopInput{Kind: "client"}},
			{"+380442220000", admin.StopInput{Kind: "client"}}, // a client number, not a line: calls to it are filed
		} {
			if _, err := w.admin.PutStop(ctx, "test", "acme", st.number, st.in); err != nil {
				t.Fatal(err)
			}
		}
		stops, err := w.admin.Stops(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]domain.StopKind{}
		for _, s := range stops {
			kinds[s.Number] = s.Kind
		}
		if kinds["380441110000"] != domain.StopLine || kinds["sip_reception"] != domain.StopLine ||
			kinds["380501110000"] != domain.StopLine || kinds["380441234567"] != domain.StopClient {
			t.Fatalf("stop list as listed: %+v", stops)
		}

		blocked := map[string]string{
			"to a line": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s1", "caller": "380671000011",
				"dst": "0441110000", "disposition": "NO ANSWER"}),
			"answered on a line's SIP login": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s2", "caller": "380671000012",
				"dst": "380443330000", "disposition": "ANSWERED", "billsec": "40", "employee_number": "sip_reception"}),
			"answered on an FMC number": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s3", "caller": "380671000013",
				"disposition": "ANSWERED", "billsec": "40", "employee_number": "0501110000"}),
			"dialled from a line": w.post(domain.EventOutgoingEnd, map[string]string{"uniqueid": "s4", "caller": "380441110000",
				"dst": "380671000014", "disposition": "ANSWERED", "billsec": "9", "employee_number": "sip_anna"}),
			"dialled by a line's employee": w.post(domain.EventOutgoingEnd, map[string]string{"uniqueid": "s5", "caller": "380443330000",
				"dst": "380671000015", "disposition": "ANSWERED", "billsec": "9", "employee_number": "+380501110000"}),
			"a line calling in": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s6", "caller": "380441110000",
				"dst": "380443330000", "disposition": "NO ANSWER"}),
			"a blocked client": w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s7", "caller": "0441234567",
				"disposition": "NO ANSWER"}),
		}
		filed := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "s8", "caller": "380671000018",
			"dst": "0442220000", "disposition": "ANSWERED", "billsec": "5", "employee_number": "sip_anna"})
		w.mustDrain()
		for name, id := range blocked {
			if ev := w.event(id); ev.State != domain.EventDone || !strings.HasPrefix(ev.Note, "stop list") {
				t.Errorf("%s: %q %q, want done by the stop list", name, ev.State, ev.Note)
			}
		}
		wr := w.fake.Written()
		for _, l := range wr.Leads {
			if l.Phone != "380671000018" {
				t.Errorf("a stopped call made lead %+v", l)
			}
		}
		for _, c := range wr.Calls {
			if c.Phone != "380671000018" {
				t.Errorf("a stopped call made call %+v", c)
			}
		}
		if len(wr.Tasks) != 0 {
			t.Errorf("a stopped call made tasks %+v", wr.Tasks)
		}
		if ev := w.event(filed); ev.State != domain.EventDone || len(callsOf(wr, "380671000018")) != 1 {
			t.Errorf("a call to a number on the list as a client was not filed: %q %q", ev.State, ev.Note)
		}
	})
}

func TestUTMWrittenOnlyWhereAllAreEmpty(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		utm := map[string]string{"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "utm_term": "crm", "utm_content": "ad1"}
		with := func(m map[string]string) map[string]string {
			for k, v := range utm {
				m[k] = v
			}
			return m
		}
		empty := w.known("8101", "+380501000101", boris)
		set := w.known("8102", "+380501000102", boris)
		w.fake.SetUTM(set, crm.UTM{Source: "facebook"})
		w.post(domain.EventCallEnd, with(map[string]string{"uniqueid": "u1", "caller": "380671000100", "disposition": "ANSWERED", "billsec": "5"}))
		w.post(domain.EventCallEnd, with(map[string]string{"uniqueid": "u2", "caller": "380501000101", "disposition": "ANSWERED", "billsec": "5"}))
		w.post(domain.EventCallEnd, with(map[string]string{"uniqueid": "u3", "caller": "380501000102", "disposition": "ANSWERED", "billsec": "5"}))
		w.mustDrain()
		want := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", Term: "crm", Content: "ad1"}
		if l := oneLead(t, w.fake.Written(), "380671000100"); l.UTM.Source != want.Source || l.UTM.Campaign != want.Campaign {
			t.Errorf("a new lead carries the call's UTM: %+v", l.UTM)
		}
		if got := w.fake.UTM(empty); got.Source != want.Source || got.Content != want.Content {
			t.Errorf("a known lead with no UTM gets the call's: %+v", got)
		}
		if got := w.fake.UTM(set); got != (crm.UTM{Source: "facebook"}) {
			t.Errorf("a known lead with UTM keeps it: %+v", got)
		}
	})
}

func TestPipelineRules(t *testing.T) {
	each(t, domain.Settings{PipelineRules: []domain.PipelineRule{{Param: "pool_name", Value: "Context ads", Pipeline: "7001"},
		{Param: "utm_source", Value: "facebook", Pipeline: "7002"}}},
		func(t *testing.T, w *world, pipelines bool) {
			w.post(domain.EventCallEnd, map[string]string{"uniqueid": "p1", "caller": "380671000201", "pool_name": "context ads ", "disposition": "ANSWERED", "billsec": "5"})
			w.post(domain.EventCallEnd, map[string]string{"uniqueid": "p2", "caller": "380671000202", "utm_source": "facebook", "disposition": "ANSWERED", "billsec": "5"})
			w.post(domain.EventCallEnd, map[string]string{"uniqueid": "p3", "caller": "380671000203", "pool_name": "Organic", "disposition": "ANSWERED", "billsec": "5"})
			w.mustDrain()
			wr := w.fake.Written()
			want := map[string]string{"380671000201": "7001", "380671000202": "7002", "380671000203": ""}
			for ph, p := range want {
				if !pipelines {
					p = ""
				}
				if l := oneLead(t, wr, ph); l.Pipeline != p {
					t.Errorf("lead of %s in pipeline %q, want %q", ph, l.Pipeline, p)
				}
			}
		})
}

// TestRetriesCreateOnce: a CRM failure after some writes succeeded, and a
// create whose answer was lost, are retried without a second entity.
func TestRetriesCreateOnce(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		// The CRM fails the third write (lead, [contact], call...): the
		// event stays waiting, the retry finishes it.
		w.fake.FailWrites(500, 1)
		id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "r1", "caller": "380671000301", "disposition": "NO ANSWER"})
		if err := w.drain(); err == nil {
			t.Fatal("a 500 from the CRM must fail the attempt")
		}
		if ev := w.event(id); ev.State != domain.EventWaiting || ev.Attempts != 1 || !ev.RetryAt.After(w.clock.Now()) {
			t.Fatalf("after a failed attempt: %q attempts %d retry at %s", ev.State, ev.Attempts, ev.RetryAt)
		}
		// Not before its retry time, even when another event of the number
		// arrives meanwhile: order holds.
		w.queue.Enqueue(context.Background(), partition("380671000301"))
		w.mustDrain()
		if wr := w.fake.Written(); len(callsOf(wr, "380671000301")) != 0 {
			t.Fatalf("retried before its time: %+v", wr.Calls)
		}
		w.clock.Advance(events.Backoff(1))
		w.queue.Enqueue(context.Background(), partition("380671000301"))
		w.mustDrain()
		wr := w.fake.Written()
		oneLead(t, wr, "380671000301")
		oneCall(t, wr, "380671000301")
		if ev := w.event(id); ev.State != domain.EventDone {
			t.Fatalf("after the retry: %q %q", ev.State, ev.Note)
		}

		// A validation error is permanent: the event fails at once and the
		// next event of the same number goes on.
		w.fake.FailWrites(400, 1)
		bad := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "r2", "caller": "380671000302", "disposition": "ANSWERED", "billsec": "3"})
		next := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "r3", "caller": "380671000302", "disposition": "ANSWERED", "billsec": "4"})
		w.mustDrain()
		if ev := w.event(bad); ev.State != domain.EventFailed || ev.Note == "" {
			t.Fatalf("a refused write: %q %q, want failed with the CRM's words", ev.State, ev.Note)
		}
		if ev := w.event(next); ev.State != domain.EventDone {
			t.Fatalf("the next event of the number: %q %q", ev.State, ev.Note)
		}
		if st, _ := w.st.EventStats(context.Background(), "acme"); st.Failed != 1 {
			t.Fatalf("stats: %+v", st)
		}
	})
}

func partition(p string) storePartition { return storePartition{TenantID: "acme", Partition: p} }

// TestLostAnswerIsFoundNotRecreated: the CRM made the entity but callrouter
// never saw the answer (a timeout, or a crash before the id was stored);
// the retry finds it by its idempotency key instead of creating another,
// wherever the CRM can be searched.
func TestLostAnswerIsFoundNotRecreated(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		lossy := &lossyCRM{CRM: w.crmSide, lose: map[string]bool{"call": true, "task": true}}
		w.proc = newProcessor(w, lossy)
		id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "l1", "caller": "380671000401", "disposition": "NO ANSWER"})
		for range 4 {
			if err := w.drain(); err == nil && w.event(id).State == domain.EventDone {
				break
			}
			w.clock.Advance(time.Hour)
			w.queue.Enqueue(context.Background(), partition("380671000401"))
		}
		if ev := w.event(id); ev.State != domain.EventDone {
			t.Fatalf("event: %q %q", ev.State, ev.Note)
		}
		wr := w.fake.Written()
		oneLead(t, wr, "380671000401")
		w1, werr := w.writerFor()
		if werr != nil {
			t.Fatal(werr)
		}
		for _, k := range []crm.WriteKind{crm.WriteCall, crm.WriteTask} {
			_, err := w1.Find(context.Background(), k, "probe", crm.Ref{Kind: w.fake.LeadKind(), ID: "1"})
			n := len(callsOf(wr, "380671000401"))
			if k == crm.WriteTask {
				n = len(wr.Tasks)
			}
			switch {
			case errors.Is(err, crm.ErrNotSearchable):
				t.Logf("%s: the CRM cannot be searched for it; the lost answer made %d", k, n)
			case n != 1:
				t.Errorf("%s: %d created, want 1 (the lost one found by its key)", k, n)
			}
		}
	})
}

// TestBrokenTokenThenResend: a rejected token marks the integration broken
// and keeps the events; re-activation with resend replays today's and the
// two days before, each once, and drops older ones; without resend all
// are dropped.
func TestBrokenTokenThenResend(t *testing.T) {
	each(t, domain.Settings{}, func(t *testing.T, w *world, _ bool) {
		ctx := context.Background()
		w.fake.Revoke()
		first := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "b1", "caller": "380671000501", "disposition": "NO ANSWER"})
		if err := w.drain(); err != nil {
			t.Fatalf("a broken integration is not an error to retry: %v", err)
		}
		in, err := w.st.Integration(ctx, "acme")
		if err != nil || in.State != "broken" || in.LastError == "" {
			t.Fatalf("integration after a rejected token: %q %q %v", in.State, in.LastError, err)
		}
		if ev := w.event(first); ev.State != domain.EventWaiting {
			t.Fatalf("the event must wait: %q", ev.State)
		}
		// More events arrive while broken, one of them five days old.
		now := time.Now()
		w.clock.Set(now.Add(-5 * 24 * time.Hour))
		old := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "b0", "caller": "380671000502", "disposition": "NO ANSWER"})
		w.clock.Set(now)
		second := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "b2", "caller": "380671000503", "disposition": "ANSWERED", "billsec": "9"})
		w.mustDrain()
		if st, _ := w.st.EventStats(ctx, "acme"); st.Waiting != 3 {
			t.Fatalf("while broken: %+v, want 3 waiting", st)
		}

		// The admin reconnects and re-activates with resend.
		w.reconnect()
		v, err := w.admin.SetActive(ctx, "test", "acme", true, admin.ActivateInput{Resend: true})
		if err != nil {
			t.Fatal(err)
		}
		if v.Events == nil || v.Events.Resent != 2 || v.Events.Dropped != 1 {
			t.Fatalf("activation with resend: %+v", v.Events)
		}
		w.mustDrain()
		w.mustDrain() // replaying twice changes nothing
		for _, id := range []string{first, second} {
			if ev := w.event(id); ev.State != domain.EventDone {
				t.Fatalf("resent event: %q %q", ev.State, ev.Note)
			}
		}
		if ev := w.event(old); ev.State != domain.EventDropped {
			t.Fatalf("a five-day-old event: %q", ev.State)
		}
		wr := w.fake.Written()
		oneLead(t, wr, "380671000501")
		oneCall(t, wr, "380671000501")
		oneLead(t, wr, "380671000503")
		if ls := leadsOf(wr, "380671000502"); len(ls) != 0 {
			t.Fatalf("a dropped event wrote %+v", ls)
		}

		// Without resend, whatever waits is dropped and counted.
		if _, err := w.st.Integration(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.admin.SetActive(ctx, "test", "acme", false, admin.ActivateInput{}); err != nil {
			t.Fatal(err)
		}
		third := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "b3", "caller": "380671000504", "disposition": "NO ANSWER"})
		w.mustDrain()
		if ev := w.event(third); ev.State != domain.EventWaiting {
			t.Fatalf("an event of an inactive integration waits: %q", ev.State)
		}
		w.clock.Set(now.Add(time.Second))
		v, err = w.admin.SetActive(ctx, "test", "acme", true, admin.ActivateInput{Resend: false})
		if err != nil || v.Events == nil || v.Events.Dropped != 1 || v.Events.Resent != 0 {
			t.Fatalf("activation without resend: %+v, %v", v.Events, err)
		}
		st, err := w.admin.Status(ctx, "acme")
		if err != nil || st.Events.Dropped != 2 || st.Events.Waiting != 0 || st.Events.Done != 2 {
			t.Fatalf("status events: %+v, %v", st.Events, err)
		}
	})
}

// TestDrainWaitsForTheLeaseHolder: while one drain (on any instance) holds
// a client's partition, another applies nothing and touches no event; once
// the holder lets go, the partition is drained.
func TestDrainWaitsForTheLeaseHolder(t *testing.T) {
	b := storetest.Backends()[0]
	w := newWorld(t, b.Open(t), "retailcrm", crmfakes.All()[2].New(t), domain.Settings{})
	ctx := context.Background()
	id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "x1", "caller": "380671000601", "disposition": "ANSWERED", "billsec": "4"})
	if ok, err := w.st.LeasePartition(ctx, "acme", "380671000601", "other-instance", time.Minute); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	if err := w.drain(); !errors.Is(err, events.ErrBusy) {
		t.Fatalf("drain of a held partition: %v, want ErrBusy", err)
	}
	if ev := w.event(id); ev.State != domain.EventWaiting || ev.Attempts != 0 {
		t.Fatalf("event touched while another drain held it: %q attempts %d", ev.State, ev.Attempts)
	}
	if len(w.fake.Written().Calls) != 0 {
		t.Fatal("a call was written while another drain held the partition")
	}
	// The holder lets go (expiry after a crash is the store's, tested in
	// its conformance suite with a settable clock).
	if err := w.st.ReleasePartition(ctx, "acme", "380671000601", "other-instance"); err != nil {
		t.Fatal(err)
	}
	w.queue.Enqueue(ctx, partition("380671000601"))
	w.mustDrain()
	if ev := w.event(id); ev.State != domain.EventDone {
		t.Fatalf("after the holder let go: %q %q", ev.State, ev.Note)
	}
}

// TestTimesInTheProjectsZone: a calldate without a zone is the project's
// local time (UA → Europe/Kyiv by default), and a missed call at 17:55
// local with a 60-minute call-back is due at 18:55 local in every CRM,
// counted from the calldate however late the event is processed (issue 11,
// item 4).
func TestTimesInTheProjectsZone(t *testing.T) {
	kyiv, err := time.LoadLocation("Europe/Kyiv")
	if err != nil {
		t.Fatal(err)
	}
	each(t, domain.Settings{CallbackDueMinutes: 60}, func(t *testing.T, w *world, _ bool) {
		if z, ok := w.fake.(interface{ SetTimezone(*time.Location) }); ok {
			z.SetTimezone(kyiv) // retailCRM reads API datetimes in the account's zone
		}
		w.clock.Set(time.Date(2026, 12, 5, 22, 40, 0, 0, kyiv)) // processed hours after the call
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "tz1", "caller": "380671000031",
			"calldate": "2026-12-05 17:55:00", "disposition": "NO ANSWER", "billsec": "0"})
		w.mustDrain()
		wr := w.fake.Written()
		start := time.Date(2026, 12, 5, 17, 55, 0, 0, kyiv)
		due := time.Date(2026, 12, 5, 18, 55, 0, 0, kyiv)
		if c := oneCall(t, wr, "380671000031"); !c.Start.Equal(start) {
			t.Errorf("call start %s, want %s", c.Start.In(kyiv), start)
		}
		l := oneLead(t, wr, "380671000031")
		task := taskFor(t, wr, l.ID, l.ContactID)
		if !strings.Contains(task.Text, "2026-12-05 17:55") {
			t.Errorf("task text %q, want the local call time", task.Text)
		}
		if w.crmName() == "zoho" {
			// Zoho tasks have a due date, not a time: the local date.
			if got := task.Due.Format(time.DateOnly); got != "2026-12-05" {
				t.Errorf("zoho task due date %s, want 2026-12-05", got)
			}
			return
		}
		if !task.Due.Equal(due) {
			t.Errorf("task due %s, want %s", task.Due.In(kyiv), due)
		}
	})
}

// TestRetailCRMRegistersTelephony: connecting retailCRM registers callrouter
// as the account's telephony integration module with the employees'
// extension codes and the project's own numbers, before the account
// accepts the telephony methods; a re-activation registers it again
// (issue 11, item 5).
func TestRetailCRMRegistersTelephony(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			f := retailcrmfake.New(t)
			w := newWorld(t, b.Open(t), "retailcrm", f, domain.Settings{})
			ctx := context.Background()
			m, ok := f.Modules()["callrouter"]
			if !ok || !m.Active || m.Integrations.Telephony == nil || m.ClientID != "acme" {
				t.Fatalf("after connecting: modules %+v, want callrouter's, active, with telephony", f.Modules())
			}
			codes := map[string]string{}
			for _, c := range m.Integrations.Telephony.AdditionalCodes {
				codes[c.Code] = c.UserID
			}
			if codes["sip_anna"] != anna || codes["sip_boris"] != boris || codes["sip_olga"] != olga || m.Integrations.Telephony.AllowEdit {
				t.Fatalf("telephony %+v, want each employee's SIP login as their code, allowEdit false", m.Integrations.Telephony)
			}
			// The project's own numbers go in at the next activation.
			if _, err := w.admin.PutStop(ctx, "test", "acme", "+380441110000", admin.StopInput{}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.admin.PutStop(ctx, "test", "acme", "+380441234567", admin.StopInput{Kind: "client"}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.admin.SetActive(ctx, "test", "acme", false, admin.ActivateInput{}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.admin.SetActive(ctx, "test", "acme", true, admin.ActivateInput{}); err != nil {
				t.Fatal(err)
			}
			w.sync()
			if n := f.ModuleEdits("callrouter"); n != 2 {
				t.Fatalf("module registered %d times, want again on re-activation", n)
			}
			phones := f.Modules()["callrouter"].Integrations.Telephony.ExternalPhones
			if len(phones) != 1 || phones[0].ExternalPhone != "+380441110000" {
				t.Fatalf("external phones %+v, want the project's line only", phones)
			}
			// The telephony methods work: a call is uploaded.
			w.post(domain.EventCallEnd, map[string]string{"uniqueid": "r1", "caller": "380671000041",
				"disposition": "ANSWERED", "billsec": "7", "employee_number": "sip_anna"})
			w.mustDrain()
			oneCall(t, w.fake.Written(), "380671000041")
		})
	}
}
