package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// The HTTP-level fuzz targets send what a client could put on the wire
// through the fasthttp server FastHTTP makes, its ErrorHandler and the
// handlers, over a store that works, and hold the answers to the HTTP
// contract. They run on SQLite; CALLROUTER_FUZZ_STORE=postgres runs them on
// the test PostgreSQL, which refuses more text than SQLite does.

// fuzzTenants are the tenants of a fuzzEnv, one per response format.
var fuzzTenants = []struct{ id, format string }{
	{"acme", domain.FormatJSON},
	{"acme_text", domain.FormatText},
	{"acme_rpc", domain.FormatJSONRPC},
}

// fuzzAnswerWithin bounds a route answer: the route budget (300 ms) plus a
// second of slack catches hangs without judging speed. The other endpoints
// write to the store and get fuzzStoreWithin.
const (
	fuzzAnswerWithin = 300*time.Millisecond + time.Second
	fuzzStoreWithin  = 10 * time.Second
)

// fuzzEnv is a Server wired as in production over a fresh store, behind the
// fasthttp server FastHTTP makes, on an in-memory listener.
type fuzzEnv struct {
	st      store.Store
	ln      *fasthttputil.InmemoryListener
	secrets map[string]string // webhook secret by tenant id
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	ctx := context.Background()
	backend := storetest.Backends()[0]
	if os.Getenv("CALLROUTER_FUZZ_STORE") == "postgres" {
		backend = storetest.Backends()[1]
	}
	st := backend.Open(tb)
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		tb.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 14, NegativeTTL: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	ingest := events.NewIngest(st, &recordingQueue{}, nil, 1)
	ingest.LimitRejected(rate.Inf, 0) // every rejected input is checked for being kept
	tb.Cleanup(ingest.Close)
	a := admin.New(st, reg, c)
	secrets := map[string]string{}
	for _, ft := range fuzzTenants {
		created, err := a.CreateTenant(ctx, "fuzz", admin.NewTenant{ID: ft.id, Settings: domain.Settings{DefaultCountry: "UA", ResponseFormat: ft.format}})
		if err != nil {
			tb.Fatal(err)
		}
		secrets[ft.id] = created.WebhookSecret
		for user, in := range map[string]admin.EmployeeInput{"101": {SIP: "anna_sip"}, "102": {Phone: "050 222 22 22"}, "900": {SIP: "boss_sip"}} {
			if _, err := a.PutEmployee(ctx, "fuzz", ft.id, user, in); err != nil {
				tb.Fatal(err)
			}
		}
		if _, err := a.SetDefaultOwner(ctx, "fuzz", ft.id, admin.DefaultOwnerInput{CRMUserID: new("900")}); err != nil {
			tb.Fatal(err)
		}
		if _, err := a.Import(ctx, "fuzz", ft.id, admin.FormatCSV, "", strings.NewReader("phone,owner_crm_user_id,entity_kind,entity_id\n"+
			"067 123 45 67,101,lead,L1\n+380 93 765 43 21,102,contact,C2\n380991112233,777,contact,C3\n")); err != nil {
			tb.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte(testAdminToken))
	srv := New(Config{Tenants: reg, Router: lookup.New(c, st, time.Second), Admin: a, Webhooks: &recordingHooks{},
		Events: ingest, AdminTokenHash: sum[:], Log: zap.NewNop(),
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second})
	hs := srv.FastHTTP()
	ln := fasthttputil.NewInmemoryListener()
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	tb.Cleanup(func() { hs.Shutdown() })
	return &fuzzEnv{st: st, ln: ln, secrets: secrets}
}

// fuzzAnswer is one answer read off the connection.
type fuzzAnswer struct {
	status      int
	reason      string // X-Route-Reason
	contentType string
	body        []byte
	took        time.Duration
	head        bool // the request was HEAD: no body came
}

// exchange sends raw on a new connection and reads the answer. The test
// fails when none comes within the time given.
func (fe *fuzzEnv) exchange(t *testing.T, raw []byte, head bool, within time.Duration) fuzzAnswer {
	t.Helper()
	c, err := fe.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(within))
	start := time.Now()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	resp.SkipBody = head
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("no answer within %v: %v\nrequest: %.300q", within, err, raw)
	}
	return fuzzAnswer{status: resp.StatusCode(), reason: string(resp.Header.Peek("X-Route-Reason")),
		contentType: string(resp.Header.ContentType()), body: append([]byte(nil), resp.Body()...), took: time.Since(start), head: head}
}

