package zoho_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// wire records the JSON bodies the adapter writes, by method and path,
// so tests can check the fields Zoho receives.
type wire struct {
	mu     sync.Mutex
	next   http.RoundTripper
	bodies map[string][]map[string]any
	// answer, when set, replaces Zoho's answer to writes.
	answer func(*http.Request) *http.Response
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Method != http.MethodGet && strings.HasPrefix(r.URL.Path, "/crm/") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var env struct {
			Data []map[string]any `json:"data"`
		}
		_ = json.Unmarshal(b, &env)
		w.mu.Lock()
		w.bodies[r.Method+" "+r.URL.Path] = append(w.bodies[r.Method+" "+r.URL.Path], env.Data...)
		answer := w.answer
		w.mu.Unlock()
		if answer != nil {
			if resp := answer(r); resp != nil {
				return resp, nil
			}
		}
	}
	return w.next.RoundTrip(r)
}

// last returns the last record written to method and path.
func (w *wire) last(t *testing.T, key string) map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bodies[key]
	if len(b) == 0 {
		t.Fatalf("nothing sent to %s", key)
	}
	return b[len(b)-1]
}

type wenv struct {
	*env
	w    crm.Writer
	wire *wire
}

// setupWriter is setup with the adapter's writes recorded.
func setupWriter(t *testing.T) *wenv {
	t.Helper()
	e := &env{fake: zohofake.New(t), sleep: &crmtest.NoSleep{},
		clock: &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	e.fake.SetClock(e.clock.Now)
	e.fake.SetUsers([]crm.User{{ID: "u1", Name: "Olena Koval", Active: true}, {ID: "u2", Name: "Ivan Petrenko", Active: true}})
	tok, _ := zoho.Seed(e.fake.Creds())
	e.store = crmtest.NewTokenStore(tok)
	wr := &wire{next: http.DefaultTransport, bodies: map[string][]map[string]any{}}
	src, err := zoho.Adapter.New(crm.Config{CRM: "zoho", BaseURL: e.fake.URL(), Creds: e.fake.Creds()},
		crm.Deps{Tokens: e.store, Sleep: e.sleep.Sleep, Now: e.clock.Now, Transport: wr})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.src = src
	w, ok := src.(crm.Writer)
	if !ok {
		t.Fatal("the Zoho source is not a crm.Writer")
	}
	return &wenv{env: e, w: w, wire: wr}
}

func (e *wenv) newLead(t *testing.T, phone, owner string) crm.Ref {
	t.Helper()
	c, err := e.w.CreateLead(context.Background(), crm.NewLead{Key: "lead-" + phone, Phone: phone, Title: "+" + phone, OwnerID: owner})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	return c.Lead
}

func TestCreateLeadNewClient(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", ClientID: "GA1.2.345.678"}
	got, err := e.w.CreateLead(ctx, crm.NewLead{Key: "k-lead-1", Phone: "380501234567", Title: "+380501234567",
		OwnerID: "u1", Pipeline: "4150868000000091023", UTM: utm})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if got.Lead.Kind != domain.KindLead || got.Lead.ID == "" || got.Contact != (crm.Ref{}) {
		t.Fatalf("Created = %+v, want a lead and no contact (Zoho leads hold the phone)", got)
	}
	if k := e.fake.LeadKind(); k != got.Lead.Kind {
		t.Errorf("fake LeadKind %q, CreateLead made %q", k, got.Lead.Kind)
	}
	wr := e.fake.Written()
	if len(wr.Contacts) != 0 || len(wr.Leads) != 1 {
		t.Fatalf("written %+v, want one lead and no contact", wr)
	}
	want := crmtest.WrittenLead{Seq: 1, Kind: domain.KindLead, ID: got.Lead.ID, Title: "+380501234567",
		Phone: "380501234567", OwnerID: "u1", UTM: utm}
	if !reflect.DeepEqual(wr.Leads[0], want) {
		t.Errorf("written lead %+v, want %+v (Zoho leads carry no pipeline)", wr.Leads[0], want)
	}
	sent := e.wire.last(t, "POST /crm/v8/Leads")
	if sent["Phone"] != "+380501234567" || sent["Company"] != "+380501234567" || sent["rs_utm_source"] != "google" ||
		sent["rs_google_client_id"] != "GA1.2.345.678" {
		t.Errorf("lead sent as %v", sent)
	}
	if _, ok := sent["rs_utm_term"]; ok {
		t.Errorf("empty UTM field sent: %v", sent)
	}
	if u := e.fake.UTM(got.Lead); u != utm {
		t.Errorf("fake UTM %+v, want %+v", u, utm)
	}

	found, err := e.src.FindByPhone(ctx, "380501234567")
	if err != nil {
		t.Fatalf("FindByPhone: %v", err)
	}
	if len(found) != 1 || found[0].Kind != domain.KindLead || found[0].ID != got.Lead.ID || !found[0].Open || found[0].OwnerID != "u1" {
		t.Fatalf("FindByPhone after CreateLead = %+v, want the open lead owned by u1", found)
	}
	ents, _ := full(t, e.src)
	if ent, ok := ents[got.Lead]; !ok || !ent.Open || ent.OwnerID != "u1" || len(ent.Phones) != 1 {
		t.Errorf("full sync has %+v (found %v), want the open lead owned by u1 with its phone", ent, ok)
	}
}

func TestCreateLeadWithoutOwner(t *testing.T) {
	e := setupWriter(t)
	got, err := e.w.CreateLead(context.Background(), crm.NewLead{Phone: "380501234567", Title: "+380501234567"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	sent := e.wire.last(t, "POST /crm/v8/Leads")
	if _, ok := sent["Owner"]; ok {
		t.Errorf("Owner sent for a lead without one: %v", sent)
	}
	if w := e.fake.Written().Leads; len(w) != 1 || w[0].ID != got.Lead.ID || w[0].OwnerID != "" || !w[0].UTM.Empty() {
		t.Errorf("written %+v", w)
	}
	if _, err := e.w.CreateLead(context.Background(), crm.NewLead{Phone: "+380"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("CreateLead with a bad phone: %v, want EINVALID", err)
	}
}

func TestCreateLeadExistingContact(t *testing.T) {
	e := setupWriter(t)
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+380501234567"}, OwnerID: "u2", Open: true})
	got, err := e.w.CreateLead(context.Background(), crm.NewLead{Key: "k2", Phone: "380501234567", Title: "+380501234567",
		OwnerID: "u2", ContactID: "c1"})
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	if got.Contact != (crm.Ref{Kind: domain.KindContact, ID: "c1"}) || got.Lead.Kind != domain.KindLead || got.Lead.ID == "" {
		t.Fatalf("Created = %+v, want a new lead and contact c1", got)
	}
	wr := e.fake.Written()
	if len(wr.Contacts) != 0 || len(wr.Leads) != 1 || wr.Leads[0].OwnerID != "u2" {
		t.Errorf("written %+v, want only the lead", wr)
	}
}

func TestCreateCall(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	lead := e.newLead(t, "380501234567", "u1")
	e.fake.Put(crm.Entity{Kind: domain.KindContact, ID: "c1", Name: "Jane", Phones: []string{"+380501234567"}, Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindDeal, ID: "d1", Name: "Deal", Open: true})
	contact := crm.Ref{Kind: domain.KindContact, ID: "c1"}
	deal := crm.Ref{Kind: domain.KindDeal, ID: "d1"}
	kyiv := time.FixedZone("EET", 2*3600)
	start := time.Date(2026, 3, 2, 11, 30, 5, 0, kyiv)

	tests := []struct {
		name     string
		call     crm.NewCall
		callType string
		duration string // "" when none is sent
		want     crmtest.WrittenCall
	}{
		{name: "incoming answered", call: crm.NewCall{Key: "call-in-1", CallID: "1700000000.1", Answered: true,
			Disposition: "ANSWERED", Phone: "380501234567", Line: "380443334455", Start: start, Zone: kyiv, Duration: 148 * time.Second,
			Wait: 7 * time.Second, Recording: "https://pbx.example.com/rec/1.mp3", UserID: "u1", Lead: lead, Contact: contact},
			callType: "Inbound", duration: "02:28",
			want: crmtest.WrittenCall{Key: "call-in-1", Answered: true, Phone: "380501234567", Duration: 148 * time.Second,
				Recording: "https://pbx.example.com/rec/1.mp3", UserID: "u1", LeadID: lead.ID}},
		{name: "incoming missed, in Ukrainian", call: crm.NewCall{Key: "call-in-2", Disposition: "NO ANSWER", Phone: "380501234567",
			Start: start, Zone: kyiv, UserID: "u2", Lead: lead, Texts: crm.CallTexts{Subject: "Пропущений дзвінок +380501234567",
				Note: "Телефон: +380501234567\nСтатус: NO ANSWER"}},
			callType: "Missed",
			want: crmtest.WrittenCall{Key: "call-in-2", Phone: "380501234567", UserID: "u2", LeadID: lead.ID,
				Text: "Пропущений дзвінок +380501234567\nТелефон: +380501234567\nСтатус: NO ANSWER"}},
		{name: "outgoing answered on a deal", call: crm.NewCall{Key: "call-out-1", Outgoing: true, Answered: true,
			Disposition: "ANSWERED", Phone: "380501234567", Start: start, Zone: kyiv, Duration: 75 * time.Minute, UserID: "u1",
			Lead: deal, Contact: contact},
			callType: "Outbound", duration: "75:00",
			want: crmtest.WrittenCall{Key: "call-out-1", Outgoing: true, Answered: true, Phone: "380501234567",
				Duration: 75 * time.Minute, UserID: "u1", LeadID: "d1", ContactID: "c1"}},
		{name: "outgoing unanswered to a contact", call: crm.NewCall{Key: "call-out-2", Outgoing: true, Disposition: "BUSY",
			Phone: "380501234567", Start: start, Zone: kyiv, UserID: "u1", Contact: contact},
			callType: "Outbound", duration: "00:00",
			want: crmtest.WrittenCall{Key: "call-out-2", Outgoing: true, Phone: "380501234567", UserID: "u1", ContactID: "c1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.w.CreateCall(ctx, tc.call)
			if err != nil {
				t.Fatalf("CreateCall: %v", err)
			}
			calls := e.fake.Written().Calls
			got := calls[len(calls)-1]
			tc.want.ID, tc.want.Seq, tc.want.Start = id, got.Seq, start.UTC()
			if tc.call.Texts.Subject == "" {
				// English words when the caller gives none; their lines are
				// checked below through the wire.
				if !strings.HasPrefix(got.Text, map[bool]string{true: "Outgoing call +", false: "Incoming call +"}[tc.call.Outgoing]) {
					t.Errorf("English subject: %q", got.Text)
				}
				tc.want.Text = got.Text
			}
			if got != tc.want {
				t.Errorf("written call\n %+v\nwant\n %+v", got, tc.want)
			}
			sent := e.wire.last(t, "POST /crm/v8/Calls")
			if sent["Call_Type"] != tc.callType || sent["Call_Start_Time"] != "2026-03-02T11:30:05+02:00" {
				t.Errorf("sent Call_Type %v, Call_Start_Time %v; want %s", sent["Call_Type"], sent["Call_Start_Time"], tc.callType)
			}
			if d, ok := sent["Call_Duration"]; tc.duration == "" && ok || tc.duration != "" && d != tc.duration {
				t.Errorf("sent Call_Duration %v, want %q", d, tc.duration)
			}
			if !strings.Contains(sent["Subject"].(string), "+380501234567") || !strings.HasSuffix(sent["Subject"].(string), "[cr:"+tc.call.Key+"]") {
				t.Errorf("subject %q", sent["Subject"])
			}
		})
	}
	sent := e.wire.last(t, "POST /crm/v8/Calls")
	if _, ok := sent["What_Id"]; ok {
		t.Errorf("a call on a contact alone sent What_Id: %v", sent)
	}
	wr := e.fake.Written()
	if len(wr.Calls) != 4 || wr.Leads[0].Seq >= wr.Calls[0].Seq || wr.Calls[0].Seq >= wr.Calls[1].Seq {
		t.Errorf("written %+v, want the lead before four calls in order", wr)
	}
}

func TestCreateCallRefused(t *testing.T) {
	e := setupWriter(t)
	// A lead Zoho does not have: the fake refuses the record as Zoho
	// does, 400 with a per-record INVALID_DATA.
	_, err := e.w.CreateCall(context.Background(), crm.NewCall{Key: "k", Phone: "380501234567", Answered: true,
		Start: time.Now(), Lead: crm.Ref{Kind: domain.KindLead, ID: "404"}})
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "INVALID_DATA") || !crm.IsPermanent(err) {
		t.Fatalf("call on a missing lead: %v, want a permanent 400 with Zoho's INVALID_DATA", err)
	}
	if w := e.fake.Written(); len(w.Calls) != 0 {
		t.Errorf("written %+v", w)
	}

	// A record refused inside a 2xx answer (207 when a batch is mixed).
	e.wire.answer = func(r *http.Request) *http.Response {
		body := `{"data":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"Call_Duration","json_path":"$.data[0].Call_Duration"},"message":"required field not found","status":"error"}]}`
		return &http.Response{StatusCode: http.StatusMultiStatus, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r}
	}
	_, err = e.w.CreateCall(context.Background(), crm.NewCall{Key: "k", Phone: "380501234567", Start: time.Now()})
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "MANDATORY_NOT_FOUND") || !crm.IsPermanent(err) {
		t.Fatalf("per-record error in a 207: %v, want a permanent 400 StatusError", err)
	}
}

func TestCreateTask(t *testing.T) {
	e := setupWriter(t)
	lead := e.newLead(t, "380501234567", "u1")
	due := time.Date(2026, 3, 2, 13, 45, 0, 0, time.FixedZone("EET", 2*3600))
	id, err := e.w.CreateTask(context.Background(), crm.NewTask{Key: "task-1", Text: "Call back +380501234567 (missed call)",
		Due: due, Zone: due.Location(), UserID: "u2", Phone: "380501234567", Lead: lead})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	tasks := e.fake.Written().Tasks
	if len(tasks) != 1 {
		t.Fatalf("written tasks %+v", tasks)
	}
	got := tasks[0]
	if got.ID != id || got.Text != "Call back +380501234567 (missed call)" || got.UserID != "u2" || got.LeadID != lead.ID ||
		got.ContactID != "" || got.Due.Format(time.DateOnly) != "2026-03-02" || got.Seq != 2 {
		t.Errorf("written task %+v", got)
	}
	sent := e.wire.last(t, "POST /crm/v8/Tasks")
	if sent["$se_module"] != "Leads" || sent["Status"] != "Not Started" || sent["Priority"] != "High" ||
		!strings.Contains(sent["Description"].(string), "13:45") || !strings.Contains(sent["Description"].(string), "[cr:task-1]") {
		t.Errorf("task sent as %v", sent)
	}
}

func TestFillUTM(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "l1", Name: "Lead", Open: true})
	e.fake.Put(crm.Entity{Kind: domain.KindDeal, ID: "d1", Name: "Deal", Open: true})
	utm := crm.UTM{Source: "facebook", Campaign: "march", Content: "video"}
	for _, ref := range []crm.Ref{{Kind: domain.KindLead, ID: "l1"}, {Kind: domain.KindDeal, ID: "d1"}} {
		wrote, err := e.w.FillUTM(ctx, ref, utm)
		if err != nil || !wrote {
			t.Fatalf("FillUTM(%v) on empty UTM = %v, %v; want a write", ref, wrote, err)
		}
		if got := e.fake.UTM(ref); got != utm {
			t.Errorf("UTM of %v = %+v, want %+v", ref, got, utm)
		}
	}

	e.fake.Put(crm.Entity{Kind: domain.KindLead, ID: "l2", Name: "Lead 2", Open: true})
	l2 := crm.Ref{Kind: domain.KindLead, ID: "l2"}
	e.fake.SetUTM(l2, crm.UTM{Term: "kept"})
	puts := func() int {
		n := 0
		for _, r := range e.fake.Requests() {
			if r.Method == http.MethodPut {
				n++
			}
		}
		return n
	}
	before := puts()
	wrote, err := e.w.FillUTM(ctx, l2, utm)
	if err != nil || wrote {
		t.Fatalf("FillUTM on a lead with utm_term set = %v, %v; want no write", wrote, err)
	}
	if got := e.fake.UTM(l2); got != (crm.UTM{Term: "kept"}) {
		t.Errorf("UTM changed to %+v", got)
	}
	if puts() != before {
		t.Errorf("FillUTM sent a PUT for a lead that keeps its attribution")
	}
	if w := e.fake.Written(); len(w.Leads) != 0 {
		t.Errorf("FillUTM counted as a creation: %+v", w)
	}

	_, err = e.w.FillUTM(ctx, crm.Ref{Kind: domain.KindLead, ID: "missing"}, utm)
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("FillUTM on a missing lead: %v, want a 404 StatusError", err)
	}
	if _, err := e.w.FillUTM(ctx, crm.Ref{Kind: domain.KindContact, ID: "c1"}, utm); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("FillUTM on a contact: %v, want EINVALID", err)
	}
}

