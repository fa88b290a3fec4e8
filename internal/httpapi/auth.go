package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// codeForbidden is the error code of a 403: a known token whose scope does
// not allow the call.
const codeForbidden = "forbidden"

// authTimeout bounds the store lookup of an admin token.
const authTimeout = 5 * time.Second

var bearerPrefix = []byte("Bearer ")

// authenticate finds who an admin request acts as: the bootstrap token
// (compared in constant time with its hash), else a token in the store,
// looked up by its SHA-256 on every request, so a revocation applies at
// once on every instance. It answers 401 itself when there is nobody.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (admin.Principal, bool) {
	auth := ctx.Request.Header.Peek("Authorization")
	var token []byte
	if len(auth) > len(bearerPrefix) && bytes.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
		token = bytes.TrimSpace(auth[len(bearerPrefix):])
	}
	if len(token) == 0 {
		unauthorized(ctx, "authorization: missing admin bearer token")
		return admin.Principal{}, false
	}
	sum := sha256.Sum256(token)
	if subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) == 1 {
		return admin.Bootstrap(), true
	}
	if s.admin == nil {
		unauthorized(ctx, "authorization: unknown admin token")
		return admin.Principal{}, false
	}
	c, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	p, err := s.admin.Authenticate(c, sum[:])
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
