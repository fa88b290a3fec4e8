// Package salesmanago is a client of SALESmanago's contact API, the
// marketing-automation side of the SALESmanago ⇄ Zoho CRM contact sync
// (package smsync).
//
// API facts and their sources (reference/crm-apis.md §5; docs.salesmanago.com;
// public clients tomaszcekalo/SalesManago (SalesManagoService.cs,
// Common/UpsertDetail.cs, Contact.cs, ContactState.cs, BaseResponse.cs),
// sanis/salesmanago-api-sso-util (src/Entity/Configuration.php),
// piotruryga/go-salesmanago-api, and a public Python connector toolkit):
//   - every call is a POST of JSON to {base}/api/…; the body carries the
//     authentication: clientId, apiKey, requestTime (milliseconds), sha =
//     hex(sha1(apiKey + clientId + apiSecret)) and owner (the e-mail of the
//     user the contacts belong to);
//   - refusals arrive as HTTP 200 {"success":false,"message":["…"]}: a
//     success:false answer is an error here, carrying SALESmanago's words;
//   - /api/user/listByClient answers {"users":["e-mail",…]};
//   - /api/contact/paginatedModifiedContacts takes {from,to,page,size} (ms)
//     and answers {"modifiedContacts":[{"id","email"}],"hasMore"}; the
//     toolkit reads it in windows of at most 30 days, and so does this client;
//   - /api/contact/listById takes {"contactId":[…]} and /api/contact/list
//     {"email":[…]}, both answering {"contacts":[…]} with name, email,
//     phone, fax, company, state (CUSTOMER, PROSPECT, PARTNER, OTHER,
//     UNKNOWN: "Klient", "Potencjalny", … in the Polish UI), optedOut,
//     address {streetAddress, zipCode, city, country}, modifiedOn (ms);
//   - /api/contact/batchupsertv2 takes {"upsertDetails":[{"contact":{…},
//     "birthday":"yyyyMMdd","province","forceOptIn","forceOptOut"}]} and
//     answers a requestId; /api/job/status {"requestId"} answers a
//     non-empty message while the job runs and message [] with fileUrl once
//     it has finished. A contact belongs to the request's owner.
//
// Unconfirmed (no public source; chosen to be safe on a real account):
// the upsert cap per call (100–1000 by hearsay: at most MaxUpsert = 100
// are sent); the listById cap (at most 100 ids are sent); the wording of
// throttling and authentication refusals (throttling is recognised by
// "limit", "too many" or "throttl" in the message, and HTTP 429/503);
// the keys "province", "birthday" and "owner" (the owning user's e-mail)
// in contact answers; whether the 30-day window is enforced.
package salesmanago

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Limits of one request.
const (
	// MaxPage is the most contact ids asked per page of modified contacts.
	MaxPage = 200
	// MaxUpsert is the most contacts sent in one batch upsert.
	MaxUpsert = 100
	// MaxByID is the most ids (or e-mails) read in one listById (list).
	MaxByID = 100
	// MaxWindow is the longest window of one modified-contacts listing.
	MaxWindow = 30 * 24 * time.Hour
)

// maxBody bounds what is read of one answer: a page of 100 contacts is a
// few tens of kilobytes.
const maxBody = 8 << 20

// Contact states as the API names them.
const (
	StateCustomer = "CUSTOMER" // "Klient"
	StateProspect = "PROSPECT" // "Potencjalny"
)

// Config is one SALESmanago account as an admin connects it.
type Config struct {
	BaseURL   string // e.g. https://app3.salesmanago.pl
	ClientID  string
	APIKey    string
	APISecret string
	// Owner is the main user's e-mail: the owner of requests that name no
	// other, and of contacts whose owner has no SALESmanago user.
	Owner string
}

// Options are the client's injectable parts; zero values mean the real ones.
type Options struct {
	// Transport carries requests; nil means crm.NewTransport(false), which
	// refuses private and local addresses (the CRM SSRF guard).
	Transport http.RoundTripper
	Now       func() time.Time
	// Sleep waits out backoffs and job polls.
	Sleep func(ctx context.Context, d time.Duration) error
	// Retries is how often a throttled or 503 call is tried again
	// (default 4); PollEvery the wait between job-status polls (default 2 s)
	// and MaxPolls how many polls a job gets (default 150).
	Retries   int
	PollEvery time.Duration
	MaxPolls  int
}

// Client calls one SALESmanago account. It is safe for concurrent use.
type Client struct {
	base string
	cfg  Config
	sha  string
	hc   *http.Client
	opt  Options
}

