package retailcrmfake

import (
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

var _ crmtest.Writes = (*Server)(nil)

const taskTimeLayout = "2006-01-02 15:04"

// taskRec is a stored task.
type taskRec struct {
	id          int64
	text        string
	commentary  string
	datetime    string
	createdAt   string
	performerID int64
	order       *orderRec
	customerID  int64
	phone       string
}

func (t *taskRec) json() taskJSON {
	out := taskJSON{ID: t.id, Text: t.text, Commentary: t.commentary, Datetime: t.datetime, CreatedAt: t.createdAt,
		Performer: t.performerID, PerformerType: "user", Phone: t.phone}
	if t.order != nil {
		ref := t.order.ref()
		out.Order = &ref
	}
	if t.customerID != 0 {
		out.Customer = &taskCust{Type: "customer", ID: t.customerID, Site: Site}
	}
	return out
}

// Written returns what clients created through the API, in creation
// order: customers, orders, uploaded calls and tasks.
func (s *Server) Written() crmtest.Written {
	s.mu.Lock()
	defer s.mu.Unlock()
	return crmtest.Written{
		Contacts: slices.Clone(s.written.Contacts),
		Leads:    slices.Clone(s.written.Leads),
		Calls:    slices.Clone(s.written.Calls),
		Tasks:    slices.Clone(s.written.Tasks),
	}
}

// SetUTM sets an order's source (UTM) and Google client id.
func (s *Server) SetUTM(r crm.Ref, u crm.UTM) {
	id, ok := s.id(r.ID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		s.t.Errorf("retailcrmfake: SetUTM: no order %d", id)
		return
	}
	o.utm = u
}

// UTM returns an order's source (UTM) and Google client id.
func (s *Server) UTM(r crm.Ref) crm.UTM {
	id, ok := s.id(r.ID)
	if !ok {
		return crm.UTM{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.orders[id]; ok {
		return o.utm
	}
	s.t.Errorf("retailcrmfake: UTM: no order %d", id)
	return crm.UTM{}
}

// FailWrites makes the next n POST requests fail with status and
// retailCRM's error body for it; 429 carries Retry-After: 1.
func (s *Server) FailWrites(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failN = status, n
}

// LeadKind is domain.KindDeal: callrouter's leads are retailCRM orders.
func (s *Server) LeadKind() domain.EntityKind { return domain.KindDeal }

// failWrite answers an injected write failure as retailCRM would.
func failWrite(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusBadRequest:
		fail(w, status, "Errors in the entity format", map[string]string{"phone": "This value is not valid."})
	case http.StatusForbidden:
		fail(w, status, "Access denied.", nil)
	case http.StatusNotFound:
		fail(w, status, "Not found", nil)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		fail(w, status, "Too many requests", nil)
	case http.StatusServiceUnavailable:
		fail(w, status, "Service temporarily unavailable", nil)
	case http.StatusInternalServerError:
		fail(w, status, "Internal Server Error", nil)
	default:
		fail(w, status, http.StatusText(status), nil)
	}
}

// serveWrite answers a POST: retailCRM takes forms with the entity as one
// JSON field.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		// retailCRM reads form fields only: a JSON body carries none.
		fail(w, http.StatusBadRequest, "Errors in the input parameters", map[string]string{"body": "Expected application/x-www-form-urlencoded, got " + ct})
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "Errors in the input parameters", map[string]string{"body": err.Error()})
		return
	}
	f := r.PostForm
	if site := f.Get("site"); site != "" && site != Site {
		fail(w, http.StatusForbidden, "Access denied.", nil)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v5/")
	switch {
	case path == "customers/create":
		s.createCustomer(w, f)
	case path == "orders/create":
		s.createOrder(w, f)
	case strings.HasPrefix(path, "customers/") && strings.HasSuffix(path, "/edit"):
		s.editCustomer(w, r.URL.Query(), f, strings.TrimSuffix(strings.TrimPrefix(path, "customers/"), "/edit"))
	case strings.HasPrefix(path, "orders/") && strings.HasSuffix(path, "/edit"):
		s.editOrder(w, r.URL.Query(), f, strings.TrimSuffix(strings.TrimPrefix(path, "orders/"), "/edit"))
	case path == "telephony/calls/upload":
		s.mu.Lock()
		on := s.telephonyOn()
		s.mu.Unlock()
		if !on {
			fail(w, http.StatusBadRequest, errNoTelephony, nil)
			return
		}
		s.uploadCalls(w, f)
	case strings.HasPrefix(path, "integration-modules/") && strings.HasSuffix(path, "/edit"):
		s.editModule(w, f, strings.TrimSuffix(strings.TrimPrefix(path, "integration-modules/"), "/edit"))
	case path == "tasks/create":
		s.createTask(w, f)
	default:
		fail(w, http.StatusNotFound, "API method not found", nil)
	}
}

