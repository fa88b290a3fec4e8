// Package zohofake is a fake Zoho CRM account for tests: one loopback
// server that is both the API domain (/crm/v8/...) and the accounts server
// (/oauth/v2/token), speaking Zoho's shapes and errors as documented in
// reference/crm-apis.md §2. It enforces what a real account would punish:
// more than 5 requests in flight (the smallest edition's concurrency, a
// test failure here), page numbers past 2000 records, page tokens past
// their limit, expired or revoked tokens.
//
// Modules have layouts (layout.go): Zoho's standard fields, where Deals
// have no phone field and reach their customer through Contact_Name and
// Account_Name, plus custom fields (the six rs_ fields on Leads and Deals
// by default; AddField, RemoveField). A read whose fields= names a field
// the layout lacks, and a write carrying one, are refused with
// INVALID_DATA naming it, as Zoho refuses them.
//
// It serves: POST /oauth/v2/token (refresh grant); GET /crm/v8/users;
// GET /crm/v8/settings/fields?module=; GET /crm/v8/{module} (lists,
// ids=); GET /crm/v8/{module}/search (phone= over the layout's phone
// fields, or word=, 204 on no match); GET /crm/v8/{module}/deleted;
// GET /crm/v8/{Contacts|Accounts}/{id}/Deals (related deals); and writes:
// POST /crm/v8/{module} (Leads, Contacts, Deals, Accounts, Calls, Tasks;
// up to 100 records, each checked for the standard layout's mandatory
// fields, Call_Type, date formats and existing lookups, answered 201, 207
// or 400 with per-record codes), GET /crm/v8/{module}/{id} (204 when
// missing) and PUT /crm/v8/{module}/{id}. Created leads, contacts, deals
// and accounts are ordinary records (listed, searched, owned); calls and
// tasks are searchable only. Written (crmtest.Writes) reads a call's Key
// from the "[cr:KEY]" marker of its Subject or Description, its Phone and
// Recording from the "Phone: " and "Recording: " lines of Description, and
// counts it answered when Call_Type is Inbound, or Outbound with
// Call_Result "Answered" or a Call_Duration over 00:00; a task's Text is
// its Subject without the marker and Due its Due_Date (UTC midnight).
package zohofake

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// ConcurrencyLimit is how many API requests may be in flight at once; one
// more fails the test.
const ConcurrencyLimit = 5

// MeterRPS bounds the request rate the meter allows. Zoho publishes no
// per-second limit (it counts credits per day and requests in flight), so
// this is only a sanity bound against runaway loops.
const MeterRPS = 1000

const (
	tokenLife       = time.Hour
	pageTokenLife   = 24 * time.Hour
	discreteLimit   = 2000
	pageTokenLimit  = 100000
	maxPerPage      = 200
	maxIDs          = 100
	tokensPerGrant  = 15 // active access tokens per refresh token
	refreshesPer10m = 10
	timeLayout      = "2006-01-02T15:04:05-07:00"
)

// orgZone is the organization's time zone: Zoho writes times in it, so
// clients must parse offsets rather than assume UTC.
var orgZone = time.FixedZone("IST", 5*3600+1800)

// moduleKinds maps modules to entity kinds.
var moduleKinds = map[string]domain.EntityKind{
	"Leads": domain.KindLead, "Deals": domain.KindDeal, "Contacts": domain.KindContact, "Accounts": domain.KindCompany,
}

func moduleOf(k domain.EntityKind) (string, bool) {
	for m, kind := range moduleKinds {
		if kind == k {
			return m, true
		}
	}
	return "", false
}

// Request is one API request the fake served.
type Request struct {
	Method          string
	Path            string
	Query           url.Values
	IfModifiedSince string
	Status          int
}

