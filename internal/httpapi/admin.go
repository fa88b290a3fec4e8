package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
)

// adminTimeout bounds one admin request's store work; imports are the
// longest.
const adminTimeout = 2 * time.Minute

// adminCall is one admin request as its route's handler sees it: the path's
// parameters, the small JSON body (nil for a streamed route), who asks, and
// a context bounded by adminTimeout.
type adminCall struct {
	c      context.Context
	ctx    *fasthttp.RequestCtx
	actor  string
	tenant string // {t}
	id     string // {id}
	body   []byte
}

// query returns a query parameter of the request.
func (r *adminCall) query(name string) string { return string(r.ctx.QueryArgs().Peek(name)) }

// adminRoute is one admin endpoint: a method and a path pattern under
// /admin/v1 whose segments are literals, {t} (the tenant id) or {id}.
type adminRoute struct {
	method  string
	pattern string
	// streamed routes read their own body (contacts import); the others
	// get it read whole, up to maxAdminBodyBytes.
	streamed bool
	serve    func(s *Server, r *adminCall)
}

// jsonOf answers the service's value as JSON with status, or its error.
func jsonOf(status int, f func(s *Server, r *adminCall) (any, error)) func(*Server, *adminCall) {
	return func(s *Server, r *adminCall) { s.reply(r.ctx, status)(f(s, r)) }
}

// noContentOf answers 204, or the service's error.
func noContentOf(f func(s *Server, r *adminCall) error) func(*Server, *adminCall) {
	return func(s *Server, r *adminCall) { s.noContent(r.ctx, f(s, r)) }
}

// bodyRule says whether a route's JSON body may be empty.
type bodyRule bool

const (
	bodyRequired bodyRule = false
	bodyOptional bodyRule = true // empty leaves the input as its start made it
)

// withBody decodes the request's body strictly into the route's typed
// input, made by start (its zero value when start is nil) so defaults
// apply to what the body leaves out, and answers f's value as JSON with
// status. A body that does not decode is a 400 naming the field, and f,
// which calls the service, is never reached.
func withBody[In any](status int, rule bodyRule, start func() In, f func(s *Server, r *adminCall, in In) (any, error)) func(*Server, *adminCall) {
	return jsonOf(status, func(s *Server, r *adminCall) (any, error) {
		var in In
		if start != nil {
			in = start()
		}
		if rule == bodyOptional && len(bytes.TrimSpace(r.body)) == 0 {
			return f(s, r, in)
		}
		if err := decodeStrict(r.body, &in); err != nil {
			return nil, err
		}
		return f(s, r, in)
	})
}

// decodeStrict decodes one JSON value, an object for every admin input,
// refusing what the input does not have, and names the offending field in
// its EINVALID errors: an empty body, NUL characters, an unknown field, a
// value of the wrong type, bad JSON, or more than one value.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return domain.Errorf(domain.EINVALID, "body: a JSON object is required")
	}
	// PostgreSQL text cannot hold NUL; refuse it here, naming it, rather
	// than fail in the store.
	if bytes.Contains(body, []byte(`\u0000`)) {
		return domain.Errorf(domain.EINVALID, `body: NUL characters (\u0000) are not accepted`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return domain.Errorf(domain.EINVALID, "%s: must be a %s, got %s", te.Field, te.Type, te.Value)
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return domain.Errorf(domain.EINVALID, "%s: unknown field", strings.Trim(f, `"`))
		}
		return domain.Errorf(domain.EINVALID, "body: invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
	}
	if dec.More() {
		return domain.Errorf(domain.EINVALID, "body: more than one JSON value")
	}
	return nil
}

// queryInt is a query parameter as a number, 0 when absent or not one (the
// service applies its default).
func queryInt(r *adminCall, name string) int {
	n, _ := strconv.Atoi(r.query(name))
	return n
}

