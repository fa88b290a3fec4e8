package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store"
)

// InsertRouteDecisions stores ds in one transaction (one round trip); a
// call id already kept keeps its first decision, and a decision of an
// unknown tenant is skipped.
func (db *DB) InsertRouteDecisions(ctx context.Context, ds []store.RouteDecision) error {
	if len(ds) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, d := range ds {
			// The EXISTS keeps a decision of a tenant deleted since the
			// route answer from failing the whole batch on the foreign key.
			b.Queue(`INSERT INTO route_decisions (tenant_id, call_id, at, owner_id, target, reason)
				SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
				ON CONFLICT (tenant_id, call_id) DO NOTHING`,
				d.TenantID, d.CallID, db.stampOr(d.At), d.OwnerID, d.Target, d.Reason)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return mapErr(err, "insert route decisions", "route decision", ds[0].TenantID)
}

// RoutedCalls calls fn for each decision of a tenant in [from, to), oldest
// first, with the fields of its call's call_answered and call_end events.
func (db *DB) RoutedCalls(ctx context.Context, tenantID string, from, to time.Time, fn func(store.RoutedCall) error) error {
	rows, err := db.pool.Query(ctx, `SELECT d.call_id, d.at, d.owner_id, d.target, d.reason, a.fields, e.fields
		FROM route_decisions d
		LEFT JOIN call_events a ON a.tenant_id = d.tenant_id AND a.unique_id = d.call_id AND a.kind = 'call_answered'
		LEFT JOIN call_events e ON e.tenant_id = d.tenant_id AND e.unique_id = d.call_id AND e.kind = 'call_end'
		WHERE d.tenant_id = $1 AND d.at >= $2 AND d.at < $3 ORDER BY d.at, d.call_id`, tenantID, from, to)
	if err != nil {
		return mapErr(err, "routed calls", "", tenantID)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c      store.RoutedCall
			ans, e *string
		)
		if err := rows.Scan(&c.CallID, &c.At, &c.OwnerID, &c.Target, &c.Reason, &ans, &e); err != nil {
			return mapErr(err, "routed calls", "", tenantID)
		}
		c.TenantID, c.At = tenantID, c.At.UTC()
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
func eventFields(s *string) (map[string]string, error) {
	if s == nil {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(*s), &m); err != nil {
		return nil, fmt.Errorf("postgres: decode event fields: %w", err)
	}
	return m, nil
}

// ExpireRouteDecisions deletes up to limit of a tenant's decisions made
// before before, oldest first.
func (db *DB) ExpireRouteDecisions(ctx context.Context, tenantID string, before time.Time, limit int) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM route_decisions WHERE tenant_id = $1 AND call_id IN (
		SELECT call_id FROM route_decisions WHERE tenant_id = $1 AND at < $2 ORDER BY at LIMIT $3)`,
		tenantID, before, limit)
	if err != nil {
		return 0, mapErr(err, "expire route decisions", "", tenantID)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteTenant removes a tenant in one transaction: the meta rows kept
// per tenant (store.TenantMeta), then the tenant row; every table keyed by
// it references it with ON DELETE CASCADE, so that removes everything else
// kept for it. The audit log has no foreign key and keeps its rows.
func (db *DB) DeleteTenant(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, kind := range store.TenantMeta {
			// A prefix compare, not LIKE: tenant ids may hold '_'.
			if _, err := tx.Exec(ctx, `DELETE FROM meta WHERE left(key, length($1)) = $1`, store.TenantMetaKey(kind, id, "")); err != nil {
				return mapErr(err, "delete tenant: meta", "", id)
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, id)
		return mustAffect(tag, err, "delete tenant", fmt.Sprintf("tenant %q", id), id)
	})
}
