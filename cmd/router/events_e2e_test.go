package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

// postEvent posts a call event as the PBX's webhook does (form body, kind
// and secret in the query) and returns the status and body.
func postEvent(t *testing.T, base, secret, kind string, fields url.Values) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/pbx/acme/events?event="+kind+"&key="+secret, "application/x-www-form-urlencoded",
		strings.NewReader(fields.Encode()))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventStats reads the tenant's event counters from /status.
func eventStats(t *testing.T, base, token string) map[string]any {
	t.Helper()
	st := adminCLI(t, base, token, "status", "acme")
	ev, _ := st["events"].(map[string]any)
	return ev
}

// waitDone waits until n events are done (or failed, which fails the
// test).
func waitDone(t *testing.T, base, token string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev := eventStats(t, base, token)
		if f, _ := ev["failed"].(float64); f > 0 {
			t.Fatalf("events failed: %v", ev)
		}
		if d, _ := ev["done"].(float64); int(d) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %d events done within %s: %v", n, within, ev)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setupTenant creates tenant acme with Anna, Boris and the default owner
// Olga, connected to the fake CRM, and returns its webhook secret.
func setupTenant(t *testing.T, base, token, crmName string, fake crmtest.Fake) string {
	t.Helper()
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}, {ID: "503", Name: "Olga", Active: true}})
	secret := adminCLI(t, base, token, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
	adminCLI(t, base, token, "put-employee", "acme", "501", "--sip", "anna_sip")
	adminCLI(t, base, token, "put-employee", "acme", "502", "--sip", "boris_sip")
	adminCLI(t, base, token, "put-employee", "acme", "503", "--sip", "olga_sip")
	adminCLI(t, base, token, "set-default-owner", "acme", "503")
	creds, _ := json.Marshal(fake.Creds())
	if conn := adminCLI(t, base, token, "connect", "acme", crmName, fake.URL(), string(creds)); conn["state"] != "active" {
		t.Fatalf("connect: %v", conn)
	}
	return secret
}

// postgresDB returns a postgres:// URL on a fresh schema.
func postgresDB(t *testing.T) string {
	t.Helper()
	base := storetest.PostgresURL(t)
	schema := storetest.FreshSchema(t, base)
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// TestHundredConcurrentEventsMakeOneLead: 100 calls from one new number
// posted at once, through HTTP and River on both store backends, make one
// lead and 100 call records; every event is acknowledged and applied once.
func TestHundredConcurrentEventsMakeOneLead(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel() // a server, a database and a CRM of its own
			fake := retailcrmfake.New(t)
			cfg := testConfig(t)
			if backend == "postgres" {
				cfg.db = postgresDB(t)
				// Else the key file would be made in ./data, here the
				// source tree.
				cfg.secretKey = strings.Repeat("ab", 32)
			}
			cfg.adminToken = "e2e-token"
			// Pacing by retailCRM's limit is the crm package's to test;
			// here it would only make 101 writes take ten seconds.
			cfg.crmRateScale = rateScale
			fake.ScaleRate(rateScale)
			base, stop := startServe(t, cfg, io.Discard)
			defer stop()
			secret := setupTenant(t, base, cfg.adminToken, "retailcrm", fake)

			const n = 100
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				ids = map[string]bool{}
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, body := postEvent(t, base, secret, "call_end", url.Values{"uniqueid": {fmt.Sprintf("17000000.%d", i)},
						"caller": {"380671110000"}, "disposition": {"ANSWERED"}, "billsec": {"20"}, "employee_number": {"anna_sip"}})
					if status != 200 {
						t.Errorf("event %d: %d %s", i, status, body)
						return
					}
					mu.Lock()
					ids[body] = true
					mu.Unlock()
				}()
			}
			wg.Wait()
			if len(ids) != n {
				t.Fatalf("%d distinct ids for %d events", len(ids), n)
			}
			waitDone(t, base, cfg.adminToken, n, 90*time.Second)
			wr := fake.Written()
			leads, calls := 0, 0
			for _, l := range wr.Leads {
				if l.Phone == "380671110000" {
					leads++
				}
			}
			for _, c := range wr.Calls {
				if c.Phone == "380671110000" {
					calls++
				}
			}
			if leads != 1 || calls != n {
				t.Fatalf("%d leads and %d calls for one number, want 1 and %d", leads, calls, n)
			}
			if got := route(t, base, secret, "380671110000"); got != `{"number":"anna_sip"}` {
				t.Fatalf("the new lead routes to its manager: %s", got)
			}

			// The admin CLI shows an event, the rejected bodies, and sets
			// the event settings.
			for body := range ids {
				var ack struct{ ID string }
				if err := json.Unmarshal([]byte(body), &ack); err != nil {
					t.Fatal(err)
				}
				ev := adminCLI(t, base, cfg.adminToken, "event", "acme", ack.ID)
				if ev["state"] != "done" || ev["event"] != "call_end" || !strings.Contains(ev["note"].(string), "call ") {
					t.Fatalf("router admin event: %v", ev)
				}
				break
			}
			if status, _ := postEvent(t, base, secret, "call_end", url.Values{"caller": {"380671110000"}}); status != 400 {
				t.Fatalf("an event without uniqueid: %d", status)
			}
			var out strings.Builder
			if err := runAdmin([]string{"--url", base, "--token", cfg.adminToken, "rejected", "acme"}, &out); err != nil ||
				!strings.Contains(out.String(), "uniqueid: missing") {
				t.Fatalf("router admin rejected: %v %s", err, out.String())
			}
			set := adminCLI(t, base, cfg.adminToken, "set", "acme", "lead_on_call_start=true", "callback_due_minutes=30",
				"pipeline_rules=pool_name=Context ads:7001;utm_source=fb:7002")
			rules, _ := set["pipeline_rules"].([]any)
			if set["lead_on_call_start"] != true || set["callback_due_minutes"].(float64) != 30 || len(rules) != 2 {
				t.Fatalf("router admin set: %v", set)
			}
		})
	}
}

