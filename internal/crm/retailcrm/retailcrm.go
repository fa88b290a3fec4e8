// Package retailcrm is the retailCRM (Simla) API v5 adapter.
//
// # Connecting
//
// The integration's base URL is the account, e.g. https://acme.retailcrm.ru
// (a trailing /api/v5 is accepted and dropped); the credentials are
// {"api_key": "...", "site": "...", "module_code": "..."}, see
// Credentials. The key needs read access to customers, orders, their
// history, users, user groups, the order status reference and the
// telephony manager method; to write calls it needs customers, orders and
// tasks creation, order editing, integration modules editing (callrouter
// registers itself as the telephony integration module) and the telephony
// calls upload.
//
// # What is indexed
//
//   - Customers (/api/v5/customers) are contacts: phones[].number, owner
//     managerId, name "firstName lastName".
//   - Orders (/api/v5/orders) are deals: phone, additionalPhone and the
//     phones of the linked customer and contact person, owner managerId,
//     name the order number. An order is closed when its status belongs to
//     the "complete" or "cancel" status group, read from
//     /api/v5/reference/statuses (cached for ten minutes); when the key may
//     not read that reference (Access denied.), the final codes of a new
//     account are used instead: complete, cancel-other, no-call,
//     no-product, already-buyed, delyvery-did-not-suit,
//     prices-did-not-suit, canceled.
//   - Corporate customers (/api/v5/customers-corporate) are not indexed: they
//     carry no phones of their own. Their phones live on their contact
//     persons, who are ordinary customers and are indexed as contacts.
//
// retailCRM keeps no update time on customers or orders, so UpdatedAt is the
// time of the change when a history record carried the entity, and
// otherwise the creation time (orders: the later of creation and last status
// change). retailCRM writes times as "Y-m-d H:i:s" in the account's time
// zone; they are read as UTC, which only shifts the order of entities
// changed within hours of each other.
//
// # Sync
//
// A full sync first notes where the customer and order history feeds end,
// then pages through customers and then orders (limit 100, page N). When it
// is done its cursor holds those history positions, and incremental syncs
// read /api/v5/customers/history and /api/v5/orders/history with
// filter[sinceId], so whatever changed during the full sync is replayed. A
// history record that creates an entity carries it whole; one that deletes
// it reports it deleted; a change of a field routing depends on (phones,
// manager, names, and for orders also status, customer and contact) asks
// the engine to refetch the entity. Other changes (segments, addresses,
// custom fields, items ...) are skipped, since retailCRM recomputes
// segments by the thousand and refetching for them would eat the rate
// limit.
//
// # Telephony integration module
//
// retailCRM authorises its telephony methods (telephony/calls/upload,
// telephony/manager) only for an integrator registered as a telephony
// integration module (seed 002; retailCRM's documented algorithm: register,
// map users' extensions and external numbers, upload calls, use the
// responsible manager). Source implements crm.Registrar: whenever a full
// sync starts (connect, every activation) the engine calls Register, which
// posts POST /api/v5/integration-modules/{code}/edit with the form field
// integrationModule = {code, integrationCode, active: true, name
// "callrouter (<tenant>)", clientId = the tenant id, baseUrl when
// credentials.module_base_url is set, integrations.telephony {allowEdit:
// false, inputEventSupported/outputEventSupported/hangupEventSupported:
// false, additionalCodes [{code: SIP login (else phone), userId}],
// externalPhones [{siteCode, externalPhone: "+digits"}]}} (shapes of the
// official api-client-go IntegrationModule and Telephony types). The code
// is credentials.module_code, default "callrouter". The module then shows in
// the account's integrations list. Unconfirmed: whether a real account
// requires baseUrl or makeCallUrl for a telephony module (callrouter
// serves no click-to-call, so it sends neither unless module_base_url is
// set), and the exact refusal of the telephony methods before
// registration (the fake answers 400 with an errorMsg).
//
// Users, the users offered for mapping employees, are the active members of
// the account's manager groups (GET /api/v5/user-groups, isManager; then
// /api/v5/users?filter[active]=1&filter[groups][]=<code>), or all active
// users when there is no such group or the key may not read the groups.
//
// # Live lookup
//
// FindByPhone asks /api/v5/telephony/manager, the method retailCRM offers
// for routing an incoming call: it returns the customer with the phone and
// their responsible manager, and is limited separately (40 rps) from the
// rest of the API (10 rps), so live lookups never wait behind a sync. It
// finds customers only; open orders are found through the index. There is
// no fallback to /api/v5/customers?filter[name]=: whether it matches phone
// digits in every format is unconfirmed, and a second sequential request
// would not fit a live call's budget.
//
// # Webhooks
//
// retailCRM has no API to subscribe to entity changes, but its triggers
// can call an HTTP address. To get changes to callrouter within seconds
// instead of at the next poll, an admin creates a trigger on customer or
// order changes with the action "HTTP request": method POST, address
// https://<callrouter>/crm/<tenant>/webhook?key=<webhook secret>, and
// either a JSON body
//
//	{"type": "customer", "id": {{ customer.id }}}
//	{"type": "order", "id": {{ order.id }}}
//
// or the form parameters type=customer|order and id=<id>. Adding
// "deleted": true (form deleted=1) reports a deletion; otherwise callrouter
// rereads the entity, so one trigger on any change is enough.
//
// # Writing what a call leaves
//
// Source implements crm.Writer. Every POST is a form
// (application/x-www-form-urlencoded) with the entity as one JSON field and
// site=<Credentials.Site> when set. retailCRM reads API datetimes in the
// account's time zone (Settings, shown by GET /api/v5/settings), so call
// dates and task due times are written as local times in the project's
// timezone setting (NewCall.Zone, NewTask.Zone), which must be the
// account's.
//
//   - CreateLead makes a customer (POST /api/v5/customers/create:
//     firstName = title, phones[{number: "+<phone>"}], managerId) unless
//     ContactID names one, then an order, retailCRM's deal (POST
//     /api/v5/orders/create: externalId = the key, customer {id}, phone,
//     firstName, managerId, orderType = the pipeline, UTM in source
//     {source, medium, campaign, keyword (term), content} and the Google
//     client id in clientId). The order gets the account's default status,
//     which is open, so the orders history (Changes) and Get carry it open
//     with its manager. FindByPhone (telephony/manager) finds the customer,
//     owned by the same manager, not the order.
//   - CreateCall uploads the call (POST /api/v5/telephony/calls/upload,
//     under the 40 rps telephony limit): date, type in|out, phone, userId,
//     result (answered, no answer, busy, failed), duration and
//     durationWaiting in seconds, recordUrl, externalPhone (the dialled
//     line, incoming calls) and externalId = the key. The method answers no
//     id, so the key is the call's id. retailCRM files the call under the
//     customer and orders of its phone itself; the Lead and Contact refs
//     cannot be sent.
//   - CreateTask: POST /api/v5/tasks/create with text, commentary
//     "[cr:KEY]", datetime ("Y-m-d H:i"), performerId, order {id},
//     customer {id} and phone.
//   - FillUTM reads GET /api/v5/orders/{id}?by=id and, only when source and
//     clientId are all empty, writes them with POST
//     /api/v5/orders/{id}/edit (by=id).
//   - UpdateFields (a form's client found): POST
//     /api/v5/customers/{id}/edit or /api/v5/orders/{id}/edit, by=id,
//     customer= or order={"customFields":{code: value}}; retailCRM edits
//     what is sent and keeps the rest (the form shape of api-client-go
//     CustomerEdit/OrderEdit; that unsent fields are kept is unconfirmed).
//   - Find: a lead by its externalId (GET /api/v5/orders/{key}?by=externalId,
//     404 Not found is ""); a task under an order by the order's number
//     (GET /api/v5/tasks?filter[orderNumber]=) and the marker in its
//     commentary or text. Calls are crm.ErrNotSearchable: API v5 has no
//     method listing calls. So are tasks under a customer only, since
//     filter[customer] matches by an unspecified text search.
//
// Unconfirmed on a live account: whether tasks/create accepts order and
// customer together (the form in retailCRM's UI links one of them);
// whether the task list shows commentary; whether calls/upload answers
// processedCallsCount 0 rather than an error for a call it cannot file;
// clientId being writable by orders/edit.
//
// # Errors
//
// A rejected key ("Wrong \"apiKey\" value." with HTTP 403 or 401), a
// missing key ("\"apiKey\" is missing.") and a deleted account ("Account
// does not exist.", or nginx's HTML 405 page that retailCRM serves for
// accounts that are gone) are *crm.AuthError with retailCRM's message: the
// integration stays broken until an admin fixes it. "Access denied." (the
// key lacks a method or site) is an ordinary *crm.StatusError, as is a
// validation error (400 "Errors in the entity format"), which
// crm.IsPermanent reports as permanent. 503 and 429 answers are retried
// honouring Retry-After, writes included; other failed writes are not
// retried, since retailCRM may have applied them.
package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// name is the adapter's name in configurations and errors.
const name = "retailcrm"

