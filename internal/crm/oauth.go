package crm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// ErrCannotRefresh is returned by an Authorizer's Refresh when it has no way
// to replace a rejected credential; the HTTP client then reports the CRM's
// rejection as an *AuthError.
var ErrCannotRefresh = errors.New("credentials cannot be refreshed")

// Token is an OAuth2 token pair as stored for an integration.
type Token struct {
	Access  string    `json:"access_token"`
	Refresh string    `json:"refresh_token"`
	Expiry  time.Time `json:"expiry"`
	// Extra keeps what a CRM returns beside the pair that later calls
	// need, such as Zoho's api_domain.
	Extra map[string]string `json:"extra,omitempty"`
}

// TokenStore persists an integration's token. Versions make the write a
// compare-and-swap, so a refreshed pair is never overwritten by an older one.
type TokenStore interface {
	// LoadToken returns the stored token and its version.
	LoadToken(ctx context.Context) (Token, int64, error)
	// SaveToken stores tok if the stored version is still version and
	// returns the new version; ECONFLICT when another writer saved first.
	SaveToken(ctx context.Context, tok Token, version int64) (int64, error)
}

// RefreshFunc trades a refresh token for a new token at the CRM. It
// returns an *AuthError when the CRM refuses the refresh token (revoked,
// expired, already used), with the CRM's own message.
type RefreshFunc func(ctx context.Context, refreshToken string) (Token, error)

// OAuth is an Authorizer for OAuth2 bearer tokens. A refresh is done by one
// caller at a time per integration, the new pair is stored before the new
// access token is used (amoCRM's refresh tokens are single-use: a pair that
// is used but not stored is a broken integration after the next restart),
// and callers that were waiting on it pick up the stored result instead of
// refreshing again.
type OAuth struct {
	store   TokenStore
	refresh RefreshFunc
	header  func(access string) (name, value string)
	now     func() time.Time
	early   time.Duration

	mu  sync.Mutex // held across a refresh
	cur Token
	ver int64
	ok  bool // cur was loaded
}

// NewOAuth returns an Authorizer over a token store. header formats the
// access token (nil: "Authorization: Bearer <token>"); tokens are refreshed
// early before they expire; now may be nil.
func NewOAuth(store TokenStore, refresh RefreshFunc, header func(string) (string, string), early time.Duration, now func() time.Time) *OAuth {
	if header == nil {
		header = func(t string) (string, string) { return "Authorization", "Bearer " + t }
	}
	if now == nil {
		now = time.Now
	}
	return &OAuth{store: store, refresh: refresh, header: header, now: now, early: early}
}

// Current returns the token in use, loading it if needed.
func (o *OAuth) Current(ctx context.Context) (Token, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.loadLocked(ctx); err != nil {
		return Token{}, err
	}
	return o.cur, nil
}

// Authorize sets the access token on req, refreshing it first when it has
// expired or is about to.
func (o *OAuth) Authorize(ctx context.Context, req *http.Request) (string, error) {
	o.mu.Lock()
	if err := o.loadLocked(ctx); err != nil {
		o.mu.Unlock()
		return "", err
	}
	tok := o.cur
	o.mu.Unlock()
	if o.expired(tok) {
		if err := o.Refresh(ctx, tok.Access); err != nil {
			return "", err
		}
		o.mu.Lock()
		tok = o.cur
		o.mu.Unlock()
	}
	k, v := o.header(tok.Access)
	req.Header.Set(k, v)
	return tok.Access, nil
}

// Refresh replaces the access token rejected, unless it was replaced
// already (in this process or, as the store shows, by another).
func (o *OAuth) Refresh(ctx context.Context, rejected string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	// Re-read the store: another instance may have refreshed, and its pair
	// is the only valid one now.
	tok, ver, err := o.store.LoadToken(ctx)
	if err != nil {
		return fmt.Errorf("load token: %w", err)
	}
	o.cur, o.ver, o.ok = tok, ver, true
	if tok.Access != rejected && tok.Access != "" && !o.expired(tok) {
		return nil
	}
	if tok.Refresh == "" {
		return ErrCannotRefresh
	}
	next, err := o.refresh(ctx, tok.Refresh)
	if err != nil {
		// Another instance may have used the same single-use refresh token
		// a moment earlier: then the CRM refuses ours, and the valid pair
		// is the one that instance stored.
		if again, ver, lerr := o.store.LoadToken(ctx); lerr == nil && again.Refresh != tok.Refresh {
			o.cur, o.ver = again, ver
			return nil
		}
		return err
	}
	if next.Refresh == "" {
		next.Refresh = tok.Refresh // Zoho keeps the refresh token
	}
	if next.Extra == nil {
		next.Extra = tok.Extra
	}
	nv, err := o.store.SaveToken(ctx, next, ver)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		// Someone stored a newer pair while we refreshed: theirs wins, ours
		// is dropped unused.
		tok, ver, err = o.store.LoadToken(ctx)
		if err != nil {
			return fmt.Errorf("load token: %w", err)
		}
		o.cur, o.ver = tok, ver
		return nil
	}
	if err != nil {
		return fmt.Errorf("store refreshed token: %w", err)
	}
	o.cur, o.ver = next, nv
	return nil
}

func (o *OAuth) loadLocked(ctx context.Context) error {
	if o.ok {
		return nil
	}
	tok, ver, err := o.store.LoadToken(ctx)
	if err != nil {
		return fmt.Errorf("load token: %w", err)
	}
	o.cur, o.ver, o.ok = tok, ver, true
	return nil
}

func (o *OAuth) expired(t Token) bool {
	return t.Access == "" || !t.Expiry.IsZero() && !o.now().Add(o.early).Before(t.Expiry)
}

// StaticKey is an Authorizer for API keys that never change (retailCRM's
// X-API-KEY, amoCRM's long-lived tokens).
type StaticKey struct {
	Header string // e.g. X-API-KEY or Authorization
	Value  string // e.g. the key, or "Bearer <token>"
}

// Authorize sets the key.
func (k StaticKey) Authorize(_ context.Context, req *http.Request) (string, error) {
	req.Header.Set(k.Header, k.Value)
	return k.Value, nil
}

// Refresh always fails: a static key the CRM rejects needs an admin.
func (k StaticKey) Refresh(context.Context, string) error { return ErrCannotRefresh }