// Server is a fake Zoho CRM account. Create it with New.
type Server struct {
	t       testing.TB
	srv     *httptest.Server
	meter   *crmtest.RateMeter
	closing chan struct{}

	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu           sync.Mutex
	now          func() time.Time
	clientID     string
	clientSecret string
	refreshToken string
	webhookToken string
	revoked      bool
	access       map[string]time.Time // access token → expiry
	issued       []string             // access tokens in issue order
	refreshTimes []time.Time
	records      map[string]map[string]*record // module → id → record
	layouts      map[string][]field            // module → its fields (layout.go)
	refuseMeta   bool
	deleted      map[string][]deletion
	users        []crm.User
	pageTokens   map[string]pageToken
	tokenLimit   int
	nextID       int64
	delay        time.Duration
	tokenDelay   time.Duration
	fail429      int
	retryAfter   time.Duration
	hook         func(*http.Request)
	log          []Request
	// Writes through the API (writes.go).
	seq        int
	written    crmtest.Written
	failWrites int
	failStatus int
}

type record struct {
	id       string
	fields   map[string]any
	created  time.Time
	modified time.Time
	version  int
}

type deletion struct {
	id, name string
	at       time.Time
}

// pageToken is what a next_page_token stands for; the token is bound to
// the query it came from, as Zoho's are.
type pageToken struct {
	module, bound string
	offset        int
	expiry        time.Time
}

var _ crmtest.Fake = (*Server)(nil)

// New starts a fake account on a loopback port; it stops when the test
// ends. Its clock is time.Now until SetClock.
func New(t testing.TB) *Server {
	s := &Server{
		t:            t,
		closing:      make(chan struct{}),
		now:          time.Now,
		clientID:     "1000.FAKE" + strings.ToUpper(rand.Text()[:20]),
		clientSecret: strings.ToLower(rand.Text()),
		refreshToken: "1000." + strings.ToLower(rand.Text()) + "." + strings.ToLower(rand.Text()),
		webhookToken: "channel-" + strings.ToLower(rand.Text()[:16]),
		access:       map[string]time.Time{},
		records:      map[string]map[string]*record{},
		layouts:      defaultLayouts(),
		deleted:      map[string][]deletion{},
		pageTokens:   map[string]pageToken{},
		tokenLimit:   pageTokenLimit,
		nextID:       4150868000000300001,
	}
	s.meter = crmtest.NewRateMeter(t, MeterRPS)
	api := http.NewServeMux()
	api.HandleFunc("GET /crm/v8/users", s.serveUsers)
	api.HandleFunc("GET /crm/v8/settings/fields", s.serveFields)
	api.HandleFunc("GET /crm/v8/{module}/{id}/{related}", s.serveRelated)
	api.HandleFunc("GET /crm/v8/{module}", s.serveList)
	api.HandleFunc("GET /crm/v8/{module}/search", s.serveSearch)
	api.HandleFunc("GET /crm/v8/{module}/deleted", s.serveDeleted)
	api.HandleFunc("GET /crm/v8/{module}/{id}", s.serveRecord)
	api.HandleFunc("POST /crm/v8/{module}", s.serveCreate)
	api.HandleFunc("PUT /crm/v8/{module}/{id}", s.serveUpdate)
	api.HandleFunc("POST /crm/v8/{module}/upsert", s.serveUpsert)                // people.go
	api.HandleFunc("POST /crm/v8/{module}/{id}/actions/convert", s.serveConvert) // people.go
	api.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", nil)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/v2/token", s.serveToken)
	mux.Handle("/crm/", s.meter.Wrap(s.apiGate(api)))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.closing) // release hanging requests before Close waits for them
		s.srv.Close()
	})
	return s
}

// URL is the API domain, and the accounts server too.
func (s *Server) URL() string { return s.srv.URL }

// Creds are credentials this account accepts.
func (s *Server) Creds() json.RawMessage {
	b, _ := json.Marshal(map[string]string{
		"client_id": s.clientID, "client_secret": s.clientSecret, "refresh_token": s.refreshToken,
		"accounts_url": s.srv.URL, "webhook_token": s.webhookToken,
	})
	return b
}

// Meter counts API requests (the token endpoint is not metered).
func (s *Server) Meter() *crmtest.RateMeter { return s.meter }

