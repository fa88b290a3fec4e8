package notify

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Channel is the NOTIFY channel of the instances whose tables are in the
// schema public; in any other schema it is Channel + "." + the schema (see
// ChannelFor), so instances of separate deployments sharing a database
// never hear each other.
const Channel = "callrouter_changes"

// ChannelFor returns the NOTIFY channel of the instances on schema. The
// database's triggers (migration 0017, callrouter_channel) compute the
// same name.
func ChannelFor(schema string) string {
	if schema == "" || schema == "public" {
		return Channel
	}
	c := Channel + "." + schema
	// PostgreSQL truncates identifiers to 63 bytes; a long schema name gets
	// a hash instead, which stays distinct.
	if len(c) > 63 {
		sum := md5.Sum([]byte(schema))
		c = Channel + "." + hex.EncodeToString(sum[:])[:16]
	}
	return c
}

// Postgres is the Bus on PostgreSQL: Publish sends NOTIFY through the
// pool, and a listener on a dedicated connection (application_name
// "callrouter notify ORIGIN") applies the other instances' notifications.
// It is safe for concurrent use.
type Postgres struct {
	cfg     Config
	pool    *pgxpool.Pool
	channel string

	pid    atomic.Uint32 // backend of the listening connection, 0 while there is none
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

var _ Bus = (*Postgres)(nil)

// NewPostgres returns a Bus on the pool's database and schema (the
// search_path's current schema). It returns an error when cfg has no
// Origin or the schema cannot be read.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Postgres, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("notify: read the current schema: %w", err)
	}
	if schema == nil {
		return nil, errors.New("notify: no schema of the search_path exists")
	}
	return &Postgres{cfg: cfg, pool: pool, channel: ChannelFor(*schema)}, nil
}

// Channel returns the channel this bus publishes and listens on.
func (p *Postgres) Channel() string { return p.channel }

// ListenerPID returns the server process id of the listening connection
// (pg_stat_activity.pid), 0 while it is reconnecting or not started.
func (p *Postgres) ListenerPID() uint32 { return p.pid.Load() }

// Publish sends changes as notifications on the channel, all in one
// statement, so they arrive together and in order. It returns the
// database's error.
func (p *Postgres) Publish(ctx context.Context, changes ...Change) error {
	payloads, err := encode(&p.cfg, changes)
	if err != nil || len(payloads) == 0 {
		return err
	}
	if _, err := p.pool.Exec(ctx, `SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload`,
		p.channel, payloads); err != nil {
		failures.Inc()
		return fmt.Errorf("notify: publish: %w", err)
	}
	published.Add(len(payloads))
	return nil
}

// Start connects the listener and LISTENs, then applies notifications in
// the background until Close or ctx ends, reconnecting with backoff after
// a lost connection (and then resyncing a). It returns the connection's
// error when the first LISTEN fails; calling it twice is an error.
func (p *Postgres) Start(ctx context.Context, a Applier) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("notify: started twice")
	}
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go p.run(ctx, conn, a)
	return nil
}

// Close stops the listener and closes its connection. It returns nil.
func (p *Postgres) Close() error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// connect opens the listening connection with the pool's settings (the
// schema's search_path included) and LISTENs.
func (p *Postgres) connect(ctx context.Context) (*pgx.Conn, error) {
	cc := p.pool.Config().ConnConfig.Copy()
	name := "callrouter notify " + p.cfg.Origin
	if len(name) > 63 {
		name = name[:63]
	}
	cc.RuntimeParams["application_name"] = name
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		return nil, fmt.Errorf("notify: connect the listener: %w", err)
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("notify: LISTEN %s: %w", p.channel, err)
	}
	p.pid.Store(conn.PgConn().PID())
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx) //nolint:errcheck // the connection is being dropped
}

// run applies notifications until ctx ends. The connection is owned by
// this goroutine alone.
func (p *Postgres) run(ctx context.Context, conn *pgx.Conn, a Applier) {
	defer close(p.done)
	backoff := p.cfg.MinBackoff
	pending := false // a resync is owed: changes may have been missed or half applied
	drop := func(why string, err error) {
		p.pid.Store(0)
		closeConn(conn)
		conn = nil
		failures.Inc()
		p.cfg.Log.Warn("notify: listener connection lost; reconnecting, then dropping everything cached",
			zap.String("why", why), zap.Error(err))
	}
	for {
		if conn == nil {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, p.cfg.MaxBackoff)
			c, err := p.connect(ctx)
			if err != nil {
				failures.Inc()
				p.cfg.Log.Warn("notify: reconnect failed", zap.Error(err), zap.Duration("next_in", backoff))
				continue
			}
			conn, pending = c, true
			p.cfg.Log.Info("notify: listening again", zap.String("channel", p.channel))
		}
		// LISTEN is live again before the resync reads the database, so a
		// change committed meanwhile is either read or heard.
		if pending {
			if resync(ctx, &p.cfg, a) {
				pending, backoff = false, p.cfg.MinBackoff
			} else {
				backoff = min(2*backoff, p.cfg.MaxBackoff)
			}
		}
		wait := p.cfg.Probe
		if pending {
			wait = backoff
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if !receive(ctx, &p.cfg, n.Payload, a) {
				pending = true
			}
		case ctx.Err() != nil:
			p.pid.Store(0)
			closeConn(conn)
			return
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet: make sure the connection is really there, since a
			// half-open one would wait forever.
			pctx, cancel := context.WithTimeout(ctx, p.cfg.Probe)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				drop("ping", err)
			}
		default:
			drop("wait", err)
		}
	}
}
