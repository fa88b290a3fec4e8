package httpapi

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/report"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// TestRoutingReport keeps the decision of each route request that carries
// a call id (query, JSON number, form body), joins it with the call's
// end event posted to the events endpoint, and answers the per-day,
// per-manager report; days is validated.
func TestRoutingReport(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	key := "key=" + url.QueryEscape(secret)
	for _, r := range []struct{ method, query, ctype, body, reason string }{
		{"GET", "caller=380671234567&uniqueid=r1", "", "", "owner"},                                 // Anna
		{"POST", "", "application/json", `{"call_id":42,"caller":"380671234567"}`, "owner"},         // Anna, numeric id
		{"POST", "", "application/x-www-form-urlencoded", "callerid=380937654321&uuid=r3", "owner"}, // Boris (phone)
		{"GET", "caller=380509999999&uniqueid=r4", "", "", "no_match"},                              // nobody's
		{"GET", "caller=380671234567", "", "", "owner"},                                             // no call id: not kept
		{"GET", "caller=380671234567&uniqueid=r1", "", "", "owner"},                                 // asked again: the first kept
	} {
		a := e.do(r.method, "/pbx/acme/route?"+key+"&"+r.query, r.ctype, r.body, nil)
		if a.status != 200 || a.header.Get("X-Route-Reason") != r.reason {
			t.Fatalf("route %s %s: %d %s reason %q", r.query, r.body, a.status, a.body, a.header.Get("X-Route-Reason"))
		}
	}
	if err := e.rec.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{
		"event=call_end&uniqueid=r1&caller=380671234567&disposition=ANSWERED&billsec=30&employee=anna_sip",
		"event=call_end&uniqueid=42&caller=380671234567&disposition=ANSWERED&billsec=12&employee=boss_sip",
		"event=call_end&uniqueid=r3&caller=380937654321&disposition=NO+ANSWER&billsec=0",
		"event=call_answered&uniqueid=r4&caller=380509999999&employee=anna_sip",
	} {
		if a := e.do("POST", "/pbx/acme/events?"+key+"&"+ev, "", "", nil); a.status != 200 {
			t.Fatalf("event %s: %d %s", ev, a.status, a.body)
		}
	}
	a := e.mustAdmin(200, "GET", "tenants/acme/report?days=1", "")
	var rep report.Report
	if err := json.Unmarshal([]byte(a.body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Tenant != "acme" || rep.Days != 1 || rep.TimeZone != "Europe/Kyiv" || len(rep.Rows) != 3 {
		t.Fatalf("report %s", a.body)
	}
	type row struct {
		manager, name                                  string
		routed, answered, fell, missed, unknown, instd int
		instead                                        string
	}
	var got []row
	for _, r := range rep.Rows {
		if r.Day != rep.Rows[0].Day {
			t.Fatalf("rows of several days in a report of one: %s", a.body)
		}
		var in []string
		for _, i := range r.AnsweredInstead {
			in = append(in, i.Manager+"/"+i.Employee+"/"+i.Name)
		}
		got = append(got, row{r.Manager, r.Name, r.Routed, r.Answered, r.FellThrough, r.Missed, r.Unknown, len(in), strings.Join(in, ",")})
	}
	want := []row{
		{"", "", 1, 0, 1, 0, 0, 1, "101/anna_sip/Anna"}, // no forward, then Anna took it
		{"101", "Anna", 2, 1, 1, 0, 0, 1, "900/boss_sip/Senior"},
		{"102", "Boris", 1, 0, 1, 1, 0, 0, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	for _, days := range []string{"0", "91", "x", "-3"} {
		a := e.mustAdmin(400, "GET", "tenants/acme/report?days="+days, "")
		if msg := a.json(t)["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "days:") {
			t.Fatalf("days=%s: message %q does not name days", days, msg)
		}
	}
	e.mustAdmin(404, "GET", "tenants/nobody/report", "")
	e.mustAdmin(405, "POST", "tenants/acme/report", "{}")
}

// TestRouteRecordsWithoutAllocating: keeping a route decision costs the
// route handler no allocation, whichever way the call id came.
func TestRouteRecordsWithoutAllocating(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race: counted without it")
	}
	e := newEnv(t)
	secret := e.acme("")
	reg := tenant.NewRegistry(e.st)
	if err := reg.LoadAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec := report.NewRecorder(e.st, report.RecorderConfig{Buffer: 1 << 12})
	srv := New(Config{Tenants: reg, Router: lookup.New(e.cache, e.st, time.Second), Decisions: rec})
	key := "key=" + url.QueryEscape(secret)
	for name, ctx := range map[string]func() *fasthttp.RequestCtx{
		"query": func() *fasthttp.RequestCtx {
			return routeCtx("/pbx/acme/route?"+key+"&caller=380671234567&uniqueid=1700000000.1", "")
		},
		"json": func() *fasthttp.RequestCtx {
			return routeCtx("/pbx/acme/route?"+key, `{"call_id":1700000000,"caller":"380671234567"}`)
		},
		"form": func() *fasthttp.RequestCtx {
			c := routeCtx("/pbx/acme/route?"+key, "callerid=380671234567&uuid=842d921d")
			c.Request.Header.SetContentType("application/x-www-form-urlencoded")
			return c
		},
	} {
		c := ctx()
		srv.Handler(c) // warms the pool and the cache
		if c.Response.StatusCode() != 200 || string(c.Response.Header.Peek("X-Route-Reason")) != "owner" {
			t.Fatalf("%s: %d %s", name, c.Response.StatusCode(), c.Response.Body())
		}
		if allocs := testing.AllocsPerRun(200, func() { c.Response.Reset(); srv.Handler(c) }); allocs != 0 {
			t.Errorf("%s: route handler keeping the decision: %.1f allocs per request, want 0", name, allocs)
		}
	}
	if err := rec.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	err := e.st.RoutedCalls(t.Context(), "acme", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), func(c store.RoutedCall) error {
		ids = append(ids, c.CallID+"/"+c.OwnerID)
		return nil
	})
	if err != nil || strings.Join(ids, " ") == "" {
		t.Fatalf("decisions kept: %q, %v", ids, err)
	}
	for _, want := range []string{"1700000000.1/101", "1700000000/101", "842d921d/101"} {
		if !strings.Contains(" "+strings.Join(ids, " ")+" ", " "+want+" ") {
			t.Errorf("decisions kept %q: %s missing", ids, want)
		}
	}
}

// TestDeleteTenant deletes a tenant only with ?confirm=<its id>, with
// everything kept for it; routes to it are 404 at once, the deletion is in
// the audit log, and a tenant created again under the id inherits neither
// its index nor its cached answers.
func TestDeleteTenant(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	if a := e.route(secret, "caller=380671234567&uniqueid=d1"); a.body != `{"number":"anna_sip"}` {
		t.Fatalf("route before: %s", a.body)
	}
	key := "key=" + url.QueryEscape(secret)
	if a := e.do("POST", "/pbx/acme/events?"+key+"&event=call_end&uniqueid=d1&caller=380671234567", "", "", nil); a.status != 200 {
		t.Fatalf("event: %d %s", a.status, a.body)
	}
	for _, q := range []string{"", "?confirm=", "?confirm=ACME", "?confirm=acme2"} {
		a := e.mustAdmin(400, "DELETE", "tenants/acme"+q, "")
		if msg := a.json(t)["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "confirm:") {
			t.Fatalf("DELETE %s: message %q does not name confirm", q, msg)
		}
	}
	e.mustAdmin(200, "GET", "tenants/acme", "")
	e.mustAdmin(404, "DELETE", "tenants/nobody?confirm=nobody", "")
	e.mustAdmin(204, "DELETE", "tenants/acme?confirm=acme", "")
	e.mustAdmin(404, "GET", "tenants/acme", "")
	e.mustAdmin(404, "GET", "tenants/acme/employees", "")
	if a := e.route(secret, "caller=380671234567"); a.status != 404 {
		t.Fatalf("route to a deleted tenant: %d %s", a.status, a.body)
	}
	audit := e.mustAdmin(200, "GET", "audit?limit=5", "").body
	if !strings.Contains(audit, `"action":"tenant.delete"`) || !strings.Contains(audit, `"tenant_id":"acme"`) {
		t.Fatalf("audit log without the deletion: %s", audit)
	}
	if n, err := e.st.CountIndex(t.Context(), "acme"); err != nil || n != 0 {
		t.Fatalf("index rows left: %d, %v", n, err)
	}
	// The same id again: nothing of the old tenant routes.
	created := e.mustAdmin(201, "POST", "tenants", `{"id":"acme","default_country":"UA"}`).json(t)
	secret2, _ := created["webhook_secret"].(string)
	e.mustAdmin(200, "PUT", "tenants/acme/employees/101", `{"sip":"anna_sip"}`)
	if a := e.route(secret2, "caller=380671234567"); a.status != 200 || a.header.Get("X-Route-Reason") != "no_match" {
		t.Fatalf("route to the new acme: %d %s reason %s, want no_match (old index and cache gone)", a.status, a.body, a.header.Get("X-Route-Reason"))
	}
	if st, err := e.st.EventStats(context.Background(), "acme"); err != nil || st != (domain.EventStats{}) {
		t.Fatalf("events of the new acme: %+v %v", st, err)
	}
}
