// Package uspacy is the Uspacy CRM adapter. Uspacy publishes no API
// documentation; paths and shapes come from its official SDKs (Go, JS,
// PHP), and what they leave open is marked "unconfirmed" below and decided
// so that a wrong guess costs requests, never a missed phone.
//
// # Auth
//
// Access tokens are JWTs, refreshed with POST /auth/v1/auth/refresh_token/
// and the refresh token as the bearer; the refresh token rotates, and the
// new pair is stored before it is used (crm.OAuth). With application
// credentials the adapter signs in (POST /auth/v1/auth/app_sign_in) on first
// use and again whenever a refresh is refused, as the PHP SDK does, so an
// app integration never needs an admin unless the app itself is revoked.
// Expiry comes from the answer's expireInSeconds, else the JWT's exp claim.
//
// # Entities
//
// Leads, deals, contacts and companies are paged from
// GET /crm/v1/entities/{table}/?page=N&list=100. The responsible user is
// "owner", a number or a string. Leads and deals are closed when their
// kanban_status is SUCCESS or FAIL (the two final statuses the SDKs know)
// and a lead also once converted. Deals have no phone field of their own:
// their phones are those of the contacts and companies they embed.
//
// # Cursors
//
// A cursor is JSON: {"v":1,"table":…,"page":…,"start":…} during a full
// sync, where table is the table being paged (leads, deals, contacts,
// companies, in that order) and start is the CRM's clock (its Date header)
// when the sync began; and {"v":1,"inc":true,"table":…,"page":…,
// "start":…,"since":…} for changes, which reports records with
// updated_at ≥ since. Both may carry "unsorted":true (below). A finished
// pass, full or changes, hands the next pass since = its start minus two
// minutes, so that writes committed around the start are seen; records
// near the boundary are reported twice, which the index tolerates.
//
// Uspacy has no change feed besides webhooks. Changes pages each table
// asking for updated_at descending (sortModel[0][updated_at]=desc, the JS
// SDK's sortModel filter; its query encoding is unconfirmed) and stops a
// table at the first record older than since. Every page is checked: when
// the CRM is seen not to sort (a page not in descending order, in a full
// sync or in changes), the cursor remembers "unsorted" and from then on
// every poll pages each table to the end and filters on updated_at, which
// costs one request per 100 records per poll.
//
// # Deletions
//
// Uspacy keeps deleted records in a trash listing, GET
// /crm/v1/entities/{table}/trash (uspacy-js-sdk CrmEntitiesService
// getTrashEntities, which takes the same list filters), and the normal
// listing no longer returns them. After the four tables, every changes
// pass reads each table's trash (cursor "trash":true) and reports its
// records in Batch.Deleted, so a deletion leaves routing within one
// incremental cycle whether or not its webhook arrived. Unconfirmed:
// whether trash records carry deleted_at and the listing honours
// sortModel[0][deleted_at]=desc; a pass stops a trash early only when the
// page proves both, and otherwise reads it to its end (one request per 100
// trashed records per poll). A record listed or read (Get) with a
// deleted_at is taken as deleted too. Records purged from the trash leave
// both listings; the periodic reconciliation (a full sync that removes the
// index rows it did not see) covers them.
//
// # Webhooks
//
// Uspacy webhooks are registered at /company/v1/webhooks with events like
// {"service":"crm","type":"entity","table_name":"contacts",
// "actions":["create","update","delete"]}. The delivered body is
// unconfirmed; Webhook accepts a JSON object, or an array of them, in any of
// these shapes:
//
//	{"event":{"service":"crm","type":"entity","table_name":"contacts","action":"update"},"data":{"entity":{…}}}
//	{"event":{…},"data":{…entity…}}
//	{"table_name":"contacts","action":"update","id":12}
//	{"table_name":"contacts","action":"update","entity":{…}}
//
// The table is table_name (plural or singular), the action is action (or
// the only element of actions), the id is the entity's id or a top-level id.
// A delete action (delete, deleted, destroy, remove, removed) yields
// Batch.Deleted. Otherwise an entity that carries owner, its phones (phone;
// contacts for a deal) and, for leads and deals, kanban_status is taken as
// it is (Batch.Entities); anything less is read again (Batch.Refetch).
// Notifications for other services or tables give an empty batch. A body
// that is not JSON, or names no table or no numeric id, is EINVALID.
//
// # Writes
//
// The adapter implements crm.Writer (write.go), with request shapes from
// the SDKs' models (JS crm-calls.ts, crm-tasks.ts, crm-filters.ts; Go
// activities/types.go, api/crm.go):
//
//   - CreateLead: POST /crm/v1/entities/leads/ {"title","owner","phone":
//     [{"value":"+…","type":"work"}],"utm_source|medium|campaign|term|
//     content","kanban_stage_id"}. Leads, not deals: Uspacy leads hold
//     their own phones, so no contact is needed, and FindByPhone and the
//     sync find the lead, open (no kanban_status yet) with its owner.
//     Leads have no contact link in the SDKs; a given ContactID is only
//     reported back in Created. Records carry a stage, not a funnel (no
//     funnel field on any record model), so NewLead.Pipeline is sent as
//     kanban_stage_id: tenants name the starting stage of the funnel they
//     want. UTM.ClientID has no Uspacy field and is dropped.
//   - CreateCall: POST /crm/v1/events/call with integration_code
//     "callrouter", call_type incoming|outgoing, ended_call_status
//     answered, busy (disposition BUSY) or missed (the SDKs type it as a
//     free string: the values are unconfirmed), from/to (the client as
//     "+digits", the line as given), begin_time, end_time (start + wait +
//     talk), duration (talk seconds), call_record_link, employees [user],
//     lead_id|deal_id and contact_id|company_id (+ contacts [id]) with
//     entity_table the lead's table, else the contact's. The key goes in
//     twice: external_id is ExternalID(key), a 53-bit hash, because both
//     SDKs type external_id as a number; the note carries Marker(key).
//   - CreateTask: POST /activities/v1/activities {"title" (the text's
//     first line),"type":"task","status":"planned","priority":"neutral",
//     "description" (text + Marker(key)),"start_time" (now),"end_time"
//     (due),"responsible_id","crm_entities":{"leads":[{"id"}],"contacts":
//     [{"id"}]}}. The crm_entities shape is the JS SDK's read shape; what
//     the create accepts is unconfirmed.
//   - FillUTM: GET /crm/v1/entities/{leads|deals}/{id}, then PATCH on the
//     same path with the non-empty utm_* fields only when all five are
//     empty.
//   - UpdateFields (a form's client found): PATCH
//     /crm/v1/entities/{contacts|leads|deals}/{id} with the mapped field
//     codes at the top level, as creates send them; whether Uspacy refuses
//     an unknown code is unconfirmed (the fake accepts and ignores it).
//   - Find: calls and tasks are listed with the SDKs' search filter
//     (GET /crm/v1/events/call or /activities/v1/activities ?search=key&
//     page=1&list=100) and only an answer carrying the marker in its note
//     or description (or, for a call, the hashed external_id) counts.
//     Which fields Uspacy's search looks at is unconfirmed: if it does not
//     match the note, Find answers "" and the caller creates again. Leads
//     and UTM writes are crm.ErrNotSearchable: a lead has no field for the
//     key, and callrouter finds leads by phone.
//
// Created ids are read from the answer's "id", bare or under "data".
// Writes go through the same client, rate limit and token refresh as
// reads; POSTs are not retried after a 5xx or transport error (they may
// have been applied), only after 429/503.
package uspacy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// name is the adapter's name in integrations and errors.
const name = "uspacy"

