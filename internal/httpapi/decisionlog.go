package httpapi

import (
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/tenant"
)

// maskKeep is how many trailing digits of a caller the decision log shows:
// enough to find a call in the PBX's log, too few to identify the client.
const maskKeep = 4

// callIDKeys are the parameters a route request's call id is read from,
// as the events endpoint reads it.
var callIDKeys = []string{"uniqueid", "call_id", "callid", "unique_id", "uuid"}

// sampleDecision reports whether this route decision is logged: never when
// the decision log is off (the hot path's only cost is this comparison).
func (s *Server) sampleDecision() bool {
	return s.decisionSample > 0 && (s.decisionSample >= 1 || rand.Float64() < s.decisionSample)
}

// logDecision logs one route decision at info: tenant, call id when the
// request sent one, the caller masked to its last digits, reason, target
// and latency. The request's secret and the full caller are never logged.
func (s *Server) logDecision(ctx *fasthttp.RequestCtx, t *tenant.Config, rr *routeRequest, res lookup.Result, start time.Time) {
	fields := []zap.Field{
		zap.String("tenant", t.ID),
		zap.String("caller", maskCaller(rr.caller)),
		zap.String("reason", res.Reason.String()),
		zap.String("target", res.Target),
		zap.Duration("latency", s.now().Sub(start)),
	}
	if id := routeCallID(ctx, rr); id != "" {
		fields = append(fields, zap.String("call_id", id))
	}
	s.log.Info("route decision", fields...)
}

// maskCaller replaces all but the last maskKeep characters of a caller
// with '*', keeping its length.
func maskCaller(caller []byte) string {
	b := []byte(string(caller))
	for i := range max(len(b)-maskKeep, 0) {
		b[i] = '*'
	}
	if len(b) <= maskKeep {
		for i := range b {
			b[i] = '*'
		}
	}
	return storableText(string(b))
}

// routeCallID returns the call id a route request carries in its query, its
// JSON body (or JSON-RPC params) or its form body, clipped; "" when none.
func routeCallID(ctx *fasthttp.RequestCtx, rr *routeRequest) string {
	if b := routeCallIDBytes(ctx, rr); len(b) > 0 {
		return clipID(b)
	}
	return ""
}

// routeCallIDBytes is routeCallID without a copy: the bytes are the
// request's (or rr's scratch memory), valid until rr is released. It does
// not allocate once rr's scratch memory has grown to the ids it sees, so
// the routing report can read it on every route request.
func routeCallIDBytes(ctx *fasthttp.RequestCtx, rr *routeRequest) []byte {
	args := ctx.QueryArgs()
	for _, k := range callIDKeys {
		if v := args.Peek(k); len(v) > 0 {
			return v
		}
	}
	if rr.obj != nil {
		for _, k := range callIDKeys {
			switch v := rr.obj.Get(k); {
			case v == nil:
			case v.Type() == fastjson.TypeString:
				if b := v.GetStringBytes(); len(b) > 0 {
					return b
				}
			case v.Type() == fastjson.TypeNumber:
				rr.callID = v.MarshalTo(rr.callID[:0])
				return rr.callID
			}
		}
	}
	if len(rr.form) > 0 {
		rr.formArgs.ParseBytes(rr.form)
		for _, k := range callIDKeys {
			if v := rr.formArgs.Peek(k); len(v) > 0 {
				return v
			}
		}
	}
	return nil
}

func clipID(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return storableText(string(b))
}
