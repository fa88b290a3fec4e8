package httpapi

import (
	"bytes"
	"github.com/callrouter/callrouter/internal/tenant"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/callrouter/callrouter/internal/domain"
)

// maxRouteBody is the largest route request body that is looked at; a larger
// body is ignored as if absent. The PBX's own sample is 128 bytes and a
// JSON-RPC envelope with call data stays well under 1 KiB; 64 KiB matches the
// route handler's own cap, so every body it accepts is read, while bounding
// the parse to a few hundred microseconds.
const maxRouteBody = 64 << 10

// maxRouteJSONDepth bounds the nesting of a JSON body. A caller key has at
// most 32 segments (keys are at most 64 characters) plus one level for
// JSON-RPC params, so nothing deeper can hold the caller. fastjson's own limit
// of 300 is too loose: it wraps its error once per level, so a body of
// brackets would cost megabytes of error text.
const maxRouteJSONDepth = 64

// Pooled routeRequests drop scratch memory above these sizes so that one odd
// request does not pin large buffers in the pool forever.
const (
	maxPooledBuf   = 4 << 10
	maxPooledParse = 4 << 10
)

// defaultCallerKeys are the compiled domain.DefaultCallerKeys, used when a
// tenant sets no caller_param.
var defaultCallerKeys = tenant.CompileCallerKeys(domain.DefaultCallerKeys)

// routeRequest is what the route handler needs from a request. Its slices
// point into the request, into buf or into the parser's memory and are valid
// only until the handler returns (fasthttp forbids keeping them) and until
// the routeRequest is reset or released.
type routeRequest struct {
	caller  []byte // the raw caller value, decoded and trimmed
	field   string // which key it came from (the CallerKey.Name)
	jsonrpc bool   // the body was a JSON-RPC envelope
	rpcID   []byte // JSON of the id when jsonrpc, ready to echo (e.g. `7`, `"abc"`, `null`)
	buf     []byte // scratch for decoding, reused

	parser fastjson.Parser // owned, so a pooled routeRequest parses without allocating
	parsed int             // largest body the parser has seen, which its retained memory grows with
	obj    *fastjson.Value // the JSON object keys are looked up in: the body or JSON-RPC params
	form   []byte          // the raw urlencoded body, nil when the body is JSON or absent
	idBuf  []byte          // backing store of rpcID, apart from buf so decoding cannot clobber it
	// callID and formArgs are scratch memory of routeCallIDBytes: a
	// numeric JSON call id's text, the parsed form body.
	callID   []byte
	formArgs fasthttp.Args
}

// reset forgets the previous request, keeping the scratch memory.
func (rr *routeRequest) reset() {
	rr.caller = nil
	rr.field = ""
	rr.jsonrpc = false
	rr.rpcID = nil
	rr.buf = rr.buf[:0]
	rr.obj = nil
	rr.form = nil
	rr.idBuf = rr.idBuf[:0]
	rr.callID = rr.callID[:0]
	rr.formArgs.Reset()
}

var routeRequestPool = sync.Pool{New: func() any { return new(routeRequest) }}

// acquireRouteRequest returns an empty routeRequest from the pool; give it
// back with releaseRouteRequest once the response is written.
func acquireRouteRequest() *routeRequest {
	return routeRequestPool.Get().(*routeRequest)
}

// releaseRouteRequest returns rr to the pool. rr and every slice taken from
// it must not be used afterwards.
func releaseRouteRequest(rr *routeRequest) {
	rr.reset()
	if cap(rr.buf) > maxPooledBuf {
		rr.buf = nil
	}
	if cap(rr.idBuf) > maxPooledBuf {
		rr.idBuf = nil
	}
	if rr.parsed > maxPooledParse {
		// The parser keeps one Value per JSON value of the largest body it saw.
		rr.parser = fastjson.Parser{}
		rr.parsed = 0
	}
	routeRequestPool.Put(rr)
}

