// Package ringostatfake is a fake Ringostat API for tests: the endpoints
// callrouter calls (/sipstatus/online, /sipstatus/speaking, /calls/list,
// /minicrm/contacts/sync, the JSON-RPC call-back at /a/v2), refusing what the real API refuses as far as
// it is known (see package ringostat's doc for the sources): a wrong
// Auth-key is answered 401, a contacts sync without x-project-id or with a
// projectId other than the project's is refused, and the call log gives at
// most 6,500 calls per request (above that the fake answers 400; whether
// the real API refuses or truncates is unconfirmed, the client handles
// both).
package ringostatfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callrouter/callrouter/internal/ringostat"
)

// CalldateLayout is how the fake writes calldate: a numeric offset without
// a colon, as in Ringostat's published example.
const CalldateLayout = "2006-01-02T15:04:05-0700"

// Server is a fake Ringostat project API. It is safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	key      string
	project  string
	online   []string
	speaking []string
	calls    []map[string]any
	contacts map[string]ringostat.Contact // by leadId or externalId
	syncs    int                          // contacts/sync requests accepted
	synced   int                          // contacts received
	requests map[string]int               // by path, refused ones too
	fail     map[string]int               // path → status to answer instead
	maxCalls int
	// callbacks are the call-backs asked for: "manager→client".
	callbacks []string
}

// New starts a fake for project with Auth-key key. Close it when done.
func New(key, project string) *Server {
	s := &Server{key: key, project: project, contacts: map[string]ringostat.Contact{}, requests: map[string]int{},
		fail: map[string]int{}, maxCalls: ringostat.MaxCallsPerRequest}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetKey changes the key the fake accepts (a key revoked in the cabinet).
func (s *Server) SetKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// SetPresence sets the logins online and speaking.
func (s *Server) SetPresence(online, speaking []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online, s.speaking = append([]string(nil), online...), append([]string(nil), speaking...)
}

// AddCall adds a call to the log; calldate (a time.Time) is written in the
// Ringostat layout, other values as given (numbers stay numbers).
func (s *Server) AddCall(calldate time.Time, fields map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]any{}
	for k, v := range fields {
		c[k] = v
	}
	c["calldate"] = calldate.Format(CalldateLayout)
	c["_at"] = calldate
	s.calls = append(s.calls, c)
}

// SetMaxCalls lowers the calls one request may return, to test splitting.
func (s *Server) SetMaxCalls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxCalls = n
}

// Fail makes requests to path answer status until Fail(path, 0).
func (s *Server) Fail(path string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.fail, path)
		return
	}
	s.fail[path] = status
}

// Contact returns a pushed contact by its leadId or externalId.
func (s *Server) Contact(id string) (ringostat.Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[id]
	return c, ok
}

// Pushed returns how many contacts/sync requests were accepted and how
// many contacts they carried.
func (s *Server) Pushed() (requests, contacts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs, s.synced
}

// Requests returns how many requests path got, refused ones included.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.URL.Path]++
	// Header names are case-insensitive; one public client sends auth-key.
	if r.Header.Get("Auth-key") != s.key {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid auth key"})
		return
	}
	if st := s.fail[r.URL.Path]; st != 0 {
		writeJSON(w, st, map[string]any{"message": "temporarily unavailable"})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/sipstatus/online":
		writeJSON(w, http.StatusOK, orEmpty(s.online))
	case r.Method == http.MethodGet && r.URL.Path == "/sipstatus/speaking":
		writeJSON(w, http.StatusOK, orEmpty(s.speaking))
	case r.Method == http.MethodGet && r.URL.Path == "/calls/list":
		s.callsList(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/minicrm/contacts/sync":
		s.sync(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/a/v2":
		s.rpc(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not found"})
	}
}

func (s *Server) callsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := time.ParseInLocation(ringostat.TimeLayout, q.Get("from"), time.UTC)
	to, err2 := time.ParseInLocation(ringostat.TimeLayout, q.Get("to"), time.UTC)
	if err1 != nil || err2 != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "from and to must be YYYY-MM-DD HH:MM:SS"})
		return
	}
	fields := strings.Split(q.Get("fields"), ",")
	var out []map[string]any
	for _, c := range s.calls {
		at := c["_at"].(time.Time)
		if at.Before(from) || at.After(to) {
			continue
		}
		row := map[string]any{}
		for _, f := range fields {
			if v, ok := c[f]; ok {
				row[f] = v
			} else {
				row[f] = nil
			}
		}
		out = append(out, row)
	}
	if len(out) > s.maxCalls {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Не можна вивантажити більше " +
			strconv.Itoa(s.maxCalls) + " дзвінків одним запитом"})
		return
	}
	writeJSON(w, http.StatusOK, orEmptyRows(out))
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-project-id") != s.project {
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "Access denied for this project"})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"message": "Content-Type must be application/json"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "unreadable body"})
		return
	}
	var in struct {
		Contacts []ringostat.Contact `json:"contacts"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Contacts == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "contacts: required"})
		return
	}
	project, _ := strconv.ParseInt(s.project, 10, 64)
	for i, c := range in.Contacts {
		switch {
		case c.ProjectID != project:
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "contacts[" + strconv.Itoa(i) + "].projectId: wrong project"})
			return
		case c.ExternalID == nil && c.LeadID == nil:
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "contacts[" + strconv.Itoa(i) + "]: externalId or leadId required"})
			return
		case c.FullName == "" || c.Origin == "":
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "contacts[" + strconv.Itoa(i) + "]: fullName and origin required"})
			return
		}
	}
	for _, c := range in.Contacts {
		id := ""
		if c.ExternalID != nil {
			id = *c.ExternalID
		} else {
			id = *c.LeadID
		}
		s.contacts[id] = c
	}
	s.syncs++
	s.synced += len(in.Contacts)
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// Callbacks returns the call-backs asked for, as "manager→client".
func (s *Server) Callbacks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.callbacks...)
}

// rpc serves the JSON-RPC endpoint's Api\V2\Callback.external: errors come
// as a JSON-RPC error object in a 200 answer, as public clients expect.
func (s *Server) rpc(w http.ResponseWriter, r *http.Request) {
	var in struct {
		JSONRPC string         `json:"jsonrpc"`
		ID      any            `json:"id"`
		Method  string         `json:"method"`
		Params  map[string]any `json:"params"`
	}
	fail := func(code int, msg string) {
		writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": in.ID, "error": map[string]any{"code": code, "message": msg}})
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.JSONRPC != "2.0" {
		fail(-32700, "Parse error")
		return
	}
	if in.Method != `Api\V2\Callback.external` {
		fail(-32601, "Method not found")
		return
	}
	caller, _ := in.Params["caller"].(string)
	callee, _ := in.Params["callee"].(string)
	if fmt.Sprint(in.Params["projectId"]) != s.project || caller == "" || callee == "" {
		fail(-32602, "Invalid params: projectId, caller and callee are required")
		return
	}
	s.callbacks = append(s.callbacks, caller+"→"+callee)
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": in.ID, "result": map[string]any{"status": "ok"}})
}

func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func orEmptyRows(v []map[string]any) []map[string]any {
	if v == nil {
		return []map[string]any{}
	}
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