// Documented rate limits per API key: the API as a whole, and the
// telephony methods, which have their own, higher limit.
const (
	apiRPS       = 10
	telephonyRPS = 40
)

// pageLimit is the largest page retailCRM serves (limits are 20, 50, 100).
const pageLimit = 100

// Adapter connects callrouter to retailCRM accounts.
var Adapter = crm.Adapter{
	Name:  name,
	Check: Check,
	Seed:  func(json.RawMessage) (crm.Token, bool) { return crm.Token{}, false },
	New:   New,
}

// Credentials are a retailCRM integration's credentials as the admin sends
// them: {"api_key": "...", "site": "..."}.
type Credentials struct {
	// APIKey is an API key created under Settings → Integration → API
	// access keys. It never expires; retailCRM rejects it once deleted.
	APIKey string `json:"api_key"`
	// Site is the symbolic code of the account's store to write to on
	// multi-site accounts (retailCRM requires it when creating customers,
	// orders and tasks with a key that may use several sites). Optional; it
	// does not filter what is read.
	Site string `json:"site,omitempty"`
	// ModuleCode is the code callrouter registers its telephony
	// integration module under (default "callrouter"); one account with
	// several callrouter projects needs one code per project.
	ModuleCode string `json:"module_code,omitempty"`
	// ModuleBaseURL is the address the module shows as its base URL
	// (optional; callrouter serves retailCRM no callbacks).
	ModuleBaseURL string `json:"module_base_url,omitempty"`
}

