// Package httpapi serves callrouter over fasthttp: the PBX's route endpoint,
// the admin API, health, readiness and metrics. Handlers are thin: they
// parse, call a service, render and count; domain errors become HTTP
// statuses in one place (writeError).
package httpapi

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/console"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/report"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Config wires a Server.
type Config struct {
	Tenants *tenant.Registry
	Router  *lookup.Service
	Admin   *admin.Service
	// Webhooks applies CRM change notifications; nil disables the endpoint.
	Webhooks Webhooks
	// Events stores call events; nil disables the endpoint.
	Events EventIngest
	// Observer hears every call event once stored (Ringostat presence
	// between polls); nil: nobody.
	Observer EventObserver
	// Ready reports whether the instance may take calls (cache warm).
	Ready func() bool
	// AdminTokenHash is the SHA-256 of the admin bearer token.
	AdminTokenHash []byte
	// Sessions signs console sessions; nil serves no console (/console/
	// answers 404) and the admin API takes bearer tokens only.
	Sessions *console.Sessions
	// Board shows calls live in the console; nil disables the live board.
	Board *console.Board
	// Calls hears of every stored call event; Board when nil.
	Calls CallObserver
	// Decisions keeps route decisions for the routing report; nil keeps
	// none.
	Decisions *report.Recorder
	Log       *zap.Logger
	// Now is the clock for request timing; time.Now when nil.
	Now func() time.Time
	// ReadTimeout bounds reading one request, headers and body, from its
	// first byte (from the accept for a connection's first request), so a
	// client that trickles it is cut; DefaultReadTimeout when zero.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response, so a client that does not
	// read it is cut; DefaultWriteTimeout when zero.
	WriteTimeout time.Duration
	// DecisionLogSample is the share of route decisions logged at info
	// (0 off, 1 every one); see logDecision.
	DecisionLogSample float64
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request; DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
}

// Connection timeouts used when Config leaves them zero. A PBX sends a
// route request of a few hundred bytes and its budget is 300 ms by
// default, so seconds are generous for any honest client.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
)

// Server holds the handlers' dependencies.
type Server struct {
	tenants    *tenant.Registry
	router     *lookup.Service
	admin      *admin.Service
	adminTable *adminTable // adminRoutes, split for matching
	webhooks   Webhooks
	events     EventIngest
	observer   EventObserver
	ready      func() bool
	adminHash  [sha256.Size]byte
	sessions   *console.Sessions
	board      *console.Board
	calls      CallObserver
	decisions  *report.Recorder
	log        *zap.Logger
	now        func() time.Time
	// decisionSample is Config.DecisionLogSample.
	decisionSample float64
	// timeouts of the connections FastHTTP serves: read, write, idle.
	timeouts [3]time.Duration
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{tenants: cfg.Tenants, router: cfg.Router, admin: cfg.Admin, webhooks: cfg.Webhooks, events: cfg.Events, observer: cfg.Observer, ready: cfg.Ready, log: cfg.Log, now: cfg.Now,
		sessions: cfg.Sessions, board: cfg.Board, calls: cfg.Calls, decisions: cfg.Decisions, adminTable: newAdminTable(adminRoutes)}
	if s.calls == nil && s.board != nil {
		s.calls = s.board
	}
	copy(s.adminHash[:], cfg.AdminTokenHash)
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	s.decisionSample = min(max(cfg.DecisionLogSample, 0), 1)
	s.timeouts = [3]time.Duration{cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout}
	for i, d := range [3]time.Duration{DefaultReadTimeout, DefaultWriteTimeout, DefaultIdleTimeout} {
		if s.timeouts[i] <= 0 {
			s.timeouts[i] = d
		}
	}
	return s
}

// FastHTTP returns a fasthttp server for s.Handler as NewFastHTTP makes it,
// with the connection timeouts of s's Config.
func (s *Server) FastHTTP() *fasthttp.Server {
	hs := NewFastHTTP(s.Handler, s.log)
	hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout = s.timeouts[0], s.timeouts[1], s.timeouts[2]
	return hs
}