// readErrors are the answers of serveReadError to a request fasthttp could
// not read, by status.
var readErrors = map[int]string{
	400: `{"error":{"code":"invalid","message":"request: cannot be parsed"}}`,
	413: `{"error":{"code":"too_large","message":"body: larger than the server accepts"}}`,
	431: `{"error":{"code":"too_large","message":"headers: larger than the server accepts"}}`,
}

// readError reports whether a is serveReadError's answer: the request never
// reached a handler.
func (a fuzzAnswer) readError() bool {
	want, ok := readErrors[a.status]
	return ok && a.reason == "" && (string(a.body) == want || a.head && len(a.body) == 0)
}

// fuzzMethod keeps a fuzzed method that is a token of letters, else uses
// POST, so the request line stays a request line.
func fuzzMethod(m string) string {
	if m == "" || len(m) > 16 {
		return fasthttp.MethodPost
	}
	for i := 0; i < len(m); i++ {
		if c := m[i] | 0x20; c < 'a' || c > 'z' {
			return fasthttp.MethodPost
		}
	}
	return m
}

// fuzzTarget escapes what would end the request target (controls, space,
// DEL); every other byte, invalid UTF-8 included, goes as is.
func fuzzTarget(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fuzzRaw builds a request. header holds lines separated by '\n'; lines that
// would change the framing (Content-Length, Transfer-Encoding, Expect) are
// dropped, as is every CR, so the body is always the one sent, and so are
// lines starting with a space or tab, which fold into the line before (the
// webhook secret's, say).
func fuzzRaw(method, target, contentType, header string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: pbx.example\r\nConnection: close\r\n")
	if ct := strings.NewReplacer("\r", "", "\n", "").Replace(contentType); ct != "" {
		b.WriteString("Content-Type: " + ct + "\r\n")
	}
	for line := range strings.SplitSeq(strings.ReplaceAll(header, "\r", ""), "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "", "content-length", "transfer-encoding", "expect":
			continue
		}
		b.WriteString(line + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// Key modes of a fuzzed request: where the webhook secret goes.
const (
	keyInQuery = iota
	keyInHeader
	keyWrong
	keyNone
)

// keyedTarget returns path with the query, the secret placed by mode.
func keyedTarget(path, secret string, mode int, query string) (target, header string) {
	q := fuzzTarget(query)
	switch mode {
	case keyInQuery:
		return path + "?key=" + url.QueryEscape(secret) + "&" + q, ""
	case keyInHeader:
		return path + "?" + q, "X-Router-Key: " + secret
	case keyWrong:
		return path + "?key=wrong-" + url.QueryEscape(secret[:4]) + "&" + q, ""
	default:
		return path + "?" + q, ""
	}
}

func FuzzRouteHTTP(f *testing.F) {
	f.Add("GET", uint8(0), "caller=380671234567", "", "", []byte(nil))
	f.Add("POST", uint8(2), "", "application/json", "", []byte(`{"jsonrpc":"2.0","method":"route","params":{"caller":"380671234567"},"id":7}`))
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, method string, sel uint8, query, contentType, header string, body []byte) {
		method = fuzzMethod(method)
		id, format := "nobody", ""
		if i := int(sel & 3); i < len(fuzzTenants) {
			id, format = fuzzTenants[i].id, fuzzTenants[i].format
		}
		secret := fe.secrets["acme"]
		if s, ok := fe.secrets[id]; ok {
			secret = s
		}
		mode := int(sel>>2) & 3
		target, keyHeader := keyedTarget("/pbx/"+id+"/route", secret, mode, query)
		a := fe.exchange(t, fuzzRaw(method, target, contentType, keyHeader+"\n"+header, body), method == fasthttp.MethodHead, fuzzAnswerWithin)
		if a.status >= 500 {
			t.Fatalf("route answered %d %q", a.status, a.body)
		}
		if a.took > fuzzAnswerWithin {
			t.Fatalf("route answered after %v", a.took)
		}
		if a.readError() {
			return
		}
		if a.status == 401 || a.status == 404 {
			// Not a routing decision: no reason, least of all "unavailable".
			if a.reason != "" {
				t.Fatalf("route answered %d with X-Route-Reason %q", a.status, a.reason)
			}
		} else if !routeReasons[a.reason] {
			t.Fatalf("route answered %d without a known X-Route-Reason (%q): %q", a.status, a.reason, a.body)
		}
		switch {
		case format == "":
			if a.status != 404 {
				t.Fatalf("unknown tenant: %d %q, want 404", a.status, a.body)
			}
		case mode >= keyWrong || mode == keyInHeader && strings.Contains(query, "key"):
			// A key in the fuzzed query comes before the header's.
			if a.status != 401 && mode != keyInHeader {
				t.Fatalf("wrong or missing key: %d %q, want 401", a.status, a.body)
			}
			if a.status != 401 && a.status != 200 && a.status != 400 && a.status != 413 {
				t.Fatalf("key in the header and the query: %d %q", a.status, a.body)
			}
		case method == fasthttp.MethodHead:
			if a.status != 200 && a.status != 400 && a.status != 413 {
				t.Fatalf("HEAD answered %d", a.status)
			}
		default:
			checkRouteAnswer(t, format, a.status, a.reason, a.body)
		}
	})
}

func FuzzEventsHTTP(f *testing.F) {
	f.Add("POST", uint8(0), "event=call_end", "application/json", []byte(`{"uniqueid":"1700000000.1","caller":"380671234567","disposition":"ANSWERED"}`))
	f.Add("POST", uint8(0), "", "application/x-www-form-urlencoded", []byte("event=call_start&uniqueid=1.2&caller=380671234567"))
	fe := newFuzzEnv(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, method string, sel uint8, query, contentType string, body []byte) {
		method = fuzzMethod(method)
		id := "acme"
		if sel&1 == 1 {
			id = "nobody"
		}
		mode := int(sel>>1) & 3
		target, keyHeader := keyedTarget("/pbx/"+id+"/events", fe.secrets["acme"], mode, query)
		raw := fuzzRaw(method, target, contentType, keyHeader, body)
		head := method == fasthttp.MethodHead
		a := fe.exchange(t, raw, head, fuzzStoreWithin)
		if a.status >= 500 {
			t.Fatalf("events answered %d %q", a.status, a.body)
		}
		if a.readError() {
			return
		}
		allowed := method == fasthttp.MethodPost || method == fasthttp.MethodPut || method == fasthttp.MethodGet
		switch {
		case id == "nobody":
			if a.status != 404 {
				t.Fatalf("unknown tenant: %d %q, want 404", a.status, a.body)
			}
		case mode >= keyWrong || mode == keyInHeader && strings.Contains(query, "key"):
			if a.status != 401 && mode != keyInHeader {
				t.Fatalf("wrong or missing key: %d %q, want 401", a.status, a.body)
			}
		case !allowed:
			if a.status != 405 {
				t.Fatalf("%s: %d %q, want 405", method, a.status, a.body)
			}
		case len(body) > maxAdminBodyBytes:
			if a.status != 413 {
				t.Fatalf("a body of %d bytes: %d, want 413", len(body), a.status)
			}
		case a.status == 200:
			var ans struct{ ID string }
			if err := json.Unmarshal(a.body, &ans); err != nil || len(ans.ID) != 32 {
				t.Fatalf("200 %q: want {\"id\": 32 hex digits}", a.body)
			}
			if _, err := hex.DecodeString(ans.ID); err != nil {
				t.Fatalf("id %q is not hex", ans.ID)
			}
			ev, err := fe.st.Event(ctx, "acme", ans.ID)
			if _, known := domain.ParseEventKind(string(ev.Kind)); err != nil || ev.UniqueID == "" || !known {
				t.Fatalf("acknowledged event %s: %+v %v", ans.ID, ev, err)
			}
			again := fe.exchange(t, raw, head, fuzzStoreWithin)
			if again.status != 200 || !bytes.Equal(again.body, a.body) {
				t.Fatalf("the same event again: %d %q, want the same id %s", again.status, again.body, ans.ID)
			}
		case a.status == 400:
			code, msg := errorBody(t, a.body)
			field, _, ok := strings.Cut(msg, ": ")
			if code != domain.EINVALID || !ok || field == "" || len(msg) > 1024 {
				t.Fatalf("400 %q: want an invalid error naming the field", a.body)
			}
			rej, err := fe.st.ListRejected(ctx, "acme", 1)
			if err != nil || len(rej) != 1 || rej[0].Reason != msg {
				t.Fatalf("the rejected body is not kept with its reason %q: %+v %v", msg, rej, err)
			}
			if want := body[:min(len(body), events.MaxRejectedBody)]; !bytes.Equal(rej[0].Body, want) {
				t.Fatalf("kept body %.100q, want %.100q", rej[0].Body, want)
			}
		default:
			t.Fatalf("events answered %d %q", a.status, a.body)
		}
	})
}

