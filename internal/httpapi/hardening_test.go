package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// failSafe bounds every wait in these tests. It is far above the short
// connection timeouts the tests configure and below the defaults, so a
// timeout that is not applied fails a test instead of passing slowly.
const failSafe = 3 * time.Second

// shortTimeout is the read, write and idle timeout of the server that
// TestSlowClientsAreCut watches.
const shortTimeout = 250 * time.Millisecond

// hardEnv is a Server with every endpoint wired (CRM webhooks recorded)
// behind the fasthttp server FastHTTP makes, on a loopback port. closed
// receives the client address of every connection the server closes.
type hardEnv struct {
	*env
	addr   string
	closed chan string
	srv    *Server
}

// newHardEnv serves over st with timeout as the read, write and idle
// timeouts; zero keeps the defaults.
func newHardEnv(t *testing.T, st store.Store, timeout time.Duration) *hardEnv {
	t.Helper()
	ctx := context.Background()
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 16, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ingest := events.NewIngest(st, &recordingQueue{}, nil, 1)
	t.Cleanup(ingest.Close)
	sum := sha256.Sum256([]byte(testAdminToken))
	srv := New(Config{Tenants: reg, Router: lookup.New(c, st, time.Second), Admin: admin.New(st, reg, c),
		Webhooks: &recordingHooks{}, Events: ingest, AdminTokenHash: sum[:], Log: zap.NewNop(),
		ReadTimeout: timeout, WriteTimeout: timeout, IdleTimeout: timeout})
	hs := srv.FastHTTP()
	closed := make(chan string, 64)
	hs.ConnState = func(c net.Conn, s fasthttp.ConnState) {
		if s == fasthttp.StateClosed {
			select {
			case closed <- c.RemoteAddr().String():
			default: // nobody watches this one
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { hs.Shutdown() })
	addr := ln.Addr().String()
	return &hardEnv{env: &env{t: t, url: "http://" + addr, st: st, cache: c}, addr: addr, closed: closed, srv: srv}
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	return storetest.Backends()[0].Open(t)
}

// as returns h's env for a subtest: its helpers fail t.
func (h *hardEnv) as(t *testing.T) *env {
	e := *h.env
	e.t = t
	return &e
}

// waitClosed waits until the server has closed the connection whose client
// address is local.
func (h *hardEnv) waitClosed(t *testing.T, local string) {
	t.Helper()
	deadline := time.After(failSafe)
	for {
		select {
		case a := <-h.closed:
			if a == local {
				return
			}
		case <-deadline:
			t.Fatalf("the server did not close connection %s within %v", local, failSafe)
		}
	}
}

func (h *hardEnv) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, failSafe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustServe checks the server still routes a normal call.
func (h *hardEnv) mustServe(t *testing.T, secret string) {
	t.Helper()
	if a := h.as(t).route(secret, "caller=380671234567"); a.status != 200 || a.body != `{"number":"anna_sip"}` {
		t.Fatalf("a normal call: %d %q, want 200 anna_sip", a.status, a.body)
	}
}

// readsNothing checks that reading c ends, before failSafe, with the
// connection closed and not one byte of an answer.
func readsNothing(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(failSafe))
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		t.Fatalf("the server answered %q; want the connection closed without an answer", firstLine(b))
	}
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v; want the connection closed", err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}

// rawExchange writes raw on a new connection and reads one answer. The
// write runs on its own so a server that answers before reading everything
// (a 413, a 431) is heard. A nil answer and the read error mean the server
// closed the connection without answering.
func (h *hardEnv) rawExchange(t *testing.T, raw []byte) (*fasthttp.Response, error) {
	t.Helper()
	c := h.dial(t)
	_ = c.SetDeadline(time.Now().Add(failSafe))
	go c.Write(raw) //nolint:errcheck // the server may close first; the answer tells
	resp := new(fasthttp.Response)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close within %v", failSafe)
		}
		return nil, err
	}
	return resp, nil
}

// errorBody decodes an {"error":{"code","message"}} answer.
func errorBody(t testing.TB, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body %q is not an error object (%v)", body, err)
	}
	return e.Error.Code, e.Error.Message
}

