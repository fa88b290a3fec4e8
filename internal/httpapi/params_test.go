package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"github.com/callrouter/callrouter/internal/tenant"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

const routeURI = "/pbx/acme/route?key=s3cret"

var allMethods = []string{
	fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete,
}

// routeReq describes a request the way the PBX would send it.
type routeReq struct {
	uri         string // default routeURI
	contentType string
	body        string
	headers     [][2]string
}

func (s routeReq) build(method string) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod(method)
	uri := s.uri
	if uri == "" {
		uri = routeURI
	}
	req.SetRequestURI(uri)
	if s.contentType != "" {
		req.Header.SetContentType(s.contentType)
	}
	for _, h := range s.headers {
		req.Header.Set(h[0], h[1])
	}
	if s.body != "" {
		req.SetBodyString(s.body)
	}
	return req
}

// routeWant is the expected outcome; err is a prefix of the error message.
type routeWant struct {
	caller  string
	field   string
	jsonrpc bool
	rpcID   string
	err     string
}

func checkRoute(t *testing.T, rr *routeRequest, err error, want routeWant) {
	t.Helper()
	if want.err != "" {
		var de *domain.Error
		if !errors.As(err, &de) {
			t.Fatalf("err = %v, want *domain.Error %q", err, want.err)
		}
		if de.Code != domain.EINVALID || !strings.HasPrefix(de.Message, want.err) {
			t.Fatalf("err = %s %q, want invalid %q…", de.Code, de.Message, want.err)
		}
	} else {
		if err != nil {
			t.Fatalf("err = %v, want caller %q", err, want.caller)
		}
		if string(rr.caller) != want.caller || rr.field != want.field {
			t.Fatalf("caller = %q from %q, want %q from %q", rr.caller, rr.field, want.caller, want.field)
		}
	}
	if rr.jsonrpc != want.jsonrpc || string(rr.rpcID) != want.rpcID {
		t.Fatalf("jsonrpc = %v id %q, want %v id %q", rr.jsonrpc, rr.rpcID, want.jsonrpc, want.rpcID)
	}
}

