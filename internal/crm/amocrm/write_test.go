package amocrm_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

const (
	clientPhone = "380671234567"
	ownerID     = "501"
	managerID   = "502"
)

// writer connects an adapter to a fake account with two users.
func writer(t *testing.T) (*env, crm.Writer) {
	t.Helper()
	e := newEnv(t)
	e.fake.SetUsers([]crm.User{{ID: ownerID, Name: "Owner", Active: true}, {ID: managerID, Name: "Manager", Active: true}})
	w, ok := e.src.(crm.Writer)
	if !ok {
		t.Fatal("the amoCRM source does not implement crm.Writer")
	}
	return e, w
}

// newClient creates a lead and contact for clientPhone owned by ownerID.
func newClient(t *testing.T, w crm.Writer) crm.Created {
	t.Helper()
	c, err := w.CreateLead(context.Background(), crm.NewLead{Key: "lead-1", Phone: clientPhone, Title: "+" + clientPhone, OwnerID: ownerID})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	return c
}

func findEntity(es []crm.Entity, r crm.Ref) (crm.Entity, bool) {
	i := slices.IndexFunc(es, func(e crm.Entity) bool { return e.Kind == r.Kind && e.ID == r.ID })
	if i < 0 {
		return crm.Entity{}, false
	}
	return es[i], true
}

func TestCreateLeadNewClient(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", ClientID: "GA1.2.333.444"}
	c, err := w.CreateLead(ctx, crm.NewLead{Key: "lead-1", Phone: clientPhone, Title: "+" + clientPhone,
		OwnerID: ownerID, Pipeline: "7770001", UTM: utm})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if c.Lead.Kind != domain.KindLead || c.Lead.ID == "" || c.Contact.Kind != domain.KindContact || c.Contact.ID == "" {
		t.Fatalf("CreateLead = %+v, want a lead and a contact", c)
	}
	if e.fake.LeadKind() != domain.KindLead {
		t.Errorf("LeadKind = %q", e.fake.LeadKind())
	}
	wr := e.fake.Written()
	if len(wr.Contacts) != 1 || len(wr.Leads) != 1 || len(wr.Calls) != 0 || len(wr.Tasks) != 0 {
		t.Fatalf("Written = %+v, want one contact and one lead", wr)
	}
	wantContact := crmtest.WrittenContact{Seq: 1, ID: c.Contact.ID, Phone: clientPhone, OwnerID: ownerID, Name: "+" + clientPhone}
	if !reflect.DeepEqual(wr.Contacts[0], wantContact) {
		t.Errorf("contact = %+v, want %+v", wr.Contacts[0], wantContact)
	}
	wantLead := crmtest.WrittenLead{Seq: 2, Kind: domain.KindLead, ID: c.Lead.ID, Title: "+" + clientPhone, Phone: clientPhone,
		OwnerID: ownerID, ContactID: c.Contact.ID, Pipeline: "7770001", UTM: utm}
	if !reflect.DeepEqual(wr.Leads[0], wantLead) {
		t.Errorf("lead = %+v, want %+v", wr.Leads[0], wantLead)
	}
	if got := e.fake.UTM(c.Lead); got != utm {
		t.Errorf("fake UTM = %+v, want %+v", got, utm)
	}
	if !slices.ContainsFunc(e.fake.Requests(), func(r string) bool { return r == "POST /api/v4/leads/complex" }) {
		t.Errorf("requests %v lack POST /api/v4/leads/complex", e.fake.Requests())
	}

	// A second call from the number must find this lead, open and owned.
	found, err := e.src.FindByPhone(ctx, clientPhone)
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	l, ok := findEntity(found, c.Lead)
	if !ok || !l.Open || l.OwnerID != ownerID || !slices.Contains(l.Phones, "+"+clientPhone) {
		t.Errorf("FindByPhone lead = %+v (found %v), want open, owner %s, phone +%s", l, ok, ownerID, clientPhone)
	}
	if ct, ok := findEntity(found, c.Contact); !ok || ct.OwnerID != ownerID {
		t.Errorf("FindByPhone contact = %+v (found %v), want owner %s", ct, ok, ownerID)
	}
	// And the sync indexes it the same way.
	r, _ := drain(t, e.src.Full, "")
	if sl := r.entity(t, c.Lead); !sl.Open || sl.OwnerID != ownerID || !slices.Contains(sl.Phones, "+"+clientPhone) {
		t.Errorf("synced lead = %+v", sl)
	}
}

