package storetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- route decisions (the routing report) ---

func (e *env) routed(t *testing.T, tenant string, from, to time.Time) []string {
	t.Helper()
	var out []string
	err := e.s.RoutedCalls(e.ctx, tenant, from, to, func(c store.RoutedCall) error {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s ans=%s end=%s", c.TenantID, c.CallID, fmtTime(c.At), c.OwnerID,
			c.Target, c.Reason, fmtFields(c.Answered), fmtFields(c.End)))
		return nil
	})
	if err != nil {
		t.Fatalf("RoutedCalls(%s): %v", tenant, err)
	}
	return out
}

func fmtFields(m map[string]string) string {
	if m == nil {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q;", k, m[k])
	}
	return b.String()
}

func testDecisionInsertJoin(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	t0 := start.Add(time.Minute)
	ds := []store.RouteDecision{
		{TenantID: "a", CallID: "c1", At: t0, OwnerID: "u1", Target: "anna_sip", Reason: "owner"},
		{TenantID: "a", CallID: "c2", At: t0.Add(time.Second), Reason: "no_match"},
		// The same call asked again: the first decision stays.
		{TenantID: "a", CallID: "c1", At: t0.Add(2 * time.Second), OwnerID: "u9", Target: "senior", Reason: "default_owner"},
		// A tenant deleted since the answer: skipped, the batch stored.
		{TenantID: "ghost", CallID: "c1", At: t0, Reason: "owner"},
		{TenantID: "b", CallID: "c1", At: t0, OwnerID: "u2", Target: "380671234567", Reason: "owner"},
		// Made at the store's clock when At is unset.
		{TenantID: "a", CallID: "c3", OwnerID: "u1", Target: "anna_sip", Reason: "owner"},
	}
	if err := e.s.InsertRouteDecisions(e.ctx, ds); err != nil {
		t.Fatalf("InsertRouteDecisions: %v", err)
	}
	if err := e.s.InsertRouteDecisions(e.ctx, nil); err != nil {
		t.Fatalf("InsertRouteDecisions(nil): %v", err)
	}
	ans := callEvent("a", "c1", domain.EventCallAnswered, "380671234567")
	ans.Fields["employee"] = "anna_sip"
	end := callEvent("a", "c1", domain.EventCallEnd, "380671234567")
	end.Fields["disposition"] = "ANSWERED"
	e.insert(t, ans)
	e.insert(t, end)
	e.insert(t, callEvent("a", "c2", domain.EventCallEnd, "380501112233"))
	// Events of another call id or tenant join nothing.
	e.insert(t, callEvent("a", "c4", domain.EventCallEnd, "380501112233"))
	e.insert(t, callEvent("b", "c2", domain.EventCallEnd, "380501112233"))

	got := e.routed(t, "a", start, start.Add(time.Hour))
	want := []string{
		fmt.Sprintf("a c3 %s u1 anna_sip owner ans=- end=-", fmtTime(stamp(start))),
		fmt.Sprintf("a c1 %s u1 anna_sip owner ans=%s end=%s", fmtTime(stamp(t0)), fmtFields(ans.Fields), fmtFields(end.Fields)),
		fmt.Sprintf("a c2 %s   no_match ans=- end=%s", fmtTime(stamp(t0.Add(time.Second))), fmtFields(callEvent("a", "c2", domain.EventCallEnd, "380501112233").Fields)),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("RoutedCalls(a)\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	// [from, to): a decision made at to is left out, one made at from kept.
	if got := e.routed(t, "a", stamp(t0), stamp(t0.Add(time.Second))); len(got) != 1 || !strings.HasPrefix(got[0], "a c1 ") {
		t.Fatalf("RoutedCalls(a, [t0, t0+1s)) = %q, want c1 only", got)
	}
	if got := e.routed(t, "b", start, start.Add(time.Hour)); len(got) != 1 || !strings.HasPrefix(got[0], "b c1 ") || !strings.HasSuffix(got[0], "ans=- end=-") {
		t.Fatalf("RoutedCalls(b) = %q, want c1 without events", got)
	}
	if got := e.routed(t, "ghost", start, start.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("RoutedCalls(ghost) = %q, want none", got)
	}
	// fn's error stops the scan and comes back.
	stop := fmt.Errorf("stop")
	n := 0
	if err := e.s.RoutedCalls(e.ctx, "a", start, start.Add(time.Hour), func(store.RoutedCall) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("RoutedCalls with a failing fn: err %v after %d calls, want stop after 1", err, n)
	}
}

func testDecisionExpire(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	var ds []store.RouteDecision
	for i := range 5 {
		ds = append(ds, store.RouteDecision{TenantID: "a", CallID: fmt.Sprintf("c%d", i), At: start.Add(time.Duration(i) * time.Hour), Reason: "no_match"},
			store.RouteDecision{TenantID: "b", CallID: fmt.Sprintf("c%d", i), At: start.Add(time.Duration(i) * time.Hour), Reason: "no_match"})
	}
	if err := e.s.InsertRouteDecisions(e.ctx, ds); err != nil {
		t.Fatal(err)
	}
	n, err := e.s.ExpireRouteDecisions(e.ctx, "a", start.Add(3*time.Hour), 2)
	if err != nil || n != 2 {
		t.Fatalf("ExpireRouteDecisions(limit 2) = %d, %v; want 2", n, err)
	}
	if n, err = e.s.ExpireRouteDecisions(e.ctx, "a", start.Add(3*time.Hour), 100); err != nil || n != 1 {
		t.Fatalf("ExpireRouteDecisions again = %d, %v; want the 1 left before the cut", n, err)
	}
	got := e.routed(t, "a", start.Add(-time.Hour), start.Add(10*time.Hour))
	if len(got) != 2 || !strings.HasPrefix(got[0], "a c3 ") || !strings.HasPrefix(got[1], "a c4 ") {
		t.Fatalf("after expiry: %q, want c3 and c4", got)
	}
	if got := e.routed(t, "b", start.Add(-time.Hour), start.Add(10*time.Hour)); len(got) != 5 {
		t.Fatalf("tenant b after a's expiry: %d decisions, want 5", len(got))
	}
}

// --- deleting a tenant ---

// fill gives a tenant a row in every table keyed by tenants.
func (e *env) fill(t *testing.T, id string) {
	t.Helper()
	e.tenant(t, id)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s of %s: %v", what, id, err)
		}
	}
	must("PutEmployee", e.s.PutEmployee(e.ctx, domain.Employee{TenantID: id, CRMUserID: "u1", SIP: "anna"}))
	must("PutStop", e.s.PutStop(e.ctx, domain.StopEntry{TenantID: id, Number: "380441234567", Kind: domain.StopLine}))
	must("UpsertIndex", e.s.UpsertIndex(e.ctx, []domain.IndexEntry{entry(id, domain.KindLead, "L1", "380671234567")}))
	must("PutIntegration", e.s.PutIntegration(e.ctx, store.Integration{TenantID: id, CRM: "amocrm", BaseURL: "https://x.amocrm.ru",
		Creds: []byte("sealed"), State: store.IntegrationActive}))
	_, err := e.s.ReplaceCRMUsers(e.ctx, id, []store.CRMUser{{ID: "u1", Name: "Anna", Active: true}})
	must("ReplaceCRMUsers", err)
	e.insert(t, callEvent(id, "c1", domain.EventCallEnd, "380671234567"))
	must("RejectEvent", e.s.RejectEvent(e.ctx, domain.RejectedEvent{TenantID: id, Reason: "bad", Body: []byte("x")}))
	_, _, err = e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: id, Key: "k1", Kind: "lead"})
	must("BeginWrite", err)
	_, err = e.s.LeasePartition(e.ctx, id, "380671234567", "me", time.Minute)
	must("LeasePartition", err)
	_, err = e.s.LeaseSync(e.ctx, id, "me", time.Minute)
	must("LeaseSync", err)
	must("PutRingostat", e.s.PutRingostat(e.ctx, store.RingostatConn{TenantID: id, BaseURL: "https://api.ringostat.net", ProjectID: "1", AuthKey: []byte("sealed")}))
	must("InsertRouteDecisions", e.s.InsertRouteDecisions(e.ctx, []store.RouteDecision{{TenantID: id, CallID: "c1", Reason: "owner", OwnerID: "u1", Target: "anna"}}))
	_, err = e.s.AppendAudit(e.ctx, domain.AuditEntry{TenantID: id, Actor: "admin", Action: "tenant.create", Detail: "{}"})
	must("AppendAudit", err)
	must("SetMeta", e.s.SetMeta(e.ctx, store.TenantMetaKey(store.MetaRingostatCallback, id, "380671234567"), "2024-03-10T12:00:00Z"))
}

