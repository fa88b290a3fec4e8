package admin_test

import (
	"context"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
)

// admin status shows the tenant's own cache figures on this instance, not
// the process's, and an admin change (which rebuilds the tenant's routing
// view) does not reset them.
func TestStatusShowsTheTenantsOwnCacheFigures(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	for _, id := range []string{"acme", "other"} {
		if _, err := w.svc.CreateTenant(ctx, "test", admin.NewTenant{ID: id, Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	other := w.reg.Lookup("other")
	for range 3 {
		c.GetCounted("other", []byte("671234567"), nil, other.CacheCounts)
	}
	if _, err := w.svc.PatchTenant(ctx, "test", "other", admin.TenantPatch{Name: new("Other")}); err != nil {
		t.Fatal(err)
	}
	c.GetCounted("other", []byte("671234567"), nil, w.reg.Lookup("other").CacheCounts)
	st, err := w.svc.Status(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cache.Misses != 4 || st.Cache.Hits != 0 {
		t.Errorf("other's cache figures = %+v, want 4 misses kept across the update", st.Cache)
	}
	st, err = w.svc.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cache.Misses != 0 || st.Cache.Hits != 0 || st.Cache.HitRatio != 0 {
		t.Errorf("acme's cache figures = %+v, want none (other's lookups are not acme's)", st.Cache)
	}
}
