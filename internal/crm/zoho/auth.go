package zoho

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
)

// refreshTimeout bounds one token refresh: Zoho's accounts server has been
// seen to hang, and a refresh runs while callers wait for the token.
const refreshTimeout = 15 * time.Second

// defaultTokenLife is assumed when a token answer has no expires_in.
const defaultTokenLife = time.Hour

// refresher trades the refresh token for access tokens at the accounts
// server.
type refresher struct {
	endpoint     string
	clientID     string
	clientSecret string
	client       *http.Client
	now          func() time.Time
}

func newRefresher(c Credentials, transport http.RoundTripper, now func() time.Time) *refresher {
	if transport == nil {
		// accounts_url comes from the credentials: guard it like base URLs.
		transport = crm.NewTransport(false)
	}
	return &refresher{
		endpoint:     c.AccountsURL + "/oauth/v2/token",
		clientID:     c.ClientID,
		clientSecret: c.ClientSecret,
		now:          now,
		client: &http.Client{Timeout: refreshTimeout, Transport: transport,
			// Never carry the client secret to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// tokenAnswer is the accounts server's answer to a refresh.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	APIDomain   string `json:"api_domain"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	// Error is set instead of the token when the server refuses, often
	// with HTTP 200 (e.g. "invalid_code" for a revoked refresh token).
	Error       *string `json:"error"`
	Description string  `json:"error_description"`
}

// refresh implements crm.RefreshFunc. The refresh token stays the same
// (Zoho's do not rotate); the answer's api_domain is kept in
// Token.Extra["api_domain"]. Errors: *crm.AuthError when the accounts
// server refuses the refresh token or the client; a plain error for
// transport failures, server errors and throttling, which a later attempt
// may get past.
func (r *refresher) refresh(ctx context.Context, refreshToken string) (crm.Token, error) {
	// The parameters go in a form body rather than the query string Zoho's
	// examples use: the accounts server takes both, and a URL with the
	// client secret and refresh token in it could end up in an error
	// message or a proxy's log.
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {r.clientID},
		"client_secret": {r.clientSecret},
		"refresh_token": {refreshToken},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return crm.Token{}, fmt.Errorf("zoho token refresh: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return crm.Token{}, ctx.Err()
		}
		return crm.Token{}, fmt.Errorf("zoho token refresh: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return crm.Token{}, fmt.Errorf("zoho token refresh: read answer: %w", err)
	}
	var ans tokenAnswer
	jsonErr := json.Unmarshal(body, &ans)
	// An accounts server (or a proxy before it) may echo the request in
	// its error text.
	secrets := []string{r.clientSecret, refreshToken}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		return crm.Token{}, fmt.Errorf("zoho token refresh: HTTP %d: %s", resp.StatusCode, refusal(ans, jsonErr, secrets...))
	case throttled(ans):
		// Zoho allows 10 refreshes per 10 minutes per refresh token and
		// answers more with "Access Denied": the token is fine, wait.
		return crm.Token{}, fmt.Errorf("zoho token refresh: throttled: %s", refusal(ans, jsonErr, secrets...))
	case resp.StatusCode/100 == 4 || ans.Error != nil:
		return crm.Token{}, &crm.AuthError{CRM: "zoho", Status: resp.StatusCode, Message: refusal(ans, jsonErr, secrets...)}
	case resp.StatusCode != http.StatusOK:
		return crm.Token{}, fmt.Errorf("zoho token refresh: unexpected HTTP %d", resp.StatusCode)
	case jsonErr != nil:
		return crm.Token{}, fmt.Errorf("zoho token refresh: bad answer: %w", jsonErr)
	case ans.AccessToken == "":
		return crm.Token{}, errors.New("zoho token refresh: answer without access_token")
	}
	life := time.Duration(ans.ExpiresIn) * time.Second
	if life <= 0 {
		life = defaultTokenLife
	}
	tok := crm.Token{Access: ans.AccessToken, Refresh: refreshToken, Expiry: r.now().Add(life)}
	if ans.APIDomain != "" {
		tok.Extra = map[string]string{"api_domain": ans.APIDomain}
	}
	return tok, nil
}

// refusal is the accounts server's own text for a refused refresh, with
// the secrets sent cut out through crm.Redact.
func refusal(ans tokenAnswer, jsonErr error, secrets ...string) string {
	return crm.Redact(refusalText(ans, jsonErr), secrets...)
}

func refusalText(ans tokenAnswer, jsonErr error) string {
	switch {
	case jsonErr != nil || ans.Error == nil:
		return "no error text in the answer"
	case ans.Description != "":
		return *ans.Error + " (" + ans.Description + ")"
	case *ans.Error == "":
		return "error without text"
	default:
		return *ans.Error
	}
}

// throttled reports the accounts server's answer to too many refreshes.
func throttled(ans tokenAnswer) bool {
	return ans.Error != nil && strings.EqualFold(*ans.Error, "Access Denied") &&
		strings.Contains(strings.ToLower(ans.Description), "too many requests")
}