// kept reports what a tenant still has, table by table.
func (e *env) kept(t *testing.T, id string) string {
	t.Helper()
	var parts []string
	add := func(what string, n int, err error) {
		t.Helper()
		if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Fatalf("%s of %s: %v", what, id, err)
		}
		if err == nil && n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", what, n))
		}
	}
	_, err := e.s.Tenant(e.ctx, id)
	add("tenant", 1, err)
	emps, err := e.s.ListEmployees(e.ctx, id)
	add("employees", len(emps), err)
	stops, err := e.s.ListStops(e.ctx, id)
	add("stops", len(stops), err)
	n, err := e.s.CountIndex(e.ctx, id)
	add("index", n, err)
	_, err = e.s.Integration(e.ctx, id)
	add("integration", 1, err)
	users, err := e.s.ListCRMUsers(e.ctx, id)
	add("crm_users", len(users), err)
	evs, err := e.s.ListEvents(e.ctx, id, store.EventFilter{})
	add("events", len(evs), err)
	rej, err := e.s.ListRejected(e.ctx, id, 10)
	add("rejected", len(rej), err)
	_, err = e.s.RingostatConn(e.ctx, id)
	add("ringostat", 1, err)
	ds := e.routed(t, id, start.Add(-time.Hour), start.Add(time.Hour))
	add("decisions", len(ds), nil)
	_, err = e.s.GetMeta(e.ctx, store.TenantMetaKey(store.MetaRingostatCallback, id, "380671234567"))
	add("meta", 1, err)
	audit, err := e.s.ListAudit(e.ctx, id, 10)
	add("audit", len(audit), err)
	return strings.Join(parts, " ")
}

