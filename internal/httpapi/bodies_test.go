package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

// bigBody is what an attacker announces: 64 MiB.
const bigBody = 64 << 20

// TestBodiesNotReadBeforeTheyAreWanted sends requests announcing a 64 MiB
// body and then only its first 16 KiB: each is answered, and its
// connection closed, without the server waiting for the rest. A server that
// buffered bodies before its handlers ran (fasthttp's default) would wait
// for all 64 MiB and the answer would never come.
func TestBodiesNotReadBeforeTheyAreWanted(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	key := "key=" + url.QueryEscape(secret)
	for _, tc := range []struct {
		name, target, header string
		status               int
	}{
		{"unknown path", "/nothing/here", "", 404},
		{"unknown tenant's route", "/pbx/nobody/route?" + key, "", 404},
		{"unknown tenant's events", "/pbx/nobody/events?" + key, "", 404},
		{"unknown tenant's CRM webhook", "/crm/nobody/webhook?" + key, "", 404},
		{"route without the key", "/pbx/acme/route", "", 401},
		{"events with a wrong key", "/pbx/acme/events?key=wrong", "", 401},
		{"admin without a token", "/admin/v1/tenants/acme/contacts/import", "", 401},
		{"route with the key", "/pbx/acme/route?" + key, "", 413},
		{"events with the key", "/pbx/acme/events?" + key, "", 413},
		{"CRM webhook with the key", "/crm/acme/webhook?" + key, "", 413},
		{"admin JSON", "/admin/v1/tenants/acme/employees/103", "Authorization: Bearer " + testAdminToken, 413},
		{"import over its limit", "/admin/v1/tenants/acme/contacts/import", "Authorization: Bearer " + testAdminToken, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.Contains(tc.target, "employees") {
				method = "PUT"
			}
			raw := method + " " + tc.target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			if tc.header != "" {
				raw += tc.header + "\r\n"
			}
			size := bigBody
			if strings.Contains(tc.target, "import") {
				size = MaxBodyBytes + 1
			}
			raw += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n" + strings.Repeat(" ", 16<<10)
			c := h.dial(t)
			_ = c.SetDeadline(time.Now().Add(failSafe))
			if _, err := c.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			var resp fasthttp.Response
			if err := resp.Read(br); err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			if resp.StatusCode() != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode(), resp.Body(), tc.status)
			}
			if !resp.ConnectionClose() {
				t.Fatal("the answer keeps the connection open; the unread body would be read as the next request")
			}
			if rest, err := io.ReadAll(br); len(rest) > 0 || err != nil && !isReset(err) {
				t.Fatalf("after the answer: %q %v; want the connection closed", rest, err)
			}
		})
	}
	h.mustServe(t, secret)
}

// chunked encodes body as one chunk of a chunked request body.
func chunked(body string) string {
	return strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
}

// TestChunkedBodiesAreBounded checks that a body without Content-Length
// (chunked) is read only up to its endpoint's limit: one at the limit is
// served, one byte more is 413 with the connection closed.
func TestChunkedBodiesAreBounded(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	key := "key=" + url.QueryEscape(secret)
	pad := func(body string, n int) string { return body + strings.Repeat(" ", n-len(body)) }
	for _, tc := range []struct {
		name, target, body, want string
		limit                    int
	}{
		{"route", "/pbx/acme/route?" + key, `{"caller":"380671234567"}`, `{"number":"anna_sip"}`, maxRouteBody},
		{"events", "/pbx/acme/events?" + key, `{"event":"call_end","uniqueid":"chunk.1","caller":"380671234567"}`, `{"id":`, maxEventBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send := func(body string) *fasthttp.Response {
				t.Helper()
				resp, err := h.rawExchange(t, []byte("POST "+tc.target+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
					"Transfer-Encoding: chunked\r\n\r\n"+chunked(body)))
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				return resp
			}
			if resp := send(pad(tc.body, tc.limit)); resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Body()), tc.want) {
				t.Fatalf("a chunked body of the limit: %d %s, want 200 %s…", resp.StatusCode(), resp.Body(), tc.want)
			}
			resp := send(pad(tc.body, tc.limit+1))
			if resp.StatusCode() != 413 || !resp.ConnectionClose() {
				t.Fatalf("a chunked body over the limit: %d %s (close %v), want 413 closing", resp.StatusCode(), resp.Body(), resp.ConnectionClose())
			}
			if code, msg := errorBody(t, resp.Body()); code != domain.ETOOLARGE || msg != "body: larger than "+sizeText(tc.limit) {
				t.Fatalf("413 error %s %q", code, msg)
			}
		})
	}
	h.mustServe(t, secret)
}

// TestAmbiguousFramingRefused sends, on raw connections, requests whose
// body a proxy could frame differently than the server, each followed by a
// smuggled second request. Each is answered 400 once, and the connection is
// closed: the smuggled request is never answered.
func TestAmbiguousFramingRefused(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	secret := h.acme("")
	target := "/pbx/acme/route?key=" + url.QueryEscape(secret)
	smuggled := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, proto, headers, body, want string }{
		{"Content-Length and Transfer-Encoding", "HTTP/1.1", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", "Transfer-Encoding: sent with Content-Length"},
		{"Transfer-Encoding and Content-Length", "HTTP/1.1", "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n", "0\r\n\r\n", "Transfer-Encoding: sent with Content-Length"},
		{"Transfer-Encoding identity with a length", "HTTP/1.1", "Transfer-Encoding: identity\r\nContent-Length: 5\r\n", "0\r\n\r\n", "Transfer-Encoding: only chunked"},
		{"Transfer-Encoding identity", "HTTP/1.1", "Transfer-Encoding: identity\r\n", "", "Transfer-Encoding: only chunked"},
		{"Transfer-Encoding gzip, chunked", "HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n", ""},
		{"Transfer-Encoding twice", "HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", ""},
		{"Content-Length twice, differing", "HTTP/1.1", "Content-Length: 5\r\nContent-Length: 0\r\n", "", ""},
		{"Content-Length twice, equal", "HTTP/1.1", "Content-Length: 0\r\nContent-Length: 0\r\n", "", ""},
		{"Content-Length with a sign", "HTTP/1.1", "Content-Length: +0\r\n", "", ""},
		{"Content-Length list", "HTTP/1.1", "Content-Length: 0, 5\r\n", "", ""},
		{"chunked in HTTP/1.0", "HTTP/1.0", "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n", "0\r\n\r\n", ""},
		{"space before the colon", "HTTP/1.1", "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(t)
			_ = c.SetDeadline(time.Now().Add(failSafe))
			raw := "POST " + target + " " + tc.proto + "\r\nHost: x\r\nContent-Type: application/json\r\n" + tc.headers + "\r\n" + tc.body + smuggled
			if _, err := c.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Fatalf("read: %v; want the connection closed after one answer", err)
			}
			br := bufio.NewReader(bytes.NewReader(all))
			var resp fasthttp.Response
			if err := resp.Read(br); err != nil {
				t.Fatalf("no answer (%v): %q", err, all)
			}
			if resp.StatusCode() != 400 {
				t.Fatalf("%d %s, want 400", resp.StatusCode(), resp.Body())
			}
			code, msg := errorBody(t, resp.Body())
			if code != domain.EINVALID || tc.want != "" && !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("error %s %q, want invalid %q", code, msg, tc.want)
			}
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				t.Fatalf("more after the 400 (the smuggled request was answered): %q", rest)
			}
		})
	}
	h.mustServe(t, secret)
}