// SetClock sets the account's clock: records' Modified_Time, deletion
// times and token expiry follow it.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Put creates or replaces the record of e in its module (Leads, Deals,
// Contacts, Accounts) with Modified_Time now. Phones fill the module's
// phone fields in layout order (Leads 2, Contacts 4, Accounts 1, plus
// custom phone fields AddField made); more fail the test. Deals of the
// standard layout have no phone field: their phones go to a contact Put
// links through Contact_Name (the same contact on every Put of the deal),
// as a deal reaches its customer in Zoho. Open=false becomes Lead_Status
// "Lost Lead" or Stage "Closed Lost".
func (s *Server) Put(e crm.Entity) {
	m, ok := moduleOf(e.Kind)
	if !ok {
		s.t.Errorf("zohofake: Put: no module holds %q", e.Kind)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pf := s.phoneFieldsLocked(m)
	f := map[string]any{}
	if m == "Deals" && len(pf) == 0 {
		if old := s.records[m][e.ID]; old != nil {
			f["Contact_Name"] = old.fields["Contact_Name"]
			f["Account_Name"] = old.fields["Account_Name"]
		}
		if len(e.Phones) > 0 {
			cf := map[string]any{"Full_Name": e.Name, "Last_Name": e.Name}
			cpf := s.phoneFieldsLocked("Contacts")
			if len(e.Phones) > len(cpf) {
				s.t.Errorf("zohofake: Put: the deal's contact has %d phone fields, got %d phones", len(cpf), len(e.Phones))
				return
			}
			for i, p := range e.Phones {
				cf[cpf[i]] = p
			}
			if e.OwnerID != "" {
				cf["Owner"] = s.ownerLocked(e.OwnerID)
			}
			cid := lookupID(f["Contact_Name"])
			cid = s.putLocked("Contacts", cid, cf)
			f["Contact_Name"] = map[string]any{"name": e.Name, "id": cid}
		}
	} else {
		if len(e.Phones) > len(pf) {
			s.t.Errorf("zohofake: Put: %s have %d phone fields (%s), got %d phones", m, len(pf), strings.Join(pf, ", "), len(e.Phones))
			return
		}
		for i, p := range e.Phones {
			f[pf[i]] = p
		}
	}
	switch m {
	case "Leads":
		f["Full_Name"], f["Last_Name"], f["Lead_Status"] = e.Name, e.Name, "Contacted"
		if !e.Open {
			f["Lead_Status"] = "Lost Lead"
		}
	case "Deals":
		f["Deal_Name"], f["Stage"] = e.Name, "Qualification"
		if !e.Open {
			f["Stage"] = "Closed Lost"
		}
	case "Contacts":
		f["Full_Name"], f["Last_Name"] = e.Name, e.Name
	case "Accounts":
		f["Account_Name"] = e.Name
	}
	if e.OwnerID != "" {
		f["Owner"] = s.ownerLocked(e.OwnerID)
	}
	s.putLocked(m, e.ID, f)
}

// DealContact returns the id of the contact a deal's Contact_Name links
// to, "" when none.
func (s *Server) DealContact(dealID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.records["Deals"][dealID]; rec != nil {
		return lookupID(rec.fields["Contact_Name"])
	}
	return ""
}

// PutRecord creates or replaces a record of module from Zoho field values
// as they appear in API answers (e.g. "Lead_Status", "$converted",
// "Owner": {"id": ...}), with Modified_Time now, and returns its id
// (fields["id"], or a new one).
func (s *Server) PutRecord(module string, fields map[string]any) string {
	if _, ok := moduleKinds[module]; !ok {
		s.t.Errorf("zohofake: PutRecord: unknown module %q", module)
		return ""
	}
	f := make(map[string]any, len(fields))
	id, _ := fields["id"].(string)
	for k, v := range fields {
		if k != "id" {
			f[k] = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(module, id, f)
}

func (s *Server) putLocked(module, id string, f map[string]any) string {
	if id == "" {
		id = strconv.FormatInt(s.nextID, 10)
		s.nextID++
	}
	now := s.now().Truncate(time.Second)
	if s.records[module] == nil {
		s.records[module] = map[string]*record{}
	}
	r := s.records[module][id]
	if r == nil {
		r = &record{id: id, created: now}
		s.records[module][id] = r
	}
	r.fields, r.modified = f, now
	r.version++
	r.fields["Created_Time"] = r.created.In(orgZone).Format(timeLayout)
	r.fields["Modified_Time"] = now.In(orgZone).Format(timeLayout)
	return id
}

func (s *Server) ownerLocked(id string) map[string]any {
	for _, u := range s.users {
		if u.ID == id {
			return map[string]any{"name": u.Name, "id": id, "email": u.Email}
		}
	}
	return map[string]any{"name": "User " + id, "id": id, "email": nil}
}

// Delete moves a record to the recycle bin: it leaves the lists and
// appears in the deleted-records feed.
func (s *Server) Delete(r crm.Ref) {
	m, ok := moduleOf(r.Kind)
	if !ok {
		s.t.Errorf("zohofake: Delete: no module holds %q", r.Kind)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[m][r.ID]
	if rec == nil {
		return
	}
	delete(s.records[m], r.ID)
	name, _ := rec.fields["Full_Name"].(string)
	s.deleted[m] = append(s.deleted[m], deletion{id: r.ID, name: name, at: s.now().Truncate(time.Second)})
}

// SetUsers replaces the account's users.
func (s *Server) SetUsers(users []crm.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = slices.Clone(users)
}

// Revoke removes the connection: access tokens stop working and the
// refresh token is answered with HTTP 200 {"error":"invalid_code"}.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	clear(s.access)
	s.issued = nil
}

// ExpireAccessTokens makes every access token issued so far invalid, as
// if an hour had passed on Zoho's side; the refresh token keeps working.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
	s.issued = nil
}

// SetDelay makes API answers take d; a negative d hangs each request
// until the client gives up.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetTokenDelay is SetDelay for the token endpoint.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// Inject429 makes the next n API requests fail with 429 TOO_MANY_REQUESTS
// and a Retry-After of retryAfter (whole seconds; 0: no header).
func (s *Server) Inject429(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail429, s.retryAfter = n, retryAfter
}

// SetPageTokenLimit lowers how many records page tokens reach (Zoho:
// 100,000) so tests can meet PAGINATION_LIMIT_EXCEEDED.
func (s *Server) SetPageTokenLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLimit = n
}

// SetHook calls f with each API request that reaches the account, before
// its token is checked; nil removes it.
func (s *Server) SetHook(f func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

// Refreshes returns how many access tokens the token endpoint issued.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.refreshTimes)
}

// MaxInFlight returns the most API requests seen in flight at once.
func (s *Server) MaxInFlight() int { return int(s.maxInFlight.Load()) }

// Requests returns the API requests served so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Notification returns the watch-channel callback Zoho would post after a
// change of r: "insert" for a new record, "update" for a changed one,
// "delete" for one that is gone. ok is false for kinds Zoho has no module
// for here.
func (s *Server) Notification(r crm.Ref) (string, []byte, bool) {
	m, ok := moduleOf(r.Kind)
	if !ok {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := "delete"
	if rec := s.records[m][r.ID]; rec != nil {
		op = "update"
		if rec.version == 1 {
			op = "insert"
		}
	}
	b, _ := json.Marshal(map[string]any{
		"server_time":     s.now().UnixMilli(),
		"module":          m,
		"resource_uri":    s.srv.URL + "/crm/v8/" + m,
		"ids":             []string{r.ID},
		"affected_fields": []any{},
		"query_params":    map[string]any{},
		"channel_id":      1000000068001,
		"operation":       op,
		"token":           s.webhookToken,
	})
	return "application/json", b, true
}

// buffered holds an answer until the in-flight count is released, so a
// client that has its whole answer can never be counted as still in
// flight when it sends its next request.
type buffered struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *buffered) Header() http.Header { return b.header }
func (b *buffered) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *buffered) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

