package httpapi

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

// Webhooks applies CRM change notifications (crmsync.Live.Webhook).
type Webhooks interface {
	Webhook(ctx context.Context, tenantID, contentType string, body []byte) error
}

// webhookTimeout bounds applying one notification, which may read the
// changed records back from the CRM.
const webhookTimeout = 10 * time.Second

// serveCRMWebhook applies a CRM's change notification. The tenant's webhook
// secret is required as for the PBX endpoints; the body is never logged.
func (s *Server) serveCRMWebhook(ctx *fasthttp.RequestCtx, tenantID string) {
	if s.webhooks == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: CRM webhooks are not enabled on this server")
		return
	}
	t := s.tenants.Lookup(tenantID)
	if t == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "tenant: unknown")
		return
	}
	if !authorized(ctx, t) {
		return
	}
	if string(ctx.Method()) != fasthttp.MethodPost {
		notAllowed(ctx, fasthttp.MethodPost)
		return
	}
	raw, ok := readBody(ctx, maxAdminBodyBytes)
	if !ok {
		return
	}
	// The body is copied: the engine must not hold fasthttp's buffers.
	body := append([]byte(nil), raw...)
	c, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	if err := s.webhooks.Webhook(c, tenantID, string(ctx.Request.Header.ContentType()), body); err != nil {
		writeError(ctx, s.log, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"ok":true}`)
}
