package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

func TestBuild(t *testing.T) {
	s := domain.DefaultSettings()
	s.DefaultCountry = "UA"
	s.OnMiss = domain.PolicyDefaultOwner
	c := tenant.Build(domain.Tenant{ID: "acme", Settings: s, DefaultOwner: "boss", SecretHash: tenant.HashSecret("s3cret")},
		[]domain.Employee{{CRMUserID: "boss", SIP: "sip_boss", Phone: "380501111111"}, {CRMUserID: "anna", Phone: "380502222222"}, {CRMUserID: "nobody"}},
		[]domain.StopEntry{{Number: "380443334455"}})
	if c.Targets["boss"] != "sip_boss" || c.Targets["anna"] != "380502222222" {
		t.Fatalf("targets = %v: SIP login must win over phone", c.Targets)
	}
	if _, ok := c.Targets["nobody"]; ok {
		t.Fatal("an employee with neither SIP nor phone got a target")
	}
	if c.DefaultTarget != "sip_boss" || !c.OnMissDefault || !c.OnUnmappedDefault {
		t.Fatalf("default owner: %q, on_miss default %v, on_unmapped default %v", c.DefaultTarget, c.OnMissDefault, c.OnUnmappedDefault)
	}
	if c.Region == nil || c.Budget != 300*time.Millisecond {
		t.Fatalf("region %v, budget %v", c.Region, c.Budget)
	}
	if _, ok := c.Stops["380443334455"]; !ok {
		t.Fatal("stop list not loaded")
	}
	if !c.CheckKey([]byte("s3cret")) || c.CheckKey([]byte("s3cres")) || c.CheckKey(nil) {
		t.Fatal("CheckKey accepts the wrong secret or rejects the right one")
	}
}

func TestRegistryReloadPublishesAndRemoves(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := tenant.NewRegistry(st)
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "a", Name: "A", Settings: domain.DefaultSettings()}); err != nil {
		t.Fatal(err)
	}
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if reg.Len() != 1 || reg.Get([]byte("a")) == nil || len(reg.Get([]byte("a")).CallerKeys) == 0 || reg.Get([]byte("a")).AnswerOpen == nil {
		t.Fatalf("after LoadAll: len %d, config %+v", reg.Len(), reg.Get([]byte("a")))
	}
	old := reg.Lookup("a")
	if err := st.PutEmployee(ctx, domain.Employee{TenantID: "a", CRMUserID: "u1", SIP: "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if reg.Lookup("a").Targets["u1"] != "s1" {
		t.Fatal("Reload did not publish the new employee")
	}
	if _, ok := old.Targets["u1"]; ok {
		t.Fatal("Reload modified a published Config")
	}
	if err := reg.Reload(ctx, "ghost"); err != nil || reg.Lookup("ghost") != nil {
		t.Fatalf("Reload of a missing tenant: err %v", err)
	}
}

// A CRM user deactivated or removed in the CRM is no routing target: the
// employee mapped to it keeps the mapping (an admin sees it in /status) but
// routing treats its entities as unmapped.
func TestBuildWithUsersDropsInactiveTargets(t *testing.T) {
	emps := []domain.Employee{{CRMUserID: "boss", SIP: "sip_boss"}, {CRMUserID: "anna", SIP: "sip_anna"},
		{CRMUserID: "boris", SIP: "sip_boris"}, {CRMUserID: "olga", SIP: "sip_olga"}}
	tn := domain.Tenant{ID: "acme", Settings: domain.DefaultSettings(), DefaultOwner: "boss"}

	// Never listed: everyone is active.
	c := tenant.BuildWithUsers(tn, emps, nil, nil)
	if len(c.Targets) != 4 || c.DefaultTarget != "sip_boss" || !c.Active("anna") || !c.Active("stranger") {
		t.Fatalf("without a users list: targets %v, default %q", c.Targets, c.DefaultTarget)
	}

	users := []store.CRMUser{{ID: "boss", Active: true}, {ID: "anna", Active: true}, {ID: "boris", Active: false},
		{ID: "ivan", Active: true}} // olga is no longer listed
	c = tenant.BuildWithUsers(tn, emps, nil, users)
	if c.Targets["anna"] != "sip_anna" || c.DefaultTarget != "sip_boss" {
		t.Fatalf("active users lost their targets: %v, default %q", c.Targets, c.DefaultTarget)
	}
	for _, id := range []string{"boris", "olga"} {
		if _, ok := c.Targets[id]; ok || c.Active(id) {
			t.Errorf("%s (deactivated or removed) is still a target: %v, active %t", id, c.Targets, c.Active(id))
		}
	}
	if !c.Active("ivan") || c.Active("stranger") {
		t.Errorf("Active: an unmapped active user must be active (%t), one the CRM does not list not (%t)", c.Active("ivan"), c.Active("stranger"))
	}
	if id, ok := c.Employee("sip_boris"); !ok || id != "boris" {
		t.Errorf("the mapping of a deactivated user must stay known to call events: %q, %t", id, ok)
	}

	// A deactivated default owner is no target either.
	users[0].Active = false
	if c = tenant.BuildWithUsers(tn, emps, nil, users); c.DefaultTarget != "" {
		t.Fatalf("deactivated default owner still rung: %q", c.DefaultTarget)
	}
}

// The registry reads the stored users list, so a refresh that stores a
// deactivation and reloads the tenant takes the user out of routing.
func TestRegistryReadsCRMUsers(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storetest.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateTenant(ctx, domain.Tenant{ID: "a", Name: "A", Settings: domain.DefaultSettings()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEmployee(ctx, domain.Employee{TenantID: "a", CRMUserID: "u1", SIP: "s1"}); err != nil {
		t.Fatal(err)
	}
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if reg.Lookup("a").Targets["u1"] != "s1" {
		t.Fatal("mapped employee without a users list has no target")
	}
	if _, err := st.ReplaceCRMUsers(ctx, "a", []store.CRMUser{{ID: "u1", Active: false}}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if target, ok := reg.Lookup("a").Targets["u1"]; ok {
		t.Fatalf("deactivated user still routed to %q", target)
	}
}
