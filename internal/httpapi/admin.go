package httpapi

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
)

// adminActor is recorded in the audit log for changes made with the admin
// token.
const adminActor = "admin-token"

// adminTimeout bounds one admin request's store work; imports are the
// longest.
const adminTimeout = 2 * time.Minute

// serveAdmin dispatches /admin/v1/... . Each case parses the path and body,
// calls the admin service and renders its answer.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	if !s.checkAdmin(ctx) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="callrouter admin"`)
		writeErrorCode(ctx, fasthttp.StatusUnauthorized, domain.EUNAUTHORIZED, "authorization: missing or wrong admin bearer token")
		return
	}
	method := string(ctx.Method())
	body := ctx.PostBody()
	seg := strings.Split(strings.Trim(string(ctx.Path()[len(pathAdmin):]), "/"), "/")
	if seg[0] != "tenants" {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such admin endpoint")
		return
	}
	if method != fasthttp.MethodPost || len(seg) < 4 || seg[2] != "contacts" {
		if len(body) > maxAdminBodyBytes {
			writeErrorCode(ctx, fasthttp.StatusRequestEntityTooLarge, domain.ETOOLARGE, "body: larger than 1 MiB")
			return
		}
	}
	// fasthttp's RequestCtx is a context.Context, but its Done races with
	// server shutdown when database drivers watch it: use a context of our own.
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	a := s.admin
	switch {
	case len(seg) == 1:
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Tenants(c))
		case fasthttp.MethodPost:
			s.reply(ctx, 201)(a.CreateTenant(c, adminActor, body))
		default:
			notAllowed(ctx, "GET, POST")
		}
	case len(seg) == 2:
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Tenant(c, seg[1]))
		case fasthttp.MethodPatch:
			s.reply(ctx, 200)(a.PatchTenant(c, adminActor, seg[1], body))
		default:
			notAllowed(ctx, "GET, PATCH")
		}
	case len(seg) == 3 && seg[2] == "default-owner":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.DefaultOwner(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.SetDefaultOwner(c, adminActor, seg[1], body))
		default:
			notAllowed(ctx, "GET, PUT")
		}
	case len(seg) == 3 && seg[2] == "employees":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Employees(c, seg[1])) })
	case len(seg) == 4 && seg[2] == "employees":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Employee(c, seg[1], seg[3]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutEmployee(c, adminActor, seg[1], seg[3], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteEmployee(c, adminActor, seg[1], seg[3]))
		default:
			notAllowed(ctx, "GET, PUT, DELETE")
		}
	case len(seg) == 3 && seg[2] == "stop-list":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Stops(c, seg[1])) })
	case len(seg) == 4 && seg[2] == "stop-list":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Stop(c, seg[1], seg[3]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutStop(c, adminActor, seg[1], seg[3], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteStop(c, adminActor, seg[1], seg[3]))
		default:
			notAllowed(ctx, "GET, PUT, DELETE")
		}
	case len(seg) == 4 && seg[2] == "contacts" && seg[3] == "import":
		s.only(ctx, fasthttp.MethodPost, func() {
			format, err := admin.DetectFormat(string(ctx.QueryArgs().Peek("format")),
				string(ctx.Request.Header.ContentType()), body)
			if err != nil {
				writeError(ctx, s.log, err)
				return
			}
			s.reply(ctx, 200)(a.Import(c, adminActor, seg[1], format, body))
		})
	case len(seg) == 3 && seg[2] == "integration":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Integration(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutIntegration(c, adminActor, seg[1], body))
		default:
			notAllowed(ctx, "GET, PUT")
		}
	case len(seg) == 4 && seg[2] == "integration" && (seg[3] == "activate" || seg[3] == "deactivate"):
		s.only(ctx, fasthttp.MethodPost, func() {
			s.reply(ctx, 200)(a.SetActive(c, adminActor, seg[1], seg[3] == "activate", body))
		})
	case len(seg) == 3 && seg[2] == "crm-users":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.CRMUsers(c, seg[1])) })
	case len(seg) == 3 && seg[2] == "status":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Status(c, seg[1])) })
	case len(seg) == 3 && seg[2] == "audit":
		s.only(ctx, fasthttp.MethodGet, func() {
			limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
			s.reply(ctx, 200)(a.Audit(c, seg[1], limit))
		})
	case len(seg) == 4 && seg[2] == "events" && seg[3] == "rejected":
		s.only(ctx, fasthttp.MethodGet, func() {
			limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
			s.reply(ctx, 200)(a.RejectedEvents(c, seg[1], limit))
		})
	case len(seg) == 4 && seg[2] == "events":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Event(c, seg[1], seg[3])) })
	default:
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such admin endpoint")
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

func (s *Server) only(ctx *fasthttp.RequestCtx, method string, f func()) {
	if string(ctx.Method()) != method {
		notAllowed(ctx, method)
		return
	}
	f()
}

func notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeErrorCode(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method: "+string(ctx.Method())+" not allowed; use "+allow)
}
