// Package zoho is the Zoho CRM adapter: it pages through Leads, Deals,
// Contacts and Accounts (REST API v8) for the phone index, follows changes
// with If-Modified-Since and the deleted-records feed, searches by phone
// for live lookups, lists users, and parses Zoho's watch notifications.
//
// Layouts (fields.go): Zoho refuses a read whose fields= names a field the
// account's layout lacks, and a write carrying one (INVALID_DATA). Once per
// connection (a reconnect or an activation builds a new one) the adapter
// reads each module's field metadata, GET /crm/v8/settings/fields?module=…,
// asks only for the standard fields the layout has, and adds the layout's
// phone fields, custom ones included. A token without the scope to read
// metadata (ZohoCRM.settings.fields.READ; 401 OAUTH_SCOPE_MISMATCH or 403)
// gets the standard layout assumed, without custom fields. MissingFields
// (crm.FieldChecker) names the rs_ fields of seed 000 the account's Leads
// lack; /status shows them and leads are written without them.
//
// Deals (deals.go): a deal of the standard layout has no phone field; it
// reaches its customer through the Contact_Name and Account_Name lookups
// (reference/crm-apis.md §8). A deal is indexed under its own phone fields
// where the account added some, and its contact's and account's phones,
// read by id (GET /crm/v8/{Contacts|Accounts}?ids=…, 100 a request) when
// not read with it. A contact or account read by an incremental sync, a
// notification or a live lookup brings its deals along, read from its
// related list GET /crm/v8/{Contacts|Accounts}/{id}/Deals (one request per
// changed contact or account, 1 credit each); a deal moved to another
// contact is modified itself and read again. Deals are phone-searched only
// where the account gave them phone fields. So a caller whose contact has
// an open deal routes to the deal's owner by owner_order, and the call is
// filed on the deal (What_Id = the deal, $se_module = Deals).
//
// Zoho limits API use by daily credits and by requests in flight per
// organization (5 on the smallest edition), not by a request rate; see
// Concurrency. Writes share the reads' client, so the same bound holds.
//
// Writes (crm.Writer), one record a request, each with "trigger":[] so
// workflow and assignment rules do not move what callrouter assigned:
//   - CreateLead: POST /crm/v8/Leads with Last_Name and Company = the
//     title (Company is mandatory in the standard layout), Phone
//     "+digits", Owner {"id"}, the UTM custom fields rs_utm_source,
//     rs_utm_medium, rs_utm_campaign, rs_utm_term, rs_utm_content and
//     rs_google_client_id when set and the layout has them, and
//     "[cr:KEY]" in Description. A Zoho
//     lead holds its own phone, so no contact is created; a given contact
//     is returned as is. Leads have no pipeline: NewLead.Pipeline is
//     ignored. The lead is open (no Lead_Status) and is found by the phone
//     search and the sync like any other.
//   - CreateCall: POST /crm/v8/Calls with Subject "Incoming|Outgoing|Missed
//     call +digits [cr:KEY]", Call_Type Inbound, Outbound or Missed (an
//     incoming call nobody answered), Call_Start_Time in the project's
//     time zone (NewCall.Zone) with its offset,
//     Call_Duration "mm:ss" of the talk time (not for Missed),
//     Call_Result, Owner, What_Id + $se_module (Leads, Deals, Accounts)
//     and Who_Id for a contact, and a Description of "Label: value" lines:
//     Phone, Line, Disposition, Talk time, Wait, Recording (Zoho has no
//     writable recording field), PBX call id, then the marker.
//   - CreateTask: POST /crm/v8/Tasks with Subject = text + marker,
//     Due_Date (the project's local date: the due time with its offset
//     is written into Description), Status
//     "Not Started", Priority "High", Owner, What_Id/$se_module, Who_Id.
//   - FillUTM: GET /crm/v8/{Leads|Deals}/{id}?fields=<the UTM fields the
//     layout has>, then PUT /crm/v8/{Leads|Deals}/{id} only when all are
//     empty; nothing when the module has none.
//   - UpdateFields (a form's client found): PUT
//     /crm/v8/{Leads|Deals|Contacts}/{id} {"data":[{mapped API names}],
//     "trigger":[]}; Zoho keeps the fields not sent (v8 update records).
//
// Zoho's UI disables the contact of an activity filed under a lead (a lead
// is a person itself), so calls and tasks on a lead carry What_Id only;
// the contact is linked when the lead is a deal or there is no lead.
//
// Find searches calls and tasks with GET /crm/v8/{Calls|Tasks}/search?word=KEY
// (204 when nothing matches) and keeps only records whose Subject has the
// exact "[cr:KEY]" marker and that are linked to the parent. Leads and UTM
// writes answer crm.ErrNotSearchable: a lead is found again by its phone,
// and FillUTM is idempotent by itself.
//
// Unconfirmed against a live account: that word search tokenizes a key
// with '-' or '_' so it matches (the exact-marker check guards against
// false hits, not misses); how soon a new record reaches the search index
// (Zoho indexes with a delay, so Find right after a create can miss it and
// the caller creates a duplicate); whether Call_Result is a restricted
// picklist in some accounts (values sent: Answered, No answer, Busy,
// Failed, Voicemail, Not answered); that a contact in Who_Id is refused
// with a lead in What_Id (the reason it is left out); the exact wording
// of Zoho's refusal of an unknown field in fields= (the fake answers 400
// INVALID_DATA with details.api_name, the shape of Zoho's data errors);
// that a contact's related list answers 204 when it has no deals; whether
// deleting a contact clears its deals' Contact_Name (a deleted contact's
// phones stay on its deals until the deal is read again). A per-record
// refusal (in a 201, 207 or 400 answer) comes back as a 400
// *crm.StatusError, permanent.
package zoho

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Adapter is the Zoho CRM adapter. The integration's base_url is the
// account's API domain (https://www.zohoapis.com, .eu, .in, ...); the
// credentials are a Credentials object.
// Incremental syncs run at most every 5 minutes: a quiet round costs 8 API
// credits (deleted feed and list of four modules), and Zoho's Free edition
// grants 5,000 credits a day; notifications carry the changes in between.
var Adapter = crm.Adapter{Name: "zoho", Check: Check, Seed: Seed, New: New, MinInterval: 5 * time.Minute}