func TestCreateLeadDefaults(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	c, err := w.CreateLead(context.Background(), crm.NewLead{Key: "k", Phone: clientPhone, Title: "+" + clientPhone})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	wr := e.fake.Written()
	if len(wr.Leads) != 1 || wr.Leads[0].Pipeline != "" || wr.Leads[0].OwnerID != "" || !wr.Leads[0].UTM.Empty() ||
		wr.Leads[0].ContactID != c.Contact.ID {
		t.Errorf("Written leads = %+v, want default pipeline, no owner, no UTM, contact %s", wr.Leads, c.Contact.ID)
	}
	// Ids that are not amoCRM's are refused before any request.
	before := e.fake.Meter().Count()
	_, err = w.CreateLead(context.Background(), crm.NewLead{Phone: clientPhone, Title: "x", OwnerID: "bob"})
	if domain.ErrorCode(err) != domain.EINVALID || e.fake.Meter().Count() != before {
		t.Errorf("CreateLead(owner bob) = %v after %d requests, want EINVALID and none", err, e.fake.Meter().Count()-before)
	}
}

func TestCreateLeadExistingContact(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "10", Name: "Иван", Phones: []string{"+38 (067) 123-45-67"}})
	c, err := w.CreateLead(context.Background(), crm.NewLead{Key: "k", Phone: clientPhone, Title: "+" + clientPhone,
		OwnerID: managerID, ContactID: "10"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if c.Contact != contactRef(10) || c.Lead.Kind != domain.KindLead {
		t.Errorf("CreateLead = %+v, want contact 10 and a lead", c)
	}
	wr := e.fake.Written()
	if len(wr.Contacts) != 0 || len(wr.Leads) != 1 {
		t.Fatalf("Written = %+v, want one lead and no contact", wr)
	}
	if l := wr.Leads[0]; l.ContactID != "10" || l.Phone != clientPhone || l.OwnerID != managerID || l.ID != c.Lead.ID {
		t.Errorf("lead = %+v", l)
	}
	found, err := e.src.FindByPhone(context.Background(), clientPhone)
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	if l, ok := findEntity(found, c.Lead); !ok || !l.Open || l.OwnerID != managerID {
		t.Errorf("FindByPhone lead = %+v (found %v)", l, ok)
	}
	// A contact amoCRM does not have is a permanent refusal.
	_, err = w.CreateLead(context.Background(), crm.NewLead{Phone: clientPhone, Title: "x", ContactID: "999"})
	if !crm.IsPermanent(err) {
		t.Errorf("CreateLead(missing contact) = %v, want a permanent error", err)
	}
}

func TestCreateCall(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	c := newClient(t, w)
	start := e.clock.Now()
	calls := []struct {
		name string
		call crm.NewCall
	}{
		{"incoming answered", crm.NewCall{Key: "call-1", CallID: "1700000000.1", Answered: true, Disposition: "ANSWER",
			Phone: clientPhone, Line: "380441112233", Start: start, Duration: 95 * time.Second, Wait: 7 * time.Second,
			Recording: "https://pbx.example/rec/1.mp3", UserID: managerID, Lead: c.Lead, Contact: c.Contact}},
		{"incoming missed", crm.NewCall{Key: "call-2", CallID: "1700000000.2", Disposition: "BUSY",
			Phone: clientPhone, Line: "380441112233", Start: start, Wait: 20 * time.Second, UserID: ownerID,
			Lead: c.Lead, Contact: c.Contact, Texts: crm.CallTexts{Result: "зайнято"}}},
		{"outgoing", crm.NewCall{Key: "call-3", CallID: "1700000000.3", Outgoing: true, Answered: true, Disposition: "ANSWER",
			Phone: clientPhone, Line: "101", Start: start, Duration: 30 * time.Second, UserID: managerID, Lead: c.Lead}},
	}
	for i, tc := range calls {
		id, err := w.CreateCall(ctx, tc.call)
		if err != nil {
			t.Fatalf("%s: CreateCall: %v", tc.name, err)
		}
		wr := e.fake.Written()
		if len(wr.Calls) != i+1 {
			t.Fatalf("%s: %d calls written, want %d", tc.name, len(wr.Calls), i+1)
		}
		want := crmtest.WrittenCall{Seq: 3 + i, ID: id, Key: tc.call.Key, Outgoing: tc.call.Outgoing, Answered: tc.call.Answered,
			Phone: clientPhone, Start: tc.call.Start.UTC().Truncate(time.Second), Duration: tc.call.Duration, Recording: tc.call.Recording,
			UserID: tc.call.UserID, LeadID: c.Lead.ID, ContactID: c.Contact.ID,
			// call_result: the caller's words (the tenant's language), else English.
			Text: []string{"answered", "зайнято", "answered"}[i]}
		if got := wr.Calls[i]; got != want {
			t.Errorf("%s: written %+v, want %+v", tc.name, got, want)
		}
		typ, params, createdBy, ok := e.fake.CallNote(id)
		wantTyp, wantStatus := "call_in", []int64{4, 7, 4}[i]
		if tc.call.Outgoing {
			wantTyp = "call_out"
		}
		if !ok || typ != wantTyp || params["call_status"] != wantStatus || params["source"] != "callrouter" ||
			params["phone"] != "+"+clientPhone || strconv.FormatInt(createdBy, 10) != tc.call.UserID {
			t.Errorf("%s: note %q %v created_by %d, want %s with call_status %d, source callrouter, created_by the user",
				tc.name, typ, params, createdBy, wantTyp, wantStatus)
		}
		if got, err := w.Find(ctx, crm.WriteCall, tc.call.Key, c.Lead); err != nil || got != id {
			t.Errorf("%s: Find = %q, %v; want %q", tc.name, got, err, id)
		}
	}
	// amoCRM adds no call for a number no contact holds.
	_, err := w.CreateCall(ctx, crm.NewCall{Key: "call-x", Phone: "380509999999", Answered: true, Duration: time.Second})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 400 || !crm.IsPermanent(err) || !strings.Contains(se.Message, "phone") {
		t.Errorf("CreateCall(unknown phone) = %v, want a permanent 400 naming the phone", err)
	}
	if n := len(e.fake.Written().Calls); n != 3 {
		t.Errorf("%d calls written after the refusal, want 3", n)
	}
}

func TestCreateCallContactWithTwoLeads(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	c := newClient(t, w)
	second, err := w.CreateLead(ctx, crm.NewLead{Key: "lead-2", Phone: clientPhone, Title: "again", ContactID: c.Contact.ID})
	if err != nil {
		t.Fatalf("CreateLead(second): %v", err)
	}
	// With two active leads amoCRM files the call under the contact; Find
	// under either lead still finds it through the lead's contacts.
	id, err := w.CreateCall(ctx, crm.NewCall{Key: "call-1", Phone: clientPhone, Answered: true, Duration: 5 * time.Second,
		UserID: ownerID, Lead: second.Lead, Contact: c.Contact})
	if err != nil {
		t.Fatalf("CreateCall: %v", err)
	}
	if wc := e.fake.Written().Calls[0]; wc.LeadID != "" || wc.ContactID != c.Contact.ID {
		t.Errorf("written call links lead %q contact %q, want the contact %s only", wc.LeadID, wc.ContactID, c.Contact.ID)
	}
	for _, parent := range []crm.Ref{second.Lead, c.Contact} {
		if got, err := w.Find(ctx, crm.WriteCall, "call-1", parent); err != nil || got != id {
			t.Errorf("Find(call under %v) = %q, %v; want %q", parent, got, err, id)
		}
	}
}

func TestCreateTask(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	c := newClient(t, w)
	if got, err := w.Find(ctx, crm.WriteTask, "task-1", c.Lead); err != nil || got != "" {
		t.Fatalf("Find before create = %q, %v; want \"\"", got, err)
	}
	due := e.clock.Now().Add(30 * time.Minute)
	id, err := w.CreateTask(ctx, crm.NewTask{Key: "task-1", Text: "Перезвонить клиенту", Due: due, UserID: ownerID,
		Phone: clientPhone, Lead: c.Lead, Contact: c.Contact})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	wr := e.fake.Written()
	if len(wr.Tasks) != 1 {
		t.Fatalf("Written tasks = %+v", wr.Tasks)
	}
	tk := wr.Tasks[0]
	if tk.Seq != 3 || tk.ID != id || !strings.HasPrefix(tk.Text, "Перезвонить клиенту") || !strings.Contains(tk.Text, "[cr:task-1]") ||
		tk.UserID != ownerID || tk.LeadID != c.Lead.ID || tk.ContactID != "" || !tk.Due.Equal(due) {
		t.Errorf("task = %+v, want seq 3, id %s, marker, owner, lead %s, due %v", tk, id, c.Lead.ID, due)
	}
	if got, err := w.Find(ctx, crm.WriteTask, "task-1", c.Lead); err != nil || got != id {
		t.Errorf("Find after create = %q, %v; want %q", got, err, id)
	}
	if got, err := w.Find(ctx, crm.WriteTask, "task-2", c.Lead); err != nil || got != "" {
		t.Errorf("Find(other key) = %q, %v; want \"\"", got, err)
	}
	// Without a lead the task goes to the contact.
	id2, err := w.CreateTask(ctx, crm.NewTask{Key: "task-2", Text: "Call back", Due: due, UserID: managerID, Contact: c.Contact})
	if err != nil {
		t.Fatalf("CreateTask(contact): %v", err)
	}
	if tk := e.fake.Written().Tasks[1]; tk.ContactID != c.Contact.ID || tk.LeadID != "" || tk.UserID != managerID {
		t.Errorf("contact task = %+v", tk)
	}
	if got, err := w.Find(ctx, crm.WriteTask, "task-2", c.Contact); err != nil || got != id2 {
		t.Errorf("Find(contact task) = %q, %v; want %q", got, err, id2)
	}
}

func TestFillUTM(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "1", Name: "empty", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "2", Name: "attributed", Open: true})
	e.fake.SetUTM(leadRef(2), crm.UTM{Campaign: "old"})
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "new", Term: "crm", Content: "ad1", ClientID: "GA1.2.3.4"}

	wrote, err := w.FillUTM(ctx, leadRef(1), utm)
	if err != nil || !wrote {
		t.Fatalf("FillUTM(empty lead) = %v, %v; want true", wrote, err)
	}
	if got := e.fake.UTM(leadRef(1)); got != utm {
		t.Errorf("UTM after fill = %+v, want %+v", got, utm)
	}

	patches := func() int {
		n := 0
		for _, r := range e.fake.Requests() {
			if strings.HasPrefix(r, "PATCH ") {
				n++
			}
		}
		return n
	}
	before := patches()
	wrote, err = w.FillUTM(ctx, leadRef(2), utm)
	if err != nil || wrote {
		t.Errorf("FillUTM(attributed lead) = %v, %v; want false", wrote, err)
	}
	if got := e.fake.UTM(leadRef(2)); got != (crm.UTM{Campaign: "old"}) {
		t.Errorf("attributed lead's UTM = %+v, want it kept", got)
	}
	if patches() != before {
		t.Error("FillUTM wrote to a lead with UTM set")
	}
	if _, err := w.FillUTM(ctx, leadRef(3), utm); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("FillUTM(missing lead) = %v, want ENOTFOUND", err)
	}
}

