// Package amocrmfake is a fake amoCRM (Kommo) account for tests: an HTTP
// server on a loopback port that speaks the parts of amoCRM's API v4 that
// callrouter uses, with amoCRM's answer shapes, status codes and quirks.
//
// What it serves:
//
//   - GET /api/v4/contacts, /api/v4/leads, /api/v4/companies with limit
//     (≤ 250), page, order[updated_at|id]=asc|desc, filter[id][] (or
//     filter[id]), filter[updated_at][from|to] (inclusive), query, and
//     with=leads (contacts) / with=contacts (leads);
//   - GET /api/v4/users with limit and page;
//   - GET /api/v4/events with filter[type][] (or a comma-separated
//     filter[type]), filter[created_at][from|to], limit (≤ 100), page,
//     newest first;
//   - POST /oauth2/access_token with grant_type=refresh_token (JSON or form);
//   - POST /api/v4/leads/complex (leads with new or existing contacts, each
//     new contact before its lead) and POST /api/v4/leads (existing contacts
//     by _embedded.contacts[].id), answering amoCRM's shapes;
//   - GET and PATCH /api/v4/leads/{id} (PATCH: name, responsible_user_id,
//     the UTM tracking-data fields and the custom lead field in
//     custom_fields_values) and PATCH /api/v4/contacts/{id} (name,
//     responsible_user_id, PHONE, EMAIL, the custom contact field); fields
//     not sent keep their values, see Fields;
//   - POST /api/v4/calls: a call is filed, as amoCRM files it, as a call_in
//     or call_out note under the contact with the phone's last ten digits
//     (lowest id), or that contact's single active lead; a phone no contact
//     holds gets a 400 validation error and nothing is added;
//   - GET /api/v4/{leads,contacts,companies}/{id}/notes with
//     filter[note_type][], limit, page (the call notes);
//   - POST /api/v4/tasks and GET /api/v4/tasks with filter[entity_type],
//     filter[entity_id][], limit, page;
//   - POST /api/v4/leads/unsorted/sip and /api/v4/leads/unsorted/forms
//     (incoming requests; other categories are 404; source_name,
//     source_uid and the category's metadata required, a source_uid or a
//     call's uniq already filed refused) and GET /api/v4/leads/unsorted
//     with filter[category][], order[created_at], limit, page. A
//     request's lead and contact are not listed or searched (amoCRM shows
//     them once a manager accepts the request); see Unsorted.
//
// Writes take application/json arrays (PATCH an object), are validated
// whole before anything is created (responsible users against SetUsers'
// users once there are any; lead fields other than the tracking fields,
// unknown contacts and entities are 400 validation-errors bodies), and are
// recorded for crmtest.Writes.Written in creation order. FailWrites makes
// the next writes fail before authentication: 429 with a non-JSON body and
// Retry-After: 1, 400 with a validation-errors body, others with
// application/problem+json.
//
// Success bodies are application/hal+json with _page, _links.self,
// _links.next (only when another page exists) and _embedded; an empty list,
// search or a page past the end is 204 with no body. API calls need
// "Authorization: Bearer <token>" with a live access token or long-lived
// token, else 401 application/problem+json. Access tokens live 24 hours on
// the fake's clock; refresh tokens are single-use and rotate on every
// refresh, and a used, unknown or revoked one gets amoCRM's 400
// OAuthProblemJson with the hint "Token has been revoked". Every request,
// OAuth included, passes a crmtest.RateMeter at amoCRM's 7 requests per
// second.
//
// Records: leads created through the API are linked to their contacts and
// become normal records (listed, searched, open, owned). Contacts and
// companies keep their phones in the PHONE custom field (custom_fields_values is null when they have none). amoCRM leads
// have no phones of their own, so Put of a lead with phones gives the lead a
// main contact holding them (an "auto contact", id above 900000000, with
// no responsible user, so routing by it finds no owner). Records get
// updated_at from the fake's clock (SetClock; a second more than the last
// change when that is not older); Delete writes a *_deleted event, so
// incremental syncs see deletions. IDs are decimal integers, as amoCRM's
// are. A test that gives the adapter a clock (crm.Deps.Now) should give the
// fake the same one.
package amocrmfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// Fixed facts of the fake account.
const (
	// RPS is amoCRM's documented limit: 7 requests per second per
	// integration.
	RPS = 7
	// AccountID is the account's id in every record.
	AccountID = 28805383
	// PipelineID is the pipeline leads are in.
	PipelineID = 5551234
	// StatusOpen is the status of open leads.
	StatusOpen = 55512345
	// StatusWon is amoCRM's "successfully realized", the same in every
	// pipeline.
	StatusWon = 142
	// StatusLost is amoCRM's "closed and not realized", the same in every
	// pipeline.
	StatusLost = 143
	// tokenLifetime is amoCRM's access token lifetime.
	tokenLifetime = 24 * time.Hour
	// firstAutoID is where the ids of auto contacts and events start: they
	// are above it.
	firstAutoID = 900000000
)