// rps is the request rate the adapter keeps to. Uspacy publishes no limit;
// the Go SDK honours 429 Retry-After, and 5 rps is the reference's safe
// start.
const rps = 5

// Adapter connects Uspacy accounts.
var Adapter = crm.Adapter{Name: name, Check: Check, Seed: Seed, New: New}

// Credentials are the "credentials" of a Uspacy integration, as JSON.
// Either application credentials, preferred because the adapter can always
// sign in again with them:
//
//	{"client_id": "…", "client_secret": "…"}
//
// or a token pair from a user sign-in, access_token optional:
//
//	{"refresh_token": "…", "access_token": "…"}
//
// Both may be given: the pair is used first and the application signs in
// when its refresh token is refused. Other fields are ignored.
type Credentials struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	AccessToken  string `json:"access_token,omitempty"`
}

// hasApp reports whether c can sign in as an application.
func (c Credentials) hasApp() bool { return c.ClientID != "" && c.ClientSecret != "" }

// parseCredentials decodes and checks raw. EINVALID names the missing field.
func parseCredentials(raw json.RawMessage) (Credentials, error) {
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return Credentials{}, domain.Errorf(domain.EINVALID, "credentials: want a JSON object with client_id and client_secret, or refresh_token")
	}
	c.ClientID = strings.TrimSpace(c.ClientID)
	c.ClientSecret = strings.TrimSpace(c.ClientSecret)
	c.RefreshToken = strings.TrimSpace(c.RefreshToken)
	c.AccessToken = strings.TrimSpace(c.AccessToken)
	switch {
	case c.ClientID != "" && c.ClientSecret == "":
		return Credentials{}, domain.Errorf(domain.EINVALID, "credentials.client_secret: required")
	case c.ClientSecret != "" && c.ClientID == "":
		return Credentials{}, domain.Errorf(domain.EINVALID, "credentials.client_id: required")
	case c.hasApp():
	case c.AccessToken != "" && c.RefreshToken == "":
		// An access token alone dies within hours and cannot be renewed.
		return Credentials{}, domain.Errorf(domain.EINVALID, "credentials.refresh_token: required")
	case c.RefreshToken == "":
		return Credentials{}, domain.Errorf(domain.EINVALID, "credentials.client_id: required")
	}
	return c, nil
}

