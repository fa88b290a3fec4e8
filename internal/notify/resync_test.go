package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// After a lost change feed, Resync with Scan rebuilds the route cache from
// the index: what another instance wrote meanwhile (its announcement lost)
// is served, and the cache stays warm instead of sending every call to the
// store. Without Scan it empties the cache.
func TestResyncRebuildsTheRouteCache(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			newCache := func() *cache.Cache {
				c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.Close)
				return c
			}
			c, other := newCache(), newCache()
			reg := tenant.NewRegistry(st)
			if _, err := admin.New(st, reg, c).CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
				t.Fatal(err)
			}
			index := func(cc *cache.Cache, id, phone, owner string) {
				t.Helper()
				err := crmsync.New(crmsync.Config{Store: st, Cache: cc, Tenants: reg}).Calls.Index(ctx, "acme",
					[]crm.Entity{{Kind: domain.KindLead, ID: id, Phones: []string{phone}, OwnerID: owner, Open: true, UpdatedAt: time.Now()}})
				if err != nil {
					t.Fatal(err)
				}
			}
			index(c, "1", "+380 67 111 11 11", "501")
			if _, err := c.Warm(ctx, st.ScanIndex); err != nil {
				t.Fatal(err)
			}
			// Another instance moves the client to 502 and indexes a new
			// one; this instance hears neither.
			index(other, "1", "+380 67 111 11 11", "502")
			index(other, "2", "+380 67 222 22 22", "503")
			owner := func(suffix string) (string, bool) {
				rows, ok := c.Get("acme", []byte(suffix), nil)
				if !ok || len(rows) == 0 {
					return "", ok
				}
				return rows[0].OwnerID, true
			}
			if o, _ := owner("671111111"); o != "501" {
				t.Fatalf("before the resync: owner %q, want the stale 501 (the test's premise)", o)
			}
			if err := (notify.Local{Tenants: reg, Cache: c, Scan: st.ScanIndex}).Resync(ctx); err != nil {
				t.Fatal(err)
			}
			for suffix, want := range map[string]string{"671111111": "502", "672222222": "503"} {
				if o, ok := owner(suffix); !ok || o != want {
					t.Errorf("after the resync: %s cached %v owner %q, want %q from the cache", suffix, ok, o, want)
				}
			}
			if err := (notify.Local{Tenants: reg, Cache: c}).Resync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok := owner("671111111"); ok {
				t.Error("a resync without Scan kept a cached key")
			}
		})
	}
}