// Server is a fake amoCRM account. It implements crmtest.Fake; its methods
// are safe for concurrent use.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	meter  *crmtest.RateMeter
	closed chan struct{}

	mu          sync.Mutex
	now         func() time.Time
	records     map[domain.EntityKind]map[int64]*record
	gone        map[crm.Ref]bool // deleted records, for Notification
	users       []crm.User
	events      []event
	nextID      int64
	seq         int                  // token counter
	access      map[string]time.Time // access token → expiry
	refresh     map[string]bool      // unused refresh tokens
	longLived   map[string]bool
	refreshes   int
	tooMany     int // 429s still to answer
	retryAfter  time.Duration
	delay       time.Duration
	onRequest   func(token string)
	requestLog  []string
	clientID    string
	secret      string
	redirectURI string

	// Writes through the API (see writes.go).
	written   crmtest.Written
	writeSeq  int
	notes     map[crm.Ref][]*note
	tasks     []*task
	unsorted  []UnsortedRequest
	failCode  int // status of the failing writes still to answer
	failWrite int // how many writes still fail
}

var (
	_ crmtest.Fake   = (*Server)(nil)
	_ crmtest.Writes = (*Server)(nil)
)

// record is one contact, lead or company.
type record struct {
	kind        domain.EntityKind
	id          int64
	name        string
	phones      []string
	responsible int64
	status      int64 // leads
	createdAt   int64
	updatedAt   int64
	contacts    []int64 // leads: linked contacts, main first
	auto        int64   // leads: the auto contact holding Put's phones
	pipeline    int64   // leads: 0 is PipelineID
	utm         crm.UTM // leads: the tracking-data fields
	email       string  // contacts created through the API with an EMAIL
	// custom are the account's custom field (LeadCustomFieldID,
	// ContactCustomFieldID) values written through the API.
	custom map[string]string
}

// touch stamps a change at now, or a second after the previous change when
// that is not older, so that every change gets a newer update time even
// within one second of the clock.
func (r *record) touch(now int64) {
	if r.updatedAt == 0 {
		r.updatedAt = now
		return
	}
	r.updatedAt = max(now, r.updatedAt+1)
}

// event is an entry of amoCRM's event feed.
type event struct {
	id         string
	typ        string
	entityID   int64
	entityType string // contact, lead, company
	createdAt  int64
}

// New starts a fake account with no records and no users; it is closed
// when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:           t,
		meter:       crmtest.NewRateMeter(t, RPS),
		closed:      make(chan struct{}),
		now:         time.Now,
		records:     map[domain.EntityKind]map[int64]*record{domain.KindContact: {}, domain.KindLead: {}, domain.KindCompany: {}},
		gone:        map[crm.Ref]bool{},
		notes:       map[crm.Ref][]*note{},
		nextID:      firstAutoID,
		access:      map[string]time.Time{},
		refresh:     map[string]bool{},
		longLived:   map[string]bool{},
		clientID:    "f1a2b3c4-0000-4000-8000-00000000c11e",
		secret:      "fake-client-secret",
		redirectURI: "https://callrouter.example/amocrm/oauth",
	}
	s.srv = httptest.NewServer(s.meter.Wrap(http.HandlerFunc(s.serve)))
	t.Cleanup(func() {
		// Hung handlers (SetDelay(-1)) must end before Close waits for them.
		close(s.closed)
		s.srv.Close()
	})
	return s
}

