package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/console"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// codeForbidden is the error code of a 403: a known token whose scope does
// not allow the call.
const codeForbidden = "forbidden"

// codeCSRF is the error code of a 403 for a change made with a console
// session but without its CSRF token.
const codeCSRF = "csrf"

// headerCSRF carries a console session's CSRF token.
const headerCSRF = "X-CSRF-Token"

// authTimeout bounds the store lookup of an admin token.
const authTimeout = 5 * time.Second

var bearerPrefix = []byte("Bearer ")

// authenticate finds who an admin request acts as: the bootstrap token
// (compared in constant time with its hash), else a token in the store,
// looked up by its SHA-256 on every request, so a revocation applies at
// once on every instance. Without a bearer token, a console session cookie
// stands for the token it was opened with; a change made with a cookie must
// carry the session's CSRF token. It answers 401 (or 403 for a missing
// CSRF token) itself when there is nobody.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (admin.Principal, bool) {
	auth := ctx.Request.Header.Peek("Authorization")
	var token []byte
	if len(auth) > len(bearerPrefix) && bytes.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
		token = bytes.TrimSpace(auth[len(bearerPrefix):])
	}
	if len(token) == 0 {
		if cookie := ctx.Request.Header.Cookie(console.CookieName); len(cookie) > 0 && s.sessions != nil {
			return s.authenticateSession(ctx, cookie)
		}
		unauthorized(ctx, "authorization: missing admin bearer token")
		return admin.Principal{}, false
	}
	sum := sha256.Sum256(token)
	return s.principal(ctx, sum[:])
}

// principal finds the principal of the admin token whose SHA-256 is sum,
// answering 401 itself when there is none.
func (s *Server) principal(ctx *fasthttp.RequestCtx, sum []byte) (admin.Principal, bool) {
	if subtle.ConstantTimeCompare(sum, s.adminHash[:]) == 1 {
		return admin.Bootstrap(), true
	}
	if s.admin == nil {
		unauthorized(ctx, "authorization: unknown admin token")
		return admin.Principal{}, false
	}
	c, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	p, err := s.admin.Authenticate(c, sum)
	switch {
	case domain.ErrorCode(err) == domain.EUNAUTHORIZED:
		unauthorized(ctx, domain.ErrorMessage(err))
		return admin.Principal{}, false
	case err != nil:
		writeError(ctx, s.log, err)
		return admin.Principal{}, false
	}
	return p, true
}

// authenticateSession authenticates a request by its console session
// cookie: the session must be valid, its token still valid, and a request
// other than GET or HEAD must carry the session's CSRF token.
func (s *Server) authenticateSession(ctx *fasthttp.RequestCtx, cookie []byte) (admin.Principal, bool) {
	sess, ok := s.session(ctx, cookie)
	if !ok {
		return admin.Principal{}, false
	}
	if m := string(ctx.Method()); m != fasthttp.MethodGet && m != fasthttp.MethodHead &&
		!s.sessions.CheckCSRF(sess, ctx.Request.Header.Peek(headerCSRF)) {
		csrfRefused.Inc()
		writeErrorCode(ctx, fasthttp.StatusForbidden, codeCSRF,
			"x-csrf-token: missing or wrong; a change made with a console session must send the session's CSRF token")
		return admin.Principal{}, false
	}
	return s.principal(ctx, sess.TokenHash)
}

// session verifies a console session cookie, answering 401 itself when it
// is not valid.
func (s *Server) session(ctx *fasthttp.RequestCtx, cookie []byte) (console.Session, bool) {
	c, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	sess, err := s.sessions.Verify(c, cookie)
	switch {
	case domain.ErrorCode(err) == domain.EUNAUTHORIZED:
		writeErrorCode(ctx, fasthttp.StatusUnauthorized, domain.EUNAUTHORIZED, domain.ErrorMessage(err))
		return console.Session{}, false
	case err != nil:
		writeError(ctx, s.log, err)
		return console.Session{}, false
	}
	return sess, true
}

func unauthorized(ctx *fasthttp.RequestCtx, message string) {
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="callrouter admin"`)
	writeErrorCode(ctx, fasthttp.StatusUnauthorized, domain.EUNAUTHORIZED, message)
}

// permitted answers 403 and reports false when who's scope does not allow
// method: a read-scope token may only GET and HEAD.
func permitted(ctx *fasthttp.RequestCtx, who admin.Principal, method string) bool {
	if who.Scope == store.ScopeAdmin || method == fasthttp.MethodGet || method == fasthttp.MethodHead {
		return true
	}
	writeErrorCode(ctx, fasthttp.StatusForbidden, codeForbidden,
		"scope: this token has the "+jsonString(who.Scope)+" scope, which allows GET and HEAD only; "+
			method+" needs a token with the \"admin\" scope")
	return false
}
