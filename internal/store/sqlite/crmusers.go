package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

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
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, mapErr(err, "replace crm users", "", tenantID)
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID).Scan(&one); err != nil {
		return false, mapErr(err, "replace crm users", fmt.Sprintf("tenant %q", tenantID), tenantID)
	}
	old, err := listCRMUsers(ctx, tx, tenantID)
	if err != nil {
		return false, mapErr(err, "replace crm users", "", tenantID)
	}
	if slices.Equal(old, users) {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM crm_users WHERE tenant_id = ?`, tenantID); err != nil {
		return false, mapErr(err, "replace crm users", "", tenantID)
	}
	now := micros(db.stamp())
	for _, u := range users {
		if _, err := tx.ExecContext(ctx, `INSERT INTO crm_users (tenant_id, id, name, email, active, listed_at)
			VALUES (?, ?, ?, ?, ?, ?)`, tenantID, u.ID, u.Name, u.Email, u.Active, now); err != nil {
			return false, mapErr(err, "replace crm users", "", tenantID)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, mapErr(err, "replace crm users: commit", "", tenantID)
	}
	return true, nil
}

// ListCRMUsers returns a tenant's CRM users ordered by id.
func (db *DB) ListCRMUsers(ctx context.Context, tenantID string) ([]store.CRMUser, error) {
	out, err := listCRMUsers(ctx, db.r, tenantID)
	if err != nil {
		return nil, mapErr(err, "list crm users", "", tenantID)
	}
	return out, nil
}

// querier is what listCRMUsers needs of a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func listCRMUsers(ctx context.Context, q querier, tenantID string) ([]store.CRMUser, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, email, active FROM crm_users WHERE tenant_id = ? ORDER BY id`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.CRMUser
	for rows.Next() {
		var u store.CRMUser
		if err := rows.Scan(&u.ID, &u.Name, &u.Email, &u.Active); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
