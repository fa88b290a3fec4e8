package notify

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// pgSchema returns the test database URL and a fresh schema (dropped when
// the test ends), created by its first store.
func pgSchema(t *testing.T) (string, string) {
	t.Helper()
	url := storetest.PostgresURL(t)
	return url, storetest.FreshSchema(t, url)
}

// pgBus opens a store on the schema (one instance's pool) and a started
// bus on it applying to rec.
func pgBus(t *testing.T, url, schema, origin string, rec Applier, tune func(*Config)) *Postgres {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := Config{Origin: origin, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	b, err := NewPostgres(ctx, db.Pool(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rec != nil {
		if err := b.Start(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func count(rec *recorder) func() int {
	return func() int { got, _ := rec.snapshot(); return len(got) }
}

// Three instances on one schema: what one publishes reaches the two others
// in order, never itself.
func TestPostgresListeners(t *testing.T) {
	url, schema := pgSchema(t)
	ctx := context.Background()
	recs := []*recorder{{}, {}, {}}
	var buses []*Postgres
	for i, rec := range recs {
		buses = append(buses, pgBus(t, url, schema, []string{"a", "b", "c"}[i], rec, nil))
	}
	if buses[0].Channel() != "callrouter_changes."+schema {
		t.Fatalf("channel %q", buses[0].Channel())
	}
	if err := buses[0].Publish(ctx, Tenant("acme"), Keys("acme", []string{"671234567", "501112233"})); err != nil {
		t.Fatal(err)
	}
	if err := buses[1].Publish(ctx, Tenant("beta")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b and c hear a, a and c hear b", 5*time.Second, func() bool {
		return count(recs[0])() == 1 && count(recs[1])() == 2 && count(recs[2])() == 3
	})
	gotA, _ := recs[0].snapshot()
	gotB, _ := recs[1].snapshot()
	gotC, _ := recs[2].snapshot()
	if gotA[0].Tenant != "beta" {
		t.Fatalf("a applied %+v, want only b's change", gotA)
	}
	if gotB[0].Kind != KindTenant || gotB[0].Tenant != "acme" || gotB[1].Kind != KindKeys ||
		!slices.Equal(gotB[1].Keys, []string{"501112233", "671234567"}) {
		t.Fatalf("b applied %+v", gotB)
	}
	if !slices.EqualFunc(gotC[:2], gotB, func(x, y Change) bool { return x.Tenant == y.Tenant && x.Kind == y.Kind }) || gotC[2].Tenant != "beta" {
		t.Fatalf("c applied %+v", gotC)
	}
}

// A key list over the NOTIFY payload limit arrives as several
// notifications under 8000 bytes that carry every key; past MaxParts as
// one flush of the tenant.
func TestPostgresOversize(t *testing.T) {
	url, schema := pgSchema(t)
	ctx := context.Background()
	rec := &recorder{}
	pub := pgBus(t, url, schema, "a", nil, nil)
	pgBus(t, url, schema, "b", rec, nil)

	// A plain listener sees the payloads themselves.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{pub.Channel()}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	keys := keysOf(3000) // ≈ 36 kB
	if err := pub.Publish(ctx, Keys("acme", keys)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var heard []string
	for len(heard) < len(keys) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d keys in %d notifications: %v", len(heard), len(sizes), err)
		}
		sizes = append(sizes, len(n.Payload))
		heard = append(heard, decode(t, n.Payload).Keys...)
	}
	for _, s := range sizes {
		if s >= 8000 || s > 7000 {
			t.Fatalf("payload sizes %v: over the limit", sizes)
		}
	}
	if len(sizes) < 5 || !slices.Equal(heard, keys) {
		t.Fatalf("%d keys in %d notifications", len(heard), len(sizes))
	}
	waitFor(t, "b applies every part", 5*time.Second, func() bool { return count(rec)() == len(sizes) })
	var applied []string
	got, _ := rec.snapshot()
	for _, c := range got {
		applied = append(applied, c.Keys...)
	}
	if !slices.Equal(applied, keys) {
		t.Fatalf("b invalidated %d keys, want %d", len(applied), len(keys))
	}

	small := pgBus(t, url, schema, "c", nil, func(c *Config) { c.MaxParts = 2 })
	if err := small.Publish(ctx, Keys("acme", keys)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b applies the flush", 5*time.Second, func() bool { return count(rec)() == len(sizes)+1 })
	got, _ = rec.snapshot()
	if last := got[len(got)-1]; last.Kind != KindFlush || last.Tenant != "acme" {
		t.Fatalf("over MaxParts b got %+v, want a flush of acme", last)
	}
}

// Killing the listener's backend (pg_terminate_backend, as a failover or
// an admin would) makes it reconnect and resync — notifications sent while
// it was away are lost to it — and then hear again.
func TestPostgresReconnect(t *testing.T) {
	url, schema := pgSchema(t)
	ctx := context.Background()
	rec := &recorder{}
	pub := pgBus(t, url, schema, "a", nil, nil)
	sub := pgBus(t, url, schema, "b", rec, nil)
	pid := sub.ListenerPID()
	if pid == 0 {
		t.Fatal("no listener pid")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var app string
	if err := conn.QueryRow(ctx, `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, int32(pid)).Scan(&app); err != nil || app != "callrouter notify b" {
		t.Fatalf("the listener in pg_stat_activity: %q, %v", app, err)
	}
	var killed bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend: %v %v", killed, err)
	}
	waitFor(t, "the listener reconnects and resyncs", 10*time.Second, func() bool {
		_, resyncs := rec.snapshot()
		return resyncs == 1 && sub.ListenerPID() != 0
	})
	if sub.ListenerPID() == pid {
		t.Fatal("the listener kept its killed backend")
	}
	if err := pub.Publish(ctx, Tenant("acme")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnected listener hears", 5*time.Second, func() bool { return count(rec)() == 1 })
	if _, resyncs := rec.snapshot(); resyncs != 1 {
		t.Fatalf("%d resyncs after one lost connection", resyncs)
	}
}

// Instances on another schema of the same database never hear these
// (one channel per schema).
func TestPostgresSchemasApart(t *testing.T) {
	url, schema := pgSchema(t)
	_, other := pgSchema(t)
	ctx := context.Background()
	rec := &recorder{}
	here := pgBus(t, url, schema, "a", nil, nil)
	there := pgBus(t, url, other, "b", nil, nil)
	pgBus(t, url, other, "c", rec, nil)
	if err := here.Publish(ctx, Tenant("acme")); err != nil {
		t.Fatal(err)
	}
	// NOTIFY delivers in commit order: once the later marker arrives, an
	// earlier notification on a channel c listened to would have too.
	if err := there.Publish(ctx, Tenant("marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c hears its own schema", 5*time.Second, func() bool { return count(rec)() >= 1 })
	if got, _ := rec.snapshot(); len(got) != 1 || got[0].Tenant != "marker" {
		t.Fatalf("c applied %+v, want the marker only", got)
	}
}
