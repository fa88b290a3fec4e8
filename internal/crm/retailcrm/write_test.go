package retailcrm_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// writer connects to f and returns the adapter as a crm.Writer.
func writer(t *testing.T, f *retailcrmfake.Server) (crm.Source, crm.Writer, *crmtest.NoSleep) {
	t.Helper()
	src, ns := connect(t, f)
	w, ok := src.(crm.Writer)
	if !ok {
		t.Fatalf("%T does not implement crm.Writer", src)
	}
	return src, w, ns
}

// changedEntities runs a full sync, calls write, and returns what the
// next incremental sync carries.
func changedEntities(t *testing.T, src crm.Source, write func()) map[crm.Ref]crm.Entity {
	t.Helper()
	_, cur := fullSync(t, src)
	write()
	b, err := src.Changes(context.Background(), cur)
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	return byRef(b.Entities)
}

func TestCreateLeadForANewClient(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	src, w, _ := writer(t, f)
	ctx := context.Background()
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", Term: "pizza", Content: "ad1", ClientID: "GA1.2.3.4"}
	var created crm.Created
	changed := changedEntities(t, src, func() {
		var err error
		created, err = w.CreateLead(ctx, crm.NewLead{Key: "ev-1-lead", Phone: "79991234567", Title: "+79991234567",
			OwnerID: "27", Pipeline: "eshop-legal", UTM: utm})
		if err != nil {
			t.Fatalf("CreateLead: %v", err)
		}
	})
	if created.Lead.Kind != domain.KindDeal || created.Lead.ID == "" || created.Contact.Kind != domain.KindContact || created.Contact.ID == "" {
		t.Fatalf("Created = %+v, want a deal and a contact", created)
	}
	if f.LeadKind() != domain.KindDeal {
		t.Errorf("LeadKind = %q", f.LeadKind())
	}
	wr := f.Written()
	if len(wr.Contacts) != 1 || len(wr.Leads) != 1 {
		t.Fatalf("Written = %+v, want one contact and one lead", wr)
	}
	c, l := wr.Contacts[0], wr.Leads[0]
	if c.ID != created.Contact.ID || c.Phone != "79991234567" || c.OwnerID != "27" {
		t.Errorf("contact = %+v", c)
	}
	want := crmtest.WrittenLead{Seq: c.Seq + 1, Kind: domain.KindDeal, ID: created.Lead.ID, Title: "+79991234567",
		Phone: "79991234567", OwnerID: "27", ContactID: c.ID, Pipeline: "eshop-legal", UTM: utm}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("lead = %+v, want %+v", l, want)
	}
	if got := f.UTM(created.Lead); got != utm {
		t.Errorf("UTM = %+v, want %+v", got, utm)
	}

	// The sync sees the order open and owned, with the phone; the live
	// lookup finds the customer with the same owner.
	d, ok := changed[created.Lead]
	if !ok || !d.Open || d.OwnerID != "27" || len(d.Phones) == 0 || d.Phones[0] != "+79991234567" {
		t.Errorf("synced deal = %+v (found %v), want open, owner 27, phone +79991234567", d, ok)
	}
	if e, ok := changed[created.Contact]; !ok || e.OwnerID != "27" {
		t.Errorf("synced contact = %+v (found %v)", e, ok)
	}
	found, err := src.FindByPhone(ctx, "79991234567")
	if err != nil || len(found) != 1 || found[0].ID != created.Contact.ID || found[0].OwnerID != "27" || !found[0].Open {
		t.Errorf("FindByPhone = %+v, %v; want the created customer owned by 27", found, err)
	}
	got, err := src.Get(ctx, []crm.Ref{created.Lead})
	if err != nil || len(got.Entities) != 1 || !got.Entities[0].Open || got.Entities[0].OwnerID != "27" {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

func TestCreateLeadDefaultsAndExistingContact(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.Put(contact(41, "Ivan Petrov", "5", "+79990000041"))
	_, w, _ := writer(t, f)
	created, err := w.CreateLead(context.Background(), crm.NewLead{Key: "k2", Phone: "79990000041", Title: "+79990000041", ContactID: "41"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if created.Contact != ref(domain.KindContact, 41) {
		t.Errorf("Contact = %+v, want the given one", created.Contact)
	}
	wr := f.Written()
	if len(wr.Contacts) != 0 || len(wr.Leads) != 1 {
		t.Fatalf("Written = %+v, want the lead only", wr)
	}
	l := wr.Leads[0]
	if l.ContactID != "41" || l.OwnerID != "" || l.Pipeline != "" || l.UTM != (crm.UTM{}) || l.Phone != "79990000041" {
		t.Errorf("lead = %+v", l)
	}

	// An unknown contact is retailCRM's validation error: permanent.
	_, err = w.CreateLead(context.Background(), crm.NewLead{Key: "k3", Phone: "79990000042", Title: "x", ContactID: "999"})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !crm.IsPermanent(err) {
		t.Errorf("unknown contact: %v, want a permanent 400", err)
	}
}

func TestCreateCall(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	_, w, _ := writer(t, f)
	ctx := context.Background()
	created, err := w.CreateLead(ctx, crm.NewLead{Key: "lead", Phone: "79991112233", Title: "+79991112233", OwnerID: "7"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	start := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	calls := map[string]crm.NewCall{
		"in-answered": {Key: "in-answered", CallID: "1.1", Answered: true, Disposition: "ANSWERED", Phone: "79991112233",
			Line: "74950000000", Start: start, Duration: 95 * time.Second, Wait: 7 * time.Second,
			Recording: "https://pbx.example/rec/1.mp3", UserID: "7", Lead: created.Lead, Contact: created.Contact},
		"in-missed": {Key: "in-missed", CallID: "1.2", Disposition: "NO ANSWER", Phone: "79991112233", Start: start,
			Wait: 20 * time.Second, Lead: created.Lead},
		"out": {Key: "out", CallID: "1.3", Outgoing: true, Answered: true, Disposition: "ANSWERED", Phone: "79991112233",
			Start: start, Duration: 30 * time.Second, UserID: "8", Contact: created.Contact},
	}
	for _, k := range []string{"in-answered", "in-missed", "out"} {
		id, err := w.CreateCall(ctx, calls[k])
		if err != nil || id != k {
			t.Fatalf("CreateCall(%s) = %q, %v; want the key as id", k, id, err)
		}
	}
	wr := f.Written()
	if len(wr.Calls) != 3 {
		t.Fatalf("Calls = %+v", wr.Calls)
	}
	want := []crmtest.WrittenCall{
		{ID: "in-answered", Key: "in-answered", Answered: true, Phone: "79991112233", Duration: 95 * time.Second,
			Recording: "https://pbx.example/rec/1.mp3", UserID: "7"},
		{ID: "in-missed", Key: "in-missed", Phone: "79991112233"},
		{ID: "out", Key: "out", Outgoing: true, Answered: true, Phone: "79991112233", Duration: 30 * time.Second, UserID: "8"},
	}
	lastSeq := wr.Leads[0].Seq
	for i, got := range wr.Calls {
		if got.Seq <= lastSeq {
			t.Errorf("call %d Seq %d not after %d", i, got.Seq, lastSeq)
		}
		lastSeq = got.Seq
		w := want[i]
		w.Seq, w.LeadID, w.ContactID, w.Start = got.Seq, created.Lead.ID, created.Contact.ID, start.UTC().Truncate(time.Second)
		if got != w {
			t.Errorf("call %d = %+v, want %+v", i, got, w)
		}
	}
	if n := f.TelephonyMeter().Count(); n != 3 {
		t.Errorf("telephony requests = %d, want the 3 uploads", n)
	}
	if _, err := w.Find(ctx, crm.WriteCall, "in-answered", created.Lead); !errors.Is(err, crm.ErrNotSearchable) {
		t.Errorf("Find(call) = %v, want ErrNotSearchable", err)
	}
}

func TestCreateTaskAndFind(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	_, w, _ := writer(t, f)
	ctx := context.Background()
	created, err := w.CreateLead(ctx, crm.NewLead{Key: "lead", Phone: "79991112233", Title: "+79991112233", OwnerID: "7"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if id, err := w.Find(ctx, crm.WriteTask, "task-1", created.Lead); id != "" || err != nil {
		t.Fatalf("Find before = %q, %v", id, err)
	}
	due := time.Date(2026, 3, 14, 10, 15, 0, 0, time.UTC)
	// Another task on the order, without the key, must not be found.
	if _, err := w.CreateTask(ctx, crm.NewTask{Key: "other", Text: "Other", Due: due, UserID: "7", Lead: created.Lead}); err != nil {
		t.Fatalf("CreateTask(other): %v", err)
	}
	id, err := w.CreateTask(ctx, crm.NewTask{Key: "task-1", Text: "Call back +79991112233", Due: due, UserID: "7",
		Phone: "79991112233", Lead: created.Lead, Contact: created.Contact})
	if err != nil || id == "" {
		t.Fatalf("CreateTask = %q, %v", id, err)
	}
	wr := f.Written()
	if len(wr.Tasks) != 2 {
		t.Fatalf("Tasks = %+v", wr.Tasks)
	}
	want := crmtest.WrittenTask{Seq: wr.Tasks[1].Seq, ID: id, Text: "Call back +79991112233", UserID: "7",
		LeadID: created.Lead.ID, ContactID: created.Contact.ID, Due: due}
	if got := wr.Tasks[1]; got != want || got.Seq <= wr.Leads[0].Seq {
		t.Errorf("task = %+v, want %+v", got, want)
	}
	if got, err := w.Find(ctx, crm.WriteTask, "task-1", created.Lead); got != id || err != nil {
		t.Errorf("Find after = %q, %v; want %q", got, err, id)
	}
	if _, err := w.Find(ctx, crm.WriteTask, "task-1", created.Contact); !errors.Is(err, crm.ErrNotSearchable) {
		t.Errorf("Find under a contact = %v, want ErrNotSearchable", err)
	}
	if got, err := w.Find(ctx, crm.WriteTask, "task-1", ref(domain.KindDeal, 999)); got != "" || err != nil {
		t.Errorf("Find under a missing order = %q, %v", got, err)
	}
}

func TestFindLead(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	_, w, _ := writer(t, f)
	ctx := context.Background()
	if id, err := w.Find(ctx, crm.WriteLead, "ev-9", crm.Ref{}); id != "" || err != nil {
		t.Fatalf("Find before = %q, %v", id, err)
	}
	created, err := w.CreateLead(ctx, crm.NewLead{Key: "ev-9", Phone: "79990000009", Title: "+79990000009"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if id, err := w.Find(ctx, crm.WriteLead, "ev-9", crm.Ref{}); id != created.Lead.ID || err != nil {
		t.Errorf("Find after = %q, %v; want %q", id, err, created.Lead.ID)
	}
	// The same key again is retailCRM's duplicate externalId refusal.
	if _, err := w.CreateLead(ctx, crm.NewLead{Key: "ev-9", Phone: "79990000009", Title: "x", ContactID: created.Contact.ID}); !crm.IsPermanent(err) {
		t.Errorf("duplicate key: %v, want a permanent error", err)
	}
}

func TestFillUTM(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	f.Put(deal(10, "10A", "5", true, "+79990000010"))
	f.Put(deal(11, "11A", "5", true, "+79990000011"))
	f.SetUTM(ref(domain.KindDeal, 11), crm.UTM{Medium: "organic"})
	_, w, _ := writer(t, f)
	ctx := context.Background()
	utm := crm.UTM{Source: "yandex", Medium: "cpc", Campaign: "c1", Term: "t", Content: "x"}

	wrote, err := w.FillUTM(ctx, ref(domain.KindDeal, 10), utm)
	if err != nil || !wrote {
		t.Fatalf("FillUTM(empty) = %v, %v; want a write", wrote, err)
	}
	if got := f.UTM(ref(domain.KindDeal, 10)); got != utm {
		t.Errorf("UTM after = %+v, want %+v", got, utm)
	}
	edits := f.Calls("/api/v5/orders/11/edit")
	wrote, err = w.FillUTM(ctx, ref(domain.KindDeal, 11), utm)
	if err != nil || wrote {
		t.Fatalf("FillUTM(set) = %v, %v; want no write", wrote, err)
	}
	if got := f.UTM(ref(domain.KindDeal, 11)); got != (crm.UTM{Medium: "organic"}) || f.Calls("/api/v5/orders/11/edit") != edits {
		t.Errorf("UTM of the attributed order changed: %+v", got)
	}
	// A second fill of the now attributed order keeps it.
	if wrote, err := w.FillUTM(ctx, ref(domain.KindDeal, 10), crm.UTM{Source: "other"}); err != nil || wrote {
		t.Errorf("FillUTM again = %v, %v", wrote, err)
	}
	if _, err := w.FillUTM(ctx, ref(domain.KindContact, 10), utm); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FillUTM(contact) = %v, want EINVALID", err)
	}
	if wr := f.Written(); len(wr.Leads)+len(wr.Contacts) != 0 {
		t.Errorf("FillUTM created records: %+v", wr)
	}
}

func TestWriteFailures(t *testing.T) {
	t.Parallel()
	lead := crm.NewLead{Key: "k", Phone: "79990000001", Title: "+79990000001", OwnerID: "3"}

	t.Run("500", func(t *testing.T) {
		t.Parallel()
		f := retailcrmfake.New(t)
		_, w, ns := writer(t, f)
		f.FailWrites(http.StatusInternalServerError, 1)
		_, err := w.CreateLead(context.Background(), lead)
		var se *crm.StatusError
		if !errors.As(err, &se) || se.Status != 500 || se.Message != "Internal Server Error" || crm.IsPermanent(err) {
			t.Fatalf("err = %v, want a non-permanent 500 StatusError", err)
		}
		if wr := f.Written(); len(wr.Contacts)+len(wr.Leads) != 0 || len(ns.Waits) != 0 {
			t.Errorf("written %+v after a failed, unretried POST (waits %v)", wr, ns.Waits)
		}
	})
	t.Run("400", func(t *testing.T) {
		t.Parallel()
		f := retailcrmfake.New(t)
		_, w, _ := writer(t, f)
		f.FailWrites(http.StatusBadRequest, 1)
		_, err := w.CreateTask(context.Background(), crm.NewTask{Key: "t", Text: "x", UserID: "3"})
		var se *crm.StatusError
		if !crm.IsPermanent(err) || !errors.As(err, &se) || se.Message != "Errors in the entity format (phone: This value is not valid.)" {
			t.Fatalf("err = %v, want a permanent 400 with retailCRM's message", err)
		}
		if len(f.Written().Tasks) != 0 {
			t.Error("task written")
		}
	})
	t.Run("429", func(t *testing.T) {
		t.Parallel()
		f := retailcrmfake.New(t)
		_, w, ns := writer(t, f)
		f.FailWrites(http.StatusTooManyRequests, 1)
		id, err := w.CreateCall(context.Background(), crm.NewCall{Key: "c1", Phone: "79990000001", Start: time.Now(), Answered: true})
		if err != nil || id != "c1" {
			t.Fatalf("CreateCall = %q, %v; want success after the retry", id, err)
		}
		if len(ns.Waits) != 1 || ns.Waits[0] != time.Second || len(f.Written().Calls) != 1 {
			t.Errorf("waits %v, calls %+v; want one 1 s wait and one call", ns.Waits, f.Written().Calls)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		t.Parallel()
		f := retailcrmfake.New(t)
		_, w, _ := writer(t, f)
		f.Revoke()
		_, err := w.CreateLead(context.Background(), lead)
		var ae *crm.AuthError
		if !errors.As(err, &ae) || ae.Message != `Wrong "apiKey" value.` || crm.IsPermanent(err) {
			t.Fatalf("err = %v, want an AuthError", err)
		}
		if _, err := w.FillUTM(context.Background(), ref(domain.KindDeal, 1), crm.UTM{Source: "x"}); !crm.IsAuth(err) {
			t.Errorf("FillUTM err = %v, want an AuthError", err)
		}
	})
	t.Run("bad ids", func(t *testing.T) {
		t.Parallel()
		f := retailcrmfake.New(t)
		_, w, _ := writer(t, f)
		if _, err := w.CreateLead(context.Background(), crm.NewLead{Key: "k", Phone: "1", OwnerID: "bob"}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("owner bob: %v, want EINVALID", err)
		}
		if f.Meter().Count() != 0 {
			t.Error("a request was sent for an invalid id")
		}
	})
}
