package admin_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
)

// kicks records the syncs asked for.
type kicks struct {
	mu  sync.Mutex
	ids []string
}

func (k *kicks) Kick(id string) {
	k.mu.Lock()
	k.ids = append(k.ids, id)
	k.mu.Unlock()
}

func (k *kicks) got() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ids)
}

// Connecting an integration and activating it again start its sync at once
// through the runner the service was given; deactivating does not.
func TestIntegrationChangesKickASync(t *testing.T) {
	ctx := context.Background()
	fake := retailcrmfake.New(t)
	k := &kicks{}
	w := newWorld(t, sqliteStore(t), 1, admin.WithCRMAllowPrivate(true), admin.WithSyncs(k))
	if _, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.PutIntegration(ctx, "ops", "acme", admin.IntegrationInput{CRM: "retailcrm", BaseURL: fake.URL(), Credentials: admin.SecretJSON(fake.Creds())}); err != nil {
		t.Fatal(err)
	}
	if got := k.got(); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("after connecting: kicks %v, want [acme]", got)
	}
	if _, err := w.svc.SetActive(ctx, "ops", "acme", false, admin.ActivateInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SetActive(ctx, "ops", "acme", true, admin.ActivateInput{}); err != nil {
		t.Fatal(err)
	}
	if got := k.got(); !slices.Equal(got, []string{"acme", "acme"}) {
		t.Fatalf("after deactivating and activating: kicks %v, want [acme acme]", got)
	}
}