// importReasons start every row error of an import report: the field, or
// the kind of failure of a line that could not be read.
var importReasons = []string{"phone:", "owner_crm_user_id:", "entity_kind:", "entity_id:", "name:", "open:",
	"csv:", "invalid JSON:", "line longer than"}

func FuzzImportHTTP(f *testing.F) {
	f.Add("csv", "text/csv", []byte("phone,owner_crm_user_id,entity_kind,entity_id,name,open\n0501234501,101,lead,L10,ok,true\n"))
	f.Add("", "application/x-ndjson", []byte(`{"phone":"0501234507","owner_crm_user_id":101,"entity_kind":"deal","entity_id":"D16"}`+"\n"))
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, format, contentType string, body []byte) {
		target := "/admin/v1/tenants/acme/contacts/import?format=" + url.QueryEscape(format)
		a := fe.exchange(t, fuzzRaw(fasthttp.MethodPost, target, contentType, "Authorization: Bearer "+testAdminToken, body), false, fuzzStoreWithin)
		if a.status >= 500 {
			t.Fatalf("import answered %d %q", a.status, a.body)
		}
		if a.readError() {
			return
		}
		switch a.status {
		case 200:
			var rep admin.ImportReport
			dec := json.NewDecoder(bytes.NewReader(a.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rep); err != nil {
				t.Fatalf("report %q: %v", a.body, err)
			}
			if rep.Format != admin.FormatCSV && rep.Format != admin.FormatJSONL || rep.Accepted < 0 || rep.Rejected < 0 ||
				rep.Accepted+rep.Rejected != rep.Rows || len(rep.Errors) != min(rep.Rejected, 1000) ||
				rep.ErrorsTruncated != (rep.Rejected > 1000) {
				t.Fatalf("report does not add up: %+v", rep)
			}
			for _, e := range rep.Errors {
				if e.Line < 0 || !hasAnyPrefix(e.Reason, importReasons) && !strings.Contains(e.Reason, ": must be a ") {
					t.Fatalf("row error %+v: want its line and a reason naming the field", e)
				}
			}
		case 400:
			code, msg := errorBody(t, a.body)
			if code != domain.EINVALID || !hasAnyPrefix(msg, []string{"body:", "csv header:", "format:"}) {
				t.Fatalf("400 %q: want an invalid error naming the field", a.body)
			}
		default:
			t.Fatalf("import answered %d %q", a.status, a.body)
		}
	})
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