func TestFind(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	lead := e.newLead(t, "380501234567", "u1")
	other := e.newLead(t, "380501234568", "u1")

	for _, kind := range []crm.WriteKind{crm.WriteCall, crm.WriteTask} {
		if id, err := e.w.Find(ctx, kind, "key-abc", lead); err != nil || id != "" {
			t.Fatalf("Find(%s) before create = %q, %v; want none", kind, id, err)
		}
	}
	// A key that contains the one searched must not match it.
	if _, err := e.w.CreateCall(ctx, crm.NewCall{Key: "key-abc-2", Phone: "380501234567", Answered: true,
		Start: time.Now(), Duration: time.Second, Lead: lead}); err != nil {
		t.Fatal(err)
	}
	if id, err := e.w.Find(ctx, crm.WriteCall, "key-abc", lead); err != nil || id != "" {
		t.Fatalf("Find of a key only contained in another = %q, %v; want none", id, err)
	}

	callID, err := e.w.CreateCall(ctx, crm.NewCall{Key: "key-abc", Phone: "380501234567", Answered: true,
		Start: time.Now(), Duration: time.Second, Lead: lead})
	if err != nil {
		t.Fatal(err)
	}
	taskID, err := e.w.CreateTask(ctx, crm.NewTask{Key: "key-abc", Text: "Call back", Due: time.Now(), Lead: lead})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := e.w.Find(ctx, crm.WriteCall, "key-abc", lead); err != nil || id != callID {
		t.Errorf("Find(call) = %q, %v; want %q", id, err, callID)
	}
	if id, err := e.w.Find(ctx, crm.WriteTask, "key-abc", lead); err != nil || id != taskID {
		t.Errorf("Find(task) = %q, %v; want %q", id, err, taskID)
	}
	if id, err := e.w.Find(ctx, crm.WriteCall, "key-abc", crm.Ref{}); err != nil || id != callID {
		t.Errorf("Find(call) without a parent = %q, %v; want %q", id, err, callID)
	}
	if id, err := e.w.Find(ctx, crm.WriteCall, "key-abc", other); err != nil || id != "" {
		t.Errorf("Find(call) under another lead = %q, %v; want none", id, err)
	}
	for _, kind := range []crm.WriteKind{crm.WriteLead, crm.WriteUTM} {
		if _, err := e.w.Find(ctx, kind, "key-abc", crm.Ref{}); !errors.Is(err, crm.ErrNotSearchable) {
			t.Errorf("Find(%s) = %v, want ErrNotSearchable", kind, err)
		}
	}
}

