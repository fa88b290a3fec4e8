// Package amocrm is the amoCRM (Kommo) API v4 adapter.
//
// # Connecting
//
// The integration's base URL is the account, e.g. https://acme.amocrm.ru,
// https://acme.amocrm.com or https://acme.kommo.com (a trailing /api/v4 is
// accepted and dropped). The credentials are those of an OAuth integration
// or a private integration's long-lived token, see Credentials.
//
// amoCRM refresh tokens are single-use: every refresh returns a new pair
// and kills the old refresh token. crm.OAuth serializes refreshes per
// integration and stores the new pair before its access token is used; the
// OAuth endpoint shares the API's rate limit. A refresh amoCRM refuses
// ("Token has been revoked", answered with 400) is a *crm.AuthError with
// amoCRM's hint as the message: the integration needs an admin to
// reconnect it.
//
// # What is indexed
//
//   - Contacts (/api/v4/contacts): the PHONE custom field's values, owner
//     responsible_user_id, always open.
//   - Leads (/api/v4/leads): amoCRM leads have no phone fields; a lead is
//     indexed under the phones of all its linked contacts (read with
//     with=contacts, then the contacts by filter[id][] in batches). Owner
//     responsible_user_id; open unless status_id is 142 (won) or 143
//     (lost), the closed statuses of every pipeline.
//   - Companies (/api/v4/companies): the PHONE field, always open. Company
//     phones are not given to the company's leads.
//
// Phones are returned as amoCRM stores them; the engine normalizes them.
//
// # Sync
//
// Both sync modes walk each kind (contacts, leads, companies) ordered by
// updated_at ascending with filter[updated_at][from] as a keyset: after a
// page, the next request starts at the page's last updated_at (or, when a
// whole page shares one second, asks for the next page of that second).
// Unlike page numbers alone, this skips nothing when records are edited or
// deleted while the sync runs: an edited record moves to the end and is
// read again there. The records of a boundary second are read twice, since
// amoCRM may stamp more changes with the second just read.
//
// A full sync starts at the beginning; where it ends a kind is where the
// first incremental pass starts it, and so on from pass to pass: at the
// latest updated_at read, or ten minutes (skew) before the pass once that
// is older, so a quiet account costs one empty answer per kind and pass.
// The ten minutes bound how far callrouter's clock may be off amoCRM's.
//
// amoCRM lists do not show deleted records, so an incremental pass ends
// with the event feed (/api/v4/events, types contact_deleted, lead_deleted,
// company_deleted, filter[created_at][from]), from where the previous pass
// left it, or for the first pass from ten minutes before the full sync
// started.
//
// A contact's phones are its leads' phones, but editing a contact does not
// change its leads' updated_at. So an incremental pass reads contacts
// with=leads and asks the engine to refetch (Batch.Refetch) the leads of
// every changed contact; Get does the same for the contacts it reads.
//
// # Live lookup
//
// FindByPhone searches contacts with query=<last 10 digits> (amoCRM's own
// call matching uses the last ten) and with=leads, keeps the contacts
// whose phone really ends with the caller's last nine digits (amoCRM
// matches substrings), then reads those contacts' leads. That is two
// requests, three when a lead has contacts the search did not return.
//
// # Webhooks
//
// An admin subscribes callrouter's /crm/<tenant>/webhook?key=<secret> in
// amoCRM (Settings → Integrations → Web hooks, or POST /api/v4/webhooks)
// to adding, changing, deleting, responsible changes of contacts, leads and
// companies and lead status changes. amoCRM posts
// application/x-www-form-urlencoded bodies such as
// leads[status][0][id]=…&account[subdomain]=…; companies arrive as
// contacts with [type]=company. Deletions become Batch.Deleted, everything
// else Batch.Refetch.
//
// # Writing (crm.Writer)
//
//   - CreateLead for a new client is one POST /api/v4/leads/complex: the
//     lead (name = Title, responsible_user_id, pipeline_id when set, the
//     UTM tracking fields UTM_SOURCE, UTM_MEDIUM, UTM_CAMPAIGN, UTM_TERM,
//     UTM_CONTENT, GCLIENTID by field_code when set) with its contact
//     embedded (name = Title, the same responsible user, PHONE "+<digits>"
//     WORK). amoCRM creates both and links them, so FindByPhone and the
//     sync find the lead open (first status of the pipeline) and owned.
//     With NewLead.ContactID it is POST /api/v4/leads with
//     _embedded.contacts [{id}].
//   - CreateCall is POST /api/v4/calls: direction inbound|outbound, uniq =
//     Key, duration (talk seconds), source "callrouter", link (recording),
//     phone "+<digits>", call_status (4 conversation when answered; 7 busy
//     for BUSY, 6 no connection for FAILED, CONGESTION and CHANUNAVAIL, 3
//     not available otherwise), call_result text, responsible_user_id and
//     created_by (the user; without created_by amoCRM credits a robot),
//     created_at (the call's start). amoCRM takes no entity ids: it files
//     the call as a call_in/call_out note under the contact holding the
//     phone, or under that contact's lead when it has exactly one active
//     lead, and adds nothing for a phone no contact holds (a permanent
//     *crm.StatusError). The id returned is amoCRM's call (note) id.
//   - CreateTask is POST /api/v4/tasks: text with "[cr:<key>]" appended,
//     complete_till, task_type_id 1 (call), responsible_user_id, and
//     entity_id/entity_type of the lead, else the contact (amoCRM tasks
//     belong to one entity).
//   - FillUTM reads GET /api/v4/leads/{id} and, only when every UTM field
//     is empty, writes PATCH /api/v4/leads/{id} {custom_fields_values}.
//   - UpdateFields (a form's client found) is PATCH
//     /api/v4/{leads|contacts}/{id} {custom_fields_values} with the mapped
//     fields only; amoCRM keeps the fields not sent.
//   - Find(WriteCall) reads the parent's call notes, GET
//     /api/v4/{leads|contacts}/{id}/notes?filter[note_type][]=call_in&
//     filter[note_type][]=call_out, for params.uniq == key, and for a lead
//     then the notes of its first five contacts (where amoCRM files a call
//     when the contact has several active leads). Find(WriteTask) reads
//     GET /api/v4/tasks?filter[entity_type]=…&filter[entity_id][]=… for
//     the marker. Leads carry no key amoCRM can search, so Find(WriteLead)
//     is crm.ErrNotSearchable, as are WriteUTM (FillUTM is idempotent by
//     itself) and a zero parent.
//   - CreateUnsorted (crm.UnsortedWriter, the tenant's amo_unsorted) is
//     POST /api/v4/leads/unsorted/sip or /api/v4/leads/unsorted/forms, the
//     shapes of amocrm-api-php's SipUnsortedModel/FormUnsortedModel toApi
//     (src/AmoCRM/Models/Unsorted, EntitiesServices/Unsorted.php):
//     source_name "callrouter", source_uid = Key, pipeline_id, created_at,
//     metadata (sip: from, phone, called_at, duration, link, service_code,
//     uniq = Key, is_call_event_needed true; forms: form_id, form_name,
//     form_page, form_sent_at, ip and referer when known) and
//     _embedded.leads/contacts with one new lead and contact. The answer's
//     _embedded.unsorted[0].uid is the request, its _embedded leads and
//     contacts the ids inside it. Find(WriteUnsorted) reads GET
//     /api/v4/leads/unsorted (sip and forms, newest first, at most 20
//     pages) for source_uid == key; a request already accepted or declined
//     is no longer listed there, so a lost answer followed by an
//     acceptance within the retry's backoff could make a second request.
//
// Unconfirmed on a live account: that the id POST /api/v4/calls answers is
// the call note's id (Find returns the note id); amoCRM's exact answer to a
// call whose phone matches nothing (taken to be a 400 validation error; a
// 2xx answer without _embedded.calls is treated the same way); the
// tracking-field codes (UTM_*, GCLIENTID) on accounts that renamed them;
// that amoCRM refuses a second unsorted request with a source_uid it has
// (reported earlier; the fake refuses it, and a call's repeated uniq); and
// whether a form request without ip or a call request with an empty link
// is accepted.
//
// # Errors and limits
//
// Requests are limited to amoCRM's 7 per second per integration (with the
// crm package's headroom), OAuth calls and writes included; 429 answers are retried
// after Retry-After. A 401 from the API triggers one refresh; a 401 with a
// long-lived token is a *crm.AuthError with amoCRM's "detail".
package amocrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// name is the adapter's name in configurations and errors.
const name = "amocrm"