// field decodes the JSON form field name into v; false after answering
// 400 as retailCRM does.
func field(w http.ResponseWriter, f url.Values, name string, v any) bool {
	raw := f.Get(name)
	if raw == "" {
		fail(w, http.StatusBadRequest, fmt.Sprintf("Parameter '%s' is missing", name), nil)
		return false
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		fail(w, http.StatusBadRequest, "Errors in the entity format", map[string]string{name: "Invalid JSON: " + err.Error()})
		return false
	}
	return true
}

// nextID returns the next free id of a map; s.mu is held.
func nextID[V any](m map[int64]V) int64 {
	var top int64
	for id := range m {
		top = max(top, id)
	}
	return top + 1
}

// next is the next creation's sequence number; s.mu is held.
func (s *Server) next() int {
	s.seq++
	return s.seq
}

type phoneIn struct {
	Number string `json:"number"`
}

type idIn struct {
	ID int64 `json:"id"`
}

type customerIn struct {
	FirstName    string            `json:"firstName"`
	LastName     string            `json:"lastName"`
	Email        string            `json:"email"`
	ManagerID    int64             `json:"managerId"`
	Phones       []phoneIn         `json:"phones"`
	CustomFields map[string]string `json:"customFields"`
}

// Custom fields of the fake account (Settings → custom fields), by code:
// roistat's visit id on orders, the landing page on customers.
const (
	OrderCustomField    = "roistat"
	CustomerCustomField = "landing"
)

// CustomField implements crmtest.Writes.
func (s *Server) CustomField(entity string) string {
	if entity == "contact" {
		return CustomerCustomField
	}
	return OrderCustomField
}

// checkCustom refuses a customFields code the account lacks for the
// entity, the way retailCRM answers an unknown code.
func checkCustom(w http.ResponseWriter, fields map[string]string, known string) bool {
	for code := range fields {
		if code != known {
			fail(w, http.StatusBadRequest, "Errors in the entity format", map[string]string{"customFields": fmt.Sprintf("Custom field with code %q not found.", code)})
			return false
		}
	}
	return true
}

func (s *Server) createCustomer(w http.ResponseWriter, f url.Values) {
	var in customerIn
	if !field(w, f, "customer", &in) {
		return
	}
	if !checkCustom(w, in.CustomFields, CustomerCustomField) {
		return
	}
	var phones []string
	for i, p := range in.Phones {
		if digits(p.Number) == "" {
			fail(w, http.StatusBadRequest, "Errors in the entity format", map[string]string{fmt.Sprintf("phones[%d].number", i): "This value is not valid."})
			return
		}
		phones = append(phones, p.Number)
	}
	s.mu.Lock()
	id := nextID(s.customers)
	c := &customerRec{id: id, createdAt: s.stamp(), firstName: in.FirstName, lastName: in.LastName, managerID: in.ManagerID, phones: phones,
		mail: in.Email, custom: nilIfEmpty(maps.Clone(in.CustomFields))}
	s.customers[id] = c
	s.addHistory(customersFeed, historyJSON{Created: true, Source: "api", APIKey: &apiKeyJSON{Current: true}, Field: "id",
		NewValue: id, Customer: c.json()})
	var ph string
	if len(phones) > 0 {
		ph = digits(phones[0])
	}
	s.written.Contacts = append(s.written.Contacts, crmtest.WrittenContact{Seq: s.next(), ID: strconv.FormatInt(id, 10),
		Phone: ph, OwnerID: idText(in.ManagerID), Name: in.FirstName, Email: in.Email, Fields: nilIfEmpty(in.CustomFields)})
	s.mu.Unlock()
	reply(w, http.StatusCreated, struct {
		Success bool  `json:"success"`
		ID      int64 `json:"id"`
	}{true, id})
}

