package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- security: webhook secret rotation and admin tokens ---

func fmtSecrets(tn domain.Tenant) string {
	return fmt.Sprintf("hash=%s prev=%s until=%s updated=%s",
		fmtBytes(tn.SecretHash), fmtBytes(tn.PrevSecretHash), fmtTime(tn.PrevSecretUntil), fmtTime(tn.UpdatedAt))
}

func fmtToken(tok store.AdminToken) string {
	return fmt.Sprintf("%q name=%q scope=%q hash=%s created=%s revoked=%s",
		tok.ID, tok.Name, tok.Scope, fmtBytes(tok.Hash), fmtTime(tok.CreatedAt), fmtTime(tok.RevokedAt))
}

func (e *env) secrets(t *testing.T, what string, want domain.Tenant) {
	t.Helper()
	got, err := e.s.Tenant(e.ctx, want.ID)
	if err != nil {
		t.Fatalf("%s: Tenant(%q): %v", what, want.ID, err)
	}
	same(t, what, fmtSecrets, []domain.Tenant{got}, []domain.Tenant{want})
}

func testSecretRotate(t *testing.T, e *env) {
	tn := e.tenant(t, "acme")
	// A new tenant has no previous secret.
	e.secrets(t, "new tenant", domain.Tenant{ID: "acme", SecretHash: tn.SecretHash, UpdatedAt: stamp(start)})

	e.clock.Advance(time.Minute)
	until := time.Date(2024, 3, 11, 12, 0, 0, 987654321, time.FixedZone("UTC-5", -5*3600))
	if err := e.s.RotateTenantSecret(e.ctx, "acme", []byte("second"), until); err != nil {
		t.Fatalf("RotateTenantSecret: %v", err)
	}
	want := domain.Tenant{ID: "acme", SecretHash: []byte("second"), PrevSecretHash: tn.SecretHash,
		PrevSecretUntil: stamp(until), UpdatedAt: stamp(e.clock.Now())}
	e.secrets(t, "after a rotation with grace", want)

	// Settings changes leave the rotation alone.
	got, err := e.s.Tenant(e.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got.Name = "Renamed"
	e.clock.Advance(time.Minute)
	if err := e.s.UpdateTenant(e.ctx, got); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	want.UpdatedAt = stamp(e.clock.Now())
	e.secrets(t, "after UpdateTenant", want)

	// Rotating again replaces the previous secret with the current one.
	e.clock.Advance(time.Minute)
	if err := e.s.RotateTenantSecret(e.ctx, "acme", []byte("third"), until.Add(time.Hour)); err != nil {
		t.Fatalf("second RotateTenantSecret: %v", err)
	}
	e.secrets(t, "after a second rotation", domain.Tenant{ID: "acme", SecretHash: []byte("third"),
		PrevSecretHash: []byte("second"), PrevSecretUntil: stamp(until.Add(time.Hour)), UpdatedAt: stamp(e.clock.Now())})

	// No grace: the replaced secret is dropped at once.
	e.clock.Advance(time.Minute)
	if err := e.s.RotateTenantSecret(e.ctx, "acme", []byte("fourth"), time.Time{}); err != nil {
		t.Fatalf("RotateTenantSecret without grace: %v", err)
	}
	e.secrets(t, "after a rotation without grace", domain.Tenant{ID: "acme", SecretHash: []byte("fourth"),
		UpdatedAt: stamp(e.clock.Now())})

	err = e.s.RotateTenantSecret(e.ctx, "nope", []byte("x"), until)
	wantCode(t, err, domain.ENOTFOUND, "RotateTenantSecret of an unknown tenant")
	if _, err := e.s.Tenant(e.ctx, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("RotateTenantSecret of an unknown tenant created it: %v", err)
	}
	// The list shows the same as the single read.
	list, err := e.s.ListTenants(e.ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListTenants = %d, %v", len(list), err)
	}
	same(t, "ListTenants after rotations", fmtSecrets, list, []domain.Tenant{{SecretHash: []byte("fourth"), UpdatedAt: stamp(e.clock.Now())}})
}

func testAdminTokens(t *testing.T, e *env) {
	list, err := e.s.ListAdminTokens(e.ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListAdminTokens on an empty store = %d, %v; want none", len(list), err)
	}
	_, err = e.s.AdminTokenByHash(e.ctx, []byte("nope"))
	wantCode(t, err, domain.ENOTFOUND, "AdminTokenByHash of an unknown hash")

	ops, err := e.s.CreateAdminToken(e.ctx, store.AdminToken{ID: "t1", Name: "ops dashboard", Scope: store.ScopeRead,
		Hash: allBytes()[:32], CreatedAt: time.Unix(1, 0), RevokedAt: time.Unix(2, 0)})
	if err != nil {
		t.Fatalf("CreateAdminToken: %v", err)
	}
	wantOps := store.AdminToken{ID: "t1", Name: "ops dashboard", Scope: store.ScopeRead, Hash: allBytes()[:32],
		CreatedAt: stamp(start)}
	same(t, "CreateAdminToken's answer", fmtToken, []store.AdminToken{ops}, []store.AdminToken{wantOps})
	e.clock.Advance(time.Second)
	deploy, err := e.s.CreateAdminToken(e.ctx, store.AdminToken{ID: "t0", Name: "deploy", Scope: store.ScopeAdmin,
		Hash: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatalf("CreateAdminToken: %v", err)
	}

	_, err = e.s.CreateAdminToken(e.ctx, store.AdminToken{ID: "t9", Name: "copy", Scope: store.ScopeAdmin, Hash: allBytes()[:32]})
	wantCode(t, err, domain.ECONFLICT, "CreateAdminToken with an existing hash")
	_, err = e.s.CreateAdminToken(e.ctx, store.AdminToken{ID: "t1", Name: "copy", Scope: store.ScopeAdmin, Hash: []byte("other")})
	wantCode(t, err, domain.ECONFLICT, "CreateAdminToken with an existing id")

	got, err := e.s.AdminTokenByHash(e.ctx, allBytes()[:32])
	if err != nil {
		t.Fatalf("AdminTokenByHash: %v", err)
	}
	same(t, "AdminTokenByHash", fmtToken, []store.AdminToken{got}, []store.AdminToken{wantOps})
	list, err = e.s.ListAdminTokens(e.ctx)
	if err != nil {
		t.Fatalf("ListAdminTokens: %v", err)
	}
	same(t, "ListAdminTokens (oldest first)", fmtToken, list, []store.AdminToken{wantOps, deploy})

	e.clock.Advance(time.Hour)
	revoked, err := e.s.RevokeAdminToken(e.ctx, "t1")
	if err != nil {
		t.Fatalf("RevokeAdminToken: %v", err)
	}
	wantOps.RevokedAt = stamp(e.clock.Now())
	same(t, "RevokeAdminToken's answer", fmtToken, []store.AdminToken{revoked}, []store.AdminToken{wantOps})
	e.clock.Advance(time.Hour)
	again, err := e.s.RevokeAdminToken(e.ctx, "t1")
	if err != nil {
		t.Fatalf("RevokeAdminToken again: %v", err)
	}
	same(t, "a second revocation keeps the first time", fmtToken, []store.AdminToken{again}, []store.AdminToken{wantOps})
	got, err = e.s.AdminTokenByHash(e.ctx, allBytes()[:32])
	if err != nil {
		t.Fatalf("AdminTokenByHash of a revoked token: %v", err)
	}
	same(t, "a revoked token by hash", fmtToken, []store.AdminToken{got}, []store.AdminToken{wantOps})
	_, err = e.s.RevokeAdminToken(e.ctx, "nope")
	wantCode(t, err, domain.ENOTFOUND, "RevokeAdminToken of an unknown id")

	// A revocation is seen by the very next read, on any connection.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := e.s.AdminTokenByHash(e.ctx, bytes.Repeat([]byte{7}, 32))
			if err != nil || !got.RevokedAt.IsZero() {
				t.Errorf("AdminTokenByHash(deploy) = %s, %v", fmtToken(got), err)
			}
		})
	}
	wg.Wait()
	if _, err := e.s.RevokeAdminToken(e.ctx, "t0"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		wg.Go(func() {
			got, err := e.s.AdminTokenByHash(e.ctx, bytes.Repeat([]byte{7}, 32))
			if err != nil || got.RevokedAt.IsZero() {
				t.Errorf("AdminTokenByHash(deploy) after revocation = %s, %v", fmtToken(got), err)
			}
		})
	}
	wg.Wait()
}
