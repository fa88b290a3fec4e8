package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
)

// retailCRM's error messages that mean the integration cannot work until an
// admin acts, compared without their trailing period (api-client-go's tests
// quote them both with and without).
const (
	msgWrongKey      = `Wrong "apiKey" value`
	msgMissingKey    = `"apiKey" is missing`
	msgNoSuchAccount = `Account does not exist`
)

// errorBody is retailCRM's error answer.
type errorBody struct {
	ErrorMsg string          `json:"errorMsg"`
	Errors   json.RawMessage `json:"errors"`
}

// looksHTML reports whether body is an HTML page (nginx's error pages for
// accounts that are gone) rather than API JSON.
func looksHTML(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) > 0 && b[0] == '<'
}

// errorText is retailCRM's message for a failed answer: errorMsg followed by
// the errors map or list flattened, e.g. "Errors in the entity format
// (phones[0].number: invalid)"; a short note for HTML pages; the start of
// the body otherwise.
func errorText(status int, body []byte) string {
	if looksHTML(body) {
		return fmt.Sprintf("HTML answer (status %d)", status)
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		return crm.Snippet(body)
	}
	details := flattenErrors(e.Errors)
	switch {
	case e.ErrorMsg == "" && len(details) == 0:
		return crm.Snippet(body)
	case len(details) == 0:
		return e.ErrorMsg
	case e.ErrorMsg == "":
		return strings.Join(details, "; ")
	}
	return e.ErrorMsg + " (" + strings.Join(details, "; ") + ")"
}

// flattenErrors turns retailCRM's "errors" (an object of field → message,
// or a list of messages) into "field: message" strings in a stable order.
func flattenErrors(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) == nil {
		out := make([]string, 0, len(m))
		for k, v := range m {
			out = append(out, k+": "+plain(v))
		}
		sort.Strings(out)
		return out
	}
	var l []json.RawMessage
	if json.Unmarshal(raw, &l) == nil {
		out := make([]string, 0, len(l))
		for _, v := range l {
			out = append(out, plain(v))
		}
		return out
	}
	return nil
}

// plain renders a JSON value for a message: strings unquoted, the rest as
// compact JSON.
func plain(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, v) == nil {
		return b.String()
	}
	return string(v)
}

// authMessage reports whether an errorMsg says the key or the account is
// unusable.
func authMessage(msg string) bool {
	switch strings.TrimSuffix(strings.TrimSpace(msg), ".") {
	case msgWrongKey, msgMissingKey, msgNoSuchAccount:
		return true
	}
	return false
}

// isAuthFailure reports whether a failed answer means the integration's key
// or account is unusable: a wrong key (retailCRM answers 403; 401 is
// accepted too), a missing key, an account that does not exist, or the
// nginx HTML 405 page served for deleted accounts.
func isAuthFailure(status int, body []byte) bool {
	if looksHTML(body) {
		return status == http.StatusMethodNotAllowed
	}
	var e errorBody
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	switch strings.TrimSuffix(strings.TrimSpace(e.ErrorMsg), ".") {
	case msgWrongKey:
		return status == http.StatusForbidden || status == http.StatusUnauthorized
	case msgMissingKey, msgNoSuchAccount:
		return true
	}
	return false
}
