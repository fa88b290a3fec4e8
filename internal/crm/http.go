package crm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Authorizer puts an integration's credentials on requests.
type Authorizer interface {
	// Authorize sets the credentials on req and returns the token it used,
	// so that a rejection can name it.
	Authorize(ctx context.Context, req *http.Request) (token string, err error)
	// Refresh replaces a token the CRM rejected, unless another caller
	// already did. It returns an *AuthError when the CRM refuses.
	Refresh(ctx context.Context, rejected string) error
}

// HTTPConfig configures an HTTP client for one integration.
type HTTPConfig struct {
	CRM     string // name used in errors
	BaseURL string // checked with CheckBaseURL
	Auth    Authorizer
	// RPS is the CRM's documented request rate; the client stays a little
	// under it so that clock skew between us and the CRM never makes a
	// burst look like a violation. 0 means unlimited.
	RPS float64
	// Limiter, when set, is used instead of one made from RPS, so that
	// several clients (an adapter's token calls, say) share one limit.
	Limiter *Limiter
	// Concurrency bounds requests in flight (Zoho's concurrency limits);
	// 0 means unbounded.
	Concurrency int
	// Timeout bounds one attempt; default 10 s.
	Timeout time.Duration
	// Retries is how many times a 429/503 (any method) or a 5xx or
	// transport error (GET only, other methods may have been applied) is
	// retried; default 3.
	Retries int
	// ErrorText extracts the CRM's error message from a failed answer.
	ErrorText func(status int, body []byte) string
	// IsAuthFailure reports whether an answer means the credentials were
	// rejected; default: status 401.
	IsAuthFailure func(status int, body []byte) bool
	// Transport carries the requests; nil means NewTransport(false), which
	// refuses private and local addresses. Tests with fakes on loopback
	// pass NewTransport(true). Sleep is for tests; it waits out backoffs.
	Transport http.RoundTripper
	Sleep     func(ctx context.Context, d time.Duration) error
}

// HTTP sends one integration's requests with its auth, rate limit,
// concurrency bound and retry policy. It is safe for concurrent use.
type HTTP struct {
	cfg     HTTPConfig
	base    string
	client  *http.Client
	limiter *Limiter
	sem     chan struct{}
}

// headroom keeps the request rate this much under the documented limit,
// so a full sync uses more than 90 % of it; Limiter's slots keep it from
// ever going above.
const headroom = 0.92

// maxResponseBytes bounds what is read of one answer.
const maxResponseBytes = 32 << 20

// NewHTTP returns a client for cfg. EINVALID for a bad base URL.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.IsAuthFailure == nil {
		cfg.IsAuthFailure = func(status int, _ []byte) bool { return status == http.StatusUnauthorized }
	}
	if cfg.ErrorText == nil {
		cfg.ErrorText = func(_ int, body []byte) string { return Snippet(body) }
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(false)
	}
	h := &HTTP{cfg: cfg, base: u.String(), client: &http.Client{Timeout: cfg.Timeout, Transport: cfg.Transport,
		// A CRM never legitimately redirects an API call elsewhere, and
		// following one would carry the token to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	switch {
	case cfg.Limiter != nil:
		h.limiter = cfg.Limiter
	case cfg.RPS > 0:
		h.limiter = NewLimiter(cfg.RPS)
	}
	if cfg.Concurrency > 0 {
		h.sem = make(chan struct{}, cfg.Concurrency)
	}
	return h, nil
}

// Request is one CRM call.
type Request struct {
	Method      string
	Path        string // appended to the base URL
	Query       url.Values
	Header      http.Header
	Body        []byte
	ContentType string
	// Limiter replaces the client's limiter for this call; nil keeps it.
	Limiter *Limiter
}

