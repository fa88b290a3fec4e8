// Package tenant keeps the routing view of every tenant in memory: an
// immutable Config per tenant, rebuilt from the store on each admin change
// and swapped in atomically, so the route hot path reads it without locks.
package tenant

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
)

// Config is the immutable routing view of one tenant. Never modify a Config
// after the Registry published it; build a new one instead.
type Config struct {
	ID       string
	Name     string
	Settings domain.Settings
	// Region is the phone fast path's entry for Settings.DefaultCountry; nil
	// when the tenant has no default country or the fast path has no entry.
	Region *phone.Region
	// Location is the tenant's time zone (Settings.Location), loaded once.
	Location *time.Location
	// Budget is route_budget_ms as a duration.
	Budget time.Duration
	// OwnerOrder, OnMissDefault and OnUnmappedDefault are Settings decoded
	// for the decision loop.
	OwnerOrder        []domain.EntityKind
	OnMissDefault     bool
	OnUnmappedDefault bool
	// Targets maps a CRM user id to the SIP login or phone to ring. Users
	// the CRM lists as inactive, or no longer lists, have none: routing
	// treats their entities as unmapped (on_unmapped).
	Targets map[string]string
	// users maps each CRM user id of the CRM's last users list to whether
	// the user is active; nil while the list was never read (see Active).
	users map[string]bool
	// DefaultOwner is the default owner's CRM user id, DefaultTarget what to
	// ring for them ("" when unset or unmapped).
	DefaultOwner  string
	DefaultTarget string
	// Staff maps an employee's SIP login and phone (E.164 digits) to their
	// CRM user id, to find the manager a call event names.
	Staff map[string]string
	// SIPLogins holds the employees' SIP logins, the targets presence-aware
	// routing checks (a phone target has no presence).
	SIPLogins map[string]struct{}
	// Presence and OnUnavailableDefault are the presence settings decoded
	// for the route path.
	Presence             string
	OnUnavailableDefault bool
	// Stops maps the stop-list numbers (E.164 digits or SIP logins) to
	// their kind.
	Stops map[string]domain.StopKind
	// CallerKeys are the request parameters the route handler reads the
	// caller from, in order, compiled once so the hot path does no string
	// work.
	CallerKeys []CallerKey
	// AnswerOpen and AnswerClose wrap the target in the route answer's JSON
	// (`{"number":"` and `"}`, with the tenant's response field).
	AnswerOpen, AnswerClose []byte
	// CacheCounts are the tenant's route cache hits and misses on this
	// instance; the Registry hands them from a Config to the one that
	// replaces it, so an admin change does not reset them.
	CacheCounts *cache.Counts

	secretHash [sha256.Size]byte
	// prevHash is the secret a rotation replaced, accepted while now() is
	// before prevUntil; hasPrev is 1 when there is one (an int, to take
	// part in the constant-time comparison).
	prevHash  [sha256.Size]byte
	prevUntil time.Time
	hasPrev   int
	now       func() time.Time
	// lastKey is the last key that matched the current secret, kept so the
	// next request with the same key is checked by a constant-time compare
	// instead of a SHA-256 (a few percent of a cache hit's CPU). It lives
	// only in memory and dies with this snapshot, i.e. with a rotation.
	lastKey atomic.Pointer[[]byte]
}

// CheckKey reports whether key is the tenant's webhook secret, or the
// secret a rotation replaced while its grace period lasts. Both hashes are
// compared in constant time, whichever matches. It does not allocate.
func (c *Config) CheckKey(key []byte) bool {
	// Equal lengths are compared in constant time; a key of another length
	// takes the hashed path below, which is constant time too.
	if last := c.lastKey.Load(); last != nil && len(*last) == len(key) && subtle.ConstantTimeCompare(*last, key) == 1 {
		return true
	}
	sum := sha256.Sum256(key)
	cur := subtle.ConstantTimeCompare(sum[:], c.secretHash[:])
	prev := subtle.ConstantTimeCompare(sum[:], c.prevHash[:]) & c.hasPrev
	if cur == 1 {
		k := bytes.Clone(key)
		c.lastKey.Store(&k)
		return true
	}
	// The clock is read only for a key that is not the current secret,
	// which keeps it off the hot path of every accepted request.
	return prev == 1 && c.now().Before(c.prevUntil)
}

// PreviousSecretUntil returns when the secret the last rotation replaced
// stops being accepted; zero when there is none.
func (c *Config) PreviousSecretUntil() time.Time {
	if c.hasPrev == 0 {
		return time.Time{}
	}
	return c.prevUntil
}

