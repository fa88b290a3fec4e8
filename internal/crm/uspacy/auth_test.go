package uspacy_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
)

// jwt returns an unsigned JWT with the claims.
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(b) + ".c2ln"
}

// isJWT reports whether s looks like a token Uspacy issued.
func isJWT(s string) bool { return strings.Count(s, ".") == 2 }

func TestSignsInOnFirstUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	if n := e.fake.SignIns(); n != 1 {
		t.Errorf("%d sign-ins, want 1", n)
	}
	if len(e.store.Saves) != 1 {
		t.Fatalf("%d token saves, want 1", len(e.store.Saves))
	}
	tok := e.store.Saves[0]
	if !isJWT(tok.Access) || !isJWT(tok.Refresh) || !tok.Expiry.Equal(t0.Add(uspacyfake.TokenTTL)) {
		t.Errorf("saved token: access %t, refresh %t, expiry %v; want a JWT pair expiring %v",
			isJWT(tok.Access), isJWT(tok.Refresh), tok.Expiry, t0.Add(uspacyfake.TokenTTL))
	}
}

func TestRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	// Within the last minute of the token's life it is refreshed first.
	e.clock.Add(uspacyfake.TokenTTL - 30*time.Second)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	if s, r := e.fake.SignIns(), e.fake.Refreshes(); s != 1 || r != 1 {
		t.Errorf("%d sign-ins and %d refreshes, want 1 and 1", s, r)
	}
	if len(e.store.Saves) != 2 || e.store.Saves[1].Refresh == e.store.Saves[0].Refresh {
		t.Errorf("saves %d, want a second with the rotated refresh token", len(e.store.Saves))
	}
	if !e.store.Token().Expiry.Equal(e.clock.Now().Add(uspacyfake.TokenTTL)) {
		t.Errorf("expiry %v, want %v", e.store.Token().Expiry, e.clock.Now().Add(uspacyfake.TokenTTL))
	}
}

func TestRefreshesOn401AndKeepsTheRotatedToken(t *testing.T) {
	t.Parallel()
	// A token pair alone: a refresh token used twice would break it.
	e := newEnv(t, pairCreds)
	// The restart below is a second process with a rate limiter of its
	// own, at once rather than after the second a real restart takes: the
	// two may together reach twice the limit in that second. Pacing is
	// not what this test is about.
	e.fake.ScaleRate(2)
	seeded := e.store.Token()
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users with the seeded access token: %v", err)
	}
	for i := 1; i <= 2; i++ {
		e.fake.ExpireAccessTokens()
		if _, err := e.src.Users(ctx(t)); err != nil {
			t.Fatalf("Users after expiry %d: %v", i, err)
		}
		if n := e.fake.Refreshes(); n != i {
			t.Errorf("%d refreshes, want %d", n, i)
		}
	}
	if len(e.store.Saves) != 2 {
		t.Fatalf("%d saves, want 2", len(e.store.Saves))
	}
	if e.store.Saves[0].Refresh == seeded.Refresh || e.store.Saves[1].Refresh == e.store.Saves[0].Refresh {
		t.Error("a refresh token was kept after use")
	}
	// A restarted process finds the pair that is valid now.
	e.fake.ExpireAccessTokens()
	if _, err := e.connect(t).Users(ctx(t)); err != nil {
		t.Errorf("Users after a restart: %v", err)
	}
	if e.fake.SignIns() != 0 {
		t.Error("signed in without application credentials")
	}
}

func TestConcurrentCallersRefreshOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	e.fake.ExpireAccessTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			_, err := e.src.Users(ctx(t))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Users: %v", err)
		}
	}
	if s, r := e.fake.SignIns(), e.fake.Refreshes(); s != 1 || r != 1 {
		t.Errorf("%d sign-ins and %d refreshes, want 1 and 1", s, r)
	}
}

func TestRefusedRefreshSignsInAgain(t *testing.T) {
	t.Parallel()
	stale := jwt(t, map[string]any{"sub": "refresh"})
	e := newEnv(t, func(f *uspacyfake.Server) json.RawMessage {
		b, _ := json.Marshal(map[string]string{"client_id": uspacyfake.ClientID, "client_secret": uspacyfake.ClientSecret, "refresh_token": stale})
		return b
	})
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	if s, r := e.fake.SignIns(), e.fake.Refreshes(); s != 1 || r != 0 {
		t.Errorf("%d sign-ins and %d refreshes, want 1 and 0", s, r)
	}
	if tok := e.store.Token(); tok.Refresh == stale || !isJWT(tok.Access) {
		t.Error("the refused refresh token is still stored")
	}
}

func TestRevokedAppIsAnAuthError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	tok := e.store.Token()
	e.fake.Revoke()
	_, err := e.src.Users(ctx(t))
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.CRM != "uspacy" || ae.Status != 401 || ae.Message != uspacyfake.MsgRevoked {
		t.Fatalf("Users after revocation = %v, want *crm.AuthError 401 %q", err, uspacyfake.MsgRevoked)
	}
	for _, secret := range []string{tok.Access, tok.Refresh, uspacyfake.ClientSecret} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q reveals a credential", err)
		}
	}
}

func TestRefusedRefreshWithoutAppCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pairCreds)
	e.fake.Revoke()
	_, err := e.src.Users(ctx(t))
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != uspacyfake.MsgBadRefresh {
		t.Fatalf("Users after revocation = %v, want *crm.AuthError %q", err, uspacyfake.MsgBadRefresh)
	}
}

func TestRevokedAppFoundOnExpiryIsAnAuthError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.src.Users(ctx(t)); err != nil {
		t.Fatalf("Users: %v", err)
	}
	e.fake.Revoke()
	e.clock.Add(uspacyfake.TokenTTL) // refreshed before the request is sent
	_, err := e.src.Users(ctx(t))
	var ae *crm.AuthError
	if !errors.As(err, &ae) || ae.Message != uspacyfake.MsgRevoked {
		t.Fatalf("Users after revocation = %v, want *crm.AuthError %q", err, uspacyfake.MsgRevoked)
	}
}
