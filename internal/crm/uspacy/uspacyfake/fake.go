// Package uspacyfake is a fake Uspacy account for tests, served over HTTP
// on a loopback port and speaking the paths and shapes the uspacy adapter
// uses:
//
//   - POST /auth/v1/auth/app_sign_in {"client_id","client_secret"} and
//     POST /auth/v1/auth/refresh_token/ with the refresh token as bearer,
//     both answering {"jwt","refreshToken","expireInSeconds"}. Tokens look
//     like JWTs (header.payload.signature, the payload carrying exp) and
//     live TokenTTL by the fake's clock; refresh tokens rotate and a used
//     one is refused.
//   - GET /crm/v1/entities/{leads|deals|contacts|companies}/ with page,
//     list (at most 100), search (a record matches when the digits of one
//     of its phones contain the digits of the search, or its title contains
//     the text) and sortModel[0][updated_at]=asc|desc; the answer is the
//     {"data","links","meta"} envelope. Default order is by id.
//   - GET /crm/v1/entities/{table}/{id}: the bare record, or 404 (for a
//     record in the trash too).
//   - GET /crm/v1/entities/{table}/trash: the records Delete moved to the
//     trash, in the list envelope, each with deleted_at (Unix seconds);
//     page, list and sortModel[0][deleted_at]=asc|desc as for lists.
//     Deleted records leave the normal listing and search, and writes
//     linking to them are refused (422) as for unknown ids. PurgeTrash
//     empties the trash, as a user deleting for good.
//   - GET /company/v1/users/: a bare array with list=all, else the envelope.
//   - POST /crm/v1/entities/{table}/ {"title","owner","phone":[{"value",
//     "type"}],"kanban_stage_id","utm_*",("contacts":[ids] for deals)}:
//     201 and the new record, which from then on is an ordinary record
//     (listed, searched, open, with its owner); ids start at 700001.
//   - PATCH /crm/v1/entities/{table}/{id}: title, owner, phone,
//     kanban_stage_id, utm_* and the custom field (landing on contacts,
//     roistat on leads and deals) replace the record's, fields not sent
//     keep theirs; 200 and the record.
//   - POST /crm/v1/events/call {"integration_code","external_id",
//     "call_type":"incoming|outgoing","ended_call_status","from","to",
//     "begin_time","end_time","duration","call_record_link","note",
//     "subject","employees":[ids],"contacts":[ids],"lead_id","deal_id",
//     "contact_id","company_id","entity_table"}: 201 and the call with its
//     id; GET /crm/v1/events/call[/{id}] lists them (search in subject,
//     note, from, to or equal to external_id; page; list), newest first.
//   - POST /activities/v1/activities {"title","type","status","priority",
//     "description","start_time","end_time","responsible_id",
//     "crm_entities":{"leads":[{"id"}],"contacts":[{"id"}],…}}: 201 and the
//     activity; GET /activities/v1/activities[/{id}] lists them (search in
//     title or description).
//
// Writes check what Uspacy's Laravel validation would: a title, integer
// owner, stage, times, external_id and ids, a known call_type and activity
// type, and that linked records exist; a refusal is 422
// {"message":"The given data was invalid.","errors":{field:[…]}}. Written
// reports what clients created (crmtest.Writes): a call's Key is the key
// in its note's "[cr:KEY]" marker (else its external_id), a task's Text its
// description without the marker. FailWrites makes the next writes (POST,
// PUT, PATCH outside /auth/), once authorized, fail with Uspacy's body.
//
// Failures answer {"status":N,"message":"…"} with the messages below: 401
// for a missing, unknown or expired access token, a refused refresh token
// or bad application credentials; 404; 429 with Retry-After: 2 when
// Inject429 asks for it (Retry-After: 1 from FailWrites). Every answer
// carries a Date header from the fake's clock.
//
// Records are rendered the way Uspacy's SDKs describe them: owner is a
// number for records with an even id and a string for odd ids (Uspacy
// does both); open leads and deals have kanban_status "IN_WORK", closed
// ones "SUCCESS" (even id) or "FAIL" (odd id); deals carry no phone field,
// their phones are those of one embedded contact. Ids must be numeric, as
// Uspacy's are.
package uspacyfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// Application credentials the fake accepts (Creds returns them as JSON).
const (
	ClientID     = "uspacy-fake-client"
	ClientSecret = "uspacy-fake-secret"
)

// TokenTTL is how long issued access tokens live by the fake's clock.
const TokenTTL = time.Hour

// RateLimit is the requests per second the fake's meter allows.
const RateLimit = 5