// Concurrency is how many requests one integration keeps in flight. Zoho
// allows 5 concurrent requests per organization on its smallest edition
// (Free) and up to 25 on larger ones, with a sub-limit of 10 for search and
// COQL, so 5 is safe on every edition. There is deliberately no per-second
// limit: Zoho has none, and a limiter with a burst of one would queue the
// three parallel searches of a live lookup behind each other, spending
// the call's routing budget while Zoho would have answered at once.
const Concurrency = 5

// DefaultAccountsURL is the accounts server used when the credentials name
// none (Zoho's US data center).
const DefaultAccountsURL = "https://accounts.zoho.com"

// apiPrefix is the REST API version used for every call.
const apiPrefix = "/crm/v8"

// earlyRefresh renews an access token this long before it expires: Zoho
// has been seen answering calls with an expired token with empty results
// instead of an error, so the token must never be used near its end.
const earlyRefresh = 5 * time.Minute

// Credentials are what an admin sends to connect a Zoho CRM account, from a
// self-client or server-based client registered in Zoho's API console:
//
//	{"client_id":"1000.XXXX","client_secret":"...","refresh_token":"1000.xxxx.yyyy",
//	 "accounts_url":"https://accounts.zoho.eu","webhook_token":"..."}
//
// client_id, client_secret and refresh_token are required. accounts_url is
// the accounts server of the account's data center and defaults to
// https://accounts.zoho.com; it must match the data center of base_url.
// webhook_token is optional: when set, notifications must carry it in
// their "token" field (the token given when the watch channel was created).
type Credentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	AccountsURL  string `json:"accounts_url,omitempty"`
	WebhookToken string `json:"webhook_token,omitempty"`
}

// Check validates Zoho credentials. It returns an EINVALID error naming the
// missing or bad field, e.g. "credentials.client_id: required".
func Check(creds json.RawMessage) error {
	_, err := parseCreds(creds)
	return err
}

