// Package storetest is the conformance suite every store.Store
// implementation must pass. Each backend's tests call Run with a function
// that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// OpenFunc opens a fresh, empty store whose clock is now. It must register
// with t.Cleanup whatever closes the store and removes its data, and fail t
// (or skip it) when it cannot open one.
type OpenFunc func(t *testing.T, now func() time.Time) store.Store

// Run runs the conformance suite against the stores open returns. Every
// subtest opens its own store and runs in parallel with the others.
func Run(t *testing.T, open OpenFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Tenant/CreateGet", testTenantCreateGet},
		{"Tenant/Duplicate", testTenantDuplicate},
		{"Tenant/NotFound", testTenantNotFound},
		{"Tenant/List", testTenantList},
		{"Tenant/Update", testTenantUpdate},
		{"Tenant/SettingsRoundTrip", testTenantSettingsRoundTrip},
		{"Tenant/Delete", testTenantDelete},
		{"Decision/InsertJoin", testDecisionInsertJoin},
		{"Decision/Expire", testDecisionExpire},
		{"Employee/PutGet", testEmployeePutGet},
		{"Employee/Replace", testEmployeeReplace},
		{"Employee/List", testEmployeeList},
		{"Employee/Delete", testEmployeeDelete},
		{"Employee/UnknownTenant", testEmployeeUnknownTenant},
		{"Stop/PutList", testStopPutList},
		{"Stop/Replace", testStopReplace},
		{"Stop/Delete", testStopDelete},
		{"Stop/UnknownTenant", testStopUnknownTenant},
		{"Index/Insert", testIndexInsert},
		{"Index/Replace", testIndexReplace},
		{"Index/DuplicateInBatch", testIndexDuplicateInBatch},
		{"Index/Atomic", testIndexAtomic},
		{"Index/DeleteEntity", testIndexDeleteEntity},
		{"Index/LookupOrder", testIndexLookupOrder},
		{"Index/ScanOrder", testIndexScanOrder},
		{"Index/ScanStop", testIndexScanStop},
		{"Index/Count", testIndexCount},
		{"Index/ReplaceEntities", testReplaceEntities},
		{"Index/ReplaceEntitiesDelete", testReplaceEntitiesDelete},
		{"Index/ReplaceEntitiesInvalid", testReplaceEntitiesInvalid},
		{"Index/ReplaceEntitiesUnknownTenant", testReplaceEntitiesUnknownTenant},
		{"Index/ReplaceEntitiesDuplicate", testReplaceEntitiesDuplicate},
		{"Index/ReplaceEntitiesIdempotent", testReplaceEntitiesIdempotent},
		{"Index/ReplaceEntitiesPage", testReplaceEntitiesPage},
		{"Index/ReplaceEntitiesAtomic", testReplaceEntitiesAtomic},
		{"Audit/Append", testAuditAppend},
		{"Audit/List", testAuditList},
		{"Integration/PutGet", testIntegrationPutGet},
		{"Integration/PutResetsSync", testIntegrationPutResetsSync},
		{"Integration/List", testIntegrationList},
		{"Integration/NotFound", testIntegrationNotFound},
		{"Integration/State", testIntegrationState},
		{"Integration/SyncProgress", testIntegrationSyncProgress},
		{"Integration/Token", testIntegrationToken},
		{"Integration/TokenConcurrent", testIntegrationTokenConcurrent},
		{"Integration/FullSyncSweep", testFullSyncSweep},
		{"Integration/FullSyncReset", testFullSyncReset},
		{"CRMUsers/ReplaceList", testCRMUsersReplaceList},
		{"CRMUsers/Invalid", testCRMUsersInvalid},
		{"Event/InsertOnce", testEventInsertOnce},
		{"Event/EnqueueInTx", testEventEnqueueInTx},
		{"Event/Batch", testEventBatch},
		{"Event/PartitionOrder", testEventPartitionOrder},
		{"Event/FinishAndAttempts", testEventFinishAndAttempts},
		{"Event/WaitingPartitions", testEventWaitingPartitions},
		{"Event/DropWaiting", testEventDropWaiting},
		{"Event/Rejected", testEventRejected},
		{"Event/RejectedTrimAndExpire", testRejectedTrimAndExpire},
		{"Event/List", testEventList},
		{"Event/ListByMarketingID", testEventListByMarketingID},
		{"Event/History", testEventHistory},
		{"Event/ConcurrentDuplicates", testEventConcurrentDuplicates},
		{"Write/BeginFinish", testWriteBeginFinish},
		{"Event/Lease", testEventLease},
		{"Sync/Lease", testSyncLease},
		{"Sync/LeaseConcurrent", testSyncLeaseConcurrent},
		{"Meta/GetSet", testMetaGetSet},
		{"Meta/SetIfAbsentConcurrent", testMetaSetIfAbsentConcurrent},
		{"Security/SecretRotate", testSecretRotate},
		{"Security/AdminTokens", testAdminTokens},
		{"Ringostat/PutGet", testRingostatPutGet},
		{"Ringostat/NotFound", testRingostatNotFound},
		{"Ringostat/Progress", testRingostatProgress},
		{"Ringostat/Lease", testRingostatLease},
		{"Ringostat/IndexEntities", testRingostatIndexEntities},
		{"Ringostat/SetEventField", testRingostatSetEventField},
		{"SALESmanago/PutGet", testSMPutGet},
		{"SALESmanago/NotFound", testSMNotFound},
		{"SALESmanago/Progress", testSMProgress},
		{"SALESmanago/Lease", testSMLease},
		{"SALESmanago/Links", testSMLinks},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			s := open(t, clk.Now)
			tc.fn(t, &env{ctx: t.Context(), s: s, clock: clk})
		})
	}
}