// NewFastHTTP returns a fasthttp server for h with the timeouts and limits a
// service in the path of live calls needs: slow clients are cut, bodies are
// bounded, and shutdown closes idle connections.
func NewFastHTTP(h fasthttp.RequestHandler, log *zap.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		Name:                  "callrouter",
		NoDefaultServerHeader: true,
		ReadTimeout:           DefaultReadTimeout,
		WriteTimeout:          DefaultWriteTimeout,
		IdleTimeout:           DefaultIdleTimeout,
		// Bodies are streamed: handlers run once the headers are read and
		// each endpoint reads at most its own limit (see readBody), so an
		// unauthenticated client cannot make the server buffer a body.
		// MaxRequestBodySize then only bounds what fasthttp prefetches.
		StreamRequestBody:  true,
		MaxRequestBodySize: MaxBodyBytes,
		// No endpoint takes multipart forms; pre-parsing one would spill
		// large parts to temporary files and fail odd ones before a
		// handler could answer.
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		ErrorHandler:                 serveReadError,
		Logger:                       zapPrintf{log},
	}
}

// serveReadError answers a request fasthttp could not read. A connection
// that failed while a request was awaited (nothing sent before the read
// timeout, a client trickling bytes, a reset) is closed without an answer,
// as net/http does: fasthttp would otherwise write an error response, and
// on a connection a client dialed but then kept idle in its pool that
// answer arrives before any request ("Unsolicited response received on
// idle HTTP channel"). Closing here makes fasthttp's own write fail
// silently.
func serveReadError(ctx *fasthttp.RequestCtx, err error) {
	var opErr *net.OpError
	var netErr net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &opErr) || errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, io.ErrUnexpectedEOF):
		if c := ctx.Conn(); c != nil {
			_ = c.Close() // the connection is being dropped; its error says nothing more
		}
	case errors.As(err, &small):
		writeErrorCode(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, domain.ETOOLARGE, "headers: larger than the server accepts")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeErrorCode(ctx, fasthttp.StatusRequestEntityTooLarge, domain.ETOOLARGE, "body: larger than the server accepts")
	default:
		writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "request: cannot be parsed")
	}
}

type zapPrintf struct{ l *zap.Logger }

// Printf logs at debug level, with request secrets masked (see redactLog).
func (z zapPrintf) Printf(format string, args ...any) {
	z.l.Debug(redactLog(fmt.Sprintf(format, args...)))
}

var (
	pathPBX     = []byte("/pbx/")
	pathAdmin   = []byte("/admin/v1/")
	pathCRM     = []byte("/crm/")
	suffixHook  = []byte("/webhook")
	pathHealthz = []byte("/healthz")
	pathReadyz  = []byte("/readyz")
	pathMetrics = []byte("/metrics")
	pathConsole = []byte("/console")
	suffixRoute = []byte("/route")
	suffixEvent = []byte("/events")
)

