// Package ringostat talks to the API of a tenant's Ringostat project: it
// pushes the phone index to Ringostat Smart Phone and the contact book
// (POST /minicrm/contacts/sync), keeps the SIP logins' presence in memory
// for routing (GET /sipstatus/online, /sipstatus/speaking), and reads the
// call log (GET /calls/list) to recover call events whose webhook never
// arrived.
//
// API facts and their sources (help.ringostat.com articles 6312678 (call
// log export), 9221318 (sending information to Smart Phone), 6312685
// (call-back); public clients selesnow/ringostat and
// devSviat/Ringostat-OkayCMS):
//   - base https://api.ringostat.net; headers Auth-key (the project's API
//     key) and x-project-id (documented for minicrm, harmless elsewhere);
//     401 = bad Auth-key, 403 = access denied.
//   - /calls/list takes from/to as "YYYY-MM-DD HH:MM:SS", fields as a comma
//     list, export_type json, and returns at most 6,500 calls per request;
//     calldate comes as "2019-06-02T09:30:47+0300", numbers as integers, and
//     calls still in progress are listed too.
//   - /minicrm/contacts/sync takes {"contacts":[…]} with projectId an
//     integer; staffId, googleClientId and organizations are required but
//     may be null.
//
// Unconfirmed (no public source; chosen to be safe on a real account):
//   - the shape of /sipstatus answers beyond "a list of logins": a JSON
//     array of strings is read, and arrays of objects with a login field;
//   - the time zone of from/to (UTC is sent; any fixed zone keeps windows
//     contiguous, see Reconcile) and what happens above 6,500 calls
//     (refusal or truncation: a window that returns 6,500 is split either way);
//   - whether contacts/sync replaces a contact's directions or adds to them
//     (every push sends all of an entity's phones);
//   - a rate limit: none is published; pushes are paced by PushRate.
package ringostat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callrouter/callrouter/internal/domain"
)

// DefaultBaseURL is Ringostat's API.
const DefaultBaseURL = "https://api.ringostat.net"

// MaxCallsPerRequest is the most calls /calls/list returns for one request.
const MaxCallsPerRequest = 6500

// Bounds of the bodies read from Ringostat: a full call-log page of 6,500
// calls with the fields asked for stays well under maxCallsBody.
const (
	maxCallsBody = 32 << 20
	maxSmallBody = 1 << 20
)

// TimeLayout is how /calls/list takes from and to.
const TimeLayout = "2006-01-02 15:04:05"

// Client calls one Ringostat project's API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     string
	project string
	hc      *http.Client
}

// NewClient returns a client for the project at baseURL (DefaultBaseURL
// when empty) using hc, whose transport should be the guarded one of
// crm.NewTransport. EINVALID names a bad base_url, auth_key or project_id.
func NewClient(baseURL, authKey, projectID string, hc *http.Client) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, domain.Errorf(domain.EINVALID, "base_url: must be an http(s) URL")
	}
	if err := CheckKey(authKey); err != nil {
		return nil, err
	}
	if err := CheckProject(projectID); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, key: authKey, project: projectID, hc: hc}, nil
}

// CheckKey refuses an Auth-key that cannot be sent as a header. EINVALID
// names auth_key.
func CheckKey(key string) error {
	if key == "" || len(key) > 256 {
		return domain.Errorf(domain.EINVALID, "auth_key: required, at most 256 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return domain.Errorf(domain.EINVALID, "auth_key: must be printable ASCII without spaces")
		}
	}
	return nil
}

// CheckProject refuses a project id that is not the integer Ringostat
// shows in the cabinet. EINVALID names project_id.
func CheckProject(id string) error {
	if id == "" || len(id) > 18 {
		return domain.Errorf(domain.EINVALID, "project_id: required, the project's number")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return domain.Errorf(domain.EINVALID, "project_id: must be digits (the project's number), got %q", id)
		}
	}
	return nil
}

