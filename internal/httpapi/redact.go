package httpapi

import (
	"bytes"
	"regexp"
	"strings"
)

// fasthttp logs the connections it cannot serve and quotes the start of
// the request it could not parse, query string and headers included, so
// its log lines can hold a tenant's webhook secret (?key=) or an admin
// token. redactLog masks them before the line reaches the logger.
var (
	// Query parameters whose name says they hold a secret: key, api_key,
	// token, access_token, secret...
	secretParam = regexp.MustCompile(`(?i)([?&;][a-z0-9_.-]*(?:key|token|secret|password)[a-z0-9_.-]*=)[^&\s"\\]*`)
	// Headers that carry credentials; in fasthttp's quoted snippets a
	// header ends at the escaped \r\n.
	secretHeader = regexp.MustCompile(`(?i)((?:authorization|proxy-authorization|x-router-key|x-api-key|cookie)\s*:\s*)[^\r\n"\\]*`)
)

// redactLog returns msg with request secrets masked. A header-parse error's
// "contents:" snippet is dropped whole: fasthttp cuts long buffers in the
// middle, and the second half may start inside a secret with nothing left
// to recognise it by.
func redactLog(msg string) string {
	if i := strings.Index(msg, "contents: "); i >= 0 {
		msg = msg[:i+len("contents: ")] + "[omitted]"
	}
	msg = secretParam.ReplaceAllString(msg, "${1}[redacted]")
	return secretHeader.ReplaceAllString(msg, "${1}[redacted]")
}

// Webhook secrets a body may carry: a `key` form field or JSON member
// (Ringostat sends the URL's static parameters in the body too when told
// so, and a mistaken setup puts the secret there).
var (
	bodyFormKey = regexp.MustCompile(`(?i)((?:^|[&;])key=)[^&;]*`)
	bodyJSONKey = regexp.MustCompile(`(?i)("key"\s*:\s*)"(?:[^"\\]|\\.)*"`)
)

// redactBody returns a copy of a rejected body fit to be stored and shown:
// without the secret the request presented (in the query or a header),
// wherever the body repeats it, and without the value of any `key` field.
func redactBody(body, presented []byte) []byte {
	out := bytes.Clone(body)
	if len(presented) >= 6 {
		out = bytes.ReplaceAll(out, presented, []byte("[redacted]"))
	}
	out = bodyFormKey.ReplaceAll(out, []byte("${1}[redacted]"))
	return bodyJSONKey.ReplaceAll(out, []byte(`${1}"[redacted]"`))
}
