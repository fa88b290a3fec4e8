package crmsync

import (
	"context"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// TestPartsShareOneWriteOrder: the parts New wires write through one
// indexer, so a call event's Index landing between a sync page's read and
// its write is not undone by the page's older copy (the order of one part
// alone would not know the other's write).
func TestPartsShareOneWriteOrder(t *testing.T) {
	ctx := context.Background()
	st := storetest.Backends()[0].Open(t)
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := New(Config{Store: st, Cache: c, Tenants: tenant.NewRegistry(st)})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	lead := func(owner string, updated time.Time) crm.Entity {
		return crm.Entity{Kind: domain.KindLead, ID: "7001", Phones: []string{"+380 67 123 45 67"}, OwnerID: owner, Open: true, UpdatedAt: updated}
	}

	// A sync page starts reading its CRM: the lead is still Anna's (501).
	o := e.Syncer.index.orderOf("acme")
	start := o.begin()
	// Meanwhile a call event indexes the lead as the CRM has it now.
	if err := e.Calls.Index(ctx, "acme", []crm.Entity{lead("503", t0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	// The page, read before that, is written after it.
	if _, _, err := e.Syncer.index.apply(ctx, "acme", nil, crm.Batch{Entities: []crm.Entity{lead("501", t0)}}, o, start); err != nil {
		t.Fatal(err)
	}
	o.end(start)

	rows, err := st.LookupSuffix(ctx, "acme", phone.Suffix("380671234567"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].OwnerID != "503" {
		t.Fatalf("rows after the older page: %+v; want the call event's owner 503 kept", rows)
	}
}