// apiGate meters concurrency, applies delays, the hook, token checks and
// injected 429s in front of the API.
func (s *Server) apiGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := &buffered{header: http.Header{}}
		func() {
			n := s.inFlight.Add(1)
			defer s.inFlight.Add(-1)
			for {
				old := s.maxInFlight.Load()
				if n <= old || s.maxInFlight.CompareAndSwap(old, n) {
					break
				}
			}
			if n > ConcurrencyLimit {
				s.t.Errorf("zohofake: %d API requests in flight, Zoho allows %d", n, ConcurrencyLimit)
			}
			s.serveGated(buf, r, next)
		}()
		if buf.status == 0 {
			return // the client gave up while the request hung
		}
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			IfModifiedSince: r.Header.Get("If-Modified-Since"), Status: buf.status})
		s.mu.Unlock()
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
	})
}

func (s *Server) serveGated(w *buffered, r *http.Request, next http.Handler) {
	s.mu.Lock()
	delay, hook := s.delay, s.hook
	s.mu.Unlock()
	if !crmtest.Delay(r.Context(), delay, s.closing) {
		return
	}
	if hook != nil {
		hook(r)
	}
	s.mu.Lock()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ")
	expiry, known := s.access[token]
	valid := ok && known && s.now().Before(expiry)
	inject := valid && s.fail429 > 0
	retryAfter := s.retryAfter
	if inject {
		s.fail429--
	}
	isWrite := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch
	failWrite := valid && !inject && isWrite && s.failWrites > 0
	failStatus := s.failStatus
	if failWrite {
		s.failWrites--
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusUnauthorized, "AUTHENTICATION_FAILURE", "Authentication failed", nil)
	case !valid:
		writeError(w, http.StatusUnauthorized, "INVALID_TOKEN", "invalid oauth token", nil)
	case inject:
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		}
		writeError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "Rate limit exceeded, Please try again later", nil)
	case failWrite:
		writeFailure(w, failStatus)
	default:
		next.ServeHTTP(w, r)
	}
}