// defaultModuleCode is the integration module code when the credentials
// name none.
const defaultModuleCode = "callrouter"

// parseCreds decodes and validates credentials; EINVALID names the field.
func parseCreds(raw json.RawMessage) (Credentials, error) {
	var c Credentials
	if len(raw) == 0 {
		return c, domain.Errorf(domain.EINVALID, "credentials.api_key: required")
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return c, domain.Errorf(domain.EINVALID, "credentials.%s: must be a string", te.Field)
		}
		return c, domain.Errorf(domain.EINVALID, "credentials: not a JSON object")
	}
	c.APIKey, c.Site = strings.TrimSpace(c.APIKey), strings.TrimSpace(c.Site)
	c.ModuleCode, c.ModuleBaseURL = strings.TrimSpace(c.ModuleCode), strings.TrimSpace(c.ModuleBaseURL)
	if c.APIKey == "" {
		return c, domain.Errorf(domain.EINVALID, "credentials.api_key: required")
	}
	if c.ModuleCode == "" {
		c.ModuleCode = defaultModuleCode
	}
	if !validModuleCode(c.ModuleCode) {
		return c, domain.Errorf(domain.EINVALID, "credentials.module_code: 1-64 characters of a-z, 0-9, '-' and '_', got %q", c.ModuleCode)
	}
	if c.ModuleBaseURL != "" {
		if u, err := url.Parse(c.ModuleBaseURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return c, domain.Errorf(domain.EINVALID, "credentials.module_base_url: must be an https URL")
		}
	}
	// The key travels in a header: a line break in it would be a header
	// injection, and no retailCRM key has one.
	if strings.ContainsAny(c.APIKey, "\r\n") {
		return c, domain.Errorf(domain.EINVALID, "credentials.api_key: must be one line")
	}
	return c, nil
}

// validModuleCode accepts what goes into the module's URL path unescaped.
func validModuleCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !(c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9' || c[i] == '-' || c[i] == '_') {
			return false
		}
	}
	return true
}

