package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store"
)

// ReplaceCRMUsers replaces a tenant's CRM users in one transaction and
// reports whether the list changed. ENOTFOUND if the tenant does not
// exist; EINVALID for a user without an id or listed twice.
func (db *DB) ReplaceCRMUsers(ctx context.Context, tenantID string, users []store.CRMUser) (bool, error) {
	users, err := store.SortCRMUsers(users)
	if err != nil {
		return false, err
	}
	changed := false
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// The tenant row lock orders two refreshes of one tenant.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, tenantID).Scan(&one); err != nil {
			return err
		}
		old, err := listCRMUsers(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if slices.Equal(old, users) {
			return nil
		}
		changed = true
		if _, err := tx.Exec(ctx, `DELETE FROM crm_users WHERE tenant_id = $1`, tenantID); err != nil {
			return err
		}
		ids, names, emails, active := make([]string, len(users)), make([]string, len(users)), make([]string, len(users)), make([]bool, len(users))
		for i, u := range users {
			ids[i], names[i], emails[i], active[i] = u.ID, u.Name, u.Email, u.Active
		}
		_, err = tx.Exec(ctx, `INSERT INTO crm_users (tenant_id, id, name, email, active, listed_at)
			SELECT $1, u.id, u.name, u.email, u.active, $6
			FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[]) AS u (id, name, email, active)`,
			tenantID, ids, names, emails, active, db.stamp())
		return err
	})
	if err != nil {
		// No rows only comes from the tenant check.
		return false, mapErr(err, "replace crm users", fmt.Sprintf("tenant %q", tenantID), tenantID)
	}
	return changed, nil
}

// ListCRMUsers returns a tenant's CRM users ordered by id.
func (db *DB) ListCRMUsers(ctx context.Context, tenantID string) ([]store.CRMUser, error) {
	out, err := listCRMUsers(ctx, db.pool, tenantID)
	if err != nil {
		return nil, mapErr(err, "list crm users", "", tenantID)
	}
	return out, nil
}

// querier is what listCRMUsers needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func listCRMUsers(ctx context.Context, q querier, tenantID string) ([]store.CRMUser, error) {
	rows, _ := q.Query(ctx, `SELECT id, name, email, active FROM crm_users WHERE tenant_id = $1 ORDER BY id`, tenantID)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.CRMUser, error) {
		var u store.CRMUser
		err := r.Scan(&u.ID, &u.Name, &u.Email, &u.Active)
		return u, err
	})
}