// crashHelperEnv makes the test binary run `router serve` (see
// TestCrashHelperProcess) so that the crash test can kill it for real.
const crashHelperEnv = "ROUTER_CRASH_HELPER_ARGS"

// gracefulHelperEnv makes the helper process stop gracefully on SIGTERM,
// as `router serve` does, instead of dying at once.
const gracefulHelperEnv = "ROUTER_HELPER_GRACEFUL"

// TestCrashHelperProcess is not a test: it is the server process that
// TestCrashLosesNothing starts and kills.
func TestCrashHelperProcess(t *testing.T) {
	args := os.Getenv(crashHelperEnv)
	if args == "" {
		t.Skip("helper process of TestCrashLosesNothing")
	}
	cfg, err := parseServe(strings.Split(args, "\x1f"), io.Discard)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	addr := make(chan string, 1)
	go func() {
		fmt.Println("LISTENING", <-addr)
	}()
	ctx := context.Background()
	if os.Getenv(gracefulHelperEnv) != "" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	if err := serve(ctx, cfg, zap.NewNop(), io.Discard, addr); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
}

// startProcess runs the server in a child process and returns its URL.
func startProcess(t *testing.T, args []string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+strings.Join(args, "\x1f"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck // may be dead already
	lines := bufio.NewScanner(out)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
				found <- a
			}
		}
	}()
	select {
	case a := <-found:
		return "http://" + a, cmd
	case <-time.After(60 * time.Second):
		t.Fatal("the server process did not start")
	}
	return "", nil
}

// TestCrashLosesNothing kills the server (SIGKILL) while it is applying
// call events to a slow CRM, starts it again on the same database, and
// checks that every acknowledged event is applied and no lead or call was
// made twice, on both store backends. The two run side by side: each is a
// process of its own with its own database and CRM, and most of their time
// is the CRM's rate limit.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "data", "callrouter.db")
			if backend == "postgres" {
				db = postgresDB(t)
			}
			crashAndRestart(t, []string{"--listen", "127.0.0.1:0", "--db", db, "--admin-token", "crash-token",
				"--shutdown-timeout", "1s", "--secret-key", strings.Repeat("cd", 32), "--crm-allow-private"})
		})
	}
}

func crashAndRestart(t *testing.T, args []string) {
	fake := amocrmfake.New(t)
	fake.SetDelay(150 * time.Millisecond)
	base, cmd := startProcess(t, args)
	secret := setupTenant(t, base, "crash-token", "amocrm", fake)

	const n = 12
	for i := range n {
		status, body := postEvent(t, base, secret, "call_end", url.Values{"uniqueid": {fmt.Sprintf("crash.%d", i)},
			"caller": {fmt.Sprintf("38067222%04d", i)}, "disposition": {"ANSWERED"}, "billsec": {"7"}, "employee_number": {"boris_sip"}})
		if status != 200 {
			t.Fatalf("event %d: %d %s", i, status, body)
		}
	}
	// Kill it once the CRM has some of the writes, none of the rest.
	deadline := time.Now().Add(60 * time.Second)
	for len(fake.Written().Calls) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no call written within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed
	before := len(fake.Written().Calls)
	if before >= n {
		t.Fatalf("the server finished all %d events before it was killed; slow the CRM down", n)
	}

	// A real restart takes a moment; the CRM counts the dead process's last
	// requests against its rate limit for a second more.
	time.Sleep(time.Second)
	base, _ = startProcess(t, args)
	waitDone(t, base, "crash-token", n, 120*time.Second)
	wr := fake.Written()
	leads, calls := map[string]int{}, map[string]int{}
	for _, l := range wr.Leads {
		leads[l.Phone]++
	}
	for _, c := range wr.Calls {
		calls[c.Phone]++
	}
	for i := range n {
		p := fmt.Sprintf("38067222%04d", i)
		if leads[p] != 1 || calls[p] != 1 {
			t.Errorf("%s: %d leads, %d calls after the crash; want one of each", p, leads[p], calls[p])
		}
	}
	t.Logf("killed with %d of %d calls written; after the restart all %d applied once", before, n, n)
}
