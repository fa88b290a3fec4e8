package amocrmfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

// Custom field facts of the fake account.
const (
	phoneFieldID  = 264911
	phoneEnumWork = 530241
	vipFieldID    = 264915
)

// Page size limits amoCRM enforces.
const (
	defaultLimit = 50
	maxLimit     = 250
	maxEventPage = 100
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requestLog = append(s.requestLog, r.Method+" "+r.URL.RequestURI())
	delay := s.delay
	tooMany := s.tooMany > 0
	retryAfter := s.retryAfter
	if tooMany {
		s.tooMany--
	}
	s.mu.Unlock()

	if !crmtest.Delay(r.Context(), delay, s.closed) {
		return
	}
	if tooMany {
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		}
		// amoCRM's 429 is not problem+json (amocrm-api-php reads no body).
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "<html><body><h1>429 Too Many Requests</h1></body></html>\n")
		return
	}
	if r.URL.Path == "/oauth2/access_token" {
		if r.Method != http.MethodPost {
			problem(w, http.StatusMethodNotAllowed, "Method Not Allowed", "Method not allowed")
			return
		}
		s.token(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v4/") {
		problem(w, http.StatusNotFound, "Not Found", "Not found")
		return
	}
	if isWrite(r.Method) && s.failedWrite(w) {
		return
	}
	if !s.authorized(r) {
		problem(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if s.serveWrites(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		problem(w, http.StatusMethodNotAllowed, "Method Not Allowed", "Method not allowed")
		return
	}
	switch r.URL.Path {
	case "/api/v4/contacts":
		s.list(w, r, domain.KindContact)
	case "/api/v4/leads":
		s.list(w, r, domain.KindLead)
	case "/api/v4/companies":
		s.list(w, r, domain.KindCompany)
	case "/api/v4/users":
		s.listUsers(w, r)
	case "/api/v4/events":
		s.listEvents(w, r)
	default:
		problem(w, http.StatusNotFound, "Not Found", "Not found")
	}
}

// authorized checks the bearer token and reports it to OnRequest.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	s.mu.Lock()
	expiry, isAccess := s.access[tok]
	valid := isAccess && s.now().Before(expiry) || s.longLived[tok]
	hook := s.onRequest
	s.mu.Unlock()
	if valid && hook != nil {
		hook(tok)
	}
	return valid
}

// token serves POST /oauth2/access_token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		GrantType    string `json:"grant_type"`
		RefreshToken string `json:"refresh_token"`
		RedirectURI  string `json:"redirect_uri"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		if mt == "application/x-www-form-urlencoded" {
			var v url.Values
			if v, err = url.ParseQuery(string(body)); err == nil {
				req.ClientID, req.ClientSecret = v.Get("client_id"), v.Get("client_secret")
				req.GrantType, req.RefreshToken, req.RedirectURI = v.Get("grant_type"), v.Get("refresh_token"), v.Get("redirect_uri")
			}
		} else {
			err = json.Unmarshal(body, &req)
		}
	}
	if err != nil || req.ClientID == "" || req.GrantType == "" {
		oauthProblem(w, "Check the request: the body is not an OAuth 2.0 token request")
		return
	}
	if req.GrantType != "refresh_token" {
		oauthProblem(w, "The authorization grant type is not supported by the authorization server.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case req.ClientID != s.clientID || req.ClientSecret != s.secret:
		oauthProblem(w, "Client authentication failed")
		return
	case req.RedirectURI != s.redirectURI:
		oauthProblem(w, "Redirect URI mismatch")
		return
	case !s.refresh[req.RefreshToken]:
		// Unknown, already used and revoked tokens all look alike.
		oauthProblem(w, "Token has been revoked")
		return
	}
	delete(s.refresh, req.RefreshToken)
	access, refresh, _ := s.issueLocked()
	s.refreshes++
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int(tokenLifetime / time.Second),
		"server_time":   s.now().Unix(),
		"access_token":  access,
		"refresh_token": refresh,
	})
}

// oauthProblem answers amoCRM's 400 OAuthProblemJson with hint.
func oauthProblem(w http.ResponseWriter, hint string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{
		"hint":   hint,
		"title":  "Некорректный запрос",
		"type":   "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
		"status": http.StatusBadRequest,
		"detail": "В запросе отсутствует ряд параметров или параметры невалидны",
	})
}

// problem answers amoCRM's application/problem+json error.
func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"title":  title,
		"type":   fmt.Sprintf("https://httpstatus.es/%d", status),
		"status": status,
		"detail": detail,
	})
}

// badRequest answers amoCRM's validation error for a query parameter.
func badRequest(w http.ResponseWriter, path, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{
		"validation-errors": []any{map[string]any{"request_id": "0", "errors": []any{
			map[string]any{"code": "InvalidValue", "path": path, "detail": detail}}}},
		"title":  "Bad Request",
		"type":   "https://httpstatus.es/400",
		"status": http.StatusBadRequest,
		"detail": "Request validation failed",
	})
}

// paging reads limit and page; ok is false after answering 400.
func paging(w http.ResponseWriter, q url.Values, maxN int) (limit, page int, ok bool) {
	limit, page = defaultLimit, 1
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxN {
			badRequest(w, "limit", fmt.Sprintf("limit must be 1 to %d", maxN))
			return 0, 0, false
		}
		limit = n
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			badRequest(w, "page", "page must be a positive integer")
			return 0, 0, false
		}
		page = n
	}
	return limit, page, true
}

// rangeFilter reads filter[<field>][from|to] (inclusive); ok is false after
// answering 400.
func rangeFilter(w http.ResponseWriter, q url.Values, field string) (from, to int64, ok bool) {
	from, to = 0, 1<<62
	for _, b := range []struct {
		key string
		dst *int64
	}{{"filter[" + field + "][from]", &from}, {"filter[" + field + "][to]", &to}} {
		if v := q.Get(b.key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				badRequest(w, b.key, "must be a unix timestamp")
				return 0, 0, false
			}
			*b.dst = n
		}
	}
	return from, to, true
}

// idFilter reads filter[id][] or filter[id]; nil when absent.
func idFilter(w http.ResponseWriter, q url.Values) (map[int64]bool, bool) {
	raw := append(q["filter[id][]"], q["filter[id]"]...)
	if len(raw) == 0 {
		return nil, true
	}
	ids := map[int64]bool{}
	for _, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			badRequest(w, "filter[id]", "ids must be integers")
			return nil, false
		}
		ids[n] = true
	}
	return ids, true
}

// list serves GET /api/v4/{contacts,leads,companies}.
func (s *Server) list(w http.ResponseWriter, r *http.Request, kind domain.EntityKind) {
	q := r.URL.Query()
	limit, page, ok := paging(w, q, maxLimit)
	if !ok {
		return
	}
	from, to, ok := rangeFilter(w, q, "updated_at")
	if !ok {
		return
	}
	ids, ok := idFilter(w, q)
	if !ok {
		return
	}
	with := map[string]bool{}
	for _, v := range strings.Split(q.Get("with"), ",") {
		with[strings.TrimSpace(v)] = true
	}
	query := strings.TrimSpace(q.Get("query"))

	s.mu.Lock()
	var recs []*record
	for _, rec := range s.records[kind] {
		if rec.updatedAt < from || rec.updatedAt > to || ids != nil && !ids[rec.id] || query != "" && !matches(rec, query) {
			continue
		}
		recs = append(recs, rec)
	}
	sortRecords(recs, q)
	items, next := pageOf(recs, limit, page)
	out := make([]any, len(items))
	for i, rec := range items {
		out[i] = s.recordJSON(rec, with)
	}
	s.mu.Unlock()
	writePage(w, r, plural(kind), out, page, next)
}

// plural is amoCRM's name for a kind in paths and _embedded.
func plural(kind domain.EntityKind) string {
	if kind == domain.KindCompany {
		return "companies"
	}
	return string(kind) + "s"
}

// matches is amoCRM's search as far as callrouter relies on it: the query's
// digits anywhere in a phone's digits, or the text in the name.
func matches(rec *record, query string) bool {
	if strings.Contains(query, "@") {
		return rec.email != "" && strings.EqualFold(rec.email, query)
	}
	if d := digits(query); len(d) >= 4 {
		for _, p := range rec.phones {
			if strings.Contains(digits(p), d) {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(rec.name), strings.ToLower(query))
}

func digits(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// sortRecords applies order[updated_at] or order[id]; the default is by id.
func sortRecords(recs []*record, q url.Values) {
	byUpdated, desc := false, false
	if v := q.Get("order[updated_at]"); v != "" {
		byUpdated, desc = true, v == "desc"
	} else if v := q.Get("order[id]"); v != "" {
		desc = v == "desc"
	}
	slices.SortFunc(recs, func(a, b *record) int {
		c := cmp.Compare(a.id, b.id)
		if byUpdated {
			c = cmp.Or(cmp.Compare(a.updatedAt, b.updatedAt), c)
		}
		if desc {
			return -c
		}
		return c
	})
}

// pageOf cuts one page; next reports whether a later page has records.
func pageOf[T any](all []T, limit, page int) (items []T, next bool) {
	start := (page - 1) * limit
	if start >= len(all) {
		return nil, false
	}
	end := min(start+limit, len(all))
	return all[start:end], end < len(all)
}

// writePage writes a HAL list page, or 204 when it is empty.
func writePage(w http.ResponseWriter, r *http.Request, embedded string, items []any, page int, next bool) {
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	self := pageURL(r, page)
	links := map[string]any{"self": link{self}}
	if next {
		links["next"] = link{pageURL(r, page+1)}
	}
	if page > 1 {
		links["prev"] = link{pageURL(r, page-1)}
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{
		"_page":     page,
		"_links":    links,
		"_embedded": map[string]any{embedded: items},
	})
}

// pageURL is the request's absolute URL with page set.
func pageURL(r *http.Request, page int) string {
	q := r.URL.Query()
	q.Set("page", strconv.Itoa(page))
	return "http://" + r.Host + r.URL.Path + "?" + q.Encode()
}

type link struct {
	Href string `json:"href"`
}

type links struct {
	Self link `json:"self"`
}

func selfLinks(host, path string, id int64) links {
	return links{Self: link{fmt.Sprintf("http://%s%s/%d", host, path, id)}}
}

// customField is one entry of custom_fields_values.
type customField struct {
	FieldID   int64          `json:"field_id"`
	FieldName string         `json:"field_name"`
	FieldCode *string        `json:"field_code"`
	FieldType string         `json:"field_type"`
	Values    []customValues `json:"values"`
}

type customValues struct {
	Value    any    `json:"value"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

type embeddedRef struct {
	ID     int64 `json:"id"`
	IsMain *bool `json:"is_main,omitempty"`
	Links  links `json:"_links"`
}

// contactJSON is a contact or company as amoCRM lists it (companies have
// no first and last name).
type contactJSON struct {
	ID                 int64         `json:"id"`
	Name               string        `json:"name"`
	FirstName          *string       `json:"first_name,omitempty"`
	LastName           *string       `json:"last_name,omitempty"`
	ResponsibleUserID  int64         `json:"responsible_user_id"`
	GroupID            int64         `json:"group_id"`
	CreatedBy          int64         `json:"created_by"`
	UpdatedBy          int64         `json:"updated_by"`
	CreatedAt          int64         `json:"created_at"`
	UpdatedAt          int64         `json:"updated_at"`
	ClosestTaskAt      *int64        `json:"closest_task_at"`
	IsDeleted          bool          `json:"is_deleted"`
	CustomFieldsValues []customField `json:"custom_fields_values"`
	AccountID          int64         `json:"account_id"`
	Links              links         `json:"_links"`
	Embedded           struct {
		Tags      []any          `json:"tags"`
		Leads     *[]embeddedRef `json:"leads,omitempty"`
		Companies []any          `json:"companies"`
	} `json:"_embedded"`
}

// leadJSON is a lead as amoCRM lists it.
type leadJSON struct {
	ID                 int64         `json:"id"`
	Name               string        `json:"name"`
	Price              int64         `json:"price"`
	ResponsibleUserID  int64         `json:"responsible_user_id"`
	GroupID            int64         `json:"group_id"`
	StatusID           int64         `json:"status_id"`
	PipelineID         int64         `json:"pipeline_id"`
	LossReasonID       *int64        `json:"loss_reason_id"`
	CreatedBy          int64         `json:"created_by"`
	UpdatedBy          int64         `json:"updated_by"`
	CreatedAt          int64         `json:"created_at"`
	UpdatedAt          int64         `json:"updated_at"`
	ClosedAt           *int64        `json:"closed_at"`
	ClosestTaskAt      *int64        `json:"closest_task_at"`
	IsDeleted          bool          `json:"is_deleted"`
	CustomFieldsValues []customField `json:"custom_fields_values"`
	Score              *int64        `json:"score"`
	AccountID          int64         `json:"account_id"`
	LaborCost          *int64        `json:"labor_cost"`
	Links              links         `json:"_links"`
	Embedded           struct {
		Tags      []any          `json:"tags"`
		Companies []any          `json:"companies"`
		Contacts  *[]embeddedRef `json:"contacts,omitempty"`
	} `json:"_embedded"`
}

// recordJSON renders rec; s.mu is held.
func (s *Server) recordJSON(rec *record, with map[string]bool) any {
	host := strings.TrimPrefix(s.srv.URL, "http://")
	if rec.kind == domain.KindLead {
		l := leadJSON{ID: rec.id, Name: rec.name, ResponsibleUserID: rec.responsible, StatusID: rec.status,
			PipelineID: cmp.Or(rec.pipeline, PipelineID), CustomFieldsValues: utmJSON(rec.utm), CreatedBy: rec.responsible, UpdatedBy: rec.responsible,
			CreatedAt: rec.createdAt, UpdatedAt: rec.updatedAt, AccountID: AccountID,
			Links: selfLinks(host, "/api/v4/leads", rec.id)}
		if rec.status == StatusWon || rec.status == StatusLost {
			closed := rec.updatedAt
			l.ClosedAt = &closed
		}
		l.Embedded.Tags, l.Embedded.Companies = []any{}, []any{}
		if with["contacts"] {
			refs := []embeddedRef{}
			for i, c := range rec.contacts {
				isMain := i == 0
				refs = append(refs, embeddedRef{ID: c, IsMain: &isMain, Links: selfLinks(host, "/api/v4/contacts", c)})
			}
			l.Embedded.Contacts = &refs
		}
		return l
	}
	c := contactJSON{ID: rec.id, Name: rec.name, ResponsibleUserID: rec.responsible,
		CreatedBy: rec.responsible, UpdatedBy: rec.responsible, CreatedAt: rec.createdAt, UpdatedAt: rec.updatedAt,
		AccountID: AccountID, Links: selfLinks(host, "/api/v4/"+plural(rec.kind), rec.id)}
	if rec.kind == domain.KindContact {
		first, last, _ := strings.Cut(rec.name, " ")
		c.FirstName, c.LastName = &first, &last
	}
	if len(rec.phones) > 0 {
		code := "PHONE"
		f := customField{FieldID: phoneFieldID, FieldName: "Телефон", FieldCode: &code, FieldType: "multitext"}
		for _, p := range rec.phones {
			f.Values = append(f.Values, customValues{Value: p, EnumID: phoneEnumWork, EnumCode: "WORK"})
		}
		c.CustomFieldsValues = append(c.CustomFieldsValues, f)
		if rec.id%3 == 0 {
			// A field without a code and with a non-string value, as
			// checkbox fields are, beside the phones.
			c.CustomFieldsValues = append(c.CustomFieldsValues, customField{FieldID: vipFieldID, FieldName: "VIP",
				FieldType: "checkbox", Values: []customValues{{Value: true}}})
		}
	}
	if rec.email != "" {
		code := "EMAIL"
		c.CustomFieldsValues = append(c.CustomFieldsValues, customField{FieldID: phoneFieldID + 1, FieldName: "Email",
			FieldCode: &code, FieldType: "multitext", Values: []customValues{{Value: rec.email, EnumCode: "WORK"}}})
	}
	c.Embedded.Tags, c.Embedded.Companies = []any{}, []any{}
	if with["leads"] && rec.kind == domain.KindContact {
		refs := []embeddedRef{}
		for _, l := range sortedIDs(s.records[domain.KindLead]) {
			if slices.Contains(s.records[domain.KindLead][l].contacts, rec.id) {
				refs = append(refs, embeddedRef{ID: l, Links: selfLinks(host, "/api/v4/leads", l)})
			}
		}
		c.Embedded.Leads = &refs
	}
	return c
}

func sortedIDs(m map[int64]*record) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// listUsers serves GET /api/v4/users.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	limit, page, ok := paging(w, r.URL.Query(), maxLimit)
	if !ok {
		return
	}
	host := r.Host
	s.mu.Lock()
	items, next := pageOf(s.users, limit, page)
	out := make([]any, len(items))
	for i, u := range items {
		id, _ := strconv.ParseInt(u.ID, 10, 64)
		out[i] = map[string]any{
			"id":    id,
			"name":  u.Name,
			"email": u.Email,
			"lang":  "ru",
			"rights": map[string]any{
				"leads":       map[string]string{"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
				"contacts":    map[string]string{"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
				"companies":   map[string]string{"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
				"mail_access": false, "catalog_access": false,
				"is_admin": false, "is_free": false, "is_active": u.Active,
				"group_id": nil, "role_id": nil,
			},
			"_links": selfLinks(host, "/api/v4/users", id),
		}
	}
	s.mu.Unlock()
	writePage(w, r, "users", out, page, next)
}

// listEvents serves GET /api/v4/events, newest first.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, ok := paging(w, q, maxEventPage)
	if !ok {
		return
	}
	from, to, ok := rangeFilter(w, q, "created_at")
	if !ok {
		return
	}
	types := map[string]bool{}
	for _, v := range q["filter[type][]"] {
		types[v] = true
	}
	for _, v := range strings.Split(q.Get("filter[type]"), ",") {
		if v != "" {
			types[v] = true
		}
	}
	host := r.Host
	s.mu.Lock()
	var evs []event
	for _, e := range s.events {
		if e.createdAt >= from && e.createdAt <= to && (len(types) == 0 || types[e.typ]) {
			evs = append(evs, e)
		}
	}
	s.mu.Unlock()
	slices.Reverse(evs)
	items, next := pageOf(evs, limit, page)
	out := make([]any, len(items))
	for i, e := range items {
		entityPath := "/api/v4/" + plural(domain.EntityKind(e.entityType))
		out[i] = map[string]any{
			"id":           e.id,
			"type":         e.typ,
			"entity_id":    e.entityID,
			"entity_type":  e.entityType,
			"created_by":   0,
			"created_at":   e.createdAt,
			"value_after":  []any{},
			"value_before": []any{},
			"account_id":   AccountID,
			"_links":       links{Self: link{"http://" + host + "/api/v4/events/" + e.id}},
			"_embedded": map[string]any{"entity": map[string]any{
				"id": e.entityID, "_links": selfLinks(host, entityPath, e.entityID)}},
		}
	}
	writePage(w, r, "events", out, page, next)
}
