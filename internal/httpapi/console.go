package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/console"
	"github.com/callrouter/callrouter/internal/domain"
)

// Console paths under /console.
var (
	pathConsoleRoot    = []byte("/console")
	pathConsoleSession = []byte("/console/api/session")
	prefixConsoleLive  = []byte("/console/api/live/")
)

// consoleCSP keeps the console's page to its own scripts and styles: no
// inline script runs, so text shown from the CRM or a call cannot either.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// serveConsole serves the console: its embedded files, sign-in and
// sign-out, and the live board's stream. Everything else the console does
// goes to the admin API with the session cookie.
func (s *Server) serveConsole(ctx *fasthttp.RequestCtx) {
	if s.sessions == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: the console is not enabled on this server")
		return
	}
	h := &ctx.Response.Header
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", consoleCSP)
	path := ctx.Path()
	switch {
	case bytes.Equal(path, pathConsoleRoot):
		ctx.Redirect("/console/", fasthttp.StatusFound)
	case bytes.Equal(path, pathConsoleSession):
		h.Set("Cache-Control", "no-store")
		s.serveSession(ctx)
	case bytes.HasPrefix(path, prefixConsoleLive):
		h.Set("Cache-Control", "no-store")
		s.serveLive(ctx, string(path[len(prefixConsoleLive):]))
	default:
		m := string(ctx.Method())
		if m != fasthttp.MethodGet && m != fasthttp.MethodHead {
			notAllowed(ctx, "GET, HEAD")
			return
		}
		name := string(path[len(pathConsoleRoot):])
		if len(name) > 0 && name[0] == '/' {
			name = name[1:]
		}
		a, ok := console.Lookup(name)
		if !ok {
			writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such console file")
			return
		}
		// The page and its files change with the binary; revalidating is
		// cheap next to serving a stale script against a newer API.
		h.Set("Cache-Control", "no-cache")
		ctx.SetContentType(a.ContentType)
		ctx.SetBody(a.Body)
	}
}

// maxSessionBody bounds a sign-in body: a token and little else.
const maxSessionBody = 4 << 10

