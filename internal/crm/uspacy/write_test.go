package uspacy_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/uspacy"
	"github.com/callrouter/callrouter/internal/domain"
)

// writer returns the env's adapter as a crm.Writer.
func (e *env) writer(t *testing.T) crm.Writer {
	t.Helper()
	w, ok := e.src.(crm.Writer)
	if !ok {
		t.Fatal("the uspacy source does not implement crm.Writer")
	}
	return w
}

// newLead creates a lead for phone with no extras and returns its ref.
func newLead(t *testing.T, e *env, phone string) crm.Ref {
	t.Helper()
	c, err := e.writer(t).CreateLead(ctx(t), crm.NewLead{Key: "lead-" + phone, Phone: phone, Title: "+" + phone})
	if err != nil {
		t.Fatalf("CreateLead(%s): %v", phone, err)
	}
	return c.Lead
}

func TestCreateLeadNewClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	if k := e.fake.LeadKind(); k != domain.KindLead {
		t.Errorf("LeadKind = %q, want lead", k)
	}
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", ClientID: "GA1.2.3"}
	c, err := w.CreateLead(ctx(t), crm.NewLead{Key: "k1", Phone: "380501234567", Title: "+380501234567",
		OwnerID: "11", Pipeline: "42", UTM: utm})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if c.Lead.Kind != domain.KindLead || c.Lead.ID == "" || c.Contact != (crm.Ref{}) {
		t.Fatalf("CreateLead = %+v, want a lead and no contact", c)
	}

	wr := e.fake.Written()
	if len(wr.Contacts) != 0 {
		t.Errorf("contacts created: %+v; Uspacy leads hold their own phones", wr.Contacts)
	}
	if len(wr.Leads) != 1 {
		t.Fatalf("leads written: %+v, want 1", wr.Leads)
	}
	got := wr.Leads[0]
	wantUTM := utm
	wantUTM.ClientID = "" // Uspacy has no field for it
	if got.ID != c.Lead.ID || got.Kind != domain.KindLead || got.Title != "+380501234567" || got.Phone != "380501234567" ||
		got.OwnerID != "11" || got.ContactID != "" || got.Pipeline != "42" || got.UTM != wantUTM {
		t.Errorf("written lead = %+v", got)
	}
	if u := e.fake.UTM(c.Lead); u != wantUTM {
		t.Errorf("UTM = %+v, want %+v", u, wantUTM)
	}

	// A second call from the number must find the lead, open, with its owner.
	found, err := e.src.FindByPhone(ctx(t), "380501234567")
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	i := slices.IndexFunc(found, func(x crm.Entity) bool { return x.Kind == domain.KindLead && x.ID == c.Lead.ID })
	if i < 0 {
		t.Fatalf("FindByPhone = %+v, want the new lead %s", found, c.Lead.ID)
	}
	if !found[i].Open || found[i].OwnerID != "11" {
		t.Errorf("found lead = %+v, want open and owned by 11", found[i])
	}

	// So must the sync.
	seen, _, _ := fullSync(t, e.src)
	if s, ok := seen[c.Lead]; !ok || !s.Open || s.OwnerID != "11" || !slices.Contains(s.Phones, "+380501234567") {
		t.Errorf("full sync saw %+v (found %v), want the open lead of 11 with its phone", s, ok)
	}
}

func TestCreateLeadExistingContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "3001", Name: "Olena", Phones: []string{"+380671112233"}, Open: true})
	c, err := e.writer(t).CreateLead(ctx(t), crm.NewLead{Key: "k2", Phone: "380671112233", Title: "+380671112233", ContactID: "3001"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if c.Contact != (crm.Ref{Kind: domain.KindContact, ID: "3001"}) || c.Lead.ID == "" {
		t.Errorf("CreateLead = %+v, want the lead and contact 3001", c)
	}
	wr := e.fake.Written()
	if len(wr.Contacts) != 0 || len(wr.Leads) != 1 {
		t.Fatalf("written %+v, want one lead and no contact", wr)
	}
	if l := wr.Leads[0]; l.Pipeline != "" || l.OwnerID != "" || l.Phone != "380671112233" || l.UTM != (crm.UTM{}) {
		t.Errorf("written lead = %+v, want default pipeline, no owner, no UTM", l)
	}
}

func TestCreateLeadRejectsPhoneWithoutDigits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, err := e.writer(t).CreateLead(ctx(t), crm.NewLead{Key: "k", Phone: "anonymous"})
	if domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("CreateLead(no digits) = %v, want EINVALID", err)
	}
	if n := len(e.fake.Written().Leads); n != 0 {
		t.Errorf("%d leads written", n)
	}
}

func TestCreateCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "3001", Name: "Olena", Phones: []string{"+380671112233"}, Open: true})
	lead := newLead(t, e, "380671112233")
	contact := crm.Ref{Kind: domain.KindContact, ID: "3001"}

	for _, tc := range []struct {
		name string
		call crm.NewCall
	}{
		{"incoming answered", crm.NewCall{Key: "call-in-ok", CallID: "1700.1", Answered: true, Disposition: "ANSWERED",
			Phone: "380671112233", Line: "380441234567", Start: t0, Duration: 75 * time.Second, Wait: 5 * time.Second,
			Recording: "https://pbx.example/rec/1700.1.mp3", UserID: "11", Lead: lead, Contact: contact}},
		{"incoming missed", crm.NewCall{Key: "call-in-missed", CallID: "1700.2", Disposition: "NO ANSWER",
			Phone: "380671112233", Line: "380441234567", Start: t0, Wait: 20 * time.Second, UserID: "12", Lead: lead,
			Texts: crm.CallTexts{Subject: "Пропущений дзвінок +380671112233", Note: "Телефон: +380671112233\nСтатус: NO ANSWER"}}},
		{"outgoing", crm.NewCall{Key: "call-out", CallID: "1700.3", Outgoing: true, Answered: true, Disposition: "ANSWERED",
			Phone: "380671112233", Line: "101", Start: t0, Duration: 30 * time.Second,
			Recording: "https://pbx.example/rec/1700.3.mp3", UserID: "13", Contact: contact}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := w.Find(ctx(t), crm.WriteCall, tc.call.Key, lead); err != nil || id != "" {
				t.Fatalf("Find before create = %q, %v; want \"\"", id, err)
			}
			id, err := w.CreateCall(ctx(t), tc.call)
			if err != nil || id == "" {
				t.Fatalf("CreateCall = %q, %v", id, err)
			}
			calls := e.fake.Written().Calls
			got := calls[len(calls)-1]
			want := wantCall(id, tc.call)
			want.Seq = got.Seq
			if got.Seq == 0 || got != want {
				t.Errorf("written call = %+v,\nwant %+v", got, want)
			}
			if found, err := w.Find(ctx(t), crm.WriteCall, tc.call.Key, lead); err != nil || found != id {
				t.Errorf("Find after create = %q, %v; want %q", found, err, id)
			}
		})
	}
	if n := len(e.fake.Written().Calls); n != 3 {
		t.Errorf("%d calls written, want 3", n)
	}
}

// wantCall is the record a NewCall should leave.
func wantCall(id string, c crm.NewCall) crmtest.WrittenCall {
	// The subject and note: the caller's words, else English.
	text := "Incoming call +" + c.Phone + "\n" + c.Disposition
	if c.Outgoing {
		text = "Outgoing call +" + c.Phone + "\n" + c.Disposition
	}
	if c.Texts.Subject != "" {
		text = c.Texts.Subject + "\n" + c.Texts.Note
	}
	return crmtest.WrittenCall{ID: id, Key: c.Key, Outgoing: c.Outgoing, Answered: c.Answered, Phone: c.Phone,
		Start: c.Start.UTC().Truncate(time.Second), Duration: c.Duration, Recording: c.Recording, UserID: c.UserID, LeadID: c.Lead.ID,
		ContactID: c.Contact.ID, Text: text}
}

func TestCreateCallToMissingLeadIsPermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, err := e.writer(t).CreateCall(ctx(t), crm.NewCall{Key: "k", Phone: "380671112233", Start: t0,
		Lead: crm.Ref{Kind: domain.KindLead, ID: "999"}})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 422 || !crm.IsPermanent(err) {
		t.Errorf("CreateCall(unknown lead) = %v, want a permanent 422 *crm.StatusError", err)
	}
}

func TestCreateTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "3001", Name: "Olena", Phones: []string{"+380671112233"}, Open: true})
	lead := newLead(t, e, "380671112233")
	task := crm.NewTask{Key: "task-1", Text: "Call back +380671112233\nMissed call at 09:00", Due: t0.Add(time.Hour),
		UserID: "12", Phone: "380671112233", Lead: lead, Contact: crm.Ref{Kind: domain.KindContact, ID: "3001"}}

	if id, err := w.Find(ctx(t), crm.WriteTask, task.Key, lead); err != nil || id != "" {
		t.Fatalf("Find before create = %q, %v; want \"\"", id, err)
	}
	id, err := w.CreateTask(ctx(t), task)
	if err != nil || id == "" {
		t.Fatalf("CreateTask = %q, %v", id, err)
	}
	wr := e.fake.Written()
	if len(wr.Tasks) != 1 {
		t.Fatalf("tasks written: %+v", wr.Tasks)
	}
	got := wr.Tasks[0]
	if got.ID != id || got.Text != task.Text || got.UserID != "12" || got.LeadID != lead.ID || got.ContactID != "3001" ||
		!got.Due.Equal(task.Due) {
		t.Errorf("written task = %+v", got)
	}
	if got.Seq <= wr.Leads[0].Seq {
		t.Errorf("task seq %d not after lead seq %d", got.Seq, wr.Leads[0].Seq)
	}
	if found, err := w.Find(ctx(t), crm.WriteTask, task.Key, lead); err != nil || found != id {
		t.Errorf("Find after create = %q, %v; want %q", found, err, id)
	}
	// Another key does not find it.
	if found, err := w.Find(ctx(t), crm.WriteTask, "task-2", lead); err != nil || found != "" {
		t.Errorf("Find(other key) = %q, %v; want \"\"", found, err)
	}
}

