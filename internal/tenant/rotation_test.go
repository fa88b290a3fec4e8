package tenant_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// fakeClock is a settable clock for the grace period.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// After a rotation the registry accepts the old secret until its grace
// period ends by the registry's clock, and the new one throughout.
func TestRotatedSecretGracePeriod(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	reg := tenant.NewRegistry(st, tenant.WithNow(clk.Now))
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "a", Name: "A", Settings: domain.DefaultSettings(),
		SecretHash: tenant.HashSecret("old-secret")}); err != nil {
		t.Fatal(err)
	}
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if c := reg.Lookup("a"); !c.CheckKey([]byte("old-secret")) || !c.PreviousSecretUntil().IsZero() {
		t.Fatalf("before rotation: CheckKey(old) false or a previous secret: %v", c.PreviousSecretUntil())
	}

	until := clk.Now().Add(time.Hour)
	if err := st.RotateTenantSecret(ctx, "a", tenant.HashSecret("new-secret"), until); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	c := reg.Lookup("a")
	if !c.PreviousSecretUntil().Equal(until) {
		t.Fatalf("PreviousSecretUntil = %v, want %v", c.PreviousSecretUntil(), until)
	}
	for _, step := range []struct {
		at       time.Duration // after the rotation
		old, new bool
	}{
		{0, true, true},
		{59 * time.Minute, true, true},
		{time.Hour - time.Nanosecond, true, true},
		{time.Hour, false, true}, // the grace period is over at its end
		{2 * time.Hour, false, true},
	} {
		clk.Set(until.Add(-time.Hour).Add(step.at))
		if got := c.CheckKey([]byte("old-secret")); got != step.old {
			t.Errorf("%v after the rotation: CheckKey(old) = %v, want %v", step.at, got, step.old)
		}
		if got := c.CheckKey([]byte("new-secret")); got != step.new {
			t.Errorf("%v after the rotation: CheckKey(new) = %v, want %v", step.at, got, step.new)
		}
		if c.CheckKey([]byte("other")) || c.CheckKey(nil) {
			t.Errorf("%v after the rotation: a wrong or empty key is accepted", step.at)
		}
	}

	// A rotation without grace ends the replaced secret at once.
	clk.Set(until.Add(-30 * time.Minute))
	if err := st.RotateTenantSecret(ctx, "a", tenant.HashSecret("third-secret"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	c = reg.Lookup("a")
	if c.CheckKey([]byte("new-secret")) || c.CheckKey([]byte("old-secret")) || !c.CheckKey([]byte("third-secret")) {
		t.Fatal("after a rotation without grace, a replaced secret still works or the new one does not")
	}
}

// Checking a key allocates nothing, whether it is the current secret, the
// previous one or wrong: it runs on every live call.
func TestCheckKeyDoesNotAllocate(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c := tenant.Build(domain.Tenant{ID: "a", Settings: domain.DefaultSettings(), SecretHash: tenant.HashSecret("cur"),
		PrevSecretHash: tenant.HashSecret("prev"), PrevSecretUntil: now.Add(time.Hour)}, nil, nil)
	for _, key := range []string{"cur", "prev", "wrong"} {
		k := []byte(key)
		if n := testing.AllocsPerRun(100, func() { c.CheckKey(k) }); n != 0 {
			t.Errorf("CheckKey(%s) allocates %v times", key, n)
		}
	}
	// Build judges the grace period by the real clock.
	if got, want := c.CheckKey([]byte("prev")), time.Now().Before(now.Add(time.Hour)); got != want {
		t.Errorf("Build's Config: CheckKey(prev) = %v, want %v by time.Now", got, want)
	}
}

// The last accepted key is remembered to skip the hash on the next request;
// that memory must not let anything else in: a key of the same length that
// differs, a prefix, or the remembered key after a rotation replaced it.
func TestRememberedKeyAcceptsOnlyItself(t *testing.T) {
	c := tenant.Build(domain.Tenant{ID: "a", Settings: domain.DefaultSettings(), SecretHash: tenant.HashSecret("secret-0001")}, nil, nil)
	for range 2 { // the second round runs on the remembered key
		if !c.CheckKey([]byte("secret-0001")) {
			t.Fatal("current secret refused")
		}
		for _, k := range []string{"secret-0002", "secret-000", "secret-00011", ""} {
			if c.CheckKey([]byte(k)) {
				t.Fatalf("CheckKey(%q) accepted after %q was remembered", k, "secret-0001")
			}
		}
	}
	rotated := tenant.Build(domain.Tenant{ID: "a", Settings: domain.DefaultSettings(), SecretHash: tenant.HashSecret("secret-0002")}, nil, nil)
	if rotated.CheckKey([]byte("secret-0001")) || !rotated.CheckKey([]byte("secret-0002")) {
		t.Fatal("a rotated snapshot accepts the old remembered key or refuses the new one")
	}
}
