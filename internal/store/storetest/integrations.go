package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// --- integrations ---

func fmtBytes(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("[%x]", b)
}

func fmtIntegration(in store.Integration) string {
	return fmt.Sprintf("%q crm=%q url=%q creds=%s token=%s v%d state=%q error=%q phase=%q cursor=%q synced=%d "+
		"last_sync=%s success=%s error_at=%s updated=%s full_from=%s reconciled=%s",
		in.TenantID, in.CRM, in.BaseURL, fmtBytes(in.Creds), fmtBytes(in.Token), in.TokenVersion, in.State,
		in.LastError, in.Phase, in.Cursor, in.Synced,
		fmtTime(in.LastSyncAt), fmtTime(in.SuccessAt), fmtTime(in.ErrorAt), fmtTime(in.UpdatedAt),
		fmtTime(in.FullFrom), fmtTime(in.ReconciledAt))
}

// allBytes returns every byte value once, NUL and invalid UTF-8 included.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func (e *env) putIntegration(t *testing.T, in store.Integration) {
	t.Helper()
	if err := e.s.PutIntegration(e.ctx, in); err != nil {
		t.Fatalf("PutIntegration(%q): %v", in.TenantID, err)
	}
}

// integration fails t unless the stored integration of tenant is want.
func (e *env) integration(t *testing.T, what string, want store.Integration) {
	t.Helper()
	got, err := e.s.Integration(e.ctx, want.TenantID)
	if err != nil {
		t.Fatalf("%s: Integration(%q): %v", what, want.TenantID, err)
	}
	same(t, what, fmtIntegration, []store.Integration{got}, []store.Integration{want})
}

// fresh returns in as PutIntegration stores it at now: a new full sync.
func fresh(in store.Integration, now time.Time) store.Integration {
	return store.Integration{
		TenantID: in.TenantID, CRM: in.CRM, BaseURL: in.BaseURL, Creds: in.Creds, Token: in.Token,
		TokenVersion: 1, State: in.State, Phase: store.PhaseFull, UpdatedAt: stamp(now),
	}
}

func testIntegrationPutGet(t *testing.T, e *env) {
	e.tenant(t, "acme")
	e.clock.Advance(time.Minute)
	in := store.Integration{
		TenantID: "acme", CRM: "bitrix24", BaseURL: "https://acme.bitrix24.ua/rest/",
		Creds: allBytes(), Token: []byte{0, 0xff, 0, 'x', 0},
		State: store.IntegrationActive,
		// The store's own fields: ignored.
		TokenVersion: 42, LastError: "stale", Phase: store.PhaseIncremental, Cursor: "c-9", Synced: 77,
		LastSyncAt: start, SuccessAt: start, ErrorAt: start, UpdatedAt: time.Unix(1, 0),
	}
	e.putIntegration(t, in)
	e.integration(t, "Integration", fresh(in, e.clock.Now()))

	// A CRM without tokens, and an empty token: none comes back as nil.
	for _, tc := range []struct {
		id    string
		token []byte
	}{{"no-token", nil}, {"empty-token", []byte{}}} {
		e.tenant(t, tc.id)
		in := store.Integration{TenantID: tc.id, CRM: "amocrm", Creds: []byte(`{"k":"v"}`), Token: tc.token,
			State: store.IntegrationInactive}
		e.putIntegration(t, in)
		in.Token = nil
		e.integration(t, "Integration of "+tc.id, fresh(in, e.clock.Now()))
	}
}

func testIntegrationPutResetsSync(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "bitrix24", BaseURL: "https://a.example/", Creds: []byte("c1"),
		Token: []byte("t1"), State: store.IntegrationActive}
	e.putIntegration(t, in)
	// A history: pages, a success, an error, token saves, a broken state.
	e.clock.Advance(time.Minute)
	for _, p := range []store.SyncProgress{
		{Phase: store.PhaseIncremental, Cursor: "c", Synced: 10, Success: true},
		{Phase: store.PhaseIncremental, Cursor: "d", Synced: 12, Error: "HTTP 500"},
	} {
		if err := e.s.SaveSyncProgress(e.ctx, "acme", p); err != nil {
			t.Fatalf("SaveSyncProgress: %v", err)
		}
	}
	if _, err := e.s.SaveIntegrationToken(e.ctx, "acme", []byte("t2"), 1); err != nil {
		t.Fatalf("SaveIntegrationToken: %v", err)
	}
	if err := e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationBroken, "invalid_grant", false); err != nil {
		t.Fatalf("SetIntegrationState: %v", err)
	}
	// Replacing keeps nothing of it.
	e.clock.Advance(time.Hour)
	in = store.Integration{TenantID: "acme", CRM: "amocrm", BaseURL: "https://b.example/", Creds: []byte("c2"),
		State: store.IntegrationInactive, TokenVersion: 2}
	e.putIntegration(t, in)
	// The token version moves on (1, one save: 2, the put: 3) instead of
	// starting over, so a refresh begun before the put cannot overwrite
	// the new token.
	want := fresh(in, e.clock.Now())
	want.TokenVersion = 3
	e.integration(t, "Integration after a second put", want)
	got, err := e.s.ListIntegrations(e.ctx)
	if err != nil {
		t.Fatalf("ListIntegrations: %v", err)
	}
	same(t, "ListIntegrations after a second put", fmtIntegration, got, []store.Integration{want})
	_, err = e.s.SaveIntegrationToken(e.ctx, "acme", []byte("from an old refresh"), 2)
	wantCode(t, err, domain.ECONFLICT, "SaveIntegrationToken with the version from before the put")
}

