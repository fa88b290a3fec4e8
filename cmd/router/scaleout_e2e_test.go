package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

// scaleHelperEnv makes the test binary run `router serve` with a real
// logger (see TestScaleOutHelperProcess).
const scaleHelperEnv = "ROUTER_SCALEOUT_HELPER_ARGS"

// TestScaleOutHelperProcess is not a test: it is one of the server
// processes TestScaleOutThreeInstances starts and kills. It logs JSON to
// stderr, which the parent keeps in a file and shows when it fails.
func TestScaleOutHelperProcess(t *testing.T) {
	args := os.Getenv(scaleHelperEnv)
	if args == "" {
		t.Skip("helper process of TestScaleOutThreeInstances")
	}
	cfg, err := parseServe(strings.Split(args, "\x1f"), io.Discard)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	log, err := newLogger("json", "info")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	addr := make(chan string, 1)
	go func() { fmt.Println("LISTENING", <-addr) }()
	if err := serve(context.Background(), cfg, log, io.Discard, addr); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
}

// node is one `router serve` child process.
type node struct {
	name string
	base string
	cmd  *exec.Cmd
	log  string // its stderr
	dead bool
}

// startNode runs the server in a child process named name (its
// --instance-id) and waits until it listens.
func startNode(t *testing.T, name string, args []string) *node {
	t.Helper()
	n := &node{name: name, log: filepath.Join(t.TempDir(), name+".log")}
	logf, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	n.cmd = exec.Command(os.Args[0], "-test.run=^TestScaleOutHelperProcess$", "-test.v")
	n.cmd.Env = append(os.Environ(), scaleHelperEnv+"="+strings.Join(append(args, "--instance-id", name), "\x1f"))
	n.cmd.Stderr = logf
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() }) //nolint:errcheck // may be dead already
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(n.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last log lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
				found <- a
			}
		}
	}()
	select {
	case a := <-found:
		n.base = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start", name)
	}
	return n
}

func (n *node) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n.cmd.Wait() //nolint:errcheck // killed
	n.dead = true
}

// routeTo asks a node where a call from caller to tenant goes.
func routeTo(base, tenantID, secret, caller string) (string, error) {
	resp, err := http.Get(base + "/pbx/" + tenantID + "/route?key=" + url.QueryEscape(secret) + "&caller=" + caller)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("route: %d %s", resp.StatusCode, b)
	}
	return string(b), err
}