// RetryAfter is the Retry-After, in seconds, of injected 429 answers.
const RetryAfter = 2

// The "message" of the fake's error answers.
const (
	// MsgUnauthenticated answers a missing, unknown or expired access token.
	MsgUnauthenticated = "Unauthenticated."
	// MsgBadRefresh answers an unknown or already used refresh token.
	MsgBadRefresh = "Refresh token is invalid or has already been used."
	// MsgBadClient answers wrong application credentials.
	MsgBadClient = "Invalid client credentials."
	// MsgRevoked answers application sign-in after Revoke.
	MsgRevoked = "The application has been revoked."
	// MsgNotFound answers an unknown path or record.
	MsgNotFound = "Not found."
	// MsgTooMany answers an injected 429.
	MsgTooMany = "Too Many Attempts."
)

// Server is a fake Uspacy account. It implements crmtest.Fake and is safe
// for concurrent use.
type Server struct {
	t     testing.TB
	srv   *httptest.Server
	meter *crmtest.RateMeter
	done  chan struct{} // closed when the test ends, releasing hung requests

	mu         sync.Mutex
	now        func() time.Time
	records    map[domain.EntityKind]map[string]*record
	trash      map[domain.EntityKind]map[string]*record
	users      []crm.User
	access     map[string]time.Time // access token → expiry
	refresh    map[string]bool      // refresh tokens not used yet
	revoked    bool
	signIns    int
	refreshes  int
	n429       int
	delay      time.Duration
	ignoreSort bool
	seq        int

	// What clients wrote through the API (writes.go).
	written    crmtest.Written
	writeSeq   int
	nextID     int64
	calls      []*call
	activities []*activity
	failStatus int
	failN      int
}

var _ crmtest.Fake = (*Server)(nil)

// record is one stored CRM record.
type record struct {
	e       crm.Entity
	created int64
	updated int64
	utm     crm.UTM
	stage   string // kanban_stage_id when a client set one
	email   string // contacts created with an e-mail
	deleted int64  // when it went to the trash
	// custom are the account's custom field (LeadCustomField,
	// ContactCustomField) values written through the API.
	custom map[string]string
}

// New starts a fake account that is shut down when the test ends. Its
// clock is time.Now until SetClock.
func New(t testing.TB) *Server {
	s := &Server{
		t:       t,
		done:    make(chan struct{}),
		now:     time.Now,
		records: map[domain.EntityKind]map[string]*record{},
		trash:   map[domain.EntityKind]map[string]*record{},
		access:  map[string]time.Time{},
		refresh: map[string]bool{},
	}
	s.meter = crmtest.NewRateMeter(t, RateLimit)
	s.srv = httptest.NewServer(s.meter.Wrap(http.HandlerFunc(s.serve)))
	// Cleanups run last in, first out: hung handlers are released before
	// Close waits for them.
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.done) })
	return s
}

// URL returns the account's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Creds returns the application credentials the fake accepts.
func (s *Server) Creds() json.RawMessage {
	b, _ := json.Marshal(map[string]string{"client_id": ClientID, "client_secret": ClientSecret})
	return b
}

// Meter returns the meter counting requests against RateLimit.
func (s *Server) Meter() *crmtest.RateMeter { return s.meter }

// SetClock replaces the fake's clock, which stamps records, expires tokens
// and fills the Date header.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Put creates or changes a record. The kind must be lead, deal, contact or
// company and the id numeric; a change gets an update time newer than the
// record's last one. e.UpdatedAt is ignored: the fake's clock decides.
func (s *Server) Put(e crm.Entity) {
	if !e.Kind.Valid() || e.ID == "" || strings.Trim(e.ID, "0123456789") != "" {
		s.t.Errorf("uspacyfake: Put needs a known kind and a numeric id, got %q %q", e.Kind, e.ID)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	e.Phones = append([]string(nil), e.Phones...)
	byID := s.records[e.Kind]
	if byID == nil {
		byID = map[string]*record{}
		s.records[e.Kind] = byID
	}
	if r, ok := byID[e.ID]; ok {
		r.e, r.updated = e, max(now, r.updated+1) // UTM and stage stay
		return
	}
	delete(s.trash[e.Kind], e.ID)
	byID[e.ID] = &record{e: e, created: now, updated: now}
}

// Delete moves a record to the trash, as deleting it in Uspacy does.
func (s *Server) Delete(r crm.Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[r.Kind][r.ID]
	if !ok {
		return
	}
	delete(s.records[r.Kind], r.ID)
	if s.trash[r.Kind] == nil {
		s.trash[r.Kind] = map[string]*record{}
	}
	rec.deleted = s.now().Unix()
	rec.updated = max(rec.deleted, rec.updated)
	s.trash[r.Kind][r.ID] = rec
}

// PurgeTrash deletes every trashed record for good: it leaves the trash
// listing too, so only a full read of the account shows it gone.
func (s *Server) PurgeTrash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.trash)
}

