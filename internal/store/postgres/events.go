package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

const eventColumns = `id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at, processed_at`

// InsertEvents stores each of evs unless its (tenant, uniqueid, kind) is
// stored, in one transaction, and calls enqueue with its pgx.Tx and the
// events stored. The inserts travel in one batch, one round trip, and the
// ids of duplicates in a second. ENOTFOUND for an unknown tenant.
func (db *DB) InsertEvents(ctx context.Context, evs []domain.CallEvent, enqueue func(ctx context.Context, tx any, stored []domain.CallEvent) error) ([]store.Inserted, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]store.Inserted, len(evs))
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		evs := append([]domain.CallEvent(nil), evs...)
		var b pgx.Batch
		for i := range evs {
			fields, err := json.Marshal(evs[i].Fields)
			if err != nil {
				return fmt.Errorf("encode event fields: %w", err)
			}
			if evs[i].ID == "" {
				evs[i].ID = store.NewID()
			}
			ev := evs[i]
			b.Queue(`INSERT INTO call_events (`+eventColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', '', 0, $7, NULL)
				ON CONFLICT (tenant_id, unique_id, kind) DO NOTHING RETURNING id`,
				ev.ID, ev.TenantID, ev.UniqueID, string(ev.Kind), ev.Partition, string(fields), db.stampOr(ev.ReceivedAt))
		}
		res := tx.SendBatch(ctx, &b)
		var dups []int
		for i := range evs {
			err := res.QueryRow().Scan(&out[i].ID)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				dups = append(dups, i)
			case err != nil:
				res.Close()
				return err
			default:
				out[i].Created = true
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		if len(dups) > 0 {
			var b pgx.Batch
			for _, i := range dups {
				b.Queue(`SELECT id FROM call_events WHERE tenant_id = $1 AND unique_id = $2 AND kind = $3`,
					evs[i].TenantID, evs[i].UniqueID, string(evs[i].Kind))
			}
			res := tx.SendBatch(ctx, &b)
			for _, i := range dups {
				if err := res.QueryRow().Scan(&out[i].ID); err != nil {
					res.Close()
					return err
				}
			}
			if err := res.Close(); err != nil {
				return err
			}
		}
		if enqueue == nil || len(dups) == len(evs) {
			return nil
		}
		stored := make([]domain.CallEvent, 0, len(evs)-len(dups))
		for i, ev := range evs {
			if out[i].Created {
				stored = append(stored, ev)
			}
		}
		return enqueue(ctx, tx, stored)
	})
	if err != nil {
		return nil, mapErr(err, "insert events", "event", evs[0].TenantID)
	}
	return out, nil
}

func scanEvent(row pgx.Row) (domain.CallEvent, error) {
	var (
		ev        domain.CallEvent
		kind      string
		fields    string
		processed *time.Time
	)
	if err := row.Scan(&ev.ID, &ev.TenantID, &ev.UniqueID, &kind, &ev.Partition, &fields, &ev.ReceivedAt,
		&ev.State, &ev.Note, &ev.Attempts, &ev.RetryAt, &processed); err != nil {
		return ev, err
	}
	ev.Kind = domain.EventKind(kind)
	if err := json.Unmarshal([]byte(fields), &ev.Fields); err != nil {
		return ev, fmt.Errorf("decode event fields: %w", err)
	}
	ev.ReceivedAt = ev.ReceivedAt.UTC()
	ev.RetryAt = ev.RetryAt.UTC()
	ev.ProcessedAt = utcOrZero(processed)
	return ev, nil
}

// Event returns one event. ENOTFOUND.
func (db *DB) Event(ctx context.Context, tenantID, id string) (domain.CallEvent, error) {
	ev, err := scanEvent(db.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM call_events
		WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return ev, mapErr(err, "get event", "event", tenantID)
}

// ListEvents returns a tenant's events matching f, failed and waiting
// ones first.
func (db *DB) ListEvents(ctx context.Context, tenantID string, f store.EventFilter) ([]domain.CallEvent, error) {
	where, args, limit := f.Where(func(n int) string { return "$" + strconv.Itoa(n) })
	args = append(append([]any{tenantID}, args...), limit)
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM call_events WHERE tenant_id = $1`+where+
		store.EventOrder+` LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, mapErr(err, "list events", "", tenantID)
	}
	defer rows.Close()
	var out []domain.CallEvent
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, mapErr(err, "list events", "", tenantID)
		}
		out = append(out, ev)
	}
	return out, mapErr(rows.Err(), "list events", "", tenantID)
}

// NextEvent returns the oldest waiting event of a partition. ENOTFOUND.
func (db *DB) NextEvent(ctx context.Context, tenantID, partition string) (domain.CallEvent, error) {
	ev, err := scanEvent(db.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM call_events
		WHERE tenant_id = $1 AND partition = $2 AND state = 'waiting' ORDER BY seq LIMIT 1`, tenantID, partition))
	return ev, mapErr(err, "next event", "waiting event", tenantID)
}

