package crmsync_test

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/adapters"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

func zohoContactDeal(f *zohofake.Server, contactID, dealID, phone, contactOwner, dealOwner string) {
	f.PutRecord("Contacts", map[string]any{"id": contactID, "Full_Name": "Client " + contactID, "Last_Name": "Client",
		"Phone": phone, "Owner": map[string]any{"id": contactOwner}})
	f.PutRecord("Deals", map[string]any{"id": dealID, "Deal_Name": "Deal " + dealID, "Stage": "Qualification",
		"Contact_Name": map[string]any{"id": contactID, "name": "Client " + contactID}, "Owner": map[string]any{"id": dealOwner}})
}

// TestZohoDealsRouteThroughTheirContact: on both stores, a Zoho deal (no
// phone of its own) routes its contact's callers to the deal's owner after
// a sync, follows the contact's new phone when Zoho notifies about the
// contact, and is found by a live lookup on a route miss.
func TestZohoDealsRouteThroughTheirContact(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			f := zohofake.New(t)
			// The contact is older than the sync, so only the notification
			// about it can move the deal.
			f.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
			zohoContactDeal(f, "1001", "2001", "+380501110001", "501", "502")
			f.SetClock(time.Now)
			w := newWorld(t, b.Open(t), "zoho", f)
			w.sync()
			if got := w.target("380501110001"); got != "sip_boris" {
				t.Errorf("route of the deal's contact = %q, want the deal's owner sip_boris", got)
			}

			f.PutRecord("Contacts", map[string]any{"id": "1001", "Full_Name": "Client 1001", "Last_Name": "Client",
				"Phone": "+380501110002", "Owner": map[string]any{"id": "501"}})
			ct, body, _ := f.Notification(crm.Ref{Kind: domain.KindContact, ID: "1001"})
			if err := w.engine.Live.Webhook(ctx, "acme", ct, body); err != nil {
				t.Fatalf("webhook: %v", err)
			}
			if got := w.target("380501110002"); got != "sip_boris" {
				t.Errorf("route of the contact's new phone = %q, want sip_boris", got)
			}

			zohoContactDeal(f, "1003", "2003", "+380501110003", "501", "503")
			if got := w.target("380501110003"); got != "sip_olga" {
				t.Errorf("route by live lookup = %q, want the new deal's owner sip_olga", got)
			}
		})
	}
}

// TestZohoConnectWarnsAboutMissingFields: a full sync (connect,
// activation) logs the seed 000 fields the account lacks, by name.
func TestZohoConnectWarnsAboutMissingFields(t *testing.T) {
	ctx := context.Background()
	f := zohofake.New(t)
	f.RemoveField("Leads", "rs_utm_content")
	st := storetest.Backends()[0].Open(t)
	c, err := cache.New(cache.Config{MaxItems: 1 << 10, NegativeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := tenant.NewRegistry(st)
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg, Adapters: adapters.All(), Box: box,
		Deps: crm.Deps{Transport: crm.NewTransport(true)}, Log: zap.New(core)})
	svc := admin.New(st, reg, c, admin.WithCRMs(engine.Conns), admin.WithCRMAllowPrivate(true))
	if _, err := svc.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutIntegration(ctx, "test", "acme", admin.IntegrationInput{CRM: "zoho", BaseURL: f.URL(), Credentials: admin.SecretJSON(f.Creds())}); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Syncer.Sync(ctx, "acme", 0); err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, e := range logs.FilterMessageSnippet("lacks fields").All() {
		for _, fld := range e.Context {
			if fld.Key == "fields" {
				if arr, ok := fld.Interface.(zapcore.ArrayMarshaler); ok {
					enc := zapcore.NewMapObjectEncoder()
					_ = enc.AddArray("f", arr)
					for _, v := range enc.Fields["f"].([]any) {
						named = append(named, v.(string))
					}
				}
			}
		}
	}
	if !slices.Equal(named, []string{"rs_utm_content"}) {
		t.Errorf("warned about %v, want rs_utm_content (logs: %v)", named, logs.All())
	}
}