// adminRoutes is the admin API. Handlers only parse what the path, the
// query and the body carry (bodies decoded by withBody into the service's
// typed inputs), call the admin service, and render.
var adminRoutes = []adminRoute{
	{method: "GET", pattern: "/tenants", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Tenants(r.c) })},
	{method: "POST", pattern: "/tenants", serve: withBody(201, bodyRequired, admin.NewTenantDefaults, func(s *Server, r *adminCall, in admin.NewTenant) (any, error) {
		return s.admin.CreateTenant(r.c, r.actor, in)
	})},
	{method: "GET", pattern: "/tenants/{t}", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Tenant(r.c, r.tenant) })},
	{method: "PATCH", pattern: "/tenants/{t}", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.TenantPatch) (any, error) {
		return s.admin.PatchTenant(r.c, r.actor, r.tenant, in)
	})},
	{method: "DELETE", pattern: "/tenants/{t}", serve: (*Server).deleteTenant},
	{method: "GET", pattern: "/tenants/{t}/default-owner", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.DefaultOwner(r.c, r.tenant) })},
	{method: "PUT", pattern: "/tenants/{t}/default-owner", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.DefaultOwnerInput) (any, error) {
		return s.admin.SetDefaultOwner(r.c, r.actor, r.tenant, in)
	})},
	{method: "GET", pattern: "/tenants/{t}/employees", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Employees(r.c, r.tenant) })},
	{method: "GET", pattern: "/tenants/{t}/employees/{id}", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Employee(r.c, r.tenant, r.id) })},
	{method: "PUT", pattern: "/tenants/{t}/employees/{id}", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.EmployeeInput) (any, error) {
		return s.admin.PutEmployee(r.c, r.actor, r.tenant, r.id, in)
	})},
	{method: "DELETE", pattern: "/tenants/{t}/employees/{id}", serve: noContentOf(func(s *Server, r *adminCall) error { return s.admin.DeleteEmployee(r.c, r.actor, r.tenant, r.id) })},
	{method: "GET", pattern: "/tenants/{t}/stop-list", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Stops(r.c, r.tenant) })},
	{method: "GET", pattern: "/tenants/{t}/stop-list/{id}", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Stop(r.c, r.tenant, r.id) })},
	{method: "PUT", pattern: "/tenants/{t}/stop-list/{id}", serve: withBody(200, bodyOptional, nil, func(s *Server, r *adminCall, in admin.StopInput) (any, error) {
		return s.admin.PutStop(r.c, r.actor, r.tenant, r.id, in)
	})},
	{method: "DELETE", pattern: "/tenants/{t}/stop-list/{id}", serve: noContentOf(func(s *Server, r *adminCall) error { return s.admin.DeleteStop(r.c, r.actor, r.tenant, r.id) })},
	{method: "POST", pattern: "/tenants/{t}/contacts/import", streamed: true, serve: (*Server).importContacts},
	{method: "GET", pattern: "/tenants/{t}/integration", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Integration(r.c, r.tenant) })},
	{method: "PUT", pattern: "/tenants/{t}/integration", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.IntegrationInput) (any, error) {
		return s.admin.PutIntegration(r.c, r.actor, r.tenant, in)
	})},
	{method: "POST", pattern: "/tenants/{t}/integration/activate", serve: withBody(200, bodyOptional, nil, func(s *Server, r *adminCall, in admin.ActivateInput) (any, error) {
		return s.admin.SetActive(r.c, r.actor, r.tenant, true, in)
	})},
	{method: "POST", pattern: "/tenants/{t}/integration/deactivate", serve: withBody(200, bodyOptional, nil, func(s *Server, r *adminCall, in admin.ActivateInput) (any, error) {
		return s.admin.SetActive(r.c, r.actor, r.tenant, false, in)
	})},
	{method: "GET", pattern: "/tenants/{t}/ringostat", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Ringostat(r.c, r.tenant) })},
	{method: "PUT", pattern: "/tenants/{t}/ringostat", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.RingostatInput) (any, error) {
		return s.admin.PutRingostat(r.c, r.actor, r.tenant, in)
	})},
	{method: "DELETE", pattern: "/tenants/{t}/ringostat", serve: noContentOf(func(s *Server, r *adminCall) error { return s.admin.DeleteRingostat(r.c, r.actor, r.tenant) })},
	{method: "GET", pattern: "/tenants/{t}/salesmanago", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.SALESmanago(r.c, r.tenant) })},
	{method: "PUT", pattern: "/tenants/{t}/salesmanago", serve: withBody(200, bodyRequired, nil, func(s *Server, r *adminCall, in admin.SALESmanagoInput) (any, error) {
		return s.admin.PutSALESmanago(r.c, r.actor, r.tenant, in)
	})},
	{method: "DELETE", pattern: "/tenants/{t}/salesmanago", serve: noContentOf(func(s *Server, r *adminCall) error { return s.admin.DeleteSALESmanago(r.c, r.actor, r.tenant) })},
	{method: "POST", pattern: "/tenants/{t}/salesmanago/activate", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) {
		return s.admin.SetSALESmanagoActive(r.c, r.actor, r.tenant, true)
	})},
	{method: "POST", pattern: "/tenants/{t}/salesmanago/deactivate", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) {
		return s.admin.SetSALESmanagoActive(r.c, r.actor, r.tenant, false)
	})},
	{method: "POST", pattern: "/tenants/{t}/salesmanago/sync", serve: jsonOf(202, func(s *Server, r *adminCall) (any, error) { return s.admin.SyncSALESmanago(r.c, r.actor, r.tenant) })},
	{method: "POST", pattern: "/tenants/{t}/secret/rotate", serve: withBody(200, bodyOptional, nil, func(s *Server, r *adminCall, in admin.RotateInput) (any, error) {
		return s.admin.RotateSecret(r.c, r.actor, r.tenant, in)
	})},
	{method: "GET", pattern: "/tenants/{t}/crm-users", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.CRMUsers(r.c, r.tenant) })},
	{method: "GET", pattern: "/tenants/{t}/status", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Status(r.c, r.tenant) })},
	{method: "GET", pattern: "/tenants/{t}/audit", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Audit(r.c, r.tenant, queryInt(r, "limit")) })},
	{method: "GET", pattern: "/tenants/{t}/events/rejected", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) {
		return s.admin.RejectedEvents(r.c, r.tenant, queryInt(r, "limit"))
	})},
	{method: "GET", pattern: "/tenants/{t}/report", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Report(r.c, r.tenant, r.query("days")) })},
	{method: "GET", pattern: "/tenants/{t}/explain", serve: func(s *Server, r *adminCall) { s.serveExplain(r.c, r.ctx, r.tenant) }},
	{method: "GET", pattern: "/tenants/{t}/events", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) {
		return s.admin.Events(r.c, r.tenant, admin.EventQuery{State: r.query("state"), Caller: r.query("caller"), Before: r.query("before"), Limit: r.query("limit")})
	})},
	{method: "GET", pattern: "/tenants/{t}/events/{id}", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Event(r.c, r.tenant, r.id) })},
	{method: "GET", pattern: "/audit", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.AuditAll(r.c, queryInt(r, "limit")) })},
	{method: "GET", pattern: "/tokens", serve: jsonOf(200, func(s *Server, r *adminCall) (any, error) { return s.admin.Tokens(r.c) })},
	{method: "POST", pattern: "/tokens", serve: withBody(201, bodyRequired, nil, func(s *Server, r *adminCall, in admin.TokenInput) (any, error) {
		return s.admin.CreateToken(r.c, r.actor, in)
	})},
	{method: "DELETE", pattern: "/tokens/{id}", serve: noContentOf(func(s *Server, r *adminCall) error { return s.admin.RevokeToken(r.c, r.actor, r.id) })},
}