type env struct {
	ctx   context.Context
	s     store.Store
	clock *clock
}

// clock is a settable clock. It starts at an instant with nanoseconds in a
// non-UTC zone, so every stamp also checks the UTC and microsecond
// normalization.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var start = time.Date(2024, 3, 10, 12, 30, 45, 123456789, time.FixedZone("UTC+3", 3*3600))

func newClock() *clock { return &clock{t: start} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// stamp is how a store must return t: UTC, truncated to microseconds.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (e *env) tenant(t *testing.T, id string) domain.Tenant {
	t.Helper()
	tn := domain.Tenant{ID: id, Name: "Tenant " + id, Settings: domain.DefaultSettings(), SecretHash: []byte("hash-" + id)}
	if err := e.s.CreateTenant(e.ctx, tn); err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	return tn
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	var de *domain.Error
	if code != "" && !errors.As(err, &de) {
		t.Fatalf("%s: got error %v, want a *domain.Error with code %q", what, err, code)
	}
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("%s: got error %v (code %q), want code %q", what, err, got, code)
	}
}

func fmtTime(tm time.Time) string {
	return tm.Format(time.RFC3339Nano) + "@" + tm.Location().String()
}

func fmtTenant(tn domain.Tenant) string {
	return fmt.Sprintf("id=%q name=%q settings=%+v hash=%x owner=%q created=%s updated=%s",
		tn.ID, tn.Name, tn.Settings, tn.SecretHash, tn.DefaultOwner, fmtTime(tn.CreatedAt), fmtTime(tn.UpdatedAt))
}

func fmtEmployee(e domain.Employee) string {
	return fmt.Sprintf("%q/%q sip=%q phone=%q name=%q email=%q updated=%s",
		e.TenantID, e.CRMUserID, e.SIP, e.Phone, e.Name, e.Email, fmtTime(e.UpdatedAt))
}

func fmtStop(s domain.StopEntry) string {
	return fmt.Sprintf("%q/%q kind=%q note=%q created=%s", s.TenantID, s.Number, s.Kind, s.Note, fmtTime(s.CreatedAt))
}

func fmtIndex(e domain.IndexEntry) string {
	return fmt.Sprintf("%q/%s/%q/%q suffix=%q open=%t owner=%q name=%q updated=%s",
		e.TenantID, e.Kind, e.EntityID, e.Phone, e.Suffix, e.Open, e.OwnerID, e.Name, fmtTime(e.UpdatedAt))
}

func fmtAudit(a domain.AuditEntry) string {
	return fmt.Sprintf("#%d %q actor=%q action=%q detail=%q at=%s", a.ID, a.TenantID, a.Actor, a.Action, a.Detail, fmtTime(a.At))
}

// same fails t unless got and want render identically under format.
func same[T any](t *testing.T, what string, format func(T) string, got, want []T) {
	t.Helper()
	g, w := render(format, got), render(format, want)
	if !slices.Equal(g, w) {
		t.Fatalf("%s:\ngot  %d:\n\t%s\nwant %d:\n\t%s", what, len(g), strings.Join(g, "\n\t"), len(w), strings.Join(w, "\n\t"))
	}
}

func render[T any](format func(T) string, v []T) []string {
	out := make([]string, len(v))
	for i := range v {
		out[i] = format(v[i])
	}
	return out
}

// --- tenants ---

