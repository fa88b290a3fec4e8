package admin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// world is an admin service on a store, with the sync engine for
// integrations, whose registry and service share one clock.
type world struct {
	st     store.Store
	svc    *admin.Service
	reg    *tenant.Registry
	engine *crmsync.Engine
	clock  *clock
}

func newWorld(t *testing.T, st store.Store, key byte, opts ...admin.Option) *world {
	t.Helper()
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	clk := &clock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	reg := tenant.NewRegistry(st, tenant.WithNow(clk.Now))
	if err := reg.LoadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(bytes.Repeat([]byte{key}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box,
		Deps: crm.Deps{Transport: crm.NewTransport(true)}}) // the fakes listen on loopback
	opts = append([]admin.Option{admin.WithCRMs(engine.Conns), admin.WithNow(clk.Now)}, opts...)
	return &world{st: st, svc: admin.New(st, reg, c, opts...), reg: reg, engine: engine, clock: clk}
}

func sqliteStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), field+":") {
		t.Fatalf("err = %v, want invalid naming %s", err, field)
	}
}

// lastAudit returns the newest audit entry of every kind (tenant "" = all).
func lastAudit(t *testing.T, w *world) domain.AuditEntry {
	t.Helper()
	es, err := w.st.ListAudit(context.Background(), "", 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("ListAudit: %v, %d entries", err, len(es))
	}
	return es[0]
}

func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	created, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	first := created.WebhookSecret

	// (Bodies that do not decode are the transport's: httpapi's
	// TestAdminBodyDecodedBeforeTheService.)
	for _, grace := range []int64{-1, 2592001} {
		_, err := w.svc.RotateSecret(ctx, "ops", "acme", admin.RotateInput{GraceSeconds: &grace})
		wantInvalid(t, err, "grace_seconds")
	}
	if _, err := w.svc.RotateSecret(ctx, "ops", "nope", admin.RotateInput{}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("rotate an unknown tenant: %v", err)
	}
	if c := w.reg.Lookup("acme"); !c.CheckKey([]byte(first)) {
		t.Fatal("a refused rotation changed the secret")
	}

	// Default grace: a day.
	rot, err := w.svc.RotateSecret(ctx, "ops", "acme", admin.RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	second := rot.WebhookSecret
	if len(second) < 20 || second == first || rot.Tenant != "acme" {
		t.Fatalf("rotation answer %+v", rot)
	}
	if rot.PreviousValidUntil == nil || !rot.PreviousValidUntil.Equal(w.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("previous_valid_until = %v, want a day from now", rot.PreviousValidUntil)
	}
	c := w.reg.Lookup("acme")
	if !c.CheckKey([]byte(first)) || !c.CheckKey([]byte(second)) {
		t.Fatal("right after the rotation, the old or the new secret is refused")
	}
	w.clock.Advance(24*time.Hour - time.Second)
	if !c.CheckKey([]byte(first)) {
		t.Fatal("the old secret stopped before its grace period ended")
	}
	w.clock.Advance(time.Second)
	if c.CheckKey([]byte(first)) || !c.CheckKey([]byte(second)) {
		t.Fatal("after the grace period the old secret works or the new one does not")
	}
	entry := lastAudit(t, w)
	if entry.Action != "tenant.secret.rotate" || entry.Actor != "ops" || entry.TenantID != "acme" ||
		!strings.Contains(entry.Detail, `"grace_seconds":86400`) || strings.Contains(entry.Detail, second) {
		t.Fatalf("audit entry %+v", entry)
	}

	// Grace 0: the replaced secret stops at once.
	rot, err = w.svc.RotateSecret(ctx, "ops", "acme", admin.RotateInput{GraceSeconds: new(int64(0))})
	if err != nil {
		t.Fatal(err)
	}
	if rot.PreviousValidUntil != nil {
		t.Fatalf("grace 0 answered previous_valid_until %v", rot.PreviousValidUntil)
	}
	c = w.reg.Lookup("acme")
	if c.CheckKey([]byte(second)) || !c.CheckKey([]byte(rot.WebhookSecret)) {
		t.Fatal("after a rotation with grace 0 the replaced secret works or the new one does not")
	}
	// The secret is stored as a hash only.
	tn, err := w.st.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(tn.SecretHash, []byte(rot.WebhookSecret)) || !bytes.Equal(tn.SecretHash, tenant.HashSecret(rot.WebhookSecret)) {
		t.Fatal("the stored secret is not the SHA-256 of the secret")
	}
}

