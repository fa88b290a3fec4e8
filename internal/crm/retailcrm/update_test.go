package retailcrm_test

import (
	"context"
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestUpdateFields: customers/{id}/edit and orders/{id}/edit write the
// mapped customFields, keep the others, and refuse a code the account
// lacks.
func TestUpdateFields(t *testing.T) {
	t.Parallel()
	f := retailcrmfake.New(t)
	_, w, _ := writer(t, f)
	ctx := context.Background()
	fu := w.(crm.FieldUpdater)
	c, err := w.CreateLead(ctx, crm.NewLead{Key: "k1", Phone: "380671234567", Title: "+380671234567"})
	if err != nil {
		t.Fatal(err)
	}
	cust, err := w.(crm.ContactWriter).CreateContact(ctx, crm.NewContact{Key: "k2", Phone: "380671234568"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, cust, map[string]string{retailcrmfake.CustomerCustomField: "https://a.example/"}); err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, c.Lead, map[string]string{retailcrmfake.OrderCustomField: "v1"}); err != nil {
		t.Fatal(err)
	}
	if got := f.Fields(cust)[retailcrmfake.CustomerCustomField]; got != "https://a.example/" {
		t.Errorf("customer field %q", got)
	}
	if got := f.Fields(c.Lead)[retailcrmfake.OrderCustomField]; got != "v1" {
		t.Errorf("order field %q", got)
	}
	if u := f.UTM(c.Lead); u != (crm.UTM{}) {
		t.Errorf("an update of custom fields changed the UTM: %+v", u)
	}
	if err := fu.UpdateFields(ctx, cust, map[string]string{"no_such_code": "x"}); !crm.IsPermanent(err) {
		t.Errorf("an unknown code: %v, want a permanent refusal", err)
	}
	if err := fu.UpdateFields(ctx, crm.Ref{Kind: domain.KindContact, ID: "999999"}, map[string]string{retailcrmfake.CustomerCustomField: "x"}); !crm.IsPermanent(err) {
		t.Errorf("a missing customer: %v, want a permanent refusal", err)
	}
	if err := fu.UpdateFields(ctx, crm.Ref{Kind: domain.KindLead, ID: "1"}, map[string]string{"x": "y"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("a lead kind: %v, want EINVALID", err)
	}
}