func testTenantCreateGet(t *testing.T, e *env) {
	want := domain.Tenant{
		ID:           "acme",
		Name:         "Acme Ltd",
		Settings:     domain.DefaultSettings(),
		SecretHash:   []byte{0, 1, 2, 0xfe, 0xff},
		DefaultOwner: "u-senior",
		// Set by the caller, replaced by the store's clock.
		CreatedAt: time.Unix(1, 0),
		UpdatedAt: time.Unix(2, 0),
	}
	if err := e.s.CreateTenant(e.ctx, want); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	want.CreatedAt, want.UpdatedAt = stamp(start), stamp(start)
	got, err := e.s.Tenant(e.ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	same(t, "Tenant", fmtTenant, []domain.Tenant{got}, []domain.Tenant{want})
}

func testTenantDuplicate(t *testing.T, e *env) {
	first := e.tenant(t, "acme")
	e.clock.Advance(time.Second)
	err := e.s.CreateTenant(e.ctx, domain.Tenant{ID: "acme", Name: "Other", Settings: domain.DefaultSettings()})
	wantCode(t, err, domain.ECONFLICT, "CreateTenant of an existing id")
	got, err := e.s.Tenant(e.ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	first.CreatedAt, first.UpdatedAt = stamp(start), stamp(start)
	same(t, "Tenant after duplicate create", fmtTenant, []domain.Tenant{got}, []domain.Tenant{first})
}

func testTenantNotFound(t *testing.T, e *env) {
	_, err := e.s.Tenant(e.ctx, "nope")
	wantCode(t, err, domain.ENOTFOUND, "Tenant of an unknown id")
	err = e.s.UpdateTenant(e.ctx, domain.Tenant{ID: "nope", Name: "x", Settings: domain.DefaultSettings()})
	wantCode(t, err, domain.ENOTFOUND, "UpdateTenant of an unknown id")
	if _, err := e.s.Tenant(e.ctx, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("UpdateTenant of an unknown id created it: %v", err)
	}
}

func testTenantList(t *testing.T, e *env) {
	got, err := e.s.ListTenants(e.ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListTenants on an empty store = %d tenants, %v; want none", len(got), err)
	}
	var want []domain.Tenant
	for _, id := range []string{"c", "a", "B", "b-2", "b"} {
		tn := e.tenant(t, id)
		tn.CreatedAt, tn.UpdatedAt = stamp(e.clock.Now()), stamp(e.clock.Now())
		want = append(want, tn)
		e.clock.Advance(time.Millisecond)
	}
	// Byte order, like Go's string comparison: "B" < "a" < "b" < "b-2" < "c".
	slices.SortFunc(want, func(a, b domain.Tenant) int { return strings.Compare(a.ID, b.ID) })
	got, err = e.s.ListTenants(e.ctx)
	if err != nil {
		t.Fatalf("ListTenants: %v", err)
	}
	same(t, "ListTenants", fmtTenant, got, want)
}

func testTenantUpdate(t *testing.T, e *env) {
	tn := e.tenant(t, "acme")
	e.clock.Advance(90 * time.Minute)
	tn.Name = "Acme Renamed"
	tn.Settings.DefaultCountry = "UA"
	tn.Settings.RouteBudgetMS = 450
	hash := tn.SecretHash
	tn.SecretHash = []byte("not through UpdateTenant")
	tn.DefaultOwner = "u-7"
	tn.CreatedAt = time.Unix(5, 0) // ignored: creation time is kept
	if err := e.s.UpdateTenant(e.ctx, tn); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	got, err := e.s.Tenant(e.ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	tn.CreatedAt, tn.UpdatedAt = stamp(start), stamp(e.clock.Now())
	tn.SecretHash = hash // the secret changes only by rotation
	same(t, "Tenant after update", fmtTenant, []domain.Tenant{got}, []domain.Tenant{tn})

	// Clearing the default owner must stick too, and still not touch the hash.
	tn.DefaultOwner, tn.SecretHash = "", nil
	if err := e.s.UpdateTenant(e.ctx, tn); err != nil {
		t.Fatalf("UpdateTenant clearing fields: %v", err)
	}
	got, err = e.s.Tenant(e.ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	if got.DefaultOwner != "" || string(got.SecretHash) != string(hash) {
		t.Fatalf("after clearing: owner=%q hash=%x, want no owner and the hash kept (%x)", got.DefaultOwner, got.SecretHash, hash)
	}
}

func testTenantSettingsRoundTrip(t *testing.T, e *env) {
	full := domain.Settings{
		DefaultCountry: "UA",
		CallerParam:    "additional_call_data.userfield",
		ResponseFormat: domain.FormatJSONRPC,
		ResponseField:  "ёжик \"quoted\" \\ <tag> &",
		RouteBudgetMS:  1234,
		OwnerOrder:     []domain.EntityKind{domain.KindContact, domain.KindLead},
		OnMiss:         domain.PolicyDefaultOwner,
		OnUnmapped:     domain.PolicyNext,
		LiveLookup:     true,
	}
	for _, tc := range []struct {
		id string
		s  domain.Settings
	}{
		{"full", full},
		{"zero", domain.Settings{}},
		{"empty-order", domain.Settings{OwnerOrder: []domain.EntityKind{}}},
	} {
		if err := e.s.CreateTenant(e.ctx, domain.Tenant{ID: tc.id, Settings: tc.s}); err != nil {
			t.Fatalf("CreateTenant(%s): %v", tc.id, err)
		}
		got, err := e.s.Tenant(e.ctx, tc.id)
		if err != nil {
			t.Fatalf("Tenant(%s): %v", tc.id, err)
		}
		if !reflect.DeepEqual(got.Settings, tc.s) {
			t.Fatalf("settings %s: got %#v, want %#v", tc.id, got.Settings, tc.s)
		}
		if len(got.SecretHash) != 0 {
			t.Fatalf("tenant %s created without a hash has hash %x", tc.id, got.SecretHash)
		}
	}
	// Updated settings replace the old ones entirely.
	if err := e.s.UpdateTenant(e.ctx, domain.Tenant{ID: "full", Settings: domain.Settings{RouteBudgetMS: 7}}); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	got, err := e.s.Tenant(e.ctx, "full")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	if want := (domain.Settings{RouteBudgetMS: 7}); !reflect.DeepEqual(got.Settings, want) {
		t.Fatalf("settings after update: got %#v, want %#v", got.Settings, want)
	}
}

// --- employees ---

func testEmployeePutGet(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.clock.Advance(time.Minute)
	want := domain.Employee{TenantID: "acme", CRMUserID: "u1", SIP: "sip101", Phone: "380501234567",
		Name: "Олена", Email: "o@example.com", UpdatedAt: time.Unix(3, 0)}
	if err := e.s.PutEmployee(e.ctx, want); err != nil {
		t.Fatalf("PutEmployee: %v", err)
	}
	want.UpdatedAt = stamp(e.clock.Now())
	got, err := e.s.Employee(e.ctx, "acme", "u1")
	if err != nil {
		t.Fatalf("Employee: %v", err)
	}
	same(t, "Employee", fmtEmployee, []domain.Employee{got}, []domain.Employee{want})
	_, err = e.s.Employee(e.ctx, "acme", "u2")
	wantCode(t, err, domain.ENOTFOUND, "Employee of an unknown user")
	_, err = e.s.Employee(e.ctx, "other", "u1")
	wantCode(t, err, domain.ENOTFOUND, "Employee of an unknown tenant")
}

func testEmployeeReplace(t *testing.T, e *env) {
	e.tenant(t, "acme")
	if err := e.s.PutEmployee(e.ctx, domain.Employee{TenantID: "acme", CRMUserID: "u1", SIP: "101", Email: "a@x"}); err != nil {
		t.Fatalf("PutEmployee: %v", err)
	}
	e.clock.Advance(time.Hour)
	want := domain.Employee{TenantID: "acme", CRMUserID: "u1", Phone: "380671112233", Name: "New"}
	if err := e.s.PutEmployee(e.ctx, want); err != nil {
		t.Fatalf("PutEmployee replacing: %v", err)
	}
	want.UpdatedAt = stamp(e.clock.Now())
	got, err := e.s.ListEmployees(e.ctx, "acme")
	if err != nil {
		t.Fatalf("ListEmployees: %v", err)
	}
	same(t, "ListEmployees after replace", fmtEmployee, got, []domain.Employee{want})
}

func testEmployeeList(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	var want []domain.Employee
	for _, id := range []string{"u3", "u1", "U2", "u10"} {
		emp := domain.Employee{TenantID: "a", CRMUserID: id, SIP: "sip-" + id}
		if err := e.s.PutEmployee(e.ctx, emp); err != nil {
			t.Fatalf("PutEmployee: %v", err)
		}
		emp.UpdatedAt = stamp(e.clock.Now())
		want = append(want, emp)
		e.clock.Advance(time.Second)
	}
	if err := e.s.PutEmployee(e.ctx, domain.Employee{TenantID: "b", CRMUserID: "u1"}); err != nil {
		t.Fatalf("PutEmployee: %v", err)
	}
	slices.SortFunc(want, func(x, y domain.Employee) int { return strings.Compare(x.CRMUserID, y.CRMUserID) })
	got, err := e.s.ListEmployees(e.ctx, "a")
	if err != nil {
		t.Fatalf("ListEmployees: %v", err)
	}
	same(t, "ListEmployees", fmtEmployee, got, want)
	got, err = e.s.ListEmployees(e.ctx, "nope")
	if err != nil || len(got) != 0 {
		t.Fatalf("ListEmployees of an unknown tenant = %d, %v; want none, nil", len(got), err)
	}
}

func testEmployeeDelete(t *testing.T, e *env) {
	e.tenant(t, "acme")
	for _, id := range []string{"u1", "u2"} {
		if err := e.s.PutEmployee(e.ctx, domain.Employee{TenantID: "acme", CRMUserID: id}); err != nil {
			t.Fatalf("PutEmployee: %v", err)
		}
	}
	if err := e.s.DeleteEmployee(e.ctx, "acme", "u1"); err != nil {
		t.Fatalf("DeleteEmployee: %v", err)
	}
	_, err := e.s.Employee(e.ctx, "acme", "u1")
	wantCode(t, err, domain.ENOTFOUND, "Employee after delete")
	wantCode(t, e.s.DeleteEmployee(e.ctx, "acme", "u1"), domain.ENOTFOUND, "second DeleteEmployee")
	wantCode(t, e.s.DeleteEmployee(e.ctx, "nope", "u2"), domain.ENOTFOUND, "DeleteEmployee of an unknown tenant")
	if _, err := e.s.Employee(e.ctx, "acme", "u2"); err != nil {
		t.Fatalf("the other employee is gone: %v", err)
	}
}

func testEmployeeUnknownTenant(t *testing.T, e *env) {
	err := e.s.PutEmployee(e.ctx, domain.Employee{TenantID: "ghost", CRMUserID: "u1"})
	wantCode(t, err, domain.ENOTFOUND, "PutEmployee of an unknown tenant")
	got, err := e.s.ListEmployees(e.ctx, "ghost")
	if err != nil || len(got) != 0 {
		t.Fatalf("ListEmployees after a failed put = %d, %v; want none", len(got), err)
	}
}

// --- stop list ---

func testStopPutList(t *testing.T, e *env) {
	e.tenant(t, "a")
	e.tenant(t, "b")
	explicit := start.Add(-48*time.Hour + 987*time.Nanosecond)
	entries := []domain.StopEntry{
		{TenantID: "a", Number: "380931112233", Kind: domain.StopLine, Note: "FMC"},
		{TenantID: "a", Number: "101", Note: "reception", CreatedAt: explicit},
		{TenantID: "a", Number: "380441234567", Kind: domain.StopClient},
		{TenantID: "b", Number: "999"},
	}
	var want []domain.StopEntry
	for _, s := range entries {
		if err := e.s.PutStop(e.ctx, s); err != nil {
			t.Fatalf("PutStop: %v", err)
		}
		if s.Kind == "" {
			s.Kind = domain.StopLine // an entry without a kind is a line
		}
		if s.CreatedAt.IsZero() {
			s.CreatedAt = e.clock.Now()
		}
		s.CreatedAt = stamp(s.CreatedAt)
		if s.TenantID == "a" {
			want = append(want, s)
		}
		e.clock.Advance(time.Second)
	}
	slices.SortFunc(want, func(x, y domain.StopEntry) int { return strings.Compare(x.Number, y.Number) })
	got, err := e.s.ListStops(e.ctx, "a")
	if err != nil {
		t.Fatalf("ListStops: %v", err)
	}
	same(t, "ListStops", fmtStop, got, want)
	got, err = e.s.ListStops(e.ctx, "nope")
	if err != nil || len(got) != 0 {
		t.Fatalf("ListStops of an unknown tenant = %d, %v; want none, nil", len(got), err)
	}
}

func testStopReplace(t *testing.T, e *env) {
	e.tenant(t, "a")
	if err := e.s.PutStop(e.ctx, domain.StopEntry{TenantID: "a", Number: "101", Note: "old"}); err != nil {
		t.Fatalf("PutStop: %v", err)
	}
	e.clock.Advance(time.Minute)
	if err := e.s.PutStop(e.ctx, domain.StopEntry{TenantID: "a", Number: "101", Kind: domain.StopClient, Note: "new"}); err != nil {
		t.Fatalf("PutStop replacing: %v", err)
	}
	got, err := e.s.ListStops(e.ctx, "a")
	if err != nil {
		t.Fatalf("ListStops: %v", err)
	}
	want := []domain.StopEntry{{TenantID: "a", Number: "101", Kind: domain.StopClient, Note: "new", CreatedAt: stamp(e.clock.Now())}}
	same(t, "ListStops after replace", fmtStop, got, want)
}

func testStopDelete(t *testing.T, e *env) {
	e.tenant(t, "a")
	for _, n := range []string{"101", "102"} {
		if err := e.s.PutStop(e.ctx, domain.StopEntry{TenantID: "a", Number: n}); err != nil {
			t.Fatalf("PutStop: %v", err)
		}
	}
	if err := e.s.DeleteStop(e.ctx, "a", "101"); err != nil {
		t.Fatalf("DeleteStop: %v", err)
	}
	wantCode(t, e.s.DeleteStop(e.ctx, "a", "101"), domain.ENOTFOUND, "second DeleteStop")
	wantCode(t, e.s.DeleteStop(e.ctx, "nope", "102"), domain.ENOTFOUND, "DeleteStop of an unknown tenant")
	got, err := e.s.ListStops(e.ctx, "a")
	if err != nil {
		t.Fatalf("ListStops: %v", err)
	}
	same(t, "ListStops after delete", fmtStop, got, []domain.StopEntry{{TenantID: "a", Number: "102", Kind: domain.StopLine, CreatedAt: stamp(start)}})
}

func testStopUnknownTenant(t *testing.T, e *env) {
	wantCode(t, e.s.PutStop(e.ctx, domain.StopEntry{TenantID: "ghost", Number: "101"}), domain.ENOTFOUND,
		"PutStop of an unknown tenant")
}

// --- phone index ---

func entry(tenant string, kind domain.EntityKind, entity, phone string) domain.IndexEntry {
	return domain.IndexEntry{
		TenantID: tenant, Kind: kind, EntityID: entity, Phone: phone,
		Suffix: suffixOf(phone), Open: true, OwnerID: "owner-" + entity, Name: "Name " + entity,
	}
}

// suffixOf stands in for phone.Suffix: the store treats the suffix as an
// opaque key.
func suffixOf(phone string) string {
	if len(phone) > 9 {
		return phone[len(phone)-9:]
	}
	return phone
}

// stamped returns rows as the store must return them after an upsert at
// now.
func stamped(now time.Time, rows ...domain.IndexEntry) []domain.IndexEntry {
	out := slices.Clone(rows)
	for i := range out {
		if out[i].UpdatedAt.IsZero() {
			out[i].UpdatedAt = now
		}
		out[i].UpdatedAt = stamp(out[i].UpdatedAt)
	}
	return out
}

func (e *env) lookup(t *testing.T, tenant, suffix string) []domain.IndexEntry {
	t.Helper()
	got, err := e.s.LookupSuffix(e.ctx, tenant, suffix)
	if err != nil {
		t.Fatalf("LookupSuffix(%q, %q): %v", tenant, suffix, err)
	}
	return got
}

func (e *env) count(t *testing.T, tenant string) int {
	t.Helper()
	n, err := e.s.CountIndex(e.ctx, tenant)
	if err != nil {
		t.Fatalf("CountIndex(%q): %v", tenant, err)
	}
	return n
}

func (e *env) scan(t *testing.T) []domain.IndexEntry {
	t.Helper()
	var got []domain.IndexEntry
	if err := e.s.ScanIndex(e.ctx, func(r domain.IndexEntry) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatalf("ScanIndex: %v", err)
	}
	return got
}

func testIndexInsert(t *testing.T, e *env) {
	e.tenant(t, "acme")
	if err := e.s.UpsertIndex(e.ctx, nil); err != nil {
		t.Fatalf("UpsertIndex of no rows: %v", err)
	}
	lead := entry("acme", domain.KindLead, "L1", "380501234567")
	lead.UpdatedAt = start.Add(-time.Hour + 999*time.Nanosecond) // kept, truncated
	contact := entry("acme", domain.KindContact, "C1", "380501234567")
	contact.Open = false
	contact.OwnerID, contact.Name = "", ""
	national := entry("acme", domain.KindDeal, "D1", "501234567") // a national-only CRM phone
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{lead, contact, national}); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	// Stamped rows first (newer), then by kind: contact < deal; lead is older.
	want := stamped(start, contact, national, lead)
	same(t, "LookupSuffix", fmtIndex, e.lookup(t, "acme", "501234567"), want)
	if got := e.lookup(t, "acme", "000000000"); len(got) != 0 {
		t.Fatalf("LookupSuffix of an unknown suffix = %v, want none", got)
	}
	if got := e.lookup(t, "other", "501234567"); len(got) != 0 {
		t.Fatalf("LookupSuffix of an unknown tenant = %v, want none", got)
	}
}

func testIndexReplace(t *testing.T, e *env) {
	e.tenant(t, "acme")
	r := entry("acme", domain.KindLead, "L1", "380501234567")
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{r}); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	e.clock.Advance(time.Minute)
	// Same key (tenant, kind, entity, phone), everything else changed,
	// including the suffix key.
	r2 := r
	r2.Suffix, r2.Open, r2.OwnerID, r2.Name = "other-suffix", false, "owner-2", "Renamed"
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{r2}); err != nil {
		t.Fatalf("UpsertIndex replacing: %v", err)
	}
	if got := e.lookup(t, "acme", r.Suffix); len(got) != 0 {
		t.Fatalf("old suffix still finds %v", got)
	}
	same(t, "LookupSuffix after replace", fmtIndex, e.lookup(t, "acme", "other-suffix"), stamped(e.clock.Now(), r2))
	if n := e.count(t, "acme"); n != 1 {
		t.Fatalf("CountIndex after replace = %d, want 1", n)
	}
}

func testIndexDuplicateInBatch(t *testing.T, e *env) {
	e.tenant(t, "acme")
	first := entry("acme", domain.KindLead, "L1", "380501234567")
	last := first
	last.OwnerID = "the-later-one"
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{first, last}); err != nil {
		t.Fatalf("UpsertIndex with a key twice: %v", err)
	}
	same(t, "LookupSuffix", fmtIndex, e.lookup(t, "acme", first.Suffix), stamped(start, last))
}