// SetUsers replaces the account's users. Numeric ids are sent as numbers.
func (s *Server) SetUsers(users []crm.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append([]crm.User(nil), users...)
}

// Revoke rejects every token issued so far and refuses application sign-in
// with MsgRevoked from now on.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	clear(s.access)
	clear(s.refresh)
}

// SetDelay makes every answer take d; a negative d hangs each request
// until the client gives up or the test ends.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Notification returns the webhook Uspacy would post after a change of r:
// the event and the full record, or a delete event with the id when the
// record is gone.
func (s *Server) Notification(r crm.Ref) (contentType string, body []byte, ok bool) {
	t, ok := tableOf(r.Kind)
	if !ok {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	action, entity := "delete", map[string]any{"id": number(r.ID)}
	if rec, found := s.records[r.Kind][r.ID]; found {
		action, entity = "update", s.render(rec)
	}
	body, err := json.Marshal(map[string]any{
		"event": map[string]any{"service": "crm", "type": "entity", "table_name": t, "action": action},
		"data":  map[string]any{"entity": entity},
	})
	if err != nil {
		s.t.Errorf("uspacyfake: %v", err)
		return "", nil, false
	}
	return "application/json", body, true
}

// ExpireAccessTokens makes every access token issued so far expired, as if
// their time had run out: the next request with one gets 401.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// SignIns returns how many application sign-ins succeeded.
func (s *Server) SignIns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signIns
}

// Refreshes returns how many token refreshes succeeded.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Inject429 makes the next n requests, of any kind, answer 429 with
// Retry-After: RetryAfter.
func (s *Server) Inject429(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n429 = n
}

// IgnoreSort makes lists ignore sortModel, as an API without sorting
// would, so that clients that rely on it can be caught.
func (s *Server) IgnoreSort(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreSort = ignore
}

// TokenPair issues a token pair as a user's sign-in would, for
// integrations connected with a refresh token.
func (s *Server) TokenPair() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked()
}

// serve answers one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now, delay := s.now(), s.delay
	throttle := s.n429 > 0
	if throttle {
		s.n429--
	}
	s.mu.Unlock()
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	if throttle {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		writeError(w, http.StatusTooManyRequests, MsgTooMany)
		return
	}
	if !crmtest.Delay(r.Context(), delay, s.done) {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if s.serveWrites(w, r, path) {
		return
	}
	switch {
	case path == "/auth/v1/auth/app_sign_in" && r.Method == http.MethodPost:
		s.signIn(w, r)
	case path == "/auth/v1/auth/refresh_token" && r.Method == http.MethodPost:
		s.refreshToken(w, r)
	case strings.HasPrefix(path, "/crm/v1/entities/") && r.Method == http.MethodGet:
		if !s.authorized(w, r) {
			return
		}
		parts := strings.Split(strings.TrimPrefix(path, "/crm/v1/entities/"), "/")
		kind, ok := kindOf(parts[0])
		switch {
		case !ok || len(parts) > 2:
			writeError(w, http.StatusNotFound, MsgNotFound)
		case len(parts) == 1:
			s.list(w, r, kind, s.records)
		case parts[1] == "trash":
			s.list(w, r, kind, s.trash)
		default:
			s.get(w, kind, parts[1])
		}
	case path == "/company/v1/users" && r.Method == http.MethodGet:
		if s.authorized(w, r) {
			s.listUsers(w, r)
		}
	default:
		writeError(w, http.StatusNotFound, MsgNotFound)
	}
}

// authorized checks the bearer access token, answering 401 when it is bad.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, ok := s.access[tok]
	ok = ok && s.now().Before(exp)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, MsgUnauthenticated)
	}
	return ok
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "The given data was invalid.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.revoked:
		writeError(w, http.StatusUnauthorized, MsgRevoked)
	case in.ClientID != ClientID || in.ClientSecret != ClientSecret:
		writeError(w, http.StatusUnauthorized, MsgBadClient)
	default:
		s.signIns++
		s.writeTokensLocked(w)
	}
}

func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.refresh[tok] {
		writeError(w, http.StatusUnauthorized, MsgBadRefresh)
		return
	}
	delete(s.refresh, tok) // refresh tokens rotate: each works once
	s.refreshes++
	s.writeTokensLocked(w)
}

