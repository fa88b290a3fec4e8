package events_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// eachZoho runs fn on a tenant connected to a fake Zoho account, on both
// store backends; prepare shapes the account before it is connected.
func eachZoho(t *testing.T, prepare func(f *zohofake.Server), fn func(t *testing.T, w *world, f *zohofake.Server)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			f := zohofake.New(t)
			if prepare != nil {
				prepare(f)
			}
			w := newWorld(t, b.Open(t), "zoho", f, domain.Settings{})
			fn(t, w, f)
		})
	}
}

// putContactDeal puts a contact holding phone, owned by contactOwner, and
// an open deal of the standard layout (no phone) linked to it through
// Contact_Name, owned by dealOwner.
func putContactDeal(f *zohofake.Server, contactID, dealID, phone, contactOwner, dealOwner string) {
	f.PutRecord("Contacts", map[string]any{"id": contactID, "Full_Name": "Client " + contactID, "Last_Name": "Client",
		"Phone": phone, "Owner": map[string]any{"id": contactOwner}})
	f.PutRecord("Deals", map[string]any{"id": dealID, "Deal_Name": "Deal " + dealID, "Stage": "Needs Analysis",
		"Contact_Name": map[string]any{"id": contactID, "name": "Client " + contactID}, "Owner": map[string]any{"id": dealOwner}})
}

// TestZohoDealOfKnownClient: a caller whose contact has an open deal routes
// to the deal's owner (owner_order lead, deal, contact), and the call and
// the call-back task are filed on the deal, never on a new lead.
func TestZohoDealOfKnownClient(t *testing.T) {
	eachZoho(t, nil, func(t *testing.T, w *world, f *zohofake.Server) {
		putContactDeal(f, "7001", "9001", "+380501000091", anna, boris)
		w.sync()
		if got := w.target("380501000091"); got != "sip_boris" {
			t.Errorf("route of the deal's contact = %q, want the deal's owner sip_boris", got)
		}
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "z1", "caller": "380501000091",
			"disposition": "ANSWERED", "billsec": "40", "employee_number": "sip_anna"})
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "z2", "caller": "380501000091",
			"disposition": "NO ANSWER", "employee_number": "sip_anna"})
		w.mustDrain()
		wr := w.fake.Written()
		if len(wr.Leads) != 0 {
			t.Errorf("a known client with an open deal got a new lead: %+v", wr.Leads)
		}
		cs := callsOf(wr, "380501000091")
		if len(cs) != 2 {
			t.Fatalf("calls = %+v, want two", cs)
		}
		for _, c := range cs {
			if c.LeadID != "9001" || c.ContactID != "7001" {
				t.Errorf("call %+v not filed on deal 9001 (What_Id, $se_module Deals) with contact 7001", c)
			}
		}
		if len(wr.Tasks) != 1 || wr.Tasks[0].LeadID != "9001" || wr.Tasks[0].UserID != boris {
			t.Errorf("call-back task = %+v, want one on deal 9001 for its owner", wr.Tasks)
		}
	})
}

// TestZohoDealFoundLive: a deal the index does not know yet is found by the
// call's live lookup through its contact, and the call is filed on it.
func TestZohoDealFoundLive(t *testing.T) {
	eachZoho(t, nil, func(t *testing.T, w *world, f *zohofake.Server) {
		putContactDeal(f, "7002", "9002", "+380501000092", anna, boris)
		w.post(domain.EventCallEnd, map[string]string{"uniqueid": "z3", "caller": "380501000092",
			"disposition": "ANSWERED", "billsec": "10", "employee_number": "sip_anna"})
		w.mustDrain()
		wr := w.fake.Written()
		if len(wr.Leads) != 0 {
			t.Errorf("new lead for a client with an open deal: %+v", wr.Leads)
		}
		if c := oneCall(t, wr, "380501000092"); c.LeadID != "9002" {
			t.Errorf("call %+v, want it on deal 9002", c)
		}
		if got := w.target("380501000092"); got != "sip_boris" {
			t.Errorf("route after the live lookup = %q, want sip_boris", got)
		}
	})
}

