// Package retailcrmfake is a fake retailCRM account for tests: an httptest
// server on 127.0.0.1 that speaks the part of retailCRM API v5 callrouter
// uses, with the answer shapes of retailCRM's public client tests.
//
// It serves GET /api/v5/customers, /customers/{id}, /customers/history,
// /orders, /orders/{id} (by=id or externalId), /orders/history, /users,
// /reference/statuses, /tasks and /telephony/manager. Every request needs the key (header X-API-KEY or
// parameter apiKey); a wrong or revoked key gets retailCRM's 403
// {"success":false,"errorMsg":"Wrong \"apiKey\" value."}. Lists take limit
// 20, 50 or 100 and page; history takes filter[sinceId] and returns the
// records with a greater id, oldest first. Every Put and Delete appends
// history records with growing ids, as retailCRM does.
//
// Entities map onto retailCRM as the adapter reads them: contacts are
// customers (name split into firstName and lastName at the first space),
// deals and leads are orders (name is the order number; the first two
// phones are phone and additionalPhone, further ones ride on the embedded
// customer; open orders get status "new", closed ones "complete").
// retailCRM has no companies: Put ignores them.
//
// It also takes the writes callrouter makes, as forms with one JSON field
// (see writes.go): POST /api/v5/customers/create, /orders/create,
// /orders/{id}/edit (source, clientId, managerId, status, customFields),
// /customers/{id}/edit (firstName, lastName, email, managerId,
// customFields; fields not sent keep their values),
// /telephony/calls/upload and /tasks/create, and lists tasks with GET
// /api/v5/tasks (filter[orderNumber], filter[text], filter[performers][]).
// Created customers and orders are ordinary records: listed, in the
// history feeds, found by /telephony/manager; orders get status "new".
// Uploaded calls are linked, like retailCRM does, to the customer and the
// newest open order with the phone. Written, SetUTM, UTM, FailWrites,
// LeadKind (deal) and Fields implement crmtest.Writes.
//
// Requests to /api/v5/telephony/* are metered at 40 per second
// (TelephonyMeter), all others at 10 (Meter), like retailCRM's limits.
package retailcrmfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// Site is the store code the fake's records belong to.
const Site = "callrouter-test"

const timeLayout = "2006-01-02 15:04:05"

// feed names a history feed.
type feed int

const (
	customersFeed feed = iota
	ordersFeed
)

// Server is a fake retailCRM account. Its methods are safe for concurrent
// use.
type Server struct {
	t    testing.TB
	srv  *httptest.Server
	key  string
	api  *crmtest.RateMeter
	tel  *crmtest.RateMeter
	done chan struct{}

	mu        sync.Mutex
	now       func() time.Time
	zone      *time.Location // the account's time zone, which API datetimes are in
	customers map[int64]*customerRec
	orders    map[int64]*orderRec
	users     []crm.User
	statuses  []statusJSON
	history   [2][]historyJSON
	nextHist  [2]int64
	reads     [2]map[int64]int
	sinceIDs  [2][]int64
	revoked   bool
	dead      bool
	denied    map[string]bool
	delay     time.Duration
	queue     []canned
	calls     map[string]int
	// modules are the registered integration modules by code; the
	// telephony methods answer only once one has telephony.
	modules     map[string]Module
	moduleEdits map[string]int
	userGroups  map[string][]string

	// What clients wrote through the API.
	seq        int
	written    crmtest.Written
	tasks      map[int64]*taskRec
	nextTask   int64
	failStatus int
	failN      int
}

var _ crmtest.Fake = (*Server)(nil)

// canned is an injected answer.
type canned struct {
	status      int
	retryAfter  string
	contentType string
	body        string
}