func idText(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

type orderIn struct {
	ExternalID string      `json:"externalId"`
	OrderType  string      `json:"orderType"`
	FirstName  string      `json:"firstName"`
	Phone      string      `json:"phone"`
	ManagerID  int64       `json:"managerId"`
	Status     string      `json:"status"`
	Customer   *idIn       `json:"customer"`
	Source     *sourceJSON `json:"source"`
	ClientID   string      `json:"clientId"`

	CustomFields map[string]string `json:"customFields"`
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func utmOf(src *sourceJSON, clientID string) crm.UTM {
	u := crm.UTM{ClientID: clientID}
	if src != nil {
		u.Source, u.Medium, u.Campaign, u.Term, u.Content = src.Source, src.Medium, src.Campaign, src.Keyword, src.Content
	}
	return u
}

func (s *Server) createOrder(w http.ResponseWriter, f url.Values) {
	var in orderIn
	if !field(w, f, "order", &in) || !checkCustom(w, in.CustomFields, OrderCustomField) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cust *customerRec
	if in.Customer != nil {
		var ok bool
		if cust, ok = s.customers[in.Customer.ID]; !ok {
			fail(w, http.StatusBadRequest, "Order is not loaded", map[string]string{"customer.id": fmt.Sprintf("Customer with id=%d not found.", in.Customer.ID)})
			return
		}
	}
	if in.ExternalID != "" {
		for _, o := range s.orders {
			if o.externalID == in.ExternalID {
				fail(w, http.StatusBadRequest, "Order is not loaded", map[string]string{"externalId": fmt.Sprintf("Order with externalId=%s already exists.", in.ExternalID)})
				return
			}
		}
	}
	status := in.Status
	if status == "" {
		status = "new" // the account's default status
	}
	id := nextID(s.orders)
	o := &orderRec{id: id, number: strconv.FormatInt(id, 10) + "A", createdAt: s.stamp(), status: status,
		managerID: in.ManagerID, externalID: in.ExternalID, orderType: in.OrderType, firstName: in.FirstName,
		customer: cust, utm: utmOf(in.Source, in.ClientID), custom: nilIfEmpty(maps.Clone(in.CustomFields))}
	if in.Phone != "" {
		o.phones = []string{in.Phone}
	}
	o.statusUpdatedAt = o.createdAt
	s.orders[id] = o
	s.addHistory(ordersFeed, historyJSON{Created: true, Source: "api", APIKey: &apiKeyJSON{Current: true}, Field: "id",
		NewValue: id, Order: o.json()})
	wl := crmtest.WrittenLead{Seq: s.next(), Kind: domain.KindDeal, ID: strconv.FormatInt(id, 10), Title: in.FirstName,
		Phone: digits(in.Phone), OwnerID: idText(in.ManagerID), Pipeline: in.OrderType, UTM: o.utm,
		Fields: nilIfEmpty(in.CustomFields)}
	if cust != nil {
		wl.ContactID = strconv.FormatInt(cust.id, 10)
		if wl.Phone == "" && len(cust.phones) > 0 {
			wl.Phone = digits(cust.phones[0])
		}
	}
	s.written.Leads = append(s.written.Leads, wl)
	reply(w, http.StatusCreated, struct {
		Success bool      `json:"success"`
		ID      int64     `json:"id"`
		Order   orderJSON `json:"order"`
	}{true, id, o.json()})
}

// editOrder applies the fields callrouter edits: source, clientId,
// managerId, status and customFields (codes the account lacks refused;
// codes not sent keep their values).
func (s *Server) editOrder(w http.ResponseWriter, q, f url.Values, raw string) {
	var in orderIn
	if !field(w, f, "order", &in) || !checkCustom(w, in.CustomFields, OrderCustomField) {
		return
	}
	by := editBy(q, f)
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := lookup(s.orders, by, raw)
	if !ok {
		fail(w, http.StatusNotFound, "Not found", nil)
		return
	}
	if in.Source != nil {
		if in.Source.Source != "" {
			o.utm.Source = in.Source.Source
		}
		if in.Source.Medium != "" {
			o.utm.Medium = in.Source.Medium
		}
		if in.Source.Campaign != "" {
			o.utm.Campaign = in.Source.Campaign
		}
		if in.Source.Keyword != "" {
			o.utm.Term = in.Source.Keyword
		}
		if in.Source.Content != "" {
			o.utm.Content = in.Source.Content
		}
	}
	if in.ClientID != "" {
		o.utm.ClientID = in.ClientID
	}
	o.custom = crmtest.Merged(o.custom, in.CustomFields)
	if in.ManagerID != 0 && in.ManagerID != o.managerID {
		s.addHistory(ordersFeed, historyJSON{Source: "api", Field: "manager", OldValue: managerValue(o.managerID), NewValue: managerValue(in.ManagerID), Order: o.ref()})
		o.managerID = in.ManagerID
	}
	if in.Status != "" && in.Status != o.status {
		s.setStatus(o, in.Status)
	}
	reply(w, http.StatusOK, struct {
		Success bool      `json:"success"`
		ID      int64     `json:"id"`
		Order   orderJSON `json:"order"`
	}{true, o.id, o.json()})
}

type callIn struct {
	Date            string `json:"date"`
	Type            string `json:"type"`
	Phone           string `json:"phone"`
	Code            string `json:"code"`
	UserID          int64  `json:"userId"`
	Result          string `json:"result"`
	Duration        int64  `json:"duration"`
	DurationWaiting int64  `json:"durationWaiting"`
	ExternalID      string `json:"externalId"`
	RecordURL       string `json:"recordUrl"`
	ExternalPhone   string `json:"externalPhone"`
	Site            string `json:"site"`
}

var callResults = map[string]bool{"answered": true, "busy": true, "failed": true, "no answer": true, "not allowed": true, "unknown": true}

// uploadCalls stores calls and links each, as retailCRM does by phone, to
// the customer with the phone and the newest open order with it.
func (s *Server) uploadCalls(w http.ResponseWriter, f url.Values) {
	var in []callIn
	if !field(w, f, "calls", &in) {
		return
	}
	for i, c := range in {
		errs := map[string]string{}
		if _, err := time.Parse(timeLayout, c.Date); err != nil {
			errs[fmt.Sprintf("calls[%d].date", i)] = "This value is not a valid datetime."
		}
		if c.Type != "in" && c.Type != "out" {
			errs[fmt.Sprintf("calls[%d].type", i)] = "The value you selected is not a valid choice."
		}
		if c.Result != "" && !callResults[c.Result] {
			errs[fmt.Sprintf("calls[%d].result", i)] = "The value you selected is not a valid choice."
		}
		if digits(c.Phone) == "" {
			errs[fmt.Sprintf("calls[%d].phone", i)] = "This value should not be blank."
		}
		if c.Site != "" && c.Site != Site {
			errs[fmt.Sprintf("calls[%d].site", i)] = "Site not found."
		}
		if len(errs) > 0 {
			fail(w, http.StatusBadRequest, "Errors in the entity format", errs)
			return
		}
	}
	s.mu.Lock()
	for _, c := range in {
		start, _ := time.ParseInLocation(timeLayout, c.Date, s.zone)
		wc := crmtest.WrittenCall{Seq: s.next(), ID: c.ExternalID, Key: c.ExternalID, Outgoing: c.Type == "out", Start: start.UTC(),
			Answered: c.Result == "answered", Phone: digits(c.Phone), Duration: time.Duration(c.Duration) * time.Second,
			Recording: c.RecordURL, UserID: idText(c.UserID)}
		wc.LeadID, wc.ContactID = s.linksOf(c.Phone)
		s.written.Calls = append(s.written.Calls, wc)
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, struct {
		Success             bool `json:"success"`
		ProcessedCallsCount int  `json:"processedCallsCount"`
	}{true, len(in)})
}

// linksOf finds the newest open order and the first customer with the
// phone; s.mu is held.
func (s *Server) linksOf(ph string) (orderID, customerID string) {
	has := func(phones []string) bool {
		return slices.ContainsFunc(phones, func(p string) bool { return samePhone(p, ph) })
	}
	for _, id := range sortedKeys(s.customers, nil) {
		if has(s.customers[id].phones) {
			customerID = strconv.FormatInt(id, 10)
			break
		}
	}
	ids := sortedKeys(s.orders, nil)
	for i := len(ids) - 1; i >= 0; i-- {
		o := s.orders[ids[i]]
		if !s.open(o.status) {
			continue
		}
		if has(o.phones) || (o.customer != nil && has(o.customer.phones)) {
			orderID = strconv.FormatInt(o.id, 10)
			if customerID == "" && o.customer != nil {
				customerID = strconv.FormatInt(o.customer.id, 10)
			}
			break
		}
	}
	return orderID, customerID
}

type taskIn struct {
	Text        string `json:"text"`
	Commentary  string `json:"commentary"`
	Datetime    string `json:"datetime"`
	PerformerID int64  `json:"performerId"`
	Order       *idIn  `json:"order"`
	Customer    *idIn  `json:"customer"`
	Phone       string `json:"phone"`
}

func (s *Server) createTask(w http.ResponseWriter, f url.Values) {
	var in taskIn
	if !field(w, f, "task", &in) {
		return
	}
	errs := map[string]string{}
	if strings.TrimSpace(in.Text) == "" {
		errs["text"] = "This value should not be blank."
	}
	if in.PerformerID == 0 {
		errs["performerId"] = "This value should not be blank."
	}
	var due time.Time
	if in.Datetime != "" {
		var err error
		s.mu.Lock()
		zone := s.zone
		s.mu.Unlock()
		if due, err = time.ParseInLocation(taskTimeLayout, in.Datetime, zone); err != nil {
			errs["datetime"] = "This value is not a valid datetime."
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &taskRec{text: in.Text, commentary: in.Commentary, datetime: in.Datetime, performerID: in.PerformerID, phone: in.Phone}
	if in.Order != nil {
		if t.order = s.orders[in.Order.ID]; t.order == nil {
			errs["order"] = fmt.Sprintf("Order with id=%d not found.", in.Order.ID)
		}
	}
	if in.Customer != nil {
		if _, ok := s.customers[in.Customer.ID]; !ok {
			errs["customer"] = fmt.Sprintf("Customer with id=%d not found.", in.Customer.ID)
		}
		t.customerID = in.Customer.ID
	}
	if len(errs) > 0 {
		fail(w, http.StatusBadRequest, "Errors in the entity format", errs)
		return
	}
	s.nextTask++
	t.id, t.createdAt = s.nextTask, s.stamp()
	s.tasks[t.id] = t
	wt := crmtest.WrittenTask{Seq: s.next(), ID: strconv.FormatInt(t.id, 10), Text: t.text, UserID: idText(t.performerID),
		ContactID: idText(t.customerID), Due: due}
	if t.order != nil {
		wt.LeadID = strconv.FormatInt(t.order.id, 10)
	}
	s.written.Tasks = append(s.written.Tasks, wt)
	reply(w, http.StatusCreated, struct {
		Success bool  `json:"success"`
		ID      int64 `json:"id"`
	}{true, t.id})
}

// listTasks serves GET /api/v5/tasks with filter[orderNumber],
// filter[text] (a substring of the text) and filter[performers][].
func (s *Server) listTasks(w http.ResponseWriter, q url.Values) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	number, text := q.Get("filter[orderNumber]"), q.Get("filter[text]")
	performers := q["filter[performers][]"]
	s.mu.Lock()
	var all []taskJSON
	for _, id := range sortedKeys(s.tasks, nil) {
		t := s.tasks[id]
		if number != "" && (t.order == nil || t.order.number != number) {
			continue
		}
		if text != "" && !strings.Contains(t.text, text) {
			continue
		}
		if len(performers) > 0 && !slices.Contains(performers, strconv.FormatInt(t.performerID, 10)) {
			continue
		}
		all = append(all, t.json())
	}
	s.mu.Unlock()
	from, to, p := window(len(all), limit, page)
	out := all[from:to]
	if out == nil {
		out = []taskJSON{}
	}
	reply(w, http.StatusOK, struct {
		Success    bool           `json:"success"`
		Pagination paginationJSON `json:"pagination"`
		Tasks      []taskJSON     `json:"tasks"`
	}{true, p, out})
}

// Reauthorize ends a Revoke: Creds returns working credentials again.
func (s *Server) Reauthorize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = false
}

// listCustomFields serves GET /api/v5/custom-fields: the account's custom
// fields, filter[entity] order or customer, on one page.
func (s *Server) listCustomFields(w http.ResponseWriter, q url.Values) {
	type cf struct {
		Name   string `json:"name"`
		Code   string `json:"code"`
		Type   string `json:"type"`
		Entity string `json:"entity"`
	}
	all := []cf{{Name: "Roistat", Code: OrderCustomField, Type: "string", Entity: "order"},
		{Name: "Landing", Code: CustomerCustomField, Type: "string", Entity: "customer"}}
	var out []cf
	for _, f := range all {
		if e := q.Get("filter[entity]"); e == "" || e == f.Entity {
			out = append(out, f)
		}
	}
	reply(w, http.StatusOK, map[string]any{"success": true, "customFields": out,
		"pagination": map[string]int{"limit": 100, "totalCount": len(out), "currentPage": 1, "totalPageCount": 1}})
}

// editBy is an edit's "by" (id or externalId), from the form or else the
// query, as retailCRM reads it.
func editBy(q, f url.Values) url.Values {
	by := f.Get("by")
	if by == "" {
		by = q.Get("by")
	}
	return url.Values{"by": {by}}
}

// editCustomer is POST /api/v5/customers/{externalId|id}/edit (by=id for
// ids, by query or form): customer={firstName, lastName, email,
// managerId, customFields}; like retailCRM's, only what is sent changes,
// and a customFields code the account lacks is refused.
func (s *Server) editCustomer(w http.ResponseWriter, q, f url.Values, raw string) {
	var in customerIn
	if !field(w, f, "customer", &in) || !checkCustom(w, in.CustomFields, CustomerCustomField) {
		return
	}
	by := editBy(q, f)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := lookup(s.customers, by, raw)
	if !ok {
		fail(w, http.StatusNotFound, "Not found", nil)
		return
	}
	if in.FirstName != "" {
		c.firstName = in.FirstName
	}
	if in.LastName != "" {
		c.lastName = in.LastName
	}
	if in.Email != "" {
		c.mail = in.Email
	}
	if in.ManagerID != 0 {
		c.managerID = in.ManagerID
	}
	c.custom = crmtest.Merged(c.custom, in.CustomFields)
	reply(w, http.StatusOK, struct {
		Success bool  `json:"success"`
		ID      int64 `json:"id"`
	}{true, c.id})
}

// Fields implements crmtest.Writes: the customFields of a customer
// (contact) or order (deal).
func (s *Server) Fields(r crm.Ref) map[string]string {
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Kind {
	case domain.KindContact:
		if c := s.customers[id]; c != nil {
			return maps.Clone(c.custom)
		}
	case domain.KindDeal:
		if o := s.orders[id]; o != nil {
			return maps.Clone(o.custom)
		}
	}
	return nil
}