const (
	// requestsPerSecond is amoCRM's limit per integration.
	requestsPerSecond = 7
	// refreshEarly is how long before expiry an access token is replaced.
	refreshEarly = 5 * time.Minute
	// pageLimit is the largest page amoCRM serves for entities and users.
	pageLimit = 250
	// eventPageLimit is the largest page of the event feed.
	eventPageLimit = 100
	// idsPerRequest bounds filter[id][] lists: 200 ids of up to ten digits
	// keep the request line under 7 KB, below the 8 KB that front-end
	// servers commonly accept.
	idsPerRequest = 200
	// findLimit bounds the contacts one phone search reads.
	findLimit = 50
)

// Adapter connects callrouter to amoCRM accounts.
var Adapter = crm.Adapter{Name: name, Check: Check, Seed: Seed, New: New}

// Credentials are an amoCRM integration's credentials as the admin sends
// them, in one of two forms.
//
// OAuth, for an external or private integration (its "Keys and scopes"
// tab):
//
//	{"client_id": "…", "client_secret": "…", "redirect_uri": "https://…",
//	 "refresh_token": "…", "access_token": "…", "expires_at": "2026-05-01T10:00:00Z"}
//
// access_token and expires_at (RFC 3339) are optional: without them the
// first call trades the refresh token for a new pair. After connecting,
// the token store holds the live pair: amoCRM refresh tokens are
// single-use, so the refresh_token sent here is dead after the first
// refresh.
//
// Long-lived token, for a private integration on one account:
//
//	{"long_lived_token": "…"}
type Credentials struct {
	// ClientID is the integration ID.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret is the integration's secret key.
	ClientSecret string `json:"client_secret,omitempty"`
	// RedirectURI is the integration's redirect URI, exactly as registered.
	RedirectURI string `json:"redirect_uri,omitempty"`
	// RefreshToken is the refresh token from the authorization code
	// exchange.
	RefreshToken string `json:"refresh_token,omitempty"`
	// AccessToken is the current access token, optional.
	AccessToken string `json:"access_token,omitempty"`
	// ExpiresAt is when AccessToken expires (RFC 3339), optional.
	ExpiresAt string `json:"expires_at,omitempty"`
	// LongLivedToken is a private integration's long-lived token; it
	// replaces all the fields above.
	LongLivedToken string `json:"long_lived_token,omitempty"`
}

