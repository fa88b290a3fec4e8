package httpapi

import (
	"context"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
)

// explainView is GET /admin/v1/tenants/{t}/explain's answer: the decision
// laid open, the owner's employee mapping, and the route answer itself.
type explainView struct {
	Tenant string `json:"tenant"`
	lookup.Explanation
	Employee *domain.Employee `json:"employee"`
	Answer   routeAnswer      `json:"answer"`
}

// routeAnswer is what the route endpoint would send the PBX, byte for byte
// in its body.
type routeAnswer struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	RouteReason string `json:"x_route_reason"`
	Body        string `json:"body"`
}

// serveExplain explains the routing of ?caller= for a tenant, from the
// same decision code the route endpoint runs.
func (s *Server) serveExplain(c context.Context, ctx *fasthttp.RequestCtx, tenantID string) {
	t := s.tenants.Lookup(tenantID)
	if t == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "tenant: unknown")
		return
	}
	caller := strings.TrimSpace(string(ctx.QueryArgs().Peek("caller")))
	if caller == "" {
		writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "caller: required")
		return
	}
	x, err := s.router.Explain(c, t, caller, s.now())
	if err != nil {
		writeError(ctx, s.log, err)
		return
	}
	v := explainView{Tenant: t.ID, Explanation: x}
	if x.Owner != nil {
		if e, err := s.admin.Employee(c, t.ID, x.Owner.CRMUserID); err == nil {
			v.Employee = &e
		} else if domain.ErrorCode(err) != domain.ENOTFOUND {
			writeError(ctx, s.log, err)
			return
		}
	}
	var resp fasthttp.Response
	rr := acquireRouteRequest()
	renderRoute(&resp, t, x.Result, rr)
	releaseRouteRequest(rr)
	v.Answer = routeAnswer{Status: resp.StatusCode(), ContentType: string(resp.Header.ContentType()),
		RouteReason: string(resp.Header.Peek("X-Route-Reason")), Body: string(resp.Body())}
	s.reply(ctx, 200)(v, nil)
}
