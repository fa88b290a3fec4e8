// Package adminclient is a small client of callrouter's admin API, used by
// the `router admin` command.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// Client calls the admin API of one callrouter instance.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // admin bearer token
	HTTP    *http.Client
}

// New returns a client with a 60 s timeout (imports can be large).
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends a request to /admin/v1/<path> and returns the response body. A
// non-2xx answer becomes a *domain.Error with the server's code and message.
// Path segments must already be escaped (see Seg).
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+"/admin/v1/"+strings.TrimLeft(path, "/"), rd)
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin request %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("admin response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
			return nil, &domain.Error{Code: e.Error.Code, Message: e.Error.Message}
		}
		return nil, fmt.Errorf("admin request %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(out))
	}
	return out, nil
}

// JSON sends v as a JSON body.
func (c *Client) JSON(ctx context.Context, method, path string, v any) ([]byte, error) {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	return c.Do(ctx, method, path, "application/json", body)
}

// Seg escapes one path segment.
func Seg(s string) string { return url.PathEscape(s) }

// RotateSecret gives a tenant a new webhook secret and returns the
// server's answer with it; the old secret keeps working for grace (0: not
// at all). Errors as Do's.
func (c *Client) RotateSecret(ctx context.Context, tenant string, grace time.Duration) ([]byte, error) {
	if grace < 0 {
		return nil, fmt.Errorf("rotate secret: grace must not be negative, got %s", grace)
	}
	return c.JSON(ctx, http.MethodPost, "tenants/"+Seg(tenant)+"/secret/rotate",
		map[string]int64{"grace_seconds": int64(grace / time.Second)})
}

// CreateToken creates an admin token with scope "read" or "admin" and
// returns the server's answer, the only one holding the token. Errors as
// Do's.
func (c *Client) CreateToken(ctx context.Context, name, scope string) ([]byte, error) {
	return c.JSON(ctx, http.MethodPost, "tokens", map[string]string{"name": name, "scope": scope})
}

// Tokens lists the admin tokens. Errors as Do's.
func (c *Client) Tokens(ctx context.Context) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, "tokens", "", nil)
}

// RevokeToken revokes an admin token by id. Errors as Do's.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, "tokens/"+Seg(id), "", nil)
	return err
}

// Audit returns up to limit audit entries of every tenant and of the
// instance-wide changes. Errors as Do's.
func (c *Client) Audit(ctx context.Context, limit int) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, "audit?limit="+strconv.Itoa(limit), "", nil)
}