// creds are parsed credentials.
type creds struct {
	Credentials
	expiry time.Time
}

// parseCreds decodes and validates credentials; EINVALID names the field.
func parseCreds(raw json.RawMessage) (creds, error) {
	var c creds
	if len(raw) == 0 {
		return c, domain.Errorf(domain.EINVALID, "credentials.client_id: required (or credentials.long_lived_token)")
	}
	if err := json.Unmarshal(raw, &c.Credentials); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return c, domain.Errorf(domain.EINVALID, "credentials.%s: must be a string", te.Field)
		}
		return c, domain.Errorf(domain.EINVALID, "credentials: not a JSON object")
	}
	cr := &c.Credentials
	for _, f := range []*string{&cr.ClientID, &cr.ClientSecret, &cr.RedirectURI, &cr.RefreshToken, &cr.AccessToken, &cr.ExpiresAt, &cr.LongLivedToken} {
		*f = strings.TrimSpace(*f)
	}
	oauthFields := []struct{ name, value string }{
		{"client_id", cr.ClientID}, {"client_secret", cr.ClientSecret},
		{"redirect_uri", cr.RedirectURI}, {"refresh_token", cr.RefreshToken},
	}
	if cr.LongLivedToken != "" {
		for _, f := range append(oauthFields, struct{ name, value string }{"access_token", cr.AccessToken}) {
			if f.value != "" {
				return c, domain.Errorf(domain.EINVALID, "credentials.%s: not allowed with long_lived_token; send one or the other", f.name)
			}
		}
		return c, oneLine("long_lived_token", cr.LongLivedToken)
	}
	for _, f := range oauthFields {
		if f.value == "" {
			if f.name == "client_id" && cr.ClientSecret == "" && cr.RefreshToken == "" {
				return c, domain.Errorf(domain.EINVALID, "credentials.client_id: required (or credentials.long_lived_token)")
			}
			return c, domain.Errorf(domain.EINVALID, "credentials.%s: required", f.name)
		}
	}
	if u, err := url.Parse(cr.RedirectURI); err != nil || !u.IsAbs() || u.Host == "" {
		return c, domain.Errorf(domain.EINVALID, "credentials.redirect_uri: must be an absolute URL, as registered in the integration")
	}
	if cr.ExpiresAt != "" {
		if cr.AccessToken == "" {
			return c, domain.Errorf(domain.EINVALID, "credentials.access_token: required with expires_at")
		}
		t, err := time.Parse(time.RFC3339, cr.ExpiresAt)
		if err != nil {
			return c, domain.Errorf(domain.EINVALID, "credentials.expires_at: must be an RFC 3339 time such as 2026-05-01T10:00:00Z")
		}
		c.expiry = t
	}
	if err := oneLine("access_token", cr.AccessToken); err != nil {
		return c, err
	}
	return c, nil
}

// oneLine rejects a token with a line break: it travels in a header, where
// a line break would be a header injection, and no amoCRM token has one.
func oneLine(field, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return domain.Errorf(domain.EINVALID, "credentials.%s: must be one line", field)
	}
	return nil
}