// serveToken is the accounts server's token endpoint (refresh grant only).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.tokenDelay
	s.mu.Unlock()
	if !crmtest.Delay(r.Context(), delay, s.closing) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case r.Form.Get("grant_type") != "refresh_token":
		writeJSON(w, http.StatusOK, map[string]any{"error": "unsupported_grant_type"})
		return
	case r.Form.Get("client_id") != s.clientID || r.Form.Get("client_secret") != s.clientSecret:
		writeJSON(w, http.StatusOK, map[string]any{"error": "invalid_client"})
		return
	case s.revoked || r.Form.Get("refresh_token") != s.refreshToken:
		writeJSON(w, http.StatusOK, map[string]any{"error": "invalid_code"})
		return
	}
	recent := 0
	for _, t := range s.refreshTimes {
		if now.Sub(t) < 10*time.Minute {
			recent++
		}
	}
	if recent >= refreshesPer10m {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "Access Denied",
			"error_description": "You have made too many requests continuously. Please try again after some time.",
			"status":            "failure"})
		return
	}
	s.refreshTimes = append(s.refreshTimes, now)
	tok := "1000." + strings.ToLower(rand.Text()) + "." + strings.ToLower(rand.Text())
	s.access[tok] = now.Add(tokenLife)
	s.issued = append(s.issued, tok)
	if len(s.issued) > tokensPerGrant {
		// A 16th access token invalidates the oldest.
		delete(s.access, s.issued[0])
		s.issued = s.issued[1:]
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "api_domain": s.srv.URL,
		"token_type": "Bearer", "expires_in": int(tokenLife / time.Second)})
}

// listQuery is a parsed list request.
type listQuery struct {
	module    string
	fields    []string
	converted string
	perPage   int
	sortBy    string
	sortOrder string
	since     time.Time // If-Modified-Since; zero: none
}

// bound is what a page token is tied to.
func (q listQuery) bound() string {
	return fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s", q.module, strings.Join(q.fields, ","), q.perPage, q.sortBy, q.sortOrder,
		q.converted, q.since.Format(time.RFC3339))
}

