package uspacy

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// hookEvent is the "event" object of a notification.
type hookEvent struct {
	Service   flexString   `json:"service"`
	TableName flexString   `json:"table_name"`
	Action    flexString   `json:"action"`
	Actions   []flexString `json:"actions"`
}

// hook is one notification in any of the accepted shapes.
type hook struct {
	Event     *hookEvent      `json:"event"`
	Service   flexString      `json:"service"`
	TableName flexString      `json:"table_name"`
	Action    flexString      `json:"action"`
	ID        flexString      `json:"id"`
	Entity    json.RawMessage `json:"entity"`
	Data      json.RawMessage `json:"data"`
}

// Webhook parses a notification Uspacy posted to callrouter; the accepted
// shapes are in the package documentation. The content type is not relied
// on: the body must be JSON. Errors: EINVALID when the body is not a
// notification.
func (s *source) Webhook(_ context.Context, _ string, body []byte) (crm.Batch, error) {
	body = bytes.TrimSpace(body)
	var hooks []hook
	switch {
	case len(body) > 0 && body[0] == '{':
		var h hook
		if err := json.Unmarshal(body, &h); err != nil {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy webhook: body is not valid JSON: %v", err)
		}
		hooks = []hook{h}
	case len(body) > 0 && body[0] == '[':
		if err := json.Unmarshal(body, &hooks); err != nil {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy webhook: body is not valid JSON: %v", err)
		}
		if len(hooks) == 0 {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy webhook: empty list of notifications")
		}
	default:
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "uspacy webhook: body is not a JSON notification")
	}
	var b crm.Batch
	for i := range hooks {
		if err := hooks[i].addTo(&b); err != nil {
			return crm.Batch{}, err
		}
	}
	return b, nil
}

// addTo adds what the notification says to b. EINVALID when it names no
// table or no entity id.
func (h *hook) addTo(b *crm.Batch) error {
	var ev hookEvent
	if h.Event != nil {
		ev = *h.Event
	}
	service := first(ev.Service, h.Service)
	tableName := first(ev.TableName, h.TableName)
	action := first(ev.Action, h.Action)
	if action == "" && len(ev.Actions) == 1 {
		action = string(ev.Actions[0])
	}
	if tableName == "" {
		return domain.Errorf(domain.EINVALID, "uspacy webhook: no table_name")
	}
	if service != "" && !strings.EqualFold(service, "crm") {
		return nil // another service's event: nothing callrouter indexes
	}
	ti := tableIndex(tableName)
	if ti < 0 {
		return nil // a CRM table callrouter does not index (tasks, products…)
	}
	t := tables()[ti]

	entity := h.Entity
	if len(entity) == 0 {
		entity = dataEntity(h.Data)
	}
	var fields map[string]json.RawMessage
	if len(entity) > 0 && json.Unmarshal(entity, &fields) != nil {
		fields = nil
	}
	var id flexString
	if raw, ok := fields["id"]; ok {
		_ = id.UnmarshalJSON(raw) // flexString never fails on valid JSON
	}
	if id == "" {
		id = h.ID
	}
	if !isID(string(id)) {
		return domain.Errorf(domain.EINVALID, "uspacy webhook: no numeric entity id for %s", t.name)
	}
	ref := crm.Ref{Kind: t.kind, ID: string(id)}

	switch strings.ToLower(action) {
	case "delete", "deleted", "destroy", "destroyed", "remove", "removed":
		b.Deleted = append(b.Deleted, ref)
		return nil
	}
	if complete(t.kind, fields) {
		var raw rawEntity
		if json.Unmarshal(entity, &raw) == nil {
			if e, ok := raw.entity(t.kind); ok {
				b.Entities = append(b.Entities, e)
				return nil
			}
		}
	}
	b.Refetch = append(b.Refetch, ref)
	return nil
}

// dataEntity returns the entity inside a notification's data: data.entity,
// or data itself when it is an entity (has an id).
func dataEntity(data json.RawMessage) json.RawMessage {
	var d map[string]json.RawMessage
	if json.Unmarshal(data, &d) != nil {
		return nil
	}
	if e, ok := d["entity"]; ok {
		return e
	}
	if _, ok := d["id"]; ok {
		return data
	}
	return nil
}

// complete reports whether an entity's fields carry all that indexing it
// needs, so that it need not be read again: the owner, the phones (a deal's
// come from its contacts) and, for leads and deals, the kanban status.
func complete(k domain.EntityKind, fields map[string]json.RawMessage) bool {
	has := func(key string) bool { _, ok := fields[key]; return ok }
	if !has("owner") {
		return false
	}
	switch k {
	case domain.KindDeal:
		return has("contacts") && has("kanban_status")
	case domain.KindLead:
		return has("phone") && has("kanban_status")
	default:
		return has("phone")
	}
}

// first returns the first non-empty value.
func first(vs ...flexString) string {
	for _, v := range vs {
		if v != "" {
			return string(v)
		}
	}
	return ""
}