// New starts a fake account with no records, no users and retailCRM's
// default order statuses; it is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		t:           t,
		key:         "retailcrm-fake-key-5f2b",
		api:         crmtest.NewRateMeter(t, 10),
		tel:         crmtest.NewRateMeter(t, 40),
		done:        make(chan struct{}),
		now:         time.Now,
		zone:        time.UTC,
		customers:   map[int64]*customerRec{},
		orders:      map[int64]*orderRec{},
		denied:      map[string]bool{},
		calls:       map[string]int{},
		modules:     map[string]Module{},
		moduleEdits: map[string]int{},
		userGroups:  map[string][]string{},
		tasks:       map[int64]*taskRec{},
		reads:       [2]map[int64]int{{}, {}},
		statuses: []statusJSON{
			{Name: "Новый", Code: "new", Active: true, Ordering: 10, Group: "new"},
			{Name: "Комплектуется", Code: "assembling", Active: true, Ordering: 40, Group: "assembling"},
			{Name: "Выполнен", Code: "complete", Active: true, Ordering: 100, Group: "complete"},
			{Name: "Отменен", Code: "cancel-other", Active: true, Ordering: 110, Group: "cancel"},
			{Name: "Недозвон", Code: "no-call", Active: true, Ordering: 120, Group: "cancel"},
		},
	}
	api, tel := s.api.Wrap(http.HandlerFunc(s.serve)), s.tel.Wrap(http.HandlerFunc(s.serve))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v5/telephony/") {
			tel.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(s.done) // releases hanging requests, so Close can return
		s.srv.Close()
	})
	return s
}

// URL is the account's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Creds are credentials with the account's key.
func (s *Server) Creds() json.RawMessage {
	b, _ := json.Marshal(map[string]string{"api_key": s.key, "site": Site})
	return b
}

// Meter counts requests to every method but the telephony ones against
// retailCRM's 10 per second.
func (s *Server) Meter() *crmtest.RateMeter { return s.api }

// TelephonyMeter counts requests to /api/v5/telephony/* against their own
// 40 per second.
func (s *Server) TelephonyMeter() *crmtest.RateMeter { return s.tel }

// SetClock replaces the clock that stamps records and history.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetTimezone sets the account's time zone (Settings, time zone): the
// datetimes of uploaded calls and created tasks are read in it, as
// retailCRM reads them. UTC until set.
func (s *Server) SetTimezone(loc *time.Location) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone = loc
}

// SetUsers replaces the account's users. IDs must be integers; Extension
// is the user's telephony code, shown as manager.code by
// /telephony/manager.
func (s *Server) SetUsers(users []crm.User) {
	for _, u := range users {
		if _, ok := s.id(u.ID); !ok {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = slices.Clone(users)
}

// Revoke makes the account reject its key as retailCRM does for a deleted
// key: 403 Wrong "apiKey" value.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
}

// KillAccount makes every answer nginx's HTML 405 page, which retailCRM
// serves for accounts that no longer exist.
func (s *Server) KillAccount() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
}

// Deny makes the method at path (e.g. /api/v5/reference/statuses) answer
// 403 Access denied., as for a key without that permission.
func (s *Server) Deny(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[path] = true
}

// SetDelay makes answers take d; a negative d hangs each request until the
// client gives up.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Inject503 makes the next n requests answer 503 without Retry-After.
func (s *Server) Inject503(n int) { s.InjectRetry(http.StatusServiceUnavailable, n, "") }

// InjectRetry makes the next n requests answer status (503 or 429) with a
// Retry-After header when retryAfter is not "".
func (s *Server) InjectRetry(status, n int, retryAfter string) {
	body := `{"success":false,"errorMsg":"Service temporarily unavailable"}`
	if status == http.StatusTooManyRequests {
		body = `{"success":false,"errorMsg":"Too many requests"}`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queue = append(s.queue, canned{status: status, retryAfter: retryAfter, contentType: "application/json", body: body})
	}
}

// InjectAnswer makes the next request get this answer verbatim.
func (s *Server) InjectAnswer(status int, contentType, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, canned{status: status, contentType: contentType, body: body})
}

// AddStatus adds an order status code to a status group (new, approval,
// assembling, delivery, complete, cancel).
func (s *Server) AddStatus(code, group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses = append(s.statuses, statusJSON{Name: code, Code: code, Active: true, Ordering: 200 + len(s.statuses), Group: group})
}

// Calls returns how many requests the method at path (e.g.
// /api/v5/customers) received.
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// HistoryReads returns how often each history record of a kind's feed
// (contact: customers, deal: orders) was served.
func (s *Server) HistoryReads(kind domain.EntityKind) map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, _ := feedOf(kind)
	out := make(map[int64]int, len(s.reads[f]))
	for id, n := range s.reads[f] {
		out[id] = n
	}
	return out
}