func TestOversizedBodiesGet413(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	key := "?key=" + url.QueryEscape(secret)
	auth := map[string]string{"Authorization": "Bearer " + testAdminToken}
	// padded is body followed by spaces up to n bytes: still valid JSON.
	padded := func(body string, n int) string { return body + strings.Repeat(" ", n-len(body)) }
	for _, tc := range []struct {
		name, method, path, ctype, body string
		header                          map[string]string
		limit                           int
	}{
		{"route", "POST", "/pbx/acme/route" + key, "application/json", `{"caller":"380671234567"}`, nil, maxRouteBody},
		{"events", "POST", "/pbx/acme/events" + key, "application/json", `{"event":"call_end","uniqueid":"big.1","caller":"380671234567"}`, nil, maxEventBody},
		{"CRM webhook", "POST", "/crm/acme/webhook" + key, "application/json", `{"ids":["1"]}`, nil, maxAdminBodyBytes},
		{"admin", "PUT", "/admin/v1/tenants/acme/employees/103", "application/json", `{"sip":"vera_sip","name":"Vera"}`, auth, maxAdminBodyBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := h.as(t).do(tc.method, tc.path, tc.ctype, padded(tc.body, tc.limit), tc.header); a.status != 200 {
				t.Fatalf("a body of exactly the limit, %d bytes: %d %s, want 200", tc.limit, a.status, a.body)
			}
			a := h.as(t).do(tc.method, tc.path, tc.ctype, padded(tc.body, tc.limit+1), tc.header)
			if a.status != 413 {
				t.Fatalf("a body of the limit + 1 byte: %d %s, want 413", a.status, a.body)
			}
			if code, msg := errorBody(t, []byte(a.body)); code != domain.ETOOLARGE || !strings.HasPrefix(msg, "body:") {
				t.Fatalf("413 error %s %q, want too_large naming the body", code, msg)
			}
		})
	}
	t.Run("import", func(t *testing.T) {
		// Imports take bodies over the 1 MiB of the other admin calls…
		csv := "phone,owner_crm_user_id\n" + strings.Repeat("\n", 2<<20) + "0501234599,101\n"
		a := h.as(t).do("POST", "/admin/v1/tenants/acme/contacts/import?format=csv", "text/csv", csv, auth)
		if a.status != 200 || a.json(t)["accepted"].(float64) != 1 {
			t.Fatalf("a 2 MiB import: %d %s, want 200 with the row accepted", a.status, a.body)
		}
		// …up to the server's limit, which is judged from Content-Length
		// once fasthttp has prefetched its first 8 KiB, before the rest
		// is sent.
		resp, err := h.rawExchange(t, []byte("POST /admin/v1/tenants/acme/contacts/import HTTP/1.1\r\nHost: x\r\n"+
			"Authorization: Bearer "+testAdminToken+"\r\nContent-Type: text/csv\r\n"+
			"Content-Length: "+strconv.Itoa(MaxBodyBytes+1)+"\r\n\r\nphone,owner_crm_user_id\n"+strings.Repeat("\n", 8<<10)))
		if err != nil {
			t.Fatalf("an import over %d bytes: no answer: %v", MaxBodyBytes, err)
		}
		if resp.StatusCode() != 413 {
			t.Fatalf("an import over %d bytes: %d %s, want 413", MaxBodyBytes, resp.StatusCode(), resp.Body())
		}
		if code, _ := errorBody(t, resp.Body()); code != domain.ETOOLARGE {
			t.Fatalf("413 code %s", code)
		}
	})
	h.mustServe(t, secret)
}

// TestOversizedBodyAnswerIsNotReset posts bodies a little over the event
// limit with net/http's client, which writes the body while the answer may
// already be on its way: the refusal must arrive as a 413, not as the reset
// a close with unread bytes sends (which fails the client's write).
func TestOversizedBodyAnswerIsNotReset(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	body := `{"event":"call_end","uniqueid":"big.2","pad":"` + strings.Repeat("x", maxEventBody+8<<10) + `"}`
	for i := range 200 {
		resp, err := http.Post(h.url+"/pbx/acme/events?key="+url.QueryEscape(secret), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("try %d: the answer to an oversized body was lost: %v", i, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("try %d: %d, want 413", i, resp.StatusCode)
		}
	}
}

func TestSlowClientsAreCut(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), shortTimeout)
	secret := h.acme("")
	request := "GET /pbx/acme/route?key=" + url.QueryEscape(secret) + "&caller=380671234567 HTTP/1.1\r\nHost: x\r\n"

	t.Run("slowloris", func(t *testing.T) {
		c := h.dial(t)
		done := make(chan struct{})
		defer close(done)
		go func() {
			// The request line and headers, a byte at a time, and never the
			// blank line that ends them.
			msg := request + "X-Slow: " + strings.Repeat("a", 1<<20)
			for i := 0; i < len(msg); i++ {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if _, err := c.Write([]byte{msg[i]}); err != nil {
					return
				}
			}
		}()
		h.mustServe(t, secret) // served while the slow client trickles
		h.waitClosed(t, c.LocalAddr().String())
		readsNothing(t, c)
	})

	t.Run("a client that never reads", func(t *testing.T) {
		// Responses of /metrics, pipelined far beyond what the socket
		// buffers hold, with the client's receive buffer made small.
		size := len(h.as(t).do("GET", "/metrics", "", "", nil).body)
		n := min(32<<20/max(size, 1), 20000)
		c := h.dial(t)
		if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
		_ = c.SetWriteDeadline(time.Now().Add(failSafe))
		go c.Write(bytes.Repeat([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), n)) //nolint:errcheck // the server stops reading
		h.waitClosed(t, c.LocalAddr().String())
		h.mustServe(t, secret)
		_ = c.SetReadDeadline(time.Now().Add(failSafe))
		got, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Fatalf("read after the server closed: %v; want EOF or a reset", err)
		}
		if answered := bytes.Count(got, []byte("HTTP/1.1 200 OK")); answered >= n {
			t.Fatalf("all %d responses were written; the write timeout should have cut the connection", n)
		}
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		c := h.dial(t)
		_ = c.SetDeadline(time.Now().Add(failSafe))
		if _, err := io.WriteString(c, request+"\r\n"); err != nil {
			t.Fatal(err)
		}
		var resp fasthttp.Response
		br := bufio.NewReader(c)
		if err := resp.Read(br); err != nil || resp.StatusCode() != 200 || resp.ConnectionClose() {
			t.Fatalf("first request: %v %d close=%v", err, resp.StatusCode(), resp.ConnectionClose())
		}
		h.waitClosed(t, c.LocalAddr().String())
		if b, err := br.ReadByte(); err != io.EOF && !isReset(err) {
			t.Fatalf("idle connection after the idle timeout: read %q, %v; want it closed without a byte", b, err)
		}
	})

	// A connection that is dialed and sends nothing, as an HTTP client pool
	// dials one it then keeps idle, is closed without an answer: a 400 or
	// 408 written on it would reach the client as an unsolicited response
	// before its first request.
	t.Run("connection that sends nothing", func(t *testing.T) {
		c := h.dial(t)
		h.waitClosed(t, c.LocalAddr().String())
		readsNothing(t, c)
	})

	t.Run("request cut off midway", func(t *testing.T) {
		c := h.dial(t)
		if _, err := io.WriteString(c, request[:20]); err != nil {
			t.Fatal(err)
		}
		h.waitClosed(t, c.LocalAddr().String())
		readsNothing(t, c)
	})
	h.mustServe(t, secret)
}

