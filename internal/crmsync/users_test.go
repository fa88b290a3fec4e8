package crmsync_test

import (
	"context"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmfakes"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// A CRM user deactivated or removed in the CRM is no routing target once
// the sync has refreshed the users list: its entities route as unmapped
// (on_unmapped: the default owner here), /status lists the employee, and a
// reactivation makes the user a target again.
func TestInactiveCRMUsersAreNotRoutingTargets(t *testing.T) {
	for _, b := range storetest.Backends() {
		for _, f := range crmfakes.All() {
			t.Run(b.Name+"/"+f.CRM, func(t *testing.T) {
				ctx := context.Background()
				fake := f.New(t)
				anna := crm.User{ID: "501", Name: "Anna", Email: "anna@example.com", Active: true}
				boris := crm.User{ID: "502", Name: "Boris", Email: "boris@example.com", Active: true}
				olga := crm.User{ID: "503", Name: "Olga", Email: "olga@example.com", Active: true}
				fake.SetUsers([]crm.User{anna, boris, olga})
				fake.Put(contact("1001", "+380 67 111 22 33", "501"))
				fake.Put(contact("1002", "+380 67 111 22 44", "502"))
				fake.Put(contact("1003", "+380 67 111 22 55", "503"))
				w := newWorld(t, b.Open(t), f.CRM, fake)
				svc := admin.New(w.st, w.reg, w.cache)
				if _, err := svc.SetDefaultOwner(ctx, "test", "acme", admin.DefaultOwnerInput{CRMUserID: new("501")}); err != nil {
					t.Fatal(err)
				}
				w.sync()
				for caller, want := range map[string]string{"380671112233": "sip_anna", "380671112244": "sip_boris", "380671112255": "sip_olga"} {
					if got := w.target(caller); got != want {
						t.Fatalf("all active: %s routes to %q, want %q", caller, got, want)
					}
				}
				st, err := svc.Status(ctx, "acme")
				if err != nil || len(st.InactiveUsers) != 0 {
					t.Fatalf("status with every user active: %+v, %v", st.InactiveUsers, err)
				}

				// Boris deactivated, Olga removed: the next cycle refreshes the
				// list, and their clients go to the default owner.
				boris.Active = false
				fake.SetUsers([]crm.User{anna, boris})
				w.sync()
				for caller, want := range map[string]string{"380671112233": "sip_anna", "380671112244": "sip_anna", "380671112255": "sip_anna"} {
					if got := w.target(caller); got != want {
						t.Fatalf("after deactivation: %s routes to %q, want %q (the default owner)", caller, got, want)
					}
				}
				st, err = svc.Status(ctx, "acme")
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for _, u := range st.InactiveUsers {
					got[u.CRMUserID] = u.State + "/" + u.SIP
				}
				// CRMs that list active users only (Zoho, retailCRM) show a
				// deactivated user as not listed.
				if len(got) != 2 || got["503"] != "removed/sip_olga" ||
					(got["502"] != "deactivated/sip_boris" && got["502"] != "removed/sip_boris") {
					t.Fatalf("status inactive users: %v, want Boris deactivated and Olga removed", got)
				}

				// Reactivated: a target again.
				boris.Active = true
				fake.SetUsers([]crm.User{anna, boris})
				w.sync()
				if got := w.target("380671112244"); got != "sip_boris" {
					t.Fatalf("after reactivation: %q, want sip_boris", got)
				}
			})
		}
	}
}