// Seed returns the token an integration starts from: the refresh token
// alone, so the first request obtains an access token. ok is false when
// the credentials carry no refresh token.
func Seed(creds json.RawMessage) (crm.Token, bool) {
	c, err := parseCreds(creds)
	if err != nil {
		return crm.Token{}, false
	}
	return crm.Token{Refresh: c.RefreshToken}, true
}

// New connects to one Zoho CRM account. deps.Tokens must hold the
// integration's token (see Seed). It returns an EINVALID error for bad
// credentials or a bad base URL.
func New(cfg crm.Config, deps crm.Deps) (crm.Source, error) {
	creds, err := parseCreds(cfg.Creds)
	if err != nil {
		return nil, err
	}
	if deps.Tokens == nil {
		return nil, errors.New("zoho: deps.Tokens is required")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	auth := crm.NewOAuth(deps.Tokens, newRefresher(creds, deps.Transport, now).refresh,
		func(t string) (string, string) { return "Authorization", "Zoho-oauthtoken " + t },
		earlyRefresh, now)
	h, err := crm.NewHTTP(crm.HTTPConfig{
		CRM:           "zoho",
		BaseURL:       cfg.BaseURL,
		Auth:          auth,
		Concurrency:   Concurrency,
		ErrorText:     errorText,
		IsAuthFailure: isAuthFailure,
		Transport:     deps.Transport,
		Sleep:         deps.Sleep,
	})
	if err != nil {
		return nil, err
	}
	return &source{http: h, now: now, webhookToken: creds.WebhookToken}, nil
}

// parseCreds decodes and validates credentials, filling the default
// accounts server.
func parseCreds(raw json.RawMessage) (Credentials, error) {
	var c Credentials
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, domain.Errorf(domain.EINVALID, "credentials: required")
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, domain.Errorf(domain.EINVALID, "credentials: not a JSON object with client_id, client_secret, refresh_token")
	}
	for _, f := range []struct{ name, val string }{
		{"client_id", c.ClientID}, {"client_secret", c.ClientSecret}, {"refresh_token", c.RefreshToken},
	} {
		if strings.TrimSpace(f.val) == "" {
			return c, domain.Errorf(domain.EINVALID, "credentials.%s: required", f.name)
		}
	}
	if strings.TrimSpace(c.AccountsURL) == "" {
		c.AccountsURL = DefaultAccountsURL
	}
	u, err := crm.CheckBaseURL(c.AccountsURL)
	if err != nil {
		return c, domain.Errorf(domain.EINVALID, "credentials.accounts_url: %s",
			strings.TrimPrefix(domain.ErrorMessage(err), "base_url: "))
	}
	c.AccountsURL = u.String()
	return c, nil
}

// errorText extracts Zoho's error from a failed answer: the envelope
// {"code","details","message","status":"error"}, the same inside "data"
// (per-record errors), or an accounts-server {"error":...}.
func errorText(_ int, body []byte) string {
	var e struct {
		zohoError
		Data  []zohoError `json:"data"`
		Error string      `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.Code != "":
			return e.text()
		case len(e.Data) > 0 && e.Data[0].Code != "":
			return e.Data[0].text()
		case e.Error != "":
			return e.Error
		}
	}
	return crm.Snippet(body)
}

// zohoError is Zoho's error envelope.
type zohoError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e zohoError) text() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// isAuthFailure reports whether Zoho rejected the access token: any 401
// (INVALID_TOKEN, INVALID_OAUTHTOKEN, OAUTH_SCOPE_MISMATCH,
// AUTHENTICATION_FAILURE), or one of the token codes under another status.
func isAuthFailure(status int, body []byte) bool {
	if status == http.StatusUnauthorized {
		return true
	}
	if status/100 != 4 {
		return false
	}
	var e zohoError
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	switch e.Code {
	case "INVALID_TOKEN", "INVALID_OAUTHTOKEN", "AUTHENTICATION_FAILURE":
		return true
	}
	return false
}
