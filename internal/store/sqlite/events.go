package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

const eventColumns = `id, tenant_id, unique_id, kind, partition, fields, received_at, state, note, attempts, retry_at, processed_at`

// InsertEvents stores each of evs unless its (tenant, uniqueid, kind) is
// stored, in one transaction, and calls enqueue with its *sql.Tx and the
// events stored. ENOTFOUND for an unknown tenant.
func (db *DB) InsertEvents(ctx context.Context, evs []domain.CallEvent, enqueue func(ctx context.Context, tx any, stored []domain.CallEvent) error) ([]store.Inserted, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	tenantOf := evs[0].TenantID
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, "insert events", "", tenantOf)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	ins, err := tx.PrepareContext(ctx, `INSERT INTO call_events (`+eventColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting', '', 0, ?, NULL)
		ON CONFLICT (tenant_id, unique_id, kind) DO NOTHING RETURNING id`)
	if err != nil {
		return nil, mapErr(err, "insert events", "", tenantOf)
	}
	defer ins.Close()
	out := make([]store.Inserted, len(evs))
	var stored []domain.CallEvent
	for i, ev := range evs {
		fields, err := json.Marshal(ev.Fields)
		if err != nil {
			return nil, fmt.Errorf("sqlite: encode event fields: %w", err)
		}
		if ev.ID == "" {
			ev.ID = store.NewID()
		}
		at := micros(db.stampOr(ev.ReceivedAt))
		err = ins.QueryRowContext(ctx, ev.ID, ev.TenantID, ev.UniqueID, string(ev.Kind), ev.Partition, string(fields), at, at).Scan(&out[i].ID)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(ctx, `SELECT id FROM call_events WHERE tenant_id = ? AND unique_id = ? AND kind = ?`,
				ev.TenantID, ev.UniqueID, string(ev.Kind)).Scan(&out[i].ID)
			if err != nil {
				return nil, mapErr(err, "insert events", "event", ev.TenantID)
			}
			continue
		}
		if err != nil {
			return nil, mapErr(err, "insert events", "event", ev.TenantID)
		}
		out[i].Created = true
		stored = append(stored, ev)
	}
	if enqueue != nil && len(stored) > 0 {
		if err := enqueue(ctx, tx, stored); err != nil {
			// The jobs share the transaction and the file: a full disk
			// refuses them as it does the events.
			return nil, mapErr(err, "insert events: enqueue", "", tenantOf)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, mapErr(err, "insert events", "", tenantOf)
	}
	return out, nil
}

func scanEvent(s scanner) (domain.CallEvent, error) {
	var (
		ev              domain.CallEvent
		kind, fields    string
		received, retry int64
		processed       sql.NullInt64
	)
	if err := s.Scan(&ev.ID, &ev.TenantID, &ev.UniqueID, &kind, &ev.Partition, &fields, &received,
		&ev.State, &ev.Note, &ev.Attempts, &retry, &processed); err != nil {
		return ev, err
	}
	ev.Kind = domain.EventKind(kind)
	if err := json.Unmarshal([]byte(fields), &ev.Fields); err != nil {
		return ev, fmt.Errorf("decode event fields: %w", err)
	}
	ev.ReceivedAt = fromMicros(received)
	ev.RetryAt = fromMicros(retry)
	if processed.Valid {
		ev.ProcessedAt = fromMicros(processed.Int64)
	}
	return ev, nil
}

// Event returns one event. ENOTFOUND.
func (db *DB) Event(ctx context.Context, tenantID, id string) (domain.CallEvent, error) {
	ev, err := scanEvent(db.r.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM call_events
		WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return ev, mapErr(err, "get event", "event", tenantID)
}

// ListEvents returns a tenant's events matching f, failed and waiting
// ones first.
func (db *DB) ListEvents(ctx context.Context, tenantID string, f store.EventFilter) ([]domain.CallEvent, error) {
	where, args, limit := f.Where(func(int) string { return "?" })
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			args[i] = micros(t)
		}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM call_events WHERE tenant_id = ?`+where+
		store.EventOrder+` LIMIT ?`, append(append([]any{tenantID}, args...), limit)...)
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

// NextEvent returns the oldest waiting event of a partition. It reads
// through the writer so that it sees what the previous event's finish
// committed an instant ago. ENOTFOUND.
func (db *DB) NextEvent(ctx context.Context, tenantID, partition string) (domain.CallEvent, error) {
	ev, err := scanEvent(db.w.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM call_events
		WHERE tenant_id = ? AND partition = ? AND state = 'waiting' ORDER BY seq LIMIT 1`, tenantID, partition))
	return ev, mapErr(err, "next event", "waiting event", tenantID)
}

// FinishEvent moves a waiting event to state. ENOTFOUND when not waiting.
func (db *DB) FinishEvent(ctx context.Context, tenantID, id, state, note string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE call_events SET state = ?, note = ?, processed_at = ?
		WHERE tenant_id = ? AND id = ? AND state = 'waiting'`, state, note, micros(db.stamp()), tenantID, id)
	return affected(res, err, "finish event", "waiting event", tenantID)
}

