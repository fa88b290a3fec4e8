package uspacy_test

import (
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestUpdateFields: PATCH writes the mapped fields onto a contact and a
// lead and keeps the others; a missing record is Uspacy's 404.
func TestUpdateFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	w := e.writer(t)
	fu := w.(crm.FieldUpdater)
	lead, err := w.CreateLead(ctx(t), crm.NewLead{Key: "k1", Phone: "380671234567", Title: "+380671234567",
		UTM: crm.UTM{Source: "google"}})
	if err != nil {
		t.Fatal(err)
	}
	contact, err := w.(crm.ContactWriter).CreateContact(ctx(t), crm.NewContact{Key: "k2", Phone: "380671234568"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx(t), contact, map[string]string{uspacyfake.ContactCustomField: "https://a.example/"}); err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx(t), lead.Lead, map[string]string{uspacyfake.LeadCustomField: "v1"}); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Fields(contact)[uspacyfake.ContactCustomField]; got != "https://a.example/" {
		t.Errorf("contact field %q", got)
	}
	if got := e.fake.Fields(lead.Lead)[uspacyfake.LeadCustomField]; got != "v1" {
		t.Errorf("lead field %q", got)
	}
	if u := e.fake.UTM(lead.Lead); u.Source != "google" {
		t.Errorf("an update of other fields changed the UTM: %+v", u)
	}
	if err := fu.UpdateFields(ctx(t), crm.Ref{Kind: domain.KindContact, ID: "999999"}, map[string]string{"x": "y"}); !crm.IsPermanent(err) {
		t.Errorf("a missing contact: %v, want a permanent refusal", err)
	}
	if err := fu.UpdateFields(ctx(t), crm.Ref{Kind: domain.KindContact, ID: "abc"}, map[string]string{"x": "y"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("a bad id: %v, want EINVALID", err)
	}
}
