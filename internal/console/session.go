// Package console is the admin console in the browser: its embedded
// assets (plain HTML, CSS and JavaScript, no build step), its sign-in
// sessions, and the live board of calls fed from call events.
//
// The console has no API of its own beyond signing in and out: its pages
// call the admin API (/admin/v1/...) with the session cookie in place of a
// bearer token, so every change goes through the same admin service, the
// same scope checks and the same audit log as the API and the CLI.
//
// A session is a signed cookie that names the admin token it was opened
// with (by the token's SHA-256, never the token), so every request is
// authenticated again against the token: revoking the token ends its
// sessions on every instance at once. Changes need the session's CSRF token
// in the X-CSRF-Token header on top of the SameSite=Strict cookie.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// CookieName is the session cookie's name.
const CookieName = "callrouter_session"

// DefaultSessionTTL is how long a session lasts from sign-in.
const DefaultSessionTTL = 8 * time.Hour

// metaKey holds the key that signs sessions, shared by every instance on
// the database so a session opened on one is honoured by all.
const metaKey = "console_session_key"

// metaSignedOut prefixes the meta keys that record ended sessions until
// their expiry.
const metaSignedOut = "console_signed_out:"

// Sessions issues and checks console sessions. It is safe for concurrent
// use.
type Sessions struct {
	key  []byte
	meta store.Meta
	now  func() time.Time
	ttl  time.Duration
}

// Session is a verified console session.
type Session struct {
	// ID is random; it names the session in the sign-out record.
	ID string
	// TokenHash is the SHA-256 of the admin token the session was opened
	// with; requests are authenticated with it.
	TokenHash []byte
	Expires   time.Time
	// CSRF is what a change must send in X-CSRF-Token.
	CSRF string
}

// NewSessions loads the signing key from meta, creating it on first use.
// now and ttl may be nil and zero (time.Now, DefaultSessionTTL). Errors are
// the store's, or a corrupt stored key.
func NewSessions(ctx context.Context, meta store.Meta, now func() time.Time, ttl time.Duration) (*Sessions, error) {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	for {
		v, err := meta.GetMeta(ctx, metaKey)
		if err == nil {
			k, err := hex.DecodeString(v)
			if err != nil || len(k) != 32 {
				return nil, errors.New("console: stored session key is corrupt")
			}
			return &Sessions{key: k, meta: meta, now: now, ttl: ttl}, nil
		}
		if domain.ErrorCode(err) != domain.ENOTFOUND {
			return nil, fmt.Errorf("console: read session key: %w", err)
		}
		k := make([]byte, 32)
		_, _ = rand.Read(k) // crypto/rand.Read never fails (Go ≥ 1.24)
		if _, err := meta.SetMetaIfAbsent(ctx, metaKey, hex.EncodeToString(k)); err != nil {
			return nil, fmt.Errorf("console: store session key: %w", err)
		}
		// Read it back: another instance may have stored its key first.
	}
}

var b64 = base64.RawURLEncoding

// Issue opens a session for the admin token whose SHA-256 is tokenHash and
// returns the cookie value and the session.
func (s *Sessions) Issue(tokenHash []byte) (string, Session) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	sess := Session{ID: b64.EncodeToString(id), TokenHash: append([]byte(nil), tokenHash...),
		Expires: s.now().Add(s.ttl).Truncate(time.Second)}
	payload := "v1." + sess.ID + "." + strconv.FormatInt(sess.Expires.Unix(), 10) + "." + b64.EncodeToString(sess.TokenHash)
	sess.CSRF = s.csrf(sess.ID)
	return payload + "." + b64.EncodeToString(s.mac("session", payload)), sess
}

// Verify checks a cookie value: its signature, its expiry, and that it was
// not signed out. EUNAUTHORIZED for any of those; the store's error when
// the sign-out record cannot be read.
func (s *Sessions) Verify(ctx context.Context, cookie []byte) (Session, error) {
	bad := domain.Errorf(domain.EUNAUTHORIZED, "session: invalid or expired; sign in again")
	i := bytes.LastIndexByte(cookie, '.')
	if i < 0 || len(cookie) > 512 {
		return Session{}, bad
	}
	payload := string(cookie[:i])
	sig, err := b64.DecodeString(string(cookie[i+1:]))
	if err != nil || !hmac.Equal(sig, s.mac("session", payload)) {
		return Session{}, bad
	}
	parts := bytes.Split([]byte(payload), []byte("."))
	if len(parts) != 4 || string(parts[0]) != "v1" {
		return Session{}, bad
	}
	exp, err := strconv.ParseInt(string(parts[2]), 10, 64)
	if err != nil || !s.now().Before(time.Unix(exp, 0)) {
		return Session{}, bad
	}
	hash, err := b64.DecodeString(string(parts[3]))
	if err != nil || len(hash) != sha256.Size {
		return Session{}, bad
	}
	sess := Session{ID: string(parts[1]), TokenHash: hash, Expires: time.Unix(exp, 0), CSRF: s.csrf(string(parts[1]))}
	switch _, err := s.meta.GetMeta(ctx, metaSignedOut+sess.ID); {
	case err == nil:
		return Session{}, bad
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		return Session{}, fmt.Errorf("console: read sign-out record: %w", err)
	}
	return sess, nil
}

// CheckCSRF reports whether token is the session's CSRF token, in constant
// time.
func (s *Sessions) CheckCSRF(sess Session, token []byte) bool {
	return len(token) > 0 && subtle.ConstantTimeCompare(token, []byte(sess.CSRF)) == 1
}

// End signs a session out: its cookie is refused from now on, on every
// instance, even if a copy of it survives in a browser. Errors are the
// store's.
func (s *Sessions) End(ctx context.Context, sess Session) error {
	if err := s.meta.SetMeta(ctx, metaSignedOut+sess.ID, sess.Expires.UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("console: record sign-out: %w", err)
	}
	return nil
}

func (s *Sessions) csrf(id string) string { return b64.EncodeToString(s.mac("csrf", id)) }

func (s *Sessions) mac(purpose, msg string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(msg))
	return m.Sum(nil)
}
