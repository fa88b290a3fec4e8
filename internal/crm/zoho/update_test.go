package zoho_test

import (
	"context"
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestUpdateFields: PUT writes the mapped fields onto a contact and a
// lead, keeps the others, and Zoho's INVALID_DATA for a field the layout
// lacks comes back as a permanent refusal.
func TestUpdateFields(t *testing.T) {
	t.Parallel()
	e := setupWriter(t)
	ctx := context.Background()
	fu := e.w.(crm.FieldUpdater)
	lead, err := e.w.CreateLead(ctx, crm.NewLead{Key: "k1", Phone: "380671234567", Title: "+380671234567",
		Fields: map[string]string{zohofake.LeadCustomField: "v0"}})
	if err != nil {
		t.Fatal(err)
	}
	contact, err := e.w.(crm.ContactWriter).CreateContact(ctx, crm.NewContact{Key: "k2", Phone: "380671234568"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, contact, map[string]string{zohofake.ContactCustomField: "https://a.example/"}); err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, lead.Lead, map[string]string{zohofake.LeadCustomField: "v1"}); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Fields(contact)[zohofake.ContactCustomField]; got != "https://a.example/" {
		t.Errorf("contact field %q", got)
	}
	if got := e.fake.Fields(lead.Lead)[zohofake.LeadCustomField]; got != "v1" {
		t.Errorf("lead field %q", got)
	}
	if err := fu.UpdateFields(ctx, contact, map[string]string{"No_Such_Field": "x"}); !crm.IsPermanent(err) {
		t.Errorf("an unknown field: %v, want a permanent refusal", err)
	}
	if err := fu.UpdateFields(ctx, crm.Ref{Kind: domain.KindContact}, map[string]string{"x": "y"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("no id: %v, want EINVALID", err)
	}
}
