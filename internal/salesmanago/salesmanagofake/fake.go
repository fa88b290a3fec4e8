// Package salesmanagofake is a fake SALESmanago account for tests: a
// loopback server speaking the endpoints and envelopes package salesmanago
// uses (see its package doc for the sources). It refuses what the real API
// refuses, in its way (HTTP 200 {"success":false,"message":[…]}): a body
// that is not JSON, a missing or wrong clientId, apiKey or sha
// (sha1(apiKey+clientId+apiSecret)), a missing requestTime or owner, an
// owner who is not a user of the account, an upsert contact without a
// valid e-mail, a state outside CUSTOMER, PROSPECT, PARTNER, OTHER,
// UNKNOWN, a birthday not yyyyMMdd or MMdd. It also holds the client to the
// limits this project keeps where SALESmanago publishes none: 100 contacts
// an upsert, 100 ids a listById, 1000 a page, 30 days a window.
//
// Batch upserts are jobs: /api/job/status answers a non-empty message for
// JobPolls polls, then message [] with a fileUrl, and only then are the
// contacts applied (SALESmanago applies them asynchronously too).
package salesmanagofake

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/salesmanago"
)

// Credentials of the fake account.
const (
	ClientID  = "fakeclient123"
	APIKey    = "fake-api-key-456"
	APISecret = "fake-api-secret-789"
)

var birthdayRE = regexp.MustCompile(`^(\d{4})?(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$`)

var states = []string{"CUSTOMER", "PROSPECT", "PARTNER", "OTHER", "UNKNOWN"}

// Server is a fake SALESmanago account. Create it with New.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	users    []string
	contacts map[string]*salesmanago.Contact // by id
	nextID   int
	jobs     map[string]*job
	nextJob  int
	// JobPolls is how many status polls a job stays running.
	jobPolls  int
	fail503   int
	throttle  int
	upserts   int
	upserted  int
	paths     map[string]int
	failAfter map[string]int // path → calls left before failing with 503 forever
}

type job struct {
	owner   string
	details []detail
	polls   int
	done    bool
}

type detail struct {
	Contact struct {
		Email   string              `json:"email"`
		Name    string              `json:"name"`
		Phone   string              `json:"phone"`
		Fax     string              `json:"fax"`
		Company string              `json:"company"`
		State   string              `json:"state"`
		Address salesmanago.Address `json:"address"`
	} `json:"contact"`
	Birthday    string `json:"birthday"`
	Province    string `json:"province"`
	ForceOptIn  bool   `json:"forceOptIn"`
	ForceOptOut bool   `json:"forceOptOut"`
}

// New starts a fake account whose users are users (the first is the main
// user); it stops when the test ends. Its clock is time.Now until SetClock.
func New(t testing.TB, users ...string) *Server {
	s := &Server{t: t, now: time.Now, users: users, contacts: map[string]*salesmanago.Contact{},
		jobs: map[string]*job{}, jobPolls: 1, paths: map[string]int{}, failAfter: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.serve)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the account's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Config returns a client configuration for this account with owner as
// the main user.
func (s *Server) Config(owner string) salesmanago.Config {
	return salesmanago.Config{BaseURL: s.srv.URL, ClientID: ClientID, APIKey: APIKey, APISecret: APISecret, Owner: owner}
}

// SetClock sets the account's clock (modifiedOn of changes).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetJobPolls sets how many status polls a batch job stays running.
func (s *Server) SetJobPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobPolls = n
}

// Fail503 makes the next n requests answer HTTP 503.
func (s *Server) Fail503(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail503 = n
}

// Throttle makes the next n requests answer success:false about the
// request limit.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// FailAfter makes calls of path fail with HTTP 503 once n more have
// succeeded, until FailAfter(path, -1).
func (s *Server) FailAfter(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		delete(s.failAfter, path)
		return
	}
	s.failAfter[path] = n
}

// Calls returns how many authenticated requests path received.
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[path]
}

// Upserted returns how many contacts finished batch upserts applied.
func (s *Server) Upserted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upserted
}

// Put creates or replaces a contact (keyed by e-mail, as SALESmanago keys
// them) with modifiedOn now, and returns its id.
func (s *Server) Put(c salesmanago.Contact) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Owner == "" && len(s.users) > 0 {
		c.Owner = s.users[0]
	}
	if c.State == "" {
		c.State = "PROSPECT"
	}
	if old := s.byEmailLocked(c.Email); old != nil {
		c.ID = old.ID
	} else {
		s.nextID++
		c.ID = fmt.Sprintf("0c5e%04d-1b2a-4c3d-8e9f-%012d", s.nextID, s.nextID)
	}
	c.ModifiedOn = s.now().UnixMilli()
	cp := c
	s.contacts[c.ID] = &cp
	return c.ID
}