// serveList is GET /crm/v8/{module}: pages, page tokens, ids.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	module, ok := s.module(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	lq := listQuery{module: module, converted: q.Get("converted"), sortBy: q.Get("sort_by"), sortOrder: q.Get("sort_order")}
	if q.Get("fields") == "" {
		writeError(w, http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", map[string]any{"param_name": "fields"})
		return
	}
	lq.fields = strings.Split(q.Get("fields"), ",")
	s.mu.Lock()
	unknown := s.unknownFieldLocked(module, lq.fields)
	s.mu.Unlock()
	if unknown != "" {
		refuseUnknownField(w, unknown)
		return
	}
	if ids := q.Get("ids"); ids != "" {
		s.serveIDs(w, lq, strings.Split(ids, ","))
		return
	}
	var bad string
	if lq.perPage, bad = intParam(q, "per_page", maxPerPage, 1, maxPerPage); bad != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad})
		return
	}
	if lq.sortBy == "" {
		lq.sortBy = "id"
	}
	if lq.sortOrder == "" {
		lq.sortOrder = "desc"
	}
	if !slices.Contains([]string{"id", "Created_Time", "Modified_Time"}, lq.sortBy) {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "sort_by",
			"supported_values": []string{"id", "Created_Time", "Modified_Time"}})
		return
	}
	if lq.sortOrder != "asc" && lq.sortOrder != "desc" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "sort_order"})
		return
	}
	if h := r.Header.Get("If-Modified-Since"); h != "" {
		t, err := time.Parse(time.RFC3339, h)
		if err != nil {
			writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "If-Modified-Since"})
			return
		}
		lq.since = t
	}
	tok := q.Get("page_token")
	if tok != "" && q.Has("page") {
		writeError(w, http.StatusBadRequest, "AMBIGUITY_DURING_PROCESSING", "ambiguity while processing the request",
			map[string]any{"ambiguity_due_to": []any{map[string]any{"param_name": "page"}, map[string]any{"param_name": "page_token"}}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var offset int
	if tok != "" {
		pt, ok := s.pageTokens[tok]
		switch {
		case !ok || !s.now().Before(pt.expiry):
			writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "page_token"})
			return
		case pt.bound != lq.bound():
			writeError(w, http.StatusBadRequest, "TOKEN_BOUND_DATA_MISMATCH", "the given data does not match the page token",
				map[string]any{"param_name": "page_token"})
			return
		case pt.offset >= s.tokenLimit:
			writeError(w, http.StatusBadRequest, "PAGINATION_LIMIT_EXCEEDED",
				fmt.Sprintf("You can only get upto %d records using page_token param", s.tokenLimit), map[string]any{"param_name": "page_token"})
			return
		}
		offset = pt.offset
	} else {
		page, bad := intParam(q, "page", 1, 1, 1<<30)
		if bad != "" {
			writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad})
			return
		}
		if page*lq.perPage > discreteLimit {
			writeError(w, http.StatusBadRequest, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
				"You can only get the first 2000 records without using page_token param", map[string]any{"limit": discreteLimit})
			return
		}
		offset = (page - 1) * lq.perPage
	}
	all := s.selectLocked(lq)
	if offset >= len(all) {
		if !lq.since.IsZero() && len(all) == 0 {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	end := min(offset+lq.perPage, len(all))
	more := end < len(all)
	var next any
	if more {
		t := strings.ToLower(rand.Text())
		s.pageTokens[t] = pageToken{module: module, bound: lq.bound(), offset: end, expiry: s.now().Add(pageTokenLife)}
		next = t
	}
	data := make([]map[string]any, 0, end-offset)
	for _, rec := range all[offset:end] {
		data = append(data, project(rec, lq.fields))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "info": map[string]any{
		"call": false, "per_page": lq.perPage, "next_page_token": next, "count": len(data), "sort_by": lq.sortBy,
		"page": offset/lq.perPage + 1, "page_token_expiry": s.now().Add(pageTokenLife).In(orgZone).Format(timeLayout),
		"sort_order": lq.sortOrder, "email": false, "more_records": more, "previous_page_token": nil,
	}})
}

// serveIDs answers a list by ids, in the order asked.
func (s *Server) serveIDs(w http.ResponseWriter, lq listQuery, ids []string) {
	if len(ids) > maxIDs {
		writeError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "the number of ids exceeds the limit",
			map[string]any{"limit": maxIDs, "param_name": "ids"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var data []map[string]any
	for _, id := range ids {
		if rec := s.records[lq.module][id]; rec != nil && convertedMatches(rec, lq.module, lq.converted) {
			data = append(data, project(rec, lq.fields))
		}
	}
	if len(data) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "info": map[string]any{
		"per_page": len(data), "count": len(data), "page": 1, "more_records": false,
	}})
}

