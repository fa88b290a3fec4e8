package crm

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Deps are what an adapter gets from callrouter besides its Config.
type Deps struct {
	// Tokens keeps OAuth tokens; required by OAuth adapters.
	Tokens TokenStore
	// Limiters, when set, outlive this Source (see Limiters).
	Limiters *Limiters
	// RateScale multiplies every rate the adapter keeps to; 0 means 1.
	// Tests against fakes whose meters are scaled alike (crmtest.Fake's
	// ScaleRate) set it so that a limit is still enforced and still
	// checked, without the test waiting out a real CRM's pace.
	RateScale float64
	// Transport, Sleep and Now are for tests; nil means the real ones.
	Transport http.RoundTripper
	Sleep     func(ctx context.Context, d time.Duration) error
	Now       func() time.Time
}

// Adapter describes one CRM to the rest of callrouter. Each adapter
// package exports one.
type Adapter struct {
	// Name is the value of the integration's "crm" field.
	Name string
	// Check validates credentials and names the bad or missing field
	// (EINVALID).
	Check func(creds json.RawMessage) error
	// Seed returns the token pair an OAuth integration starts from; ok is
	// false for CRMs without tokens.
	Seed func(creds json.RawMessage) (tok Token, ok bool)
	// New connects to one account. EINVALID for bad credentials or base URL.
	New func(cfg Config, deps Deps) (Source, error)
	// MinInterval is the least time between two scheduled incremental
	// syncs, for CRMs that charge every call against a daily quota; webhooks
	// still apply at once. Zero: the server's sync interval alone decides.
	MinInterval time.Duration
}

// Limiters are the rate limiters of one integration by endpoint group.
// The engine keeps them per tenant across reconnections, so a Source
// rebuilt after a credentials change does not start with a fresh burst
// while the old one's requests still count at the CRM.
type Limiters struct {
	// Shared, when set, shares the slots of every limiter among the
	// instances on one database, each group under Account + "/" + its name.
	Shared  SlotStore
	Account string

	mu  sync.Mutex
	set map[string]*Limiter
}

// Get returns the limiter of group name, made at rps (with the client's
// headroom) on first use.
func (l *Limiters) Get(name string, rps float64) *Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil {
		l.set = map[string]*Limiter{}
	}
	lim := l.set[name]
	if lim == nil {
		lim = NewLimiter(rps)
		if l.Shared != nil {
			lim.shared, lim.account = l.Shared, l.Account+"/"+name
		}
		l.set[name] = lim
	}
	return lim
}

// Limiter returns the integration's limiter of group name: the shared one
// when the caller keeps Limiters, else a new one.
func (d Deps) Limiter(name string, rps float64) *Limiter {
	if d.RateScale > 0 {
		rps *= d.RateScale
	}
	if d.Limiters != nil {
		return d.Limiters.Get(name, rps)
	}
	return NewLimiter(rps)
}
