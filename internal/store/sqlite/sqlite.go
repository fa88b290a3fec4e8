// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), the default for a single-node deployment.
//
// One file holds everything. Writes go through a pool of exactly one
// connection, so writers queue in Go instead of failing with SQLITE_BUSY;
// reads go through a separate pool of several read-only connections, so a
// live call's index lookup never waits behind a sync writing thousands of
// rows (WAL lets readers and the writer proceed together).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on one SQLite database file. It is safe for
// concurrent use.
//
// Timestamps are stored in UTC with microsecond precision and come back so.
// The store stamps Tenant.CreatedAt/UpdatedAt, Employee.UpdatedAt and the
// times of an Integration with its clock; StopEntry.CreatedAt,
// IndexEntry.UpdatedAt and AuditEntry.At are kept when the caller sets them
// and stamped when they are zero.
type DB struct {
	w   *sql.DB // exactly one connection: all writes
	r   *sql.DB // read-only connections: all reads
	now func() time.Time

	lookup *sql.Stmt // on r: the live-call miss path
	upsert *sql.Stmt // on w: one phone-index row
	del    *sql.Stmt // on w: the rows of one entity
}

var _ store.Store = (*DB)(nil)

// Writer returns the store's single writer connection pool, for the job
// queue (River) to share: one connection serializes every writer of the
// file in Go instead of letting two connections meet SQLITE_BUSY.
func (db *DB) Writer() *sql.DB { return db.w }

type config struct {
	now         func() time.Time
	readConns   int
	busyTimeout time.Duration
}

// Option configures Open.
type Option func(*config)

// WithNow sets the clock used for the timestamps the store sets. The
// default is time.Now.
func WithNow(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithReadConns sets the number of read-only connections (default 4). Values
// below 1 are ignored.
func WithReadConns(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.readConns = n
		}
	}
}

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process before failing with SQLITE_BUSY (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.busyTimeout = d
		}
	}
}

// Open opens the SQLite database at path, creating the file and its parent
// directory if missing, and applies any pending migrations. It returns an
// EINVALID *domain.Error for a path it cannot use (empty, ":memory:", a
// "file:" URI or containing '?'), and a wrapped error if the directory, the database or a
// migration fails.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	cfg := config{now: time.Now, readConns: 4, busyTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	// The two pools must reach the same file, which rules out ":memory:";
	// the driver splits its parameters off at the first '?'.
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, domain.Errorf(domain.EINVALID, "sqlite: unusable database path %q: give a file path without '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create directory of %s: %w", path, err)
	}

	db := &DB{now: cfg.now}
	var err error
	if db.w, err = sql.Open("sqlite", dsn(path, cfg, false)); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxIdleTime(0)
	db.w.SetConnMaxLifetime(0)
	if err := connect(ctx, db.w, cfg.busyTimeout); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Migrate before the readers exist: the first writer connection switches
	// the file to WAL, which the read-only connections cannot do.
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}

	if db.r, err = sql.Open("sqlite", dsn(path, cfg, true)); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.r.SetMaxOpenConns(cfg.readConns)
	db.r.SetMaxIdleConns(cfg.readConns)
	db.r.SetConnMaxIdleTime(0)
	db.r.SetConnMaxLifetime(0)

	if db.lookup, err = db.r.PrepareContext(ctx, lookupSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare lookup: %w", err)
	}
	if db.upsert, err = db.w.PrepareContext(ctx, upsertIndexSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare upsert: %w", err)
	}
	if db.del, err = db.w.PrepareContext(ctx, deleteEntitySQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare delete: %w", err)
	}
	return db, nil
}

// connect opens the writer's connection. The connection switches a new
// file to WAL as it opens, and SQLite fails that switch with SQLITE_BUSY
// at once, without waiting out the busy timeout, while another process is
// switching the same file: connect retries that for up to patience.
func connect(ctx context.Context, w *sql.DB, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := w.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY ||
			time.Now().Add(delay).After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// dsn builds the data source name. Pragmas go in the DSN rather than
// being executed once, so every connection the pools open gets them.
func dsn(path string, cfg config, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_query_only", "1")
	} else {
		// FULL: in WAL mode NORMAL fsyncs only at checkpoints, so a commit
		// (and the 200 of the events in it) could be lost with the power.
		// FULL fsyncs the WAL at every commit; group commit shares that
		// fsync among the events of a batch.
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "journal_mode(WAL)")
		// BEGIN IMMEDIATE takes the write lock up front: a deferred
		// transaction that reads and then writes can fail with SQLITE_BUSY
		// against another process without the busy timeout helping.
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// Close closes both pools. It returns the first error met.
func (db *DB) Close() error {
	var errs []error
	for _, s := range []*sql.Stmt{db.lookup, db.upsert, db.del} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	for _, p := range []*sql.DB{db.r, db.w} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Version returns the number of migrations applied to the database.
// Errors are wrapped driver errors.
func (db *DB) Version(ctx context.Context) (int, error) {
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: read schema version: %w", err)
	}
	return n, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, in lexical order, each in its own transaction. The
// writer's transactions begin IMMEDIATE, so a second process opening the
// same file waits for the first and then finds the work done.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: list migrations: %w", err)
	}
	for _, name := range names { // fs.Glob returns names in lexical order
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("sqlite: read migration %s: %w", name, err)
		}
		if err := db.applyMigration(ctx, filepath.Base(name), string(body)); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, version, body string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", version, err)
	}
	defer tx.Rollback()
	// Created inside the IMMEDIATE transaction: as a bare statement it
	// would read before taking the write lock, and a concurrent migrator's
	// commit in between fails it with SQLITE_BUSY, busy timeout or not.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT    NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT, WITHOUT ROWID`); err != nil {
		return fmt.Errorf("sqlite: migration %s: create schema_migrations: %w", version, err)
	}
	var applied bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, version).Scan(&applied); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", version, err)
	}
	if applied {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, micros(db.stamp())); err != nil {
		return fmt.Errorf("sqlite: migration %s: record: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migration %s: commit: %w", version, err)
	}
	return nil
}

// mapErr is the one place SQLite errors become store errors. what names the
// row for ENOTFOUND (no rows) and ECONFLICT (duplicate key); tenantID names
// the parent a foreign-key violation is about; op prefixes anything else.
// A write refused for want of space (SQLITE_FULL: the disk, or a
// max_page_count) is EUNAVAILABLE, saying so.
func mapErr(err error, op, what, tenantID string) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "%s not found", what)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return domain.Errorf(domain.ECONFLICT, "%s already exists", what)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return domain.Errorf(domain.ENOTFOUND, "tenant %q not found", tenantID)
		}
		if se.Code()&0xff == sqlite3.SQLITE_FULL {
			// Nothing of the write was kept, and nothing will be until an
			// operator frees space: a condition to report as such (503),
			// not an internal error.
			return domain.Errorf(domain.EUNAVAILABLE, "sqlite: database or disk is full: %s was not stored; free space on the database's volume", op)
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// stamp returns the store clock's current time as it will read back.
func (db *DB) stamp() time.Time {
	return db.now().UTC().Truncate(time.Microsecond)
}

// stampOr returns t as it will read back, or the clock's time if t is zero.
func (db *DB) stampOr(t time.Time) time.Time {
	if t.IsZero() {
		return db.stamp()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