// FinishEvent moves a waiting event to state. ENOTFOUND when not waiting.
func (db *DB) FinishEvent(ctx context.Context, tenantID, id, state, note string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE call_events SET state = $3, note = $4, processed_at = $5
		WHERE tenant_id = $1 AND id = $2 AND state = 'waiting'`, tenantID, id, state, note, db.stamp())
	return mustAffect(tag, err, "finish event", "waiting event", tenantID)
}

// NoteAttempt counts a failed attempt. ENOTFOUND when not waiting.
func (db *DB) NoteAttempt(ctx context.Context, tenantID, id, errText string, retryAt time.Time) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `UPDATE call_events SET attempts = attempts + 1, note = $3, retry_at = $4
		WHERE tenant_id = $1 AND id = $2 AND state = 'waiting' RETURNING attempts`, tenantID, id, errText, retryAt.UTC()).Scan(&n)
	return n, mapErr(err, "note attempt", "waiting event", tenantID)
}

// WaitingPartitions returns partitions with an event waiting since before.
func (db *DB) WaitingPartitions(ctx context.Context, tenantID string, receivedBefore, dueBy time.Time, limit int) ([]store.Partition, error) {
	rows, _ := db.pool.Query(ctx, `SELECT DISTINCT tenant_id, partition FROM call_events
		WHERE state = 'waiting' AND received_at < $1 AND retry_at <= $2 AND ($3 = '' OR tenant_id = $3)
		ORDER BY tenant_id, partition LIMIT $4`, receivedBefore.UTC(), dueBy.UTC(), tenantID, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Partition, error) {
		var p store.Partition
		err := r.Scan(&p.TenantID, &p.Partition)
		return p, err
	})
	return out, mapErr(err, "waiting partitions", "", tenantID)
}

// DropWaiting drops a tenant's waiting events received before before.
func (db *DB) DropWaiting(ctx context.Context, tenantID string, before time.Time, note string) (int, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE call_events SET state = 'dropped', note = $3, processed_at = $4
		WHERE tenant_id = $1 AND state = 'waiting' AND received_at < $2`, tenantID, before, note, db.stamp())
	if err != nil {
		return 0, mapErr(err, "drop events", "", tenantID)
	}
	return int(tag.RowsAffected()), nil
}

// EventStats counts a tenant's events by state: waiting ones through their
// partial indexes, finished ones from the counters the triggers keep, so its
// cost does not grow with history.
func (db *DB) EventStats(ctx context.Context, tenantID string) (domain.EventStats, error) {
	var st domain.EventStats
	var oldest *time.Time
	err := db.pool.QueryRow(ctx, `SELECT count(*), min(received_at) FROM call_events
		WHERE tenant_id = $1 AND state = 'waiting'`, tenantID).Scan(&st.Waiting, &oldest)
	if err != nil {
		return st, mapErr(err, "event stats", "", tenantID)
	}
	if oldest != nil {
		st.OldestWaiting = oldest.UTC()
	}
	rows, _ := db.pool.Query(ctx, `SELECT state, n FROM event_state_counts WHERE tenant_id = $1`, tenantID)
	var (
		state string
		n     int
	)
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		st.Add(state, n)
		return nil
	})
	if err != nil {
		return st, mapErr(err, "event stats", "", tenantID)
	}
	err = db.pool.QueryRow(ctx, `SELECT count(*) FROM rejected_events WHERE tenant_id = $1`, tenantID).Scan(&st.Rejected)
	return st, mapErr(err, "event stats", "", tenantID)
}

// ExpireEvents deletes up to limit of a tenant's finished events (done,
// failed, dropped) received before before, oldest first, and the CRM
// writes of its that completed before before. It returns how many events
// it deleted.
func (db *DB) ExpireEvents(ctx context.Context, tenantID string, before time.Time, limit int) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM call_events WHERE seq IN (
		SELECT seq FROM call_events WHERE tenant_id = $1 AND state <> 'waiting' AND received_at < $2
		ORDER BY received_at LIMIT $3)`, tenantID, before, limit)
	if err != nil {
		return 0, mapErr(err, "expire events", "", tenantID)
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM crm_writes WHERE ctid IN (
		SELECT ctid FROM crm_writes WHERE created_at < $2 AND tenant_id = $1 AND entity_id <> '' LIMIT $3)`,
		tenantID, before, limit); err != nil {
		return int(tag.RowsAffected()), mapErr(err, "expire crm writes", "", tenantID)
	}
	return int(tag.RowsAffected()), nil
}