// sessionView is what the console learns of its session.
type sessionView struct {
	Actor   string    `json:"actor"`
	Scope   string    `json:"scope"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// serveSession signs in (POST {"token"}), tells who is signed in (GET)
// and signs out (DELETE, with the CSRF token).
func (s *Server) serveSession(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	switch string(ctx.Method()) {
	case fasthttp.MethodPost:
		body, ok := readBody(ctx, maxSessionBody)
		if !ok {
			return
		}
		var in struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "body: must be a JSON object {\"token\":\"...\"}")
			return
		}
		tok := bytes.TrimSpace([]byte(in.Token))
		if len(tok) == 0 {
			writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "token: required")
			return
		}
		sum := sha256.Sum256(tok)
		who, ok := s.principal(ctx, sum[:])
		if !ok {
			return
		}
		cookie, sess := s.sessions.Issue(sum[:])
		if err := s.admin.RecordSession(c, who.Actor, admin.ActionConsoleSignIn); err != nil {
			writeError(ctx, s.log, err)
			return
		}
		consoleSignIns.Inc()
		s.setSessionCookie(ctx, cookie, sess.Expires)
		s.reply(ctx, 200)(sessionView{Actor: who.Actor, Scope: who.Scope, CSRF: sess.CSRF, Expires: sess.Expires}, nil)
	case fasthttp.MethodGet, fasthttp.MethodHead:
		sess, who, ok := s.consoleSession(ctx)
		if !ok {
			return
		}
		s.reply(ctx, 200)(sessionView{Actor: who.Actor, Scope: who.Scope, CSRF: sess.CSRF, Expires: sess.Expires}, nil)
	case fasthttp.MethodDelete:
		sess, who, ok := s.consoleSession(ctx)
		if !ok {
			return
		}
		if !s.sessions.CheckCSRF(sess, ctx.Request.Header.Peek(headerCSRF)) {
			csrfRefused.Inc()
			writeErrorCode(ctx, fasthttp.StatusForbidden, codeCSRF, "x-csrf-token: missing or wrong")
			return
		}
		if err := s.sessions.End(c, sess); err != nil {
			writeError(ctx, s.log, err)
			return
		}
		if err := s.admin.RecordSession(c, who.Actor, admin.ActionConsoleSignOut); err != nil {
			writeError(ctx, s.log, err)
			return
		}
		s.setSessionCookie(ctx, "", time.Unix(1, 0))
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		notAllowed(ctx, "GET, POST, DELETE")
	}
}

// consoleSession authenticates a console request by its cookie alone,
// answering 401 itself when there is no valid session.
func (s *Server) consoleSession(ctx *fasthttp.RequestCtx) (console.Session, admin.Principal, bool) {
	cookie := ctx.Request.Header.Cookie(console.CookieName)
	if len(cookie) == 0 {
		writeErrorCode(ctx, fasthttp.StatusUnauthorized, domain.EUNAUTHORIZED, "session: not signed in")
		return console.Session{}, admin.Principal{}, false
	}
	sess, ok := s.session(ctx, cookie)
	if !ok {
		return console.Session{}, admin.Principal{}, false
	}
	who, ok := s.principal(ctx, sess.TokenHash)
	return sess, who, ok
}

// setSessionCookie sets (or, with an expiry in the past, clears) the
// session cookie: HttpOnly so page scripts cannot read it, SameSite=Strict
// so no other site's page can send it, Secure when the request came over
// TLS (directly or, as a proxy says, to it).
func (s *Server) setSessionCookie(ctx *fasthttp.RequestCtx, value string, expires time.Time) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(console.CookieName)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(ctx.IsTLS() || bytes.EqualFold(ctx.Request.Header.Peek("X-Forwarded-Proto"), []byte("https")))
	c.SetExpire(expires)
	ctx.Response.Header.SetCookie(c)
}

// CallObserver hears of every call event the events endpoint stored
// (console.Board), to show calls live. It must not block.
type CallObserver interface {
	ObserveCall(tenantID string, kind domain.EventKind, uniqueID string, fields map[string]string)
}

// Live board stream timing. A stream ends after liveLifetime and the
// browser's EventSource reconnects (after liveRetry), receiving the whole
// board again, so no stream outlives a deploy by long and none is lost for
// good to a proxy's idle cut.
const (
	liveLifetime  = 5 * time.Minute
	liveHeartbeat = 15 * time.Second
	liveRetry     = 2 * time.Second
	liveWrite     = 10 * time.Second
)

// liveSnapshot is one message of the live board's stream.
type liveSnapshot struct {
	Tenant string         `json:"tenant"`
	At     time.Time      `json:"at"`
	Calls  []console.Call `json:"calls"`
}

// serveLive streams a tenant's live board as server-sent events: the whole
// board at once and again after every change, heartbeats between.
func (s *Server) serveLive(ctx *fasthttp.RequestCtx, tenantID string) {
	if s.board == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: the live board is not enabled on this server")
		return
	}
	if _, ok := s.authenticate(ctx); !ok {
		return
	}
	if m := string(ctx.Method()); m != fasthttp.MethodGet {
		notAllowed(ctx, fasthttp.MethodGet)
		return
	}
	if s.tenants.Lookup(tenantID) == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "tenant: unknown")
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	conn := ctx.Conn()
	board, now := s.board, s.now
	wake, stop := board.Watch(tenantID)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer stop()
		end := time.NewTimer(liveLifetime)
		defer end.Stop()
		beat := time.NewTicker(liveHeartbeat)
		defer beat.Stop()
		send := func(msg []byte) bool {
			// The server's write timeout was set once for the response;
			// a stream needs it per write.
			_ = conn.SetWriteDeadline(now().Add(liveWrite))
			if _, err := w.Write(msg); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		if !send([]byte("retry: " + strconv.Itoa(int(liveRetry/time.Millisecond)) + "\n\n")) {
			return
		}
		for changed := true; ; {
			if changed {
				b, err := json.Marshal(liveSnapshot{Tenant: tenantID, At: now().UTC(), Calls: board.Calls(tenantID)})
				if err != nil || !send(append(append([]byte("event: board\ndata: "), b...), '\n', '\n')) {
					return
				}
			}
			changed = false
			select {
			case <-wake:
				changed = true
			case <-beat.C:
				if !send([]byte(": heartbeat\n\n")) {
					return
				}
			case <-end.C:
				return
			case <-board.Closed():
				return
			}
		}
	})
}