func TestParseRouteRequest(t *testing.T) {
	const phone = "380671234567"
	caller := routeWant{caller: phone, field: "caller"}
	sampleBody := `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a0c6e1f5b2a","caller":"380671234567"}`

	tests := []struct {
		name    string
		methods []string // nil: every method
		keys    []string // nil: the defaults
		req     routeReq
		want    routeWant
	}{
		// query string
		{name: "query", req: routeReq{uri: routeURI + "&caller=" + phone}, want: caller},
		{name: "query first", req: routeReq{uri: "/pbx/acme/route?caller=" + phone + "&key=s3cret"}, want: caller},
		{name: "query percent-encoded plus", req: routeReq{uri: routeURI + "&caller=%2B" + phone},
			want: routeWant{caller: "+" + phone, field: "caller"}},
		{name: "query literal leading plus", req: routeReq{uri: routeURI + "&caller=+" + phone},
			want: routeWant{caller: "+" + phone, field: "caller"}},
		{name: "query inner plus is a space", req: routeReq{uri: routeURI + "&phone=+1+202+555+0100"},
			want: routeWant{caller: "+1 202 555 0100", field: "phone"}},
		{name: "query encoded key", req: routeReq{uri: routeURI + "&caller%5Fid=" + phone},
			want: routeWant{caller: phone, field: "caller_id"}},
		{name: "query repeated key, empty ones skipped", req: routeReq{uri: routeURI + "&caller=&caller=%20+&caller=" + phone}, want: caller},
		{name: "query value trimmed", req: routeReq{uri: routeURI + "&src=%20%09" + phone + "%0A"},
			want: routeWant{caller: phone, field: "src"}},
		{name: "query malformed escape kept", req: routeReq{uri: routeURI + "&caller=12%3"},
			want: routeWant{caller: "12%3", field: "caller"}},
		{name: "query dotted key", req: routeReq{uri: routeURI + "&additional_call_data.userfield=" + phone},
			want: routeWant{caller: phone, field: "additional_call_data.userfield"}},
		{name: "query key without value", req: routeReq{uri: routeURI + "&caller&from=" + phone},
			want: routeWant{caller: phone, field: "from"}},

		// form body
		{name: "form", req: routeReq{contentType: "application/x-www-form-urlencoded", body: "caller_number=" + phone + "&uuid=x"},
			want: routeWant{caller: phone, field: "caller_number"}},
		{name: "form with charset", req: routeReq{contentType: "application/x-www-form-urlencoded; charset=UTF-8", body: "uuid=x&callerid=%2B" + phone},
			want: routeWant{caller: "+" + phone, field: "callerid"}},
		{name: "form with BOM", req: routeReq{contentType: "text/plain", body: "\xef\xbb\xbfcaller=" + phone}, want: caller},
		{name: "form without content type", req: routeReq{body: "phone=" + phone},
			want: routeWant{caller: phone, field: "phone"}},
		{name: "form as text/plain", req: routeReq{contentType: "text/plain", body: "src=" + phone},
			want: routeWant{caller: phone, field: "src"}},
		{name: "plain text body is no form", req: routeReq{contentType: "text/plain", body: phone},
			want: routeWant{}},

		// JSON body
		{name: "json", req: routeReq{contentType: "application/json", body: `{"caller":"` + phone + `"}`}, want: caller},
		{name: "json number", req: routeReq{contentType: "application/json", body: `{"caller":380671234567}`}, want: caller},
		{name: "json number keeps every digit", req: routeReq{contentType: "application/json", body: `{"phone":38067123456789012345}`},
			want: routeWant{caller: "38067123456789012345", field: "phone"}},
		{name: "json percent-encoded plus", req: routeReq{contentType: "application/json", body: `{"caller":"%2B` + phone + `"}`},
			want: routeWant{caller: "+" + phone, field: "caller"}},
		{name: "json literal plus kept", req: routeReq{contentType: "application/json", body: `{"caller":"+1+202"}`},
			want: routeWant{caller: "+1+202", field: "caller"}},
		{name: "json escapes", req: routeReq{contentType: "application/json", body: `{"caller":"\u002b380\t"}`},
			want: routeWant{caller: "+380", field: "caller"}},
		{name: "json escaped key", req: routeReq{contentType: "application/json", body: `{"cal\u006cer":"` + phone + `"}`}, want: caller},
		{name: "json whitespace trimmed", req: routeReq{contentType: "application/json", body: ` {"caller":"  %20` + phone + ` "} `}, want: caller},
		{name: "json malformed escape kept", req: routeReq{contentType: "application/json", body: `{"caller":"100%"}`},
			want: routeWant{caller: "100%", field: "caller"}},
		{name: "json as text/plain", req: routeReq{contentType: "text/plain", body: `{"caller":"` + phone + `"}`}, want: caller},
		{name: "json without content type", req: routeReq{body: "\n\t{\"caller\":\"" + phone + "\"}"}, want: caller},
		{name: "json as form content type", req: routeReq{contentType: "application/x-www-form-urlencoded", body: `{"caller":"` + phone + `"}`}, want: caller},
		{name: "json with BOM", req: routeReq{contentType: "application/json; charset=utf-8", body: "\xef\xbb\xbf{\"caller\":\"" + phone + "\"}"}, want: caller},
		{name: "json vendor content type", req: routeReq{contentType: "application/vnd.api+JSON", body: `{"caller":"` + phone + `"}`}, want: caller},
		{name: "json empty body", req: routeReq{uri: routeURI + "&caller=" + phone, contentType: "application/json", body: " \r\n"}, want: caller},
		{name: "json dotted path", req: routeReq{contentType: "application/json", body: `{"uuid":"x","additional_call_data":{"userfield":"` + phone + `"}}`},
			want: routeWant{caller: phone, field: "additional_call_data.userfield"}},
		{name: "json flat dotted key", req: routeReq{contentType: "application/json", body: `{"additional_call_data.userfield":"` + phone + `"}`},
			want: routeWant{caller: phone, field: "additional_call_data.userfield"}},
		{name: "json nested deeper than the path", req: routeReq{contentType: "application/json", body: `{"caller":{"number":"1"},"caller_number":[2],"callerid":true,"caller_id":null,"phone":"` + phone + `"}`},
			want: routeWant{caller: phone, field: "phone"}},
		{name: "json path through a scalar", req: routeReq{contentType: "application/json", body: `{"additional_call_data":"x"}`},
			want: routeWant{}},
		{name: "json empty values skipped", req: routeReq{contentType: "application/json", body: `{"caller":"","caller_number":"  ","callerid":"%20","from":"` + phone + `"}`},
			want: routeWant{caller: phone, field: "from"}},
		{name: "json duplicate key, first wins", req: routeReq{contentType: "application/json", body: `{"caller":"1","caller":"2"}`},
			want: routeWant{caller: "1", field: "caller"}},
		{name: "pbx sample", methods: []string{fasthttp.MethodPost}, req: routeReq{
			uri: "/api/addnumber/?key=s3cret", contentType: "application/json", body: sampleBody,
			headers: [][2]string{{"Host", "api.asterisk"}, {"Origin", "api.asterisk"}, {"User-Agent", "ringostat HTTP Client v1.1"}, {"Connection", "close"}},
		}, want: caller},

		// JSON-RPC body
		{name: "jsonrpc number id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","params":{"caller":"` + phone + `"},"id":7}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "7"}},
		{name: "jsonrpc string id", req: routeReq{contentType: "application/json-rpc", body: `{"jsonrpc":"2.0","method":"route","params":{"caller":"` + phone + `"},"id":"abc"}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: `"abc"`}},
		{name: "jsonrpc escaped string id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","id":"a\"b\u0001\u00e9","params":{"caller":"` + phone + `"}}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: `"a\"b\u0001é"`}},
		{name: "jsonrpc null id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","params":{"caller":"` + phone + `"},"id":null}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "null"}},
		{name: "jsonrpc absent id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","params":{"caller":"` + phone + `"}}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "null"}},
		{name: "jsonrpc float id", req: routeReq{contentType: "application/json", body: `{"id":-1.5e3,"jsonrpc":"2.0","params":{"caller":"` + phone + `"}}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "-1.5e3"}},
		{name: "jsonrpc number and dotted path", req: routeReq{body: `{"jsonrpc":"2.0","method":"route","params":{"additional_call_data":{"userfield":380671234567}},"id":1}`},
			want: routeWant{caller: phone, field: "additional_call_data.userfield", jsonrpc: true, rpcID: "1"}},
		{name: "jsonrpc percent-encoded", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","params":{"caller":"%2B` + phone + `"},"id":2}`},
			want: routeWant{caller: "+" + phone, field: "caller", jsonrpc: true, rpcID: "2"}},
		{name: "jsonrpc top-level keys ignored", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","caller":"1","params":{"phone":"` + phone + `"},"id":3}`},
			want: routeWant{caller: phone, field: "phone", jsonrpc: true, rpcID: "3"}},
		{name: "jsonrpc without params, caller in query", req: routeReq{uri: routeURI + "&caller=" + phone, contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","id":4}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "4"}},
		{name: "jsonrpc caller missing keeps id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","params":{},"id":"x"}`},
			want: routeWant{jsonrpc: true, rpcID: `"x"`}},
		{name: "jsonrpc params array names no caller", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","method":"route","params":["` + phone + `"],"id":5}`},
			want: routeWant{jsonrpc: true, rpcID: "5"}},
		{name: "jsonrpc params array, caller in query", req: routeReq{uri: routeURI + "&caller=" + phone, contentType: "application/json", body: `{"jsonrpc":"2.0","params":[1,2],"id":5}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "5"}},
		{name: "jsonrpc params string", req: routeReq{uri: routeURI + "&caller=" + phone, contentType: "application/json", body: `{"jsonrpc":"2.0","params":"caller=1","id":6}`},
			want: routeWant{caller: phone, field: "caller", jsonrpc: true, rpcID: "6"}},
		{name: "jsonrpc params null", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","params":null}`},
			want: routeWant{jsonrpc: true, rpcID: "null"}},
		{name: "jsonrpc object id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","params":{"caller":"1"},"id":{}}`},
			want: routeWant{err: "id: must be a string, number or null", jsonrpc: true, rpcID: "null"}},
		{name: "jsonrpc NaN id", req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","params":{"caller":"1"},"id":NaN}`},
			want: routeWant{err: "id: must be a string, number or null", jsonrpc: true, rpcID: "null"}},

		// malformed bodies
		{name: "json truncated", req: routeReq{contentType: "application/json", body: sampleBody[:88]},
			want: routeWant{err: "body: invalid JSON: "}},
		{name: "json claimed, form sent", req: routeReq{contentType: "application/json", body: "caller=" + phone},
			want: routeWant{err: "body: invalid JSON: "}},
		{name: "json look-alike", req: routeReq{contentType: "application/x-www-form-urlencoded", body: "{caller=" + phone + "}"},
			want: routeWant{err: "body: invalid JSON: "}},
		{name: "json trailing garbage", req: routeReq{contentType: "application/json", body: `{"caller":"1"}x`},
			want: routeWant{err: "body: invalid JSON: "}},
		{name: "malformed body beats a query caller", req: routeReq{uri: routeURI + "&caller=" + phone, contentType: "application/json", body: `{"caller":`},
			want: routeWant{err: "body: invalid JSON: "}},
		{name: "json array body", req: routeReq{contentType: "application/json", body: `[{"caller":"1"}]`},
			want: routeWant{err: "body: must be a JSON object, got array"}},
		{name: "json string body", req: routeReq{contentType: "application/json", body: `"380671234567"`},
			want: routeWant{err: "body: must be a JSON object, got string"}},
		{name: "json too deep", req: routeReq{contentType: "application/json", body: `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`},
			want: routeWant{err: "body: JSON nested deeper than 64 levels"}},
		{name: "json deep enough", req: routeReq{contentType: "application/json", body: `{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `,"b":"[[[[` + strings.Repeat("{", 70) + `","caller":"` + phone + `"}`},
			want: caller},
		{name: "json too deep for fastjson", req: routeReq{contentType: "application/json", body: `{"a":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`},
			want: routeWant{err: "body: JSON nested deeper than 64 levels"}},
		{name: "json error names the innermost cause", req: routeReq{contentType: "application/json", body: `{"a":{"b":[{"c":"x` + strings.Repeat("y", 500)},
			want: routeWant{err: `body: invalid JSON: cannot parse string: missing closing '"'; unparsed tail: `}},
		{name: "oversized body ignored", req: routeReq{uri: routeURI + "&phone=" + phone, contentType: "application/json", body: `{"caller":"1","pad":"` + strings.Repeat("x", maxRouteBody) + `"}`},
			want: routeWant{caller: phone, field: "phone"}},

		// headers
		{name: "header", req: routeReq{headers: [][2]string{{"Caller", phone}}}, want: caller},
		{name: "header lower case", req: routeReq{headers: [][2]string{{"caller", phone}}}, want: caller},
		{name: "header dash variant", req: routeReq{headers: [][2]string{{"caller-id", phone}}},
			want: routeWant{caller: phone, field: "caller_id"}},
		{name: "header underscore name", req: routeReq{headers: [][2]string{{"CALLER_NUMBER", phone}}},
			want: routeWant{caller: phone, field: "caller_number"}},
		{name: "header From", req: routeReq{headers: [][2]string{{"From", " " + phone + " "}}},
			want: routeWant{caller: phone, field: "from"}},
		{name: "header percent-encoded", req: routeReq{headers: [][2]string{{"Phone", "%2B" + phone}}},
			want: routeWant{caller: "+" + phone, field: "phone"}},
		{name: "header empty skipped", req: routeReq{headers: [][2]string{{"Caller", " "}, {"Src", phone}}},
			want: routeWant{caller: phone, field: "src"}},
		{name: "header for dotted key not read", keys: []string{"additional_call_data.userfield"},
			req:  routeReq{headers: [][2]string{{"Additional_call_data.userfield", phone}}},
			want: routeWant{}},

		// precedence
		{name: "key order beats source order", req: routeReq{uri: routeURI + "&phone=111", contentType: "application/json", body: `{"caller":"222"}`},
			want: routeWant{caller: "222", field: "caller"}},
		{name: "key order across form and header", req: routeReq{contentType: "application/x-www-form-urlencoded", body: "src=111", headers: [][2]string{{"Caller-Number", "222"}}},
			want: routeWant{caller: "222", field: "caller_number"}},
		{name: "query beats body", req: routeReq{uri: routeURI + "&caller=111", contentType: "application/json", body: `{"caller":"222"}`},
			want: routeWant{caller: "111", field: "caller"}},
		{name: "query beats form", req: routeReq{uri: routeURI + "&caller=111", body: "caller=222"},
			want: routeWant{caller: "111", field: "caller"}},
		{name: "query with an unrelated form", req: routeReq{uri: routeURI + "&src=111", contentType: "application/x-www-form-urlencoded", body: "uuid=x"},
			want: routeWant{caller: "111", field: "src"}},
		{name: "form key before the query's", req: routeReq{uri: routeURI + "&src=111&callerid=", contentType: "application/x-www-form-urlencoded", body: "userfield=222&callerid=%20&phone=333"},
			want: routeWant{caller: "333", field: "phone"}},
		{name: "json key before the form's", req: routeReq{uri: routeURI + "&userfield=111", body: "src=222", headers: [][2]string{{"Phone", "333"}}},
			want: routeWant{caller: "333", field: "phone"}},
		{name: "body beats header", req: routeReq{contentType: "application/x-www-form-urlencoded", body: "caller=111", headers: [][2]string{{"Caller", "222"}}},
			want: routeWant{caller: "111", field: "caller"}},
		{name: "empty first key falls through", req: routeReq{uri: routeURI + "&caller=", contentType: "application/json", body: `{"caller":" "}`, headers: [][2]string{{"Caller", ""}, {"Userfield", "333"}}},
			want: routeWant{caller: "333", field: "userfield"}},

		// tenant caller_param
		{name: "caller_param json path", keys: []string{"client.phone"}, req: routeReq{contentType: "application/json", body: `{"caller":"1","client":{"phone":"` + phone + `"}}`},
			want: routeWant{caller: phone, field: "client.phone"}},
		{name: "caller_param query", keys: []string{"client.phone"}, req: routeReq{uri: routeURI + "&client.phone=" + phone},
			want: routeWant{caller: phone, field: "client.phone"}},
		{name: "caller_param jsonrpc", keys: []string{"client.phone"}, req: routeReq{contentType: "application/json", body: `{"jsonrpc":"2.0","params":{"client":{"phone":"` + phone + `"}},"id":9}`},
			want: routeWant{caller: phone, field: "client.phone", jsonrpc: true, rpcID: "9"}},
		{name: "caller_param ignores defaults", keys: []string{"client.phone"}, req: routeReq{uri: routeURI + "&caller=" + phone, headers: [][2]string{{"Phone", phone}}},
			want: routeWant{}},
		{name: "caller_param header", keys: []string{"tel_no"}, req: routeReq{headers: [][2]string{{"Tel-No", phone}}},
			want: routeWant{caller: phone, field: "tel_no"}},
		{name: "caller_param missing", keys: []string{"tel_no"}, req: routeReq{},
			want: routeWant{}},

		// missing: no error, an empty caller the handler answers with no forward
		{name: "Ringostat sample body without a caller", req: routeReq{contentType: "application/json", body: `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a0c6e1f5b2a"}`},
			want: routeWant{}},
		{name: "missing everywhere", req: routeReq{uri: routeURI + "&caller=%20", contentType: "application/json", body: `{"uuid":"x"}`},
			want: routeWant{}},
	}

	// One routeRequest across every case, as the pool would hand it out, so
	// state left over from a previous request would show.
	rr := acquireRouteRequest()
	defer releaseRouteRequest(rr)
	for _, tt := range tests {
		keys := defaultCallerKeys
		if tt.keys != nil {
			keys = tenant.CompileCallerKeys(tt.keys)
		}
		methods := tt.methods
		if methods == nil {
			methods = allMethods
		}
		for _, method := range methods {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				req := tt.req.build(method)
				body := string(req.Body())
				err := parseRouteRequest(req, keys, rr)
				checkRoute(t, rr, err, tt.want)
				if string(req.Body()) != body {
					t.Fatalf("body modified: %q", req.Body())
				}
			})
		}
	}
}

func TestParseRouteRequestNilKeys(t *testing.T) {
	req := routeReq{uri: routeURI + "&src=1"}.build(fasthttp.MethodGet)
	var rr routeRequest
	err := parseRouteRequest(req, nil, &rr)
	checkRoute(t, &rr, err, routeWant{caller: "1", field: "src"})
}

func TestParseRouteRequestRawRequest(t *testing.T) {
	// The PBX sample as it arrives on the wire, completed with a caller.
	body := `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a","caller":"380671234567"}`
	raw := "POST /api/addnumber/?key=s3cret HTTP/1.1\r\n" +
		"Host: api.asterisk\r\nOrigin: api.asterisk\r\nUser-Agent: ringostat HTTP Client v1.1\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	req := new(fasthttp.Request)
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	var rr routeRequest
	err := parseRouteRequest(req, defaultCallerKeys, &rr)
	checkRoute(t, &rr, err, routeWant{caller: "380671234567", field: "caller"})
	if !req.Header.ConnectionClose() {
		t.Fatal("Connection: close lost")
	}
}

func TestCompileCallerKeys(t *testing.T) {
	keys := tenant.CompileCallerKeys([]string{" caller_id ", "", "a.b_c", "phone"})
	want := []tenant.CallerKey{
		{Name: "caller_id", Path: []string{"caller_id"}, Header: "caller-id"},
		{Name: "a.b_c", Path: []string{"a", "b_c"}},
		{Name: "phone", Path: []string{"phone"}},
	}
	if len(keys) != len(want) {
		t.Fatalf("got %d keys, want %d", len(keys), len(want))
	}
	for i := range want {
		g, w := keys[i], want[i]
		if g.Name != w.Name || g.Header != w.Header || strings.Join(g.Path, "|") != strings.Join(w.Path, "|") {
			t.Errorf("key %d = %+v, want %+v", i, g, w)
		}
	}
	if got := tenant.CompileCallerKeys([]string{" "}); len(got) != len(domain.DefaultCallerKeys) {
		t.Errorf("blank names compiled to %d keys, want the %d defaults", len(got), len(domain.DefaultCallerKeys))
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "abc", `a"b\c`, "\x00\x1f\x7f", "é€😀", "\xff\xfe", "\u2028\u2029", "a\xe2\x82"} {
		out := appendJSONString(nil, []byte(s))
		if !json.Valid(out) {
			t.Errorf("%q encoded to invalid JSON %s", s, out)
			continue
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Errorf("%q: %v", s, err)
		}
		if want := string([]rune(s)); back != want { // invalid bytes become U+FFFD one by one
			t.Errorf("%q round-tripped to %q", s, back)
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "7", "-12", "1.5", "1e3", "1E+3", "-1.5e-3", "380671234567"} {
		if !isJSONNumber([]byte(s)) || !json.Valid([]byte(s)) {
			t.Errorf("%q rejected", s)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "1.", ".5", "1e", "1e+", "NaN", "inf", "1-2", "0x1", "1.2.3"} {
		if isJSONNumber([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestParseRouteRequestAllocs keeps the zero-allocation promise under plain
// `go test`, where benchmarks do not run.
func TestParseRouteRequestAllocs(t *testing.T) {
	for name, req := range benchRequests() {
		t.Run(name, func(t *testing.T) {
			// No pool here: under -race sync.Pool drops items on purpose.
			rr := new(routeRequest)
			allocs := testing.AllocsPerRun(200, func() {
				if err := parseRouteRequest(req, defaultCallerKeys, rr); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocs per request, want 0", allocs)
			}
		})
	}
}

// benchRequests are one typical request per encoding, as the PBX sends them.
func benchRequests() map[string]*fasthttp.Request {
	return map[string]*fasthttp.Request{
		"Query": routeReq{uri: routeURI + "&uuid=842d921d-5334-4eca-812d-9a0c6e1f5b2a&caller=380671234567"}.build(fasthttp.MethodGet),
		"JSON": routeReq{contentType: "application/json",
			body:    `{"call_id":"pkv","step_forward":"webhookNumber%3A120","uuid":"842d921d-5334-4eca-812d-9a0c6e1f5b2a","caller":"%2B380671234567"}`,
			headers: [][2]string{{"User-Agent", "ringostat HTTP Client v1.1"}, {"Connection", "close"}},
		}.build(fasthttp.MethodPost),
		"JSONRPC": routeReq{contentType: "application/json",
			body: `{"jsonrpc":"2.0","method":"route","params":{"uuid":"842d921d-5334-4eca-812d-9a0c6e1f5b2a","additional_call_data":{"userfield":380671234567}},"id":"req-\u0031"}`,
		}.build(fasthttp.MethodPost),
		"Form": routeReq{contentType: "application/x-www-form-urlencoded",
			body: "uuid=842d921d-5334-4eca-812d-9a0c6e1f5b2a&caller_number=%2B380671234567",
		}.build(fasthttp.MethodPut),
		"Header": routeReq{headers: [][2]string{
			{"User-Agent", "ringostat HTTP Client v1.1"}, {"X-Call-Uuid", "842d921d"}, {"Caller-Id", "380671234567"},
		}}.build(fasthttp.MethodGet),
	}
}

func benchmarkParseRoute(b *testing.B, name string) {
	req := benchRequests()[name]
	b.ReportAllocs()
	for b.Loop() {
		rr := acquireRouteRequest()
		if err := parseRouteRequest(req, defaultCallerKeys, rr); err != nil {
			b.Fatal(err)
		}
		releaseRouteRequest(rr)
	}
}

func BenchmarkParseRouteQuery(b *testing.B)   { benchmarkParseRoute(b, "Query") }
func BenchmarkParseRouteJSON(b *testing.B)    { benchmarkParseRoute(b, "JSON") }
func BenchmarkParseRouteJSONRPC(b *testing.B) { benchmarkParseRoute(b, "JSONRPC") }
func BenchmarkParseRouteForm(b *testing.B)    { benchmarkParseRoute(b, "Form") }
func BenchmarkParseRouteHeader(b *testing.B)  { benchmarkParseRoute(b, "Header") }
