package uspacy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
)

// signInMarker stands in for a refresh token when an integration has only
// application credentials: crm.OAuth hands it to refresh like any refresh
// token, and refresh signs in instead. Uspacy's refresh tokens are JWTs,
// which never contain a colon, so it cannot collide with one.
const signInMarker = "uspacy:app_sign_in"

// tokenAnswer is what app_sign_in and refresh_token answer.
type tokenAnswer struct {
	JWT             string  `json:"jwt"`
	RefreshToken    string  `json:"refreshToken"`
	ExpireInSeconds flexInt `json:"expireInSeconds"`
}

// refresh is the integration's crm.RefreshFunc. It trades refreshToken for
// a new pair; when the CRM refuses it and the integration has application
// credentials, or when refreshToken is signInMarker, it signs in instead.
// Errors: *crm.AuthError with Uspacy's message when the CRM refuses both
// (or the only one it can try), other errors for transport trouble, which
// leave the integration as it is.
func (s *source) refresh(ctx context.Context, refreshToken string) (crm.Token, error) {
	if refreshToken != signInMarker {
		tok, err := s.exchange(ctx, "/auth/v1/auth/refresh_token/",
			http.Header{"Authorization": {"Bearer " + refreshToken}}, nil)
		if err == nil || !crm.IsAuth(err) || !s.creds.hasApp() {
			return tok, err
		}
		// Refused: revoked, expired, or already used by a process that died
		// before storing its successor. The application can sign in anew.
	}
	if !s.creds.hasApp() {
		return crm.Token{}, &crm.AuthError{CRM: name, Status: http.StatusUnauthorized,
			Message: "the integration has no application credentials to sign in with; reconnect it"}
	}
	body, err := json.Marshal(map[string]string{"client_id": s.creds.ClientID, "client_secret": s.creds.ClientSecret})
	if err != nil {
		return crm.Token{}, err
	}
	return s.exchange(ctx, "/auth/v1/auth/app_sign_in", nil, body)
}

// exchange posts to one of the auth endpoints and reads the new token pair.
// Neither the request's credentials nor the answer's tokens ever reach an
// error.
func (s *source) exchange(ctx context.Context, path string, h http.Header, body []byte) (crm.Token, error) {
	req := crm.Request{Method: http.MethodPost, Path: path, Header: h, Body: body, Limiter: s.lim}
	if body != nil {
		req.ContentType = "application/json"
	}
	resp, err := s.auth.Do(ctx, req)
	if err != nil {
		return crm.Token{}, err
	}
	var a tokenAnswer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return crm.Token{}, fmt.Errorf("%s %s: answer is not the expected JSON", name, path)
	}
	if a.JWT == "" {
		return crm.Token{}, fmt.Errorf("%s %s: answer carries no jwt", name, path)
	}
	tok := crm.Token{Access: a.JWT, Refresh: a.RefreshToken}
	if a.ExpireInSeconds > 0 {
		tok.Expiry = s.now().Add(time.Duration(a.ExpireInSeconds) * time.Second)
	} else {
		tok.Expiry = jwtExpiry(a.JWT)
	}
	return tok, nil
}

// jwtExpiry returns the exp claim of a JWT, zero when it has none or is not
// a JWT. The signature is not checked: the token is only ever sent back to
// the CRM that issued it, and this only decides when to refresh early.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp flexInt `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(claims.Exp), 0).UTC()
}