// jsonNull is the id echoed for a JSON-RPC request without one. Read only.
var jsonNull = []byte("null")

// utf8BOM is skipped before a body: some HTTP clients on Windows prepend it,
// and neither fastjson nor a form key would match with it.
var utf8BOM = []byte("\xef\xbb\xbf")

// parseRouteRequest fills rr from req. Keys are tried in order; for each key
// the sources are tried in order (query string, form or JSON/JSON-RPC body,
// headers) and the first value that is non-empty after decoding and trimming
// wins.
//
// The body is parsed before any key is looked up, so a malformed body is
// reported whatever the query string holds; a body larger than maxRouteBody
// is ignored. A body is JSON when its Content-Type mentions json or its first
// non-space byte is '{'; any other body is read as urlencoded pairs, because
// the PBX sends odd content types and a non-form body simply has no matching
// pair. When the body is a JSON-RPC envelope, rr.jsonrpc and rr.rpcID are set
// even if the caller is then missing, so the answer is given in kind.
//
// No key holding a value is not an error: rr.caller stays empty and the
// handler answers "no forward". JSON-RPC params that are not an object (a
// positional array) are treated as holding no keys.
//
// keys are a tenant's compileCallerKeys result; nil means the defaults.
// Errors (a malformed body or JSON-RPC id) are *domain.Error with code
// domain.EINVALID.
func parseRouteRequest(req *fasthttp.Request, keys []tenant.CallerKey, rr *routeRequest) error {
	rr.reset()
	if len(keys) == 0 {
		keys = defaultCallerKeys
	}
	if err := rr.parseBody(req); err != nil {
		return err
	}
	// Within a key the query beats the form body, so the body only needs to
	// be searched for keys before the query's best.
	best, raw := rr.firstFormKey(req.URI().QueryString(), keys, len(keys))
	if rr.form != nil {
		if i, v := rr.firstFormKey(rr.form, keys, best); i < best {
			best, raw = i, v
		}
	}
	// Key order beats source order: a key before best may still come from the
	// JSON body or a header.
	for i := range keys[:best] {
		if v := rr.jsonOrHeader(req, &keys[i]); len(v) > 0 {
			rr.caller, rr.field = v, keys[i].Name
			return nil
		}
	}
	if best < len(keys) {
		rr.caller, rr.field = rr.clean(raw, true), keys[best].Name
	}
	return nil
}

// parseBody classifies the body and parses it when it is JSON.
func (rr *routeRequest) parseBody(req *fasthttp.Request) error {
	// Checked before Body() so a streamed oversized body is not read here.
	if req.Header.ContentLength() > maxRouteBody {
		return nil
	}
	body := req.Body()
	if len(body) == 0 || len(body) > maxRouteBody {
		return nil
	}
	body = bytes.TrimPrefix(body, utf8BOM)
	trimmed := skipJSONSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	if trimmed[0] != '{' && !isJSONMediaType(req.Header.ContentType()) {
		rr.form = body
		return nil
	}

	if jsonDeeperThan(trimmed, maxRouteJSONDepth) {
		return domain.Errorf(domain.EINVALID, "body: JSON nested deeper than %d levels", maxRouteJSONDepth)
	}
	rr.parsed = max(rr.parsed, len(trimmed))
	v, err := rr.parser.ParseBytes(trimmed)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "body: invalid JSON: %s", jsonErrorText(err))
	}
	if t := v.Type(); t != fastjson.TypeObject {
		return domain.Errorf(domain.EINVALID, "body: must be a JSON object, got %s", t)
	}
	if v.Get("jsonrpc") == nil {
		rr.obj = v
		return nil
	}

	rr.jsonrpc = true
	if err := rr.setRPCID(v.Get("id")); err != nil {
		return err
	}
	params := v.Get("params")
	if params == nil {
		// JSON-RPC 2.0 lets params be omitted; the caller may still come from
		// the query string or a header.
		return nil
	}
	if params.Type() != fastjson.TypeObject {
		// Positional params (an array) or a scalar name no caller key; the
		// caller may still come from the query string or a header, and
		// without one the call gets a no-forward answer, not an error.
		return nil
	}
	rr.obj = params
	return nil
}