func TestAdminTokens(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	for _, tc := range []struct {
		in    admin.TokenInput
		field string
	}{
		{admin.TokenInput{Name: "ci", Scope: "write"}, "scope"},
		{admin.TokenInput{Name: "ci"}, "scope"},
		{admin.TokenInput{Name: " ", Scope: "read"}, "name"},
		{admin.TokenInput{Name: "a\u0007b", Scope: "read"}, "name"},
		{admin.TokenInput{Name: strings.Repeat("x", 129), Scope: "read"}, "name"},
	} {
		_, err := w.svc.CreateToken(ctx, admin.BootstrapActor, tc.in)
		wantInvalid(t, err, tc.field)
	}

	ro, err := w.svc.CreateToken(ctx, admin.BootstrapActor, admin.TokenInput{Name: "grafana", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ro.Token, "cra_") || len(ro.Token) != 52 || ro.Scope != "read" || ro.Revoked || ro.ID == "" {
		t.Fatalf("created token %+v", ro)
	}
	entry := lastAudit(t, w)
	if entry.Action != "token.create" || entry.Actor != admin.BootstrapActor || entry.TenantID != "" ||
		!strings.Contains(entry.Detail, ro.ID) || strings.Contains(entry.Detail, ro.Token) {
		t.Fatalf("audit entry %+v", entry)
	}
	// Only the SHA-256 is stored.
	sum := sha256.Sum256([]byte(ro.Token))
	stored, err := w.st.AdminTokenByHash(ctx, sum[:])
	if err != nil || stored.ID != ro.ID {
		t.Fatalf("stored token by hash: %+v, %v", stored, err)
	}
	p, err := w.svc.Authenticate(ctx, sum[:])
	if err != nil || p.Scope != store.ScopeRead || p.Actor != "token:"+ro.ID+" (grafana)" {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	other := sha256.Sum256([]byte(ro.Token + "x"))
	if _, err := w.svc.Authenticate(ctx, other[:]); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Fatalf("Authenticate of an unknown token: %v", err)
	}

	list, err := w.svc.Tokens(ctx)
	if err != nil || len(list) != 1 || list[0].ID != ro.ID {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), ro.Token) || strings.Contains(string(b), hex.EncodeToString(sum[:])) ||
		strings.Contains(string(b), base64.StdEncoding.EncodeToString(sum[:])) || strings.Contains(string(b), `"hash"`) {
		t.Fatalf("the token list shows a token or hash: %s", b)
	}

	if err := w.svc.RevokeToken(ctx, p.Actor, ro.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Authenticate(ctx, sum[:]); domain.ErrorCode(err) != domain.EUNAUTHORIZED ||
		!strings.Contains(domain.ErrorMessage(err), "revoked") {
		t.Fatalf("Authenticate after revocation: %v", err)
	}
	entry = lastAudit(t, w)
	if entry.Action != "token.revoke" || entry.Actor != p.Actor || !strings.Contains(entry.Detail, ro.ID) {
		t.Fatalf("audit entry %+v", entry)
	}
	if err := w.svc.RevokeToken(ctx, admin.BootstrapActor, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("revoke an unknown token: %v", err)
	}
	if list, _ := w.svc.Tokens(ctx); len(list) != 1 || !list[0].Revoked || list[0].RevokedAt == nil {
		t.Fatalf("the list after revocation: %+v", list)
	}
}

// Base URLs that name loopback, private or link-local addresses are refused
// with 400 naming base_url, unless the operator allowed them.
func TestPutIntegrationRefusesPrivateTargets(t *testing.T) {
	ctx := context.Background()
	fake := retailcrmfake.New(t)
	w := newWorld(t, sqliteStore(t), 1)
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{fake.URL(), "https://10.0.0.5", "https://169.254.169.254", "https://[fd00::1]",
		"https://100.64.0.9", "https://localhost", "https://[::ffff:127.0.0.1]:8443"} {
		_, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: base, Credentials: admin.SecretJSON(fake.Creds())})
		wantInvalid(t, err, "base_url")
		if !strings.Contains(domain.ErrorMessage(err), "--crm-allow-private") {
			t.Errorf("%s: the error %q does not name the flag", base, err)
		}
	}
	if _, err := w.st.Integration(ctx, "acme"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("a refused integration was stored: %v", err)
	}

	allowed := newWorld(t, w.st, 1, admin.WithCRMAllowPrivate(true))
	if _, err := allowed.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: fake.URL(), Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
		t.Fatalf("with --crm-allow-private: %v", err)
	}
}