// URL implements crmtest.Fake: the account's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Meter implements crmtest.Fake.
func (s *Server) Meter() *crmtest.RateMeter { return s.meter }

// Creds implements crmtest.Fake: OAuth credentials with a fresh access and
// refresh token pair, so every call returns credentials that work.
func (s *Server) Creds() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	access, refresh, expiry := s.issueLocked()
	return mustJSON(map[string]string{
		"client_id":     s.clientID,
		"client_secret": s.secret,
		"redirect_uri":  s.redirectURI,
		"refresh_token": refresh,
		"access_token":  access,
		"expires_at":    expiry.UTC().Format(time.RFC3339),
	})
}

// RefreshOnlyCreds returns OAuth credentials with a fresh refresh token and
// no access token, as an admin who only copied the refresh token sends them.
func (s *Server) RefreshOnlyCreds() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, refresh, _ := s.issueLocked()
	return mustJSON(map[string]string{
		"client_id":     s.clientID,
		"client_secret": s.secret,
		"redirect_uri":  s.redirectURI,
		"refresh_token": refresh,
	})
}

// LongLivedCreds returns credentials with a new long-lived token.
func (s *Server) LongLivedCreds() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	tok := fmt.Sprintf("fake-long-lived-%d", s.seq)
	s.longLived[tok] = true
	return mustJSON(map[string]string{"long_lived_token": tok})
}

// issueLocked creates an access and refresh token pair.
func (s *Server) issueLocked() (access, refresh string, expiry time.Time) {
	s.seq++
	access = fmt.Sprintf("fake-access-%d", s.seq)
	refresh = fmt.Sprintf("fake-refresh-%d", s.seq)
	expiry = s.now().Add(tokenLifetime)
	s.access[access] = expiry
	s.refresh[refresh] = true
	return access, refresh, expiry
}

// SetClock replaces the clock that stamps records, events and token
// expiry (default time.Now).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Put implements crmtest.Fake. Kinds are contact, lead and company; the ID
// must be a positive decimal integer. A lead is open unless e.Open is false
// (then it is lost, status 143); its phones go to its auto contact.
func (s *Server) Put(e crm.Entity) {
	s.t.Helper()
	id, err := strconv.ParseInt(e.ID, 10, 64)
	if err != nil || id <= 0 {
		s.t.Errorf("amocrmfake: Put %s %q: amoCRM ids are positive integers", e.Kind, e.ID)
		return
	}
	owner, err := parseOwner(e.OwnerID)
	if err != nil {
		s.t.Errorf("amocrmfake: Put %s %s: owner %q: amoCRM user ids are integers", e.Kind, e.ID, e.OwnerID)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, ok := s.records[e.Kind]
	if !ok {
		s.t.Errorf("amocrmfake: Put: amoCRM has no %q entities", e.Kind)
		return
	}
	now := s.now().Unix()
	r := recs[id]
	if r == nil {
		r = &record{kind: e.Kind, id: id, createdAt: now}
		recs[id] = r
	}
	delete(s.gone, crm.Ref{Kind: e.Kind, ID: e.ID})
	r.name, r.responsible = e.Name, owner
	r.touch(now)
	switch e.Kind {
	case domain.KindLead:
		r.status = StatusOpen
		if !e.Open {
			r.status = StatusLost
		}
		if len(e.Phones) > 0 || r.auto != 0 {
			s.putAutoLocked(r, e.Phones, now)
		}
	default:
		r.phones = slices.Clone(e.Phones)
	}
}

// putAutoLocked gives lead its auto contact with phones.
func (s *Server) putAutoLocked(lead *record, phones []string, now int64) {
	c := s.records[domain.KindContact][lead.auto]
	if c == nil {
		s.nextID++
		c = &record{kind: domain.KindContact, id: s.nextID, createdAt: now}
		s.records[domain.KindContact][c.id] = c
		lead.auto = c.id
		lead.contacts = append([]int64{c.id}, lead.contacts...)
	}
	c.name = lead.name
	if !slices.Equal(c.phones, phones) {
		c.phones = slices.Clone(phones)
		c.touch(now)
	}
}

// LinkContacts links contacts to a lead (after its auto contact, if any)
// and stamps the lead as changed.
func (s *Server) LinkContacts(lead int64, contacts ...int64) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.records[domain.KindLead][lead]
	if l == nil {
		s.t.Errorf("amocrmfake: LinkContacts: no lead %d", lead)
		return
	}
	for _, c := range contacts {
		if s.records[domain.KindContact][c] == nil {
			s.t.Errorf("amocrmfake: LinkContacts: no contact %d", c)
			return
		}
		if !slices.Contains(l.contacts, c) {
			l.contacts = append(l.contacts, c)
		}
	}
	l.touch(s.now().Unix())
}