// adminTable is adminRoutes split into segments once, for matching.
type adminTable struct {
	routes []adminRoute
	segs   [][]string
}

func newAdminTable(routes []adminRoute) *adminTable {
	t := &adminTable{routes: routes}
	for _, r := range routes {
		t.segs = append(t.segs, strings.Split(strings.Trim(r.pattern, "/"), "/"))
	}
	return t
}

// match finds the route of method and path's segments and fills call's
// parameters. With no route for the method, allow lists the methods the
// path has (empty: no such path).
func (t *adminTable) match(method string, seg []string, call *adminCall) (route *adminRoute, allow []string) {
	for i, ps := range t.segs {
		tenant, id, ok := bind(ps, seg)
		switch {
		case !ok:
		case t.routes[i].method == method:
			call.tenant, call.id = tenant, id
			return &t.routes[i], nil
		case !slices.Contains(allow, t.routes[i].method):
			allow = append(allow, t.routes[i].method)
		}
	}
	return nil, allow
}

// bind matches a path's segments against a pattern's and returns what
// {t} and {id} stand for.
func bind(pattern, seg []string) (tenant, id string, ok bool) {
	if len(pattern) != len(seg) {
		return "", "", false
	}
	for j, p := range pattern {
		switch p {
		case "{t}":
			tenant = seg[j]
		case "{id}":
			id = seg[j]
		default:
			if p != seg[j] {
				return "", "", false
			}
		}
	}
	return tenant, id, true
}

