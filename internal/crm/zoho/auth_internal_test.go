package zoho

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
)

// An accounts server that echoes the request in its refusal (as some
// proxies and misconfigured gateways do) does not get the client secret
// or the refresh token into the stored and shown error: the refusal goes
// through crm.Redact like every other CRM's error text.
func TestRefusalEchoingTheRequestIsRedacted(t *testing.T) {
	const (
		clientSecret = "cs-0123456789abcdef"
		refreshToken = "1000.rt-fedcba9876543210"
	)
	for _, c := range []struct {
		name   string
		status int
	}{{"refused", http.StatusBadRequest}, {"refused with 200", http.StatusOK}, {"server error", http.StatusBadGateway}} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"client_secret=` +
					r.PostForm.Get("client_secret") + `&refresh_token=` + r.PostForm.Get("refresh_token") + `"}`))
			}))
			defer srv.Close()
			r := newRefresher(Credentials{ClientID: "1000.CLIENT", ClientSecret: clientSecret, AccountsURL: srv.URL},
				http.DefaultTransport, func() time.Time { return time.Unix(1e9, 0) })
			_, err := r.refresh(context.Background(), refreshToken)
			if err == nil {
				t.Fatal("refresh succeeded against a refusal")
			}
			if strings.Contains(err.Error(), clientSecret) || strings.Contains(err.Error(), refreshToken) {
				t.Fatalf("error carries a secret: %v", err)
			}
			if !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "[redacted]") {
				t.Fatalf("error %q lost Zoho's words or the redaction mark", err)
			}
			var ae *crm.AuthError
			if c.status != http.StatusBadGateway && !errors.As(err, &ae) {
				t.Fatalf("error %v, want *crm.AuthError", err)
			}
		})
	}
}