func testIndexAtomic(t *testing.T, e *env) {
	e.tenant(t, "acme")
	kept := entry("acme", domain.KindLead, "L1", "380501234567")
	if err := e.s.UpsertIndex(e.ctx, []domain.IndexEntry{kept}); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	e.clock.Advance(time.Minute)
	changed := kept
	changed.OwnerID = "must-not-stick"
	batch := []domain.IndexEntry{
		changed,
		entry("acme", domain.KindLead, "L2", "380501111111"),
		entry("ghost", domain.KindLead, "G1", "380502222222"),
		entry("acme", domain.KindLead, "L3", "380503333333"),
	}
	err := e.s.UpsertIndex(e.ctx, batch)
	wantCode(t, err, domain.ENOTFOUND, "UpsertIndex with a row of an unknown tenant")
	if !strings.Contains(err.Error(), "ghost") {
		t.Errorf("error %q does not name the unknown tenant", err)
	}
	if n := e.count(t, ""); n != 1 {
		t.Fatalf("CountIndex after a failed batch = %d, want 1", n)
	}
	same(t, "rows after a failed batch", fmtIndex, e.scan(t), stamped(start, kept))
}

func testIndexDeleteEntity(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.tenant(t, "beta")
	rows := []domain.IndexEntry{
		entry("acme", domain.KindContact, "C1", "380501234567"),
		// Phone order differs from suffix order, so the suffixes must be
		// sorted, not just returned as the rows come.
		entry("acme", domain.KindContact, "C1", "370671112233"),
		entry("acme", domain.KindContact, "C1", "0501234567"), // same suffix as the first
		entry("acme", domain.KindLead, "C1", "380501234567"),  // same id, other kind
		entry("acme", domain.KindContact, "C2", "380501234567"),
		entry("beta", domain.KindContact, "C1", "380501234567"), // same entity id, other tenant
	}
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	got, err := e.s.DeleteEntity(e.ctx, "acme", domain.KindContact, "C1")
	if err != nil {
		t.Fatalf("DeleteEntity: %v", err)
	}
	if want := []string{"501234567", "671112233"}; !slices.Equal(got, want) {
		t.Fatalf("DeleteEntity returned suffixes %q, want %q", got, want)
	}
	same(t, "rows after DeleteEntity", fmtIndex, e.scan(t), stamped(start, rows[4], rows[3], rows[5]))
	got, err = e.s.DeleteEntity(e.ctx, "acme", domain.KindContact, "C1")
	if err != nil || len(got) != 0 {
		t.Fatalf("DeleteEntity of a gone entity = %q, %v; want none, nil", got, err)
	}
}

