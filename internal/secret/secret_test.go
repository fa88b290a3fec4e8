package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpen(t *testing.T) {
	box, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"client_secret":"s3cret"}`)
	sealed := box.Seal(plain, []byte("acme/creds"))
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	if again := box.Seal(plain, []byte("acme/creds")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: nonce reuse")
	}
	got, err := box.Open(sealed, []byte("acme/creds"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, tc := range map[string]struct {
		sealed []byte
		aad    string
		box    *Box
	}{
		"other aad (moved to another tenant)": {sealed, "other/creds", box},
		"tampered":                            {append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), "acme/creds", box},
		"truncated":                           {sealed[:5], "acme/creds", box},
		"other key":                           {sealed, "acme/creds", must(New(key(2)))},
	} {
		if _, err := tc.box.Open(tc.sealed, []byte(tc.aad)); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err %v, want ErrOpen", name, err)
		}
	}
}

func must(b *Box, err error) *Box {
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseKey(t *testing.T) {
	k := key(7)
	for _, s := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k), " " + hex.EncodeToString(k) + "\n"} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(k[:16])} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q): want error", s)
		}
	}
	if _, err := New(k[:16]); err == nil {
		t.Error("New with a 16-byte key: want error")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secret.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("create: %x, %v", k1, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode(), err)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload gave another key: %x vs %x (%v)", k1, k2, err)
	}
}
