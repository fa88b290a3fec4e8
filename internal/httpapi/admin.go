package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// serveAdmin dispatches /admin/v1/... . Each case parses the path and body,
// calls the admin service and renders its answer.
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
	actor := who.Actor
	if method != fasthttp.MethodGet {
		defer s.logAdminChange(ctx, actor, method)
	}
	path := ctx.Path()[len(pathAdmin):]
	if !utf8.Valid(path) || bytes.IndexByte(path, 0) >= 0 {
		writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "path: must be UTF-8 without NUL characters")
		return
	}
	seg := strings.Split(strings.Trim(string(path), "/"), "/")
	switch seg[0] {
	case "tenants":
	case "tokens", "audit":
		body, ok := readBody(ctx, maxAdminBodyBytes)
		if !ok {
			return
		}
		s.serveInstanceAdmin(ctx, actor, method, seg, body)
		return
	default:
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such admin endpoint")
		return
	}
	// A contacts import reads its body row by row (below); every other
	// call's JSON is small and read whole.
	var body []byte
	if method != fasthttp.MethodPost || len(seg) != 4 || seg[2] != "contacts" || seg[3] != "import" {
		var ok bool
		if body, ok = readBody(ctx, maxAdminBodyBytes); !ok {
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
			s.reply(ctx, 201)(a.CreateTenant(c, actor, body))
		default:
			notAllowed(ctx, "GET, POST")
		}
	case len(seg) == 2:
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Tenant(c, seg[1]))
		case fasthttp.MethodPatch:
			s.reply(ctx, 200)(a.PatchTenant(c, actor, seg[1], body))
		case fasthttp.MethodDelete:
			// ?confirm=<tenant id>: a stray DELETE cannot wipe a tenant.
			err := a.DeleteTenant(c, actor, seg[1], string(ctx.QueryArgs().Peek("confirm")))
			if s.board != nil && domain.ErrorCode(err) != domain.ENOTFOUND && domain.ErrorCode(err) != domain.EINVALID {
				s.board.Forget(seg[1]) // its calls of the last minutes, with the clients' numbers
			}
			s.noContent(ctx, err)
		default:
			notAllowed(ctx, "GET, PATCH, DELETE")
		}
	case len(seg) == 3 && seg[2] == "default-owner":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.DefaultOwner(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.SetDefaultOwner(c, actor, seg[1], body))
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
			s.reply(ctx, 200)(a.PutEmployee(c, actor, seg[1], seg[3], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteEmployee(c, actor, seg[1], seg[3]))
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
			s.reply(ctx, 200)(a.PutStop(c, actor, seg[1], seg[3], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteStop(c, actor, seg[1], seg[3]))
		default:
			notAllowed(ctx, "GET, PUT, DELETE")
		}
	case len(seg) == 4 && seg[2] == "contacts" && seg[3] == "import":
		s.only(ctx, fasthttp.MethodPost, func() {
			r, ok := bodyReader(ctx, MaxBodyBytes)
			if !ok {
				return
			}
			rep, err := a.Import(c, actor, seg[1], string(ctx.QueryArgs().Peek("format")),
				string(ctx.Request.Header.ContentType()), r)
			if errors.Is(err, errTooLarge) {
				refuseTooLarge(ctx, MaxBodyBytes)
				return
			}
			s.reply(ctx, 200)(rep, err)
		})
	case len(seg) == 3 && seg[2] == "integration":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Integration(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutIntegration(c, actor, seg[1], body))
		default:
			notAllowed(ctx, "GET, PUT")
		}
	case len(seg) == 4 && seg[2] == "integration" && (seg[3] == "activate" || seg[3] == "deactivate"):
		s.only(ctx, fasthttp.MethodPost, func() {
			s.reply(ctx, 200)(a.SetActive(c, actor, seg[1], seg[3] == "activate", body))
		})
	case len(seg) == 3 && seg[2] == "ringostat":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Ringostat(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutRingostat(c, actor, seg[1], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteRingostat(c, actor, seg[1]))
		default:
			notAllowed(ctx, "GET, PUT, DELETE")
		}
	case len(seg) == 3 && seg[2] == "salesmanago":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.SALESmanago(c, seg[1]))
		case fasthttp.MethodPut:
			s.reply(ctx, 200)(a.PutSALESmanago(c, actor, seg[1], body))
		case fasthttp.MethodDelete:
			s.noContent(ctx, a.DeleteSALESmanago(c, actor, seg[1]))
		default:
			notAllowed(ctx, "GET, PUT, DELETE")
		}
	case len(seg) == 4 && seg[2] == "salesmanago" && (seg[3] == "activate" || seg[3] == "deactivate"):
		s.only(ctx, fasthttp.MethodPost, func() {
			s.reply(ctx, 200)(a.SetSALESmanagoActive(c, actor, seg[1], seg[3] == "activate"))
		})
	case len(seg) == 4 && seg[2] == "salesmanago" && seg[3] == "sync":
		// The pass runs in the background: 202, with the view saying so.
		s.only(ctx, fasthttp.MethodPost, func() { s.reply(ctx, 202)(a.SyncSALESmanago(c, actor, seg[1])) })
	case len(seg) == 4 && seg[2] == "secret" && seg[3] == "rotate":
		s.only(ctx, fasthttp.MethodPost, func() { s.reply(ctx, 200)(a.RotateSecret(c, actor, seg[1], body)) })
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
	case len(seg) == 3 && seg[2] == "report":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Report(c, seg[1], string(ctx.QueryArgs().Peek("days")))) })
	case len(seg) == 3 && seg[2] == "explain":
		s.only(ctx, fasthttp.MethodGet, func() { s.serveExplain(c, ctx, seg[1]) })
	case len(seg) == 3 && seg[2] == "events":
		s.only(ctx, fasthttp.MethodGet, func() {
			q := ctx.QueryArgs()
			s.reply(ctx, 200)(a.Events(c, seg[1], admin.EventQuery{State: string(q.Peek("state")), Caller: string(q.Peek("caller")),
				Before: string(q.Peek("before")), Limit: string(q.Peek("limit"))}))
		})
	case len(seg) == 4 && seg[2] == "events":
		s.only(ctx, fasthttp.MethodGet, func() { s.reply(ctx, 200)(a.Event(c, seg[1], seg[3])) })
	default:
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such admin endpoint")
	}
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