func TestHeaderFloods(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	target := "/pbx/acme/route?key=" + url.QueryEscape(secret) + "&caller=380671234567"
	request := func(target, headers string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n"
	}
	var thousands strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&thousands, "X-Flood-%d: v\r\n", i)
	}
	for _, tc := range []struct{ name, raw string }{
		{"5000 headers", request(target, thousands.String())},
		{"5000 caller headers", request(target, strings.Repeat("Caller: 380671234567\r\n", 5000))},
		{"a 1 MB header", request(target, "X-Big: "+strings.Repeat("b", 1<<20)+"\r\n")},
		{"a 1 MB cookie", request(target, "Cookie: a="+strings.Repeat("c", 1<<20)+"\r\n")},
		{"a 1 MB request line", request(target+"&pad="+strings.Repeat("p", 1<<20), "")},
		{"header lines without a colon", request(target, strings.Repeat("not-a-header-line\r\n", 3))},
		{"a NUL in a header", request(target, "Caller: 380\x00671234567\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.rawExchange(t, []byte(tc.raw))
			switch {
			case err != nil && (err == io.EOF || isReset(err) || errors.Is(err, io.ErrUnexpectedEOF)):
				// Closed without an answer: allowed.
			case err != nil:
				t.Fatalf("reading the answer: %v", err)
			case resp.StatusCode() == 431:
				if code, msg := errorBody(t, resp.Body()); code != domain.ETOOLARGE || !strings.HasPrefix(msg, "headers:") {
					t.Fatalf("431 error %s %q", code, msg)
				}
			case resp.StatusCode() == 400 && (tc.name == "header lines without a colon" || tc.name == "a NUL in a header"):
				if code, msg := errorBody(t, resp.Body()); code != domain.EINVALID || !strings.HasPrefix(msg, "request:") {
					t.Fatalf("400 error %s %q", code, msg)
				}
			default:
				t.Fatalf("answer %d %s; want 431 or the connection closed", resp.StatusCode(), resp.Body())
			}
			h.mustServe(t, secret)
		})
	}
	// Many headers that fit are all looked through: the caller in the
	// last one is found.
	var many strings.Builder
	for i := range 300 {
		fmt.Fprintf(&many, "X%d: y\r\n", i)
	}
	resp, err := h.rawExchange(t, []byte("GET /pbx/acme/route?key="+url.QueryEscape(secret)+" HTTP/1.1\r\nHost: x\r\n"+
		many.String()+"Caller-Id: 380671234567\r\n\r\n"))
	if err != nil || resp.StatusCode() != 200 || string(resp.Body()) != `{"number":"anna_sip"}` {
		t.Fatalf("300 headers and the caller: %v %v", err, resp)
	}
}

// routeReasons are the X-Route-Reason values of the HTTP contract.
var routeReasons = map[string]bool{"owner": true, "default_owner": true, "no_match": true, "unmapped_owner": true,
	"invalid_caller": true, "timeout": true, "unavailable": true}