// SetLeadStatus moves a lead to a status (StatusWon, StatusLost or any open
// status) and stamps it as changed.
func (s *Server) SetLeadStatus(lead, status int64) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.records[domain.KindLead][lead]
	if l == nil {
		s.t.Errorf("amocrmfake: SetLeadStatus: no lead %d", lead)
		return
	}
	l.status = status
	l.touch(s.now().Unix())
}

// Delete implements crmtest.Fake: the record goes and a <kind>_deleted
// event is written. A lead takes its auto contact with it; a deleted
// contact is unlinked from its leads, which count as changed.
func (s *Server) Delete(r crm.Ref) {
	s.t.Helper()
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		s.t.Errorf("amocrmfake: Delete %s %q: amoCRM ids are integers", r.Kind, r.ID)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(r.Kind, id)
}

func (s *Server) deleteLocked(kind domain.EntityKind, id int64) {
	rec := s.records[kind][id]
	if rec == nil {
		return
	}
	now := s.now().Unix()
	delete(s.records[kind], id)
	s.gone[crm.Ref{Kind: kind, ID: strconv.FormatInt(id, 10)}] = true
	s.nextID++
	s.events = append(s.events, event{id: fmt.Sprintf("01fake%020d", s.nextID), typ: string(kind) + "_deleted",
		entityID: id, entityType: string(kind), createdAt: now})
	switch kind {
	case domain.KindLead:
		if rec.auto != 0 {
			s.deleteLocked(domain.KindContact, rec.auto)
		}
	case domain.KindContact:
		for _, l := range s.records[domain.KindLead] {
			if i := slices.Index(l.contacts, id); i >= 0 {
				l.contacts = slices.Delete(l.contacts, i, i+1)
				l.touch(now)
				if l.auto == id {
					l.auto = 0
				}
			}
		}
	}
}

// SetUsers implements crmtest.Fake. User IDs must be integers.
func (s *Server) SetUsers(users []crm.User) {
	s.t.Helper()
	for _, u := range users {
		if _, err := strconv.ParseInt(u.ID, 10, 64); err != nil {
			s.t.Errorf("amocrmfake: SetUsers: user id %q: amoCRM user ids are integers", u.ID)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = slices.Clone(users)
}

// Revoke implements crmtest.Fake: every access, refresh and long-lived
// token issued so far stops working, as when an admin disables the
// integration.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
	clear(s.refresh)
	clear(s.longLived)
}

// ExpireAccessTokens makes every access token issued so far expired, as if
// a day had passed on amoCRM's side only; refresh tokens stay valid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.access {
		s.access[tok] = time.Time{}
	}
}

