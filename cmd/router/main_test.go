package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// startServe runs `router serve` in-process on a loopback port and returns
// its base URL and a stop function that waits for the drain.
func startServe(t *testing.T, cfg serveConfig, console io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, zap.NewNop(), console, addr) }()
	select {
	case a := <-addr:
		return "http://" + a, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start listening")
	}
	return "", nil
}

// rateScale is how much higher than a real account's the CRM rate limits
// are, on both sides, in the tests that are not about pacing: the limits
// are still enforced, and the crm package tests the pacing itself.
const rateScale = 10

func testConfig(t *testing.T) serveConfig {
	// The fake CRMs listen on loopback, which the SSRF guard refuses
	// unless allowed.
	cfg, err := parseServe([]string{"--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "data", "callrouter.db"),
		"--crm-allow-private"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func adminCLI(t *testing.T, url, token string, args ...string) map[string]any {
	t.Helper()
	var out bytes.Buffer
	if err := runAdmin(append([]string{"--url", url, "--token", token}, args...), &out); err != nil {
		t.Fatalf("router admin %v: %v", args, err)
	}
	var m map[string]any
	if strings.HasPrefix(strings.TrimSpace(out.String()), "{") {
		// objects only: list answers are checked by the callers themselves
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("router admin %v printed %q: %v", args, out.String(), err)
		}
	}
	return m
}

// The README quickstart, step by step: create a tenant, map an employee to
// a SIP login, import a contact, ask for the route.
func TestQuickstart(t *testing.T) {
	cfg := testConfig(t)
	cfg.adminToken = "quickstart-token"
	url, stop := startServe(t, cfg, io.Discard)

	created := adminCLI(t, url, cfg.adminToken, "create-tenant", "acme", "--name", "Acme Ltd", "default_country=UA")
	secret, _ := created["webhook_secret"].(string)
	if secret == "" {
		t.Fatalf("create-tenant printed no webhook_secret: %v", created)
	}
	adminCLI(t, url, cfg.adminToken, "put-employee", "acme", "101", "--sip", "anna_sip", "--name", "Anna")
	adminCLI(t, url, cfg.adminToken, "put-employee", "acme", "900", "--sip", "senior_sip", "--name", "Senior")
	adminCLI(t, url, cfg.adminToken, "set-default-owner", "acme", "900")
	csv := filepath.Join(t.TempDir(), "contacts.csv")
	if err := os.WriteFile(csv, []byte("phone,owner_crm_user_id,entity_kind,entity_id,name\n067 123 45 67,101,lead,L1,First client\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := adminCLI(t, url, cfg.adminToken, "import", "acme", csv)
	if rep["accepted"].(float64) != 1 {
		t.Fatalf("import: %v", rep)
	}
	set := adminCLI(t, url, cfg.adminToken, "set", "acme", "on_miss=default_owner", "route_budget_ms=250", "owner_order=lead,contact")
	if set["on_miss"] != "default_owner" || set["route_budget_ms"].(float64) != 250 {
		t.Fatalf("set: %v", set)
	}
	status := adminCLI(t, url, cfg.adminToken, "status", "acme")
	if status["index_size"].(float64) != 1 {
		t.Fatalf("status: %v", status)
	}

	for caller, want := range map[string]string{"380671234567": `{"number":"anna_sip"}`, "380509999999": `{"number":"senior_sip"}`} {
		resp, err := http.Get(url + "/pbx/acme/route?key=" + secret + "&caller=" + caller)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("route %s: %d %q, want %q", caller, resp.StatusCode, body, want)
		}
	}
	// The same decision, explained; and the console is served.
	x := adminCLI(t, url, cfg.adminToken, "explain", "acme", "067 123 45 67")
	if ans, _ := x["answer"].(map[string]any); x["reason"] != "owner" || ans["body"] != `{"number":"anna_sip"}` {
		t.Fatalf("explain: %v", x)
	}
	adminCLI(t, url, cfg.adminToken, "events", "acme", "--state", "failed", "--caller", "0671234567")
	resp, err := http.Get(url + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/console/: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
}

// Without a configured token the first start generates one and hands it
// over in a 0600 file whose path it prints, never the token itself unless
// the console is a terminal (a redirected log keeps what it is given); it
// stores only the token's hash; the next start writes nothing and accepts
// it.
func TestAdminTokenGeneratedOnceAndHashed(t *testing.T) {
	cfg := testConfig(t)
	var console bytes.Buffer
	url, stop := startServe(t, cfg, &console)
	file := filepath.Join(filepath.Dir(cfg.db), adminTokenFile)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no token file: %v; console: %q", err, console.String())
	}
	token := strings.TrimSpace(string(b))
	if !strings.HasPrefix(token, "cra_") {
		t.Fatalf("token file holds %q", b)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if strings.Contains(console.String(), token) || !strings.Contains(console.String(), file) {
		t.Fatalf("a redirected console got the token, or not the file's path: %q", console.String())
	}
	adminCLI(t, url, token, "tenants")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}

	st, err := sqlite.Open(context.Background(), cfg.db)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.GetMeta(context.Background(), metaAdminToken)
	st.Close()
	if err != nil || strings.Contains(stored, token) || len(stored) != 64 {
		t.Fatalf("stored admin token value %q (err %v): want a 64-hex hash, never the token", stored, err)
	}

	console.Reset()
	url, stop = startServe(t, cfg, &console)
	defer stop()
	if strings.Contains(console.String(), "cra_") || console.Len() > 0 {
		t.Fatalf("second start printed %q", console.String())
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("second start wrote the token file again: %v", err)
	}
	adminCLI(t, url, token, "tenants")
	var out bytes.Buffer
	if err := runAdmin([]string{"--url", url, "--token", "wrong", "tenants"}, &out); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("wrong token: err %v", err)
	}
}

func TestParseServeFlagsAndEnv(t *testing.T) {
	t.Setenv("ROUTER_LISTEN", "127.0.0.1:9999")
	t.Setenv("ROUTER_DB", "postgres://x@127.0.0.1/db")
	t.Setenv("ROUTER_NEGATIVE_TTL", "5s")
	cfg, err := parseServe([]string{"--listen", "127.0.0.1:7000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.listen != "127.0.0.1:7000" || cfg.db != "postgres://x@127.0.0.1/db" || cfg.negativeTTL != 5*time.Second {
		t.Fatalf("flag must beat env, env must beat default: %+v", cfg)
	}
	if _, err := parseServe([]string{"--log-format", "xml"}, io.Discard); err == nil || !strings.Contains(err.Error(), "log-format") {
		t.Fatalf("bad log format: %v", err)
	}
	if cfg.eventRetention != 30*24*time.Hour || cfg.retentionInterval != 10*time.Minute {
		t.Fatalf("retention defaults: %s every %s, want 720h every 10m", cfg.eventRetention, cfg.retentionInterval)
	}
	if _, err := parseServe([]string{"--event-retention", "48h"}, io.Discard); err == nil || !strings.Contains(err.Error(), "event-retention") {
		t.Fatalf("a retention under 3 days: %v, want refused", err)
	}
	if cfg.decisionLogSample != 0 {
		t.Fatalf("the decision log is on by default: %v", cfg.decisionLogSample)
	}
	for _, bad := range []string{"-0.1", "1.5", "NaN"} {
		if _, err := parseServe([]string{"--decision-log-sample", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "decision-log-sample") {
			t.Fatalf("--decision-log-sample %s: %v, want refused", bad, err)
		}
	}
	if c, err := parseServe([]string{"--decision-log-sample", "0.01"}, io.Discard); err != nil || c.decisionLogSample != 0.01 {
		t.Fatalf("--decision-log-sample 0.01: %v %v", c.decisionLogSample, err)
	}
}

func TestMigrateCreatesTheStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sub", "m.db")
	if err := runMigrate([]string{"--db", db}, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.Version(context.Background()); err != nil || n == 0 {
		t.Fatalf("version %d, err %v", n, err)
	}
	// River's tables too: serve then starts with nothing left to migrate.
	var river int
	if err := st.Writer().QueryRow(`SELECT count(*) FROM river_migration`).Scan(&river); err != nil || river == 0 {
		t.Fatalf("River's migrations: %d applied, err %v", river, err)
	}
}

// serve -h prints the flags' defaults, but never the secrets taken from
// the environment; the environment still configures them, and a flag
// still beats it.
func TestServeHelpHidesSecretsFromEnv(t *testing.T) {
	const token, key = "cra_env_admin_token_value", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	t.Setenv("ROUTER_ADMIN_TOKEN", token)
	t.Setenv("ROUTER_SECRET_KEY", key)
	var help bytes.Buffer
	if _, err := parseServe([]string{"-h"}, &help); err == nil {
		t.Fatal("-h parsed without flag.ErrHelp")
	}
	if !strings.Contains(help.String(), "-admin-token") {
		t.Fatalf("help lacks the flags: %s", help.String())
	}
	if strings.Contains(help.String(), token) || strings.Contains(help.String(), key) {
		t.Fatalf("serve -h prints a secret from the environment:\n%s", help.String())
	}
	cfg, err := parseServe(nil, io.Discard)
	if err != nil || cfg.adminToken != token || cfg.secretKey != key {
		t.Fatalf("environment ignored: %+v, %v", cfg, err)
	}
	if cfg, err = parseServe([]string{"--admin-token", "flag-token-value"}, io.Discard); err != nil || cfg.adminToken != "flag-token-value" {
		t.Fatalf("flag must beat env: %+v, %v", cfg, err)
	}
}