func TestFindLeadNotSearchable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, k := range []crm.WriteKind{crm.WriteLead, crm.WriteUTM} {
		if _, err := e.writer(t).Find(ctx(t), k, "k", crm.Ref{}); !errors.Is(err, crm.ErrNotSearchable) {
			t.Errorf("Find(%s) = %v, want ErrNotSearchable", k, err)
		}
	}
}

func TestFillUTM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	utm := crm.UTM{Source: "facebook", Medium: "social", Campaign: "may", Term: "sofa", Content: "ad1"}

	// A lead with no attribution gets it.
	lead := newLead(t, e, "380501112233")
	ok, err := w.FillUTM(ctx(t), lead, utm)
	if err != nil || !ok {
		t.Fatalf("FillUTM(empty lead) = %v, %v; want true", ok, err)
	}
	if got := e.fake.UTM(lead); got != utm {
		t.Errorf("UTM after fill = %+v, want %+v", got, utm)
	}

	// A deal with one field set keeps its attribution.
	deal := crm.Ref{Kind: domain.KindDeal, ID: "20011"}
	e.fake.Put(crm.Entity{Kind: deal.Kind, ID: deal.ID, Name: "Deal", Open: true})
	e.fake.SetUTM(deal, crm.UTM{Medium: "email"})
	ok, err = w.FillUTM(ctx(t), deal, utm)
	if err != nil || ok {
		t.Fatalf("FillUTM(deal with UTM) = %v, %v; want false", ok, err)
	}
	if got := e.fake.UTM(deal); got != (crm.UTM{Medium: "email"}) {
		t.Errorf("UTM of deal = %+v, want unchanged", got)
	}

	if _, err := w.FillUTM(ctx(t), crm.Ref{Kind: domain.KindContact, ID: "1"}, utm); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FillUTM(contact) = %v, want EINVALID", err)
	}
}

func TestWriteFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	newLead(t, e, "380500000001") // signs in, so the failures hit the writes

	e.fake.FailWrites(500, 1)
	_, err := w.CreateLead(ctx(t), crm.NewLead{Key: "k5", Phone: "380500000002", Title: "+380500000002"})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != 500 || crm.IsPermanent(err) {
		t.Errorf("CreateLead under 500 = %v, want a non-permanent 500 *crm.StatusError", err)
	}
	if n := len(e.fake.Written().Leads); n != 1 {
		t.Errorf("%d leads written, want only the first (a POST is not retried after a 500)", n)
	}

	e.fake.FailWrites(400, 1)
	_, err = w.CreateCall(ctx(t), crm.NewCall{Key: "k6", Phone: "380500000001", Start: t0})
	if !errors.As(err, &se) || se.Status != 400 || !crm.IsPermanent(err) || se.Message != "The given data was invalid." {
		t.Errorf("CreateCall under 400 = %v, want a permanent 400 with Uspacy's message", err)
	}

	e.fake.FailWrites(429, 1)
	waits := len(e.sleep.Waits)
	id, err := w.CreateTask(ctx(t), crm.NewTask{Key: "k7", Text: "Call back", Due: t0.Add(time.Hour)})
	if err != nil || id == "" {
		t.Fatalf("CreateTask after one 429 = %q, %v; want success", id, err)
	}
	if got := e.sleep.Waits[waits:]; !slices.Contains(got, time.Second) {
		t.Errorf("waits %v, want the 1 s Retry-After", got)
	}
	if wr := e.fake.Written(); len(wr.Calls) != 0 || len(wr.Tasks) != 1 {
		t.Errorf("written %+v, want no call and one task", wr)
	}
}

func TestWriteRevoked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	newLead(t, e, "380500000001")
	e.fake.Revoke()
	_, err := e.writer(t).CreateLead(ctx(t), crm.NewLead{Key: "k8", Phone: "380500000003", Title: "+380500000003"})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message == "" {
		t.Errorf("CreateLead after Revoke = %v, want *crm.AuthError with Uspacy's message", err)
	}
	if n := len(e.fake.Written().Leads); n != 1 {
		t.Errorf("%d leads written, want 1", n)
	}
}

func TestExternalID(t *testing.T) {
	t.Parallel()
	a, b := uspacy.ExternalID("call-1"), uspacy.ExternalID("call-2")
	if a <= 0 || a >= 1<<53 || a == b || a != uspacy.ExternalID("call-1") {
		t.Errorf("ExternalID: %d, %d; want stable, distinct, positive and under 2^53", a, b)
	}
	if m := uspacy.Marker("abc_-1"); m != "[cr:abc_-1]" {
		t.Errorf("Marker = %q", m)
	}
}