func testIndexLookupOrder(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.tenant(t, "beta")
	const phone = "380501234567"
	at := func(min int) time.Time { return start.Add(time.Duration(min) * time.Minute) }
	mk := func(kind domain.EntityKind, id string, updated time.Time) domain.IndexEntry {
		r := entry("acme", kind, id, phone)
		r.UpdatedAt = updated
		return r
	}
	rows := []domain.IndexEntry{
		mk(domain.KindLead, "L-old", at(-30)),
		mk(domain.KindLead, "L-b", at(5)),
		mk(domain.KindLead, "L-a", at(5)),
		mk(domain.KindDeal, "D-1", at(5)),
		mk(domain.KindCompany, "X-1", at(-1)),
		mk(domain.KindContact, "C-new", at(10)),
		entry("beta", domain.KindLead, "B-1", phone),
	}
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	want := stamped(start, rows[5], rows[3], rows[2], rows[1], rows[4], rows[0])
	same(t, "LookupSuffix order", fmtIndex, e.lookup(t, "acme", suffixOf(phone)), want)
}

func testIndexScanOrder(t *testing.T, e *env) {
	// Created in reverse so insertion order cannot pass for the right order.
	for _, id := range []string{"t3", "t2", "T1", "t1"} {
		e.tenant(t, id)
	}
	var rows []domain.IndexEntry
	for i, tn := range []string{"t3", "t1", "t2", "T1"} {
		for j, phone := range []string{"380509999999", "380501111111", "380671111111"} {
			r := entry(tn, domain.KindLead, fmt.Sprintf("L%d", j), phone)
			r.UpdatedAt = start.Add(time.Duration(i*10+j) * time.Second)
			rows = append(rows, r)
			c := entry(tn, domain.KindContact, fmt.Sprintf("C%d", j), phone)
			c.UpdatedAt = start.Add(time.Duration(i*10-j) * time.Second)
			rows = append(rows, c)
		}
	}
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	same(t, "ScanIndex order", fmtIndex, e.scan(t), scanOrder(stamped(start, rows...)))
}