func testIntegrationList(t *testing.T, e *env) {
	got, err := e.s.ListIntegrations(e.ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListIntegrations on an empty store = %d, %v; want none", len(got), err)
	}
	e.tenant(t, "no-integration")
	var want []store.Integration
	for _, id := range []string{"c", "a", "B", "b-2", "b"} {
		e.tenant(t, id)
		in := store.Integration{TenantID: id, CRM: "crm-" + id, Creds: []byte("creds-" + id), State: store.IntegrationActive}
		e.putIntegration(t, in)
		want = append(want, fresh(in, e.clock.Now()))
		e.clock.Advance(time.Millisecond)
	}
	// Byte order: "B" < "a" < "b" < "b-2" < "c".
	slices.SortFunc(want, func(a, b store.Integration) int { return strings.Compare(a.TenantID, b.TenantID) })
	got, err = e.s.ListIntegrations(e.ctx)
	if err != nil {
		t.Fatalf("ListIntegrations: %v", err)
	}
	same(t, "ListIntegrations", fmtIntegration, got, want)
}

func testIntegrationNotFound(t *testing.T, e *env) {
	e.tenant(t, "acme") // a tenant without an integration
	err := e.s.PutIntegration(e.ctx, store.Integration{TenantID: "ghost", CRM: "x", State: store.IntegrationActive})
	wantCode(t, err, domain.ENOTFOUND, "PutIntegration of an unknown tenant")
	for _, id := range []string{"acme", "ghost"} {
		_, err := e.s.Integration(e.ctx, id)
		wantCode(t, err, domain.ENOTFOUND, "Integration of "+id)
		err = e.s.SetIntegrationState(e.ctx, id, store.IntegrationActive, "", true)
		wantCode(t, err, domain.ENOTFOUND, "SetIntegrationState of "+id)
		err = e.s.SaveSyncProgress(e.ctx, id, store.SyncProgress{Phase: store.PhaseFull, Success: true})
		wantCode(t, err, domain.ENOTFOUND, "SaveSyncProgress of "+id)
		v, err := e.s.SaveIntegrationToken(e.ctx, id, []byte("t"), 1)
		wantCode(t, err, domain.ENOTFOUND, "SaveIntegrationToken of "+id)
		if v != 0 {
			t.Fatalf("failed SaveIntegrationToken returned version %d", v)
		}
	}
	got, err := e.s.ListIntegrations(e.ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListIntegrations after failed calls = %d, %v; want none", len(got), err)
	}
}

func testIntegrationState(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "bitrix24", Creds: []byte("c"), Token: []byte("t"),
		State: store.IntegrationActive}
	e.putIntegration(t, in)
	want := fresh(in, e.clock.Now())
	e.clock.Advance(time.Second + 1500*time.Nanosecond)
	p := store.SyncProgress{Phase: store.PhaseIncremental, Cursor: "cur-1", Synced: 10, Success: true}
	if err := e.s.SaveSyncProgress(e.ctx, "acme", p); err != nil {
		t.Fatalf("SaveSyncProgress: %v", err)
	}
	want.Phase, want.Cursor, want.Synced = p.Phase, p.Cursor, p.Synced
	want.LastSyncAt, want.SuccessAt = stamp(e.clock.Now()), stamp(e.clock.Now())

	// Without restart only the state, the error and UpdatedAt change.
	e.clock.Advance(time.Minute + 1500*time.Nanosecond)
	if err := e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationBroken, "invalid_grant: ёжик", false); err != nil {
		t.Fatalf("SetIntegrationState: %v", err)
	}
	want.State, want.LastError, want.UpdatedAt = store.IntegrationBroken, "invalid_grant: ёжик", stamp(e.clock.Now())
	e.integration(t, "Integration after SetIntegrationState", want)

	// With restart the sync also starts over; its times are kept.
	e.clock.Advance(time.Minute + 1500*time.Nanosecond)
	if err := e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationActive, "", true); err != nil {
		t.Fatalf("SetIntegrationState restarting: %v", err)
	}
	want.State, want.LastError, want.UpdatedAt = store.IntegrationActive, "", stamp(e.clock.Now())
	want.Phase, want.Cursor, want.Synced = store.PhaseFull, "", 0
	e.integration(t, "Integration after a restart", want)

	e.clock.Advance(time.Minute)
	if err := e.s.SetIntegrationState(e.ctx, "acme", store.IntegrationInactive, "", false); err != nil {
		t.Fatalf("SetIntegrationState: %v", err)
	}
	want.State, want.UpdatedAt = store.IntegrationInactive, stamp(e.clock.Now())
	e.integration(t, "Integration after deactivation", want)
}

