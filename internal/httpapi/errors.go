package httpapi

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/domain"
)

// statusOf maps a domain error code to its HTTP status: the one place where
// that mapping lives.
func statusOf(code string) int {
	switch code {
	case domain.EINVALID:
		return fasthttp.StatusBadRequest
	case domain.EUNAUTHORIZED:
		return fasthttp.StatusUnauthorized
	case domain.ENOTFOUND:
		return fasthttp.StatusNotFound
	case domain.ECONFLICT:
		return fasthttp.StatusConflict
	case domain.ETOOLARGE:
		return fasthttp.StatusRequestEntityTooLarge
	case domain.EUNAVAILABLE, domain.ECRMDOWN:
		return fasthttp.StatusServiceUnavailable
	case domain.ECRMERROR:
		return fasthttp.StatusBadGateway
	case domain.ECRMTIMEOUT:
		return fasthttp.StatusGatewayTimeout
	default:
		return fasthttp.StatusInternalServerError
	}
}

// writeError renders err as {"error":{"code","message"}}. Internal errors
// are logged with their detail and shown to the client as "internal error".
// A CRM's trouble (502, 503, 504 naming the CRM) is expected: it is logged
// as a warning, whose entries carry no stack trace, with its message only.
func writeError(ctx *fasthttp.RequestCtx, log *zap.Logger, err error) {
	code := domain.ErrorCode(err)
	switch code {
	case domain.EINTERNAL, domain.EUNAVAILABLE:
		// Unavailable (the store refuses writes: a full disk) needs ops as
		// much as an internal error does.
		log.Error("request failed", zap.ByteString("path", ctx.Path()), zap.Error(err))
	case domain.ECRMERROR, domain.ECRMDOWN, domain.ECRMTIMEOUT:
		log.Warn("CRM call failed", zap.ByteString("path", ctx.Path()), zap.String("code", code),
			zap.String("error", domain.ErrorMessage(err)))
	}
	writeErrorCode(ctx, statusOf(code), code, domain.ErrorMessage(err))
}

func writeErrorCode(ctx *fasthttp.RequestCtx, status int, code, message string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.ResetBody()
	ctx.Response.AppendBodyString(`{"error":{"code":`)
	ctx.Response.AppendBodyString(jsonString(code))
	ctx.Response.AppendBodyString(`,"message":`)
	ctx.Response.AppendBodyString(jsonString(message))
	ctx.Response.AppendBodyString(`}}`)
}

// jsonString returns s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