// rawIntegration reads an integration's sealed columns straight from the
// database, past the store's API.
func rawIntegration(t *testing.T, st store.Store, tenantID string) (creds, token []byte) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch db := st.(type) {
	case *sqlite.DB:
		err = db.Writer().QueryRowContext(ctx, `SELECT creds, coalesce(token, x'') FROM integrations WHERE tenant_id = ?`,
			tenantID).Scan(&creds, &token)
	case *postgres.DB:
		err = db.Pool().QueryRow(ctx, `SELECT creds, coalesce(token, ''::bytea) FROM integrations WHERE tenant_id = $1`,
			tenantID).Scan(&creds, &token)
	default:
		t.Fatalf("no raw access to %T", st)
	}
	if err != nil {
		t.Fatal(err)
	}
	return creds, token
}

// notInClear fails t when raw holds s as it is or in a common encoding.
func notInClear(t *testing.T, what string, raw []byte, s string) {
	t.Helper()
	for _, enc := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)),
		base64.RawURLEncoding.EncodeToString([]byte(s))} {
		if bytes.Contains(raw, []byte(enc)) {
			t.Fatalf("%s holds %q in the clear", what, s)
		}
	}
}

// CRM credentials and OAuth tokens are stored sealed on both backends, and
// a server started with another ROUTER_SECRET_KEY fails clearly, naming the
// key, instead of panicking or using garbage.
func TestCredentialsEncryptedAtRest(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			w := newWorld(t, st, 1, admin.WithCRMAllowPrivate(true))
			retail, amo := retailcrmfake.New(t), amocrmfake.New(t)
			var plain []string
			for id, in := range map[string]struct {
				crm   string
				url   string
				creds json.RawMessage
			}{"retail": {"retailcrm", retail.URL(), retail.Creds()}, "amo": {"amocrm", amo.URL(), amo.Creds()}} {
				if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: id}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.svc.PutIntegration(ctx, "ops", id, admin.IntegrationInput{CRM: in.crm, BaseURL: in.url, Credentials: admin.SecretJSON(in.creds)}); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				var fields map[string]string
				if err := json.Unmarshal(in.creds, &fields); err != nil {
					t.Fatal(err)
				}
				for k, v := range fields {
					if k != "site" && k != "redirect_uri" && k != "expires_at" && len(v) >= 6 {
						plain = append(plain, v)
					}
				}
			}
			if len(plain) < 4 {
				t.Fatalf("only %d secrets to look for: %v", len(plain), plain)
			}
			for _, id := range []string{"retail", "amo"} {
				creds, token := rawIntegration(t, st, id)
				if len(creds) == 0 || (id == "amo" && len(token) == 0) {
					t.Fatalf("%s: nothing stored (creds %d bytes, token %d bytes)", id, len(creds), len(token))
				}
				for _, s := range plain {
					notInClear(t, id+" creds column", creds, s)
					notInClear(t, id+" token column", token, s)
				}
				notInClear(t, id+" creds column", creds, `"api_key"`)
				notInClear(t, id+" creds column", creds, `"client_secret"`)
			}
			// The right key opens them: the CRM answers.
			if _, err := w.engine.Conns.Users(ctx, "retail"); err != nil {
				t.Fatalf("Users with the right key: %v", err)
			}

			// Another key: the integration fails with an error naming the key.
			wrong := newWorld(t, st, 2, admin.WithCRMAllowPrivate(true))
			for _, id := range []string{"retail", "amo"} {
				_, err := wrong.engine.Conns.Users(ctx, id)
				if err == nil || !strings.Contains(err.Error(), "ROUTER_SECRET_KEY") {
					t.Fatalf("%s with another key: %v, want an error naming ROUTER_SECRET_KEY", id, err)
				}
			}
			// And a server start says so before anything else.
			right, _ := secret.New(bytes.Repeat([]byte{1}, secret.KeySize))
			other, _ := secret.New(bytes.Repeat([]byte{2}, secret.KeySize))
			if err := secret.VerifyKey(ctx, right, st); err != nil {
				t.Fatalf("VerifyKey on first start: %v", err)
			}
			if err := secret.VerifyKey(ctx, right, st); err != nil {
				t.Fatalf("VerifyKey with the same key: %v", err)
			}
			if err := secret.VerifyKey(ctx, other, st); err == nil || !strings.Contains(err.Error(), "ROUTER_SECRET_KEY") {
				t.Fatalf("VerifyKey with another key: %v", err)
			}
		})
	}
}