// scanOrder sorts rows in place into the order ScanIndex returns them and
// returns them.
func scanOrder(rows []domain.IndexEntry) []domain.IndexEntry {
	slices.SortFunc(rows, func(a, b domain.IndexEntry) int {
		if c := strings.Compare(a.TenantID, b.TenantID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Suffix, b.Suffix); c != 0 {
			return c
		}
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		if c := strings.Compare(a.EntityID, b.EntityID); c != 0 {
			return c
		}
		return strings.Compare(a.Phone, b.Phone)
	})
	return rows
}

func testIndexScanStop(t *testing.T, e *env) {
	e.tenant(t, "acme")
	var rows []domain.IndexEntry
	for i := range 10 {
		rows = append(rows, entry("acme", domain.KindLead, fmt.Sprintf("L%d", i), fmt.Sprintf("38050000000%d", i)))
	}
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	stop := errors.New("enough")
	calls := 0
	err := e.s.ScanIndex(e.ctx, func(domain.IndexEntry) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("ScanIndex returned %v, want fn's error", err)
	}
	if calls != 3 {
		t.Fatalf("ScanIndex called fn %d times after it failed on call 3", calls)
	}
	// The store stays usable: the scan released its connection.
	if n := e.count(t, "acme"); n != 10 {
		t.Fatalf("CountIndex = %d, want 10", n)
	}
	if got := e.scan(t); len(got) != 10 {
		t.Fatalf("a second ScanIndex saw %d rows, want 10", len(got))
	}
}