// setRPCID stores the JSON-RPC id to echo. It is re-encoded rather than
// copied raw because fastjson accepts numbers like NaN and strings with raw
// control characters, and the echo must be valid JSON.
func (rr *routeRequest) setRPCID(id *fastjson.Value) error {
	rr.rpcID = jsonNull
	if id == nil {
		return nil
	}
	switch id.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeString:
		s, _ := id.StringBytes()
		rr.idBuf = appendJSONString(rr.idBuf[:0], s)
	case fastjson.TypeNumber:
		rr.idBuf = id.MarshalTo(rr.idBuf[:0])
		if !isJSONNumber(rr.idBuf) {
			return domain.Errorf(domain.EINVALID, "id: must be a string, number or null, got %.32q", rr.idBuf)
		}
	default:
		return domain.Errorf(domain.EINVALID, "id: must be a string, number or null, got %s", id.Type())
	}
	rr.rpcID = rr.idBuf
	return nil
}

// firstFormKey scans urlencoded pairs once and returns the index of the
// first of keys[:limit] that has a non-empty value, with its raw value, or
// (limit, nil). One pass per source, rather than one per key, keeps the work
// linear in the query or body size. For a repeated key the first non-empty
// occurrence counts, so `caller=&caller=380…` works.
func (rr *routeRequest) firstFormKey(pairs []byte, keys []tenant.CallerKey, limit int) (int, []byte) {
	best, val := limit, []byte(nil)
	for len(pairs) > 0 && best > 0 {
		pair := pairs
		if i := bytes.IndexByte(pairs, '&'); i >= 0 {
			pair, pairs = pairs[:i], pairs[i+1:]
		} else {
			pairs = nil
		}
		key, v := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, v = pair[:i], pair[i+1:]
		}
		if i := formKeyIndex(key, keys[:best]); i >= 0 && len(rr.clean(v, true)) > 0 {
			best, val = i, v
		}
	}
	return best, val
}

// formKeyIndex returns the index of the key the urlencoded raw names, or -1.
func formKeyIndex(raw []byte, keys []tenant.CallerKey) int {
	plain := bytes.IndexByte(raw, '%') < 0 && bytes.IndexByte(raw, '+') < 0
	for i := range keys {
		if plain && string(raw) == keys[i].Name || !plain && formKeyEqual(raw, keys[i].Name) {
			return i
		}
	}
	return -1
}

// jsonOrHeader returns the first non-empty value of k from the JSON body or
// the headers, or nil.
func (rr *routeRequest) jsonOrHeader(req *fasthttp.Request, k *tenant.CallerKey) []byte {
	if rr.obj != nil {
		if v := rr.jsonScalar(rr.obj.Get(k.Path...)); len(v) > 0 {
			return v
		}
		// A flat key that itself contains dots, as some form-to-JSON bridges send.
		if len(k.Path) > 1 {
			if v := rr.jsonScalar(rr.obj.Get(k.Name)); len(v) > 0 {
				return v
			}
		}
	}
	if len(k.Path) > 1 {
		return nil
	}
	// Peek canonicalizes the name the way fasthttp canonicalizes received
	// headers, which is what makes this case-insensitive.
	if v := rr.clean(req.Header.Peek(k.Name), false); len(v) > 0 {
		return v
	}
	if k.Header != "" {
		return rr.clean(req.Header.Peek(k.Header), false)
	}
	return nil
}

// jsonScalar returns the text of a JSON string or number, nil for anything
// else: a caller id is never an object, array, boolean or null, so a path that
// ends on one (e.g. JSON nested deeper than the configured path) counts as
// absent rather than an error.
func (rr *routeRequest) jsonScalar(v *fastjson.Value) []byte {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return rr.clean(s, false)
	case fastjson.TypeNumber:
		// The raw text keeps every digit; a float conversion would not.
		rr.buf = v.MarshalTo(rr.buf[:0])
		return bytes.TrimSpace(rr.buf)
	default:
		return nil
	}
}