// Error is a refusal by Ringostat: its status and its own words.
type Error struct {
	Status  int
	Message string
}

// Error returns the status and Ringostat's words.
func (e *Error) Error() string { return fmt.Sprintf("ringostat: %d %s", e.Status, e.Message) }

// Auth reports whether Ringostat refused the key (401) or the access (403).
func (e *Error) Auth() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// IsAuth reports whether err is (or wraps) a refusal of the key.
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Auth()
}

// do sends one request and reads at most limit bytes of a 2xx answer.
// Errors: *Error for a non-2xx answer, wrapped transport errors otherwise;
// the key never appears in them.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, limit int64) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("ringostat %s: encode: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("ringostat %s: %w", path, err)
	}
	req.Header.Set("Auth-key", c.key)
	req.Header.Set("x-project-id", c.project)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error carries the URL, which has no secret: the key travels
		// in a header.
		return nil, fmt.Errorf("ringostat %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("ringostat %s: read: %w", path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{Status: resp.StatusCode, Message: c.words(b)}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("ringostat %s: answer larger than %d bytes", path, limit)
	}
	return b, nil
}

// words returns Ringostat's message from an error body: a JSON "message"
// or "error", else the body's start, on one line and without the key.
func (c *Client) words(b []byte) string {
	var m struct {
		Message any `json:"message"`
		Error   any `json:"error"`
	}
	s := ""
	if json.Unmarshal(b, &m) == nil {
		for _, v := range []any{m.Message, m.Error} {
			if str, ok := v.(string); ok && str != "" {
				s = str
				break
			}
		}
	}
	if s == "" {
		s = string(b)
	}
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, c.key, "[redacted]")), " ")
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// Online returns the project's SIP logins that are online.
func (c *Client) Online(ctx context.Context) ([]string, error) {
	return c.logins(ctx, "/sipstatus/online")
}

// Speaking returns the project's SIP logins that are in a call.
func (c *Client) Speaking(ctx context.Context) ([]string, error) {
	return c.logins(ctx, "/sipstatus/speaking")
}

func (c *Client) logins(ctx context.Context, path string) ([]string, error) {
	b, err := c.do(ctx, http.MethodGet, path, nil, nil, maxSmallBody)
	if err != nil {
		return nil, err
	}
	out, err := parseLogins(b)
	if err != nil {
		return nil, fmt.Errorf("ringostat %s: %w", path, err)
	}
	return out, nil
}

// parseLogins reads a list of SIP logins: a JSON array of strings (or of
// numbers, or of objects naming the login), possibly under "data".
func parseLogins(b []byte) ([]string, error) {
	var raw json.RawMessage = bytes.TrimSpace(b)
	if len(raw) > 0 && raw[0] == '{' {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 {
			return nil, fmt.Errorf("answer is neither a list nor {\"data\":[…]}")
		}
		raw = env.Data
	}
	var items []any
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("answer is not a list of logins: %w", err)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch v := it.(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		case map[string]any:
			for _, k := range []string{"sip", "login", "sip_login", "name"} {
				if s, ok := v[k].(string); ok && s != "" {
					out = append(out, s)
					break
				}
			}
		}
	}
	return out, nil
}

// Call is one row of the call log: every field asked for, as text
// (numbers in decimal, nulls as "").
type Call map[string]string

// CallFields are the /calls/list fields a recovered call event carries:
// those the event processing reads.
var CallFields = []string{
	"uniqueid", "calldate", "caller", "dst", "call_type", "disposition", "billsec", "duration", "waittime",
	"employee_number", "employee_fio", "connected_with", "department", "pool_name", "recording", "has_recording",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "client_id", "caller_number",
}

