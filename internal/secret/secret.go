// Package secret encrypts CRM credentials and tokens at rest with
// AES-256-GCM. The key comes from ROUTER_SECRET_KEY, or for the embedded
// store from a key file generated in the data directory.
package secret

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/callrouter/callrouter/internal/domain"
)

// KeySize is the length of a key in bytes.
const KeySize = 32

// version prefixes every sealed value so the format can change later.
const version byte = 1

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct{ aead cipher.AEAD }

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key: %d bytes, need %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext. aad binds the result to its place (tenant and
// purpose), so a sealed value copied to another row does not open there.
func (b *Box) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("secret: no randomness: " + err.Error()) // crypto/rand never fails on supported systems
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, aad)
}

// ErrOpen is returned for a value that does not open with this key and aad:
// tampered with, moved, or sealed under another key. Its text names the
// key, since a changed key is the usual cause.
var ErrOpen = errors.New("secret: cannot decrypt: ROUTER_SECRET_KEY (or the secret.key file) is not the key this value was sealed with, or the value was tampered with")

// Open decrypts what Seal returned for the same aad. ErrOpen otherwise.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// ParseKey decodes a key given as 64 hex digits or as base64 (standard or
// URL alphabet, padded or not) of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, errors.New("secret key: want 32 bytes as 64 hex digits or base64")
}

// LoadOrCreateKeyFile reads the key in path, creating it (mode 0600, 32
// random bytes as hex) when it does not exist yet. Losing this file makes
// stored CRM credentials unreadable: back it up with the database.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseKey(string(b))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret key dir: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKeyFile(path) // another process won the race
	}
	if err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write secret key file: %w", err)
	}
	return k, nil
}

// Meta is the part of the store VerifyKey keeps its check value in.
type Meta interface {
	GetMeta(ctx context.Context, key string) (string, error)
	SetMetaIfAbsent(ctx context.Context, key, value string) (bool, error)
}

// metaKeyCheck holds a value sealed with the key in use, so a start with
// another key is caught before anything is sealed or opened with it.
const metaKeyCheck = "secret_key_check"

var checkAAD = []byte("callrouter key check")

// VerifyKey checks that b's key is the one the store's secrets were sealed
// with, by opening a check value the first start stored (and storing it
// when there is none). It returns an error naming ROUTER_SECRET_KEY when
// the key differs, and the store's errors wrapped.
func VerifyKey(ctx context.Context, b *Box, meta Meta) error {
	for attempt := 0; attempt < 3; attempt++ {
		v, err := meta.GetMeta(ctx, metaKeyCheck)
		if err == nil {
			sealed, derr := base64.StdEncoding.DecodeString(v)
			if derr != nil {
				return fmt.Errorf("secret key check: stored check value is corrupt: %w", derr)
			}
			if _, err := b.Open(sealed, checkAAD); err != nil {
				return errors.New("ROUTER_SECRET_KEY: this is not the key the stored CRM credentials were sealed with " +
					"(instances sharing a database must share one key; a lost key means reconnecting every CRM)")
			}
			return nil
		}
		if domain.ErrorCode(err) != domain.ENOTFOUND {
			return fmt.Errorf("secret key check: %w", err)
		}
		sealed := b.Seal([]byte("ok"), checkAAD)
		if _, err := meta.SetMetaIfAbsent(ctx, metaKeyCheck, base64.StdEncoding.EncodeToString(sealed)); err != nil {
			return fmt.Errorf("secret key check: %w", err)
		}
		// Read it back: another instance may have stored its own first.
	}
	return errors.New("secret key check: the check value could not be stored")
}