// clean trims v and percent-decodes it into rr.buf when needed. form selects
// urlencoded rules ('+' is a space, see appendUnescaped); otherwise only %XX
// is decoded, because the PBX percent-encodes values even inside JSON while a
// literal '+' there is the phone's own.
func (rr *routeRequest) clean(v []byte, form bool) []byte {
	v = bytes.TrimSpace(v)
	if bytes.IndexByte(v, '%') < 0 && (!form || bytes.IndexByte(v, '+') < 0) {
		return v
	}
	rr.buf = appendUnescaped(rr.buf[:0], v, form)
	return bytes.TrimSpace(rr.buf)
}

// appendUnescaped appends src to dst with %XX escapes decoded. A malformed
// escape is kept verbatim: passing a stray '%' on lets the phone normalizer
// reject the value with a precise reason instead of this layer guessing.
// With form set, '+' decodes to a space except as the first byte: a leading
// space would be trimmed anyway, so a leading '+' can only be an unencoded
// international prefix (`?caller=+380…`), and keeping it preserves the
// country code.
func appendUnescaped(dst, src []byte, form bool) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '%' && i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]):
			c = unhex(src[i+1])<<4 | unhex(src[i+2])
			i += 2
		case c == '+' && form && i > 0:
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// formKeyEqual reports whether the urlencoded key raw decodes to name,
// decoding on the fly so matching needs no buffer.
func formKeyEqual(raw []byte, name string) bool {
	// A decoded key is never longer than its encoding.
	if len(raw) < len(name) {
		return false
	}
	j := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		case c == '+':
			c = ' '
		}
		if j >= len(name) || name[j] != c {
			return false
		}
		j++
	}
	return j == len(name)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// jsonDeeperThan reports whether the brackets of b nest deeper than limit,
// outside strings. Malformed input may be misjudged; fastjson then rejects it.
func jsonDeeperThan(b []byte, limit int) bool {
	// Counting is vectorized and settles every ordinary body.
	if bytes.Count(b, []byte{'{'})+bytes.Count(b, []byte{'['}) <= limit {
		return false
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > limit {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// maxJSONErrorText caps the parser's message, which quotes the body.
const maxJSONErrorText = 160

// jsonErrorText makes a fastjson error fit for a client: fastjson prefixes
// one "cannot parse …: " per nesting level, so only the innermost is kept.
func jsonErrorText(err error) string {
	msg := strings.TrimPrefix(err.Error(), "cannot parse JSON: ")
	for strings.HasPrefix(msg, "cannot parse ") {
		i := strings.Index(msg, ": ")
		if i < 0 || !strings.HasPrefix(msg[i+2:], "cannot parse ") {
			break
		}
		msg = msg[i+2:]
	}
	if len(msg) > maxJSONErrorText {
		n := maxJSONErrorText
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	return msg
}

// skipJSONSpace drops the whitespace JSON allows before a value.
func skipJSONSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// isJSONMediaType reports whether the media type of a Content-Type mentions
// json in any case (application/json, application/json-rpc, text/json,
// application/vnd.api+json), ignoring parameters.
func isJSONMediaType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	for i := 0; i+4 <= len(ct); i++ {
		if ct[i]|0x20 == 'j' && ct[i+1]|0x20 == 's' && ct[i+2]|0x20 == 'o' && ct[i+3]|0x20 == 'n' {
			return true
		}
	}
	return false
}

// isJSONNumber reports whether b is a number by the JSON grammar (RFC 8259 §6).
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// appendJSONString appends s as a JSON string. Unlike fastjson's encoder,
// which falls back to Go quoting (\x01, \U0001f600), the output is always
// valid JSON: control characters become \u00XX and invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript: escape for clients that eval.
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
