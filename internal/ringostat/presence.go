package ringostat

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
)

// Presence keeps, per tenant, the SIP logins Ringostat last said were
// online and speaking, updated between polls by call events. The route
// path reads it without locks or allocation (lookup.Presence); writers
// copy and swap.
type Presence struct {
	// staleAfter is how long a snapshot is trusted after the poll that made
	// it: polls failing for longer leave routing as if presence were off.
	staleAfter time.Duration
	mu         sync.Mutex // serializes writers
	tenants    atomic.Pointer[map[string]*atomic.Pointer[snapshot]]
}

type snapshot struct {
	online, speaking map[string]struct{}
	polledAt         time.Time
}

var _ lookup.Presence = (*Presence)(nil)

// NewPresence returns an empty Presence trusting a poll for staleAfter.
func NewPresence(staleAfter time.Duration) *Presence {
	p := &Presence{staleAfter: staleAfter}
	m := map[string]*atomic.Pointer[snapshot]{}
	p.tenants.Store(&m)
	return p
}

// Availability says whether login can take a call of tenantID now: Free,
// Busy (speaking), Offline (not online), or Unknown without a fresh poll.
// It does not allocate.
func (p *Presence) Availability(tenantID, login string, now time.Time) lookup.Availability {
	ptr := (*p.tenants.Load())[tenantID]
	if ptr == nil {
		return lookup.Unknown
	}
	s := ptr.Load()
	if s == nil || now.Sub(s.polledAt) > p.staleAfter {
		return lookup.Unknown
	}
	if _, ok := s.speaking[login]; ok {
		return lookup.Busy
	}
	if _, ok := s.online[login]; ok {
		return lookup.Free
	}
	return lookup.Offline
}

// slot returns the tenant's snapshot pointer, adding one if needed.
func (p *Presence) slot(tenantID string) *atomic.Pointer[snapshot] {
	if ptr := (*p.tenants.Load())[tenantID]; ptr != nil {
		return ptr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.tenants.Load()
	if ptr := old[tenantID]; ptr != nil {
		return ptr
	}
	m := make(map[string]*atomic.Pointer[snapshot], len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	ptr := new(atomic.Pointer[snapshot])
	m[tenantID] = ptr
	p.tenants.Store(&m)
	return ptr
}

// Polled replaces a tenant's presence with what a poll at polledAt read.
func (p *Presence) Polled(tenantID string, online, speaking []string, polledAt time.Time) {
	s := &snapshot{online: set(online), speaking: set(speaking), polledAt: polledAt}
	for l := range s.speaking {
		s.online[l] = struct{}{} // speaking implies registered
	}
	ptr := p.slot(tenantID)
	p.mu.Lock()
	defer p.mu.Unlock()
	ptr.Store(s)
}

// Forget drops a tenant's presence (its connection was removed).
func (p *Presence) Forget(tenantID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.tenants.Load()
	if _, ok := old[tenantID]; !ok {
		return
	}
	m := make(map[string]*atomic.Pointer[snapshot], len(old))
	for k, v := range old {
		if k != tenantID {
			m[k] = v
		}
	}
	p.tenants.Store(&m)
}

// Observe updates a tenant's presence from a call event between polls: an
// answered incoming call or a dialled outgoing one makes the manager's
// login speaking, the end of a call frees it. The manager is read from
// employee_number and connected_with (and caller on outgoing calls);
// values that are no login match nothing. Without a poll yet it does
// nothing: an event alone says nothing of who else is online.
func (p *Presence) Observe(tenantID string, kind domain.EventKind, fields map[string]string) {
	var speaking bool
	switch kind {
	case domain.EventCallAnswered, domain.EventOutgoingStart:
		speaking = true
	case domain.EventCallEnd, domain.EventOutgoingEnd:
	default:
		return
	}
	ptr := (*p.tenants.Load())[tenantID]
	if ptr == nil {
		return
	}
	logins := make([]string, 0, 3)
	for _, k := range []string{"employee_number", "connected_with"} {
		if v := fields[k]; v != "" && v != "-1" {
			logins = append(logins, v)
		}
	}
	if kind.Outgoing() && fields["caller"] != "" {
		logins = append(logins, fields["caller"])
	}
	if len(logins) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := ptr.Load()
	if old == nil {
		return
	}
	s := &snapshot{online: clone(old.online), speaking: clone(old.speaking), polledAt: old.polledAt}
	for _, l := range logins {
		if speaking {
			s.speaking[l] = struct{}{}
			s.online[l] = struct{}{}
		} else {
			delete(s.speaking, l)
		}
	}
	ptr.Store(s)
}

// Counts returns how many logins a tenant has online and speaking and when
// they were polled; zero time without a poll.
func (p *Presence) Counts(tenantID string) (online, speaking int, polledAt time.Time) {
	ptr := (*p.tenants.Load())[tenantID]
	if ptr == nil {
		return 0, 0, time.Time{}
	}
	s := ptr.Load()
	if s == nil {
		return 0, 0, time.Time{}
	}
	return len(s.online), len(s.speaking), s.polledAt
}

// StaleAfter returns how long a poll is trusted.
func (p *Presence) StaleAfter() time.Duration { return p.staleAfter }

func set(v []string) map[string]struct{} {
	m := make(map[string]struct{}, len(v))
	for _, s := range v {
		if s != "" {
			m[s] = struct{}{}
		}
	}
	return m
}

func clone(m map[string]struct{}) map[string]struct{} {
	out := make(map[string]struct{}, len(m)+1)
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}
