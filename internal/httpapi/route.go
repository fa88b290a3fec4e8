package httpapi

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/tenant"
)

var (
	headerReason = []byte("X-Route-Reason")
	headerKey    = []byte("X-Router-Key")
	argKey       = []byte("key")
	reasonBytes  [lookup.NumReasons][]byte
	emptyJSON    = []byte(`{}`)
	rpcOpen      = []byte(`{"jsonrpc":"2.0","id":`)
	rpcResult    = []byte(`,"result":`)
	rpcNull      = []byte(`null`)
)

func init() {
	for r := lookup.ReasonOwner; r < lookup.NumReasons; r++ {
		reasonBytes[r] = []byte(r.String())
	}
}

// serveRoute answers the PBX's webhook-number request. It never answers 5xx:
// a panic becomes "no forward" with reason unavailable.
func (s *Server) serveRoute(ctx *fasthttp.RequestCtx, tenantID []byte) {
	start := s.now()
	defer func() {
		if p := recover(); p != nil {
			routePanics.Inc()
			s.log.Error("route handler panic") // the request may hold the secret: log nothing of it
			ctx.Response.Reset()
			ctx.Response.Header.SetBytesKV(headerReason, reasonBytes[lookup.ReasonUnavailable])
			ctx.SetContentType("application/json")
			ctx.SetBody(emptyJSON)
		}
		countRequest(epRoute, ctx)
		routeDuration.UpdateDuration(start)
	}()
	// An unknown tenant or a wrong key is not a routing decision, so those
	// answers carry no X-Route-Reason: claiming "unavailable" would send ops
	// looking for trouble behind the cache that is not there.
	t := s.tenants.Get(tenantID)
	if t == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "tenant: unknown")
		return
	}
	if !authorized(ctx, t) {
		return
	}
	// A request the caller cannot be read from was not forwarded because of
	// what it holds, not because of trouble on our side.
	ctx.Response.Header.SetBytesKV(headerReason, reasonBytes[lookup.ReasonInvalidCaller])
	// Read here, bounded, so parseRouteRequest sees the buffered body.
	if _, ok := readBody(ctx, maxRouteBody); !ok {
		return
	}
	rr := acquireRouteRequest()
	defer releaseRouteRequest(rr)
	if err := parseRouteRequest(&ctx.Request, t.CallerKeys, rr); err != nil {
		writeError(ctx, s.log, err)
		return
	}
	if len(rr.caller) == 0 {
		// Ringostat's own sample body, an empty or hidden caller: a live
		// call still gets an answer the PBX acts on (its next block), never
		// a 400 it may treat as a failed step.
		res := lookup.NoCaller()
		renderRoute(&ctx.Response, t, res, rr)
		if s.decisions != nil {
			s.decisions.Record(t, routeCallIDBytes(ctx, rr), res, start)
		}
		return
	}
	// Not ctx: fasthttp's RequestCtx.Done races with shutdown. Route bounds
	// itself by the tenant's budget.
	res := s.router.Route(context.Background(), t, rr.caller, start)
	renderRoute(&ctx.Response, t, res, rr)
	// Kept for the routing report: copied into a buffer, never waited on.
	if s.decisions != nil {
		s.decisions.Record(t, routeCallIDBytes(ctx, rr), res, start)
	}
	if s.sampleDecision() {
		s.logDecision(ctx, t, rr, res, start)
	}
}

// authorized checks the tenant's webhook secret, taken from ?key= (the PBX
// cannot be relied on to send custom headers) or X-Router-Key, in constant
// time, and answers 401 when it is missing or wrong. It does not allocate.
func authorized(ctx *fasthttp.RequestCtx, t *tenant.Config) bool {
	key := ctx.QueryArgs().PeekBytes(argKey)
	if len(key) == 0 {
		key = ctx.Request.Header.PeekBytes(headerKey)
	}
	if !t.CheckKey(key) {
		writeErrorCode(ctx, fasthttp.StatusUnauthorized, domain.EUNAUTHORIZED, "key: missing or wrong webhook secret")
		return false
	}
	return true
}

// renderRoute writes the answer in the tenant's response format.
func renderRoute(resp *fasthttp.Response, t *tenant.Config, res lookup.Result, rr *routeRequest) {
	resp.Header.SetBytesKV(headerReason, reasonBytes[res.Reason])
	switch t.Settings.ResponseFormat {
	case domain.FormatText:
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.SetBodyString(res.Target)
	case domain.FormatJSONRPC:
		resp.Header.SetContentType("application/json")
		resp.ResetBody()
		resp.AppendBody(rpcOpen)
		if rr.jsonrpc && len(rr.rpcID) > 0 {
			resp.AppendBody(rr.rpcID)
		} else {
			resp.AppendBody(rpcNull)
		}
		resp.AppendBody(rpcResult)
		appendResult(resp, t, res.Target)
		resp.AppendBodyString("}")
	default:
		resp.Header.SetContentType("application/json")
		resp.ResetBody()
		appendResult(resp, t, res.Target)
	}
}

// appendResult writes {"field":"target"}, or {} for no forward. Targets are
// SIP logins without quotes or backslashes, or digits, so they need no
// escaping.
func appendResult(resp *fasthttp.Response, t *tenant.Config, target string) {
	if target == "" {
		resp.AppendBody(emptyJSON)
		return
	}
	resp.AppendBody(t.AnswerOpen)
	resp.AppendBodyString(target)
	resp.AppendBody(t.AnswerClose)
}