// SinceIDs returns the filter[sinceId] values a kind's history feed was
// asked with, in order.
func (s *Server) SinceIDs(kind domain.EntityKind) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, _ := feedOf(kind)
	return slices.Clone(s.sinceIDs[f])
}

// LastHistoryID returns the id of the newest history record of a kind's
// feed, 0 when there is none.
func (s *Server) LastHistoryID(kind domain.EntityKind) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, _ := feedOf(kind)
	return s.nextHist[f]
}

// feedOf returns the history feed of an entity kind.
func feedOf(kind domain.EntityKind) (feed, bool) {
	switch kind {
	case domain.KindContact:
		return customersFeed, true
	case domain.KindDeal, domain.KindLead:
		return ordersFeed, true
	}
	return 0, false
}

// id parses a record id, failing the test when it cannot be retailCRM's.
func (s *Server) id(raw string) (int64, bool) {
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n <= 0 {
		s.t.Errorf("retailcrmfake: id %q: retailCRM ids are positive integers", raw)
		return 0, false
	}
	return n, true
}

func (s *Server) stamp() string { return s.now().UTC().Format(timeLayout) }

// addHistory appends a record to a feed with the next id; s.mu is held.
func (s *Server) addHistory(f feed, h historyJSON) {
	s.nextHist[f]++
	h.ID = s.nextHist[f]
	h.CreatedAt = s.stamp()
	if h.Source == "" {
		h.Source = "user"
		h.User = &idJSON{ID: 1}
	}
	s.history[f] = append(s.history[f], h)
}