// CheckConfig refuses a configuration that cannot authenticate. EINVALID
// names the field (base_url, client_id, api_key, api_secret, owner_email).
func CheckConfig(c Config) (*url.URL, error) {
	u, err := crm.CheckBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"client_id", c.ClientID}, {"api_key", c.APIKey}, {"api_secret", c.APISecret}} {
		if strings.TrimSpace(f.v) == "" || len(f.v) > 256 {
			return nil, domain.Errorf(domain.EINVALID, "%s: required, at most 256 characters", f.name)
		}
	}
	if !ValidEmail(c.Owner) {
		return nil, domain.Errorf(domain.EINVALID, "owner_email: must be the e-mail of the account's main user, got %q", c.Owner)
	}
	return u, nil
}

// ValidEmail reports whether s looks like an e-mail address (one @, a dot
// in the domain, no spaces).
func ValidEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at == strings.LastIndexByte(s, '@') && strings.Contains(s[at+1:], ".") &&
		!strings.ContainsAny(s, " \t\r\n,;<>") && len(s) <= 254
}

// New returns a client for cfg. EINVALID names a bad field.
func New(cfg Config, opt Options) (*Client, error) {
	u, err := CheckConfig(cfg)
	if err != nil {
		return nil, err
	}
	if opt.Transport == nil {
		opt.Transport = crm.NewTransport(false)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Sleep == nil {
		opt.Sleep = sleepCtx
	}
	if opt.Retries == 0 {
		opt.Retries = 4
	}
	if opt.PollEvery == 0 {
		opt.PollEvery = 2 * time.Second
	}
	if opt.MaxPolls == 0 {
		opt.MaxPolls = 150
	}
	sum := sha1.Sum([]byte(cfg.APIKey + cfg.ClientID + cfg.APISecret))
	return &Client{base: u.String(), cfg: cfg, sha: hex.EncodeToString(sum[:]), opt: opt,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: opt.Transport,
			// An API call is never legitimately redirected; following one
			// would carry the signature elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Owner returns the main user's e-mail.
func (c *Client) Owner() string { return c.cfg.Owner }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Error is a refusal by SALESmanago: the HTTP status (200 for a
// success:false answer) and its own words.
type Error struct {
	Path     string
	Status   int
	Messages []string
}

// Error returns the path and SALESmanago's words.
func (e *Error) Error() string {
	msg := strings.Join(e.Messages, "; ")
	if msg == "" {
		msg = "no message"
	}
	if e.Status != http.StatusOK {
		return fmt.Sprintf("salesmanago %s: HTTP %d: %s", e.Path, e.Status, msg)
	}
	return fmt.Sprintf("salesmanago %s: %s", e.Path, msg)
}

// Throttled reports whether SALESmanago asked to slow down: HTTP 429 or
// 503, or a success:false answer speaking of a limit.
func (e *Error) Throttled() bool {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		return true
	}
	for _, m := range e.Messages {
		l := strings.ToLower(m)
		if strings.Contains(l, "limit") || strings.Contains(l, "too many") || strings.Contains(l, "throttl") {
			return true
		}
	}
	return false
}

// Auth reports whether SALESmanago refused the credentials (HTTP 401/403,
// or a success:false answer about authentication).
func (e *Error) Auth() bool {
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		return true
	}
	for _, m := range e.Messages {
		l := strings.ToLower(m)
		if strings.Contains(l, "authenticat") || strings.Contains(l, "authoriz") || strings.Contains(l, "sha") {
			return true
		}
	}
	return false
}

// IsAuth reports whether err is (or wraps) a refusal of the credentials.
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Auth()
}

// envelope is the answer every call shares.
type envelope struct {
	Success bool            `json:"success"`
	Message json.RawMessage `json:"message"`
}

// messages reads "message", which is a list of strings, or a string.
func messages(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}

// call posts body (an object) with the authentication of owner merged in
// and decodes the answer into out. Throttled answers (429, 503,
// success:false about a limit) are retried with exponential backoff.
// Errors: *Error for a refusal, wrapped transport and decoding errors;
// neither the key nor the secret appears in them.
func (c *Client) call(ctx context.Context, path, owner string, body map[string]any, out any) error {
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, path, owner, body, out)
		var e *Error
		if err == nil || !errors.As(err, &e) || !e.Throttled() || attempt >= c.opt.Retries {
			return err
		}
		wait := time.Second << attempt
		if err := c.opt.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("salesmanago %s: %w", path, err)
		}
	}
}