func testIntegrationSyncProgress(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "bitrix24", Creds: []byte("c"), State: store.IntegrationActive}
	e.putIntegration(t, in)
	want := fresh(in, e.clock.Now()) // UpdatedAt stays the put's
	for i, step := range []struct {
		p                store.SyncProgress
		success, failure bool   // the times it must stamp
		lastError        string // LastError after it
	}{
		{store.SyncProgress{Phase: store.PhaseFull, Cursor: "page-1", Synced: 250}, false, false, ""},
		{store.SyncProgress{Phase: store.PhaseFull, Cursor: "page-2", Synced: 500, Error: "HTTP 503"}, false, true, "HTTP 503"},
		// A page without an outcome keeps the last error.
		{store.SyncProgress{Phase: store.PhaseFull, Cursor: "page-3", Synced: 750}, false, false, "HTTP 503"},
		{store.SyncProgress{Phase: store.PhaseIncremental, Cursor: "2024-03-10T12:00:00Z", Synced: 731, Success: true}, true, false, ""},
		{store.SyncProgress{Phase: store.PhaseIncremental, Cursor: "2024-03-10T12:05:00Z", Synced: 733}, false, false, ""},
		{store.SyncProgress{Phase: store.PhaseIncremental, Cursor: "", Synced: 733, Error: "timeout"}, false, true, "timeout"},
		{store.SyncProgress{Phase: store.PhaseIncremental, Cursor: "z", Synced: 734, Success: true}, true, false, ""},
	} {
		e.clock.Advance(time.Minute + 1500*time.Nanosecond)
		if err := e.s.SaveSyncProgress(e.ctx, "acme", step.p); err != nil {
			t.Fatalf("SaveSyncProgress %d: %v", i, err)
		}
		now := stamp(e.clock.Now())
		want.Phase, want.Cursor, want.Synced, want.LastSyncAt = step.p.Phase, step.p.Cursor, step.p.Synced, now
		if step.success {
			want.SuccessAt = now
		}
		if step.failure {
			want.ErrorAt = now
		}
		want.LastError = step.lastError
		e.integration(t, fmt.Sprintf("Integration after SaveSyncProgress %d", i), want)
	}
}

func testIntegrationToken(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "amocrm", Creds: []byte("c"), Token: []byte("t1"),
		State: store.IntegrationActive}
	e.putIntegration(t, in)
	want := fresh(in, e.clock.Now())
	e.clock.Advance(time.Minute) // token saves leave UpdatedAt alone

	for _, step := range []struct {
		token []byte
		want  []byte
	}{
		{allBytes(), allBytes()},
		{nil, nil}, // the token can be dropped
		{[]byte{}, nil},
		{[]byte("t5"), []byte("t5")},
	} {
		v, err := e.s.SaveIntegrationToken(e.ctx, "acme", step.token, want.TokenVersion)
		if err != nil || v != want.TokenVersion+1 {
			t.Fatalf("SaveIntegrationToken(version %d) = %d, %v; want %d", want.TokenVersion, v, err, want.TokenVersion+1)
		}
		want.TokenVersion, want.Token = v, step.want
		e.integration(t, "Integration after SaveIntegrationToken", want)
	}

	// A stale version changes nothing.
	for _, stale := range []int64{1, want.TokenVersion - 1, want.TokenVersion + 1} {
		v, err := e.s.SaveIntegrationToken(e.ctx, "acme", []byte("lost"), stale)
		wantCode(t, err, domain.ECONFLICT, fmt.Sprintf("SaveIntegrationToken of version %d at %d", stale, want.TokenVersion))
		if v != 0 {
			t.Fatalf("failed SaveIntegrationToken returned version %d", v)
		}
	}
	e.integration(t, "Integration after stale saves", want)
}

func testIntegrationTokenConcurrent(t *testing.T, e *env) {
	e.tenant(t, "acme")
	in := store.Integration{TenantID: "acme", CRM: "amocrm", Creds: []byte("c"), Token: []byte("t0"),
		State: store.IntegrationActive}
	e.putIntegration(t, in)
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			token := fmt.Sprintf("refreshed-%d", i)
			v, err := e.s.SaveIntegrationToken(e.ctx, "acme", []byte(token), 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && v == 2:
				winners = append(winners, token)
			case domain.ErrorCode(err) == domain.ECONFLICT:
			default:
				errs = append(errs, fmt.Errorf("SaveIntegrationToken = %d, %w", v, err))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if len(winners) != 1 {
		t.Fatalf("%d savers of version 1 won (%q), want exactly 1", len(winners), winners)
	}
	want := fresh(in, e.clock.Now())
	want.Token, want.TokenVersion = []byte(winners[0]), 2
	e.integration(t, "Integration after concurrent saves", want)
}
