package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The routing report and the deletion of a tenant through the CLI against
// a running `router serve`: a routed call with a uniqueid and its call_end
// event show in `router admin report`; the decisions buffered at shutdown
// are written before the process stops (the report is read after a
// restart, so nothing waits on the writer's interval); `tenants delete`
// needs --confirm and removes the tenant.
func TestRoutingReportAndDeleteCLI(t *testing.T) {
	cfg := testConfig(t)
	cfg.adminToken = "report-token"
	url, stop := startServe(t, cfg, io.Discard)
	tok := cfg.adminToken

	secret, _ := adminCLI(t, url, tok, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
	adminCLI(t, url, tok, "put-employee", "acme", "101", "--sip", "anna_sip", "--name", "Anna")
	adminCLI(t, url, tok, "put-employee", "acme", "102", "--sip", "boris_sip", "--name", "Boris")
	csv := filepath.Join(t.TempDir(), "contacts.csv")
	if err := os.WriteFile(csv, []byte("phone,owner_crm_user_id\n067 123 45 67,101\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminCLI(t, url, tok, "import", "acme", csv)
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if got := get("/pbx/acme/route?key=" + secret + "&caller=380671234567&uniqueid=1700000000.77"); got != `{"number":"anna_sip"}` {
		t.Fatalf("route: %s", got)
	}
	get("/pbx/acme/events?key=" + secret + "&event=call_end&uniqueid=1700000000.77&caller=380671234567&disposition=ANSWERED&billsec=20&employee=boris_sip")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	url, stop = startServe(t, cfg, io.Discard)
	defer func() {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}()
	rep := adminCLI(t, url, tok, "report", "acme", "--days", "2")
	rows, _ := rep["rows"].([]any)
	if rep["days"].(float64) != 2 || len(rows) != 1 {
		t.Fatalf("report: %v", rep)
	}
	row := rows[0].(map[string]any)
	instead, _ := row["answered_instead"].([]any)
	if row["manager"] != "101" || row["name"] != "Anna" || row["routed"].(float64) != 1 || row["answered"].(float64) != 0 ||
		row["fell_through"].(float64) != 1 || len(instead) != 1 || instead[0].(map[string]any)["name"] != "Boris" {
		t.Fatalf("report row: %v", row)
	}
	var out bytes.Buffer
	if err := runAdmin([]string{"--url", url, "--token", tok, "report", "acme", "--days", "0"}, &out); err == nil || !strings.Contains(err.Error(), "days:") {
		t.Fatalf("report --days 0: %v", err)
	}

	if err := runAdmin([]string{"--url", url, "--token", tok, "tenants", "delete", "acme"}, &out); err == nil || !strings.Contains(err.Error(), "--confirm") {
		t.Fatalf("tenants delete without --confirm: %v", err)
	}
	if err := runAdmin([]string{"--url", url, "--token", tok, "tenants", "delete", "acme", "--confirm", "acme2"}, &out); err == nil || !strings.Contains(err.Error(), "confirm:") {
		t.Fatalf("tenants delete with a wrong --confirm: %v", err)
	}
	adminCLI(t, url, tok, "tenants", "delete", "acme", "--confirm", "acme")
	out.Reset()
	if err := runAdmin([]string{"--url", url, "--token", tok, "tenants"}, &out); err != nil || strings.Contains(out.String(), `"acme"`) {
		t.Fatalf("tenants after the delete: %v %s", err, out.String())
	}
}