// Response is a successful (2xx or 304) CRM answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r: it waits for the rate limit and a concurrency slot, retries
// what may be retried, refreshes a rejected token once, and returns the
// answer for a 2xx or 304 status. Errors: *AuthError when the credentials
// are rejected, *StatusError for other failed answers, the context's error
// when it ends first, a wrapped transport error otherwise.
func (h *HTTP) Do(ctx context.Context, r Request) (*Response, error) {
	refreshed := false
	for attempt := 0; ; attempt++ {
		resp, token, err := h.once(ctx, r)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// A refresh refused before anything was sent is final: retrying
			// would only ask the CRM's token endpoint again.
			if IsAuth(err) {
				return nil, err
			}
			if errors.Is(err, ErrCannotRefresh) {
				return nil, &AuthError{CRM: h.cfg.CRM, Status: http.StatusUnauthorized, Message: "no usable token and nothing to refresh it with; reconnect the integration"}
			}
			// The URL in a transport error may carry a key in its query.
			err = redactURLError(err)
			if r.Method != http.MethodGet || attempt >= h.cfg.Retries || IsAddressRefused(err) {
				return nil, fmt.Errorf("%s %s %s: %w", h.cfg.CRM, r.Method, r.Path, err)
			}
			wait = backoff(attempt)
		case resp.Status/100 == 2 || resp.Status == http.StatusNotModified:
			return resp, nil
		case h.cfg.IsAuthFailure(resp.Status, resp.Body):
			rejected := &AuthError{CRM: h.cfg.CRM, Status: resp.Status,
				Message: Redact(h.cfg.ErrorText(resp.Status, resp.Body), requestSecrets(token, r)...)}
			if refreshed || h.cfg.Auth == nil {
				return nil, rejected
			}
			if err := h.cfg.Auth.Refresh(ctx, token); errors.Is(err, ErrCannotRefresh) {
				return nil, rejected
			} else if err != nil {
				return nil, err
			}
			refreshed = true
			attempt-- // a refresh is not a retry
			continue
		case (resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable ||
			resp.Status >= 500 && r.Method == http.MethodGet) && attempt < h.cfg.Retries:
			wait = retryAfter(resp.Header.Get("Retry-After"), time.Now())
			if wait <= 0 {
				wait = backoff(attempt)
			}
		default:
			msg := h.cfg.ErrorText(resp.Status, resp.Body)
			if loc := resp.Header.Get("Location"); resp.Status/100 == 3 && loc != "" {
				// Where it points tells the admin what is wrong with the
				// base URL (an old domain, a login page).
				msg = "redirects to " + RedactURL(loc) + "; " + msg
			}
			return nil, &StatusError{CRM: h.cfg.CRM, Method: r.Method, Path: r.Path, Status: resp.Status,
				Message: Redact(msg, requestSecrets(token, r)...)}
		}
		if err := h.cfg.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// once sends one attempt.
func (h *HTTP) once(ctx context.Context, r Request) (*Response, string, error) {
	u := h.base + r.Path
	if len(r.Query) > 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + r.Query.Encode()
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, body)
	if err != nil {
		return nil, "", err
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	req.Header.Set("Accept", "application/json")
	// Authorize before taking a rate-limit slot: a request that waits on a
	// token refresh after its slot was granted would go out late, bunched
	// with the ones behind it, and break the CRM's per-second limit.
	var token string
	if h.cfg.Auth != nil {
		if token, err = h.cfg.Auth.Authorize(ctx, req); err != nil {
			return nil, "", err
		}
	}
	lim := h.limiter
	if r.Limiter != nil {
		lim = r.Limiter
	}
	if lim != nil {
		release, err := lim.Acquire(ctx)
		if err != nil {
			return nil, "", err
		}
		defer release()
	}
	if h.sem != nil {
		select {
		case h.sem <- struct{}{}:
			defer func() { <-h.sem }()
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, token, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, token, fmt.Errorf("read answer: %w", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, token, nil
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped
// at five minutes; 0 when absent or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 5*time.Minute)
}

// backoff is 1 s, 2 s, 4 s ... capped at 30 s.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(attempt, 5), 30*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snippet returns the start of a body for an error message, on one line.
func Snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // CRM errors are often Cyrillic: never cut a letter in half
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// IsAuth reports whether err is an *AuthError.
func IsAuth(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}
