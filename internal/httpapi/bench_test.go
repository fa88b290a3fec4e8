package httpapi

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/ringostat"
	"github.com/callrouter/callrouter/internal/tenant"
)

// benchIndex is a tenant with 100k indexed phones, already in a warm cache.
func benchIndex(b *testing.B, muts ...func(*domain.Settings)) (*tenant.Registry, *cache.Cache) {
	b.Helper()
	src := &memTenants{tenant: domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), DefaultOwner: "900",
		SecretHash: tenant.HashSecret("bench-secret")},
		emps: []domain.Employee{{CRMUserID: "101", SIP: "anna_sip"}, {CRMUserID: "900", SIP: "boss_sip"}}}
	src.tenant.Settings.DefaultCountry = "UA"
	for _, m := range muts {
		m(&src.tenant.Settings)
	}
	reg := tenant.NewRegistry(src)
	if err := reg.LoadAll(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 20, NegativeTTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	scan := func(ctx context.Context, fn func(domain.IndexEntry) error) error {
		for i := 0; i < 100000; i++ {
			p := fmt.Sprintf("38067%07d", i)
			if err := fn(domain.IndexEntry{TenantID: "acme", Phone: p, Suffix: phone.Suffix(p), Kind: domain.KindLead,
				EntityID: fmt.Sprint(i), OwnerID: "101", Open: true}); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := c.Warm(context.Background(), scan); err != nil {
		b.Fatal(err)
	}
	return reg, c
}

// BenchmarkRouteHit is the in-process route decision of the performance
// contract: normalize the caller, hit the cache, decide and encode the JSON
// answer. Target: ≤ 250 ns/op, 0 allocs/op.
func BenchmarkRouteHit(b *testing.B) {
	reg, c := benchIndex(b)
	svc := lookup.New(c, nil, time.Second)
	t := reg.Lookup("acme")
	callers := [][]byte{[]byte("380670000042"), []byte("+380 (67) 000-12-34"), []byte("0670099999")}
	var (
		resp fasthttp.Response
		rr   routeRequest
	)
	start := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		res := svc.Route(context.Background(), t, callers[i%3], start)
		renderRoute(&resp, t, res, &rr)
		if res.Reason != lookup.ReasonOwner {
			b.Fatalf("reason %s", res.Reason)
		}
		i++
	}
}

// BenchmarkRouteHitPresence is BenchmarkRouteHit for a tenant with
// presence-aware routing, the owner offline: the presence check runs on
// every call and the call goes to the default owner. Target: 0 allocs/op.
func BenchmarkRouteHitPresence(b *testing.B) {
	reg, c := benchIndex(b, func(s *domain.Settings) { s.Presence = domain.PresenceSkipOfflineAndBusy })
	p := ringostat.NewPresence(time.Hour)
	p.Polled("acme", []string{"boss_sip"}, nil, time.Now())
	svc := lookup.New(c, nil, time.Second).WithPresence(p)
	t := reg.Lookup("acme")
	callers := [][]byte{[]byte("380670000042"), []byte("+380 (67) 000-12-34"), []byte("0670099999")}
	var (
		resp fasthttp.Response
		rr   routeRequest
	)
	start := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		res := svc.Route(context.Background(), t, callers[i%3], start)
		renderRoute(&resp, t, res, &rr)
		if res.Reason != lookup.ReasonOwnerOffline {
			b.Fatalf("reason %s", res.Reason)
		}
		i++
	}
}

// BenchmarkRouteHandler serves route requests through fasthttp's in-memory
// listener: request parsing, auth, routing, rendering and metrics, without
// the kernel's network stack.
func BenchmarkRouteHandler(b *testing.B) {
	reg, c := benchIndex(b)
	sum := sha256.Sum256([]byte("admin"))
	srv := New(Config{Tenants: reg, Router: lookup.New(c, nil, time.Second), AdminTokenHash: sum[:], Log: zap.NewNop()})
	ln := fasthttputil.NewInmemoryListener()
	hs := NewFastHTTP(srv.Handler, zap.NewNop())
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer hs.Shutdown()
	client := &fasthttp.HostClient{Addr: "callrouter", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for _, tc := range []struct{ name, method, ctype, uri, body string }{
		{"query", "GET", "", "http://callrouter/pbx/acme/route?key=bench-secret&caller=380670000042", ""},
		{"json", "POST", "application/json", "http://callrouter/pbx/acme/route?key=bench-secret",
			`{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a0000000000","caller":"380670000042"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.Header.SetMethod(tc.method)
				req.SetRequestURI(tc.uri)
				if tc.body != "" {
					req.Header.SetContentType(tc.ctype)
					req.SetBodyString(tc.body)
				}
				for pb.Next() {
					if err := client.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != 200 || string(resp.Body()) != `{"number":"anna_sip"}` {
						b.Fatalf("%d %s", resp.StatusCode(), resp.Body())
					}
				}
			})
		})
	}
}

// memTenants serves one tenant to the registry without a database, so the
// benchmarks measure the hot path only.
type memTenants struct {
	tenant domain.Tenant
	emps   []domain.Employee
}

func (m *memTenants) CreateTenant(context.Context, domain.Tenant) error { return nil }
func (m *memTenants) Tenant(_ context.Context, id string) (domain.Tenant, error) {
	if id != m.tenant.ID {
		return domain.Tenant{}, domain.Errorf(domain.ENOTFOUND, "tenant %s", id)
	}
	return m.tenant, nil
}
func (m *memTenants) ListTenants(context.Context) ([]domain.Tenant, error) {
	return []domain.Tenant{m.tenant}, nil
}
func (m *memTenants) UpdateTenant(context.Context, domain.Tenant) error  { return nil }
func (m *memTenants) PutEmployee(context.Context, domain.Employee) error { return nil }
func (m *memTenants) Employee(context.Context, string, string) (domain.Employee, error) {
	return domain.Employee{}, domain.Errorf(domain.ENOTFOUND, "employee")
}
func (m *memTenants) ListEmployees(context.Context, string) ([]domain.Employee, error) {
	return m.emps, nil
}
func (m *memTenants) DeleteEmployee(context.Context, string, string) error { return nil }
func (m *memTenants) PutStop(context.Context, domain.StopEntry) error      { return nil }
func (m *memTenants) ListStops(context.Context, string) ([]domain.StopEntry, error) {
	return nil, nil
}
func (m *memTenants) DeleteStop(context.Context, string, string) error { return nil }
