package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- full-sync sweep (deletions the CRM's feeds did not report) ---

func testFullSyncSweep(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.tenant(t, "beta")
	e.putIntegration(t, store.Integration{TenantID: "acme", CRM: "amocrm", Creds: []byte("c"), State: store.IntegrationActive})
	e.putIntegration(t, store.Integration{TenantID: "beta", CRM: "amocrm", Creds: []byte("c"), State: store.IntegrationActive})
	gone := entry("acme", domain.KindContact, "GONE", "380501111111")
	imported := entry("acme", domain.KindLead, "IMP", "380502222222")
	margin := entry("acme", domain.KindContact, "NEAR", "380503333333")
	seen := entry("acme", domain.KindContact, "SEEN", "380504444444")
	other := entry("beta", domain.KindContact, "GONE", "380505555555")
	e.replace(t, "acme", []store.EntityRef{ref(gone.Kind, gone.EntityID), ref(seen.Kind, seen.EntityID)}, []domain.IndexEntry{gone, seen})
	e.replace(t, "beta", []store.EntityRef{ref(other.Kind, other.EntityID)}, []domain.IndexEntry{other})
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{imported}); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	// A row written just inside the margin before the start is kept: it
	// may come from an instance whose clock lags.
	e.clock.Advance(time.Hour)
	e.replace(t, "acme", []store.EntityRef{ref(margin.Kind, margin.EntityID)}, []domain.IndexEntry{margin})
	e.clock.Advance(store.SweepMargin / 2)
	if err := e.s.StartFullSync(e.ctx, "acme"); err != nil {
		t.Fatalf("StartFullSync: %v", err)
	}
	if err := e.s.StartFullSync(e.ctx, "beta"); err != nil {
		t.Fatalf("StartFullSync: %v", err)
	}
	from := stamp(e.clock.Now())
	in, err := e.s.Integration(e.ctx, "acme")
	if err != nil || !in.FullFrom.Equal(from) || !in.ReconciledAt.IsZero() {
		t.Fatalf("after StartFullSync: full_from=%s reconciled=%s, %v; want full_from=%s", fmtTime(in.FullFrom), fmtTime(in.ReconciledAt), err, fmtTime(from))
	}
	// The full sync sees SEEN again (an unchanged entity is rewritten too).
	e.clock.Advance(10 * time.Minute)
	e.replace(t, "acme", []store.EntityRef{ref(seen.Kind, seen.EntityID)}, []domain.IndexEntry{seen})
	e.clock.Advance(time.Minute)
	removed, err := e.s.FinishFullSync(e.ctx, "acme")
	if err != nil {
		t.Fatalf("FinishFullSync: %v", err)
	}
	wantSuffixes(t, "FinishFullSync", removed, []string{gone.Suffix, imported.Suffix})
	left := e.scan(t)
	var ids []string
	for _, r := range left {
		ids = append(ids, r.TenantID+"/"+r.EntityID)
	}
	slices.Sort(ids)
	if want := []string{"acme/NEAR", "acme/SEEN", "beta/GONE"}; !slices.Equal(ids, want) {
		t.Fatalf("rows after the sweep: %q, want %q (the other tenant's untouched)", ids, want)
	}
	in, err = e.s.Integration(e.ctx, "acme")
	if err != nil || !in.FullFrom.IsZero() || !in.ReconciledAt.Equal(stamp(e.clock.Now())) {
		t.Fatalf("after FinishFullSync: full_from=%s reconciled=%s, %v; want no full_from, reconciled now", fmtTime(in.FullFrom), fmtTime(in.ReconciledAt), err)
	}
	// A second end without a start sweeps nothing and keeps ReconciledAt.
	reconciled := in.ReconciledAt
	e.clock.Advance(time.Hour)
	removed, err = e.s.FinishFullSync(e.ctx, "acme")
	if err != nil || removed != nil {
		t.Fatalf("FinishFullSync without a start: %q, %v; want nothing", removed, err)
	}
	if in, _ := e.s.Integration(e.ctx, "acme"); !in.ReconciledAt.Equal(reconciled) || e.count(t, "acme") != 2 {
		t.Fatalf("FinishFullSync without a start changed something: reconciled=%s rows=%d", fmtTime(in.ReconciledAt), e.count(t, "acme"))
	}
	_, err = e.s.FinishFullSync(e.ctx, "ghost")
	wantCode(t, err, domain.ENOTFOUND, "FinishFullSync of a tenant without integration")
	wantCode(t, e.s.StartFullSync(e.ctx, "ghost"), domain.ENOTFOUND, "StartFullSync of a tenant without integration")
}