func testIndexCount(t *testing.T, e *env) {
	if n := e.count(t, ""); n != 0 {
		t.Fatalf("CountIndex of an empty store = %d", n)
	}
	e.tenant(t, "a")
	e.tenant(t, "b")
	var rows []domain.IndexEntry
	for i := range 7 {
		tn := "a"
		if i%3 == 0 {
			tn = "b"
		}
		rows = append(rows, entry(tn, domain.KindDeal, fmt.Sprint(i), fmt.Sprintf("3805000000%02d", i)))
	}
	if err := e.s.UpsertIndex(e.ctx, rows); err != nil {
		t.Fatalf("UpsertIndex: %v", err)
	}
	for tn, want := range map[string]int{"a": 4, "b": 3, "": 7, "nope": 0} {
		if n := e.count(t, tn); n != want {
			t.Errorf("CountIndex(%q) = %d, want %d", tn, n, want)
		}
	}
}

// --- audit ---

func testAuditAppend(t *testing.T, e *env) {
	a1, err := e.s.AppendAudit(e.ctx, domain.AuditEntry{TenantID: "acme", Actor: "admin", Action: "tenant.create", Detail: `{"id":"acme"}`})
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if a1.ID <= 0 || !a1.At.Equal(stamp(start)) || a1.At.Location() != time.UTC {
		t.Fatalf("AppendAudit returned id=%d at=%s, want id>0 at=%s", a1.ID, fmtTime(a1.At), fmtTime(stamp(start)))
	}
	explicit := start.Add(-24*time.Hour + 1500*time.Nanosecond)
	// No tenant, and a tenant that does not exist: entries outlive tenants.
	a2, err := e.s.AppendAudit(e.ctx, domain.AuditEntry{Actor: "cli", Action: "token.rotate", At: explicit})
	if err != nil {
		t.Fatalf("AppendAudit without tenant: %v", err)
	}
	if a2.ID <= a1.ID || !a2.At.Equal(stamp(explicit)) || a2.At.Location() != time.UTC {
		t.Fatalf("AppendAudit returned id=%d at=%s, want id>%d at=%s", a2.ID, fmtTime(a2.At), a1.ID, fmtTime(stamp(explicit)))
	}
	got, err := e.s.ListAudit(e.ctx, "", 10)
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	same(t, "ListAudit", fmtAudit, got, []domain.AuditEntry{a2, a1})
}

func testAuditList(t *testing.T, e *env) {
	var all []domain.AuditEntry
	for i := range 7 {
		tn := []string{"a", "b", "a", ""}[i%4]
		a, err := e.s.AppendAudit(e.ctx, domain.AuditEntry{TenantID: tn, Actor: "admin", Action: fmt.Sprintf("act-%d", i)})
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		all = append(all, a)
		e.clock.Advance(time.Second)
	}
	slices.Reverse(all)
	pick := func(tn string, limit int) []domain.AuditEntry {
		var out []domain.AuditEntry
		for _, a := range all {
			if (tn == "" || a.TenantID == tn) && (limit <= 0 || len(out) < limit) {
				out = append(out, a)
			}
		}
		return out
	}
	for _, tc := range []struct {
		tenant string
		limit  int
	}{{"", 100}, {"", 3}, {"a", 100}, {"a", 2}, {"b", 1}, {"", 0}, {"nope", 5}} {
		got, err := e.s.ListAudit(e.ctx, tc.tenant, tc.limit)
		if err != nil {
			t.Fatalf("ListAudit(%q, %d): %v", tc.tenant, tc.limit, err)
		}
		same(t, fmt.Sprintf("ListAudit(%q, %d)", tc.tenant, tc.limit), fmtAudit, got, pick(tc.tenant, tc.limit))
	}
}