// checkRouteAnswer fails unless status, reason and body are an answer the
// route endpoint may give a live call: never 5xx; 200 with a reason and a
// well-formed JSON body that forwards only for owner and default_owner; or
// 400 or 413 with an error naming the field. The format is the tenant's
// response_format, its response field "number".
func checkRouteAnswer(t testing.TB, format string, status int, reason string, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("route answered %d %q", status, body)
	}
	if !routeReasons[reason] {
		t.Fatalf("route answered %d without a known X-Route-Reason (%q): %q", status, reason, body)
	}
	if !utf8.Valid(body) {
		t.Fatalf("route answered invalid UTF-8: %q", body)
	}
	forwards := reason == "owner" || reason == "default_owner"
	switch {
	case status == 200 && format == domain.FormatText:
		if forwards != (len(body) > 0) || bytes.ContainsAny(body, " \t\r\n\"{}") {
			t.Fatalf("route answered text %q with reason %s", body, reason)
		}
	case status == 200:
		var v map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // a JSON-RPC id may have more digits than a float64
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("route answered 200 with %q, not a JSON object: %v", body, err)
		}
		if format == domain.FormatJSONRPC {
			if v["jsonrpc"] != "2.0" || len(v) != 3 {
				t.Fatalf("route answered 200 with %q, not a JSON-RPC result", body)
			}
			if _, ok := v["id"]; !ok {
				t.Fatalf("JSON-RPC answer %q without an id", body)
			}
			v, _ = v["result"].(map[string]any)
		}
		target, _ := v["number"].(string)
		if forwards && (len(v) != 1 || target == "") || !forwards && len(v) != 0 {
			t.Fatalf("route answered %q with reason %s", body, reason)
		}
	case status == 400 || status == 413:
		code, msg := errorBody(t, body)
		field, _, ok := strings.Cut(msg, ": ")
		if want := map[int]string{400: domain.EINVALID, 413: domain.ETOOLARGE}[status]; code != want ||
			!ok || field == "" || strings.ContainsAny(field, " \t\"") || len(msg) > 512 {
			t.Fatalf("route answered %d %q; want code %s and a message naming the field", status, body, want)
		}
	default:
		t.Fatalf("route answered %d %q to an authorized request", status, body)
	}
}

