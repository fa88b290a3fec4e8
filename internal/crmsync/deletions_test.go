package crmsync_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// offsetClock is real time moved on by Advance: as the store's clock it
// ages index rows past store.SweepMargin, as the engine's it makes the
// periodic job run a day later, without waiting.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// syncDueAfter runs the periodic job's SyncDue with the engine's clock d
// ahead of real time.
func (w *world) syncDueAfter(d time.Duration) (crmsync.Result, error) {
	w.clock.mu.Lock()
	w.clock.off = d
	w.clock.mu.Unlock()
	return w.engine.Syncer.SyncDue(context.Background(), "acme", 0)
}

// An index row of an entity the CRM no longer returns, deleted where no
// feed reports it (purged from a trash, deleted before the feed's window,
// a lost webhook), stops routing at the next reconciliation: a full sync
// started by the periodic job once reconcile_interval_hours have passed,
// whose end removes the rows it did not see.
func TestReconciliationRemovesWhatTheCRMNoLongerHas(t *testing.T) {
	for _, b := range storetest.Backends() {
		for _, f := range crmfakes.All() {
			t.Run(b.Name+"/"+f.CRM, func(t *testing.T) {
				ctx := context.Background()
				clk := &offsetClock{}
				fake := f.New(t)
				fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}})
				fake.Put(contact("1001", "+380 67 111 22 33", "501"))
				w := newWorld(t, b.OpenAt(t, clk.Now), f.CRM, fake)
				w.sync()

				// What an earlier sync indexed of an entity gone since.
				ghost := store.EntityRef{Kind: domain.KindContact, ID: "9001"}
				row := domain.IndexEntry{TenantID: "acme", Phone: "380931112233", Suffix: phone.Suffix("380931112233"),
					Kind: ghost.Kind, EntityID: ghost.ID, Open: true, OwnerID: "502", Name: "Gone"}
				if _, err := w.st.ReplaceEntities(ctx, "acme", []store.EntityRef{ghost}, []domain.IndexEntry{row}); err != nil {
					t.Fatal(err)
				}
				if got := w.target("380931112233"); got != "sip_boris" {
					t.Fatalf("the stale row must route before the reconciliation: %q", got)
				}
				clk.Advance(2 * store.SweepMargin)

				// Not due yet: the first full sync was a reconciliation.
				if _, err := w.syncDueAfter(time.Hour); err != nil {
					t.Fatalf("SyncDue an hour later: %v", err)
				}
				if got := w.target("380931112233"); got != "sip_boris" {
					t.Fatalf("reconciled before it was due: %q", got)
				}
				in, err := w.st.Integration(ctx, "acme")
				if err != nil || in.ReconciledAt.IsZero() || in.Phase != store.PhaseIncremental {
					t.Fatalf("after the first full sync: reconciled %v, phase %q, %v", in.ReconciledAt, in.Phase, err)
				}
				first := in.ReconciledAt

				// A day later (the default interval) the job reconciles.
				res, err := w.syncDueAfter(25 * time.Hour)
				if err != nil || !res.Done || res.Swept == 0 {
					t.Fatalf("SyncDue a day later: %+v, %v; want a full sync that swept the stale row", res, err)
				}
				if got := w.target("380931112233"); got != "" {
					t.Fatalf("after the reconciliation the deleted entity still routes: %q", got)
				}
				if got := w.target("380671112233"); got != "sip_anna" {
					t.Fatalf("the reconciliation lost a live entity: %q", got)
				}
				in, err = w.st.Integration(ctx, "acme")
				if err != nil || !in.ReconciledAt.After(first) || in.Phase != store.PhaseIncremental {
					t.Fatalf("after the reconciliation: reconciled %v (before %v), phase %q, %v", in.ReconciledAt, first, in.Phase, err)
				}
			})
		}
	}
}

// reconcile_interval_hours is a validated tenant setting, and decides when
// the reconciliation is due.
func TestReconcileIntervalSetting(t *testing.T) {
	ctx := context.Background()
	fake := crmfakes.All()[0].New(t)
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}})
	w := newWorld(t, storetest.Backends()[0].Open(t), "amocrm", fake)
	w.sync()
	svc := admin.New(w.st, w.reg, w.cache)
	for _, bad := range []int{-1, 721} {
		_, err := svc.PatchTenant(ctx, "test", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{ReconcileIntervalHours: &bad}})
		if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "reconcile_interval_hours:") {
			t.Fatalf("PATCH reconcile_interval_hours %d: %v, want EINVALID naming the field", bad, err)
		}
	}
	if got := w.reg.Lookup("acme").Settings.ReconcileIntervalHours; got != domain.DefaultReconcileIntervalHours {
		t.Fatalf("default reconcile_interval_hours = %d", got)
	}
	if _, err := svc.PatchTenant(ctx, "test", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{ReconcileIntervalHours: new(2)}}); err != nil {
		t.Fatal(err)
	}
	before, _ := w.st.Integration(ctx, "acme")
	if _, err := w.syncDueAfter(time.Hour); err != nil {
		t.Fatal(err)
	}
	if in, _ := w.st.Integration(ctx, "acme"); !in.ReconciledAt.Equal(before.ReconciledAt) {
		t.Fatal("reconciled after one hour with a two-hour interval")
	}
	if _, err := w.syncDueAfter(3 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if in, _ := w.st.Integration(ctx, "acme"); !in.ReconciledAt.After(before.ReconciledAt) {
		t.Fatal("not reconciled after three hours with a two-hour interval")
	}
}

// Uspacy keeps deleted records in a trash listing that the normal listing
// no longer shows: an incremental cycle reads it, so a deletion leaves
// routing without a webhook, and a record purged from the trash is left to
// the reconciliation.
func TestUspacyTrashIsTheDeletionFeed(t *testing.T) {
	ctx := context.Background()
	fake := uspacyfake.New(t)
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}})
	fake.Put(contact("1001", "+380 67 111 22 33", "501"))
	fake.Put(contact("1002", "+380 67 111 22 44", "501"))
	w := newWorld(t, storetest.Backends()[0].Open(t), "uspacy", fake)
	w.sync()
	fake.Delete(crm.Ref{Kind: domain.KindContact, ID: "1001"})
	res := w.sync()
	if res.Deleted == 0 {
		t.Fatalf("incremental cycle after a deletion: %+v, want the trashed record deleted", res)
	}
	if got := w.target("380671112233"); got != "" {
		t.Fatalf("trashed contact still routes: %q", got)
	}
	if got := w.target("380671112244"); got != "sip_anna" {
		t.Fatalf("live contact lost: %q", got)
	}
	in, err := w.st.Integration(ctx, "acme")
	if err != nil || in.Phase != store.PhaseIncremental {
		t.Fatalf("integration: %+v, %v", in, err)
	}
}
