package ringostat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseLogins(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`["sip_anna","sip_boss"]`, "sip_anna,sip_boss"},
		{`{"data":["sip_anna"]}`, "sip_anna"},
		{`[101, "sip_boss"]`, "101,sip_boss"},
		{`[{"sip":"sip_anna"},{"login":"sip_boss"}]`, "sip_anna,sip_boss"},
		{`[]`, ""},
	} {
		got, err := parseLogins([]byte(tc.body))
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("parseLogins(%s) = %q, %v; want %q", tc.body, got, err, tc.want)
		}
	}
	if _, err := parseLogins([]byte(`"sip_anna"`)); err == nil {
		t.Error("a bare string is not a list of logins")
	}
}

func TestParseCallsKeepsNumbersAsText(t *testing.T) {
	calls, err := parseCalls([]byte(`[{"uniqueid":"1700000000.42","billsec":0,"duration":25,"recording":null,"employee_number":-1}]`))
	if err != nil || len(calls) != 1 {
		t.Fatalf("parseCalls: %v %v", calls, err)
	}
	c := calls[0]
	if c["uniqueid"] != "1700000000.42" || c["billsec"] != "0" || c["duration"] != "25" || c["recording"] != "" || c["employee_number"] != "-1" {
		t.Fatalf("call: %v", c)
	}
}

// TestClientErrors: Ringostat's words come back without the key, a
// JSON-RPC error in a 200 answer is an error, and the headers are sent.
func TestClientErrors(t *testing.T) {
	var gotKey, gotProject string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotProject = r.Header.Get("Auth-key"), r.Header.Get("x-project-id")
		switch r.URL.Path {
		case "/sipstatus/online":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Access denied for key secret-key-123"}`))
		case "/a/v2":
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params"}}`))
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, "secret-key-123", "4242", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Online(context.Background())
	if !IsAuth(err) || strings.Contains(err.Error(), "secret-key-123") || !strings.Contains(err.Error(), "403 Access denied for key [redacted]") {
		t.Fatalf("403: %v", err)
	}
	if gotKey != "secret-key-123" || gotProject != "4242" {
		t.Fatalf("headers: Auth-key %q x-project-id %q", gotKey, gotProject)
	}
	err = c.CallbackExternal(context.Background(), "sip_anna", "380671234567")
	if err == nil || IsAuth(err) || !strings.Contains(err.Error(), "Invalid params") {
		t.Fatalf("JSON-RPC error: %v", err)
	}
	for _, bad := range []struct{ key, project string }{{"", "1"}, {"k y", "1"}, {"k", ""}, {"k", "12a"}} {
		if _, err := NewClient(srv.URL, bad.key, bad.project, nil); err == nil {
			t.Errorf("NewClient(%q, %q) accepted", bad.key, bad.project)
		}
	}
}