func (c *Client) once(ctx context.Context, path, owner string, body map[string]any, out any) error {
	m := make(map[string]any, len(body)+5)
	for k, v := range body {
		m[k] = v
	}
	m["clientId"] = c.cfg.ClientID
	m["apiKey"] = c.cfg.APIKey
	m["requestTime"] = c.opt.Now().UnixMilli()
	m["sha"] = c.sha
	if owner == "" {
		owner = c.cfg.Owner
	}
	m["owner"] = owner
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("salesmanago %s: encode: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("salesmanago %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		// The URL carries no secret: the key travels in the body.
		return fmt.Errorf("salesmanago %s: %w", path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("salesmanago %s: read: %w", path, err)
	}
	if len(rb) > maxBody {
		return fmt.Errorf("salesmanago %s: answer larger than %d bytes", path, maxBody)
	}
	var env envelope
	jerr := json.Unmarshal(rb, &env)
	if resp.StatusCode != http.StatusOK {
		msgs := messages(env.Message)
		if jerr != nil || len(msgs) == 0 {
			msgs = []string{crm.Redact(crm.Snippet(rb), c.cfg.APIKey, c.cfg.APISecret)}
		}
		return &Error{Path: path, Status: resp.StatusCode, Messages: msgs}
	}
	if jerr != nil {
		return fmt.Errorf("salesmanago %s: answer is not JSON: %s", path, crm.Snippet(rb))
	}
	if !env.Success {
		return &Error{Path: path, Status: http.StatusOK, Messages: messages(env.Message)}
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("salesmanago %s: bad answer: %w", path, err)
		}
	}
	return nil
}

