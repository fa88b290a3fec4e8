package zoho

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"mime"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// notification is a Zoho watch-channel callback. Only the fields used are
// decoded: server_time, resource_uri, channel_id, affected_fields and
// query_params vary by API version and are not needed.
type notification struct {
	Module    *string `json:"module"`
	Operation *string `json:"operation"`
	IDs       []zid   `json:"ids"`
	Token     *string `json:"token"`
}

// Webhook parses a Zoho notification (JSON, posted by a watch channel):
// "delete" names deleted records (Batch.Deleted), "insert" and "update"
// name records to read again (Batch.Refetch). Notifications about modules
// this adapter does not sync give an empty batch. Errors: EINVALID when
// the body is not a Zoho notification or names an unknown operation;
// EUNAUTHORIZED when the credentials have a webhook_token and the
// notification carries another.
func (s *source) Webhook(_ context.Context, contentType string, body []byte) (crm.Batch, error) {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/json" {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: content type %q is not application/json", contentType)
		}
	}
	var n notification
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &n) != nil {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: body is not a JSON object")
	}
	switch {
	case n.Module == nil || *n.Module == "":
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: module: required")
	case n.Operation == nil || *n.Operation == "":
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: operation: required")
	case len(n.IDs) == 0:
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: ids: required")
	}
	if s.webhookToken != "" {
		got := ""
		if n.Token != nil {
			got = *n.Token
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.webhookToken)) != 1 {
			return crm.Batch{}, domain.Errorf(domain.EUNAUTHORIZED, "zoho notification: token does not match the channel's")
		}
	}
	op := strings.ToLower(*n.Operation)
	if op != "insert" && op != "update" && op != "delete" {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "zoho notification: unknown operation %q", *n.Operation)
	}
	m, ok := moduleNamed(*n.Module)
	if !ok {
		return crm.Batch{}, nil
	}
	var refs []crm.Ref
	seen := make(map[zid]bool, len(n.IDs))
	for _, id := range n.IDs {
		if id != "" && !seen[id] {
			seen[id] = true
			refs = append(refs, crm.Ref{Kind: m.kind, ID: string(id)})
		}
	}
	if op == "delete" {
		return crm.Batch{Deleted: refs}, nil
	}
	return crm.Batch{Refetch: refs}, nil
}