// Put creates or changes a customer (contact) or an order (deal or lead),
// adding the history records retailCRM would: a created record carrying
// the whole entity, or one record per changed field (phones, manager,
// first_name, last_name; orders: status, manager, phone,
// additional_phone, number). Companies are ignored.
func (s *Server) Put(e crm.Entity) {
	f, ok := feedOf(e.Kind)
	if !ok {
		s.t.Logf("retailcrmfake: retailCRM has no %s entities; Put ignored", e.Kind)
		return
	}
	id, ok := s.id(e.ID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == customersFeed {
		s.putCustomer(id, e)
	} else {
		s.putOrder(id, e)
	}
}

func splitName(n string) (first, last string) {
	first, last, _ = strings.Cut(strings.TrimSpace(n), " ")
	return first, strings.TrimSpace(last)
}

func (s *Server) putCustomer(id int64, e crm.Entity) {
	first, last := splitName(e.Name)
	manager := ownerID(e.OwnerID)
	c, ok := s.customers[id]
	if !ok {
		c = &customerRec{id: id, createdAt: s.stamp(), firstName: first, lastName: last, managerID: manager, phones: slices.Clone(e.Phones)}
		s.customers[id] = c
		s.addHistory(customersFeed, historyJSON{Created: true, Source: "api", APIKey: &apiKeyJSON{}, Field: "id",
			NewValue: id, Customer: c.json()})
		return
	}
	ref := c.ref()
	for _, p := range c.phones {
		if !slices.Contains(e.Phones, p) {
			s.addHistory(customersFeed, historyJSON{Field: "phones", OldValue: p, Customer: ref})
		}
	}
	for _, p := range e.Phones {
		if !slices.Contains(c.phones, p) {
			s.addHistory(customersFeed, historyJSON{Field: "phones", NewValue: p, Customer: ref})
		}
	}
	c.phones = slices.Clone(e.Phones)
	if c.managerID != manager {
		s.addHistory(customersFeed, historyJSON{Field: "manager", OldValue: managerValue(c.managerID), NewValue: managerValue(manager), Customer: ref})
		c.managerID = manager
	}
	if c.firstName != first {
		s.addHistory(customersFeed, historyJSON{Field: "first_name", OldValue: c.firstName, NewValue: first, Customer: ref})
		c.firstName = first
	}
	if c.lastName != last {
		s.addHistory(customersFeed, historyJSON{Field: "last_name", OldValue: c.lastName, NewValue: last, Customer: ref})
		c.lastName = last
	}
}

func (s *Server) putOrder(id int64, e crm.Entity) {
	number := strings.TrimSpace(e.Name)
	if number == "" {
		number = strconv.FormatInt(id, 10) + "A"
	}
	status := "new"
	if !e.Open {
		status = "complete"
	}
	manager := ownerID(e.OwnerID)
	o, ok := s.orders[id]
	if !ok {
		o = &orderRec{id: id, number: number, createdAt: s.stamp(), status: status, managerID: manager, phones: slices.Clone(e.Phones)}
		o.statusUpdatedAt = o.createdAt
		s.orders[id] = o
		s.addHistory(ordersFeed, historyJSON{Created: true, Source: "api", APIKey: &apiKeyJSON{}, Field: "id",
			NewValue: id, Order: o.json()})
		return
	}
	ref := o.ref()
	if s.open(o.status) != e.Open {
		s.setStatus(o, status)
	}
	if o.managerID != manager {
		s.addHistory(ordersFeed, historyJSON{Field: "manager", OldValue: managerValue(o.managerID), NewValue: managerValue(manager), Order: ref})
		o.managerID = manager
	}
	oldPhone, oldAdd, oldRest := o.phone(0), o.phone(1), o.extraPhones()
	o.phones = slices.Clone(e.Phones)
	if !slices.Equal(oldRest, o.extraPhones()) {
		// The further phones ride on the embedded customer.
		s.addHistory(ordersFeed, historyJSON{Field: "customer", Order: ref})
	}
	if p := o.phone(0); p != oldPhone {
		s.addHistory(ordersFeed, historyJSON{Field: "phone", OldValue: oldPhone, NewValue: p, Order: ref})
	}
	if p := o.phone(1); p != oldAdd {
		s.addHistory(ordersFeed, historyJSON{Field: "additional_phone", OldValue: oldAdd, NewValue: p, Order: ref})
	}
	if o.number != number {
		s.addHistory(ordersFeed, historyJSON{Field: "number", OldValue: o.number, NewValue: number, Order: ref})
		o.number = number
	}
}

// open reports whether a status code is outside the final groups; s.mu is
// held.
func (s *Server) open(code string) bool {
	for _, st := range s.statuses {
		if st.Code == code {
			return st.Group != "complete" && st.Group != "cancel"
		}
	}
	return true
}

// setStatus changes an order's status with its history record; s.mu is
// held.
func (s *Server) setStatus(o *orderRec, code string) {
	s.addHistory(ordersFeed, historyJSON{Field: "status", OldValue: map[string]string{"code": o.status},
		NewValue: map[string]string{"code": code}, Order: o.ref()})
	o.status, o.statusUpdatedAt = code, s.stamp()
}

// SetOrderStatus changes an order's status code (see AddStatus) as a
// manager would, with its history record.
func (s *Server) SetOrderStatus(id, code string) {
	n, ok := s.id(id)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[n]
	if !ok {
		s.t.Errorf("retailcrmfake: SetOrderStatus: no order %d", n)
		return
	}
	s.setStatus(o, code)
}

// Noise adds n history records of changes routing does not care about
// (segment recalculations, which retailCRM writes by the thousand) to a
// customer.
func (s *Server) Noise(customerID string, n int) {
	id, ok := s.id(customerID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.customers[id]
	if !ok {
		s.t.Errorf("retailcrmfake: Noise: no customer %d", id)
		return
	}
	for i := range n {
		s.addHistory(customersFeed, historyJSON{Source: "code", Field: "segments", NewValue: map[string]string{"code": fmt.Sprintf("segment-%d", i)}, Customer: c.ref()})
	}
}

// Delete removes a customer or order with its deleted history record.
func (s *Server) Delete(r crm.Ref) {
	f, ok := feedOf(r.Kind)
	if !ok {
		return
	}
	id, ok := s.id(r.ID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f {
	case customersFeed:
		if c, ok := s.customers[id]; ok {
			s.addHistory(f, historyJSON{Deleted: true, Field: "id", OldValue: id, Customer: c.json()})
			delete(s.customers, id)
		}
	case ordersFeed:
		if o, ok := s.orders[id]; ok {
			s.addHistory(f, historyJSON{Deleted: true, Field: "id", OldValue: id, Order: o.json()})
			delete(s.orders, id)
		}
	}
}

// Notification returns what a retailCRM trigger configured as the adapter
// documents would post after a change of r: JSON {"type","id"}, with
// "deleted": true when the record is gone. ok is false for kinds
// retailCRM does not have.
func (s *Server) Notification(r crm.Ref) (string, []byte, bool) {
	f, ok := feedOf(r.Kind)
	if !ok {
		return "", nil, false
	}
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		return "", nil, false
	}
	s.mu.Lock()
	var exists bool
	typ := "customer"
	if f == customersFeed {
		_, exists = s.customers[id]
	} else {
		_, exists = s.orders[id]
		typ = "order"
	}
	s.mu.Unlock()
	n := map[string]any{"type": typ, "id": id}
	if !exists {
		n["deleted"] = true
	}
	b, _ := json.Marshal(n)
	return "application/json", b, true
}

// serve answers one API request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if !crmtest.Delay(r.Context(), delay, s.done) {
		return
	}
	s.mu.Lock()
	s.calls[r.URL.Path]++
	var c *canned
	if len(s.queue) > 0 {
		c = &s.queue[0]
		s.queue = s.queue[1:]
	}
	dead, revoked, denied := s.dead, s.revoked, s.denied[r.URL.Path]
	failStatus := 0
	if c == nil && !dead && r.Method != http.MethodGet && s.failN > 0 {
		s.failN--
		failStatus = s.failStatus
	}
	s.mu.Unlock()
	switch {
	case c != nil:
		if c.retryAfter != "" {
			w.Header().Set("Retry-After", c.retryAfter)
		}
		w.Header().Set("Content-Type", c.contentType)
		w.WriteHeader(c.status)
		_, _ = w.Write([]byte(c.body))
		return
	case dead:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(nginx405))
		return
	case failStatus != 0:
		failWrite(w, failStatus)
		return
	}
	key := r.Header.Get("X-API-KEY")
	if key == "" {
		key = r.URL.Query().Get("apiKey")
	}
	switch {
	case key == "":
		fail(w, http.StatusForbidden, `"apiKey" is missing.`, nil)
		return
	case revoked || key != s.key:
		fail(w, http.StatusForbidden, `Wrong "apiKey" value.`, nil)
		return
	case denied:
		fail(w, http.StatusForbidden, "Access denied.", nil)
		return
	case r.Method == http.MethodPost:
		s.serveWrite(w, r)
		return
	case r.Method != http.MethodGet:
		fail(w, http.StatusMethodNotAllowed, "Method Not Allowed", nil)
		return
	}
	q := r.URL.Query()
	path := strings.TrimPrefix(r.URL.Path, "/api/v5/")
	switch {
	case path == "tasks":
		s.listTasks(w, q)
	case path == "customers":
		s.listCustomers(w, q)
	case path == "customers/history":
		s.serveHistory(w, q, customersFeed)
	case strings.HasPrefix(path, "customers/"):
		s.getCustomer(w, q, strings.TrimPrefix(path, "customers/"))
	case path == "orders":
		s.listOrders(w, q)
	case path == "orders/history":
		s.serveHistory(w, q, ordersFeed)
	case strings.HasPrefix(path, "orders/"):
		s.getOrder(w, q, strings.TrimPrefix(path, "orders/"))
	case path == "telephony/manager":
		s.telephonyManager(w, q)
	case path == "users":
		s.listUsers(w, q)
	case path == "user-groups":
		s.listUserGroups(w, q)
	case path == "reference/statuses":
		s.listStatuses(w)
	case path == "custom-fields":
		s.listCustomFields(w, q)
	default:
		fail(w, http.StatusNotFound, "API method not found", nil)
	}
}