// NoteAttempt counts a failed attempt. ENOTFOUND when not waiting.
func (db *DB) NoteAttempt(ctx context.Context, tenantID, id, errText string, retryAt time.Time) (int, error) {
	var n int
	err := db.w.QueryRowContext(ctx, `UPDATE call_events SET attempts = attempts + 1, note = ?, retry_at = ?
		WHERE tenant_id = ? AND id = ? AND state = 'waiting' RETURNING attempts`, errText, micros(retryAt), tenantID, id).Scan(&n)
	return n, mapErr(err, "note attempt", "waiting event", tenantID)
}

// WaitingPartitions returns partitions with an event waiting since before.
func (db *DB) WaitingPartitions(ctx context.Context, tenantID string, receivedBefore, dueBy time.Time, limit int) ([]store.Partition, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT tenant_id, partition FROM call_events
		WHERE state = 'waiting' AND received_at < ? AND retry_at <= ? AND (? = '' OR tenant_id = ?)
		ORDER BY tenant_id, partition LIMIT ?`, micros(receivedBefore), micros(dueBy), tenantID, tenantID, limit)
	if err != nil {
		return nil, mapErr(err, "waiting partitions", "", tenantID)
	}
	defer rows.Close()
	var out []store.Partition
	for rows.Next() {
		var p store.Partition
		if err := rows.Scan(&p.TenantID, &p.Partition); err != nil {
			return nil, mapErr(err, "waiting partitions", "", tenantID)
		}
		out = append(out, p)
	}
	return out, mapErr(rows.Err(), "waiting partitions", "", tenantID)
}

// DropWaiting drops a tenant's waiting events received before before.
func (db *DB) DropWaiting(ctx context.Context, tenantID string, before time.Time, note string) (int, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE call_events SET state = 'dropped', note = ?, processed_at = ?
		WHERE tenant_id = ? AND state = 'waiting' AND received_at < ?`, note, micros(db.stamp()), tenantID, micros(before))
	if err != nil {
		return 0, mapErr(err, "drop events", "", tenantID)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "drop events", "", tenantID)
}

// EventStats counts a tenant's events by state: waiting ones through their
// partial indexes, finished ones from the counters the triggers keep, so its
// cost does not grow with history.
func (db *DB) EventStats(ctx context.Context, tenantID string) (domain.EventStats, error) {
	var st domain.EventStats
	var oldest sql.NullInt64
	if err := db.r.QueryRowContext(ctx, `SELECT count(*), min(received_at) FROM call_events
		WHERE tenant_id = ? AND state = 'waiting'`, tenantID).Scan(&st.Waiting, &oldest); err != nil {
		return st, mapErr(err, "event stats", "", tenantID)
	}
	if oldest.Valid {
		st.OldestWaiting = fromMicros(oldest.Int64)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT state, n FROM event_state_counts WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return st, mapErr(err, "event stats", "", tenantID)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			state string
			n     int
		)
		if err := rows.Scan(&state, &n); err != nil {
			return st, mapErr(err, "event stats", "", tenantID)
		}
		st.Add(state, n)
	}
	if err := rows.Err(); err != nil {
		return st, mapErr(err, "event stats", "", tenantID)
	}
	err = db.r.QueryRowContext(ctx, `SELECT count(*) FROM rejected_events WHERE tenant_id = ?`, tenantID).Scan(&st.Rejected)
	return st, mapErr(err, "event stats", "", tenantID)
}

// ExpireEvents deletes up to limit of a tenant's finished events (done,
// failed, dropped) received before before, oldest first, and the CRM
// writes of its that completed before before. It returns how many events
// it deleted.
func (db *DB) ExpireEvents(ctx context.Context, tenantID string, before time.Time, limit int) (int, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM call_events WHERE seq IN (
		SELECT seq FROM call_events WHERE tenant_id = ? AND state <> 'waiting' AND received_at < ?
		ORDER BY received_at LIMIT ?)`, tenantID, micros(before), limit)
	if err != nil {
		return 0, mapErr(err, "expire events", "", tenantID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, mapErr(err, "expire events", "", tenantID)
	}
	if _, err := db.w.ExecContext(ctx, `DELETE FROM crm_writes WHERE tenant_id = ? AND key IN (
		SELECT key FROM crm_writes WHERE tenant_id = ? AND created_at < ? AND entity_id <> '' LIMIT ?)`,
		tenantID, tenantID, micros(before), limit); err != nil {
		return int(n), mapErr(err, "expire crm writes", "", tenantID)
	}
	return int(n), nil
}

// RejectEvent keeps a refused body. ENOTFOUND for an unknown tenant.
func (db *DB) RejectEvent(ctx context.Context, r domain.RejectedEvent) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO rejected_events (tenant_id, received_at, reason, content_type, body)
		VALUES (?, ?, ?, ?, ?)`, r.TenantID, micros(db.stampOr(r.ReceivedAt)), r.Reason, r.ContentType, blob(r.Body))
	return mapErr(err, "reject event", "", r.TenantID)
}