// TestZohoDealFollowsContact: the deal's index rows follow its contact's
// phone (incremental sync) and a change of the deal's contact (webhook).
func TestZohoDealFollowsContact(t *testing.T) {
	// The deal is an hour old when the full sync reads it, so the round of
	// changes that follows reads it again only through its contact.
	prepare := func(f *zohofake.Server) {
		f.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
		putContactDeal(f, "7003", "9003", "+380501000093", anna, boris)
		f.SetClock(time.Now)
	}
	eachZoho(t, prepare, func(t *testing.T, w *world, f *zohofake.Server) {
		ctx := context.Background()
		if got := w.target("380501000093"); got != "sip_boris" {
			t.Errorf("route of the deal's contact = %q, want the deal's owner", got)
		}
		f.PutRecord("Contacts", map[string]any{"id": "7003", "Full_Name": "Client 7003", "Last_Name": "Client",
			"Phone": "+380501000094", "Owner": map[string]any{"id": anna}})
		w.sync()
		if got := w.target("380501000094"); got != "sip_boris" {
			t.Errorf("route of the contact's new phone = %q, want the deal's owner", got)
		}
		if got := w.target("380501000093"); got == "sip_boris" {
			t.Errorf("the contact's old phone still routes to the deal's owner")
		}

		// The deal moves to another contact; Zoho notifies.
		f.PutRecord("Contacts", map[string]any{"id": "7004", "Full_Name": "Client 7004", "Last_Name": "Client",
			"Phone": "+380501000095", "Owner": map[string]any{"id": olga}})
		f.PutRecord("Deals", map[string]any{"id": "9003", "Deal_Name": "Deal 9003", "Stage": "Needs Analysis",
			"Contact_Name": map[string]any{"id": "7004", "name": "Client 7004"}, "Owner": map[string]any{"id": boris}})
		ct, body, _ := f.Notification(crm.Ref{Kind: domain.KindDeal, ID: "9003"})
		if err := w.engine.Live.Webhook(ctx, "acme", ct, body); err != nil {
			t.Fatalf("webhook: %v", err)
		}
		if got := w.target("380501000095"); got != "sip_boris" {
			t.Errorf("route of the deal's new contact = %q, want sip_boris", got)
		}
		if got := w.target("380501000094"); got != "sip_anna" {
			t.Errorf("route of the old contact = %q, want its own owner sip_anna", got)
		}
	})
}

// TestZohoMissingCustomFields: an account without some of seed 000's
// custom fields has them named in /status, and a new client's lead is
// written without them instead of the event failing.
func TestZohoMissingCustomFields(t *testing.T) {
	prepare := func(f *zohofake.Server) {
		f.RemoveField("Leads", "rs_utm_term")
		f.RemoveField("Leads", "rs_google_client_id")
	}
	eachZoho(t, prepare, func(t *testing.T, w *world, f *zohofake.Server) {
		st, err := w.admin.Status(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Integration.MissingFields, []string{"rs_utm_term", "rs_google_client_id"}) || st.Integration.FieldsError != "" {
			t.Errorf("status missing_fields = %v (%q), want rs_utm_term and rs_google_client_id", st.Integration.MissingFields, st.Integration.FieldsError)
		}
		id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "z5", "caller": "380671000095", "disposition": "ANSWERED",
			"billsec": "5", "utm_source": "google", "utm_term": "roof", "utm_campaign": "spring"})
		w.mustDrain()
		if ev := w.event(id); ev.State != domain.EventDone {
			t.Fatalf("event %s: %q", ev.State, ev.Note)
		}
		l := oneLead(t, w.fake.Written(), "380671000095")
		if l.UTM != (crm.UTM{Source: "google", Campaign: "spring"}) {
			t.Errorf("lead UTM = %+v, want the fields the account has", l.UTM)
		}
	})
}
