package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/store"
)

// InsertRouteDecisions stores ds in one transaction; a call id already kept
// keeps its first decision, and a decision of an unknown tenant is skipped.
func (db *DB) InsertRouteDecisions(ctx context.Context, ds []store.RouteDecision) error {
	if len(ds) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "insert route decisions", "", "")
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	// The EXISTS keeps a decision of a tenant deleted since the route
	// answer from failing the whole batch on the foreign key.
	ins, err := tx.PrepareContext(ctx, `INSERT INTO route_decisions (tenant_id, call_id, at, owner_id, target, reason)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?1)
		ON CONFLICT (tenant_id, call_id) DO NOTHING`)
	if err != nil {
		return mapErr(err, "insert route decisions", "", "")
	}
	defer ins.Close()
	for _, d := range ds {
		if _, err := ins.ExecContext(ctx, d.TenantID, d.CallID, micros(db.stampOr(d.At)), d.OwnerID, d.Target, d.Reason); err != nil {
			return mapErr(err, "insert route decisions", "route decision", d.TenantID)
		}
	}
	return mapErr(tx.Commit(), "insert route decisions", "", "")
}

// RoutedCalls calls fn for each decision of a tenant in [from, to), oldest
// first, with the fields of its call's call_answered and call_end events.
func (db *DB) RoutedCalls(ctx context.Context, tenantID string, from, to time.Time, fn func(store.RoutedCall) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT d.call_id, d.at, d.owner_id, d.target, d.reason, a.fields, e.fields
		FROM route_decisions d
		LEFT JOIN call_events a ON a.tenant_id = d.tenant_id AND a.unique_id = d.call_id AND a.kind = 'call_answered'
		LEFT JOIN call_events e ON e.tenant_id = d.tenant_id AND e.unique_id = d.call_id AND e.kind = 'call_end'
		WHERE d.tenant_id = ? AND d.at >= ? AND d.at < ? ORDER BY d.at, d.call_id`, tenantID, micros(from), micros(to))
	if err != nil {
		return mapErr(err, "routed calls", "", tenantID)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c      store.RoutedCall
			at     int64
			ans, e sql.NullString
		)
		if err := rows.Scan(&c.CallID, &at, &c.OwnerID, &c.Target, &c.Reason, &ans, &e); err != nil {
			return mapErr(err, "routed calls", "", tenantID)
		}
		c.TenantID, c.At = tenantID, fromMicros(at)
		if c.Answered, err = eventFields(ans); err != nil {
			return err
		}
		if c.End, err = eventFields(e); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return mapErr(rows.Err(), "routed calls", "", tenantID)
}

// eventFields decodes an event's stored fields; nil for a call without the
// event.
func eventFields(s sql.NullString) (map[string]string, error) {
	if !s.Valid {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("sqlite: decode event fields: %w", err)
	}
	return m, nil
}

// ExpireRouteDecisions deletes up to limit of a tenant's decisions made
// before before, oldest first.
func (db *DB) ExpireRouteDecisions(ctx context.Context, tenantID string, before time.Time, limit int) (int, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM route_decisions WHERE tenant_id = ? AND call_id IN (
		SELECT call_id FROM route_decisions WHERE tenant_id = ? AND at < ? ORDER BY at LIMIT ?)`,
		tenantID, tenantID, micros(before), limit)
	if err != nil {
		return 0, mapErr(err, "expire route decisions", "", tenantID)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "expire route decisions", "", tenantID)
}

// DeleteTenant removes a tenant in one transaction: the meta rows kept
// per tenant (store.TenantMeta), then the tenant row; every table keyed by
// it references it with ON DELETE CASCADE (foreign_keys is on for every
// connection), so that removes everything else kept for it. The audit log
// has no foreign key and keeps its rows.
func (db *DB) DeleteTenant(ctx context.Context, id string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "delete tenant", "", id)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, kind := range store.TenantMeta {
		prefix := store.TenantMetaKey(kind, id, "")
		// A prefix compare, not LIKE: tenant ids may hold '_'.
		if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE substr(key, 1, length(?1)) = ?1`, prefix); err != nil {
			return mapErr(err, "delete tenant: meta", "", id)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
	if err := mustAffect(res, err, "delete tenant", fmt.Sprintf("tenant %q", id), id); err != nil {
		return err
	}
	return mapErr(tx.Commit(), "delete tenant", "", id)
}
