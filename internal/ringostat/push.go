package ringostat

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// Push sends a tenant's phone index to Ringostat Smart Phone: after
// connecting, every entity once, in batches of PushBatch contacts at most
// PushRate requests a second, resuming from the stored position after a
// restart or a failure; then the entities whose index rows changed since
// the last push (IndexChanged). Progress and the last error are stored
// for /status. A refused key marks the connection broken.
func (m *Manager) Push(ctx context.Context, tenantID string) error {
	c, conn, err := m.client(ctx, tenantID)
	if err != nil || conn.State != store.RingostatActive {
		return err
	}
	m.mu.Lock()
	restart := m.full[tenantID]
	delete(m.full, tenantID)
	m.mu.Unlock()
	if restart && conn.PushDone {
		if err := m.cfg.Store.SaveRingostatPush(ctx, tenantID, store.RingostatPush{}); err != nil {
			return err
		}
		conn.PushDone, conn.PushCursor = false, ""
	}
	origin, linker := m.origin(ctx, tenantID)
	if !conn.PushDone {
		if err := m.pushAll(ctx, c, conn, origin, linker); err != nil {
			return err
		}
	}
	return m.pushChanges(ctx, c, conn, origin, linker)
}

// pushAll sends the index from conn's cursor to the end.
func (m *Manager) pushAll(ctx context.Context, c *Client, conn store.RingostatConn, origin string, link linker) error {
	after := parseCursor(conn.PushCursor)
	for {
		// A full push outlasts the lease work() took: renew it per batch,
		// and stop if another instance has taken over.
		if m.cfg.Instance != "" {
			held, err := m.cfg.Store.LeaseRingostat(ctx, conn.TenantID, m.cfg.Instance, max(2*m.cfg.ReconcileInterval, time.Minute))
			if err != nil || !held {
				return err
			}
		}
		rows, err := m.cfg.Store.IndexEntities(ctx, conn.TenantID, after, m.cfg.PushBatch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return m.cfg.Store.SaveRingostatPush(ctx, conn.TenantID, store.RingostatPush{Cursor: formatCursor(after), Done: true})
		}
		contacts, err := contactsOf(conn.ProjectID, origin, link, rows)
		if err != nil {
			return err
		}
		if err := m.send(ctx, c, conn.TenantID, contacts); err != nil {
			return m.pushFailed(ctx, conn.TenantID, store.RingostatPush{Cursor: formatCursor(after)}, err)
		}
		last := rows[len(rows)-1]
		after = store.EntityRef{Kind: last.Kind, ID: last.EntityID}
		if err := m.cfg.Store.SaveRingostatPush(ctx, conn.TenantID, store.RingostatPush{Cursor: formatCursor(after),
			Pushed: len(contacts)}); err != nil {
			return err
		}
	}
}

// pushChanges sends the entities of the keys IndexChanged queued; on
// failure the keys are queued again.
func (m *Manager) pushChanges(ctx context.Context, c *Client, conn store.RingostatConn, origin string, link linker) error {
	m.mu.Lock()
	keys := m.pending[conn.TenantID]
	delete(m.pending, conn.TenantID)
	m.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	requeue := func() {
		list := make([]string, 0, len(keys))
		for k := range keys {
			list = append(list, k)
		}
		m.IndexChanged(conn.TenantID, list)
	}
	var refs []store.EntityRef
	seen := map[store.EntityRef]bool{}
	for k := range keys {
		rows, err := m.cfg.Store.LookupSuffix(ctx, conn.TenantID, k)
		if err != nil {
			requeue()
			return err
		}
		for _, r := range rows {
			ref := store.EntityRef{Kind: r.Kind, ID: r.EntityID}
			if !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
		}
	}
	for len(refs) > 0 {
		n := min(len(refs), m.cfg.PushBatch)
		rows, err := m.cfg.Store.EntityIndex(ctx, conn.TenantID, refs[:n])
		if err != nil {
			requeue()
			return err
		}
		refs = refs[n:]
		if len(rows) == 0 {
			continue
		}
		contacts, err := contactsOf(conn.ProjectID, origin, link, rows)
		if err != nil {
			return err
		}
		if err := m.send(ctx, c, conn.TenantID, contacts); err != nil {
			requeue()
			return m.pushFailed(ctx, conn.TenantID, store.RingostatPush{Keep: true}, err)
		}
		if err := m.cfg.Store.SaveRingostatPush(ctx, conn.TenantID, store.RingostatPush{Keep: true, Pushed: len(contacts)}); err != nil {
			return err
		}
	}
	return nil
}

// send pushes one batch at the manager's rate.
func (m *Manager) send(ctx context.Context, c *Client, tenantID string, contacts []Contact) error {
	if err := m.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("push contacts: %w", err)
	}
	if err := c.SyncContacts(ctx, contacts); err != nil {
		counter("callrouter_ringostat_push_failures_total", tenantID).Inc()
		return err
	}
	counter("callrouter_ringostat_push_requests_total", tenantID).Inc()
	counter("callrouter_ringostat_contacts_pushed_total", tenantID).Add(len(contacts))
	return nil
}

