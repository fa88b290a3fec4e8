package crmsync

// Connections to the tenants' CRMs: built from sealed credentials, cached
// while the integration's configuration holds, and the integration's state
// when a CRM rejects them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
)

// Conns holds each tenant's connected crm.Source and the credentials and
// token behind it. It is safe for concurrent use.
type Conns struct {
	store    store.Store
	adapters map[string]crm.Adapter
	box      *secret.Box
	deps     crm.Deps
	log      *zap.Logger

	mu      sync.Mutex
	sources map[string]*conn // by tenant
	limits  map[string]*crm.Limiters
}

func newConns(st store.Store, adapters []crm.Adapter, box *secret.Box, deps crm.Deps, log *zap.Logger) *Conns {
	c := &Conns{store: st, adapters: map[string]crm.Adapter{}, box: box, deps: deps, log: log,
		sources: map[string]*conn{}, limits: map[string]*crm.Limiters{}}
	for _, a := range adapters {
		c.adapters[a.Name] = a
	}
	return c
}

// conn is a connected Source and the configuration it was built from.
// Progress and token saves leave the configuration alone, so the Source,
// and with it the HTTP client's rate limiter, lives across pages and syncs.
type conn struct {
	src    crm.Source
	config string
	// registered is set once the source registered callrouter as the
	// CRM's telephony integration (crm.Registrar); a new conn (connect,
	// activation, restart) registers again before its first write.
	registered atomic.Bool
}

// configKey identifies an integration's configuration; sealed credentials
// differ on every PUT (fresh nonce), so a re-connect always rebuilds.
func configKey(in store.Integration) string {
	return in.CRM + "\x00" + in.BaseURL + "\x00" + string(in.Creds)
}

// Adapter returns the adapter named crm.
func (c *Conns) Adapter(name string) (crm.Adapter, bool) {
	a, ok := c.adapters[name]
	return a, ok
}