// Check validates amoCRM credentials. It returns an EINVALID error that
// names the bad or missing field, e.g. "credentials.client_id: required".
func Check(raw json.RawMessage) error {
	_, err := parseCreds(raw)
	return err
}

// Seed returns the token pair OAuth credentials start from, with a zero
// Access when they carry only a refresh token; ok is false for long-lived
// tokens and invalid credentials.
func Seed(raw json.RawMessage) (crm.Token, bool) {
	c, err := parseCreds(raw)
	if err != nil || c.LongLivedToken != "" {
		return crm.Token{}, false
	}
	return crm.Token{Access: c.AccessToken, Refresh: c.RefreshToken, Expiry: c.expiry}, true
}

// source is one connected amoCRM account. It is safe for concurrent use.
type source struct {
	api *crm.HTTP
	now func() time.Time
}

var _ crm.Source = (*source)(nil)

// New connects to the amoCRM account at cfg.BaseURL; it does not call the
// CRM. It returns an EINVALID error for bad credentials or a bad base URL,
// and an error when OAuth credentials come without deps.Tokens.
func New(cfg crm.Config, deps crm.Deps) (crm.Source, error) {
	c, err := parseCreds(cfg.Creds)
	if err != nil {
		return nil, err
	}
	u, err := crm.CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	// Admins often paste the API root from amoCRM's documentation.
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/api/v4"), "/api")
	base := u.String()
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	s := &source{now: now}
	// One limit for the API and the OAuth endpoint: amoCRM counts both.
	lim := deps.Limiter("api", requestsPerSecond)
	var auth crm.Authorizer
	if c.LongLivedToken != "" {
		auth = crm.StaticKey{Header: "Authorization", Value: "Bearer " + c.LongLivedToken}
	} else {
		if deps.Tokens == nil {
			return nil, fmt.Errorf("%s: OAuth credentials need a token store", name)
		}
		tokens, err := crm.NewHTTP(crm.HTTPConfig{
			CRM:       name,
			BaseURL:   base,
			Limiter:   lim,
			ErrorText: oauthErrorText,
			// amoCRM answers a dead refresh token with 400 (some proxies
			// with 401); either way only an admin can fix it.
			IsAuthFailure: func(status int, _ []byte) bool {
				return status == http.StatusBadRequest || status == http.StatusUnauthorized
			},
			Transport: deps.Transport,
			Sleep:     deps.Sleep,
		})
		if err != nil {
			return nil, err
		}
		r := &refresher{http: tokens, creds: c.Credentials, now: now}
		auth = crm.NewOAuth(deps.Tokens, r.refresh, nil, refreshEarly, now)
	}
	s.api, err = crm.NewHTTP(crm.HTTPConfig{
		CRM:       name,
		BaseURL:   base,
		Auth:      auth,
		Limiter:   lim,
		ErrorText: apiErrorText,
		Transport: deps.Transport,
		Sleep:     deps.Sleep,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// get sends a GET to the API. Errors are those of crm.HTTP.Do.
func (s *source) get(ctx context.Context, path string, q url.Values) (*crm.Response, error) {
	return s.api.Do(ctx, crm.Request{Method: http.MethodGet, Path: path, Query: q})
}

// problemJSON is amoCRM's application/problem+json error body, and its
// OAuthProblemJson.
type problemJSON struct {
	Title            string `json:"title"`
	Detail           string `json:"detail"`
	Hint             string `json:"hint"`
	ValidationErrors []struct {
		Errors []struct {
			Path   string `json:"path"`
			Detail string `json:"detail"`
		} `json:"errors"`
	} `json:"validation-errors"`
}

// apiErrorText is amoCRM's message for a failed API call: the problem's
// detail, title or hint (with the first validation error's field and
// text), else the start of the body (429 answers and blocked accounts'
// HTML pages are not JSON).
func apiErrorText(_ int, body []byte) string {
	var p problemJSON
	if json.Unmarshal(body, &p) == nil {
		if m := firstNonEmpty(p.Detail, p.Title, p.Hint); m != "" {
			for _, v := range p.ValidationErrors {
				for _, e := range v.Errors {
					return m + ": " + e.Path + ": " + e.Detail
				}
			}
			return m
		}
	}
	return crm.Snippet(body)
}

// oauthErrorText is amoCRM's message for a failed token request: the hint
// ("Token has been revoked") says what went wrong, detail and title are
// generic.
func oauthErrorText(_ int, body []byte) string {
	var p problemJSON
	if json.Unmarshal(body, &p) == nil {
		if m := firstNonEmpty(p.Hint, p.Detail, p.Title); m != "" {
			return m
		}
	}
	return crm.Snippet(body)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
