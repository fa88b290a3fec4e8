package events_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// eachAmo runs fn on both stores against a fake amoCRM account.
func eachAmo(t *testing.T, settings domain.Settings, fn func(t *testing.T, w *world, f *amocrmfake.Server)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			f := amocrmfake.New(t)
			w := newWorld(t, b.Open(t), "amocrm", f, settings)
			fn(t, w, f)
		})
	}
}

// TestUnsortedCallFromNewNumber: with amo_unsorted a missed call from a
// number amoCRM does not know becomes one unsorted sip request carrying
// the call, and no lead, contact, call record or task; the same event
// posted and drained again files nothing more.
func TestUnsortedCallFromNewNumber(t *testing.T) {
	eachAmo(t, domain.Settings{AmoUnsorted: true}, func(t *testing.T, w *world, f *amocrmfake.Server) {
		mapFields(t, w)
		call := map[string]string{"uniqueid": "u1", "caller": "0671000951", "called": "380441112233", "disposition": "NO ANSWER",
			"roistat": "4242", "utm_source": "google"}
		id := w.post(domain.EventCallEnd, call)
		w.mustDrain()
		if again := w.post(domain.EventCallEnd, call); again != id {
			t.Fatalf("a repost stored a second event: %s and %s", id, again)
		}
		w.mustDrain()
		ev := w.event(id)
		if ev.State != domain.EventDone || !strings.Contains(ev.Note, "unsorted sip request") {
			t.Fatalf("event: %q %q", ev.State, ev.Note)
		}
		us := f.Unsorted()
		if len(us) != 1 {
			t.Fatalf("unsorted requests %+v, want one", us)
		}
		u := us[0]
		if u.Category != "sip" || u.SourceName != "callrouter" || u.SourceUID == "" || u.Metadata["uniq"] != u.SourceUID ||
			u.Metadata["from"] != "+380671000951" || u.Metadata["is_call_event_needed"] != true {
			t.Errorf("request %+v", u)
		}
		if !strings.Contains(ev.Note, u.UID) {
			t.Errorf("the note %q does not name the request %s", ev.Note, u.UID)
		}
		if u.LeadFields[f.CustomField("deal")] != "4242" || u.UTM.Source != "google" || !strings.Contains(u.LeadName, "380671000951") {
			t.Errorf("the request's lead: %q %v %+v", u.LeadName, u.LeadFields, u.UTM)
		}
		if len(u.ContactPhones) != 1 || u.ContactPhones[0] != "+380671000951" {
			t.Errorf("the request's contact phones %q", u.ContactPhones)
		}
		if wr := f.Written(); len(wr.Leads)+len(wr.Contacts)+len(wr.Calls)+len(wr.Tasks) != 0 {
			t.Errorf("an unsorted request also wrote %+v", wr)
		}
	})
}

// TestUnsortedKnownClientKeepsCallRecords: a caller with an open lead is
// not a new request: the call is recorded on what amoCRM has, as without
// amo_unsorted.
func TestUnsortedKnownClientKeepsCallRecords(t *testing.T) {
	eachAmo(t, domain.Settings{AmoUnsorted: true}, func(t *testing.T, w *world, f *amocrmfake.Server) {
		w.known("70001", "380671000952", anna)
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "k1", "caller": "380671000952", "disposition": "ANSWERED",
			"billsec": "12", "employee_number": "sip_anna"})
		w.mustDrain()
		if us := f.Unsorted(); len(us) != 0 {
			t.Fatalf("a known client's call filed requests %+v", us)
		}
		if c := oneCall(t, f.Written(), "380671000952"); c.UserID != anna {
			t.Errorf("call %+v", c)
		}
	})
}

