package notify_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/admin"
	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crmsync"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
	"github.com/callrouter/callrouter/internal/store/storetest"
	"github.com/callrouter/callrouter/internal/tenant"
)

// instance is one router process's in-memory state and services, wired as
// `router serve` wires them.
type instance struct {
	reg    *tenant.Registry
	admin  *admin.Service
	engine *crmsync.Engine
	router *lookup.Service
}

func newInstance(t *testing.T, url, schema, origin string) *instance {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bus, err := notify.NewPostgres(context.Background(), st.Pool(), notify.Config{Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	return wire(t, st, bus)
}

// wire builds an instance on st listening on bus. Nothing it does is
// announced by code: the store's triggers announce every change in the
// transaction that commits it, so the services get no Publisher.
func wire(t *testing.T, st store.Store, bus notify.Bus) *instance {
	t.Helper()
	ctx := context.Background()
	c, err := cache.New(cache.Config{MaxItems: 1 << 12, NegativeTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := tenant.NewRegistry(st)
	if err := bus.Start(ctx, notify.Local{Tenants: reg, Cache: c}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	if err := reg.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	return &instance{
		reg:    reg,
		admin:  admin.New(st, reg, c),
		engine: crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg}),
		router: lookup.New(c, st, time.Second),
	}
}

// The environment of a child process that writes and is killed at once.
const (
	childEnv       = "NOTIFY_KILLED_WRITER"
	childURLEnv    = "NOTIFY_KILLED_WRITER_URL"
	childSchemaEnv = "NOTIFY_KILLED_WRITER_SCHEMA"
)

// TestMain runs the killed writer when this binary is started as one.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		killedWriter()
		return
	}
	os.Exit(m.Run())
}

// killedWriter opens the store named by the environment, maps employee
// 501 to a new SIP login and indexes a lead of 501 for 067 123 45 67, with
// no Publisher wired, and is killed with SIGKILL the moment the write has
// committed: whatever announces it must have happened in the commit.
func killedWriter() {
	ctx := context.Background()
	var (
		st  store.Store
		err error
	)
	if url := os.Getenv(childURLEnv); url != "" {
		st, err = postgres.Open(ctx, url, postgres.WithSchema(os.Getenv(childSchemaEnv)))
	} else {
		st, err = sqlite.Open(ctx, os.Getenv(childSchemaEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	reg := tenant.NewRegistry(st)
	if err := reg.LoadAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c, err := cache.New(cache.Config{MaxItems: 1 << 10})
	if err != nil {
		os.Exit(2)
	}
	if err := st.PutEmployee(ctx, domain.Employee{TenantID: "acme", CRMUserID: "501", SIP: "anna_after_kill"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	engine := crmsync.New(crmsync.Config{Store: st, Cache: c, Tenants: reg})
	if err := engine.Calls.Index(ctx, "acme", []crm.Entity{{Kind: domain.KindLead, ID: "9001", Phones: []string{"+380 67 123 45 67"},
		OwnerID: "501", Open: true, UpdatedAt: time.Now()}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// killWriter runs killedWriter in a child process on the store and checks
// that it died of the SIGKILL, not of an error.
func killWriter(t *testing.T, url, schemaOrPath string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURLEnv+"="+url, childSchemaEnv+"="+schemaOrPath)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the writer did not die of SIGKILL after its commit: %v\n%s", err, out)
	}
}

// An instance killed right after committing a change never ran a line
// that could announce it; the other instances still apply it, because the
// database announced it with the commit (PostgreSQL).
func TestKilledWriterIsHeardPostgres(t *testing.T) {
	url := storetest.PostgresURL(t)
	schema := storetest.FreshSchema(t, url)
	b := newInstance(t, url, schema, "b")
	testKilledWriter(t, b, func() { killWriter(t, url, schema) })
}

// The same on SQLite: the change-log row is written in the transaction
// that commits the change, and the other process's poller applies it.
func TestKilledWriterIsHeardSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "callrouter.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bus, err := notify.NewPoller(st, notify.Config{Origin: "b", PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := wire(t, st, bus)
	testKilledWriter(t, b, func() { killWriter(t, "", path) })
}

func testKilledWriter(t *testing.T, b *instance, kill func()) {
	ctx := context.Background()
	if _, err := b.admin.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA", OnMiss: "default_owner"}}); err != nil {
		t.Fatal(err)
	}
	for id, sip := range map[string]string{"501": "anna_sip", "503": "olga_sip"} {
		if _, err := b.admin.PutEmployee(ctx, "test", "acme", id, admin.EmployeeInput{SIP: sip}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.admin.SetDefaultOwner(ctx, "test", "acme", admin.DefaultOwnerInput{CRMUserID: new("503")}); err != nil {
		t.Fatal(err)
	}
	// b caches the caller as unknown and employee 501's old login.
	if got := b.route("380671234567"); got != "olga_sip/default_owner" {
		t.Fatalf("before the write: %s", got)
	}
	kill()
	within(t, "change of a writer killed after its commit", b, "380671234567", "anna_after_kill/owner")
}

// route asks the instance where to send a call from caller.
func (in *instance) route(caller string) string {
	t := in.reg.Lookup("acme")
	if t == nil {
		return "(no tenant)"
	}
	r := in.router.Route(context.Background(), t, []byte(caller), time.Now())
	return r.Target + "/" + r.Reason.String()
}

// failSafe bounds the wait for a change to reach another instance.
const failSafe = 10 * time.Second

// within fails unless b routes caller to want after the change, and
// returns how long it took. How long is a figure (logged; typically
// milliseconds), not the check: the bound only keeps a lost change from
// hanging the test, and is wide enough for a loaded machine.
func within(t *testing.T, what string, b *instance, caller, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := b.route(caller)
		if got == want {
			d := time.Since(start)
			t.Logf("%s: on instance b after %s", what, d)
			return d
		}
		if time.Since(start) > failSafe {
			t.Fatalf("%s: instance b still routes %s to %s after %v, want %s", what, caller, got, failSafe, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Two instances on one PostgreSQL schema: an admin change (employee SIP,
// default owner, stop-list-free settings) and a phone-index change (import,
// a CRM entity applied by the sync engine) made on instance a change what
// instance b answers within a second, although b had the old answers in
// its cache and registry.
func TestTwoInstancesSeeEachOthersChanges(t *testing.T) {
	url := storetest.PostgresURL(t)
	schema := storetest.FreshSchema(t, url)
	ctx := context.Background()
	a := newInstance(t, url, schema, "a")
	b := newInstance(t, url, schema, "b")

	if _, err := a.admin.CreateTenant(ctx, "test", admin.NewTenant{ID: "acme", Settings: domain.Settings{DefaultCountry: "UA", OnMiss: "default_owner"}}); err != nil {
		t.Fatal(err)
	}
	for id, sip := range map[string]string{"501": "anna_sip", "502": "boris_sip", "503": "olga_sip"} {
		if _, err := a.admin.PutEmployee(ctx, "test", "acme", id, admin.EmployeeInput{SIP: sip}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.admin.SetDefaultOwner(ctx, "test", "acme", admin.DefaultOwnerInput{CRMUserID: new("503")}); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	note := func(d time.Duration) { worst = max(worst, d) }
	note(within(t, "tenant created with its default owner", b, "380671234567", "olga_sip/default_owner"))

	// b has the caller cached as unknown; an import on a indexes it.
	if _, err := a.admin.Import(ctx, "test", "acme", "csv", "", strings.NewReader("phone,owner_crm_user_id\n067 123 45 67,501\n")); err != nil {
		t.Fatal(err)
	}
	note(within(t, "imported contact", b, "380671234567", "anna_sip/owner"))

	if _, err := a.admin.PutEmployee(ctx, "test", "acme", "501", admin.EmployeeInput{SIP: "anna_new"}); err != nil {
		t.Fatal(err)
	}
	note(within(t, "employee SIP change", b, "380671234567", "anna_new/owner"))

	b.route("380509999999") // cached as unknown: the default owner answers
	if _, err := a.admin.SetDefaultOwner(ctx, "test", "acme", admin.DefaultOwnerInput{CRMUserID: new("502")}); err != nil {
		t.Fatal(err)
	}
	note(within(t, "default owner change", b, "380509999999", "boris_sip/default_owner"))

	// What a sync page, a CRM webhook, a live lookup or a new lead of a call
	// event does: the engine applies CRM entities to the index.
	if err := a.engine.Calls.Index(ctx, "acme", []crm.Entity{{Kind: domain.KindLead, ID: "7001", Phones: []string{"+380 67 123 45 67"},
		OwnerID: "502", Open: true, UpdatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	note(within(t, "CRM lead indexed", b, "380671234567", "boris_sip/owner"))
	if err := a.engine.Calls.Index(ctx, "acme", []crm.Entity{{Kind: domain.KindLead, ID: "7001", Phones: []string{"+380 67 123 45 67"},
		OwnerID: "502", Open: false, UpdatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	note(within(t, "CRM lead closed", b, "380671234567", "anna_new/owner"))

	if _, err := a.admin.PatchTenant(ctx, "test", "acme", admin.TenantPatch{SettingsPatch: admin.SettingsPatch{OnMiss: new("next")}}); err != nil {
		t.Fatal(err)
	}
	note(within(t, "settings change", b, "380509999999", "/no_match"))
	t.Logf("slowest propagation: %s", worst)
}