func TestWriteFailures(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	newLead := crm.NewLead{Key: "k", Phone: "380501234567", Title: "+380501234567", OwnerID: "u1"}

	e.fake.FailWrites(http.StatusInternalServerError, 1)
	_, err := e.w.CreateLead(ctx, newLead)
	var se *crm.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusInternalServerError || !strings.HasPrefix(se.Message, "INTERNAL_ERROR") || crm.IsPermanent(err) {
		t.Fatalf("500: %v, want a non-permanent 500 StatusError with Zoho's code", err)
	}
	if w := e.fake.Written(); len(w.Leads) != 0 {
		t.Fatalf("a failed write left %+v", w)
	}

	e.fake.FailWrites(http.StatusBadRequest, 1)
	_, err = e.w.CreateCall(ctx, crm.NewCall{Key: "k", Phone: "380501234567", Start: time.Now()})
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "INVALID_DATA") || !crm.IsPermanent(err) {
		t.Fatalf("400: %v, want a permanent StatusError", err)
	}

	e.fake.FailWrites(http.StatusTooManyRequests, 1)
	waits := len(e.sleep.Waits)
	got, err := e.w.CreateLead(ctx, newLead)
	if err != nil || got.Lead.ID == "" {
		t.Fatalf("CreateLead through one 429: %v, %v", got, err)
	}
	if w := e.sleep.Waits[waits:]; len(w) != 1 || w[0] != time.Second {
		t.Errorf("waits %v, want Retry-After 1s once", w)
	}
	if w := e.fake.Written(); len(w.Leads) != 1 || w.Leads[0].ID != got.Lead.ID {
		t.Errorf("written after the retry: %+v, want one lead", w)
	}

	e.fake.Revoke()
	_, err = e.w.CreateTask(ctx, crm.NewTask{Key: "k", Text: "Call back", Due: time.Now()})
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.CRM != "zoho" || ae.Message != "invalid_code" {
		t.Fatalf("after revoke: %v, want *crm.AuthError with Zoho's invalid_code", err)
	}
	if _, err := e.w.FillUTM(ctx, got.Lead, crm.UTM{Source: "x"}); !crm.IsAuth(err) {
		t.Errorf("FillUTM after revoke: %v, want an auth error", err)
	}
}

