package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Applier that records what it is asked to do.
type recorder struct {
	mu      sync.Mutex
	changes []Change
	resyncs int
	fail    error // returned by Apply while set
}

func (r *recorder) Apply(_ context.Context, c Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.changes = append(r.changes, c)
	return nil
}

func (r *recorder) Resync(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs++
	return nil
}

func (r *recorder) snapshot() ([]Change, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes), r.resyncs
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keysOf(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("67%07d", i)
	}
	return ks
}

func testConfig(origin string) Config {
	cfg := Config{Origin: origin, Now: func() time.Time { return time.Unix(1700000000, 0) }}
	if err := cfg.defaults(); err != nil {
		panic(err)
	}
	return cfg
}

func decode(t *testing.T, payload string) message {
	t.Helper()
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	return m
}

// Small changes are one payload each, in order, carrying origin, time,
// tenant, kind and the deduplicated keys; an empty key list is dropped.
func TestEncodeSmall(t *testing.T) {
	cfg := testConfig("i1")
	got, err := encode(&cfg, []Change{Tenant("acme"), Keys("acme", []string{"671234567", "501112233", "671234567"}),
		Keys("acme", nil), Flush("beta")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d payloads: %q", len(got), got)
	}
	want := []message{
		{Origin: "i1", At: 1700000000000000, Tenant: "acme", Kind: KindTenant},
		{Origin: "i1", At: 1700000000000000, Tenant: "acme", Kind: KindKeys, Keys: []string{"501112233", "671234567"}},
		{Origin: "i1", At: 1700000000000000, Tenant: "beta", Kind: KindFlush},
	}
	for i, p := range got {
		if m := decode(t, p); !slices.Equal(m.Keys, want[i].Keys) || m.Origin != want[i].Origin || m.At != want[i].At ||
			m.Tenant != want[i].Tenant || m.Kind != want[i].Kind {
			t.Errorf("payload %d: %+v, want %+v", i, m, want[i])
		}
	}
	if _, err := encode(&cfg, []Change{{Tenant: "acme", Kind: "reboot"}}); err == nil {
		t.Fatal("an unknown kind must be refused")
	}
}

// A key list over the payload limit is split into payloads that each fit
// and together carry every key once; past MaxParts it becomes one flush.
func TestEncodeSplitsAndFlushes(t *testing.T) {
	cfg := testConfig("instance-with-a-long-name-0123456789")
	keys := keysOf(2000) // ≈ 24 kB of keys
	got, err := encode(&cfg, []Change{Keys("acme", keys)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 4 {
		t.Fatalf("2000 keys in %d payloads", len(got))
	}
	var all []string
	for _, p := range got {
		if len(p) > cfg.MaxPayload {
			t.Fatalf("a payload of %d bytes, over %d", len(p), cfg.MaxPayload)
		}
		m := decode(t, p)
		if m.Kind != KindKeys || m.Tenant != "acme" || len(m.Keys) == 0 {
			t.Fatalf("part %+v", m)
		}
		all = append(all, m.Keys...)
	}
	if !slices.Equal(all, keys) {
		t.Fatalf("the parts carry %d keys, want the %d given, once each", len(all), len(keys))
	}
	// Payloads are filled: a part is short only at the end.
	for _, p := range got[:len(got)-1] {
		if len(p) < cfg.MaxPayload-16 {
			t.Fatalf("a middle part of %d bytes leaves room for another key", len(p))
		}
	}

	cfg.MaxParts = len(got) - 1
	flush, err := encode(&cfg, []Change{Keys("acme", keys), Tenant("acme")})
	if err != nil {
		t.Fatal(err)
	}
	if len(flush) != 2 || decode(t, flush[0]).Kind != KindFlush || decode(t, flush[0]).Tenant != "acme" ||
		decode(t, flush[1]).Kind != KindTenant {
		t.Fatalf("over MaxParts: %q", flush)
	}

	cfg.MaxPayload = 100
	if _, err := encode(&cfg, []Change{Keys("acme", []string{strings.Repeat("9", 200)})}); err == nil {
		t.Fatal("a key that fits no payload must be an error")
	}
}

// receive applies other instances' changes, skips this instance's own and
// unreadable payloads, and reports a change that could not be applied.
func TestReceive(t *testing.T) {
	ctx := context.Background()
	mine, theirs := testConfig("me"), testConfig("them")
	payloads, err := encode(&theirs, []Change{Tenant("acme"), Keys("acme", []string{"671234567"})})
	if err != nil {
		t.Fatal(err)
	}
	own, err := encode(&mine, []Change{Tenant("acme")})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	for _, p := range append(append(payloads, own...), "{not json") {
		if !receive(ctx, &mine, p, rec) {
			t.Fatalf("receive(%q) failed", p)
		}
	}
	got, _ := rec.snapshot()
	if len(got) != 2 || got[0].Kind != KindTenant || got[1].Kind != KindKeys || !slices.Equal(got[1].Keys, []string{"671234567"}) {
		t.Fatalf("applied %+v", got)
	}
	rec.setFail(fmt.Errorf("store down"))
	if receive(ctx, &mine, payloads[0], rec) {
		t.Fatal("a change that could not be applied must be reported")
	}
}

func TestChannelFor(t *testing.T) {
	if ChannelFor("public") != Channel || ChannelFor("") != Channel {
		t.Fatal("the public schema uses the bare channel")
	}
	if ChannelFor("tenant_a") != "callrouter_changes.tenant_a" {
		t.Fatalf("ChannelFor(tenant_a) = %q", ChannelFor("tenant_a"))
	}
	a, b := ChannelFor(strings.Repeat("x", 60)+"a"), ChannelFor(strings.Repeat("x", 60)+"b")
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Fatalf("long schemas: %q, %q", a, b)
	}
}