func TestRouteNeverAnswers5xx(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	key := "key=" + url.QueryEscape(secret)
	digits := strings.Repeat("7", 10000)
	deepArrays := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	deepObjects := strings.Repeat(`{"a":`, 5000) + `"380671234567"` + strings.Repeat("}", 5000)
	manyParams := strings.Repeat("x=1&", 20000) + "caller=380671234567"
	// The request line and headers must fit fasthttp's 4 KiB read buffer
	// (larger ones are answered 431, see TestHeaderFloods), so long values
	// go in the query only up to that.
	type hostile struct{ name, method, query, ctype, body, header string }
	cases := []hostile{
		{"NUL in the query", "GET", "caller=380%0067%001234567", "", "", ""},
		{"NUL alone", "GET", "caller=%00", "", "", ""},
		{"NUL bytes in a JSON body", "POST", "", "application/json", "{\"caller\":\"380671234567\u0000\"}", ""},
		{"escaped NUL in JSON", "POST", "", "application/json", `{"caller":"\u0000380671234567"}`, ""},
		{"NUL in a form body", "POST", "", "application/x-www-form-urlencoded", "caller=\x00380671234567", ""},
		{"3k-digit phone in the query", "GET", "caller=" + digits[:3000], "", "", ""},
		{"3k-digit phone with a plus", "GET", "caller=%2B" + digits[:3000], "", "", ""},
		{"10k-digit phone in a form", "POST", "", "application/x-www-form-urlencoded", "caller=" + digits, ""},
		{"10k-digit JSON number", "POST", "", "application/json", `{"caller":` + digits + `}`, ""},
		{"10k-digit JSON float", "POST", "", "application/json", `{"caller":` + digits + `.5e99999}`, ""},
		{"10k-digit JSON string", "POST", "", "application/json", `{"caller":"` + digits + `"}`, ""},
		{"3k-digit header", "GET", "", "", "", "Caller: " + digits[:3000]},
		{"deeply nested arrays", "POST", "", "application/json", deepArrays, ""},
		{"deeply nested objects", "POST", "", "application/json", deepObjects, ""},
		{"deep nesting inside a string", "POST", "", "application/json", `{"caller":"380671234567","s":"` + strings.Repeat("[{", 30000) + `"}`, ""},
		{"JSON-RPC batch array", "POST", "", "application/json", `[{"jsonrpc":"2.0","method":"route","params":{"caller":"380671234567"},"id":1}]`, ""},
		{"JSON-RPC params array", "POST", "", "application/json", `{"jsonrpc":"2.0","method":"route","params":["380671234567"],"id":1}`, ""},
		{"JSON-RPC id object", "POST", "", "application/json", `{"jsonrpc":"2.0","params":{"caller":"380671234567"},"id":{"a":1}}`, ""},
		{"JSON-RPC id huge number", "POST", "", "application/json", `{"jsonrpc":"2.0","params":{"caller":"380671234567"},"id":` + digits + `}`, ""},
		{"JSON array body", "POST", "", "application/json", `["380671234567"]`, ""},
		{"JSON scalar body", "POST", "", "application/json", `380671234567`, ""},
		{"truncated JSON", "POST", "", "application/json", `{"caller":"3806`, ""},
		{"JSON then garbage", "POST", "", "application/json", `{"caller":"380671234567"}}}`, ""},
		{"percent garbage", "GET", "caller=%%%ZZ%4%", "", "", ""},
		{"lone percent", "GET", "caller=%", "", "", ""},
		{"percent-encoded invalid UTF-8", "GET", "caller=%C0%AF%E2%82", "", "", ""},
		{"percent-encoded key", "GET", "%63aller=380671234567", "", "", ""},
		{"percent garbage in JSON", "POST", "", "application/json", `{"caller":"%ZZ%%%2"}`, ""},
		{"percent garbage in a header", "GET", "", "", "", "Caller: %FF%00%"},
		{"duplicate params, first empty", "GET", "caller=&caller=380671234567", "", "", ""},
		{"duplicate params, first garbage", "GET", "caller=abc&caller=380671234567", "", "", ""},
		{"duplicate JSON keys", "POST", "", "application/json", `{"caller":"x","caller":"380671234567"}`, ""},
		{"query and body disagree", "POST", "caller=380671234567", "application/json", `{"caller":"garbage"}`, ""},
		{"hundreds of query params", "GET", manyParams[len(manyParams)-2000:], "", "", ""},
		{"20000 form params", "POST", "", "application/x-www-form-urlencoded", manyParams, ""},
		{"keys without values", "GET", "caller&phone&from=", "", "", ""},
		{"only ampersands", "GET", strings.Repeat("&", 3000), "", "", ""},
		{"form body of ampersands", "POST", "", "application/x-www-form-urlencoded", strings.Repeat("&=", 30000), ""},
		{"body that is all spaces", "POST", "", "application/json", strings.Repeat(" ", 60000), ""},
		{"byte-order mark and JSON", "POST", "", "application/json", "\ufeff{\"caller\":\"380671234567\"}", ""},
		{"unknown method", "PROPFIND", "caller=380671234567", "", "", ""},
		{"HEAD", "HEAD", "caller=380671234567", "", "", ""},
		{"multipart body", "POST", "", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"caller\"\r\n\r\n380671234567\r\n--x--\r\n", ""},
		{"broken multipart body", "POST", "", "multipart/form-data; boundary=x", "--x\r\nContent-Disp", ""},
		{"gzip content encoding", "POST", "", "application/json", `{"caller":"380671234567"}`, "Content-Encoding: gzip"},
		{"letters for a phone", "GET", "caller=" + strings.Repeat("ab", 1500), "", "", ""},
		{"letters for a phone in JSON", "POST", "", "application/json", `{"caller":"` + strings.Repeat("ab", 30000) + `"}`, ""},
		{"phone with 500 separators", "GET", "caller=380" + strings.Repeat("-", 500) + "671234567", "", "", ""},
		{"emoji phone", "GET", "caller=" + url.QueryEscape("📞380671234567"), "", "", ""},
		{"fullwidth digits", "GET", "caller=" + url.QueryEscape("３８０６７１２３４５６７"), "", "", ""},
	}
	for _, format := range []string{domain.FormatJSON, domain.FormatJSONRPC} {
		h.mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"`+format+`"}`)
		for _, tc := range cases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				raw := tc.method + " /pbx/acme/route?" + key
				if tc.query != "" {
					raw += "&" + tc.query
				}
				raw += " HTTP/1.1\r\nHost: x\r\n"
				if tc.ctype != "" {
					raw += "Content-Type: " + tc.ctype + "\r\n"
				}
				if tc.header != "" {
					raw += tc.header + "\r\n"
				}
				raw += "Content-Length: " + strconv.Itoa(len(tc.body)) + "\r\n\r\n" + tc.body
				c := h.dial(t)
				_ = c.SetDeadline(time.Now().Add(failSafe))
				start := time.Now()
				if _, err := io.WriteString(c, raw); err != nil {
					t.Fatal(err)
				}
				var resp fasthttp.Response
				resp.SkipBody = tc.method == "HEAD"
				if err := resp.Read(bufio.NewReader(c)); err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if took := time.Since(start); took > 300*time.Millisecond+time.Second {
					t.Fatalf("answered after %v", took)
				}
				if tc.method == "HEAD" {
					if resp.StatusCode() != 200 || len(resp.Header.Peek("X-Route-Reason")) == 0 {
						t.Fatalf("HEAD: %d, reason %q", resp.StatusCode(), resp.Header.Peek("X-Route-Reason"))
					}
					return
				}
				checkRouteAnswer(t, format, resp.StatusCode(), string(resp.Header.Peek("X-Route-Reason")), resp.Body())
			})
		}
	}
	h.mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"json"}`)
	h.mustServe(t, secret)
}