// TestMissingLeadFields: an account without some of seed 000's custom
// fields has them named by MissingFields, and its leads are written
// without them instead of being refused.
func TestMissingLeadFields(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	e.fake.RemoveField("Leads", "rs_utm_term")
	e.fake.RemoveField("Leads", "rs_google_client_id")
	missing, err := e.src.(crm.FieldChecker).MissingFields(ctx)
	if err != nil || !slices.Equal(missing, []string{"rs_utm_term", "rs_google_client_id"}) {
		t.Fatalf("MissingFields = %v, %v; want rs_utm_term and rs_google_client_id", missing, err)
	}
	utm := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", Term: "roof", Content: "ad1", ClientID: "GA1.2.3.4"}
	got, err := e.w.CreateLead(ctx, crm.NewLead{Key: "k-missing", Phone: "380501234567", Title: "+380501234567", OwnerID: "u1", UTM: utm})
	if err != nil {
		t.Fatalf("CreateLead with UTM fields the layout lacks: %v", err)
	}
	want := crm.UTM{Source: "google", Medium: "cpc", Campaign: "spring", Content: "ad1"}
	if u := e.fake.UTM(got.Lead); u != want {
		t.Errorf("lead UTM = %+v, want %+v (the fields the layout has)", u, want)
	}
}

// TestFillUTMWithoutUTMFields: a module whose layout has none of the UTM
// fields is left alone: no read, no write, no error.
func TestFillUTMWithoutUTMFields(t *testing.T) {
	e := setupWriter(t)
	ctx := context.Background()
	e.fake.PutRecord("Deals", map[string]any{"id": "d1", "Deal_Name": "Deal", "Stage": "Qualification"})
	for _, f := range []string{"rs_utm_source", "rs_utm_medium", "rs_utm_campaign", "rs_utm_term", "rs_utm_content", "rs_google_client_id"} {
		e.fake.RemoveField("Deals", f)
	}
	wrote, err := e.w.FillUTM(ctx, crm.Ref{Kind: domain.KindDeal, ID: "d1"}, crm.UTM{Source: "google"})
	if err != nil || wrote {
		t.Fatalf("FillUTM on a deal without UTM fields = %v, %v; want false, nil", wrote, err)
	}
	for _, r := range e.fake.Requests() {
		if strings.HasPrefix(r.Path, "/crm/v8/Deals/") {
			t.Errorf("FillUTM asked Zoho %s %s for fields the layout lacks", r.Method, r.Path)
		}
	}
}
