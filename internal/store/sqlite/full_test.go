package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// TestFullDiskIsUnavailableAndSaysSo: once the file may not grow (the disk
// is full; here max_page_count holds the file at its size), writes fail
// with EUNAVAILABLE saying the database or disk is full, whatever the
// write; reads go on; and once space is back, writes succeed again
// without reopening the store.
func TestFullDiskIsUnavailableAndSaysSo(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "full.db"))
	if err := db.CreateTenant(ctx, domain.Tenant{ID: "acme", Name: "Acme", SecretHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	row := func(id string) domain.IndexEntry {
		return domain.IndexEntry{TenantID: "acme", Phone: "38067" + id, Suffix: "67" + id, Kind: domain.KindContact,
			EntityID: id, Open: true, OwnerID: "501", Name: "Client " + id}
	}
	if _, err := db.ReplaceEntities(ctx, "acme", []store.EntityRef{{Kind: domain.KindContact, ID: "1000001"}}, []domain.IndexEntry{row("1000001")}); err != nil {
		t.Fatal(err)
	}

	// The writer is one connection; the limit holds for it from now on.
	// A limit below the file's size is raised to it: the file stays as is.
	if _, err := db.Writer().ExecContext(ctx, `PRAGMA max_page_count = 1`); err != nil {
		t.Fatal(err)
	}
	full := func(what string, err error) {
		t.Helper()
		if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(domain.ErrorMessage(err), "database or disk is full") {
			t.Fatalf("%s on a full disk: %v, want EUNAVAILABLE saying the database or disk is full", what, err)
		}
	}
	// Events until the pages' free space runs out: each batch is stored
	// whole or refused whole.
	var err error
	stored := 0
	for i := 0; i < 200 && err == nil; i++ {
		batch := make([]domain.CallEvent, 20)
		for j := range batch {
			batch[j] = domain.CallEvent{TenantID: "acme", UniqueID: fmt.Sprintf("%d.%d", i, j), Kind: domain.EventCallEnd,
				Partition: "380670000000", Fields: map[string]string{"caller": "380670000000", "note": strings.Repeat("x", 200)}}
		}
		var res []store.Inserted
		if res, err = db.InsertEvents(ctx, batch, nil); err == nil {
			stored += len(res)
		}
	}
	full("InsertEvents", err)
	t.Logf("%d events stored before the disk was full", stored)

	rows := make([]domain.IndexEntry, 200)
	refs := make([]store.EntityRef, len(rows))
	for i := range rows {
		rows[i] = row(fmt.Sprintf("2%06d", i))
		refs[i] = store.EntityRef{Kind: domain.KindContact, ID: rows[i].EntityID}
	}
	_, err = db.ReplaceEntities(ctx, "acme", refs, rows)
	full("ReplaceEntities", err)
	if got, err := db.LookupSuffix(ctx, "acme", "671000001"); err != nil || len(got) != 1 {
		t.Fatalf("a read on a full disk: %v, %v", got, err)
	}
	if got, err := db.LookupSuffix(ctx, "acme", rows[0].Suffix); err != nil || len(got) != 0 {
		t.Fatalf("a refused write left %v, %v", got, err)
	}

	// Space is back.
	if _, err := db.Writer().ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ReplaceEntities(ctx, "acme", refs, rows); err != nil {
		t.Fatalf("a write once space is back: %v", err)
	}
}
