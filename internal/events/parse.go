package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/callrouter/callrouter/internal/domain"
)

// Limits of one event body: Ringostat's richest events carry a few dozen
// fields, so these only stop abuse.
const (
	MaxFields     = 500
	MaxKeyBytes   = 128
	MaxValueBytes = 16 << 10
	maxDepth      = 8
)

// Incoming is a parsed event request.
type Incoming struct {
	Kind     domain.EventKind
	UniqueID string
	// Fields are every parameter, query and body merged (the body wins),
	// values decoded, nested JSON flattened to dotted keys. The endpoint's
	// secret ("key") is never among them.
	Fields map[string]string
}

// Parse reads an event request: query parameters and a JSON, JSON-RPC or
// form body. The kind comes from "event" (query or body), the call id from
// uniqueid, call_id or uuid. Errors are EINVALID naming the field or the
// body's problem.
func Parse(contentType string, query url.Values, body []byte) (Incoming, error) {
	fields := make(map[string]string, 32)
	for k, vs := range query {
		if k == "key" || len(vs) == 0 {
			continue
		}
		if err := put(fields, k, vs[0]); err != nil {
			return Incoming{}, err
		}
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 {
		var err error
		if isJSON(contentType, body) {
			err = parseJSON(fields, body)
			if err == nil && !utf8.Valid(body) {
				// encoding/json has already replaced the invalid bytes with
				// U+FFFD, so a call id that was rewritten shows it.
				err = checkRewrittenIdentity(fields)
			}
		} else {
			err = parseForm(fields, body)
		}
		if err != nil {
			return Incoming{}, err
		}
	}
	delete(fields, "key")
	in := Incoming{Fields: fields}
	kind := strings.TrimSpace(fields["event"])
	if kind == "" {
		return in, domain.Errorf(domain.EINVALID, "event: missing; pass ?event=call_start|call_answered|call_end|outgoing_start|outgoing_end|form")
	}
	k, ok := domain.ParseEventKind(kind)
	if !ok {
		return in, domain.Errorf(domain.EINVALID, "event: unknown kind %q; use call_start, call_answered, call_end, outgoing_start, outgoing_end or form", clip(kind))
	}
	in.Kind = k
	in.UniqueID = first(fields, uniqueIDKeys)
	if in.UniqueID == "" && k == domain.EventForm {
		// A form carries no call id: Ingest keys it by its body and minute.
		return in, nil
	}
	if in.UniqueID == "" {
		return in, domain.Errorf(domain.EINVALID, "uniqueid: missing (also read from call_id or uuid)")
	}
	if len(in.UniqueID) > 256 {
		return in, domain.Errorf(domain.EINVALID, "uniqueid: longer than 256 bytes")
	}
	return in, nil
}

func isJSON(contentType string, body []byte) bool {
	ct := strings.ToLower(contentType)
	if strings.Contains(ct, "json") {
		return true
	}
	if strings.Contains(ct, "x-www-form-urlencoded") {
		return false
	}
	return body[0] == '{'
}

// identityKeys are the fields that say which call and which event a body
// is: the kind and every name the call id is read from.
var identityKeys = append([]string{"event"}, uniqueIDKeys...)

// isIdentityKey reports whether k is one of identityKeys.
func isIdentityKey(k string) bool {
	for _, ik := range identityKeys {
		if k == ik {
			return true
		}
	}
	return false
}

// errIdentityText is the refusal of a call id or kind that is not clean
// text. Rewriting it (as other fields are) would merge two distinct calls
// whose ids differ only in the bytes replaced.
func errIdentityText(k string) error {
	return domain.Errorf(domain.EINVALID, "%s: not valid UTF-8 or holds a NUL byte; call ids and kinds are kept byte for byte, so they must be clean text", k)
}

// checkRewrittenIdentity refuses a JSON body whose identity fields carry
// U+FFFD when the body was not valid UTF-8: the decoder put it there.
func checkRewrittenIdentity(fields map[string]string) error {
	for _, k := range identityKeys {
		if strings.ContainsRune(fields[k], utf8.RuneError) {
			return errIdentityText(k)
		}
	}
	return nil
}

// put stores one field, checking the limits and making the value valid
// UTF-8 (the CRM must not receive broken text). An identity field (the
// kind, the call id) that is not clean text is refused instead: EINVALID
// naming it.
func put(fields map[string]string, k, v string) error {
	if isIdentityKey(k) && (!utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0) {
		return errIdentityText(k)
	}
	if len(k) > MaxKeyBytes {
		return domain.Errorf(domain.EINVALID, "body: field name %q… longer than %d bytes", clip(k), MaxKeyBytes)
	}
	if len(v) > MaxValueBytes {
		if k == "" {
			return domain.Errorf(domain.EINVALID, "body: a field without a name has a value longer than %d bytes", MaxValueBytes)
		}
		return domain.Errorf(domain.EINVALID, "%s: value longer than %d bytes", clip(k), MaxValueBytes)
	}
	if _, dup := fields[k]; !dup && len(fields) >= MaxFields {
		return domain.Errorf(domain.EINVALID, "body: more than %d fields", MaxFields)
	}
	fields[text(k)] = text(v)
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return text(s)
}

// text makes s valid UTF-8 without NUL bytes: the CRM must not receive
// broken text, and PostgreSQL refuses a NUL in text (a NUL in a call id
// would fail the event's whole batch there).
func text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func parseForm(fields map[string]string, body []byte) error {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return domain.Errorf(domain.EINVALID, "body: not a form: %v", err)
	}
	for k, vs := range vals {
		if err := put(fields, k, vs[0]); err != nil {
			return err
		}
	}
	return nil
}

func parseJSON(fields map[string]string, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return domain.Errorf(domain.EINVALID, "body: invalid JSON: %s", jsonError(err))
	}
	if dec.More() {
		return domain.Errorf(domain.EINVALID, "body: invalid JSON: data after the object")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return domain.Errorf(domain.EINVALID, "body: must be a JSON object")
	}
	// A JSON-RPC 2.0 call carries the event in params; the method may name
	// the kind.
	if params, ok := obj["params"].(map[string]any); ok && obj["jsonrpc"] != nil {
		if m, ok := obj["method"].(string); ok {
			if _, known := domain.ParseEventKind(m); known {
				if err := put(fields, "event", m); err != nil {
					return err
				}
			}
		}
		obj = params
	}
	return flatten(fields, "", obj, 0)
}

func jsonError(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%v at offset %d", se, se.Offset)
	}
	return err.Error()
}

// flatten stores an object's scalars under dotted keys; arrays are kept as
// their JSON text. String values are percent-decoded when they hold
// escapes, as the PBX sends some values URL-encoded inside JSON.
func flatten(fields map[string]string, prefix string, obj map[string]any, depth int) error {
	if depth > maxDepth {
		return domain.Errorf(domain.EINVALID, "body: JSON nested deeper than %d levels", maxDepth)
	}
	for k, v := range obj {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		var s string
		switch v := v.(type) {
		case map[string]any:
			if err := flatten(fields, key, v, depth+1); err != nil {
				return err
			}
			continue
		case string:
			s = v
			if strings.IndexByte(s, '%') >= 0 {
				if d, err := url.PathUnescape(s); err == nil {
					s = d
				}
			}
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		case nil:
			s = ""
		default:
			b, _ := json.Marshal(v)
			s = string(b)
		}
		if err := put(fields, key, s); err != nil {
			return err
		}
	}
	return nil
}