func testTenantDelete(t *testing.T, e *env) {
	e.fill(t, "a")
	e.fill(t, "b")
	// An id that a LIKE pattern made of "a_" would take for a prefix of
	// "ab"'s keys: only a's own rows go.
	e.fill(t, "a_")
	e.fill(t, "ab")
	const all = "tenant=1 employees=1 stops=1 index=1 integration=1 crm_users=1 events=1 rejected=1 ringostat=1 decisions=1 meta=1 audit=1"
	if got := e.kept(t, "a"); got != all {
		t.Fatalf("before the delete a has %q, want %q", got, all)
	}
	if err := e.s.DeleteTenant(e.ctx, "a"); err != nil {
		t.Fatalf("DeleteTenant(a): %v", err)
	}
	if got := e.kept(t, "a"); got != "audit=1" {
		t.Fatalf("after the delete a has %q, want only its audit entries", got)
	}
	for _, other := range []string{"b", "ab"} {
		if got := e.kept(t, other); got != all {
			t.Fatalf("after a's delete %s has %q, want %q", other, got, all)
		}
	}
	if err := e.s.DeleteTenant(e.ctx, "a_"); err != nil {
		t.Fatalf("DeleteTenant(a_): %v", err)
	}
	if got := e.kept(t, "ab"); got != all {
		t.Fatalf("after a_'s delete ab has %q, want %q", got, all)
	}
	wantCode(t, e.s.DeleteTenant(e.ctx, "a"), domain.ENOTFOUND, "deleting a deleted tenant")
	wantCode(t, e.s.DeleteTenant(e.ctx, "nobody"), domain.ENOTFOUND, "deleting an unknown tenant")
	// The id is free again and the new tenant inherits nothing: the CRM
	// write key and the partition lease of the old one are gone too.
	e.tenant(t, "a")
	if _, fresh, err := e.s.BeginWrite(e.ctx, domain.CRMWrite{TenantID: "a", Key: "k1", Kind: "lead"}); err != nil || !fresh {
		t.Fatalf("BeginWrite(k1) on the new tenant a: fresh=%v err=%v, want a fresh record", fresh, err)
	}
	if ok, err := e.s.LeasePartition(e.ctx, "a", "380671234567", "other", time.Minute); err != nil || !ok {
		t.Fatalf("LeasePartition on the new tenant a: %v %v, want the lease", ok, err)
	}
	if ok, err := e.s.LeaseSync(e.ctx, "a", "other", time.Minute); err != nil || !ok {
		t.Fatalf("LeaseSync on the new tenant a: %v %v, want the lease", ok, err)
	}
	if st, err := e.s.EventStats(e.ctx, "a"); err != nil || st != (domain.EventStats{}) {
		t.Fatalf("EventStats of the new tenant a = %+v, %v; want zeros", st, err)
	}
}
