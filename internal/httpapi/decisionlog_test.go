package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/tenant"
)

// decisionServer is a Server over e's store and cache that logs into an
// observer, with the decision log sampling sample.
func decisionServer(t *testing.T, e *env, sample float64) (*Server, *observer.ObservedLogs) {
	t.Helper()
	reg := tenant.NewRegistry(e.st)
	if err := reg.LoadAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	return New(Config{Tenants: reg, Router: lookup.New(e.cache, e.st, time.Second), Log: zap.New(core), DecisionLogSample: sample}), logs
}

func routeCtx(target string, body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(target)
	if body != "" {
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBodyString(body)
	}
	return &ctx
}

// TestRouteDecisionLog logs each decision, when on, with the tenant, the
// call id, the caller masked to its last four digits, the reason, the
// target and the latency, and never the key or the whole caller.
func TestRouteDecisionLog(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	srv, logs := decisionServer(t, e, 1)
	key := "key=" + url.QueryEscape(secret)
	srv.Handler(routeCtx("/pbx/acme/route?"+key+"&caller=380671234567&uniqueid=call-7", ""))
	srv.Handler(routeCtx("/pbx/acme/route?"+key, `{"call_id":42,"caller":"380991112233"}`))
	entries := logs.FilterMessage("route decision").AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d decisions logged, want 2: %v", len(entries), logs.AllUntimed())
	}
	for i, want := range []map[string]string{
		{"tenant": "acme", "call_id": "call-7", "caller": "********4567", "reason": "owner", "target": "anna_sip"},
		{"tenant": "acme", "call_id": "42", "caller": "********2233", "reason": "default_owner", "target": "boss_sip"},
	} {
		got := entries[i].ContextMap()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("decision %d: %s = %v, want %q (%v)", i, k, got[k], v, got)
			}
		}
		if _, ok := got["latency"].(time.Duration); !ok {
			t.Errorf("decision %d: no latency: %v", i, got)
		}
	}
	for _, en := range logs.AllUntimed() {
		for k, v := range en.ContextMap() {
			s, _ := v.(string)
			if strings.Contains(s, secret) || strings.Contains(s, "380671234567") || strings.Contains(s, "380991112233") {
				t.Errorf("log %q field %s = %q holds the key or a whole caller", en.Message, k, s)
			}
		}
	}

	// Off (the default), nothing is logged and the route handler does not
	// allocate for it.
	off, offLogs := decisionServer(t, e, 0)
	ctx := routeCtx("/pbx/acme/route?"+key+"&caller=380671234567&uniqueid=call-8", "")
	off.Handler(ctx)
	if n := offLogs.FilterMessage("route decision").Len(); n != 0 {
		t.Fatalf("decision log off: %d decisions logged", n)
	}
	if raceEnabled {
		return // sync.Pool drops items under -race: counted without it
	}
	if allocs := testing.AllocsPerRun(200, func() { ctx.Response.Reset(); off.Handler(ctx) }); allocs != 0 {
		t.Fatalf("route handler with the decision log off: %.1f allocs per request, want 0", allocs)
	}
}

// TestIngestAndAdminChangesLogged logs stored and rejected call events and
// admin changes at info, without bodies or secrets.
func TestIngestAndAdminChangesLogged(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	reg := tenant.NewRegistry(e.st)
	if err := reg.LoadAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	ingest := events.NewIngest(e.st, &recordingQueue{}, nil, 1)
	defer ingest.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	sum := sha256.Sum256([]byte(testAdminToken))
	srv := New(Config{Tenants: reg, Router: lookup.New(e.cache, e.st, time.Second), Admin: admin.New(e.st, reg, e.cache),
		Events: ingest, AdminTokenHash: sum[:], Log: zap.New(core)})
	key := "key=" + url.QueryEscape(secret)
	srv.Handler(routeCtx("/pbx/acme/events?"+key, `{"event":"call_end","uniqueid":"u-1","caller":"380671234567"}`))
	srv.Handler(routeCtx("/pbx/acme/events?"+key, `{"event":"explode","uniqueid":"u-2"}`))
	put := routeCtx("/admin/v1/tenants/acme/employees/104", `{"sip":"dan_sip","name":"Dan"}`)
	put.Request.Header.SetMethod("PUT")
	put.Request.Header.Set("Authorization", "Bearer "+testAdminToken)
	srv.Handler(put)
	rot := routeCtx("/admin/v1/tenants/acme/secret/rotate", `{}`)
	rot.Request.Header.Set("Authorization", "Bearer "+testAdminToken)
	srv.Handler(rot)
	if rot.Response.StatusCode() != 200 {
		t.Fatalf("rotate: %d %s", rot.Response.StatusCode(), rot.Response.Body())
	}
	for msg, want := range map[string]map[string]string{
		"call event stored":   {"tenant": "acme", "kind": "call_end", "call_id": "u-1"},
		"call event rejected": {"tenant": "acme"},
		"admin change":        {"method": "PUT", "path": "/admin/v1/tenants/acme/employees/104"},
	} {
		got := logs.FilterMessage(msg).AllUntimed()
		if len(got) == 0 {
			t.Fatalf("no %q logged: %v", msg, logs.AllUntimed())
		}
		for k, v := range want {
			if got[0].ContextMap()[k] != v {
				t.Errorf("%q: %s = %v, want %q", msg, k, got[0].ContextMap()[k], v)
			}
		}
	}
	if n := logs.FilterMessage("admin change").Len(); n != 2 {
		t.Errorf("%d admin changes logged, want 2", n)
	}
	var rotated struct {
		Secret string `json:"webhook_secret"`
	}
	_ = json.Unmarshal(rot.Response.Body(), &rotated)
	for _, en := range logs.AllUntimed() {
		for k, v := range en.ContextMap() {
			s := fmt.Sprint(v)
			if strings.Contains(s, secret) || rotated.Secret != "" && strings.Contains(s, rotated.Secret) || strings.Contains(s, testAdminToken) || strings.Contains(s, "dan_sip") {
				t.Errorf("log %q field %s = %q holds a secret or a body", en.Message, k, s)
			}
		}
	}
}