// Check validates Uspacy credentials (see Credentials). EINVALID names the
// missing field, e.g. "credentials.client_id: required".
func Check(raw json.RawMessage) error {
	_, err := parseCredentials(raw)
	return err
}

// Seed returns the token an integration starts from: the token pair when
// the credentials carry one, else a token with no access token whose
// refresh token is a marker that makes the first request sign in with the
// application credentials (crm.OAuth only calls the RefreshFunc when there
// is a refresh token). ok is false only for credentials Check rejects.
func Seed(raw json.RawMessage) (crm.Token, bool) {
	c, err := parseCredentials(raw)
	if err != nil {
		return crm.Token{}, false
	}
	if c.RefreshToken != "" {
		tok := crm.Token{Access: c.AccessToken, Refresh: c.RefreshToken}
		if c.AccessToken != "" {
			tok.Expiry = jwtExpiry(c.AccessToken)
		}
		return tok, true
	}
	return crm.Token{Refresh: signInMarker}, true
}

var _ crm.Source = (*source)(nil)

// source is one connected Uspacy account; it implements crm.Source.
type source struct {
	api   *crm.HTTP // CRM calls, with the bearer token
	auth  *crm.HTTP // sign-in and refresh, which carry their own credentials
	lim   *crm.Limiter
	creds Credentials
	now   func() time.Time
}

// New connects to the Uspacy account at cfg.BaseURL (e.g.
// https://acme.uspacy.ua). EINVALID for bad credentials, a bad base URL or
// a missing token store.
func New(cfg crm.Config, deps crm.Deps) (crm.Source, error) {
	c, err := parseCredentials(cfg.Creds)
	if err != nil {
		return nil, err
	}
	if deps.Tokens == nil {
		return nil, domain.Errorf(domain.EINVALID, "uspacy: a token store is required")
	}
	s := &source{
		creds: c,
		now:   deps.Now,
		// One limiter for every request, CRM calls and token calls alike:
		// a refresh in the middle of a sync counts against the same
		// account limit as the sync.
		lim: deps.Limiter("api", rps),
	}
	if s.now == nil {
		s.now = time.Now
	}
	oauth := crm.NewOAuth(deps.Tokens, s.refresh, nil, time.Minute, deps.Now)
	s.api, err = crm.NewHTTP(crm.HTTPConfig{
		CRM: name, BaseURL: cfg.BaseURL, Auth: oauth, Limiter: s.lim, ErrorText: errorText,
		Transport: deps.Transport, Sleep: deps.Sleep,
	})
	if err != nil {
		return nil, err
	}
	s.auth, err = crm.NewHTTP(crm.HTTPConfig{
		CRM: name, BaseURL: cfg.BaseURL, ErrorText: errorText,
		// The auth endpoints answer a bad or used refresh token, or bad app
		// credentials, with one of these; all of them mean "sign in again".
		IsAuthFailure: func(status int, _ []byte) bool {
			switch status {
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity:
				return true
			}
			return false
		},
		Transport: deps.Transport, Sleep: deps.Sleep,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// get sends a GET, within the account's rate.
func (s *source) get(ctx context.Context, path string, q url.Values) (*crm.Response, error) {
	return s.api.Do(ctx, crm.Request{Method: http.MethodGet, Path: path, Query: q})
}

// serverTime returns the CRM's clock from an answer's Date header, our own
// when there is none: updated_at values are the CRM's clock, so the time a
// pass starts is taken from the same one.
func (s *source) serverTime(resp *crm.Response) time.Time {
	if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		return t
	}
	return s.now()
}

// errorText extracts Uspacy's error message ({"status":…,"message":…} or
// {"error":…}) from a failed answer, the start of the body otherwise.
func errorText(_ int, body []byte) string {
	var e struct {
		Message flexString `json:"message"`
		Error   flexString `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		for _, m := range []flexString{e.Message, e.Error} {
			if m != "" {
				return crm.Snippet([]byte(m))
			}
		}
	}
	return crm.Snippet(body)
}

// isNotFound reports whether err is the CRM's 404.
func isNotFound(err error) bool {
	var se *crm.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}