// HashSecret returns the stored form of a webhook secret.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Build derives a Config from a tenant, its employees and its stop list,
// with every user taken as active. The previous secret's grace period is
// judged by time.Now; a Registry uses its own clock.
func Build(t domain.Tenant, emps []domain.Employee, stops []domain.StopEntry) *Config {
	return BuildWithUsers(t, emps, stops, nil)
}

// BuildWithUsers is Build knowing the CRM's users as its users call last
// listed them: an employee or default owner whose user is listed inactive,
// or not listed at all, gets no routing target (see Config.Active). An
// empty list means unknown, and every user counts as active: a CRM account
// always has a user, so it is never a real answer.
func BuildWithUsers(t domain.Tenant, emps []domain.Employee, stops []domain.StopEntry, users []store.CRMUser) *Config {
	s := t.Settings
	s.Normalize()
	c := &Config{
		ID:                   t.ID,
		Name:                 t.Name,
		Settings:             s,
		Location:             s.Location(),
		Budget:               time.Duration(s.RouteBudgetMS) * time.Millisecond,
		OwnerOrder:           s.OwnerOrder,
		OnMissDefault:        s.OnMiss == domain.PolicyDefaultOwner,
		OnUnmappedDefault:    s.OnUnmapped == domain.PolicyDefaultOwner,
		Targets:              make(map[string]string, len(emps)),
		DefaultOwner:         t.DefaultOwner,
		Stops:                make(map[string]domain.StopKind, len(stops)),
		Staff:                make(map[string]string, 2*len(emps)),
		SIPLogins:            make(map[string]struct{}, len(emps)),
		Presence:             s.Presence,
		OnUnavailableDefault: s.OnUnavailable == domain.PolicyDefaultOwner,
		CallerKeys:           CompileCallerKeys(s.CallerKeys()),
		now:                  time.Now,
	}
	field, _ := json.Marshal(s.ResponseField) // a string always marshals
	c.AnswerOpen, c.AnswerClose = []byte(`{`+string(field)+`:"`), []byte(`"}`)
	if r, ok := phone.RegionFor(s.DefaultCountry); ok {
		c.Region = r
	}
	copy(c.secretHash[:], t.SecretHash)
	if len(t.PrevSecretHash) > 0 && !t.PrevSecretUntil.IsZero() {
		copy(c.prevHash[:], t.PrevSecretHash)
		c.prevUntil, c.hasPrev = t.PrevSecretUntil, 1
	}
	if len(users) > 0 {
		c.users = make(map[string]bool, len(users))
		for _, u := range users {
			c.users[u.ID] = u.Active
		}
	}
	for _, e := range emps {
		if target := e.Target(); target != "" && c.Active(e.CRMUserID) {
			c.Targets[e.CRMUserID] = target
		}
		if e.SIP != "" {
			c.SIPLogins[e.SIP] = struct{}{}
		}
		for _, k := range []string{e.SIP, e.Phone} {
			if k != "" {
				c.Staff[k] = e.CRMUserID
			}
		}
	}
	c.DefaultTarget = c.Targets[t.DefaultOwner]
	for _, s := range stops {
		kind := s.Kind
		if kind == "" {
			kind = domain.StopLine
		}
		c.Stops[s.Number] = kind
	}
	return c
}

// CallerKey is one request parameter the caller may be read from: its
// query, form and header name, its JSON path, and its header spelling with
// '-' for '_'.
type CallerKey struct {
	Name   string   // as configured; also the query, form and header name
	Path   []string // Name split on '.', the JSON path
	Header string   // Name with '_' replaced by '-', "" when that is Name itself or Name is dotted
}

// CompileCallerKeys compiles a tenant's caller parameter names, in order.
// Blank names are skipped; when none is left the defaults are used,
// because a route request must always have somewhere to read the caller
// from.
func CompileCallerKeys(names []string) []CallerKey {
	keys := make([]CallerKey, 0, len(names))
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		k := CallerKey{Name: name, Path: strings.Split(name, ".")}
		if len(k.Path) == 1 && strings.IndexByte(name, '_') >= 0 {
			k.Header = strings.ReplaceAll(name, "_", "-")
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return CompileCallerKeys(domain.DefaultCallerKeys)
	}
	return keys
}

// Source is the part of the store the registry reads. A Source that also
// implements store.CRMUsers (every store does) has its CRM users list
// applied (BuildWithUsers).
type Source interface {
	store.Tenants
	store.Employees
	store.StopList
}

// Registry publishes the current Config of every tenant.
type Registry struct {
	src Source
	now func() time.Time

	mu  sync.Mutex // serializes rebuilds so a slow reload cannot undo a newer one
	cur atomic.Pointer[map[string]*Config]
}