// Users returns the e-mails of the account's users
// (/api/user/listByClient).
func (c *Client) Users(ctx context.Context) ([]string, error) {
	var ans struct {
		Users []json.RawMessage `json:"users"`
	}
	if err := c.call(ctx, "/api/user/listByClient", "", map[string]any{}, &ans); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ans.Users))
	for _, raw := range ans.Users {
		// Strings per the public clients; objects with an email seen too.
		var s string
		if json.Unmarshal(raw, &s) != nil {
			var o struct {
				Email string `json:"email"`
			}
			_ = json.Unmarshal(raw, &o)
			s = o.Email
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// Ref names a contact in a modified-contacts listing.
type Ref struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// Modified returns page (from 1) of the contacts modified in [from, to),
// at most size (≤ MaxPage) a page, and whether more pages follow.
// EINVALID for a window longer than MaxWindow or a bad size.
func (c *Client) Modified(ctx context.Context, from, to time.Time, page, size int) ([]Ref, bool, error) {
	if size < 1 || size > MaxPage {
		return nil, false, domain.Errorf(domain.EINVALID, "size: 1 to %d, got %d", MaxPage, size)
	}
	if to.Sub(from) > MaxWindow || !to.After(from) {
		return nil, false, domain.Errorf(domain.EINVALID, "window: must be positive and at most %s", MaxWindow)
	}
	var ans struct {
		Modified []Ref `json:"modifiedContacts"`
		HasMore  bool  `json:"hasMore"`
	}
	err := c.call(ctx, "/api/contact/paginatedModifiedContacts", "", map[string]any{
		"from": from.UnixMilli(), "to": to.UnixMilli(), "page": page, "size": size}, &ans)
	if err != nil {
		return nil, false, err
	}
	return ans.Modified, ans.HasMore, nil
}

// Address is a contact's postal address.
type Address struct {
	Street  string `json:"streetAddress,omitempty"`
	ZipCode string `json:"zipCode,omitempty"`
	City    string `json:"city,omitempty"`
	Country string `json:"country,omitempty"`
}

// Contact is a SALESmanago contact as the sync reads and writes it.
type Contact struct {
	ID       string  `json:"id,omitempty"`
	Email    string  `json:"email"`
	Name     string  `json:"name,omitempty"`
	Phone    string  `json:"phone,omitempty"`
	Fax      string  `json:"fax,omitempty"`
	Company  string  `json:"company,omitempty"`
	State    string  `json:"state,omitempty"`
	Province string  `json:"province,omitempty"`
	Birthday string  `json:"birthday,omitempty"` // yyyyMMdd or MMdd
	Address  Address `json:"address"`
	OptedOut bool    `json:"optedOut"`
	// Owner is the owning user's e-mail.
	Owner      string `json:"owner,omitempty"`
	ModifiedOn int64  `json:"modifiedOn,omitempty"` // ms
}

// Modified returns when the contact last changed.
func (c Contact) Modified() time.Time { return time.UnixMilli(c.ModifiedOn).UTC() }

// contactAnswer is a contact in an answer: ids come as strings or numbers
// (contactId in some answers).
type contactAnswer struct {
	Contact
	ID        json.RawMessage `json:"id"`
	ContactID json.RawMessage `json:"contactId"`
}

func rawID(raws ...json.RawMessage) string {
	for _, r := range raws {
		var s string
		if json.Unmarshal(r, &s) == nil && s != "" {
			return s
		}
		var n json.Number
		if json.Unmarshal(r, &n) == nil && n != "" {
			return n.String()
		}
	}
	return ""
}

func (c *Client) contacts(ctx context.Context, path, key string, vals []string) ([]Contact, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > MaxByID {
		return nil, domain.Errorf(domain.EINVALID, "%s: at most %d a request, got %d", key, MaxByID, len(vals))
	}
	var ans struct {
		Contacts []contactAnswer `json:"contacts"`
	}
	if err := c.call(ctx, path, "", map[string]any{key: vals}, &ans); err != nil {
		return nil, err
	}
	out := make([]Contact, 0, len(ans.Contacts))
	for _, a := range ans.Contacts {
		ct := a.Contact
		ct.ID = rawID(a.ID, a.ContactID)
		out = append(out, ct)
	}
	return out, nil
}

// ByID reads contacts by id (/api/contact/listById), at most MaxByID.
// Ids SALESmanago does not know are left out of the answer.
func (c *Client) ByID(ctx context.Context, ids []string) ([]Contact, error) {
	return c.contacts(ctx, "/api/contact/listById", "contactId", ids)
}

// ByEmail reads contacts by e-mail (/api/contact/list), at most MaxByID.
func (c *Client) ByEmail(ctx context.Context, emails []string) ([]Contact, error) {
	return c.contacts(ctx, "/api/contact/list", "email", emails)
}

// Upsert is one contact of a batch upsert.
type Upsert struct {
	Contact Contact
	// OptOut forces the opt-out (true) or the opt-in (false) of the
	// contact's e-mail.
	OptOut bool
}

type upsertContact struct {
	Email   string  `json:"email"`
	Name    string  `json:"name,omitempty"`
	Phone   string  `json:"phone,omitempty"`
	Fax     string  `json:"fax,omitempty"`
	Company string  `json:"company,omitempty"`
	State   string  `json:"state,omitempty"`
	Address Address `json:"address"`
}

type upsertDetail struct {
	Contact     upsertContact `json:"contact"`
	Birthday    string        `json:"birthday,omitempty"`
	Province    string        `json:"province,omitempty"`
	ForceOptIn  bool          `json:"forceOptIn"`
	ForceOptOut bool          `json:"forceOptOut"`
}

// BatchUpsert sends up to MaxUpsert contacts owned by owner (the main user
// when "") to /api/contact/batchupsertv2 and waits for the job, polling
// /api/job/status, to finish. EINVALID for an empty or oversized batch or
// a contact without an e-mail; *Error for SALESmanago's refusals; an error
// when the job does not finish within MaxPolls polls.
func (c *Client) BatchUpsert(ctx context.Context, owner string, batch []Upsert) error {
	if len(batch) == 0 || len(batch) > MaxUpsert {
		return domain.Errorf(domain.EINVALID, "upsertDetails: 1 to %d contacts, got %d", MaxUpsert, len(batch))
	}
	details := make([]upsertDetail, 0, len(batch))
	for i, u := range batch {
		ct := u.Contact
		if !ValidEmail(ct.Email) {
			return domain.Errorf(domain.EINVALID, "upsertDetails[%d].contact.email: %q is not an e-mail", i, ct.Email)
		}
		details = append(details, upsertDetail{
			Contact: upsertContact{Email: ct.Email, Name: ct.Name, Phone: ct.Phone, Fax: ct.Fax, Company: ct.Company,
				State: ct.State, Address: ct.Address},
			Birthday: ct.Birthday, Province: ct.Province, ForceOptIn: !u.OptOut, ForceOptOut: u.OptOut,
		})
	}
	var ans struct {
		RequestID string `json:"requestId"`
	}
	if err := c.call(ctx, "/api/contact/batchupsertv2", owner, map[string]any{"upsertDetails": details}, &ans); err != nil {
		return err
	}
	if ans.RequestID == "" {
		return fmt.Errorf("salesmanago /api/contact/batchupsertv2: no requestId in the answer")
	}
	return c.wait(ctx, ans.RequestID)
}

// wait polls /api/job/status until the job's message list is empty.
func (c *Client) wait(ctx context.Context, requestID string) error {
	for poll := 0; poll < c.opt.MaxPolls; poll++ {
		var ans struct {
			Message json.RawMessage `json:"message"`
			FileURL string          `json:"fileUrl"`
		}
		if err := c.call(ctx, "/api/job/status", "", map[string]any{"requestId": requestID}, &ans); err != nil {
			return err
		}
		if len(messages(ans.Message)) == 0 {
			return nil
		}
		if err := c.opt.Sleep(ctx, c.opt.PollEvery); err != nil {
			return fmt.Errorf("salesmanago job %s: %w", requestID, err)
		}
	}
	return fmt.Errorf("salesmanago job %s: not finished after %d polls", requestID, c.opt.MaxPolls)
}