// TestUnsortedForm: with amo_unsorted a form with a new phone becomes one
// unsorted forms request (contact with phone, e-mail, name and the mapped
// field; lead with the mapped field and UTM; the automation tag) and a
// double post makes nothing more.
func TestUnsortedForm(t *testing.T) {
	eachAmo(t, domain.Settings{AmoUnsorted: true}, func(t *testing.T, w *world, f *amocrmfake.Server) {
		mapFields(t, w)
		form := map[string]string{"phone": "+38 (067) 100-09-53", "name": "Iryna", "email": "iryna@example.com",
			"landing": "https://shop.example/b", "visit": "999", "utm_source": "fb", "form_name": "Callback"}
		id := w.post(domain.EventForm, form)
		if again := w.post(domain.EventForm, form); again != id {
			t.Fatalf("a double post stored a second event: %s and %s", id, again)
		}
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone || !strings.Contains(ev.Note, "unsorted forms request") {
			t.Fatalf("event: %q %q", ev.State, ev.Note)
		}
		us := f.Unsorted()
		if len(us) != 1 {
			t.Fatalf("unsorted requests %+v, want one", us)
		}
		u := us[0]
		if u.Category != "forms" || u.Metadata["form_name"] != "Callback" || u.Metadata["form_page"] != "https://shop.example/b" {
			t.Errorf("request %+v", u)
		}
		if u.ContactName != "Iryna" || u.ContactEmail != "iryna@example.com" || len(u.ContactPhones) != 1 ||
			u.ContactFields[f.CustomField("contact")] != "https://shop.example/b" {
			t.Errorf("the request's contact %+v", u)
		}
		if u.LeadFields[f.CustomField("deal")] != "999" || u.UTM.Source != "fb" {
			t.Errorf("the request's lead %v %+v", u.LeadFields, u.UTM)
		}
		if wr := f.Written(); len(wr.Leads)+len(wr.Contacts)+len(wr.Tasks) != 0 {
			t.Errorf("an unsorted form also wrote %+v", wr)
		}
	})
}

// TestUnsortedOffByDefault: without amo_unsorted a new caller gets the
// matrix's lead and call, and no request.
func TestUnsortedOffByDefault(t *testing.T) {
	eachAmo(t, domain.Settings{}, func(t *testing.T, w *world, f *amocrmfake.Server) {
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "d1", "caller": "380671000954", "disposition": "NO ANSWER"})
		w.mustDrain()
		if us := f.Unsorted(); len(us) != 0 {
			t.Fatalf("requests filed with amo_unsorted off: %+v", us)
		}
		oneLead(t, f.Written(), "380671000954")
	})
}

// TestUnsortedRefusedForOtherCRMs: amo_unsorted is refused, naming it,
// for a tenant connected to another CRM.
func TestUnsortedRefusedForOtherCRMs(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b.Open(t), "zoho", zohofake.New(t), domain.Settings{})
			_, err := w.admin.PatchTenant(context.Background(), "test", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{AmoUnsorted: new(true)}})
			if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "amo_unsorted:") {
				t.Fatalf("amo_unsorted on a Zoho tenant: %v", err)
			}
		})
	}
}

// unsortedLossyCRM hands out writers whose first CreateUnsorted makes the
// request but loses the answer, as a timeout or a crash before the id was
// stored does.
type unsortedLossyCRM struct {
	events.CRM
	lost atomic.Bool
}

type unsortedLossyWriter struct {
	crm.Writer
	c *unsortedLossyCRM
}

func (c *unsortedLossyCRM) Writer(ctx context.Context, tenantID string) (crm.Writer, error) {
	w, err := c.CRM.Writer(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return &unsortedLossyWriter{Writer: w, c: c}, nil
}

func (w *unsortedLossyWriter) CreateUnsorted(ctx context.Context, u crm.NewUnsorted) (crm.Unsorted, error) {
	made, err := w.Writer.(crm.UnsortedWriter).CreateUnsorted(ctx, u)
	if err == nil && w.c.lost.CompareAndSwap(false, true) {
		return crm.Unsorted{}, errLost
	}
	return made, err
}

// TestUnsortedLostAnswerIsFound: a request amoCRM filed whose answer was
// lost is found by its source_uid on the retry, not filed twice.
func TestUnsortedLostAnswerIsFound(t *testing.T) {
	eachAmo(t, domain.Settings{AmoUnsorted: true}, func(t *testing.T, w *world, f *amocrmfake.Server) {
		w.proc = newProcessor(w, &unsortedLossyCRM{CRM: w.crmSide})
		id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "ul1", "caller": "380671000955", "disposition": "NO ANSWER"})
		if err := w.drain(); err == nil {
			t.Fatal("the lost answer did not fail the first attempt")
		}
		w.clock.Advance(time.Hour)
		w.queue.Enqueue(context.Background(), partition("380671000955"))
		w.mustDrain()
		ev := w.event(id)
		us := f.Unsorted()
		if ev.State != domain.EventDone || len(us) != 1 || !strings.Contains(ev.Note, us[0].UID) {
			t.Fatalf("event %q %q, requests %+v; want one request, named", ev.State, ev.Note, us)
		}
	})
}
