package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
)

// route asks the route endpoint for caller with a call id, as the PBX does.
func (s *site) route(t *testing.T, caller, callID string) string {
	t.Helper()
	resp, err := http.Get(s.url + "/pbx/acme/route?key=" + url.QueryEscape(s.secret) + "&caller=" + url.QueryEscape(caller) + "&uniqueid=" + url.QueryEscape(callID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The routing report screen: two calls routed to Olena, one she answered,
// one Petro took; the table shows both per manager and who answered
// instead.
func TestBrowserRoutingReport(t *testing.T) {
	s := newSite(t)
	ctx0 := context.Background()
	for _, e := range []struct {
		id string
		in admin.EmployeeInput
	}{{"u1", admin.EmployeeInput{SIP: "sip101", Name: "Olena"}}, {"u2", admin.EmployeeInput{SIP: "sip102", Name: "Petro"}}} {
		if _, err := s.admin.PutEmployee(ctx0, "test", "acme", e.id, e.in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.admin.Import(ctx0, "test", "acme", "csv", "", strings.NewReader("phone,owner_crm_user_id\n0501234567,u1\n0671112233,u1\n")); err != nil {
		t.Fatal(err)
	}
	if got := s.route(t, "+380501234567", "call-r1"); got != `{"number":"sip101"}` {
		t.Fatalf("route call-r1: %s", got)
	}
	if got := s.route(t, "+380671112233", "call-r2"); got != `{"number":"sip101"}` {
		t.Fatalf("route call-r2: %s", got)
	}
	if err := s.rec.Drain(ctx0); err != nil {
		t.Fatal(err)
	}
	s.postEvent(t, url.Values{"event": {"call_end"}, "uniqueid": {"call-r1"}, "caller": {"+380501234567"},
		"disposition": {"ANSWERED"}, "billsec": {"31"}, "employee": {"sip101"}})
	s.postEvent(t, url.Values{"event": {"call_end"}, "uniqueid": {"call-r2"}, "caller": {"+380671112233"},
		"disposition": {"ANSWERED"}, "billsec": {"8"}, "employee": {"sip102"}})

	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	row := `#report tr[data-manager="u1"]`
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/report"),
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	for col, want := range map[string]string{"routed": "2", "answered": "1", "fell_through": "1", "missed": "0", "instead": "Petro ×1"} {
		if got := get(t, ctx, chromedp.Text(chromedp.CSS(row+` td[data-col="`+col+`"]`))); got != want {
			t.Errorf("report %s = %q, want %q", col, got, want)
		}
	}
	screenshot(t, ctx, "report")
}

// Deleting a tenant from the console: the button stays disabled until the
// tenant's id is typed; then the tenant is gone with its index, the list
// says so, and the audit log keeps the deletion by the signed-in token.
func TestBrowserDeleteTenant(t *testing.T) {
	s := newSite(t)
	ctx0 := context.Background()
	if _, err := s.admin.Import(ctx0, "test", "acme", "csv", "", strings.NewReader("phone,owner_crm_user_id\n0501234567,u1\n")); err != nil {
		t.Fatal(err)
	}
	s.postEvent(t, url.Values{"event": {"call_start"}, "uniqueid": {"call-d1"}, "caller": {"+380501234567"}})
	if n := len(s.board.Calls("acme")); n != 1 {
		t.Fatalf("%d calls on the live board before the delete, want 1", n)
	}
	ctx := tab(t)
	s.signIn(ctx, bootstrapToken)
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/delete"),
		chromedp.WaitVisible(chromedp.CSS(`#delete-confirm`)),
		chromedp.SendKeys(chromedp.CSS(`#delete-confirm`), "acm"),
	)
	if !get(t, ctx, chromedp.Evaluate[bool](`document.getElementById('delete-tenant').disabled`)) {
		t.Fatal("the delete button is enabled before the whole id is typed")
	}
	run(t, ctx, chromedp.SendKeys(chromedp.CSS(`#delete-confirm`), "e"))
	if get(t, ctx, chromedp.Evaluate[bool](`document.getElementById('delete-tenant').disabled`)) {
		t.Fatal("the delete button stays disabled with the id typed")
	}
	screenshot(t, ctx, "delete")
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`#delete-tenant`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	if msg := get(t, ctx, chromedp.Text(chromedp.CSS(`#flash`))); msg != "Tenant acme deleted." {
		t.Fatalf("flash = %q", msg)
	}
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#tenants tr[data-tenant="acme"]').length`)); n != 0 {
		t.Fatal("the tenants list still shows acme")
	}
	if _, err := s.st.Tenant(ctx0, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("acme in the store after the delete: %v", err)
	}
	if n, err := s.st.CountIndex(ctx0, "acme"); err != nil || n != 0 {
		t.Fatalf("acme's index after the delete: %d, %v", n, err)
	}
	if n := len(s.board.Calls("acme")); n != 0 {
		t.Fatalf("%d calls of the deleted tenant still on the live board", n)
	}
	audit, err := s.st.ListAudit(ctx0, "acme", 1)
	if err != nil || len(audit) != 1 || audit[0].Action != "tenant.delete" || audit[0].Actor != admin.BootstrapActor {
		t.Fatalf("last audit entry of acme: %+v, %v", audit, err)
	}
}

// A read-scope session sees the delete screen with the button disabled,
// and the API refuses the delete even with the session's CSRF token.
func TestBrowserReadScopeCannotDelete(t *testing.T) {
	s := newSite(t)
	tok, err := s.admin.CreateToken(context.Background(), "test", admin.TokenInput{Name: "viewer", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	s.signIn(ctx, tok.Token)
	run(t, ctx,
		chromedp.Navigate(s.url+"/console/#/t/acme/delete"),
		chromedp.WaitVisible(chromedp.CSS(`#delete-confirm`)),
		chromedp.SendKeys(chromedp.CSS(`#delete-confirm`), "acme"),
	)
	if !get(t, ctx, chromedp.Evaluate[bool](`document.getElementById('delete-tenant').disabled`)) {
		t.Fatal("read scope: the delete button is enabled")
	}
	if r := pageFetch(t, ctx, "DELETE", "/admin/v1/tenants/acme?confirm=acme", "", "session"); r.Status != http.StatusForbidden {
		t.Fatalf("read scope DELETE: %d %s", r.Status, r.Body)
	}
	if _, err := s.st.Tenant(context.Background(), "acme"); err != nil {
		t.Fatalf("acme after a read-scope delete: %v", err)
	}
}