func (m *Manager) pushFailed(ctx context.Context, tenantID string, p store.RingostatPush, err error) error {
	err = m.failed(ctx, tenantID, err)
	p.Error = errText(err)
	if serr := m.cfg.Store.SaveRingostatPush(ctx, tenantID, p); serr != nil {
		return fmt.Errorf("%w (and recording it: %v)", err, serr)
	}
	return err
}

func formatCursor(r store.EntityRef) string {
	if r.Kind == "" && r.ID == "" {
		return ""
	}
	return string(r.Kind) + "/" + r.ID
}

func parseCursor(s string) store.EntityRef {
	kind, id, ok := strings.Cut(s, "/")
	if !ok {
		return store.EntityRef{}
	}
	return store.EntityRef{Kind: domain.ParseKind(kind), ID: id}
}

// contactsOf turns index rows, ordered by entity, into one contact per
// entity with all its phones. Leads and deals are sent with leadId, contacts
// and companies with externalId.
func contactsOf(projectID, origin string, link linker, rows []domain.IndexEntry) ([]Contact, error) {
	project, err := strconv.ParseInt(projectID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("project id %q: %w", projectID, err)
	}
	var out []Contact
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Kind == rows[i].Kind && rows[j].EntityID == rows[i].EntityID {
			j++
		}
		r := rows[i]
		id := r.EntityID
		name := strings.TrimSpace(r.Name)
		if name == "" {
			name = "+" + r.Phone
		}
		c := Contact{ProjectID: project, FullName: name, Origin: origin, Responsible: r.OwnerID,
			ContactDirections: make([]Direction, 0, j-i)}
		l := link(r.Kind, id)
		switch r.Kind {
		case domain.KindLead:
			c.LeadID, c.LeadLink = &id, l
		case domain.KindDeal:
			c.LeadID, c.DealLink = &id, l
		default:
			c.ExternalID, c.ContactLink = &id, l
		}
		for _, p := range rows[i:j] {
			c.ContactDirections = append(c.ContactDirections, Direction{Type: "phone", Name: "phone", Value: p.Phone})
		}
		out = append(out, c)
		i = j
	}
	return out, nil
}

// linker returns the address that opens an entity in the CRM, nil when
// unknown.
type linker func(kind domain.EntityKind, id string) *string

// origin returns the CRM name sent as origin and the linker for a
// tenant's CRM; "callrouter" and no links for an index filled by import.
func (m *Manager) origin(ctx context.Context, tenantID string) (string, linker) {
	in, err := m.cfg.Store.Integration(ctx, tenantID)
	if err != nil {
		return "callrouter", func(domain.EntityKind, string) *string { return nil }
	}
	return in.CRM, Links(in.CRM, in.BaseURL)
}

// Links returns the linker of a CRM at baseURL (the integration's): the
// web pages that open a lead, deal, contact or company. Unconfirmed for
// Zoho (web host derived from the API domain: www.zohoapis.eu →
// crm.zoho.eu; deals under the Potentials tab) and Uspacy
// (/crm/{leads|deals|contacts|companies}/{id} on the account's host).
func Links(crmName, baseURL string) linker {
	u, err := url.Parse(baseURL)
	none := func(domain.EntityKind, string) *string { return nil }
	if err != nil || u.Host == "" {
		return none
	}
	root := u.Scheme + "://" + u.Host
	str := func(s string) *string { return &s }
	esc := url.PathEscape
	switch crmName {
	case "amocrm":
		return func(k domain.EntityKind, id string) *string {
			seg := map[domain.EntityKind]string{domain.KindLead: "leads", domain.KindDeal: "leads",
				domain.KindContact: "contacts", domain.KindCompany: "companies"}[k]
			if seg == "" {
				return nil
			}
			return str(root + "/" + seg + "/detail/" + esc(id))
		}
	case "zoho":
		host := u.Host
		if i := strings.Index(host, "zohoapis."); i >= 0 {
			host = "crm.zoho." + host[i+len("zohoapis."):]
		}
		return func(k domain.EntityKind, id string) *string {
			tab := map[domain.EntityKind]string{domain.KindLead: "Leads", domain.KindDeal: "Potentials",
				domain.KindContact: "Contacts", domain.KindCompany: "Accounts"}[k]
			if tab == "" {
				return nil
			}
			return str("https://" + host + "/crm/tab/" + tab + "/" + esc(id))
		}
	case "retailcrm":
		return func(k domain.EntityKind, id string) *string {
			switch k {
			case domain.KindContact:
				return str(root + "/customers/" + esc(id))
			case domain.KindDeal, domain.KindLead:
				return str(root + "/orders/" + esc(id) + "/edit")
			}
			return nil
		}
	case "uspacy":
		return func(k domain.EntityKind, id string) *string {
			seg := map[domain.EntityKind]string{domain.KindLead: "leads", domain.KindDeal: "deals",
				domain.KindContact: "contacts", domain.KindCompany: "companies"}[k]
			if seg == "" {
				return nil
			}
			return str(root + "/crm/" + seg + "/" + esc(id))
		}
	}
	return none
}