// selectLocked returns the module's records a list query selects, sorted.
func (s *Server) selectLocked(lq listQuery) []*record {
	var out []*record
	for _, rec := range s.records[lq.module] {
		if !convertedMatches(rec, lq.module, lq.converted) {
			continue
		}
		// If-Modified-Since: modified after the time given.
		if !lq.since.IsZero() && !rec.modified.After(lq.since) {
			continue
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b *record) int {
		c := 0
		switch lq.sortBy {
		case "Modified_Time":
			c = a.modified.Compare(b.modified)
		case "Created_Time":
			c = a.created.Compare(b.created)
		}
		if c == 0 {
			c = compareIDs(a.id, b.id)
		}
		if lq.sortOrder == "desc" {
			c = -c
		}
		return c
	})
	return out
}

// convertedMatches applies the converted= parameter (Leads only; default
// false: converted leads are hidden).
func convertedMatches(rec *record, module, param string) bool {
	if module != "Leads" {
		return true
	}
	conv, _ := rec.fields["$converted"].(bool)
	switch param {
	case "both":
		return true
	case "true":
		return conv
	default:
		return !conv
	}
}

// serveSearch is GET /crm/v8/{module}/search with phone= (records any of
// whose phone fields has the same digits) or word= (records any of whose
// text fields contains the word, ignoring case), in Leads, Deals,
// Contacts, Accounts, Calls and Tasks.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	module := r.PathValue("module")
	if _, ok := moduleKinds[module]; !ok && !activityModules[module] {
		writeError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid",
			map[string]any{"resource_path_index": 0})
		return
	}
	q := r.URL.Query()
	phone := digits(q.Get("phone"))
	word := strings.ToLower(strings.TrimSpace(q.Get("word")))
	email := strings.TrimSpace(q.Get("email"))
	switch {
	case phone == "" && word == "" && email == "":
		writeError(w, http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
			map[string]any{"param_name": "criteria/email/phone/word"})
		return
	case phone != "" && word != "":
		writeError(w, http.StatusBadRequest, "AMBIGUITY_DURING_PROCESSING", "ambiguity while processing the request",
			map[string]any{"ambiguity_due_to": []any{map[string]any{"param_name": "phone"}, map[string]any{"param_name": "word"}}})
		return
	case word != "" && len([]rune(word)) < 2:
		writeError(w, http.StatusBadRequest, "INVALID_QUERY", "the word should contain at least 2 characters",
			map[string]any{"param_name": "word"})
		return
	}
	perPage, bad := intParam(q, "per_page", maxPerPage, 1, maxPerPage)
	if bad != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad})
		return
	}
	var fields []string
	if f := q.Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.unknownFieldLocked(module, fields); f != "" {
		refuseUnknownField(w, f)
		return
	}
	pf := s.phoneFieldsLocked(module)
	var hits []*record
	for _, rec := range s.records[module] {
		if !convertedMatches(rec, module, q.Get("converted")) {
			continue
		}
		if word != "" {
			if hasWord(rec, word) {
				hits = append(hits, rec)
			}
			continue
		}
		if email != "" {
			if e, _ := rec.fields["Email"].(string); e != "" && strings.EqualFold(e, email) {
				hits = append(hits, rec)
			}
			continue
		}
		for _, f := range pf {
			if p, _ := rec.fields[f].(string); p != "" && digits(p) == phone {
				hits = append(hits, rec)
				break
			}
		}
	}
	if len(hits) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	slices.SortFunc(hits, func(a, b *record) int { return compareIDs(a.id, b.id) })
	more := len(hits) > perPage
	hits = hits[:min(len(hits), perPage)]
	data := make([]map[string]any, 0, len(hits))
	for _, rec := range hits {
		data = append(data, project(rec, fields))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "info": map[string]any{
		"per_page": perPage, "count": len(data), "page": 1, "more_records": more,
	}})
}