// CRMs returns the names of the supported CRMs, sorted.
func (c *Conns) CRMs() []string {
	names := make([]string, 0, len(c.adapters))
	for n := range c.adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Seal encrypts a tenant's credentials or token for the store.
func (c *Conns) Seal(tenantID, purpose string, plaintext []byte) []byte {
	return c.box.Seal(plaintext, aad(tenantID, purpose))
}

func aad(tenantID, purpose string) []byte { return []byte(tenantID + "\x00" + purpose) }

// source returns the connected Source of a tenant's integration, building
// it again when the integration changed.
func (c *Conns) source(ctx context.Context, tenantID string) (crm.Source, store.Integration, error) {
	in, err := c.store.Integration(ctx, tenantID)
	if err != nil {
		return nil, in, err
	}
	c.mu.Lock()
	cn := c.sources[tenantID]
	c.mu.Unlock()
	if cn != nil && cn.config == configKey(in) {
		return cn.src, in, nil
	}
	a, ok := c.adapters[in.CRM]
	if !ok {
		return nil, in, domain.Errorf(domain.EINVALID, "crm: %q is not supported", in.CRM)
	}
	creds, err := c.box.Open(in.Creds, aad(tenantID, "creds"))
	if err != nil {
		return nil, in, fmt.Errorf("open credentials of %s: %w", tenantID, err)
	}
	deps := c.deps
	deps.Tokens = &tokenStore{c: c, tenantID: tenantID}
	c.mu.Lock()
	if c.limits[tenantID] == nil {
		lims := &crm.Limiters{Account: tenantID}
		// On PostgreSQL several instances may talk to this account: they
		// share its rate limit through the database.
		if ss, ok := c.store.(crm.SlotStore); ok {
			lims.Shared = ss
		}
		c.limits[tenantID] = lims
	}
	deps.Limiters = c.limits[tenantID]
	c.mu.Unlock()
	src, err := a.New(crm.Config{CRM: in.CRM, BaseURL: in.BaseURL, Creds: creds}, deps)
	if err != nil {
		return nil, in, err
	}
	c.mu.Lock()
	c.sources[tenantID] = &conn{src: src, config: configKey(in)}
	c.mu.Unlock()
	return src, in, nil
}

// activeSource is the tenant's connection when its integration is active.
// crm.ErrInactive (wrapped) when there is none, or it is inactive or
// broken; the store's or the adapter's error otherwise.
func (c *Conns) activeSource(ctx context.Context, tenantID string) (crm.Source, store.Integration, error) {
	src, in, err := c.source(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, in, fmt.Errorf("tenant %s has no integration: %w", tenantID, crm.ErrInactive)
	}
	if err != nil {
		return nil, in, err
	}
	if in.State != store.IntegrationActive {
		return nil, in, fmt.Errorf("integration of %s is %s: %w", tenantID, in.State, crm.ErrInactive)
	}
	return src, in, nil
}

// Forget drops the cached connection of a tenant (after a config change).
func (c *Conns) Forget(tenantID string) {
	c.mu.Lock()
	delete(c.sources, tenantID)
	c.mu.Unlock()
}

// tokenStore keeps one integration's OAuth token sealed in the store.
type tokenStore struct {
	c        *Conns
	tenantID string
}

func (t *tokenStore) LoadToken(ctx context.Context) (crm.Token, int64, error) {
	in, err := t.c.store.Integration(ctx, t.tenantID)
	if err != nil {
		return crm.Token{}, 0, err
	}
	var tok crm.Token
	if len(in.Token) > 0 {
		pt, err := t.c.box.Open(in.Token, aad(t.tenantID, "token"))
		if err != nil {
			return crm.Token{}, 0, fmt.Errorf("open token of %s: %w", t.tenantID, err)
		}
		if err := json.Unmarshal(pt, &tok); err != nil {
			return crm.Token{}, 0, fmt.Errorf("decode token of %s: %w", t.tenantID, err)
		}
	}
	return tok, in.TokenVersion, nil
}

func (t *tokenStore) SaveToken(ctx context.Context, tok crm.Token, version int64) (int64, error) {
	pt, err := json.Marshal(tok)
	if err != nil {
		return 0, fmt.Errorf("encode token: %w", err)
	}
	return t.c.store.SaveIntegrationToken(ctx, t.tenantID, t.c.Seal(t.tenantID, "token", pt), version)
}

// Broken marks a tenant's integration broken with the CRM's words after it
// rejected the credentials outside a sync (a call event's write). It
// returns the store's error.
func (c *Conns) Broken(ctx context.Context, tenantID string, ae *crm.AuthError) error {
	brokenTotal.Inc()
	c.log.Warn("integration broken: the CRM rejected the credentials", zap.String("tenant", tenantID), zap.String("crm_error", ae.Message))
	return c.store.SetIntegrationState(ctx, tenantID, store.IntegrationBroken, ae.Message, false)
}

// changed reports whether an admin changed the integration since in was
// read (Put and SetIntegrationState stamp UpdatedAt; progress and token
// saves do not).
func (c *Conns) changed(ctx context.Context, in store.Integration) (bool, error) {
	cur, err := c.store.Integration(ctx, in.TenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-read integration of %s: %w", in.TenantID, err)
	}
	return !cur.UpdatedAt.Equal(in.UpdatedAt), nil
}

// failed records a failed cycle (or webhook); an authentication failure
// also breaks the integration until an admin reconnects it. Nothing is
// recorded when the integration changed meanwhile: the failure belongs to
// a configuration that no longer exists.
func (c *Conns) failed(ctx context.Context, in store.Integration, phase, cursor string, synced int, err error) error {
	tenantID := in.TenantID
	if changed, cerr := c.changed(context.WithoutCancel(ctx), in); cerr != nil || changed {
		return errors.Join(err, cerr)
	}
	syncErrors.Inc()
	msg := err.Error()
	var ae *crm.AuthError
	if errors.As(err, &ae) {
		brokenTotal.Inc()
		msg = ae.Message
		if serr := c.store.SetIntegrationState(ctx, tenantID, store.IntegrationBroken, msg, false); serr != nil {
			return errors.Join(err, serr)
		}
		c.log.Warn("integration broken: the CRM rejected the credentials", zap.String("tenant", tenantID), zap.String("crm_error", msg))
	}
	if serr := c.store.SaveSyncProgress(context.WithoutCancel(ctx), tenantID,
		store.SyncProgress{Phase: phase, Cursor: cursor, Synced: synced, Error: msg}); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}
