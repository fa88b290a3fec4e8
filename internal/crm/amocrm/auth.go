package amocrm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
)

// refresher trades refresh tokens at amoCRM's OAuth endpoint.
type refresher struct {
	http  *crm.HTTP // shares the API's limiter
	creds Credentials
	now   func() time.Time
}

// tokenAnswer is amoCRM's answer to a token request.
type tokenAnswer struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// refresh is the crm.RefreshFunc: POST /oauth2/access_token with
// grant_type=refresh_token. Errors: *crm.AuthError with amoCRM's hint when
// it refuses (400/401), the errors of crm.HTTP.Do, and an error for an
// answer without a token pair. The token never appears in an error.
func (r *refresher) refresh(ctx context.Context, refreshToken string) (crm.Token, error) {
	body, err := json.Marshal(map[string]string{
		"client_id":     r.creds.ClientID,
		"client_secret": r.creds.ClientSecret,
		"grant_type":    "refresh_token",
		"refresh_token": refreshToken,
		"redirect_uri":  r.creds.RedirectURI,
	})
	if err != nil {
		return crm.Token{}, fmt.Errorf("%s: encode token request: %w", name, err)
	}
	// A POST is not retried after a transport error (crm.HTTP), which is
	// right here: amoCRM may have used up the refresh token already.
	resp, err := r.http.Do(ctx, crm.Request{Method: http.MethodPost, Path: "/oauth2/access_token",
		Body: body, ContentType: "application/json"})
	if err != nil {
		return crm.Token{}, err
	}
	var a tokenAnswer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return crm.Token{}, fmt.Errorf("%s: decode token answer (HTTP %d): %w", name, resp.Status, err)
	}
	if a.AccessToken == "" || a.RefreshToken == "" {
		return crm.Token{}, fmt.Errorf("%s: token answer (HTTP %d) lacks access_token or refresh_token", name, resp.Status)
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") {
		return crm.Token{}, fmt.Errorf("%s: token answer has token_type %q, want Bearer", name, a.TokenType)
	}
	tok := crm.Token{Access: a.AccessToken, Refresh: a.RefreshToken}
	if a.ExpiresIn > 0 {
		tok.Expiry = r.now().Add(time.Duration(a.ExpiresIn) * time.Second)
	}
	return tok, nil
}