// serveDeleted is GET /crm/v8/{module}/deleted.
func (s *Server) serveDeleted(w http.ResponseWriter, r *http.Request) {
	module, ok := s.module(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if typ := q.Get("type"); typ != "" && typ != "all" && typ != "recycle" && typ != "permanent" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "type"})
		return
	}
	perPage, bad := intParam(q, "per_page", maxPerPage, 1, maxPerPage)
	page, bad2 := intParam(q, "page", 1, 1, 1<<30)
	if bad != "" || bad2 != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad + bad2})
		return
	}
	var since time.Time
	if h := r.Header.Get("If-Modified-Since"); h != "" {
		t, err := time.Parse(time.RFC3339, h)
		if err != nil {
			writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": "If-Modified-Since"})
			return
		}
		since = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sel []deletion
	if q.Get("type") != "permanent" {
		for _, d := range s.deleted[module] {
			if since.IsZero() || d.at.After(since) {
				sel = append(sel, d)
			}
		}
	}
	offset := (page - 1) * perPage
	if offset >= len(sel) {
		if !since.IsZero() && len(sel) == 0 {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	end := min(offset+perPage, len(sel))
	data := make([]map[string]any, 0, end-offset)
	for _, d := range sel[offset:end] {
		by := map[string]any{"name": "Patricia Boyle", "id": "4150868000000225013"}
		data = append(data, map[string]any{"deleted_by": by, "id": d.id, "display_name": d.name, "type": "recycle",
			"created_by": by, "deleted_time": d.at.In(orgZone).Format(timeLayout)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "info": map[string]any{
		"per_page": perPage, "count": len(data), "page": page, "more_records": end < len(sel),
	}})
}

// serveUsers is GET /crm/v8/users.
func (s *Server) serveUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	perPage, bad := intParam(q, "per_page", maxPerPage, 1, maxPerPage)
	page, bad2 := intParam(q, "page", 1, 1, 1<<30)
	if bad != "" || bad2 != "" {
		writeError(w, http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": bad + bad2})
		return
	}
	typ := q.Get("type")
	if typ == "" {
		typ = "AllUsers"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sel []crm.User
	for _, u := range s.users {
		if typ == "AllUsers" || typ == "ActiveUsers" && u.Active || typ == "DeactiveUsers" && !u.Active {
			sel = append(sel, u)
		}
	}
	offset := (page - 1) * perPage
	if offset >= len(sel) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	end := min(offset+perPage, len(sel))
	users := make([]map[string]any, 0, end-offset)
	for i, u := range sel[offset:end] {
		first, last, _ := strings.Cut(u.Name, " ")
		if last == "" {
			first, last = "", first
		}
		status := "active"
		if !u.Active {
			status = "disabled"
		}
		users = append(users, map[string]any{"id": u.ID, "full_name": u.Name, "first_name": first, "last_name": last,
			"email": u.Email, "phone": nil, "status": status, "zuid": strconv.Itoa(43318041 + offset + i),
			"role":    map[string]any{"name": "Manager", "id": "4150868000000026005"},
			"profile": map[string]any{"name": "Standard", "id": "4150868000000026014"}, "type__s": "Regular User"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "info": map[string]any{
		"per_page": perPage, "count": len(users), "page": page, "more_records": end < len(sel),
	}})
}

// module validates the {module} path segment.
func (s *Server) module(w http.ResponseWriter, r *http.Request) (string, bool) {
	m := r.PathValue("module")
	if _, ok := moduleKinds[m]; !ok {
		writeError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid",
			map[string]any{"resource_path_index": 0})
		return "", false
	}
	return m, true
}

// project renders a record with the fields asked for (all when none);
// requested fields without a value are null, as Zoho sends them.
func project(rec *record, fields []string) map[string]any {
	out := map[string]any{"id": rec.id}
	if fields == nil {
		for k, v := range rec.fields {
			out[k] = v
		}
		return out
	}
	for _, f := range fields {
		if f != "id" {
			out[f] = rec.fields[f]
		}
	}
	return out
}

// compareIDs orders numeric ids numerically, others as text.
func compareIDs(a, b string) int {
	if len(a) != len(b) && digits(a) == a && digits(b) == b {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// intParam parses an integer query parameter in [lo, hi]; bad names the
// parameter when it is not one.
func intParam(q url.Values, name string, def, lo, hi int) (n int, bad string) {
	v := q.Get(name)
	if v == "" {
		return def, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, name
	}
	return n, ""
}

func writeError(w http.ResponseWriter, status int, code, msg string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	writeJSON(w, status, map[string]any{"code": code, "details": details, "message": msg, "status": "error"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ScaleRate implements crmtest.Fake.
func (s *Server) ScaleRate(k int) {
	s.meter.Scale(k)
}