// Handler dispatches a request by path. fasthttp does not recover panics,
// and one in an admin handler must not take live routing down with the
// process: it becomes a 500 here (the route handler answers its own).
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			handlerPanics.Inc()
			s.log.Error("handler panic", zap.ByteString("path", ctx.Path()), zap.Any("panic", p), zap.Stack("stack"))
			ctx.Response.Reset()
			writeErrorCode(ctx, fasthttp.StatusInternalServerError, domain.EINTERNAL, "internal error")
		}
		// An answer to a request whose body was left unread (unknown path
		// or tenant, wrong key, a refusal) closes the connection rather
		// than read the body to find the next request.
		if ctx.Response.StatusCode() >= 400 && unreadBody(&ctx.Request) {
			ctx.SetConnectionClose()
		}
	}()
	if !framingOK(ctx) {
		countRequest(epOther, ctx)
		return
	}
	path := ctx.Path()
	switch {
	case bytes.HasPrefix(path, pathPBX):
		rest := path[len(pathPBX):]
		if i := bytes.IndexByte(rest, '/'); i > 0 && bytes.Equal(rest[i:], suffixRoute) {
			s.serveRoute(ctx, rest[:i])
			return
		} else if i > 0 && bytes.Equal(rest[i:], suffixEvent) {
			s.serveEvents(ctx, string(rest[:i]))
			countRequest(epEvents, ctx)
			return
		}
		writeErrorCode(ctx, fasthttp.StatusNotFound, "not_found", "path: no such endpoint")
		countRequest(epOther, ctx)
	case bytes.HasPrefix(path, pathCRM):
		rest := path[len(pathCRM):]
		if i := bytes.IndexByte(rest, '/'); i > 0 && bytes.Equal(rest[i:], suffixHook) {
			s.serveCRMWebhook(ctx, string(rest[:i]))
		} else {
			writeErrorCode(ctx, fasthttp.StatusNotFound, domain.ENOTFOUND, "path: no such endpoint")
		}
		countRequest(epWebhook, ctx)
	case bytes.HasPrefix(path, pathAdmin):
		s.serveAdmin(ctx)
		countRequest(epAdmin, ctx)
	case bytes.HasPrefix(path, pathConsole):
		s.serveConsole(ctx)
		countRequest(epConsole, ctx)
	case bytes.Equal(path, pathHealthz):
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok")
		countRequest(epHealth, ctx)
	case bytes.Equal(path, pathReadyz):
		ctx.SetContentType("text/plain; charset=utf-8")
		if s.ready() {
			ctx.SetBodyString("ready")
		} else {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("warming up")
		}
		countRequest(epHealth, ctx)
	case bytes.Equal(path, pathMetrics):
		ctx.SetContentType("text/plain; version=0.0.4")
		writeMetrics(ctx)
		countRequest(epMetrics, ctx)
	default:
		writeErrorCode(ctx, fasthttp.StatusNotFound, "not_found", "path: no such endpoint")
		countRequest(epOther, ctx)
	}
}

// Endpoints as counted in callrouter_http_requests_total.
const (
	epRoute = iota
	epWebhook
	epEvents
	epAdmin
	epHealth
	epMetrics
	epOther
	epConsole
	numEndpoints
)

var (
	endpointNames = [numEndpoints]string{"route", "crm_webhook", "events", "admin", "health", "metrics", "other", "console"}
	statusCodes   = [...]int{200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 500, 503}
	// requestCounters is indexed by endpoint, then by position in statusCodes;
	// the last column counts any other status.
	requestCounters [numEndpoints][len(statusCodes) + 1]*metrics.Counter
	routeDuration   = metrics.NewPrometheusHistogramExt(`callrouter_route_duration_seconds`, metrics.ExponentialBuckets(50e-6, 2, 16))
	routePanics     = metrics.NewCounter(`callrouter_route_panics_total`)
	handlerPanics   = metrics.NewCounter(`callrouter_handler_panics_total`)
	csrfRefused     = metrics.NewCounter(`callrouter_console_csrf_refused_total`)
	consoleSignIns  = metrics.NewCounter(`callrouter_console_sign_ins_total`)
)

func init() {
	for ep, name := range endpointNames {
		for i, code := range statusCodes {
			requestCounters[ep][i] = metrics.NewCounter(`callrouter_http_requests_total{endpoint="` + name + `",status="` + strconv.Itoa(code) + `"}`)
		}
		requestCounters[ep][len(statusCodes)] = metrics.NewCounter(`callrouter_http_requests_total{endpoint="` + name + `",status="other"}`)
	}
}

func countRequest(ep int, ctx *fasthttp.RequestCtx) {
	code := ctx.Response.StatusCode()
	for i, c := range statusCodes {
		if c == code {
			requestCounters[ep][i].Inc()
			return
		}
	}
	requestCounters[ep][len(statusCodes)].Inc()
}
