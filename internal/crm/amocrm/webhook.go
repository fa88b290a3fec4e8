package amocrm

import (
	"context"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// webhookKey matches the keys of an amoCRM notification that name an
// entity: <group>[<action>][<n>][id|type].
var webhookKey = regexp.MustCompile(`^(leads|contacts|companies)\[([a-z_]+)\]\[(\d+)\]\[(id|type)\]$`)

// webhookAction reports whether callrouter reads the entities of an
// action again (or drops them, for delete). Others, such as note, carry
// nothing that routes.
func webhookAction(a string) bool {
	switch a {
	case "add", "update", "delete", "status", "responsible", "restore":
		return true
	}
	return false
}

// Webhook parses a notification amoCRM posted: deleted entities are in
// Batch.Deleted, added or changed ones in Batch.Refetch (amoCRM's
// notifications carry custom fields only partly, so the engine reads the
// entity again). A notification with nothing callrouter uses (a note, a
// task) is an empty batch. Errors: EINVALID when the body is not an
// amoCRM form notification.
func (s *source) Webhook(_ context.Context, contentType string, body []byte) (crm.Batch, error) {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return crm.Batch{}, domain.Errorf(domain.EINVALID,
				"%s webhook: amoCRM posts application/x-www-form-urlencoded, not %q", name, contentType)
		}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "%s webhook: body is not a form", name)
	}
	type item struct {
		group, action, n string
	}
	ids, types := map[item]string{}, map[item]string{}
	fromAmo := false
	for key, vs := range form {
		if strings.HasPrefix(key, "account[") {
			fromAmo = true
		}
		m := webhookKey.FindStringSubmatch(key)
		if m == nil || len(vs) == 0 {
			continue
		}
		fromAmo = true
		if !webhookAction(m[2]) {
			continue
		}
		it := item{m[1], m[2], m[3]}
		if m[4] == "id" {
			ids[it] = vs[0]
		} else {
			types[it] = vs[0]
		}
	}
	if !fromAmo {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "%s webhook: no amoCRM entities or account in the body", name)
	}
	var b crm.Batch
	for it, raw := range ids {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "%s webhook: %s[%s][%s][id]: %q is not an id", name, it.group, it.action, it.n, raw)
		}
		ref := crm.Ref{Kind: webhookKind(it.group, types[it]), ID: strconv.FormatInt(id, 10)}
		if it.action == "delete" {
			b.Deleted = append(b.Deleted, ref)
		} else {
			b.Refetch = append(b.Refetch, ref)
		}
	}
	b.Deleted = sortRefs(b.Deleted)
	// A record deleted in the same delivery is not read again.
	b.Refetch = slices.DeleteFunc(sortRefs(b.Refetch), func(r crm.Ref) bool { return slices.Contains(b.Deleted, r) })
	return b, nil
}

// webhookKind is the kind of an entity of a notification group; amoCRM
// posts companies as contacts with type=company.
func webhookKind(group, typ string) domain.EntityKind {
	switch {
	case group == "leads":
		return domain.KindLead
	case group == "companies" || typ == "company":
		return domain.KindCompany
	}
	return domain.KindContact
}

// sortRefs sorts refs by kind and numeric id and drops duplicates, so that
// batches do not depend on map order.
func sortRefs(refs []crm.Ref) []crm.Ref {
	slices.SortFunc(refs, func(a, b crm.Ref) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		if c := len(a.ID) - len(b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return slices.Compact(refs)
}
