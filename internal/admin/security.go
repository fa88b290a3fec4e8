package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Webhook secret rotation bounds.
const (
	// DefaultSecretGrace is how long a rotated-out secret keeps working
	// when the rotation does not say: a day to update the PBX's webhooks.
	DefaultSecretGrace = 24 * time.Hour
	// MaxSecretGrace bounds the grace period.
	MaxSecretGrace = 30 * 24 * time.Hour
)

// BootstrapActor is the audit actor of the bootstrap admin token (the
// --admin-token flag, or the one generated at first start).
const BootstrapActor = "admin-token"

// WithCRMAllowPrivate lets integrations name CRMs on loopback, private and
// link-local addresses (--crm-allow-private); without it PutIntegration
// refuses them.
func WithCRMAllowPrivate(allow bool) Option { return func(s *Service) { s.crmAllowPrivate = allow } }

// RotatedSecret is a rotation's answer: the only time the new secret is
// shown.
type RotatedSecret struct {
	Tenant        string `json:"tenant"`
	WebhookSecret string `json:"webhook_secret"`
	// PreviousValidUntil is when the replaced secret stops working; null
	// when it stopped at once.
	PreviousValidUntil *time.Time `json:"previous_valid_until"`
}

// RotateSecret gives a tenant a new webhook secret. The replaced secret
// keeps working for in.GraceSeconds (default a day, at most 30 days; 0
// ends it at once), so the PBX and CRM webhooks can be moved over without
// missing a call. EINVALID for a bad grace, ENOTFOUND for an unknown
// tenant.
func (s *Service) RotateSecret(ctx context.Context, actor, id string, in RotateInput) (RotatedSecret, error) {
	grace := DefaultSecretGrace
	if in.GraceSeconds != nil {
		g := *in.GraceSeconds
		if g < 0 || g > int64(MaxSecretGrace/time.Second) {
			return RotatedSecret{}, domain.Errorf(domain.EINVALID, "grace_seconds: must be 0 to %d (30 days), got %d",
				int64(MaxSecretGrace/time.Second), g)
		}
		grace = time.Duration(g) * time.Second
	}
	secret, err := s.newSecret()
	if err != nil {
		return RotatedSecret{}, err
	}
	out := RotatedSecret{Tenant: id, WebhookSecret: secret}
	var until time.Time
	if grace > 0 {
		until = s.now().UTC().Add(grace).Truncate(time.Microsecond)
		out.PreviousValidUntil = &until
	}
	if err := s.store.RotateTenantSecret(ctx, id, tenant.HashSecret(secret), until); err != nil {
		return RotatedSecret{}, fmt.Errorf("rotate webhook secret: %w", err)
	}
	detail := map[string]any{"grace_seconds": int64(grace / time.Second), "previous_valid_until": out.PreviousValidUntil}
	if err := s.publish(ctx, actor, id, "tenant.secret.rotate", detail); err != nil {
		return RotatedSecret{}, err
	}
	return out, nil
}

// Principal is who an admin request acts as.
type Principal struct {
	// Actor is what the audit log records: BootstrapActor, or
	// "token:<id> (<name>)".
	Actor string
	Scope string // store.ScopeRead or store.ScopeAdmin
}

// Bootstrap returns the principal of the bootstrap admin token.
func Bootstrap() Principal { return Principal{Actor: BootstrapActor, Scope: store.ScopeAdmin} }

// Authenticate finds the admin token whose SHA-256 is hash in the store,
// on every call, so a revocation reaches every instance at once.
// EUNAUTHORIZED for an unknown or revoked token; the store's error
// otherwise.
func (s *Service) Authenticate(ctx context.Context, hash []byte) (Principal, error) {
	tok, err := s.store.AdminTokenByHash(ctx, hash)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "authorization: unknown admin token")
	case err != nil:
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	case subtle.ConstantTimeCompare(tok.Hash, hash) != 1:
		// The store matched by hash; this only guards against a store that
		// matched loosely.
		return Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "authorization: unknown admin token")
	case !tok.RevokedAt.IsZero():
		return Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "authorization: the admin token was revoked")
	}
	return Principal{Actor: tokenActor(tok), Scope: tok.Scope}, nil
}

func tokenActor(tok store.AdminToken) string { return "token:" + tok.ID + " (" + tok.Name + ")" }

// TokenView is an admin token as the admin API lists it: never the token
// or its hash.
type TokenView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scope     string     `json:"scope"`
	CreatedAt time.Time  `json:"created_at"`
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func tokenView(tok store.AdminToken) TokenView {
	v := TokenView{ID: tok.ID, Name: tok.Name, Scope: tok.Scope, CreatedAt: tok.CreatedAt, Revoked: !tok.RevokedAt.IsZero()}
	if v.Revoked {
		at := tok.RevokedAt
		v.RevokedAt = &at
	}
	return v
}

