package retailcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/url"
	"strconv"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// webhookKinds maps the "type" a trigger posts to an entity kind; the
// callrouter names are accepted too.
var webhookKinds = map[string]domain.EntityKind{
	"customer": domain.KindContact,
	"contact":  domain.KindContact,
	"order":    domain.KindDeal,
	"deal":     domain.KindDeal,
}

// Webhook parses what a retailCRM trigger posted (see the package doc): a
// JSON object {"type","id","deleted"} or the same as form fields. The id
// may be a JSON number or string. The entity is reported in Deleted when
// deleted is true, in Refetch otherwise. Errors: EINVALID when the body is
// not such a notification.
func (s *Source) Webhook(_ context.Context, contentType string, body []byte) (crm.Batch, error) {
	typ, id, deleted, err := parseWebhook(contentType, body)
	if err != nil {
		return crm.Batch{}, err
	}
	kind, ok := webhookKinds[strings.ToLower(strings.TrimSpace(typ))]
	if !ok {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm webhook: type must be customer or order, got %q", typ)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
	if err != nil || n <= 0 {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm webhook: id must be a positive integer, got %q", id)
	}
	ref := crm.Ref{Kind: kind, ID: idString(n)}
	if deleted {
		return crm.Batch{Deleted: []crm.Ref{ref}}, nil
	}
	return crm.Batch{Refetch: []crm.Ref{ref}}, nil
}

// webhookJSON is the JSON notification; id and deleted are kept raw
// because trigger templates produce them quoted or not.
type webhookJSON struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Deleted json.RawMessage `json:"deleted"`
}

// parseWebhook extracts the fields from a JSON or form body; the body is
// sniffed when the content type says neither (trigger senders are not
// consistent about it).
func parseWebhook(contentType string, body []byte) (typ, id string, deleted bool, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", "", false, domain.Errorf(domain.EINVALID, "retailcrm webhook: empty body")
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt != "application/x-www-form-urlencoded" && body[0] == '{'
	if isJSON {
		var w webhookJSON
		if err := json.Unmarshal(body, &w); err != nil {
			return "", "", false, domain.Errorf(domain.EINVALID, "retailcrm webhook: body is not a JSON object")
		}
		id, err := scalar(w.ID)
		if err != nil {
			return "", "", false, domain.Errorf(domain.EINVALID, "retailcrm webhook: id must be a number or a string")
		}
		del, err := scalar(w.Deleted)
		if err != nil {
			return "", "", false, domain.Errorf(domain.EINVALID, "retailcrm webhook: deleted must be a boolean")
		}
		d, err := truth(del)
		if err != nil {
			return "", "", false, err
		}
		return w.Type, id, d, nil
	}
	form, perr := url.ParseQuery(string(body))
	if perr != nil {
		return "", "", false, domain.Errorf(domain.EINVALID, "retailcrm webhook: body is neither JSON nor a form")
	}
	d, err := truth(form.Get("deleted"))
	if err != nil {
		return "", "", false, err
	}
	return form.Get("type"), form.Get("id"), d, nil
}

// scalar returns a JSON string, number or boolean as text; "" for absent
// or null.
func scalar(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case float64, bool:
		return string(raw), nil
	}
	return "", domain.Errorf(domain.EINVALID, "not a scalar")
}

// truth reads a deleted flag: true/1/yes, false/0/no/empty.
func truth(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "y", "on":
		return true, nil
	case "", "false", "0", "no", "n", "off":
		return false, nil
	}
	return false, domain.Errorf(domain.EINVALID, "retailcrm webhook: deleted must be true or false, got %q", s)
}
