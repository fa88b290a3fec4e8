package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Secrets in the environment that no help text may show.
const (
	helpEnvToken = "cra_help_env_token_value"
	helpEnvKey   = "ringostat-help-env-key-value"
	helpSMKey    = "salesmanago-help-env-key-value"
	helpSMSecret = "salesmanago-help-env-secret-value"
)

// Every command and subcommand answers -h and --help with its usage on
// stdout and exit status 0, shows no secret from the environment, and a
// mistake in the command line is exit status 2 with the reason on stderr.
func TestCLIHelpAndUsageErrors(t *testing.T) {
	t.Setenv("ROUTER_ADMIN_TOKEN", helpEnvToken)
	t.Setenv("ROUTER_RINGOSTAT_KEY", helpEnvKey)
	t.Setenv("ROUTER_SALESMANAGO_API_KEY", helpSMKey)
	t.Setenv("ROUTER_SALESMANAGO_API_SECRET", helpSMSecret)
	t.Setenv("ROUTER_SECRET_KEY", strings.Repeat("ab", 32))
	type helpCase struct {
		args []string
		want string // what the usage line names
	}
	var helps []helpCase
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"serve", "-h"}, {"serve", "--help"}, {"migrate", "-h"},
		{"migrate", "--help"}, {"version", "-h"}, {"version", "--help"}, {"admin"}, {"admin", "-h"},
		{"admin", "--help"}, {"admin", "help"}, {"admin", "token", "-h"}, {"admin", "token"}, {"admin", "ringostat", "--help"},
		{"admin", "salesmanago", "--help"}, {"admin", "salesmanago"}} {
		want := "usage: router"
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "help" {
			want += " " + args[0]
		}
		helps = append(helps, helpCase{args, want})
	}
	for _, c := range adminCmds() {
		for _, h := range []string{"-h", "--help"} {
			helps = append(helps, helpCase{append(append([]string{"admin"}, strings.Fields(c.name)...), h), "usage: router admin " + c.name + " "})
		}
	}
	// The common flags before the subcommand, help after it.
	helps = append(helps, helpCase{[]string{"admin", "--url", "http://127.0.0.1:1", "-o", "json", "tenants", "-h"}, "usage: router admin tenants "})
	for _, h := range helps {
		var stdout, stderr bytes.Buffer
		code := run(h.args, &stdout, &stderr)
		out := stdout.String()
		if code != 0 || !strings.HasPrefix(out, h.want) || stderr.Len() > 0 {
			t.Errorf("router %s: exit %d, stdout %q, stderr %q; want 0 and %q on stdout", strings.Join(h.args, " "), code, firstLine(out), stderr.String(), h.want)
		}
		if strings.Contains(out, helpEnvToken) || strings.Contains(out, helpEnvKey) || strings.Contains(out, helpSMKey) ||
			strings.Contains(out, helpSMSecret) || strings.Contains(out, strings.Repeat("ab", 32)) {
			t.Errorf("router %s prints a secret from the environment", strings.Join(h.args, " "))
		}
	}

	for _, args := range [][]string{{}, {"bogus"}, {"serve", "--bogus"}, {"serve", "extra"}, {"migrate", "extra"},
		{"version", "extra"}, {"admin", "bogus"}, {"admin", "token", "bogus"}, {"admin", "tenants", "--bogus"},
		{"admin", "employees"}, {"admin", "put-employee", "acme"}, {"admin", "employees", "acme", "-o", "yaml"},
		{"admin", "token", "create", "x"}, {"admin", "salesmanago", "bogus"}, {"admin", "salesmanago", "connect", "acme"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stderr.Len() == 0 || stdout.Len() > 0 {
			t.Errorf("router %s: exit %d, stdout %q, stderr %q; want 2 and the reason on stderr", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// fakeAdmin is an admin API that records the calls it gets and answers
// each path with a canned body.
type fakeAdmin struct {
	mu    sync.Mutex
	calls []string // "METHOD /path?query auth body"
}

func newFakeAdmin(t *testing.T, answers map[string]string) (*fakeAdmin, string) {
	f := &fakeAdmin{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if a, ok := answers[r.URL.Path]; ok {
			io.WriteString(w, a)
			return
		}
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeAdmin) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

// `router admin`: each subcommand's flags (and the common ones) work
// after it and between its arguments; lists print an aligned table by
// default and JSON with -o json; objects print JSON by default.
func TestAdminSubcommandFlagsAndOutput(t *testing.T) {
	t.Setenv("ROUTER_ADMIN_TOKEN", "")
	t.Setenv("ROUTER_URL", "")
	employees := `[{"crm_user_id":"101","sip":"anna_sip","phone":"","name":"Anna","email":""},` +
		`{"crm_user_id":"900","sip":"senior_sip_long_login","phone":"","name":"Senior manager","email":"s@example.com"}]`
	f, base := newFakeAdmin(t, map[string]string{
		"/admin/v1/tenants/acme/employees": employees,
		"/admin/v1/tenants/acme":           `{"id":"acme","name":"Acme Ltd","route_budget_ms":300}`,
		"/admin/v1/tokens":                 `[{"id":"t1","name":"grafana","scope":"read","created_at":"2026-01-02T03:04:05Z","revoked":false}]`,
	})
	cases := []struct {
		name string
		args []string
		call string // the request's start, then its body's content
		body string
		out  func(t *testing.T, out string)
	}{
		{"table by default, flags after", []string{"employees", "acme", "--url", base, "--token", "T1"},
			"GET /admin/v1/tenants/acme/employees Bearer T1", "", func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
				if len(lines) != 3 || !strings.HasPrefix(lines[0], "CRM_USER_ID") {
					t.Fatalf("table:\n%s", out)
				}
				col := strings.Index(lines[0], "SIP")
				for _, l := range lines[1:] {
					if !strings.HasPrefix(l[col:], "anna_sip") && !strings.HasPrefix(l[col:], "senior_sip_long_login") {
						t.Fatalf("the SIP column is not aligned:\n%s", out)
					}
				}
				if !strings.Contains(lines[2], "Senior manager") || !strings.Contains(lines[1], " - ") {
					t.Fatalf("cells:\n%s", out)
				}
			}},
		{"-o json", []string{"--url", base, "employees", "-o", "json", "acme", "--token", "T2"},
			"GET /admin/v1/tenants/acme/employees Bearer T2", "", func(t *testing.T, out string) {
				var v []map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 2 || v[1]["name"] != "Senior manager" {
					t.Fatalf("-o json: %v\n%s", err, out)
				}
			}},
		{"object as JSON", []string{"tenant", "acme", "--url", base, "--token", "T3"},
			"GET /admin/v1/tenants/acme Bearer T3", "", func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "{\n  \"id\": \"acme\"") {
					t.Fatalf("object:\n%s", out)
				}
			}},
		{"object as a table", []string{"tenant", "acme", "-o", "table", "--url", base, "--token", "T3"},
			"GET /admin/v1/tenants/acme Bearer T3", "", func(t *testing.T, out string) {
				if !strings.Contains(out, "route_budget_ms  300") || !strings.HasPrefix(out, "KEY") {
					t.Fatalf("object table:\n%s", out)
				}
			}},
		{"own flags between arguments", []string{"put-employee", "acme", "--sip", "anna_sip", "101", "--url", base, "--name", "Anna", "--token", "T4"},
			"PUT /admin/v1/tenants/acme/employees/101 Bearer T4", `"sip":"anna_sip"`, nil},
		{"token from the flag before the subcommand", []string{"--token", "T5", "--url", base, "audit", "--limit", "5"},
			"GET /admin/v1/audit?limit=5 Bearer T5", "", nil},
		{"group subcommand", []string{"token", "list", "--url", base, "--token", "T6"},
			"GET /admin/v1/tokens Bearer T6", "", func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "ID  NAME     SCOPE  CREATED_AT            REVOKED\nt1  grafana  read   2026-01-02T03:04:05Z  false") {
					t.Fatalf("token list:\n%s", out)
				}
			}},
		{"ringostat connect", []string{"ringostat", "connect", "acme", "12345", "--key", "rs-key", "--url", base, "--token", "T7"},
			"PUT /admin/v1/tenants/acme/ringostat Bearer T7", `"project_id":"12345"`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runAdmin(tc.args, &out); err != nil {
				t.Fatalf("router admin %s: %v", strings.Join(tc.args, " "), err)
			}
			if call := f.last(); !strings.HasPrefix(call, tc.call) || !strings.Contains(call, tc.body) {
				t.Fatalf("the server got %q, want %q with %s", call, tc.call, tc.body)
			}
			if tc.out != nil {
				tc.out(t, out.String())
			}
		})
	}
	if err := runAdmin([]string{"--url", base, "tenants"}, io.Discard); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("without a token: %v", err)
	}
	var ue usageError
	if err := runAdmin([]string{"--url", base, "--token", "T", "employees"}, io.Discard); !errors.As(err, &ue) {
		t.Fatalf("a missing argument: %v, want a usage error", err)
	}
}

// routerBinary builds bin/router once with the Makefile, as `make build`
// and `make run` do, into a temporary directory.
var routerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "router-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "router")
	out, err := exec.Command("make", "-s", "-C", "../..", "build", "BIN="+bin).CombinedOutput()
	if err != nil {
		return "", errors.New(string(out) + err.Error())
	}
	return bin, nil
})

// `router version` and `router --version` print the version the Makefile
// took from git; the built binary exits 0 on help and 2 on a mistake.
func TestVersionFromTheMakefile(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	want, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	bin, err := routerBinary()
	if err != nil {
		t.Fatalf("make build: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || strings.TrimSpace(string(out)) != strings.TrimSpace(string(want)) || string(out) == "dev\n" {
			t.Errorf("router %s: %q (%v), want %q from git describe", args[0], out, err, strings.TrimSpace(string(want)))
		}
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"serve", "-h"}, 0}, {[]string{"admin", "token", "create", "--help"}, 0}, {[]string{"serve", "--nope"}, 2}, {nil, 2}} {
		err := exec.Command(bin, tc.args...).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("router %s: exit %d, want %d", strings.Join(tc.args, " "), code, tc.code)
		}
	}
}