func (s *Server) writeTokensLocked(w http.ResponseWriter) {
	access, refresh := s.issueLocked()
	writeJSON(w, http.StatusOK, map[string]any{
		"jwt": access, "refreshToken": refresh, "expireInSeconds": int64(TokenTTL / time.Second),
	})
}

// issueLocked mints a token pair.
func (s *Server) issueLocked() (access, refresh string) {
	now := s.now()
	access = s.mintLocked("access", now)
	refresh = s.mintLocked("refresh", now)
	s.access[access] = now.Add(TokenTTL)
	s.refresh[refresh] = true
	return access, refresh
}

// mintLocked returns a JWT-looking token: it is opaque to clients, who may
// read its claims but cannot check its signature.
func (s *Server) mintLocked(use string, now time.Time) string {
	s.seq++
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{
		"iss": "uspacy-fake", "sub": use, "jti": s.seq, "iat": now.Unix(), "exp": now.Add(TokenTTL).Unix(),
		"domain": strings.TrimPrefix(s.srv.URL, "http://"), "workspaceId": "fake",
	})
	sig := make([]byte, 16)
	_, _ = rand.Read(sig)
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}

// list answers a listing of the records of kind in from (the records, or
// the trash), ordered by sortModel[0][updated_at] or, in the trash,
// sortModel[0][deleted_at].
func (s *Server) list(w http.ResponseWriter, r *http.Request, kind domain.EntityKind, from map[domain.EntityKind]map[string]*record) {
	q := r.URL.Query()
	page := max(atoi(q.Get("page"), 1), 1)
	per := min(max(atoi(q.Get("list"), 20), 1), 100)
	search := strings.TrimSpace(q.Get("search"))
	order := q.Get("sortModel[0][updated_at]")
	trash := q.Get("sortModel[0][deleted_at]")

	s.mu.Lock()
	var recs []*record
	for _, rec := range from[kind] {
		if search == "" || matches(rec.e, search) || rec.email != "" && strings.EqualFold(rec.email, search) {
			recs = append(recs, rec)
		}
	}
	if s.ignoreSort {
		order, trash = "", ""
	}
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		switch {
		case trash == "desc" && a.deleted != b.deleted:
			return a.deleted > b.deleted
		case trash == "asc" && a.deleted != b.deleted:
			return a.deleted < b.deleted
		case order == "desc" && a.updated != b.updated:
			return a.updated > b.updated
		case order == "asc" && a.updated != b.updated:
			return a.updated < b.updated
		}
		return lessID(a.e.ID, b.e.ID)
	})
	total := len(recs)
	lo, hi := min((page-1)*per, total), min(page*per, total)
	data := make([]map[string]any, 0, hi-lo)
	for _, rec := range recs[lo:hi] {
		data = append(data, s.render(rec))
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, envelope(r, data, page, per, total))
}

func (s *Server) get(w http.ResponseWriter, kind domain.EntityKind, id string) {
	s.mu.Lock()
	rec, ok := s.records[kind][id]
	var body map[string]any
	if ok {
		body = s.render(rec)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, MsgNotFound)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	users := make([]map[string]any, 0, len(s.users))
	for _, u := range s.users {
		firstName, lastName, _ := strings.Cut(u.Name, " ")
		m := map[string]any{
			"id": number(u.ID), "active": u.Active, "firstName": firstName, "lastName": lastName,
			"email": []any{}, "phone": []any{}, "position": "", "roles": []string{"user"},
		}
		if u.Email != "" {
			m["email"] = []any{map[string]any{"type": "work", "value": u.Email, "main": true}}
		}
		users = append(users, m)
	}
	s.mu.Unlock()
	q := r.URL.Query()
	if q.Get("list") == "all" {
		writeJSON(w, http.StatusOK, users)
		return
	}
	page := max(atoi(q.Get("page"), 1), 1)
	per := min(max(atoi(q.Get("list"), 20), 1), 100)
	lo, hi := min((page-1)*per, len(users)), min(page*per, len(users))
	writeJSON(w, http.StatusOK, envelope(r, users[lo:hi], page, per, len(users)))
}

