package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
)

// routeStatus is the status of a route request with key.
func routeStatus(t *testing.T, base, key string) int {
	t.Helper()
	resp, err := http.Get(base + "/pbx/acme/route?key=" + key + "&caller=380671234567")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// adminErr runs `router admin` expecting it to fail and returns the error.
func adminErr(t *testing.T, base, token string, args ...string) error {
	t.Helper()
	var out bytes.Buffer
	err := runAdmin(append([]string{"--url", base, "--token", token}, args...), &out)
	if err == nil {
		t.Fatalf("router admin %v succeeded: %s", args, out.String())
	}
	return err
}

// The security commands of `router admin` end to end: rotate-secret with
// and without grace, token create/list/revoke, the scopes, and the audit of
// everything.
func TestSecurityCLI(t *testing.T) {
	cfg := testConfig(t)
	cfg.adminToken = "boot-token"
	base, stop := startServe(t, cfg, io.Discard)
	defer stop()
	boot := cfg.adminToken
	first := adminCLI(t, base, boot, "create-tenant", "acme")["webhook_secret"].(string)

	rot := adminCLI(t, base, boot, "rotate-secret", "acme", "--grace", "0")
	second, _ := rot["webhook_secret"].(string)
	if second == "" || second == first || rot["previous_valid_until"] != nil {
		t.Fatalf("rotate-secret --grace 0: %v", rot)
	}
	if a, b := routeStatus(t, base, first), routeStatus(t, base, second); a != 401 || b != 200 {
		t.Fatalf("after rotate-secret --grace 0: old secret %d, new %d", a, b)
	}
	rot = adminCLI(t, base, boot, "rotate-secret", "acme", "--grace", "2h")
	third, _ := rot["webhook_secret"].(string)
	until, err := time.Parse(time.RFC3339, rot["previous_valid_until"].(string))
	if err != nil || time.Until(until) < 119*time.Minute || time.Until(until) > 121*time.Minute {
		t.Fatalf("rotate-secret --grace 2h: %v", rot)
	}
	if a, b := routeStatus(t, base, second), routeStatus(t, base, third); a != 200 || b != 200 {
		t.Fatalf("in the grace period: old secret %d, new %d", a, b)
	}
	if err := adminErr(t, base, boot, "rotate-secret", "acme", "--grace", "721h"); !strings.Contains(err.Error(), "grace_seconds") {
		t.Fatalf("a grace over 30 days: %v", err)
	}

	created := adminCLI(t, base, boot, "token", "create", "grafana", "--scope", "read")
	ro, id := created["token"].(string), created["id"].(string)
	if !strings.HasPrefix(ro, "cra_") || id == "" {
		t.Fatalf("token create: %v", created)
	}
	if err := adminErr(t, base, boot, "token", "create", "noscope"); !strings.Contains(err.Error(), "--scope") {
		t.Fatalf("token create without --scope: %v", err)
	}
	adminCLI(t, base, ro, "tenants")
	if err := adminErr(t, base, ro, "create-tenant", "evil"); !strings.Contains(err.Error(), "forbidden") ||
		!strings.Contains(err.Error(), `"read" scope`) {
		t.Fatalf("a read token creating a tenant: %v", err)
	}
	var out bytes.Buffer
	if err := runAdmin([]string{"--url", base, "--token", ro, "token", "list"}, &out); err != nil ||
		!strings.Contains(out.String(), "grafana") || strings.Contains(out.String(), ro) {
		t.Fatalf("token list: %v %s", err, out.String())
	}
	adminCLI(t, base, boot, "token", "revoke", id)
	if err := adminErr(t, base, ro, "tenants"); !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("a revoked token: %v", err)
	}

	out.Reset()
	if err := runAdmin([]string{"--url", base, "--token", boot, "audit", "--limit", "20", "-o", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Action, Actor, Detail string }
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil {
		t.Fatalf("audit: %v %s", err, out.String())
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
		for _, s := range []string{first, second, third, ro} {
			if strings.Contains(e.Detail, s) {
				t.Fatalf("audit entry %+v holds a secret", e)
			}
		}
	}
	if got := strings.Join(actions, ","); got != "token.revoke,token.create,tenant.secret.rotate,tenant.secret.rotate,tenant.create" {
		t.Fatalf("audit actions: %s", got)
	}
}

// Without --crm-allow-private a CRM on loopback is refused when connected,
// naming base_url and the flag.
func TestCRMOnLoopbackNeedsTheAllowance(t *testing.T) {
	fake := retailcrmfake.New(t)
	cfg := testConfig(t)
	cfg.crmAllowPrivate = false
	cfg.adminToken = "boot-token"
	base, stop := startServe(t, cfg, io.Discard)
	defer stop()
	adminCLI(t, base, cfg.adminToken, "create-tenant", "acme")
	err := adminErr(t, base, cfg.adminToken, "connect", "acme", "retailcrm", fake.URL(), string(fake.Creds()))
	if !strings.Contains(err.Error(), "base_url") || !strings.Contains(err.Error(), "--crm-allow-private") {
		t.Fatalf("connect to a loopback CRM: %v", err)
	}
}

// A restart with another ROUTER_SECRET_KEY stops at once with an error
// naming the key, instead of failing every CRM call later.
func TestWrongSecretKeyStopsTheStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.secretKey = strings.Repeat("ab", 32)
	_, stop := startServe(t, cfg, io.Discard)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cfg.secretKey = strings.Repeat("cd", 32)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := serve(ctx, cfg, zap.NewNop(), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "ROUTER_SECRET_KEY") {
		t.Fatalf("start with another key: %v", err)
	}
}

func TestParseCRMAllowPrivate(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	if err != nil || cfg.crmAllowPrivate {
		t.Fatalf("default: %v, allow %v", err, cfg.crmAllowPrivate)
	}
	t.Setenv("ROUTER_CRM_ALLOW_PRIVATE", "1")
	if cfg, err = parseServe(nil, io.Discard); err != nil || !cfg.crmAllowPrivate {
		t.Fatalf("ROUTER_CRM_ALLOW_PRIVATE=1: %v, allow %v", err, cfg.crmAllowPrivate)
	}
	if cfg, err = parseServe([]string{"--crm-allow-private=false"}, io.Discard); err != nil || cfg.crmAllowPrivate {
		t.Fatalf("the flag must beat the environment: %v, allow %v", err, cfg.crmAllowPrivate)
	}
}