// Contact returns the contact with e-mail email.
func (s *Server) Contact(email string) (salesmanago.Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.byEmailLocked(email); c != nil {
		return *c, true
	}
	return salesmanago.Contact{}, false
}

// Contacts returns every contact.
func (s *Server) Contacts() []salesmanago.Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]salesmanago.Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b salesmanago.Contact) int { return strings.Compare(a.Email, b.Email) })
	return out
}

func (s *Server) byEmailLocked(email string) *salesmanago.Contact {
	for _, c := range s.contacts {
		if strings.EqualFold(c.Email, email) {
			return c
		}
	}
	return nil
}

func refuse(w http.ResponseWriter, msg ...string) {
	writeJSON(w, http.StatusOK, map[string]any{"success": false, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"success": false, "message": []string{"Request method '" + r.Method + "' not supported"}})
		return
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&body); err != nil {
		refuse(w, "Invalid JSON")
		return
	}
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(body[k], &v)
		return v
	}
	sum := sha1.Sum([]byte(APIKey + ClientID + APISecret))
	var reqTime int64
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case str("clientId") != ClientID || str("apiKey") != APIKey || str("sha") != hex.EncodeToString(sum[:]):
		refuse(w, "Not authenticated")
		return
	case json.Unmarshal(body["requestTime"], &reqTime) != nil || reqTime <= 0:
		refuse(w, "requestTime is required")
		return
	}
	owner := str("owner")
	if r.URL.Path != "/api/user/listByClient" && r.URL.Path != "/api/job/status" {
		if owner == "" {
			refuse(w, "owner is required")
			return
		}
		if !slices.ContainsFunc(s.users, func(u string) bool { return strings.EqualFold(u, owner) }) {
			refuse(w, "Owner "+owner+" not found")
			return
		}
	}
	switch {
	case s.fail503 > 0:
		s.fail503--
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"success": false, "message": []string{"Service Unavailable"}})
		return
	case s.throttle > 0:
		s.throttle--
		refuse(w, "Limit of API requests exceeded, try again later")
		return
	}
	if n, ok := s.failAfter[r.URL.Path]; ok {
		if n == 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"success": false, "message": []string{"Service Unavailable"}})
			return
		}
		s.failAfter[r.URL.Path] = n - 1
	}
	s.paths[r.URL.Path]++
	switch r.URL.Path {
	case "/api/user/listByClient":
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{}, "users": s.users})
	case "/api/contact/paginatedModifiedContacts":
		s.serveModified(w, body)
	case "/api/contact/listById":
		var ids []string
		if err := json.Unmarshal(body["contactId"], &ids); err != nil || len(ids) == 0 {
			refuse(w, "contactId is required")
			return
		}
		if len(ids) > 100 {
			refuse(w, "Too many contactId values, at most 100")
			return
		}
		var out []salesmanago.Contact
		for _, id := range ids {
			if c := s.contacts[id]; c != nil {
				out = append(out, *c)
			}
		}
		s.writeContacts(w, out)
	case "/api/contact/list":
		var emails []string
		if err := json.Unmarshal(body["email"], &emails); err != nil || len(emails) == 0 {
			refuse(w, "email is required")
			return
		}
		var out []salesmanago.Contact
		for _, e := range emails {
			if c := s.byEmailLocked(e); c != nil {
				out = append(out, *c)
			}
		}
		s.writeContacts(w, out)
	case "/api/contact/batchupsertv2":
		s.serveUpsert(w, owner, body)
	case "/api/job/status":
		j := s.jobs[str("requestId")]
		if j == nil {
			refuse(w, "Request not found")
			return
		}
		if j.polls < s.jobPolls {
			j.polls++
			writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{"Request is being processed"}})
			return
		}
		if !j.done {
			j.done = true
			s.applyLocked(j)
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{},
			"fileUrl": s.srv.URL + "/files/" + str("requestId") + ".json"})
	default:
		refuse(w, "Unknown API method "+r.URL.Path)
	}
}

func (s *Server) writeContacts(w http.ResponseWriter, cs []salesmanago.Contact) {
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, map[string]any{"id": c.ID, "email": c.Email, "name": c.Name, "phone": c.Phone, "fax": c.Fax,
			"company": c.Company, "state": c.State, "province": c.Province, "birthday": c.Birthday, "optedOut": c.OptedOut,
			"optedOutPhone": false, "deleted": false, "invalid": false, "score": 0, "owner": c.Owner,
			"address": c.Address, "modifiedOn": c.ModifiedOn, "createdOn": c.ModifiedOn})
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{}, "contacts": out})
}

