// Package postgres implements store.Store on PostgreSQL through a pgx
// connection pool, for deployments of several stateless instances sharing
// one database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on a PostgreSQL database. It is safe for concurrent
// use.
//
// Timestamps are stored in UTC with microsecond precision and come back so.
// The store stamps Tenant.CreatedAt/UpdatedAt, Employee.UpdatedAt and the
// times of an Integration with its clock; StopEntry.CreatedAt,
// IndexEntry.UpdatedAt and AuditEntry.At are kept when the caller sets them
// and stamped when they are zero.
type DB struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	schema string // from WithSchema; "" means the connection's search_path decides
}

var _ store.Store = (*DB)(nil)

// Pool returns the connection pool, for the job queue (River) to share.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

type config struct {
	now    func() time.Time
	schema string
}

// Option configures Open.
type Option func(*config)

// WithNow sets the clock used for the timestamps the store sets. The
// default is time.Now.
func WithNow(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithSchema keeps every table in the named schema, which Open creates if
// missing, by making it the connections' search_path. Without it the
// search_path of the URL (e.g. "?search_path=callrouter") or the server's
// default decides, and that schema must exist.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value DSN; pool settings such as pool_max_conns go in it too) and
// applies any pending migrations. It returns an EINVALID *domain.Error for
// a URL it cannot parse, and a wrapped error if the database is unreachable
// or a migration fails.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn redacts the password from its parse errors.
		return nil, domain.Errorf(domain.EINVALID, "postgres: %v", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default, max(4, CPUs), leaves the event committers, the
		// job queue and route misses queueing for each other on a small
		// machine; connections are cheap next to that wait.
		pcfg.MaxConns = int32(max(12, 4*runtime.GOMAXPROCS(0)))
	}
	if _, set := pcfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		// A commit returns once its WAL is flushed, whatever the server's
		// default: the 200 of an event is sent after its commit, and a
		// server configured with synchronous_commit=off would lose it on a
		// crash. An operator who sets it in the URL decides otherwise.
		pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	if cfg.schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := &DB{pool: pool, now: cfg.now, schema: cfg.schema}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d/%s: %w",
			pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database, err)
	}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the pool, waiting for connections in use to be returned.
// It always returns nil.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Version returns the number of migrations applied to the database.
// Errors are wrapped driver errors.
func (db *DB) Version(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: read schema version: %w", err)
	}
	return n, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, in lexical order, each in its own transaction. Every
// transaction first takes an advisory lock keyed by the schema, so
// instances starting together apply each migration once: the others wait,
// then find it recorded.
func (db *DB) migrate(ctx context.Context) error {
	schema := db.schema
	if schema == "" {
		var cur *string
		if err := db.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if cur == nil {
			return fmt.Errorf("postgres: migrate: no schema of the search_path exists; create it or use WithSchema")
		}
		schema = *cur
	}
	h := fnv.New64a()
	h.Write([]byte("callrouter/migrate/" + schema))
	lock := int64(h.Sum64())

	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return err
		}
		if db.schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{db.schema}.Sanitize()); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    text COLLATE "C" PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: create schema_migrations: %w", err)
	}

	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: list migrations: %w", err)
	}
	for _, name := range names { // fs.Glob returns names in lexical order
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("postgres: read migration %s: %w", name, err)
		}
		version := path.Base(name)
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
				return err
			}
			var applied bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
				version).Scan(&applied); err != nil || applied {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				version, db.stamp())
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", version, err)
		}
	}
	return nil
}

// SQLSTATE codes mapErr translates.
const (
	codeUnique     = "23505" // unique_violation
	codeForeignKey = "23503" // foreign_key_violation
)

// mapErr is the one place PostgreSQL errors become store errors. what names
// the row for ENOTFOUND (no rows) and ECONFLICT (duplicate key); tenantID
// names the parent a foreign-key violation is about; op prefixes anything
// else.
func mapErr(err error, op, what, tenantID string) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "%s not found", what)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case codeUnique:
			return domain.Errorf(domain.ECONFLICT, "%s already exists", what)
		case codeForeignKey:
			return domain.Errorf(domain.ENOTFOUND, "tenant %q not found", tenantID)
		}
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
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