// CreatedToken is returned once, at creation: the only time the token is
// shown.
type CreatedToken struct {
	TokenView
	Token string `json:"token"`
}

// CreateToken makes an admin token (scope "read": GET and HEAD only;
// "admin": everything) and returns it once; only its SHA-256 is stored.
// EINVALID names the bad field.
func (s *Service) CreateToken(ctx context.Context, actor string, in TokenInput) (CreatedToken, error) {
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		return CreatedToken{}, domain.Errorf(domain.EINVALID, "name: required")
	case len(in.Name) > 128:
		return CreatedToken{}, domain.Errorf(domain.EINVALID, "name: longer than 128 characters")
	case strings.ContainsFunc(in.Name, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return CreatedToken{}, domain.Errorf(domain.EINVALID, "name: must not contain control characters")
	}
	if in.Scope != store.ScopeRead && in.Scope != store.ScopeAdmin {
		return CreatedToken{}, domain.Errorf(domain.EINVALID, "scope: must be %q or %q, got %q", store.ScopeRead, store.ScopeAdmin, in.Scope)
	}
	var (
		tok    store.AdminToken
		secret string
	)
	// A clash of 64-bit ids is all but impossible; one retry covers it.
	for attempt := 0; ; attempt++ {
		id, err := s.randomHex(8)
		if err != nil {
			return CreatedToken{}, err
		}
		raw, err := s.randomHex(24)
		if err != nil {
			return CreatedToken{}, err
		}
		secret = "cra_" + raw
		sum := sha256.Sum256([]byte(secret))
		tok, err = s.store.CreateAdminToken(ctx, store.AdminToken{ID: id, Name: in.Name, Scope: in.Scope, Hash: sum[:]})
		if err == nil {
			break
		}
		if domain.ErrorCode(err) != domain.ECONFLICT || attempt > 0 {
			return CreatedToken{}, fmt.Errorf("create admin token: %w", err)
		}
	}
	if err := s.audit(ctx, actor, "", "token.create", map[string]string{"id": tok.ID, "name": tok.Name, "scope": tok.Scope}); err != nil {
		return CreatedToken{}, err
	}
	return CreatedToken{TokenView: tokenView(tok), Token: secret}, nil
}

// Tokens lists the admin tokens, revoked ones too, oldest first. The
// bootstrap token is not among them. Errors are the store's.
func (s *Service) Tokens(ctx context.Context) ([]TokenView, error) {
	toks, err := s.store.ListAdminTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]TokenView, len(toks))
	for i, tok := range toks {
		out[i] = tokenView(tok)
	}
	return out, nil
}

// RevokeToken revokes an admin token: the next request with it, on any
// instance, is refused. ENOTFOUND for an unknown id.
func (s *Service) RevokeToken(ctx context.Context, actor, id string) error {
	tok, err := s.store.RevokeAdminToken(ctx, id)
	if err != nil {
		return err
	}
	return s.audit(ctx, actor, "", "token.revoke", map[string]string{"id": tok.ID, "name": tok.Name, "scope": tok.Scope})
}

// AuditAll returns up to limit (1–1000, default 100) audit entries of
// every tenant and of the instance-wide changes (admin tokens), newest
// first. Errors are the store's.
func (s *Service) AuditAll(ctx context.Context, limit int) ([]domain.AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.store.ListAudit(ctx, "", limit)
}

// audit records a change that publishes nothing to the routing registry;
// tenantID "" marks an instance-wide change.
func (s *Service) audit(ctx context.Context, actor, tenantID, action string, detail any) error {
	d, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit detail: %w", err)
	}
	if _, err := s.store.AppendAudit(ctx, domain.AuditEntry{TenantID: tenantID, Actor: actor, Action: action,
		Detail: string(d), At: s.now().UTC()}); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

func (s *Service) randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Console session actions, as the audit log records them.
const (
	ActionConsoleSignIn  = "console.sign_in"
	ActionConsoleSignOut = "console.sign_out"
)

// RecordSession writes a console sign-in or sign-out (ActionConsoleSignIn,
// ActionConsoleSignOut) of actor to the instance-wide audit log. EINVALID
// for another action; the store's errors otherwise.
func (s *Service) RecordSession(ctx context.Context, actor, action string) error {
	if action != ActionConsoleSignIn && action != ActionConsoleSignOut {
		return domain.Errorf(domain.EINVALID, "action: %q is not a console session action", action)
	}
	return s.audit(ctx, actor, "", action, map[string]string{})
}