// --- meta ---

func testMetaGetSet(t *testing.T, e *env) {
	_, err := e.s.GetMeta(e.ctx, "admin_token_hash")
	wantCode(t, err, domain.ENOTFOUND, "GetMeta of an unset key")
	ok, err := e.s.SetMetaIfAbsent(e.ctx, "admin_token_hash", "first")
	if err != nil || !ok {
		t.Fatalf("first SetMetaIfAbsent = %t, %v; want true", ok, err)
	}
	ok, err = e.s.SetMetaIfAbsent(e.ctx, "admin_token_hash", "second")
	if err != nil || ok {
		t.Fatalf("second SetMetaIfAbsent = %t, %v; want false", ok, err)
	}
	if v, err := e.s.GetMeta(e.ctx, "admin_token_hash"); err != nil || v != "first" {
		t.Fatalf("GetMeta = %q, %v; want the first value", v, err)
	}
	if err := e.s.SetMeta(e.ctx, "admin_token_hash", "replaced"); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	if err := e.s.SetMeta(e.ctx, "instance", ""); err != nil {
		t.Fatalf("SetMeta of a new key: %v", err)
	}
	for k, want := range map[string]string{"admin_token_hash": "replaced", "instance": ""} {
		if v, err := e.s.GetMeta(e.ctx, k); err != nil || v != want {
			t.Fatalf("GetMeta(%q) = %q, %v; want %q", k, v, err, want)
		}
	}
}

func testMetaSetIfAbsentConcurrent(t *testing.T, e *env) {
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			v := fmt.Sprintf("value-%d", i)
			ok, err := e.s.SetMetaIfAbsent(e.ctx, "leader", v)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				winners = append(winners, v)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("SetMetaIfAbsent failed: %v", errors.Join(errs...))
	}
	if len(winners) != 1 {
		t.Fatalf("%d callers won SetMetaIfAbsent (%q), want exactly 1", len(winners), winners)
	}
	if v, err := e.s.GetMeta(e.ctx, "leader"); err != nil || v != winners[0] {
		t.Fatalf("GetMeta = %q, %v; want the winner's %q", v, err, winners[0])
	}
}

// --- concurrency ---

// testConcurrent has writers upsert and delete while readers look up,
// scan and count, as the sync and the live-call path do in production.
// Every reader must see each entity either whole or not at all.
func testConcurrent(t *testing.T, e *env) {
	const (
		writers = 4
		batches = 8
		perB    = 25
		readers = 4
	)
	e.tenant(t, "acme")
	// Every entity has two phones sharing one suffix, written in one batch.
	row := func(w, b, i, p int) domain.IndexEntry {
		id := fmt.Sprintf("w%d-b%d-%d", w, b, i)
		r := entry("acme", domain.KindLead, id, fmt.Sprintf("%d%02d%d%03d%d", 38+p, w, b, i, p))
		r.Suffix = "s-" + id
		return r
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		written = make(chan string, writers*batches*perB)
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for b := range batches {
				var batch []domain.IndexEntry
				for i := range perB {
					batch = append(batch, row(w, b, i, 0), row(w, b, i, 1))
				}
				if err := e.s.UpsertIndex(ctx, batch); err != nil {
					fail(fmt.Errorf("UpsertIndex: %w", err))
					return
				}
				for i := range perB {
					written <- batch[2*i].Suffix
				}
				if b%2 == 1 { // delete one entity of the previous batch
					r := row(w, b-1, 0, 0)
					if _, err := e.s.DeleteEntity(ctx, "acme", r.Kind, r.EntityID); err != nil {
						fail(fmt.Errorf("DeleteEntity: %w", err))
						return
					}
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case s := <-written:
					got, err := e.s.LookupSuffix(ctx, "acme", s)
					if err != nil && ctx.Err() == nil {
						fail(fmt.Errorf("LookupSuffix: %w", err))
						return
					}
					if len(got) != 2 && len(got) != 0 {
						fail(fmt.Errorf("LookupSuffix(%q) saw %d of 2 rows of an entity", s, len(got)))
					}
				default:
					if _, err := e.s.CountIndex(ctx, "acme"); err != nil && ctx.Err() == nil {
						fail(fmt.Errorf("CountIndex: %w", err))
						return
					}
				}
			}
		})
	}
	writersWG.Wait()
	cancel()
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	deleted := writers * batches / 2
	if n, want := e.count(t, "acme"), 2*(writers*batches*perB-deleted); n != want {
		t.Fatalf("CountIndex = %d, want %d", n, want)
	}
	got := e.scan(t)
	for i := 1; i < len(got); i++ {
		if got[i-1].Suffix > got[i].Suffix {
			t.Fatalf("ScanIndex out of order at %d: %q after %q", i, got[i].Suffix, got[i-1].Suffix)
		}
	}
}
