package lookup

import (
	"context"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
)

// stubPresence answers from a fixed map; logins it lacks are Unknown.
type stubPresence map[string]Availability

func (p stubPresence) Availability(_, login string, _ time.Time) Availability { return p[login] }

func TestPresence(t *testing.T) {
	caller := []byte("380671234567")
	owned := []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "anna", true)}
	byPhone := []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "boris", true)}
	unmapped := []domain.IndexEntry{entry("380671234567", domain.KindLead, "L1", "ghost", true)}
	skipOffline := func(s *domain.Settings) { s.Presence = domain.PresenceSkipOffline }
	skipBusy := func(s *domain.Settings) { s.Presence = domain.PresenceSkipOfflineAndBusy }
	next := func(s *domain.Settings) { s.Presence, s.OnUnavailable = domain.PresenceSkipOffline, domain.PolicyNext }
	tests := []struct {
		name     string
		mut      func(*domain.Settings)
		rows     []domain.IndexEntry
		presence stubPresence
		target   string
		reason   Reason
	}{
		{"presence off ignores an offline owner", nil, owned, stubPresence{"sip_anna": Offline}, "sip_anna", ReasonOwner},
		{"online owner", skipOffline, owned, stubPresence{"sip_anna": Free, "sip_boss": Free}, "sip_anna", ReasonOwner},
		{"offline owner goes to the default owner", skipOffline, owned, stubPresence{"sip_anna": Offline, "sip_boss": Free},
			"sip_boss", ReasonOwnerOffline},
		{"offline owner, next", next, owned, stubPresence{"sip_anna": Offline, "sip_boss": Free}, "", ReasonOwnerOffline},
		{"offline owner and offline default owner", skipOffline, owned,
			stubPresence{"sip_anna": Offline, "sip_boss": Offline}, "", ReasonOwnerOffline},
		{"busy owner with skip_offline keeps the call", skipOffline, owned, stubPresence{"sip_anna": Busy}, "sip_anna", ReasonOwner},
		{"busy owner with skip_offline_and_busy", skipBusy, owned, stubPresence{"sip_anna": Busy, "sip_boss": Free},
			"sip_boss", ReasonOwnerBusy},
		{"stale or unknown presence is never trusted", skipBusy, owned, stubPresence{}, "sip_anna", ReasonOwner},
		{"a phone target has no presence", skipOffline, byPhone, stubPresence{"380502222222": Offline}, "380502222222", ReasonOwner},
		{"an unmapped owner's default owner offline", skipOffline, unmapped, stubPresence{"sip_boss": Offline}, "", ReasonOwnerOffline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{MaxItems: 1000, NegativeTTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			src := &memSource{rows: tc.rows}
			s := New(c, src, time.Second).WithPresence(tc.presence)
			got := s.Route(context.Background(), testTenant(tc.mut, staff...), caller, time.Now())
			if got.Target != tc.target || got.Reason != tc.reason {
				t.Fatalf("got %q/%s, want %q/%s", got.Target, got.Reason, tc.target, tc.reason)
			}
		})
	}
}

// TestPresenceHitAllocs: the presence check keeps a cache hit free of
// allocations.
func TestPresenceHitAllocs(t *testing.T) {
	c, err := cache.New(cache.Config{MaxItems: 1000, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	num := "380671234567"
	c.Fill(c.Epoch(), "acme", phone.Suffix(num), Rows([]domain.IndexEntry{entry(num, domain.KindLead, "L1", "anna", true)}))
	c.Wait()
	s := New(c, &memSource{}, time.Second).WithPresence(stubPresence{"sip_anna": Offline, "sip_boss": Free})
	tc := testTenant(func(s *domain.Settings) { s.Presence = domain.PresenceSkipOffline }, staff...)
	caller, now := []byte(num), time.Now()
	if r := s.Route(context.Background(), tc, caller, now); r.Reason != ReasonOwnerOffline || r.Target != "sip_boss" {
		t.Fatalf("route: %q/%s", r.Target, r.Reason)
	}
	if n := testing.AllocsPerRun(200, func() { s.Route(context.Background(), tc, caller, now) }); n != 0 {
		t.Fatalf("a presence-checked cache hit allocates %.1f times", n)
	}
}
