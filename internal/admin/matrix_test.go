package admin_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestPatchMatrix: a patch changes the rows it names and keeps the
// others; form_entities and the matrix's form row are one setting, set
// through either name; bad rows are refused naming them.
func TestPatchMatrix(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteStore(t), 1)
	v, err := w.svc.CreateTenant(ctx, "ops", admin.NewTenant{ID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v.Matrix, domain.DefaultMatrix()) || v.Language != "en" {
		t.Fatalf("a new tenant shows the whole default matrix: %+v %q", v.Matrix, v.Language)
	}
	got, err := w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{Matrix: admin.Give(domain.Matrix{domain.RowOutgoingKnown: {}})}})
	if err != nil {
		t.Fatal(err)
	}
	want := domain.DefaultMatrix()
	want[domain.RowOutgoingKnown] = []string{}
	if !reflect.DeepEqual(got.Matrix, want) {
		t.Fatalf("after patching one row: %+v", got.Matrix)
	}
	got, err = w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{FormEntities: admin.Give([]string{"contact"})}})
	if err != nil || !reflect.DeepEqual(got.Matrix[domain.RowForm], []string{"contact"}) || len(got.Matrix[domain.RowOutgoingKnown]) != 0 {
		t.Fatalf("form_entities sets the form row: %+v %v", got.Matrix, err)
	}
	got, err = w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{Matrix: admin.Give(domain.Matrix{domain.RowForm: {"contact", "task"}})}})
	if err != nil || !reflect.DeepEqual(got.FormEntities, []string{"contact", "task"}) {
		t.Fatalf("the form row shows as form_entities: %q %v", got.FormEntities, err)
	}
	_, err = w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{Matrix: admin.Give(domain.Matrix{"missed": {"task"}})}})
	wantInvalid(t, err, "matrix.missed")
	_, err = w.svc.PatchTenant(ctx, "ops", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{CallMapping: admin.Give(domain.Mapping{domain.MapDeal: {{CRMField: "f", Source: "x"}}})}})
	wantInvalid(t, err, "call_mapping.deal[0].source")
	if w.reg.Lookup("acme").Settings.Matrix.Row(domain.RowOutgoingKnown) != (domain.Creates{}) {
		t.Fatal("the registry serves the patched matrix")
	}
}
