package amocrm_test

import (
	"context"
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestUpdateFields: PATCH writes the mapped fields onto a contact and a
// lead, keeps the others, and amoCRM's refusals come back: a field the
// account lacks, a kind without fields.
func TestUpdateFields(t *testing.T) {
	t.Parallel()
	e, w := writer(t)
	ctx := context.Background()
	fu := w.(crm.FieldUpdater)
	c := newClient(t, w)
	contactField, leadField := e.fake.CustomField("contact"), e.fake.CustomField("deal")
	if err := fu.UpdateFields(ctx, c.Contact, map[string]string{contactField: "https://a.example/"}); err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, c.Lead, map[string]string{leadField: "v1"}); err != nil {
		t.Fatal(err)
	}
	if err := fu.UpdateFields(ctx, c.Lead, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Fields(c.Contact)[contactField]; got != "https://a.example/" {
		t.Errorf("contact field %q", got)
	}
	if got := e.fake.Fields(c.Lead)[leadField]; got != "v1" {
		t.Errorf("lead field %q", got)
	}
	if got := e.fake.Fields(c.Lead); len(got) != 1 {
		t.Errorf("lead fields %v, want only the one written", got)
	}
	if err := fu.UpdateFields(ctx, c.Contact, map[string]string{"999999": "x"}); !crm.IsPermanent(err) {
		t.Errorf("an unknown field: %v, want a permanent refusal", err)
	}
	if err := fu.UpdateFields(ctx, crm.Ref{Kind: domain.KindCompany, ID: "1"}, map[string]string{"1": "x"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("a company: %v, want EINVALID", err)
	}
}
