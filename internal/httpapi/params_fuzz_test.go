package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"github.com/callrouter/callrouter/internal/tenant"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

// routeResult is a copy of what parseRouteRequest produced, comparable after
// the routeRequest has been reused.
type routeResult struct {
	caller, field, rpcID string
	jsonrpc              bool
	err                  string
}

func parseRouteResult(req *fasthttp.Request, rr *routeRequest) (routeResult, error) {
	err := parseRouteRequest(req, defaultCallerKeys, rr)
	r := routeResult{caller: string(rr.caller), field: rr.field, rpcID: string(rr.rpcID), jsonrpc: rr.jsonrpc}
	if err != nil {
		r.err = err.Error()
	}
	return r, err
}

// fuzzRequest reads the request off the wire the way the server would, so
// the fuzzer explores what fasthttp actually hands to a handler. ok is false
// for input fasthttp rejects.
func fuzzRequest(method, contentType, uri string, body []byte, header string) (req *fasthttp.Request, ok bool) {
	// CR or LF here would restructure the request; header is where the
	// fuzzer may add lines.
	if strings.ContainsAny(method+contentType+uri, "\r\n") {
		return nil, false
	}
	if method == "" {
		method = fasthttp.MethodGet
	}
	if uri == "" {
		uri = "/"
	}
	var raw bytes.Buffer
	raw.WriteString(method + " " + uri + " HTTP/1.1\r\nHost: pbx.example\r\n")
	if contentType != "" {
		raw.WriteString("Content-Type: " + contentType + "\r\n")
	}
	for line := range strings.SplitSeq(header, "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			raw.WriteString(line + "\r\n")
		}
	}
	raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	raw.Write(body)

	req = new(fasthttp.Request)
	if err := req.ReadLimitBody(bufio.NewReader(&raw), 1<<20); err != nil {
		return nil, false
	}
	return req, true
}

func FuzzParseRouteRequest(f *testing.F) {
	const phone = "380671234567"
	f.Add("GET", "", routeURI+"&caller="+phone, []byte(nil), "")
	f.Add("GET", "", routeURI+"&phone=+1+202%20555", []byte(nil), "")
	f.Add("POST", "application/x-www-form-urlencoded", routeURI, []byte("caller_id=%2B"+phone+"&x=1"), "")
	f.Add("POST", "application/json", routeURI, []byte(`{"call_id":"pkv","step_forward":"webhookNumber%3A120","caller":"`+phone+`"}`),
		"User-Agent: ringostat HTTP Client v1.1\nConnection: close")
	f.Add("PUT", "text/plain", routeURI, []byte(`{"additional_call_data":{"userfield":380671234567}}`), "")
	f.Add("POST", "application/json", routeURI, []byte(`{"jsonrpc":"2.0","method":"route","params":{"caller":"`+phone+`"},"id":7}`), "")
	f.Add("POST", "application/json", routeURI, []byte(`{"jsonrpc":"2.0","params":[1],"id":"x"}`), "")
	f.Add("DELETE", "application/json", routeURI, []byte(`{"caller":`), "")
	f.Add("GET", "", routeURI, []byte(nil), "Caller-Id: "+phone+"\nFrom: %2B1")

	f.Fuzz(func(t *testing.T, method, contentType, uri string, body []byte, header string) {
		req, ok := fuzzRequest(method, contentType, uri, body, header)
		if !ok {
			t.Skip()
		}
		before := string(req.Body())

		rr := acquireRouteRequest()
		defer releaseRouteRequest(rr)
		got, err := parseRouteResult(req, rr)

		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EINVALID {
				t.Fatalf("error %v (%T) is not an invalid *domain.Error", err, err)
			}
			// The message goes back to the client; it must stay short
			// whatever the body.
			if len(de.Message) > 512 {
				t.Fatalf("error message of %d bytes: %.100s…", len(de.Message), de.Message)
			}
		} else if len(rr.caller) == 0 {
			// No caller is not an error: the handler answers no forward.
			if got.field != "" {
				t.Fatalf("no caller, but field %q", got.field)
			}
		} else {
			if !bytes.Equal(bytes.TrimSpace(rr.caller), rr.caller) {
				t.Fatalf("caller %q is not trimmed", got.caller)
			}
			if !slices.Contains(domain.DefaultCallerKeys, got.field) {
				t.Fatalf("field %q is not a caller key", got.field)
			}
		}
		if got.jsonrpc {
			if !json.Valid(rr.rpcID) {
				t.Fatalf("rpcID %q is not valid JSON", rr.rpcID)
			}
		} else if got.rpcID != "" {
			t.Fatalf("rpcID %q without jsonrpc", got.rpcID)
		}

		// Hold the single-pass lookup to the plain key-major definition. This
		// reuses rr's parsed body, so it runs after got was copied out.
		if err == nil {
			caller, field := referenceLookup(req, defaultCallerKeys, rr)
			if caller != got.caller || field != got.field {
				t.Fatalf("got %q from %q, reference lookup %q from %q", got.caller, got.field, caller, field)
			}
		}

		again, _ := parseRouteResult(req, rr)
		fresh, _ := parseRouteResult(req, new(routeRequest))
		if again != got || fresh != got {
			t.Fatalf("not deterministic:\n first %+v\n again %+v\n fresh %+v", got, again, fresh)
		}
		if string(req.Body()) != before {
			t.Fatalf("body modified: %q -> %q", before, req.Body())
		}
	})
}

// referenceLookup is the lookup order spelled out: for each key in order,
// the query, the form body, then the JSON body and headers. It runs on rr
// after parseRouteRequest, whose parsed body it reuses.
func referenceLookup(req *fasthttp.Request, keys []tenant.CallerKey, rr *routeRequest) (caller, field string) {
	for i := range keys {
		k := &keys[i]
		for _, pairs := range [][]byte{req.URI().QueryString(), rr.form} {
			if v := referenceFormValue(pairs, k.Name); v != "" {
				return v, k.Name
			}
		}
		if v := rr.jsonOrHeader(req, k); len(v) > 0 {
			return string(v), k.Name
		}
	}
	return "", ""
}

func referenceFormValue(pairs []byte, name string) string {
	for pair := range bytes.SplitSeq(pairs, []byte("&")) {
		key, val, _ := bytes.Cut(pair, []byte("="))
		if !formKeyEqual(key, name) {
			continue
		}
		if v := bytes.TrimSpace(appendUnescaped(nil, bytes.TrimSpace(val), true)); len(v) > 0 {
			return string(v)
		}
	}
	return ""
}