// Refreshes returns how many refresh tokens were traded successfully.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Inject429 makes the next n requests get amoCRM's 429 with a non-JSON
// body and, when retryAfter > 0, a Retry-After header in whole seconds.
func (s *Server) Inject429(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tooMany, s.retryAfter = n, retryAfter
}

// SetDelay implements crmtest.Fake: API answers take d; a negative d hangs
// each request until the client gives up or the test ends.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// OnRequest calls f with the bearer token of every API request the fake
// accepts, before answering it (tests check here that a refreshed pair was
// stored before its access token is used). f must not call the Server.
func (s *Server) OnRequest(f func(token string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// Requests returns the method and request URI of every request served, in
// order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requestLog)
}

// Notification implements crmtest.Fake: the form amoCRM posts to a webhook
// subscribed to add/update/delete of contacts, leads and companies after
// the last change of r (companies arrive as contacts with type=company).
// ok is false for kinds amoCRM does not have and records it never had.
func (s *Server) Notification(r crm.Ref) (contentType string, body []byte, ok bool) {
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := url.Values{}
	v.Set("account[subdomain]", "fake")
	v.Set("account[id]", strconv.Itoa(AccountID))
	v.Set("account[_links][self]", s.srv.URL)
	group := "contacts"
	if r.Kind == domain.KindLead {
		group = "leads"
	}
	rec := s.records[r.Kind][id]
	switch {
	case rec == nil && s.gone[r]:
		p := group + "[delete][0]"
		v.Set(p+"[id]", r.ID)
		if r.Kind == domain.KindLead {
			v.Set(p+"[status_id]", strconv.Itoa(StatusOpen))
			v.Set(p+"[pipeline_id]", strconv.Itoa(PipelineID))
		} else {
			v.Set(p+"[type]", string(r.Kind))
		}
	case rec == nil:
		return "", nil, false
	default:
		p := group + "[update][0]"
		v.Set(p+"[id]", r.ID)
		v.Set(p+"[name]", rec.name)
		v.Set(p+"[responsible_user_id]", strconv.FormatInt(rec.responsible, 10))
		v.Set(p+"[date_create]", strconv.FormatInt(rec.createdAt, 10))
		v.Set(p+"[created_at]", strconv.FormatInt(rec.createdAt, 10))
		v.Set(p+"[last_modified]", strconv.FormatInt(rec.updatedAt, 10))
		v.Set(p+"[updated_at]", strconv.FormatInt(rec.updatedAt, 10))
		v.Set(p+"[modified_user_id]", strconv.FormatInt(rec.responsible, 10))
		v.Set(p+"[account_id]", strconv.Itoa(AccountID))
		if r.Kind == domain.KindLead {
			v.Set(p+"[status_id]", strconv.FormatInt(rec.status, 10))
			v.Set(p+"[pipeline_id]", strconv.FormatInt(cmp.Or(rec.pipeline, PipelineID), 10))
			v.Set(p+"[price]", "0")
			break
		}
		v.Set(p+"[type]", string(r.Kind))
		if len(rec.phones) > 0 {
			v.Set(p+"[custom_fields][0][id]", strconv.Itoa(phoneFieldID))
			v.Set(p+"[custom_fields][0][name]", "Телефон")
			v.Set(p+"[custom_fields][0][code]", "PHONE")
			for i, ph := range rec.phones {
				v.Set(fmt.Sprintf("%s[custom_fields][0][values][%d][value]", p, i), ph)
				v.Set(fmt.Sprintf("%s[custom_fields][0][values][%d][enum]", p, i), strconv.Itoa(phoneEnumWork))
			}
		}
	}
	return "application/x-www-form-urlencoded", []byte(v.Encode()), true
}

// parseOwner reads a responsible user id; "" is none (0).
func parseOwner(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("amocrmfake: BUG: %v", err))
	}
	return b
}

// ScaleRate implements crmtest.Fake.
func (s *Server) ScaleRate(k int) {
	s.meter.Scale(k)
}