// serveAdmin serves /admin/v1/...: authenticate, find the route in
// adminRoutes, read a small body, and hand over.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	who, ok := s.authenticate(ctx)
	if !ok {
		return
	}
	method := string(ctx.Method())
	if !permitted(ctx, who, method) {
		return
	}
	if method == fasthttp.MethodHead {
		method = fasthttp.MethodGet // fasthttp leaves the body out of the answer
	}
	path := ctx.Path()[len(pathAdmin):]
	if !utf8.Valid(path) || bytes.IndexByte(path, 0) >= 0 {
		writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "path: must be UTF-8 without NUL characters")
		return
	}
	call := &adminCall{ctx: ctx, actor: who.Actor}
	route, allow := s.adminTable.match(method, strings.Split(strings.Trim(string(path), "/"), "/"), call)
	switch {
	case route == nil && len(allow) == 0:
		discardBody(ctx)
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such admin endpoint")
		return
	case route == nil:
		discardBody(ctx)
		notAllowed(ctx, strings.Join(allow, ", "))
		return
	}
	if method != fasthttp.MethodGet {
		defer s.logAdminChange(ctx, call.actor, method)
	}
	if !route.streamed {
		if call.body, ok = readBody(ctx, maxAdminBodyBytes); !ok {
			return
		}
	}
	// fasthttp's RequestCtx is a context.Context, but its Done races with
	// server shutdown when database drivers watch it: use a context of our own.
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	call.c = c
	route.serve(s, call)
}

// deleteTenant deletes a tenant; ?confirm=<tenant id> makes sure a stray
// DELETE cannot wipe one.
func (s *Server) deleteTenant(r *adminCall) {
	err := s.admin.DeleteTenant(r.c, r.actor, r.tenant, r.query("confirm"))
	if s.board != nil && domain.ErrorCode(err) != domain.ENOTFOUND && domain.ErrorCode(err) != domain.EINVALID {
		s.board.Forget(r.tenant) // its calls of the last minutes, with the clients' numbers
	}
	s.noContent(r.ctx, err)
}

// importContacts streams a contacts import, row by row, up to MaxBodyBytes.
func (s *Server) importContacts(r *adminCall) {
	body, ok := bodyReader(r.ctx, MaxBodyBytes)
	if !ok {
		return
	}
	rep, err := s.admin.Import(r.c, r.actor, r.tenant, r.query("format"), string(r.ctx.Request.Header.ContentType()), body)
	if errors.Is(err, errTooLarge) {
		refuseTooLarge(r.ctx, MaxBodyBytes)
		return
	}
	s.reply(r.ctx, 200)(rep, err)
}

// logAdminChange logs a change made through the admin API at info once it
// succeeded: who, the method and the path. Bodies are never logged: they
// carry credentials.
func (s *Server) logAdminChange(ctx *fasthttp.RequestCtx, actor, method string) {
	if st := ctx.Response.StatusCode(); st < 400 {
		s.log.Info("admin change", zap.String("actor", actor), zap.String("method", method),
			zap.String("path", storableText(string(ctx.Path()))), zap.Int("status", st))
	}
}

// reply returns a function that renders a service result: the value as JSON
// with status on success, the error otherwise. It reads as
// s.reply(ctx, 200)(service.Call(...)).
func (s *Server) reply(ctx *fasthttp.RequestCtx, status int) func(v any, err error) {
	return func(v any, err error) {
		if err != nil {
			writeError(ctx, s.log, err)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			writeError(ctx, s.log, err)
			return
		}
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n'))
	}
}

func (s *Server) noContent(ctx *fasthttp.RequestCtx, err error) {
	if err != nil {
		writeError(ctx, s.log, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeErrorCode(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method: "+string(ctx.Method())+" not allowed; use "+allow)
}