// Calls returns the calls made from from to to (inclusive), at most
// MaxCallsPerRequest: a caller that gets that many splits the window.
func (c *Client) Calls(ctx context.Context, from, to time.Time) ([]Call, error) {
	q := url.Values{
		"export_type": {"json"},
		"from":        {from.UTC().Format(TimeLayout)},
		"to":          {to.UTC().Format(TimeLayout)},
		"fields":      {strings.Join(CallFields, ",")},
		"order":       {"calldate asc"},
	}
	b, err := c.do(ctx, http.MethodGet, "/calls/list", q, nil, maxCallsBody)
	if err != nil {
		return nil, err
	}
	calls, err := parseCalls(b)
	if err != nil {
		return nil, fmt.Errorf("ringostat /calls/list: %w", err)
	}
	return calls, nil
}

func parseCalls(b []byte) ([]Call, error) {
	var raw json.RawMessage = bytes.TrimSpace(b)
	if len(raw) > 0 && raw[0] == '{' {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 {
			return nil, fmt.Errorf("answer is neither a list of calls nor {\"data\":[…]}")
		}
		raw = env.Data
	}
	var rows []map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&rows); err != nil {
		return nil, fmt.Errorf("answer is not a list of calls: %w", err)
	}
	out := make([]Call, 0, len(rows))
	for _, r := range rows {
		c := make(Call, len(r))
		for k, v := range r {
			switch x := v.(type) {
			case nil:
				c[k] = ""
			case string:
				c[k] = x
			case json.Number:
				c[k] = x.String()
			case bool:
				c[k] = strconv.FormatBool(x)
			default:
				if b, err := json.Marshal(x); err == nil {
					c[k] = string(b)
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// Contact is one contact of POST /minicrm/contacts/sync.
type Contact struct {
	ProjectID         int64       `json:"projectId"`
	FullName          string      `json:"fullName"`
	Origin            string      `json:"origin"`
	ExternalID        *string     `json:"externalId"`
	LeadID            *string     `json:"leadId,omitempty"`
	Responsible       string      `json:"responsible"`
	StaffID           *string     `json:"staffId"`
	ContactLink       *string     `json:"contactLink"`
	LeadLink          *string     `json:"leadLink"`
	DealLink          *string     `json:"dealLink"`
	GoogleClientID    *string     `json:"googleClientId"`
	ContactDirections []Direction `json:"contactDirections"`
	Organizations     []any       `json:"organizations"`
}

// Direction is one way to reach a contact.
type Direction struct {
	Type  string `json:"type"` // phone or email
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SyncContacts pushes contacts to the project's Smart Phone and contact
// book.
func (c *Client) SyncContacts(ctx context.Context, contacts []Contact) error {
	_, err := c.do(ctx, http.MethodPost, "/minicrm/contacts/sync", nil, struct {
		Contacts []Contact `json:"contacts"`
	}{contacts}, maxSmallBody)
	return err
}

// CallbackExternal asks Ringostat to connect the manager's SIP login with
// the client's number: JSON-RPC 2.0 POST /a/v2, method
// Api\V2\Callback.external, the way Ringostat documents connecting a chosen
// manager (POST /callback/outward_call's extension is the project's number
// the call is made from, not a manager). The parameter values (caller and
// callee types "default", direction "out", manager_dst 1: ring the manager
// first) follow a public client and are unconfirmed. A JSON-RPC error in a
// 200 answer is returned as *Error with Ringostat's message.
func (c *Client) CallbackExternal(ctx context.Context, managerSIP, client string) error {
	b, err := c.do(ctx, http.MethodPost, "/a/v2", nil, map[string]any{
		"jsonrpc": "2.0", "id": 1, "method": `Api\V2\Callback.external`,
		"params": map[string]any{"projectId": c.project, "callee_type": "default", "caller_type": "default",
			"caller": managerSIP, "callee": client, "direction": "out", "manager_dst": 1},
	}, maxSmallBody)
	if err != nil {
		return err
	}
	var ans struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("ringostat /a/v2: answer is not JSON-RPC: %w", err)
	}
	if ans.Error != nil {
		return &Error{Status: http.StatusOK, Message: c.words([]byte(ans.Error.Message))}
	}
	return nil
}