const nginx405 = `<html>
<head><title>405 Not Allowed</title></head>
<body>
<center><h1>405 Not Allowed</h1></center>
<hr><center>nginx/1.18.0</center>
</body>
</html>
`

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string, errs map[string]string) {
	reply(w, status, errorJSON{Success: false, ErrorMsg: msg, Errors: errs})
}

// paging reads limit and page; ok is false after answering 400.
func paging(w http.ResponseWriter, q url.Values) (limit, page int, ok bool) {
	limit, page = 20, 1
	errs := map[string]string{}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 20 && n != 50 && n != 100) {
			errs["limit"] = "This value should be one of 20, 50, 100."
		}
		limit = n
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs["page"] = "This value should be greater than or equal to 1."
		}
		page = n
	}
	if len(errs) > 0 {
		fail(w, http.StatusBadRequest, "Errors in the input parameters", errs)
		return 0, 0, false
	}
	return limit, page, true
}

// window returns the bounds of a page of n items and its pagination block.
func window(n, limit, page int) (from, to int, p paginationJSON) {
	p = paginationJSON{Limit: limit, TotalCount: n, CurrentPage: page, TotalPageCount: (n + limit - 1) / limit}
	from = min((page-1)*limit, n)
	to = min(from+limit, n)
	return from, to, p
}