// TestScaleOutThreeInstances runs three `router serve` processes on one
// PostgreSQL schema and kills, mid-sync, the instance running the CRM sync
// and River's leader (one process or two). It shows:
//   - the sync resumes on a survivor and ends with the phone index equal to
//     the CRM's contacts, nothing lost, nothing twice;
//   - call events posted round-robin to the instances around the kill are
//     each applied once: one lead per new number, one call per event;
//   - a replacement instance warms from the database, and every live
//     instance routes by a CRM webhook or an admin change made through
//     another one within a second.
//
// The events go to a second tenant with its own CRM account: callrouter's
// CRM rate limiters are per instance, so a full sync at 92 % of one
// account's limit plus event writes from other instances to that account
// would exceed it (the fake fails the test as amoCRM would answer 429).
func TestScaleOutThreeInstances(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	deadline := begin.Add(85 * time.Second)
	db := postgresDB(t) // skips without PostgreSQL, fails with REQUIRE_POSTGRES=1
	ctx := context.Background()

	// acme: a CRM whose full sync takes several seconds.
	const contacts = 8000
	syncCRM := amocrmfake.New(t)
	syncCRM.SetDelay(250 * time.Millisecond)
	want := map[string]string{} // entity id → phone
	// Stamped an hour ago, as an account's records are, so incremental
	// passes read only what changes later (within amoCRM's ten minutes of
	// clock skew they would read all 8000 again every pass).
	past := time.Now().Add(-time.Hour)
	syncCRM.SetClock(func() time.Time { return past })
	for i := range contacts {
		id, ph := fmt.Sprint(100000+i), fmt.Sprintf("+38067%07d", i)
		syncCRM.Put(crm.Entity{Kind: domain.KindContact, ID: id, Name: "Client " + id, Phones: []string{ph}, OwnerID: "501", Open: true})
		want[id] = ph[1:]
	}
	syncCRM.SetClock(time.Now)
	// beta: the call events' CRM, slow enough that three instances stay
	// under its 7 requests per second.
	eventCRM := amocrmfake.New(t)
	eventCRM.SetDelay(600 * time.Millisecond)
	users := []crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "502", Name: "Boris", Active: true}, {ID: "503", Name: "Olga", Active: true}}
	syncCRM.SetUsers(users)
	eventCRM.SetUsers(users)

	const token = "scaleout-token"
	args := []string{"--listen", "127.0.0.1:0", "--db", db, "--admin-token", token, "--secret-key", strings.Repeat("5e", 32),
		"--sync-interval", "2s", "--crm-allow-private", "--cache-items", "100000", "--shutdown-timeout", "1s"}
	nodes := []*node{startNode(t, "i0", args)} // migrates the schema first
	var wg sync.WaitGroup
	more := make([]*node, 2)
	for i := range more {
		wg.Add(1)
		go func() { defer wg.Done(); more[i] = startNode(t, fmt.Sprintf("i%d", i+1), args) }()
	}
	wg.Wait()
	for _, n := range more {
		if n == nil {
			t.FailNow()
		}
	}
	nodes = append(nodes, more...)
	t.Logf("three instances up after %s", time.Since(begin).Round(time.Millisecond))

	secrets := map[string]string{}
	for _, tc := range []struct {
		id  string
		crm *amocrmfake.Server
	}{{"acme", syncCRM}, {"beta", eventCRM}} {
		secrets[tc.id] = adminCLI(t, nodes[0].base, token, "create-tenant", tc.id, "default_country=UA")["webhook_secret"].(string)
		adminCLI(t, nodes[1].base, token, "put-employee", tc.id, "501", "--sip", "anna_sip")
		adminCLI(t, nodes[2].base, token, "put-employee", tc.id, "502", "--sip", "boris_sip")
		adminCLI(t, nodes[0].base, token, "put-employee", tc.id, "503", "--sip", "olga_sip")
		adminCLI(t, nodes[1].base, token, "set-default-owner", tc.id, "503")
		creds, _ := json.Marshal(tc.crm.Creds())
		if conn := adminCLI(t, nodes[2].base, token, "connect", tc.id, "amocrm", tc.crm.URL(), string(creds)); conn["state"] != "active" {
			t.Fatalf("connect %s: %v", tc.id, conn)
		}
	}

	pg, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	// holder returns the instance holding acme's sync lease, "" for none.
	holder := func() string {
		var h string
		err := pg.QueryRow(ctx, `SELECT holder FROM sync_leases WHERE tenant_id = 'acme' AND until > now()`).Scan(&h)
		if err != nil {
			return ""
		}
		name, _, _ := strings.Cut(h, "/")
		return name
	}
	leader := func() string {
		var l string
		if err := pg.QueryRow(ctx, `SELECT leader_id FROM river_leader WHERE expires_at > now()`).Scan(&l); err != nil {
			return ""
		}
		return l
	}
	progress := func() (string, int) {
		var phase string
		var n int
		if err := pg.QueryRow(ctx, `SELECT phase, synced FROM integrations WHERE tenant_id = 'acme'`).Scan(&phase, &n); err != nil {
			t.Fatal(err)
		}
		return phase, n
	}
	waitUntil := func(what string, bound time.Duration, cond func() bool) {
		t.Helper()
		end := time.Now().Add(bound)
		if end.After(deadline) {
			end = deadline
		}
		for !cond() {
			if time.Now().After(end) {
				phase, n := progress()
				t.Fatalf("%s: not within %s (acme sync %s, %d applied; lease %q; leader %q)", what, bound, phase, n, holder(), leader())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Call events of two new numbers, three calls each, posted round-robin
	// to the live instances: half before the kill, half after.
	type call struct{ id, phone string }
	var calls []call
	for k := range 3 {
		for _, p := range []string{"380931110001", "380931110002"} {
			calls = append(calls, call{fmt.Sprintf("so.%s.%d", p, k), p})
		}
	}
	next := 0
	post := func(c call) {
		t.Helper()
		for {
			n := nodes[next%len(nodes)]
			next++
			if n.dead {
				continue
			}
			form := url.Values{"uniqueid": {c.id}, "caller": {c.phone}, "disposition": {"ANSWERED"}, "billsec": {"12"},
				"employee_number": {"anna_sip"}}
			resp, err := http.Post(n.base+"/pbx/beta/events?event=call_end&key="+url.QueryEscape(secrets["beta"]),
				"application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatalf("event %s to %s: %v", c.id, n.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("event %s to %s: %d %s", c.id, n.name, resp.StatusCode, b)
			}
			return
		}
	}

	// Kill mid-sync: once a quarter of the contacts is in.
	waitUntil("a quarter of the full sync", 40*time.Second, func() bool {
		phase, n := progress()
		return phase == "full" && n >= contacts/4 && holder() != ""
	})
	for _, c := range calls[:3] {
		post(c)
	}
	syncer, lead := holder(), leader()
	_, before := progress()
	var killed []string
	for _, n := range nodes {
		if n.name == syncer || n.name == lead {
			n.kill(t)
			killed = append(killed, n.name)
		}
	}
	killedAt := time.Now()
	t.Logf("killed %v (sync lease holder %s, River leader %s) at %d of %d contacts, with %d of the first 3 calls written, %s in",
		killed, syncer, lead, before, contacts, len(eventCRM.Written().Calls), time.Since(begin).Round(time.Millisecond))
	if syncer == "" || len(killed) == 0 {
		t.Fatal("no sync holder to kill")
	}
	for _, c := range calls[3:] {
		post(c)
	}

	// The sync resumes on a survivor and finishes.
	resumedBy := ""
	waitUntil("a survivor resumes the sync", 40*time.Second, func() bool {
		if h := holder(); h != "" && !slices.Contains(killed, h) {
			resumedBy = h
		}
		_, n := progress()
		return resumedBy != "" && n > before
	})
	t.Logf("sync resumed by %s %s after the kill", resumedBy, time.Since(killedAt).Round(time.Millisecond))
	waitUntil("the full sync ends", 40*time.Second, func() bool { phase, _ := progress(); return phase == "incremental" })
	t.Logf("full sync done %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	// The index is the CRM's contacts exactly.
	rows, err := pg.Query(ctx, `SELECT kind, entity_id, phone, owner_id FROM phone_index WHERE tenant_id = 'acme'`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	dup := 0
	for rows.Next() {
		var kind, id, ph, owner string
		if err := rows.Scan(&kind, &id, &ph, &owner); err != nil {
			t.Fatal(err)
		}
		if kind != string(domain.KindContact) || owner != "501" {
			t.Errorf("index row %s %s %s owned by %s", kind, id, ph, owner)
		}
		if _, ok := got[id]; ok {
			dup++
		}
		got[id] = ph
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	missing, wrong := 0, 0
	for id, ph := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing++
		case g != ph:
			wrong++
		}
	}
	if len(got) != contacts || dup > 0 || missing > 0 || wrong > 0 {
		t.Fatalf("index: %d entities for %d contacts, %d twice, %d missing, %d with a wrong phone", len(got), contacts, dup, missing, wrong)
	}

	// Every event applied once.
	live := func() []*node {
		var out []*node
		for _, n := range nodes {
			if !n.dead {
				out = append(out, n)
			}
		}
		return out
	}
	waitUntil("every call event applied", 40*time.Second, func() bool {
		ev, _ := adminCLI(t, live()[0].base, token, "status", "beta")["events"].(map[string]any)
		if f, _ := ev["failed"].(float64); f > 0 {
			t.Fatalf("events failed: %v", ev)
		}
		d, _ := ev["done"].(float64)
		return int(d) == len(calls)
	})
	wr := eventCRM.Written()
	leads, perPhone, keys := map[string]int{}, map[string]int{}, map[string]int{}
	for _, l := range wr.Leads {
		leads[l.Phone]++
	}
	for _, c := range wr.Calls {
		perPhone[c.Phone]++
		keys[c.Key]++
	}
	for _, p := range []string{"380931110001", "380931110002"} {
		if leads[p] != 1 || perPhone[p] != 3 {
			t.Errorf("%s: %d leads and %d calls, want 1 and 3", p, leads[p], perPhone[p])
		}
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("call %s written %d times", k, n)
		}
	}
	if len(wr.Calls) != len(calls) {
		t.Errorf("%d calls written for %d events", len(wr.Calls), len(calls))
	}

	// A replacement instance warms from the database.
	nodes = append(nodes, startNode(t, "i3", args))
	const caller = "380670000007" // contact 100007
	for _, n := range live() {
		waitUntil("every instance routes the synced contact", 10*time.Second, func() bool {
			got, err := routeTo(n.base, "acme", secrets["acme"], caller)
			return err == nil && got == `{"number":"anna_sip"}`
		})
	}

	// Changes made through one instance reach every other; how soon is
	// logged (milliseconds, typically), and the 10 s bound only keeps a
	// lost change from hanging the test on a loaded machine.
	visible := func(what, from, wantBody string) {
		t.Helper()
		start := time.Now()
		for _, n := range live() {
			for {
				got, err := routeTo(n.base, "acme", secrets["acme"], caller)
				if err == nil && got == wantBody {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("%s through %s: %s still answers %s %v after 10s, want %s", what, from, n.name, got, err, wantBody)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		t.Logf("%s through %s: every instance routes by it %s after", what, from, time.Since(start).Round(time.Microsecond))
	}
	syncCRM.Put(crm.Entity{Kind: domain.KindContact, ID: "100007", Name: "Client 100007", Phones: []string{"+380670000007"}, OwnerID: "502", Open: true})
	ct, body, ok := syncCRM.Notification(crm.Ref{Kind: domain.KindContact, ID: "100007"})
	if !ok {
		t.Fatal("no amoCRM notification for a contact")
	}
	via := live()[0]
	resp, err := http.Post(via.base+"/crm/acme/webhook?key="+url.QueryEscape(secrets["acme"]), ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %d %s", resp.StatusCode, b)
	}
	visible("a CRM webhook", via.name, `{"number":"boris_sip"}`)
	via = live()[len(live())-1]
	adminCLI(t, via.base, token, "put-employee", "acme", "502", "--sip", "boris_desk")
	visible("an employee's new SIP login", via.name, `{"number":"boris_desk"}`)

	t.Logf("done in %s", time.Since(begin).Round(time.Millisecond))
}