// render returns a record as Uspacy sends it.
func (s *Server) render(rec *record) map[string]any {
	e := rec.e
	id, _ := strconv.ParseInt(e.ID, 10, 64)
	m := map[string]any{
		"id": id, "title": e.Name, "owner": nil, "created_by": 1, "changed_by": 1,
		"created_at": rec.created, "updated_at": rec.updated, "converted": false, "comments": "",
		"deleted_at": nil,
		"utm_source": rec.utm.Source, "utm_medium": rec.utm.Medium, "utm_campaign": rec.utm.Campaign,
		"utm_content": rec.utm.Content, "utm_term": rec.utm.Term,
		"source": []any{},
	}
	if rec.deleted != 0 {
		m["deleted_at"] = rec.deleted
	}
	if e.OwnerID != "" {
		if id%2 == 1 {
			m["owner"] = e.OwnerID // Uspacy sometimes sends owners as strings
		} else {
			m["owner"] = number(e.OwnerID)
		}
	}
	phones := make([]map[string]any, 0, len(e.Phones))
	for i, p := range e.Phones {
		phones = append(phones, map[string]any{"id": fmt.Sprintf("%d-%d", id, i), "type": "work", "value": p, "main": i == 0, "sort": i})
	}
	switch e.Kind {
	case domain.KindContact, domain.KindLead:
		firstName, lastName, _ := strings.Cut(e.Name, " ")
		m["first_name"], m["last_name"], m["patronymic"], m["position"] = firstName, lastName, "", ""
		m["phone"], m["email"], m["messengers"] = phones, []any{}, []any{}
		if rec.email != "" {
			m["email"] = []any{map[string]any{"type": "work", "value": rec.email, "main": true}}
		}
	case domain.KindCompany:
		m["phone"], m["email"], m["messengers"], m["site"], m["address"] = phones, []any{}, []any{}, "", ""
	case domain.KindDeal:
		// Deals have no phones of their own; the caller is the deal's contact.
		contacts := []any{}
		if len(phones) > 0 {
			contacts = append(contacts, map[string]any{
				"id": 1_000_000 + id, "title": e.Name, "owner": m["owner"], "phone": phones, "email": []any{},
			})
		}
		m["contacts"], m["companies"], m["amount_of_the_deal"] = contacts, []any{}, "0"
	}
	if e.Kind == domain.KindLead || e.Kind == domain.KindDeal {
		status := "IN_WORK"
		switch {
		case e.Open:
		case id%2 == 0:
			status = "SUCCESS"
		default:
			status = "FAIL"
		}
		var stage any = 1
		if rec.stage != "" {
			stage = number(rec.stage)
		}
		m["kanban_status"], m["kanban_stage_id"], m["kanban_reason_id"] = status, stage, nil
	}
	return m
}

// envelope wraps a page the way Uspacy's list endpoints do.
func envelope[T any](r *http.Request, data []T, page, per, total int) map[string]any {
	last := max((total+per-1)/per, 1)
	link := func(p int) any {
		if p < 1 || p > last {
			return nil
		}
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: "page=" + strconv.Itoa(p)}
		return u.String()
	}
	var from, to any
	if len(data) > 0 {
		from, to = (page-1)*per+1, (page-1)*per+len(data)
	}
	return map[string]any{
		"data":  data,
		"links": map[string]any{"first": link(1), "last": link(last), "prev": link(page - 1), "next": link(page + 1)},
		"meta": map[string]any{
			"current_page": page, "from": from, "last_page": last, "per_page": per, "to": to, "total": total,
			"path": r.URL.Path,
		},
	}
}

// matches reports whether a search finds e: the digits of one of its
// phones contain the search's digits, or its title contains the text.
func matches(e crm.Entity, search string) bool {
	if d := digitsOf(search); d != "" {
		for _, p := range e.Phones {
			if strings.Contains(digitsOf(p), d) {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(e.Name), strings.ToLower(search))
}

func digitsOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// lessID orders numeric ids by value.
func lessID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// number returns s as a JSON number when it is one, else as a string.
func number(s string) any {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return json.Number(s)
	}
	return s
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func kindOf(table string) (domain.EntityKind, bool) {
	switch table {
	case "leads":
		return domain.KindLead, true
	case "deals":
		return domain.KindDeal, true
	case "contacts":
		return domain.KindContact, true
	case "companies":
		return domain.KindCompany, true
	}
	return "", false
}

func tableOf(k domain.EntityKind) (string, bool) {
	switch k {
	case domain.KindLead:
		return "leads", true
	case domain.KindDeal:
		return "deals", true
	case domain.KindContact:
		return "contacts", true
	case domain.KindCompany:
		return "companies", true
	}
	return "", false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": status, "message": msg})
}

// ScaleRate implements crmtest.Fake.
func (s *Server) ScaleRate(k int) {
	s.meter.Scale(k)
}