// Check validates retailCRM credentials. It returns an EINVALID error that
// names the bad or missing field, e.g. "credentials.api_key: required".
func Check(creds json.RawMessage) error {
	_, err := parseCreds(creds)
	return err
}

// Source is one connected retailCRM account. It is safe for concurrent use.
type Source struct {
	http *crm.HTTP
	// tel limits the telephony methods, which retailCRM counts apart from
	// the rest of the API.
	tel *crm.Limiter
	now func() time.Time
	// site is the store code creates are sent with; "" lets retailCRM
	// use the key's only store.
	site string
	// module and moduleBase are the telephony integration module's code
	// and base URL (Register).
	module, moduleBase string
	baseURL            string

	mu       sync.Mutex
	final    map[string]bool // order status code → in a final group
	loadedAt time.Time       // when final was loaded; zero: never
}

var _ crm.Source = (*Source)(nil)

// New connects to the retailCRM account at cfg.BaseURL. It returns an
// EINVALID error for bad credentials or a bad base URL; it does not call
// the CRM.
func New(cfg crm.Config, deps crm.Deps) (crm.Source, error) {
	creds, err := parseCreds(cfg.Creds)
	if err != nil {
		return nil, err
	}
	u, err := crm.CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	// Admins often paste the API root they see in retailCRM's docs.
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/api/v5"), "/api")
	h, err := crm.NewHTTP(crm.HTTPConfig{
		CRM:           name,
		BaseURL:       u.String(),
		Auth:          crm.StaticKey{Header: "X-API-KEY", Value: creds.APIKey},
		Limiter:       deps.Limiter("api", apiRPS),
		ErrorText:     errorText,
		IsAuthFailure: isAuthFailure,
		Transport:     deps.Transport,
		Sleep:         deps.Sleep,
	})
	if err != nil {
		return nil, err
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return &Source{http: h, tel: deps.Limiter("telephony", telephonyRPS), now: now, site: creds.Site,
		module: creds.ModuleCode, moduleBase: creds.ModuleBaseURL, baseURL: u.String()}, nil
}

// envelope is what every retailCRM answer carries.
type envelope struct {
	Success  bool            `json:"success"`
	ErrorMsg string          `json:"errorMsg"`
	Errors   json.RawMessage `json:"errors"`
}

func (e *envelope) env() *envelope { return e }

// answer is a decoded retailCRM answer.
type answer interface{ env() *envelope }

// pagination is the paging block of list answers.
type pagination struct {
	Limit          int `json:"limit"`
	TotalCount     int `json:"totalCount"`
	CurrentPage    int `json:"currentPage"`
	TotalPageCount int `json:"totalPageCount"`
}

// last reports whether page is the last one (or past it).
func (p pagination) last(page int) bool { return page >= p.TotalPageCount }

// get sends a GET through the client (the telephony limiter when tel) and
// decodes the answer into out. Errors are those of crm.HTTP.Do, an
// *crm.AuthError or *crm.StatusError for a 2xx answer that says
// "success": false, and a wrapped decoding error.
func (s *Source) get(ctx context.Context, path string, q url.Values, tel bool, out answer) error {
	req := crm.Request{Method: http.MethodGet, Path: path, Query: q}
	if tel {
		req.Limiter = s.tel
	}
	resp, err := s.http.Do(ctx, req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return fmt.Errorf("%s GET %s: decode answer: %w", name, path, err)
	}
	if e := out.env(); !e.Success {
		// retailCRM has answered errors with status 200 (see api-client-go's
		// "Account does not exist" tests); treat them like any failure.
		msg := errorText(resp.Status, resp.Body)
		if authMessage(e.ErrorMsg) {
			return &crm.AuthError{CRM: name, Status: resp.Status, Message: msg}
		}
		return &crm.StatusError{CRM: name, Method: http.MethodGet, Path: path, Status: resp.Status, Message: msg}
	}
	return nil
}

// isNotFound reports whether err is retailCRM's 404 "Not found" for a
// missing entity. Other 404s ("API method not found" from a wrong base URL)
// are not: taking them for deletions would empty the index.
func isNotFound(err error) bool {
	var se *crm.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound &&
		strings.TrimSuffix(se.Message, ".") == "Not found"
}