// idFilter reads filter[ids][]; nil when absent.
func idFilter(q url.Values) map[int64]bool {
	vs := q["filter[ids][]"]
	if len(vs) == 0 {
		return nil
	}
	ids := make(map[int64]bool, len(vs))
	for _, v := range vs {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			ids[n] = true
		}
	}
	return ids
}

func sortedKeys[V any](m map[int64]V, keep map[int64]bool) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		if keep == nil || keep[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *Server) listCustomers(w http.ResponseWriter, q url.Values) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := sortedKeys(s.customers, idFilter(q))
	if e := q.Get("filter[email]"); e != "" {
		ids = slices.DeleteFunc(ids, func(id int64) bool { return !strings.EqualFold(s.customers[id].email(), e) })
	}
	from, to, p := window(len(ids), limit, page)
	out := make([]customerJSON, 0, to-from)
	for _, id := range ids[from:to] {
		out = append(out, s.customers[id].json())
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, struct {
		Success    bool           `json:"success"`
		Pagination paginationJSON `json:"pagination"`
		Customers  []customerJSON `json:"customers"`
	}{true, p, out})
}

func (s *Server) listOrders(w http.ResponseWriter, q url.Values) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := sortedKeys(s.orders, idFilter(q))
	from, to, p := window(len(ids), limit, page)
	out := make([]orderJSON, 0, to-from)
	for _, id := range ids[from:to] {
		out = append(out, s.orders[id].json())
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, struct {
		Success    bool           `json:"success"`
		Pagination paginationJSON `json:"pagination"`
		Orders     []orderJSON    `json:"orders"`
	}{true, p, out})
}

// lookup finds a record by id or, as retailCRM does by default, by
// external id.
func lookup[R interface{ external() string }](m map[int64]R, q url.Values, raw string) (R, bool) {
	var zero R
	if q.Get("by") == "id" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return zero, false
		}
		r, ok := m[n]
		return r, ok
	}
	for _, r := range m {
		if r.external() != "" && r.external() == raw {
			return r, true
		}
	}
	return zero, false
}

func (s *Server) getCustomer(w http.ResponseWriter, q url.Values, raw string) {
	s.mu.Lock()
	c, ok := lookup(s.customers, q, raw)
	var out customerJSON
	if ok {
		out = c.json()
	}
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "Not found", nil)
		return
	}
	reply(w, http.StatusOK, struct {
		Success  bool         `json:"success"`
		Customer customerJSON `json:"customer"`
	}{true, out})
}

func (s *Server) getOrder(w http.ResponseWriter, q url.Values, raw string) {
	s.mu.Lock()
	o, ok := lookup(s.orders, q, raw)
	var out orderJSON
	if ok {
		out = o.json()
	}
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "Not found", nil)
		return
	}
	reply(w, http.StatusOK, struct {
		Success bool      `json:"success"`
		Order   orderJSON `json:"order"`
	}{true, out})
}

func (s *Server) serveHistory(w http.ResponseWriter, q url.Values, f feed) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	var since int64
	if v := q.Get("filter[sinceId]"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fail(w, http.StatusBadRequest, "Errors in the input parameters", map[string]string{"filter[sinceId]": "This value is not valid."})
			return
		}
		since = n
	}
	s.mu.Lock()
	if q.Has("filter[sinceId]") {
		s.sinceIDs[f] = append(s.sinceIDs[f], since)
	}
	var recs []historyJSON
	for _, h := range s.history[f] {
		if h.ID > since {
			recs = append(recs, h)
		}
	}
	from, to, p := window(len(recs), limit, page)
	recs = recs[from:to]
	for _, h := range recs {
		s.reads[f][h.ID]++
	}
	generated := s.stamp()
	s.mu.Unlock()
	if recs == nil {
		recs = []historyJSON{}
	}
	reply(w, http.StatusOK, struct {
		Success     bool           `json:"success"`
		GeneratedAt string         `json:"generatedAt"`
		History     []historyJSON  `json:"history"`
		Pagination  paginationJSON `json:"pagination"`
	}{true, generated, recs, p})
}