// RejectEvent keeps a refused body. ENOTFOUND for an unknown tenant.
func (db *DB) RejectEvent(ctx context.Context, r domain.RejectedEvent) error {
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO rejected_events (tenant_id, received_at, reason, content_type, body)
		VALUES ($1, $2, $3, $4, $5)`, r.TenantID, db.stampOr(r.ReceivedAt), r.Reason, r.ContentType, body)
	return mapErr(err, "reject event", "", r.TenantID)
}

// TrimRejected deletes a tenant's rejected bodies but its newest keep.
func (db *DB) TrimRejected(ctx context.Context, tenantID string, keep int) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM rejected_events WHERE tenant_id = $1 AND id <=
		(SELECT id FROM rejected_events WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`, tenantID, max(keep, 0))
	return int(tag.RowsAffected()), mapErr(err, "trim rejected", "", tenantID)
}

// ExpireRejected deletes a tenant's rejected bodies received before before.
func (db *DB) ExpireRejected(ctx context.Context, tenantID string, before time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM rejected_events WHERE tenant_id = $1 AND received_at < $2`, tenantID, before)
	return int(tag.RowsAffected()), mapErr(err, "expire rejected", "", tenantID)
}

// ListRejected returns a tenant's rejected bodies, newest first.
func (db *DB) ListRejected(ctx context.Context, tenantID string, limit int) ([]domain.RejectedEvent, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, tenant_id, received_at, reason, content_type, body
		FROM rejected_events WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2`, tenantID, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.RejectedEvent, error) {
		var e domain.RejectedEvent
		err := r.Scan(&e.ID, &e.TenantID, &e.ReceivedAt, &e.Reason, &e.ContentType, &e.Body)
		e.ReceivedAt = e.ReceivedAt.UTC()
		return e, err
	})
	return out, mapErr(err, "list rejected", "", tenantID)
}

// BeginWrite records a CRM create unless its key is recorded, and returns
// the stored record and whether this call recorded it.
func (db *DB) BeginWrite(ctx context.Context, w domain.CRMWrite) (domain.CRMWrite, bool, error) {
	var (
		out   domain.CRMWrite
		fresh = true
	)
	err := db.pool.QueryRow(ctx, `INSERT INTO crm_writes (tenant_id, key, kind, entity_id, created_at)
		VALUES ($1, $2, $3, '', $4) ON CONFLICT (tenant_id, key) DO NOTHING
		RETURNING tenant_id, key, kind, entity_id, created_at`,
		w.TenantID, w.Key, w.Kind, db.stamp()).Scan(&out.TenantID, &out.Key, &out.Kind, &out.EntityID, &out.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		fresh = false
		err = db.pool.QueryRow(ctx, `SELECT tenant_id, key, kind, entity_id, created_at FROM crm_writes
			WHERE tenant_id = $1 AND key = $2`, w.TenantID, w.Key).Scan(&out.TenantID, &out.Key, &out.Kind, &out.EntityID, &out.CreatedAt)
	}
	out.CreatedAt = out.CreatedAt.UTC()
	return out, fresh, mapErr(err, "begin write", "write", w.TenantID)
}

// FinishWrite stores the created entity's id. ENOTFOUND without BeginWrite.
func (db *DB) FinishWrite(ctx context.Context, tenantID, key, entityID string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE crm_writes SET entity_id = $3 WHERE tenant_id = $1 AND key = $2`,
		tenantID, key, entityID)
	return mustAffect(tag, err, "finish write", "write", tenantID)
}

// LeasePartition takes or renews a partition's lease for holder unless
// another holder's lease has not run out.
func (db *DB) LeasePartition(ctx context.Context, tenantID, partition, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	var got string
	err := db.pool.QueryRow(ctx, `INSERT INTO event_leases (tenant_id, partition, holder, until) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, partition) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE event_leases.holder = excluded.holder OR event_leases.until <= $5
		RETURNING holder`, tenantID, partition, holder, now.Add(ttl), now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr(err, "lease partition", "", tenantID)
}

// ReleasePartition ends holder's lease.
func (db *DB) ReleasePartition(ctx context.Context, tenantID, partition, holder string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM event_leases WHERE tenant_id = $1 AND partition = $2 AND holder = $3`,
		tenantID, partition, holder)
	return mapErr(err, "release partition", "", tenantID)
}