// Option configures a Registry.
type Option func(*Registry)

// WithNow sets the clock that decides whether a replaced webhook secret is
// still in its grace period (time.Now by default).
func WithNow(now func() time.Time) Option { return func(r *Registry) { r.now = now } }

// NewRegistry returns an empty registry reading from src.
func NewRegistry(src Source, opts ...Option) *Registry {
	r := &Registry{src: src, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	m := map[string]*Config{}
	r.cur.Store(&m)
	return r
}

// Get returns the Config of a tenant, or nil. It does not allocate.
func (r *Registry) Get(id []byte) *Config {
	return (*r.cur.Load())[string(id)]
}

// Lookup is Get for a string id.
func (r *Registry) Lookup(id string) *Config {
	return (*r.cur.Load())[id]
}

// Len returns the number of tenants published.
func (r *Registry) Len() int { return len(*r.cur.Load()) }

// LoadAll rebuilds every tenant from the store and publishes them at once.
// It returns the store's error and leaves the registry unchanged on failure.
func (r *Registry) LoadAll(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts, err := r.src.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	m := make(map[string]*Config, len(ts))
	for _, t := range ts {
		c, err := r.build(ctx, t, (*r.cur.Load())[t.ID])
		if err != nil {
			return err
		}
		m[t.ID] = c
	}
	r.cur.Store(&m)
	return nil
}

// Reload rebuilds one tenant from the store and publishes it; a tenant that
// no longer exists is removed. It returns the store's error and leaves the
// registry unchanged on failure.
func (r *Registry) Reload(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.src.Tenant(ctx, id)
	var c *Config
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
	case err != nil:
		return fmt.Errorf("load tenant %s: %w", id, err)
	default:
		if c, err = r.build(ctx, t, (*r.cur.Load())[id]); err != nil {
			return err
		}
	}
	old := *r.cur.Load()
	m := make(map[string]*Config, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if c == nil {
		delete(m, id)
	} else {
		m[id] = c
	}
	r.cur.Store(&m)
	return nil
}

// build makes t's Config, keeping the cache counters of prev, the Config
// it replaces (nil for a new tenant).
func (r *Registry) build(ctx context.Context, t domain.Tenant, prev *Config) (*Config, error) {
	emps, err := r.src.ListEmployees(ctx, t.ID)
	if err != nil {
		return nil, fmt.Errorf("load employees of %s: %w", t.ID, err)
	}
	stops, err := r.src.ListStops(ctx, t.ID)
	if err != nil {
		return nil, fmt.Errorf("load stop list of %s: %w", t.ID, err)
	}
	var users []store.CRMUser
	if us, ok := r.src.(store.CRMUsers); ok {
		if users, err = us.ListCRMUsers(ctx, t.ID); err != nil {
			return nil, fmt.Errorf("load CRM users of %s: %w", t.ID, err)
		}
	}
	c := BuildWithUsers(t, emps, stops, users)
	c.now = r.now
	c.CacheCounts = new(cache.Counts)
	if prev != nil && prev.CacheCounts != nil {
		c.CacheCounts = prev.CacheCounts
	}
	return c, nil
}

// Employee returns the CRM user id of the employee with SIP login or phone
// number; the number is tried as given and normalized with the tenant's
// default country.
func (c *Config) Employee(number string) (string, bool) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", false
	}
	if id, ok := c.Staff[number]; ok {
		return id, true
	}
	if n, err := phone.Ingest(number, c.Settings.DefaultCountry); err == nil {
		id, ok := c.Staff[n]
		return id, ok
	}
	return "", false
}

// Stopped reports whether a client's number (normalized) is on the stop
// list, of either kind: a project line at the client end of a call is an
// internal call, which creates nothing either.
func (c *Config) Stopped(number string) bool {
	_, ok := c.Stops[number]
	return ok
}

// StoppedLine reports whether number, a line or an employee's SIP login or
// phone as a call event names it, is a project line on the stop list. It
// is tried as given (a SIP login) and normalized with the tenant's default
// country (a phone).
func (c *Config) StoppedLine(number string) bool {
	number = strings.TrimSpace(number)
	if number == "" {
		return false
	}
	if kind, ok := c.Stops[number]; ok {
		return kind == domain.StopLine
	}
	if n, err := phone.Ingest(number, c.Settings.DefaultCountry); err == nil {
		return c.Stops[n] == domain.StopLine
	}
	return false
}

// Active reports whether a CRM user may be given calls and work: false
// when the CRM's last users list shows the user deactivated or does not
// have it (removed); true for everyone while no list was read.
func (c *Config) Active(userID string) bool {
	if c.users == nil {
		return true
	}
	return c.users[userID]
}