// digits keeps the digits of a phone.
func digits(p string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, p)
}

// samePhone compares phones the way retailCRM's phone search does, by
// their last ten digits (so "8 (800) 555-31-25" is 78005553125).
func samePhone(a, b string) bool {
	a, b = digits(a), digits(b)
	if len(a) >= 10 && len(b) >= 10 {
		return a[len(a)-10:] == b[len(b)-10:]
	}
	return a != "" && a == b
}

func (s *Server) telephonyManager(w http.ResponseWriter, q url.Values) {
	s.mu.Lock()
	on := s.telephonyOn()
	s.mu.Unlock()
	if !on {
		fail(w, http.StatusBadRequest, errNoTelephony, nil)
		return
	}
	ph := q.Get("phone")
	if ph == "" {
		fail(w, http.StatusBadRequest, "Parameter 'phone' is missing", nil)
		return
	}
	s.mu.Lock()
	var found *customerRec
	for _, id := range sortedKeys(s.customers, nil) {
		c := s.customers[id]
		if slices.ContainsFunc(c.phones, func(p string) bool { return samePhone(p, ph) }) {
			found = c
			break
		}
	}
	out := telephonyJSON{Success: true, Links: map[string]string{
		"newOrderLink":    s.srv.URL + "/orders/add?phone=" + url.QueryEscape(ph),
		"newCustomerLink": s.srv.URL + "/customers/add?phone=" + url.QueryEscape(ph),
	}}
	if found != nil {
		out.Customer = &telephonyCustomerJSON{ID: found.id, FirstName: found.firstName, LastName: found.lastName,
			Email: found.email(), Phones: phonesJSON(found.phones)}
		if found.managerID != 0 {
			m := &telephonyManagerJSON{ID: found.managerID}
			for _, u := range s.users {
				if u.ID == strconv.FormatInt(found.managerID, 10) {
					m.FirstName, m.LastName = splitName(u.Name)
					m.Email, m.Code = u.Email, u.Extension
				}
			}
			out.Manager = m
		}
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, out)
}

func (s *Server) listUsers(w http.ResponseWriter, q url.Values) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []userJSON
	wantGroups := q["filter[groups][]"]
	for _, u := range s.users {
		if q.Get("filter[active]") == "1" && !u.Active {
			continue
		}
		groups := s.groupsOf(u.ID)
		if len(wantGroups) > 0 && !slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(wantGroups, g) }) {
			continue
		}
		id, _ := strconv.ParseInt(u.ID, 10, 64)
		first, last := splitName(u.Name)
		uj := userJSON{ID: id, CreatedAt: "2020-05-25 12:49:00", Active: u.Active, Email: u.Email,
			FirstName: first, LastName: last, Status: "free", Online: true, IsManager: slices.Contains(groups, "manager")}
		for i, g := range groups {
			uj.Groups = append(uj.Groups, groupJSON{ID: int64(25 + i), Name: g, Code: g})
		}
		all = append(all, uj)
	}
	s.mu.Unlock()
	from, to, p := window(len(all), limit, page)
	out := all[from:to]
	if out == nil {
		out = []userJSON{}
	}
	reply(w, http.StatusOK, struct {
		Success    bool           `json:"success"`
		Pagination paginationJSON `json:"pagination"`
		Users      []userJSON     `json:"users"`
	}{true, p, out})
}

func (s *Server) listStatuses(w http.ResponseWriter) {
	s.mu.Lock()
	out := make(map[string]statusJSON, len(s.statuses))
	for _, st := range s.statuses {
		out[st.Code] = st
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, struct {
		Success  bool                  `json:"success"`
		Statuses map[string]statusJSON `json:"statuses"`
	}{true, out})
}

// ScaleRate implements crmtest.Fake.
func (s *Server) ScaleRate(k int) {
	s.api.Scale(k)
	s.tel.Scale(k)
}