// TestInvalidUTF8 sends invalid UTF-8 and NUL bytes to every endpoint that
// parses text, on both stores: PostgreSQL refuses both in text columns,
// which must not turn bad input into a 5xx.
func TestInvalidUTF8(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			h := newHardEnv(t, b.Open(t), 0)
			secret := h.acme("")
			key := "key=" + url.QueryEscape(secret)
			send := func(t *testing.T, method, target, ctype, body, header string) *fasthttp.Response {
				t.Helper()
				raw := method + " " + target + " HTTP/1.1\r\nHost: x\r\n"
				if ctype != "" {
					raw += "Content-Type: " + ctype + "\r\n"
				}
				if header != "" {
					raw += header + "\r\n"
				}
				resp, err := h.rawExchange(t, []byte(raw+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body))
				if err != nil {
					t.Fatalf("%s %q: no answer: %v", method, target, err)
				}
				return resp
			}

			t.Run("route", func(t *testing.T) {
				for _, tc := range []struct{ name, query, ctype, body, header string }{
					{"raw bytes in the query", "caller=\xff\xfe", "", "", ""},
					{"raw bytes before a phone", "caller=\xff380671234567", "", "", ""},
					{"encoded bytes in the query", "caller=%FF%FE%80", "", "", ""},
					{"overlong encoding", "caller=%C0%B0%C0%B0", "", "", ""},
					{"in a form body", "", "application/x-www-form-urlencoded", "caller=\xc3\x28\xa0\xa1", ""},
					{"in a JSON value", "", "application/json", "{\"caller\":\"\xed\xa0\x80\"}", ""},
					{"in a JSON key", "", "application/json", "{\"\xff\":1,\"caller\":\"380671234567\"}", ""},
					{"surrogate escape in JSON", "", "application/json", `{"caller":"\ud800"}`, ""},
					{"in a header", "", "", "", "Caller: \xff\xfe\xfd"},
					{"in a header name", "", "", "", "\xffCaller: 380671234567"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						resp := send(t, "POST", "/pbx/acme/route?"+key+"&"+tc.query, tc.ctype, tc.body, tc.header)
						if resp.StatusCode() == 400 && string(resp.Body()) == `{"error":{"code":"invalid","message":"request: cannot be parsed"}}` {
							return // fasthttp refused the request line or a header: allowed
						}
						checkRouteAnswer(t, domain.FormatJSON, resp.StatusCode(), string(resp.Header.Peek("X-Route-Reason")), resp.Body())
					})
				}
				// A JSON-RPC id with invalid UTF-8 is echoed as valid JSON.
				h.as(t).mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"jsonrpc"}`)
				defer h.as(t).mustAdmin(200, "PATCH", "tenants/acme", `{"response_format":"json"}`)
				resp := send(t, "POST", "/pbx/acme/route?"+key, "application/json", "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\x00\",\"params\":{\"caller\":\"380671234567\"}}", "")
				if got := string(resp.Body()); resp.StatusCode() != 200 || got != `{"jsonrpc":"2.0","id":"\ufffd\u0000","result":{"number":"anna_sip"}}` {
					t.Fatalf("JSON-RPC id with invalid UTF-8: %d %s", resp.StatusCode(), got)
				}
			})

			t.Run("events", func(t *testing.T) {
				for _, tc := range []struct{ name, query, ctype, body string }{
					// Other fields than the call id and the kind are made
					// valid text and the event is kept.
					{"in JSON values", "", "application/json", "{\"event\":\"call_end\",\"uniqueid\":\"u1\",\"caller\":\"380671234567\",\"employee_fio\":\"\xc3\x28\"}"},
					{"in a form", "", "application/x-www-form-urlencoded", "event=call_end&uniqueid=u2&employee_fio=%FF%FE&x\xff=\xff"},
					{"in the query", "event=call_end&uniqueid=u3&caller=%C0%AF", "", ""},
					{"NUL in a key and a value", "", "application/json", `{"event":"call_end","uniqueid":"u5","a\u0000b":"c\u0000d"}`},
					{"NUL in a form", "", "application/x-www-form-urlencoded", "event=call_end&uniqueid=u6&caller=%00"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						resp := send(t, "POST", "/pbx/acme/events?"+key+"&"+tc.query, tc.ctype, tc.body, "")
						if resp.StatusCode() != 200 {
							t.Fatalf("%d %s, want 200", resp.StatusCode(), resp.Body())
						}
						var ans struct{ ID string }
						if err := json.Unmarshal(resp.Body(), &ans); err != nil || ans.ID == "" {
							t.Fatalf("answer %s", resp.Body())
						}
						ev, err := h.st.Event(context.Background(), "acme", ans.ID)
						if err != nil {
							t.Fatal(err)
						}
						for k, v := range ev.Fields {
							if !utf8.ValidString(k) || !utf8.ValidString(v) || strings.ContainsRune(k+v, 0) {
								t.Errorf("stored field %q = %q: want valid UTF-8 without NUL", k, v)
							}
						}
					})
				}
				for _, tc := range []struct{ name, query, ctype, body, field string }{
					{"an event kind of raw bytes", "", "application/json", "{\"event\":\"\xff\xfe\",\"uniqueid\":\"u7\"}", "event"},
					// A call id is never rewritten: "u1\xff" and "u1\xfe"
					// would become one call.
					{"a call id with raw bytes in JSON", "", "application/json", "{\"event\":\"call_end\",\"uniqueid\":\"u1\xff\",\"caller\":\"380671234567\"}", "uniqueid"},
					{"a call id with encoded bytes in the query", "event=call_end&uniqueid=u3%FF", "", "", "uniqueid"},
					{"NUL in the call id", "", "application/json", `{"event":"call_end","uniqueid":"u4\u0000","caller":"380671234567"}`, "uniqueid"},
					{"NUL in a form's call id", "", "application/x-www-form-urlencoded", "event=call_end&uniqueid=u6%00", "uniqueid"},
					{"invalid JSON with raw bytes", "", "application/json", "{\"event\":\xff", "body"},
					{"content type of raw bytes", "", "application/json; charset=\xff\xfe", "{\"uniqueid\":\"u8\"}", "event"},
					{"a NUL key too long", "", "application/json", `{"event":"call_end","uniqueid":"u9","` + strings.Repeat("\\u0000", 200) + `":"x"}`, "body"},
					{"a NUL key with a long value", "", "application/json", `{"event":"call_end","uniqueid":"u10","\u0000":"` + strings.Repeat("v", 17<<10) + `"}`, ""},
				} {
					t.Run(tc.name, func(t *testing.T) {
						resp := send(t, "POST", "/pbx/acme/events?"+key+"&"+tc.query, tc.ctype, tc.body, "")
						if resp.StatusCode() != 400 {
							t.Fatalf("%d %s, want 400", resp.StatusCode(), resp.Body())
						}
						code, msg := errorBody(t, resp.Body())
						if code != domain.EINVALID || tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
							t.Fatalf("error %s %q, want invalid naming %q", code, msg, tc.field)
						}
						rej, err := h.st.ListRejected(context.Background(), "acme", 1)
						if err != nil || len(rej) != 1 || string(rej[0].Body) != tc.body[:min(len(tc.body), events.MaxRejectedBody)] || rej[0].Reason != msg {
							t.Fatalf("the rejected body is not kept (its first %d bytes): %v %d rows", events.MaxRejectedBody, err, len(rej))
						}
					})
				}
			})

			t.Run("import", func(t *testing.T) {
				csv := "phone,owner_crm_user_id,entity_kind,entity_id,name\n" +
					"0501234561,101,lead,L61,\xff\xfe name\n" + // line 2
					"0501234562,101,lead,L\x0062,Name\n" + // line 3
					"0501234563,101,lead,L63,Na\x00me\n" + // line 4
					"0501234564\xff,101,lead,L64,ok\n" + // line 5
					"0501234565,10\xff1,lead,L65,ok\n" + // line 6
					"0501234566,101,le\xffad,L66,ok\n" + // line 7
					"0501234567,101,lead,L67,ok\n" // line 8
				resp := send(t, "POST", "/admin/v1/tenants/acme/contacts/import?format=csv", "text/csv", csv, "Authorization: Bearer "+testAdminToken)
				if resp.StatusCode() != 200 {
					t.Fatalf("csv import: %d %s, want 200", resp.StatusCode(), resp.Body())
				}
				checkImport(t, resp, 7, map[int]string{2: "name", 3: "entity_id", 4: "name", 5: "phone", 6: "owner_crm_user_id", 7: "entity_kind"})
				jsonl := `{"phone":"0501234571","owner_crm_user_id":"101","name":"a\u0000b"}` + "\n" +
					"{\"phone\":\"0501234572\",\"owner_crm_user_id\":\"101\",\"name\":\"\xff\"}\n" + // read as U+FFFD
					`{"phone":"0501234573","owner_crm_user_id":"101","entity_id":"\u0000"}` + "\n" +
					`{"phone":"0501234574","owner_crm_user_id":"101","name":"\ud800"}` + "\n" // read as U+FFFD
				resp = send(t, "POST", "/admin/v1/tenants/acme/contacts/import", "application/x-ndjson", jsonl, "Authorization: Bearer "+testAdminToken)
				checkImport(t, resp, 4, map[int]string{1: "name", 3: "entity_id"})
				for caller, want := range map[string]string{"380501234567": "anna_sip", "380501234572": "anna_sip", "380501234561": ""} {
					if a := h.as(t).route(secret, "caller="+caller); a.status != 200 || !strings.Contains(a.body, want) || want == "" && a.body != "{}" {
						t.Errorf("caller %s after the import: %d %s, want %q", caller, a.status, a.body, want)
					}
				}
			})
			h.mustServe(t, secret)
		})
	}
}

// checkImport checks an import answered 200 with rows data rows, rejected
// exactly on the lines of want, each for the field want names.
func checkImport(t *testing.T, resp *fasthttp.Response, rows int, want map[int]string) {
	t.Helper()
	var rep admin.ImportReport
	if err := json.Unmarshal(resp.Body(), &rep); resp.StatusCode() != 200 || err != nil {
		t.Fatalf("import: %d %s, want 200 with a report", resp.StatusCode(), resp.Body())
	}
	if rep.Rows != rows || rep.Rejected != len(want) || rep.Accepted != rows-len(want) || len(rep.Errors) != len(want) {
		t.Fatalf("report %+v: want %d rows, %d rejected", rep, rows, len(want))
	}
	for _, e := range rep.Errors {
		if field, ok := want[e.Line]; !ok || !strings.HasPrefix(e.Reason, field+":") {
			t.Errorf("row error %+v: want the rows %v rejected naming those fields", e, want)
		}
	}
}

// TestThousandsOfTenants routes one phone for 5,000 tenants, each of which
// indexes it for its own manager: every answer must be the tenant's own,
// and no tenant's key opens another's endpoint. It runs on PostgreSQL, which
// creates the tenants three times faster than SQLite under the race
// detector, and on SQLite only when PostgreSQL is not there.
func TestThousandsOfTenants(t *testing.T) {
	backends := storetest.Backends()
	ran := false
	t.Run(backends[1].Name, func(t *testing.T) {
		st := backends[1].Open(t)
		ran = true
		testThousandsOfTenants(t, st)
	})
	if !ran {
		t.Run(backends[0].Name, func(t *testing.T) { testThousandsOfTenants(t, backends[0].Open(t)) })
	}
}

func testThousandsOfTenants(t *testing.T, st store.Store) {
	const n = 5000
	const caller = "380671234567"
	ctx := context.Background()
	now := time.Now().UTC()
	settings := domain.DefaultSettings()
	settings.DefaultCountry = "UA"
	secrets := make([]string, n)
	entries := make([]domain.IndexEntry, n)
	for i := range n {
		id := fmt.Sprintf("t%04d", i)
		secrets[i] = rand.Text()
		entries[i] = domain.IndexEntry{TenantID: id, Phone: caller, Suffix: phone.Suffix(caller),
			Kind: domain.KindLead, EntityID: "L" + id, Open: true, OwnerID: "u" + id, UpdatedAt: now}
	}
	// Created concurrently, as a PostgreSQL pool can take them.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				id := entries[i].TenantID
				if err := st.CreateTenant(ctx, domain.Tenant{ID: id, Name: id, Settings: settings,
					SecretHash: tenant.HashSecret(secrets[i]), CreatedAt: now, UpdatedAt: now}); err != nil {
					errs <- err
					return
				}
				if err := st.PutEmployee(ctx, domain.Employee{TenantID: id, CRMUserID: "u" + id, SIP: "sip_" + id, UpdatedAt: now}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := st.UpsertIndex(ctx, entries); err != nil {
		t.Fatal(err)
	}
	h := newHardEnv(t, st, 0)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	get := func(id, secret string) (int, string, error) {
		resp, err := client.Get(h.url + "/pbx/" + id + "/route?caller=" + caller + "&key=" + url.QueryEscape(secret))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	errs = make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				id := fmt.Sprintf("t%04d", i)
				if status, body, err := get(id, secrets[i]); err != nil || status != 200 || body != `{"number":"sip_`+id+`"}` {
					errs <- fmt.Errorf("tenant %s: %d %q %v; want its own manager", id, status, body, err)
					return
				}
				if status, body, err := get(id, secrets[(i+1)%n]); err != nil || status != 401 {
					errs <- fmt.Errorf("tenant %s with the next tenant's key: %d %q %v; want 401", id, status, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(h.mustAdmin(200, "GET", "tenants", "").body), &list); err != nil || len(list) != n {
		t.Fatalf("admin lists %d tenants (%v), want %d", len(list), err, n)
	}
}

// TestAdminRefusesNULAndInvalidUTF8 shows text PostgreSQL cannot store is
// refused with 400 naming where it was, never a 500 from the store.
func TestAdminRefusesNULAndInvalidUTF8(t *testing.T) {
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			h := newHardEnv(t, be.Open(t), 0)
			e := h.as(t)
			e.acme("")
			for _, c := range []struct{ method, path, body, want string }{
				{"POST", "/admin/v1/tenants", `{"id":"nul","name":"a\u0000b"}`, "body: NUL"},
				{"PUT", "/admin/v1/tenants/acme/employees/501", `{"sip":"x\u0000"}`, "body: NUL"},
				{"GET", "/admin/v1/tenants/ac%00me", "", "path:"},
				{"GET", "/admin/v1/tenants/acme/events/%ff%fe", "", "path:"},
			} {
				a := e.do(c.method, c.path, "application/json", c.body, map[string]string{"Authorization": "Bearer " + testAdminToken})
				if a.status != 400 || !strings.Contains(a.body, c.want) {
					t.Errorf("%s %s: %d %s, want 400 naming %q", c.method, c.path, a.status, a.body, c.want)
				}
			}
		})
	}
}