// TrimRejected deletes a tenant's rejected bodies but its newest keep.
func (db *DB) TrimRejected(ctx context.Context, tenantID string, keep int) (int, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM rejected_events WHERE tenant_id = ? AND id <=
		(SELECT id FROM rejected_events WHERE tenant_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, tenantID, tenantID, max(keep, 0))
	if err != nil {
		return 0, mapErr(err, "trim rejected", "", tenantID)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "trim rejected", "", tenantID)
}

// ExpireRejected deletes a tenant's rejected bodies received before before.
func (db *DB) ExpireRejected(ctx context.Context, tenantID string, before time.Time) (int, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM rejected_events WHERE tenant_id = ? AND received_at < ?`,
		tenantID, micros(before))
	if err != nil {
		return 0, mapErr(err, "expire rejected", "", tenantID)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "expire rejected", "", tenantID)
}

// ListRejected returns a tenant's rejected bodies, newest first.
func (db *DB) ListRejected(ctx context.Context, tenantID string, limit int) ([]domain.RejectedEvent, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, received_at, reason, content_type, body
		FROM rejected_events WHERE tenant_id = ? ORDER BY id DESC LIMIT ?`, tenantID, limit)
	if err != nil {
		return nil, mapErr(err, "list rejected", "", tenantID)
	}
	defer rows.Close()
	var out []domain.RejectedEvent
	for rows.Next() {
		var (
			r  domain.RejectedEvent
			at int64
		)
		if err := rows.Scan(&r.ID, &r.TenantID, &at, &r.Reason, &r.ContentType, &r.Body); err != nil {
			return nil, mapErr(err, "list rejected", "", tenantID)
		}
		r.ReceivedAt = fromMicros(at)
		out = append(out, r)
	}
	return out, mapErr(rows.Err(), "list rejected", "", tenantID)
}

// BeginWrite records a CRM create unless its key is recorded, and returns
// the stored record and whether this call recorded it.
func (db *DB) BeginWrite(ctx context.Context, w domain.CRMWrite) (domain.CRMWrite, bool, error) {
	var (
		out   domain.CRMWrite
		at    int64
		fresh = true
	)
	err := db.w.QueryRowContext(ctx, `INSERT INTO crm_writes (tenant_id, key, kind, entity_id, created_at)
		VALUES (?, ?, ?, '', ?) ON CONFLICT (tenant_id, key) DO NOTHING
		RETURNING tenant_id, key, kind, entity_id, created_at`,
		w.TenantID, w.Key, w.Kind, micros(db.stamp())).Scan(&out.TenantID, &out.Key, &out.Kind, &out.EntityID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		fresh = false
		err = db.w.QueryRowContext(ctx, `SELECT tenant_id, key, kind, entity_id, created_at FROM crm_writes
			WHERE tenant_id = ? AND key = ?`, w.TenantID, w.Key).Scan(&out.TenantID, &out.Key, &out.Kind, &out.EntityID, &at)
	}
	out.CreatedAt = fromMicros(at)
	return out, fresh, mapErr(err, "begin write", "write", w.TenantID)
}

// FinishWrite stores the created entity's id. ENOTFOUND without BeginWrite.
func (db *DB) FinishWrite(ctx context.Context, tenantID, key, entityID string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE crm_writes SET entity_id = ? WHERE tenant_id = ? AND key = ?`,
		entityID, tenantID, key)
	return affected(res, err, "finish write", "write", tenantID)
}

// affected maps an update that touched no row to ENOTFOUND.
func affected(res sql.Result, err error, op, what, tenantID string) error {
	if err != nil {
		return mapErr(err, op, what, tenantID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(err, op, what, tenantID)
	}
	if n == 0 {
		return domain.Errorf(domain.ENOTFOUND, "%s not found", what)
	}
	return nil
}

// LeasePartition takes or renews a partition's lease for holder unless
// another holder's lease has not run out.
func (db *DB) LeasePartition(ctx context.Context, tenantID, partition, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	var got string
	err := db.w.QueryRowContext(ctx, `INSERT INTO event_leases (tenant_id, partition, holder, until) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, partition) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE event_leases.holder = excluded.holder OR event_leases.until <= ?
		RETURNING holder`, tenantID, partition, holder, micros(now.Add(ttl)), micros(now)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr(err, "lease partition", "", tenantID)
}

// ReleasePartition ends holder's lease.
func (db *DB) ReleasePartition(ctx context.Context, tenantID, partition, holder string) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM event_leases WHERE tenant_id = ? AND partition = ? AND holder = ?`,
		tenantID, partition, holder)
	return mapErr(err, "release partition", "", tenantID)
}