// A reconnect or a restarted sync forgets the start of the full sync it
// replaces: that sync's end must not sweep with it.
func testFullSyncReset(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "amocrm", Creds: []byte("c"), State: store.IntegrationActive}
	e.putIntegration(t, in)
	for _, reset := range []struct {
		name string
		do   func() error
	}{
		{"PutIntegration", func() error { return e.s.PutIntegration(e.ctx, in) }},
		{"SetIntegrationState restart", func() error {
			return e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationActive, "", true)
		}},
	} {
		if err := e.s.StartFullSync(e.ctx, "acme"); err != nil {
			t.Fatalf("StartFullSync: %v", err)
		}
		if err := reset.do(); err != nil {
			t.Fatalf("%s: %v", reset.name, err)
		}
		got, err := e.s.Integration(e.ctx, "acme")
		if err != nil || !got.FullFrom.IsZero() {
			t.Fatalf("after %s: full_from=%s, %v; want none", reset.name, fmtTime(got.FullFrom), err)
		}
	}
	// A state change without restart keeps it.
	if err := e.s.StartFullSync(e.ctx, "acme"); err != nil {
		t.Fatalf("StartFullSync: %v", err)
	}
	if err := e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationInactive, "", false); err != nil {
		t.Fatalf("SetIntegrationState: %v", err)
	}
	if got, _ := e.s.Integration(e.ctx, "acme"); got.FullFrom.IsZero() {
		t.Fatal("SetIntegrationState without restart cleared full_from")
	}
}

// --- CRM users ---

func fmtCRMUser(u store.CRMUser) string {
	return fmt.Sprintf("%q name=%q email=%q active=%t", u.ID, u.Name, u.Email, u.Active)
}

func (e *env) crmUsers(t *testing.T, tenant string) []store.CRMUser {
	t.Helper()
	got, err := e.s.ListCRMUsers(e.ctx, tenant)
	if err != nil {
		t.Fatalf("ListCRMUsers(%q): %v", tenant, err)
	}
	return got
}

func testCRMUsersReplaceList(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.tenant(t, "beta")
	if got := e.crmUsers(t, "acme"); len(got) != 0 {
		t.Fatalf("users never listed: %v", got)
	}
	users := []store.CRMUser{
		{ID: "9", Name: "Zoe", Email: "zoe@example.com", Active: true},
		{ID: "10", Name: "Anna", Active: false},
		{ID: "2", Name: "Борис", Email: "b@example.com", Active: true},
	}
	for i, want := range []bool{true, false} {
		changed, err := e.s.ReplaceCRMUsers(e.ctx, "acme", users)
		if err != nil || changed != want {
			t.Fatalf("ReplaceCRMUsers #%d: changed=%t, %v; want %t", i+1, changed, err, want)
		}
	}
	sorted := []store.CRMUser{users[1], users[2], users[0]} // by id, byte order
	same(t, "ListCRMUsers", fmtCRMUser, e.crmUsers(t, "acme"), sorted)
	if got := e.crmUsers(t, "beta"); len(got) != 0 {
		t.Fatalf("another tenant's users: %v", got)
	}
	// A deactivation is a change; so is a user gone.
	users[0].Active = false
	if changed, err := e.s.ReplaceCRMUsers(e.ctx, "acme", users[:1]); err != nil || !changed {
		t.Fatalf("ReplaceCRMUsers with a deactivation and a removal: %t, %v", changed, err)
	}
	same(t, "ListCRMUsers after the change", fmtCRMUser, e.crmUsers(t, "acme"), users[:1])
	if changed, err := e.s.ReplaceCRMUsers(e.ctx, "acme", nil); err != nil || !changed {
		t.Fatalf("ReplaceCRMUsers with none: %t, %v", changed, err)
	}
	if got := e.crmUsers(t, "acme"); len(got) != 0 {
		t.Fatalf("users after replacing with none: %v", got)
	}
}

func testCRMUsersInvalid(t *testing.T, e *env) {
	e.tenant(t, "acme")
	good := []store.CRMUser{{ID: "1", Name: "Anna", Active: true}}
	if _, err := e.s.ReplaceCRMUsers(e.ctx, "acme", good); err != nil {
		t.Fatalf("ReplaceCRMUsers: %v", err)
	}
	_, err := e.s.ReplaceCRMUsers(e.ctx, "ghost", good)
	wantCode(t, err, domain.ENOTFOUND, "ReplaceCRMUsers of an unknown tenant")
	_, err = e.s.ReplaceCRMUsers(e.ctx, "acme", []store.CRMUser{{ID: "1"}, {ID: "1"}})
	wantCode(t, err, domain.EINVALID, "ReplaceCRMUsers with an id twice")
	_, err = e.s.ReplaceCRMUsers(e.ctx, "acme", []store.CRMUser{{Name: "nobody"}})
	wantCode(t, err, domain.EINVALID, "ReplaceCRMUsers with a user without id")
	same(t, "users after refused replaces", fmtCRMUser, e.crmUsers(t, "acme"), good)
}
