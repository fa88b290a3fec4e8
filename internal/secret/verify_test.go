package secret

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// memMeta is an in-memory Meta.
type memMeta struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memMeta) GetMeta(_ context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return "", domain.Errorf(domain.ENOTFOUND, "meta key %q not found", key)
	}
	return v, nil
}

func (s *memMeta) SetMetaIfAbsent(_ context.Context, key, value string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return false, nil
	}
	s.m[key] = value
	return true, nil
}

// The first start records a check value; later starts with the same key
// pass, and a start with another key fails with an error naming the key.
func TestVerifyKey(t *testing.T) {
	ctx := context.Background()
	meta := &memMeta{m: map[string]string{}}
	if err := VerifyKey(ctx, must(New(key(1))), meta); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if len(meta.m) != 1 {
		t.Fatalf("first start stored %d meta values, want the check value", len(meta.m))
	}
	if err := VerifyKey(ctx, must(New(key(1))), meta); err != nil {
		t.Fatalf("same key again: %v", err)
	}
	err := VerifyKey(ctx, must(New(key(2))), meta)
	if err == nil || !strings.Contains(err.Error(), "ROUTER_SECRET_KEY") {
		t.Fatalf("another key: %v, want an error naming ROUTER_SECRET_KEY", err)
	}
	meta.m[metaKeyCheck] = "not base64!"
	if err := VerifyKey(ctx, must(New(key(1))), meta); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt check value: %v", err)
	}
}

// A value sealed under another key fails with ErrOpen, whose text names
// the key setting, so the integration's error tells an operator what to fix.
func TestOpenWithAnotherKeyNamesTheKey(t *testing.T) {
	sealed := must(New(key(1))).Seal([]byte(`{"api_key":"k"}`), []byte("acme\x00creds"))
	_, err := must(New(key(2))).Open(sealed, []byte("acme\x00creds"))
	if err != ErrOpen || !strings.Contains(err.Error(), "ROUTER_SECRET_KEY") {
		t.Fatalf("Open with another key: %v", err)
	}
}
