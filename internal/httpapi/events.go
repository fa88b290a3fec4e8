package httpapi

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/tenant"
)

// EventIngest stores call events (events.Ingest).
type EventIngest interface {
	Store(ctx context.Context, t *tenant.Config, in events.Incoming) (string, error)
	Reject(ctx context.Context, tenantID, reason, contentType string, body []byte) error
}

// EventObserver hears the call events the endpoint stored
// (ringostat.Manager: who is in a call between presence polls, automatic
// call-backs). Observe must not block.
type EventObserver interface {
	Observe(tenantID, eventID string, kind domain.EventKind, fields map[string]string)
}

// eventTimeout bounds storing one event. The PBX does not retry, so a
// slow database is waited for a while rather than answered 503 at once.
const eventTimeout = 10 * time.Second

// serveEvents stores a call event and answers 200 {"id"} only once it and
// its processing job are committed. A body that cannot be an event is
// answered 400 with the reason and kept for inspection; a store that
// cannot take the event is answered 503, never 200.
func (s *Server) serveEvents(ctx *fasthttp.RequestCtx, tenantID string) {
	if s.events == nil {
		writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: call events are not enabled on this server")
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
	switch string(ctx.Method()) {
	case fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodGet:
	default:
		notAllowed(ctx, fasthttp.MethodPost)
		return
	}
	raw, ok := readBody(ctx, maxEventBody)
	if !ok {
		return
	}
	// Copies: nothing below may keep fasthttp's buffers.
	query := url.Values{}
	for k, v := range ctx.QueryArgs().All() {
		query.Add(string(k), string(v))
	}
	body := append([]byte(nil), raw...)
	contentType := string(ctx.Request.Header.ContentType())
	c, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	in, err := events.Parse(contentType, query, body)
	if err != nil {
		// The reason may quote the body; the one kept is the one answered.
		code, reason := domain.ErrorCode(err), storableText(domain.ErrorMessage(err))
		presented := ctx.QueryArgs().PeekBytes(argKey)
		if len(presented) == 0 {
			presented = ctx.Request.Header.PeekBytes(headerKey)
		}
		if rerr := s.events.Reject(c, t.ID, reason, storableText(contentType), redactBody(body, presented)); rerr != nil {
			s.log.Error("keep rejected event", zap.String("tenant", t.ID), zap.Error(rerr))
		}
		s.log.Info("call event rejected", zap.String("tenant", t.ID), zap.String("reason", redactLog(reason)))
		writeErrorCode(ctx, statusOf(code), code, reason)
		return
	}
	id, err := s.events.Store(c, t, in)
	if err != nil {
		s.log.Error("store call event", zap.String("tenant", t.ID), zap.Error(err))
		msg := "store: the event could not be stored; it was not accepted"
		if domain.ErrorCode(err) == domain.EUNAVAILABLE {
			// The store says why (a full disk), which ops need to hear.
			msg = domain.ErrorMessage(err) + "; the event was not accepted"
		}
		writeErrorCode(ctx, fasthttp.StatusServiceUnavailable, domain.EUNAVAILABLE, msg)
		return
	}
	if s.observer != nil {
		s.observer.Observe(t.ID, id, in.Kind, in.Fields)
	}
	if s.calls != nil {
		s.calls.ObserveCall(t.ID, in.Kind, in.UniqueID, in.Fields)
	}
	s.log.Info("call event stored", zap.String("tenant", t.ID), zap.String("id", id), zap.String("kind", string(in.Kind)),
		zap.String("call_id", clipID([]byte(in.UniqueID))))
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"id":` + jsonString(id) + `}`)
}

// storableText returns s as valid UTF-8 without NUL bytes: PostgreSQL
// refuses both in text, and a rejected body's reason and content type are
// kept as text.
func storableText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