func (s *Server) serveModified(w http.ResponseWriter, body map[string]json.RawMessage) {
	var from, to int64
	var page, size int
	if json.Unmarshal(body["from"], &from) != nil || json.Unmarshal(body["to"], &to) != nil {
		refuse(w, "from and to are required")
		return
	}
	if json.Unmarshal(body["page"], &page) != nil || json.Unmarshal(body["size"], &size) != nil || page < 1 || size < 1 {
		refuse(w, "page and size are required")
		return
	}
	if size > 1000 {
		refuse(w, "size must not exceed 1000")
		return
	}
	if to <= from || time.Duration(to-from)*time.Millisecond > 31*24*time.Hour {
		refuse(w, "Date range must not exceed 30 days")
		return
	}
	var hits []*salesmanago.Contact
	for _, c := range s.contacts {
		if c.ModifiedOn >= from && c.ModifiedOn < to {
			hits = append(hits, c)
		}
	}
	slices.SortFunc(hits, func(a, b *salesmanago.Contact) int {
		if a.ModifiedOn != b.ModifiedOn {
			return int(a.ModifiedOn - b.ModifiedOn)
		}
		return strings.Compare(a.ID, b.ID)
	})
	start := min((page-1)*size, len(hits))
	end := min(start+size, len(hits))
	out := make([]map[string]any, 0, end-start)
	for _, c := range hits[start:end] {
		out = append(out, map[string]any{"id": c.ID, "email": c.Email})
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{}, "modifiedContacts": out, "hasMore": end < len(hits)})
}

func (s *Server) serveUpsert(w http.ResponseWriter, owner string, body map[string]json.RawMessage) {
	var details []detail
	if err := json.Unmarshal(body["upsertDetails"], &details); err != nil || len(details) == 0 {
		refuse(w, "upsertDetails is required")
		return
	}
	if len(details) > 100 {
		refuse(w, "Too many contacts in one request, at most 100")
		return
	}
	for i, d := range details {
		switch {
		case !salesmanago.ValidEmail(d.Contact.Email):
			refuse(w, fmt.Sprintf("upsertDetails[%d]: Invalid email address", i))
			return
		case d.Contact.State != "" && !slices.Contains(states, d.Contact.State):
			refuse(w, fmt.Sprintf("upsertDetails[%d]: Invalid contact state %s", i, d.Contact.State))
			return
		case d.Birthday != "" && !birthdayRE.MatchString(d.Birthday):
			refuse(w, fmt.Sprintf("upsertDetails[%d]: Invalid birthday format, expected yyyyMMdd or MMdd", i))
			return
		case d.ForceOptIn && d.ForceOptOut:
			refuse(w, fmt.Sprintf("upsertDetails[%d]: forceOptIn and forceOptOut are exclusive", i))
			return
		}
	}
	s.nextJob++
	id := "req-" + strconv.Itoa(s.nextJob)
	s.jobs[id] = &job{owner: owner, details: details}
	s.upserts++
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": []string{}, "requestId": id})
}

func (s *Server) applyLocked(j *job) {
	now := s.now().UnixMilli()
	for _, d := range j.details {
		c := s.byEmailLocked(d.Contact.Email)
		if c == nil {
			s.nextID++
			c = &salesmanago.Contact{ID: fmt.Sprintf("0c5e%04d-1b2a-4c3d-8e9f-%012d", s.nextID, s.nextID), Email: d.Contact.Email, State: "UNKNOWN"}
			s.contacts[c.ID] = c
		}
		// An upsert replaces what it carries; empty values leave the field.
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&c.Name, d.Contact.Name)
		set(&c.Phone, d.Contact.Phone)
		set(&c.Fax, d.Contact.Fax)
		set(&c.Company, d.Contact.Company)
		set(&c.State, d.Contact.State)
		set(&c.Province, d.Province)
		set(&c.Birthday, d.Birthday)
		set(&c.Address.Street, d.Contact.Address.Street)
		set(&c.Address.ZipCode, d.Contact.Address.ZipCode)
		set(&c.Address.City, d.Contact.Address.City)
		set(&c.Address.Country, d.Contact.Address.Country)
		if d.ForceOptOut {
			c.OptedOut = true
		}
		if d.ForceOptIn {
			c.OptedOut = false
		}
		c.Owner = j.owner
		c.ModifiedOn = now
		s.upserted++
	}
}
