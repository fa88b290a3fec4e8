package console

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// memMeta is store.Meta in memory.
type memMeta struct {
	mu sync.Mutex
	m  map[string]string
}

func (m *memMeta) GetMeta(_ context.Context, key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	if !ok {
		return "", domain.Errorf(domain.ENOTFOUND, "no %s", key)
	}
	return v, nil
}

func (m *memMeta) SetMetaIfAbsent(_ context.Context, key, value string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[key]; ok {
		return false, nil
	}
	m.m[key] = value
	return true, nil
}

func (m *memMeta) SetMeta(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = value
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSessions(t *testing.T) {
	ctx := context.Background()
	meta := &memMeta{m: map[string]string{}}
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s, err := NewSessions(ctx, meta, clk.now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("token"))
	cookie, issued := s.Issue(sum[:])
	if strings.Contains(cookie, "token") {
		t.Fatalf("cookie %q carries the token", cookie)
	}
	got, err := s.Verify(ctx, []byte(cookie))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.TokenHash) != string(sum[:]) || got.CSRF != issued.CSRF || got.ID != issued.ID {
		t.Fatalf("verified %+v, issued %+v", got, issued)
	}

	// A second instance on the same database honours the session.
	other, err := NewSessions(ctx, meta, clk.now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify(ctx, []byte(cookie)); err != nil {
		t.Fatalf("other instance: %v", err)
	}

	if !s.CheckCSRF(got, []byte(issued.CSRF)) || s.CheckCSRF(got, nil) || s.CheckCSRF(got, []byte(issued.CSRF+"x")) {
		t.Fatal("CheckCSRF accepts the wrong token or refuses the right one")
	}
	_, second := s.Issue(sum[:])
	if second.CSRF == issued.CSRF {
		t.Fatal("two sessions share a CSRF token")
	}

	for name, bad := range map[string]string{
		"tampered payload": strings.Replace(cookie, "v1.", "v1.x", 1),
		"tampered mac":     cookie[:len(cookie)-2] + "AA",
		"no mac":           cookie[:strings.LastIndexByte(cookie, '.')],
		"empty":            "",
		"garbage":          "a.b.c.d.e",
	} {
		if _, err := s.Verify(ctx, []byte(bad)); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
			t.Errorf("%s: err %v, want unauthorized", name, err)
		}
	}

	clk.t = clk.t.Add(time.Hour)
	if _, err := s.Verify(ctx, []byte(cookie)); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Fatalf("expired: err %v, want unauthorized", err)
	}
	clk.t = clk.t.Add(-time.Minute)
	if err := s.End(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify(ctx, []byte(cookie)); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Fatalf("signed out: err %v, want unauthorized on every instance", err)
	}
}

func TestSessionsRefuseCorruptKey(t *testing.T) {
	meta := &memMeta{m: map[string]string{metaKey: "not hex"}}
	if _, err := NewSessions(context.Background(), meta, nil, 0); err == nil {
		t.Fatal("a corrupt stored key was accepted")
	}
}