func TestFindNotSearchable(t *testing.T) {
	t.Parallel()
	_, w := writer(t)
	ctx := context.Background()
	for _, kind := range []crm.WriteKind{crm.WriteLead, crm.WriteUTM} {
		if _, err := w.Find(ctx, kind, "k", leadRef(1)); !errors.Is(err, crm.ErrNotSearchable) {
			t.Errorf("Find(%s) = %v, want ErrNotSearchable", kind, err)
		}
	}
	if _, err := w.Find(ctx, crm.WriteCall, "k", crm.Ref{}); !errors.Is(err, crm.ErrNotSearchable) {
		t.Errorf("Find(call, no parent) = %v, want ErrNotSearchable", err)
	}
	if got, err := w.Find(ctx, crm.WriteCall, "k", leadRef(1)); err != nil || got != "" {
		t.Errorf("Find(call before create) = %q, %v; want \"\"", got, err)
	}
}

func TestWriteFailures(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	lead := crm.NewLead{Key: "k", Phone: clientPhone, Title: "+" + clientPhone, OwnerID: ownerID}

	e.fake.FailWrites(500, 1)
	_, err := w.CreateLead(ctx, lead)
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 500 || crm.IsPermanent(err) {
		t.Errorf("CreateLead after FailWrites(500) = %v, want a transient *crm.StatusError 500", err)
	}
	if wr := e.fake.Written(); len(wr.Leads)+len(wr.Contacts) != 0 {
		t.Errorf("written after a failure: %+v", wr)
	}

	e.fake.FailWrites(400, 1)
	_, err = w.CreateTask(ctx, crm.NewTask{Key: "t", Text: "x", Due: e.clock.Now(), Lead: leadRef(1)})
	if !errors.As(err, &se) || se.Status != 400 || !crm.IsPermanent(err) || !strings.Contains(se.Message, "Request validation failed") {
		t.Errorf("CreateTask after FailWrites(400) = %v, want a permanent 400 with amoCRM's detail", err)
	}

	e.fake.FailWrites(429, 1)
	waits := len(e.sleep.Waits)
	c, err := w.CreateLead(ctx, lead)
	if err != nil {
		t.Fatalf("CreateLead after FailWrites(429, 1) = %v, want success after a retry", err)
	}
	if got := e.sleep.Waits[waits:]; len(got) != 1 || got[0] != time.Second {
		t.Errorf("waits = %v, want one Retry-After of 1s", got)
	}
	if wr := e.fake.Written(); len(wr.Leads) != 1 || wr.Leads[0].ID != c.Lead.ID {
		t.Errorf("Written leads = %+v, want the one lead %s", wr.Leads, c.Lead.ID)
	}

	e.fake.Revoke()
	_, err = w.CreateCall(ctx, crm.NewCall{Key: "c", Phone: clientPhone, Answered: true, Duration: time.Second})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "revoked") {
		t.Errorf("CreateCall after Revoke = %v, want *crm.AuthError with amoCRM's hint", err)
	}
	if n := len(e.fake.Written().Calls); n != 0 {
		t.Errorf("%d calls written with revoked credentials", n)
	}
}

func TestWriteLongLivedRevoked(t *testing.T) {
	t.Parallel()
	e, _ := writer(t)
	e.connect(t, e.fake.LongLivedCreds())
	w := e.src.(crm.Writer)
	e.fake.Revoke()
	_, err := w.CreateLead(context.Background(), crm.NewLead{Phone: clientPhone, Title: "x"})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Message != "Unauthorized" {
		t.Errorf("CreateLead after Revoke = %v, want *crm.AuthError 401 Unauthorized", err)
	}
}
