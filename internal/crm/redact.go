package crm

import (
	"encoding/json"
	"net/url"
	"strings"
)

// Errors of CRM calls end up in logs, in the integration's last error and
// in admin API answers, so they must never carry what authenticates the
// call: the token or API key, nor credentials sent in a query string or a
// token request's body. The CRM's own error text is kept (admins need it)
// but with any of those values it echoes cut out.

// redacted replaces a secret in error texts.
const redacted = "[redacted]"

// minSecret is the shortest value treated as a secret: shorter ones (a
// "1" in grant_type=…) would cut ordinary words out of messages.
const minSecret = 6

// secretName reports whether a parameter of that name carries a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"key", "token", "secret", "password", "passwd", "auth", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return n == "code" // an OAuth authorization code
}

// requestSecrets returns the secrets one request carries: the token its
// Authorizer set (with and without its "Bearer " scheme), the values of
// secret-named query parameters, and those of a form or JSON body.
func requestSecrets(token string, r Request) []string {
	var out []string
	add := func(v string) {
		if v = strings.TrimSpace(v); len(v) >= minSecret {
			out = append(out, v)
		}
	}
	add(token)
	if _, t, ok := strings.Cut(token, " "); ok {
		add(t)
	}
	for k, vs := range r.Query {
		if secretName(k) {
			for _, v := range vs {
				add(v)
			}
		}
	}
	if len(r.Body) == 0 {
		return out
	}
	switch ct := strings.ToLower(r.ContentType); {
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if q, err := url.ParseQuery(string(r.Body)); err == nil {
			for k, vs := range q {
				if secretName(k) {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
	case strings.Contains(ct, "json"):
		var m map[string]any
		if json.Unmarshal(r.Body, &m) == nil {
			for k, v := range m {
				if s, ok := v.(string); ok && secretName(k) {
					add(s)
				}
			}
		}
	}
	return out
}

// Redact returns msg with every secret in it, as sent or URL-encoded,
// replaced by "[redacted]": the one redaction path of every CRM's error
// texts (the HTTP client's for API calls, an adapter's own for token
// requests it makes outside it). Values shorter than six characters are
// left alone, so a short one cannot cut ordinary words out of a message.
func Redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s = strings.TrimSpace(s); len(s) < minSecret {
			continue
		}
		msg = strings.ReplaceAll(msg, s, redacted)
		// The CRM may echo a value URL-encoded, as it was sent.
		if e := url.QueryEscape(s); e != s {
			msg = strings.ReplaceAll(msg, e, redacted)
		}
	}
	return msg
}

// RedactURL returns raw without what may authenticate a request: user
// information, and the query string's values (the names stay, they help
// debugging). A raw that does not parse is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"x"}
		}
		u.RawQuery = strings.ReplaceAll(q.Encode(), "=x", "="+redacted)
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redactURLError returns err with the URL of the *url.Error the HTTP
// client wraps every failure in passed through RedactURL; other errors
// are returned as they are.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
	}
	return err
}
