package admin

import (
	"context"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
)

// Status is what an admin checks on a tenant at a glance.
type Status struct {
	Tenant       string       `json:"tenant"`
	Name         string       `json:"name"`
	IndexSize    int          `json:"index_size"`
	Employees    int          `json:"employees"`
	StopList     int          `json:"stop_list"`
	DefaultOwner DefaultOwner `json:"default_owner"`
	Cache        CacheStatus  `json:"cache"`
	Integration  Integration  `json:"integration"`
	// Events counts the tenant's call events by state: the backlog is
	// Waiting, the failures Failed, the drops Dropped.
	Events domain.EventStats `json:"events"`
}

// CacheStatus reports the route cache of this instance; the counters are
// process-wide, the cache being shared by all tenants.
type CacheStatus struct {
	Ready        bool    `json:"ready"`
	HitRatio     float64 `json:"hit_ratio"`
	Hits         uint64  `json:"hits"`
	NegativeHits uint64  `json:"negative_hits"`
	Misses       uint64  `json:"misses"`
}

// Integration is the tenant's CRM connection, "not_configured" when the
// phone index is filled by contacts import only.
type Integration struct {
	State string `json:"state"`
	*IntegrationView
}

// Status returns a tenant's status. ENOTFOUND.
func (s *Service) Status(ctx context.Context, id string) (Status, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return Status{}, err
	}
	n, err := s.store.CountIndex(ctx, id)
	if err != nil {
		return Status{}, err
	}
	emps, err := s.store.ListEmployees(ctx, id)
	if err != nil {
		return Status{}, err
	}
	stops, err := s.store.ListStops(ctx, id)
	if err != nil {
		return Status{}, err
	}
	owner, err := s.DefaultOwner(ctx, id)
	if err != nil {
		return Status{}, err
	}
	integ := Integration{State: "not_configured"}
	if in, err := s.store.Integration(ctx, id); err == nil {
		v := integrationView(in)
		integ = Integration{State: in.State, IntegrationView: &v}
	} else if domain.ErrorCode(err) != domain.ENOTFOUND {
		return Status{}, err
	}
	evs, err := s.store.EventStats(ctx, id)
	if err != nil {
		return Status{}, err
	}
	cs := cache.ReadStats()
	return Status{
		Tenant: t.ID, Name: t.Name, IndexSize: n, Employees: len(emps), StopList: len(stops), DefaultOwner: owner,
		Cache: CacheStatus{Ready: s.cache.Ready(), HitRatio: cs.HitRatio(), Hits: cs.Hits,
			NegativeHits: cs.NegativeHits, Misses: cs.Misses},
		Integration: integ,
		Events:      evs,
	}, nil
}