// serveInstanceAdmin serves the admin calls that belong to no tenant:
// admin tokens and the whole audit log.
func (s *Server) serveInstanceAdmin(ctx *fasthttp.RequestCtx, actor, method string, seg []string, body []byte) {
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	a := s.admin
	switch {
	case len(seg) == 1 && seg[0] == "audit":
		s.only(ctx, fasthttp.MethodGet, func() {
			limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
			s.reply(ctx, 200)(a.AuditAll(c, limit))
		})
	case len(seg) == 1 && seg[0] == "tokens":
		switch method {
		case fasthttp.MethodGet:
			s.reply(ctx, 200)(a.Tokens(c))
		case fasthttp.MethodPost:
			s.reply(ctx, 201)(a.CreateToken(c, actor, body))
		default:
			notAllowed(ctx, "GET, POST")
		}
	case len(seg) == 2 && seg[0] == "tokens":
		s.only(ctx, fasthttp.MethodDelete, func() { s.noContent(ctx, a.RevokeToken(c, actor, seg[1])) })
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
	m := string(ctx.Method())
	if m == fasthttp.MethodHead {
		m = fasthttp.MethodGet
	}
	if m != method {
		notAllowed(ctx, method)
		return
	}
	f()
}

func notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeErrorCode(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method: "+string(ctx.Method())+" not allowed; use "+allow)
}
