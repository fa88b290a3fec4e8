package bench_test

// The soak test: a bounded run of mixed load against `router serve`, with a
// graceful restart at a third of the run and a crash at two thirds, that
// counts every route answer and every call event from the PBX's webhook to
// the record it made in the CRM:
//
//	make soak                                     # 10 minutes on SQLite
//	cd bench && go test -count=1 -v -run '^TestSoak$' . -args -soak=45s   # about a minute
//	... -args -soak=10m -soak.backend=postgres    # on a fresh PostgreSQL schema
//
// Route requests run open loop on a tenant with a seeded phone index; they
// are JSON-RPC requests whose id names the caller, so every answer is
// checked against the owner that caller must get (the JSON-RPC answer
// echoes the id). Call events (call_start, then call_end) go to a tenant
// connected to an in-process fake amoCRM, for a bounded set of numbers the
// CRM knows (open leads) and new ones; like the PBX's webhook they are
// posted again until they get 200 with an id. The server listens on one
// port for the whole run, so the load goes on through the restarts: what
// is sent while it is down is counted as unanswered. At the end every
// stored event must be done and the fake CRM must hold exactly one call
// record per call_end, one call-back task per missed call and one lead per
// new number: nothing lost, nothing made twice.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/bench/loadgen"
	"github.com/callrouter/callrouter/bench/report"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

var (
	soakFor     = flag.Duration("soak", 0, "run the soak test this long (e.g. 10m, 45s); without it TestSoak is skipped")
	soakBackend = flag.String("soak.backend", "sqlite", "store of the soak run: sqlite or postgres")
	soakRate    = flag.Float64("soak.rate", 2000, "route requests per second, open loop (95 % hits, 5 % misses)")
	soakCalls   = flag.Float64("soak.calls", 1.5, "calls per second, each a call_start and a call_end event")
	soakPhones  = flag.Int("soak.phones", 100_000, "phones in the routed tenant's index")
	soakOut     = flag.String("soak.out", "", "summary file (default results/soak.md, results/soak-postgres.md; - writes none)")
)

const (
	soakCRMTenant = "crm"
	// soakKnown leads in the fake CRM, each with its own phone, owned by
	// the agents in turn.
	soakKnown  = 200
	soakSenior = 7000 // the default owner's CRM user id
	soakAgents = 5    // CRM users 7001..7005, SIP agent_1..agent_5
	// soakSlice is the length of one measured slice of route load.
	soakSlice = 30 * time.Second
	// soakRetry is how soon an event that got no 200 is posted again.
	soakRetry = 200 * time.Millisecond
	// soakGrace bounds the retries of events after the run; soakDrain the
	// wait for the backlog to be processed.
	soakGrace = 30 * time.Second
	soakDrain = 2 * time.Minute
	// soakMissID: route ids from here on are misses (callers never indexed).
	soakMissID = 1 << 40
)

// The call mix and what each call costs the CRM (amoCRM adapter, see
// internal/events): a call to a number with an open lead files the call
// (1 request) and, when missed, a call-back task (1 more); the first call
// of a new number also searches the CRM (1) and makes the lead with its
// contact (1), on call_start since lead_on_call_start is on. With half the
// calls to known numbers, half missed and one new number per six calls,
// a call costs (1.5 + 2/6) ≈ 1.8 requests: 1.5 calls/s is ~2.8 requests/s,
// 40 % of amoCRM's 7 per second, so the backlog drains as it comes and
// catches up quickly after the restarts.
const (
	soakPKnown   = 0.5
	soakPMissed  = 0.5
	soakPerNew   = 6    // calls per new number
	soakPDup     = 0.05 // call_end events delivered a second time after their 200
	soakMaxRing  = 1500 * time.Millisecond
	soakPosters  = 32
	soakSeed     = 20261121
	soakCRMLimit = amocrmfake.RPS
)

func TestSoak(t *testing.T) {
	d := *soakFor
	if d <= 0 {
		t.Skip("the soak test runs with -soak=DURATION, e.g. -soak=10m (make soak) or -soak=45s")
	}
	if d < 30*time.Second || d > time.Hour {
		t.Fatalf("-soak=%v: want 30s to 1h", d)
	}
	if *soakRate <= 0 || *soakRate > 20_000 || *soakCalls <= 0 || *soakCalls > 5 || *soakPhones < 1000 {
		t.Fatalf("-soak.rate %v (0..20000], -soak.calls %v (0..5], -soak.phones %d (≥ 1000)", *soakRate, *soakCalls, *soakPhones)
	}
	so := &soak{t: t, ctx: context.Background(), began: time.Now(), d: d, backend: *soakBackend}
	switch so.backend {
	case "sqlite":
		so.db = filepath.Join(t.TempDir(), "callrouter.db")
	case "postgres":
		url, ok := postgresURL(t)
		if !ok {
			t.Skip("PostgreSQL is not reachable at POSTGRES_URL")
		}
		so.db = url
	default:
		t.Fatalf("-soak.backend=%q: want sqlite or postgres", so.backend)
	}
	so.bin = buildRouter(t)
	so.addr = freeLoopbackAddr(t)
	so.setup()
	so.run()
	so.finish()
}

// soak is one run of the soak test. Its methods run on the test goroutine
// unless said otherwise.
type soak struct {
	t       *testing.T
	ctx     context.Context
	began   time.Time
	d       time.Duration
	backend string
	db      string
	bin     string
	addr    string // the one loopback address every server of the run listens on

	cur      *proc
	lives    []life
	restarts []restartRec
	slices   []sliceRec
	started  time.Time // of the load
	loadEnd  time.Time
	drained  time.Duration
	seeded   time.Duration
	firstRdy time.Duration

	benchSecret, crmSecret string
	fake                   *amocrmfake.Server
	routes                 *routeLoad
	events                 *eventLoad
	v                      verdict
}

// life is one server process of the run.
type life struct {
	name             string
	rssStart, rssEnd float64
	peak             float64
	exit             string
	started, ended   time.Duration // since the load started
	endBy            string        // graceful, crash or end
}

type restartRec struct {
	kind      string
	at        time.Duration // since the load started
	exited    time.Duration // signal → process gone
	listening time.Duration // signal → new process listening
	ready     time.Duration // signal → new process /readyz 200
	exitCode  int
}

type sliceRec struct {
	n               int
	from, to        time.Duration
	server          string
	res             loadgen.Result
	answered        uint64
	unanswered      uint64
	non2xx, s5xx    uint64
	wrong           uint64
	restart         string
	evAcked, evFail int64
	backlog         int
	rss             float64
}

// verdict collects the failures of the run, written to the summary and
// reported with t.Errorf.
type verdict struct {
	failures []string
}

func (v *verdict) fail(format string, args ...any) {
	v.failures = append(v.failures, fmt.Sprintf(format, args...))
}

func freeLoopbackAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// start runs `router serve` on the run's address and store.
func (so *soak) start(name string) *proc {
	// --sync-interval stays at its default: a sync cycle costs amoCRM
	// requests that the events need.
	cmd := newRouterCmd(so.bin, so.addr, so.db)
	cmd.Dir = so.t.TempDir()
	return startProc(so.t, "router "+name, cmd)
}

// setup creates the routed tenant "bench" (the suite's: 50 employees,
// seeded index, here answering JSON-RPC) and the CRM tenant, and starts
// the server that the load begins with.
func (so *soak) setup() {
	t := so.t
	s := &suite{t: t, ctx: so.ctx, p: plan{phones: *soakPhones}}
	setup := so.start("setup")
	ts := s.configure(setup, false)
	so.benchSecret = ts.benchSecret
	if err := httpJSON(so.ctx, "PATCH", so.admin("tenants/bench"), benchToken, map[string]any{"response_format": "jsonrpc"}, nil); err != nil {
		t.Fatal(err)
	}
	setup.stop(t)
	so.seeded = s.seed(so.db)

	so.cur = so.start("#1")
	so.firstRdy = so.cur.waitReady(t, 2*time.Minute)
	so.connectCRM()
	rss, peak, _ := so.cur.memory()
	so.lives = append(so.lives, life{name: "#1", rssStart: rss, peak: peak})
}

func (so *soak) admin(path string) string { return "http://" + so.addr + "/admin/v1/" + path }

// connectCRM makes the CRM tenant: agents and the senior manager mapped,
// lead_on_call_start on, connected to a fake amoCRM holding soakKnown open
// leads; it returns once the first full sync has indexed them.
func (so *soak) connectCRM() {
	t := so.t
	so.fake = amocrmfake.New(t)
	users := []crm.User{{ID: strconv.Itoa(soakSenior), Name: "Senior", Active: true}}
	for a := 1; a <= soakAgents; a++ {
		users = append(users, crm.User{ID: strconv.Itoa(soakSenior + a), Name: "Agent " + strconv.Itoa(a), Active: true})
	}
	so.fake.SetUsers(users)
	for i := range soakKnown {
		so.fake.Put(crm.Entity{Kind: domain.KindLead, ID: strconv.Itoa(100 + i), Name: "Known " + strconv.Itoa(i),
			Phones: []string{"+" + knownPhone(i)}, OwnerID: strconv.Itoa(knownOwner(i)), Open: true})
	}
	var created struct {
		Secret string `json:"webhook_secret"`
	}
	if err := httpJSON(so.ctx, "POST", so.admin("tenants"), benchToken, map[string]any{"id": soakCRMTenant, "name": "soak CRM",
		"default_country": "UA", "lead_on_call_start": true}, &created); err != nil {
		t.Fatal(err)
	}
	so.crmSecret = created.Secret
	put := func(user int, sip string) {
		if err := httpJSON(so.ctx, "PUT", so.admin("tenants/crm/employees/"+strconv.Itoa(user)), benchToken,
			map[string]string{"sip": sip}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put(soakSenior, "senior_sip")
	for a := 1; a <= soakAgents; a++ {
		put(soakSenior+a, agentSIP(a))
	}
	if err := httpJSON(so.ctx, "PUT", so.admin("tenants/crm/default-owner"), benchToken,
		map[string]string{"crm_user_id": strconv.Itoa(soakSenior)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := httpJSON(so.ctx, "PUT", so.admin("tenants/crm/integration"), benchToken,
		map[string]any{"crm": "amocrm", "base_url": so.fake.URL(), "credentials": so.fake.Creds()}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := so.status(5 * time.Second)
		if err == nil && st.Integration.Phase == "incremental" && st.Integration.Success != nil && st.IndexSize >= soakKnown {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake CRM's %d leads were not synced within a minute: %+v %v", soakKnown, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// soakStatus is the part of GET /admin/v1/tenants/crm/status the run reads.
type soakStatus struct {
	IndexSize   int `json:"index_size"`
	Integration struct {
		State     string     `json:"state"`
		Phase     string     `json:"phase"`
		LastError string     `json:"last_error"`
		Success   *time.Time `json:"last_success_at"`
	} `json:"integration"`
	Events domain.EventStats `json:"events"`
}

func (so *soak) status(timeout time.Duration) (soakStatus, error) {
	ctx, cancel := context.WithTimeout(so.ctx, timeout)
	defer cancel()
	var st soakStatus
	err := httpJSON(ctx, "GET", so.admin("tenants/crm/status"), benchToken, nil, &st)
	return st, err
}

func knownPhone(i int) string { return "38063" + fmt.Sprintf("%07d", 1_000_000+i) }
func newPhone(i int) string   { return "38093" + fmt.Sprintf("%07d", 2_000_000+i) }
func knownOwner(i int) int    { return soakSenior + 1 + i%soakAgents }
func agentSIP(a int) string   { return "agent_" + strconv.Itoa(a) }

// run drives the load: route slices back to back, the event posters
// throughout, and the two restarts inside the slices holding a third and
// two thirds of the run.
func (so *soak) run() {
	n := max(6, int((so.d+soakSlice/2)/soakSlice))
	sliceLen := so.d / time.Duration(n)
	type planned struct {
		kind   string
		offset time.Duration // into its slice
	}
	restartAt := map[int]planned{}
	for kind, at := range map[string]time.Duration{"graceful": so.d / 3, "crash": 2 * so.d / 3} {
		i := int(at / sliceLen)
		restartAt[i] = planned{kind, at - time.Duration(i)*sliceLen}
	}

	so.routes = newRouteLoad(so.benchSecret, *soakPhones)
	so.started = time.Now()
	so.events = newEventLoad(so.addr, so.crmSecret, *soakCalls, so.d)
	posters := so.events.start(so.started)

	for i := range n {
		from := time.Since(so.started)
		ackBefore, failBefore := so.events.acked.Load(), so.events.unanswered.Load()+so.events.s5xx.Load()
		snap := so.routes.snapshot()
		resc := make(chan loadgen.Result, 1)
		errc := make(chan error, 1)
		go func() {
			res, err := loadgen.Run(so.ctx, loadgen.Config{Name: fmt.Sprintf("soak slice %d", i+1), Addr: so.addr,
				Request: so.routes.request, Check: so.routes.check, KeepAlive: true, Duration: sliceLen,
				Concurrency: 64, Rate: *soakRate, Timeout: 5 * time.Second})
			resc <- res
			errc <- err
		}()
		rec := sliceRec{n: i + 1, from: from, server: so.lives[len(so.lives)-1].name}
		if r, ok := restartAt[i]; ok {
			time.Sleep(r.offset)
			so.restart(r.kind)
			rec.restart = r.kind
			rec.server += " → " + so.lives[len(so.lives)-1].name
		}
		res, err := <-resc, <-errc
		if err != nil {
			so.t.Fatalf("slice %d: %v", i+1, err)
		}
		d := so.routes.snapshot().minus(snap)
		rec.to = time.Since(so.started)
		rec.res = res
		for _, c := range res.Status {
			rec.answered += c
		}
		rec.unanswered = res.Requests - rec.answered
		rec.non2xx, rec.s5xx, rec.wrong = d.non2xx, d.s5xx, d.wrong
		rec.evAcked = so.events.acked.Load() - ackBefore
		rec.evFail = so.events.unanswered.Load() + so.events.s5xx.Load() - failBefore
		rec.backlog = -1
		if st, err := so.status(2 * time.Second); err == nil {
			rec.backlog = st.Events.Waiting
		}
		rec.rss, _, _ = so.cur.memory()
		so.slices = append(so.slices, rec)
		fmt.Printf("soak slice %2d/%d %-22s %6.0f req/s p99 %7.3f ms unanswered %5d 5xx %d wrong %d · events acked %4d failed attempts %3d backlog %3d · RSS %.0f MB\n",
			i+1, n, rec.server, res.AchievedRate, ms(res.P99), rec.unanswered, rec.s5xx, rec.wrong, rec.evAcked, rec.evFail, rec.backlog, rec.rss)
	}
	so.loadEnd = time.Now()
	posters.Wait()
	fmt.Printf("soak: load over after %s; posters done %s later\n", so.loadEnd.Sub(so.started).Round(time.Second),
		time.Since(so.loadEnd).Round(100*time.Millisecond))
}

// restart stops the current server (SIGTERM and wait, or SIGKILL) and
// starts another on the same address and data.
func (so *soak) restart(kind string) {
	t := so.t
	old := so.cur
	l := &so.lives[len(so.lives)-1]
	l.rssEnd, l.peak, _ = old.memory()
	at := time.Since(so.started)
	sig := time.Now()
	if kind == "graceful" {
		old.stop(t)
	} else {
		old.kill()
	}
	rec := restartRec{kind: kind, at: at, exited: time.Since(sig), exitCode: old.cmd.ProcessState.ExitCode()}
	l.exit = old.cmd.ProcessState.String()
	l.ended, l.endBy = at, kind
	if kind == "graceful" && rec.exitCode != 0 {
		so.v.fail("graceful restart: the server exited with %q after SIGTERM:\n%s", l.exit, old.output())
	}
	name := "#" + strconv.Itoa(len(so.lives)+1)
	so.cur = so.start(name)
	rec.listening = time.Since(sig)
	so.cur.waitReady(t, 2*time.Minute)
	rec.ready = time.Since(sig)
	so.restarts = append(so.restarts, rec)
	rss, peak, _ := so.cur.memory()
	so.lives = append(so.lives, life{name: name, rssStart: rss, peak: peak, started: time.Since(so.started)})
	fmt.Printf("soak: %s restart at %s: old process gone after %s, new one listening after %s, ready after %s\n",
		kind, at.Round(time.Second), rec.exited.Round(time.Millisecond), rec.listening.Round(time.Millisecond), rec.ready.Round(time.Millisecond))
}

// finish waits for the backlog, checks every event and the CRM, stops the
// server and writes the summary.
func (so *soak) finish() {
	t := so.t
	el := so.events
	el.check(&so.v)

	// Every stored event processed, within the bound.
	stored := el.storedIDs()
	drainStart := time.Now()
	var st soakStatus
	for {
		var err error
		st, err = so.status(5 * time.Second)
		if err == nil && st.Events.Waiting == 0 && st.Events.Done+st.Events.Failed+st.Events.Dropped >= len(stored) {
			break
		}
		if time.Since(drainStart) > soakDrain {
			so.v.fail("the backlog was not processed within %s after the load: %+v %v", soakDrain, st.Events, err)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	so.drained = time.Since(drainStart)
	fmt.Printf("soak: backlog processed %s after the posters finished: %+v\n", so.drained.Round(100*time.Millisecond), st.Events)
	if total := st.Events.Done + st.Events.Failed + st.Events.Dropped + st.Events.Waiting; total != len(stored) {
		so.v.fail("the server holds %d events, the PBX side stored %d distinct ones", total, len(stored))
	}
	el.states = so.eventStates(stored)
	for state, ids := range el.states {
		if state != domain.EventDone {
			so.v.fail("%d stored events are %q, e.g. %s", len(ids), state, ids[0])
		}
	}
	el.crm = compareCRM(el.ledger(), el.states[domain.EventDone], so.fake.Written())
	el.crm.report(&so.v)
	so.routeNumbers()

	l := &so.lives[len(so.lives)-1]
	l.rssEnd, l.peak, _ = so.cur.memory()
	l.ended = time.Since(so.started)
	so.cur.stop(t)
	l.exit = so.cur.cmd.ProcessState.String()
	l.endBy = "end"
	if code := so.cur.cmd.ProcessState.ExitCode(); code != 0 {
		so.v.fail("the last server exited with %q after SIGTERM:\n%s", l.exit, so.cur.output())
	}

	so.judgeRoutes()
	md := so.summary()
	fmt.Println(md)
	out := *soakOut
	if out == "" {
		out = "results/soak.md"
		if so.backend != "sqlite" {
			out = "results/soak-" + so.backend + ".md"
		}
	}
	if out != "-" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Println("written:", out)
	}
	for _, f := range so.v.failures {
		t.Error(f)
	}
}

// judgeRoutes turns the route counts into failures: no 5xx, no non-2xx, no
// wrong answer at all, and no unanswered request outside the restart
// slices.
func (so *soak) judgeRoutes() {
	for _, s := range so.slices {
		if s.s5xx > 0 || s.non2xx > 0 || s.wrong > 0 {
			so.v.fail("slice %d: %d 5xx, %d other non-2xx, %d wrong answers: %s", s.n, s.s5xx, s.non2xx, s.wrong,
				strings.Join(so.routes.samples(), "; "))
		}
		if s.restart == "" && s.unanswered > 0 {
			so.v.fail("slice %d (no restart): %d requests unanswered: %s", s.n, s.unanswered, strings.Join(s.res.ErrorSamples, "; "))
		}
	}
}

// eventStates reads every stored event back through the admin API and
// groups the ids by state ("missing" for an acknowledged id the server
// does not know).
func (so *soak) eventStates(ids []string) map[string][]string {
	states := map[string][]string{}
	for _, id := range ids {
		var ev struct {
			State string `json:"state"`
		}
		ctx, cancel := context.WithTimeout(so.ctx, 5*time.Second)
		err := httpJSON(ctx, "GET", so.admin("tenants/crm/events/"+id), benchToken, nil, &ev)
		cancel()
		switch {
		case err != nil && strings.Contains(err.Error(), ": 404 "):
			ev.State = "missing"
		case err != nil:
			so.t.Fatalf("read event %s: %v", id, err)
		}
		states[ev.State] = append(states[ev.State], id)
	}
	return states
}

// routeNumbers asks the CRM tenant to route every number the calls used:
// a known number goes to its lead's agent, a new one to the lead its first
// call made (the senior manager's, lead_on_call_start), so each lead made
// during the run is in the index and survived the restarts.
func (so *soak) routeNumbers() {
	c := &fasthttp.Client{}
	bad := 0
	var sample []string
	for num, known := range so.events.numbers() {
		want := "senior_sip"
		if known >= 0 {
			want = agentSIP(knownOwner(known) - soakSenior)
		}
		code, body, err := c.GetTimeout(nil, "http://"+so.addr+"/pbx/crm/route?key="+so.crmSecret+"&caller="+num, 5*time.Second)
		if err != nil || code != 200 || string(body) != `{"number":"`+want+`"}` {
			bad++
			if len(sample) < 3 {
				sample = append(sample, fmt.Sprintf("%s: %d %s %v (want %s)", num, code, body, err, want))
			}
		}
	}
	so.events.routedBad = bad
	if bad > 0 {
		so.v.fail("%d numbers of the calls do not route to their lead's owner: %s", bad, strings.Join(sample, "; "))
	}
}

// --- route load ---

// routeLoad makes the route requests of the run and judges each answer.
// Requests are JSON-RPC: the id is the caller's index in the seeded
// dataset (a hit, answered by the owner's SIP login sip_<id mod 50>), or
// soakMissID and up for callers never indexed (answered {} , no_match).
type routeLoad struct {
	uri    string
	phones uint64
	seq    atomic.Uint64

	ok, non2xx, s5xx, wrong atomic.Uint64
	mu                      sync.Mutex
	sampled                 []string
}

type routeCounts struct{ ok, non2xx, s5xx, wrong uint64 }

func (c routeCounts) minus(o routeCounts) routeCounts {
	return routeCounts{c.ok - o.ok, c.non2xx - o.non2xx, c.s5xx - o.s5xx, c.wrong - o.wrong}
}

func newRouteLoad(secret string, phones int) *routeLoad {
	return &routeLoad{uri: "/pbx/bench/route?key=" + secret, phones: uint64(phones)}
}

func (rl *routeLoad) snapshot() routeCounts {
	return routeCounts{rl.ok.Load(), rl.non2xx.Load(), rl.s5xx.Load(), rl.wrong.Load()}
}

func (rl *routeLoad) request(i uint64, req *fasthttp.Request) {
	var id uint64
	var caller string
	if i%20 == 19 {
		n := rl.seq.Add(1)
		id, caller = soakMissID+n, "38050"+fmt.Sprintf("%07d", n%10_000_000)
	} else {
		// A stride coprime with the dataset size walks all of it.
		id = (i * 7919) % rl.phones
		caller = indexed(int(id))
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(rl.uri)
	req.Header.SetContentType("application/json")
	req.SetBodyString(`{"jsonrpc":"2.0","id":` + strconv.FormatUint(id, 10) + `,"method":"route","params":{"caller":"` + caller + `"}}`)
}

var rpcPrefix = []byte(`{"jsonrpc":"2.0","id":`)

func (rl *routeLoad) check(resp *fasthttp.Response) error {
	code := resp.StatusCode()
	switch {
	case code >= 500:
		rl.s5xx.Add(1)
		return rl.sample(fmt.Errorf("status %d: %.100s", code, resp.Body()))
	case code < 200 || code > 299:
		rl.non2xx.Add(1)
		return rl.sample(fmt.Errorf("status %d: %.100s", code, resp.Body()))
	}
	rl.ok.Add(1)
	body := resp.Body()
	rest, ok := bytes.CutPrefix(body, rpcPrefix)
	end := bytes.IndexByte(rest, ',')
	var id uint64
	var err error
	if ok && end > 0 {
		id, err = strconv.ParseUint(string(rest[:end]), 10, 64)
	}
	if !ok || end <= 0 || err != nil {
		rl.wrong.Add(1)
		return rl.sample(fmt.Errorf("answer without the request's id: %.120s", body))
	}
	want, reason := `{}`, "no_match"
	if id < soakMissID {
		want, reason = `{"number":"sip_`+strconv.FormatUint(id%employees, 10)+`"}`, "owner"
	}
	want = string(rpcPrefix) + strconv.FormatUint(id, 10) + `,"result":` + want + `}`
	if got := resp.Header.Peek("X-Route-Reason"); string(body) != want || string(got) != reason {
		rl.wrong.Add(1)
		return rl.sample(fmt.Errorf("got %.120s (reason %s), want %s (reason %s)", body, got, want, reason))
	}
	return nil
}

func (rl *routeLoad) sample(err error) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if len(rl.sampled) < 5 {
		rl.sampled = append(rl.sampled, err.Error())
	}
	return err
}

func (rl *routeLoad) samples() []string {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return slices.Clone(rl.sampled)
}

// --- call events ---

// eventLoad is the PBX side of the call events: calls scheduled open loop
// at a fixed rate, each posted by one of soakPosters workers as call_start
// and, after it rang, call_end, every post repeated until it gets 200 with
// an id (or the retries' deadline passes).
type eventLoad struct {
	hc     *fasthttp.HostClient
	uri    string
	rate   float64
	d      time.Duration
	newN   int
	until  time.Time // retries stop here
	runTag string

	mu    sync.Mutex
	calls []*soakCall

	attempts, acked, unanswered, s5xx, s4xx, gaveUp atomic.Int64
	dupSent, dupMismatch                            atomic.Int64
	muSamples                                       sync.Mutex
	samples4xx, samples5xx, samplesNet              []string

	states    map[string][]string
	crm       crmCheck
	routedBad int
}

// soakCall is one call and what its events were answered.
type soakCall struct {
	n        int
	uniq     string
	number   string
	known    int // index of the known lead, -1 for a new number
	answered bool
	agent    int
	ring     time.Duration
	dup      bool
	startID  string // the ids answered; "" until then
	endID    string
}

func newEventLoad(addr, secret string, rate float64, d time.Duration) *eventLoad {
	calls := int(rate * d.Seconds())
	return &eventLoad{
		hc: &fasthttp.HostClient{Addr: addr, Name: "soak-pbx", MaxConns: soakPosters + 4, MaxIdemponentCallAttempts: 1,
			ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second},
		uri: "/pbx/" + soakCRMTenant + "/events?key=" + secret + "&event=", rate: rate, d: d,
		newN: max(10, calls/soakPerNew), runTag: strconv.FormatInt(time.Now().Unix(), 10),
	}
}

// plan decides call n, the same on every run.
func (el *eventLoad) plan(n int) *soakCall {
	r := rand.New(rand.NewPCG(soakSeed, uint64(n)))
	c := &soakCall{n: n, uniq: el.runTag + "." + strconv.Itoa(n), known: -1, agent: 1 + r.IntN(soakAgents),
		ring: time.Duration(r.Int64N(int64(soakMaxRing))), dup: r.Float64() < soakPDup}
	if r.Float64() < soakPKnown {
		c.known = r.IntN(soakKnown)
		c.number = knownPhone(c.known)
	} else {
		c.number = newPhone(r.IntN(el.newN))
	}
	c.answered = r.Float64() >= soakPMissed
	return c
}

// start schedules the calls from t0 for the run's duration and returns
// the group of posters, done when every call was posted (or given up).
// It runs on its own goroutines.
func (el *eventLoad) start(t0 time.Time) *sync.WaitGroup {
	el.until = t0.Add(el.d + soakGrace)
	due := make(chan *soakCall, 1<<16)
	var wg sync.WaitGroup
	for range soakPosters {
		wg.Go(func() {
			for c := range due {
				el.call(c)
			}
		})
	}
	go func() {
		defer close(due)
		for n := 0; ; n++ {
			at := t0.Add(time.Duration(float64(n) / el.rate * float64(time.Second)))
			if !at.Before(t0.Add(el.d)) {
				return
			}
			time.Sleep(time.Until(at))
			c := el.plan(n)
			el.mu.Lock()
			el.calls = append(el.calls, c)
			el.mu.Unlock()
			due <- c
		}
	}()
	return &wg
}

// call posts one call's events as the PBX's webhooks would.
func (el *eventLoad) call(c *soakCall) {
	start := `{"uniqueid":"` + c.uniq + `","caller":"` + c.number + `","dst":"0443334455","call_type":"in"}`
	id, ok := el.post("call_start", start)
	el.mu.Lock()
	c.startID = id
	el.mu.Unlock()
	if !ok {
		return
	}
	time.Sleep(c.ring)
	end := `{"uniqueid":"` + c.uniq + `","caller":"` + c.number + `","dst":"0443334455","call_type":"in",`
	if c.answered {
		end += `"disposition":"ANSWERED","billsec":"42","duration":"50","employee_number":"` + agentSIP(c.agent) + `"}`
	} else {
		end += `"disposition":"NO ANSWER","billsec":"0","duration":"20"}`
	}
	id, ok = el.post("call_end", end)
	el.mu.Lock()
	c.endID = id
	el.mu.Unlock()
	if ok && c.dup {
		// The same webhook delivered again must get the same id back.
		el.dupSent.Add(1)
		if again, ok := el.post("call_end", end); ok && again != id {
			el.dupMismatch.Add(1)
		}
	}
}

// post sends one event until it is answered 200 with an id; it gives up at
// el.until or on a 4xx (which no event of the run deserves).
func (el *eventLoad) post(kind, body string) (string, bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetHost(el.hc.Addr)
		req.SetRequestURI(el.uri + kind)
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
		el.attempts.Add(1)
		err := el.hc.DoTimeout(req, resp, 15*time.Second)
		switch {
		case err != nil:
			el.unanswered.Add(1)
			el.sample(&el.samplesNet, kind+": "+err.Error())
		case resp.StatusCode() >= 500:
			el.s5xx.Add(1)
			el.sample(&el.samples5xx, fmt.Sprintf("%s: %d %.100s", kind, resp.StatusCode(), resp.Body()))
		case resp.StatusCode() != 200:
			el.s4xx.Add(1)
			el.sample(&el.samples4xx, fmt.Sprintf("%s: %d %.100s", kind, resp.StatusCode(), resp.Body()))
			return "", false
		default:
			var ack struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(resp.Body(), &ack) == nil && ack.ID != "" {
				el.acked.Add(1)
				return ack.ID, true
			}
			el.s4xx.Add(1) // a 200 without an id is as wrong as a 4xx
			return "", false
		}
		if time.Now().Add(soakRetry).After(el.until) {
			el.gaveUp.Add(1)
			return "", false
		}
		time.Sleep(soakRetry)
	}
}

// sample keeps the first few distinct texts of a kind of failure.
func (el *eventLoad) sample(to *[]string, text string) {
	el.muSamples.Lock()
	defer el.muSamples.Unlock()
	if len(*to) < 3 && !slices.Contains(*to, text) {
		*to = append(*to, text)
	}
}

// check turns the PBX side's counts into failures.
func (el *eventLoad) check(v *verdict) {
	if n := el.s4xx.Load(); n > 0 {
		v.fail("%d events were refused (4xx or 200 without id): %s", n, strings.Join(el.samples4xx, "; "))
	}
	if n := el.gaveUp.Load(); n > 0 {
		v.fail("%d events never got 200 within %s after the load (not stored: lost): %s", n, soakGrace,
			strings.Join(slices.Concat(el.samplesNet, el.samples5xx), "; "))
	}
	if n := el.dupMismatch.Load(); n > 0 {
		v.fail("%d redelivered events got another id than the first time", n)
	}
	if n := el.s5xx.Load(); n > 0 {
		v.fail("%d event posts were answered 5xx (retried): %s", n, strings.Join(el.samples5xx, "; "))
	}
	el.mu.Lock()
	defer el.mu.Unlock()
	ids := map[string]string{}
	for _, c := range el.calls {
		for kind, id := range map[string]string{"call_start": c.startID, "call_end": c.endID} {
			if id == "" {
				continue
			}
			if other, ok := ids[id]; ok {
				v.fail("id %s answered for two events: %s and %s %s", id, other, c.uniq, kind)
			}
			ids[id] = c.uniq + " " + kind
		}
	}
}

// storedIDs returns the ids of every event answered 200.
func (el *eventLoad) storedIDs() []string {
	el.mu.Lock()
	defer el.mu.Unlock()
	var ids []string
	for _, c := range el.calls {
		for _, id := range []string{c.startID, c.endID} {
			if id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// ledger returns a copy of the calls.
func (el *eventLoad) ledger() []soakCall {
	el.mu.Lock()
	defer el.mu.Unlock()
	out := make([]soakCall, len(el.calls))
	for i, c := range el.calls {
		out[i] = *c
	}
	return out
}

// numbers maps every number with a stored event to its known lead's index
// (-1 for new numbers).
func (el *eventLoad) numbers() map[string]int {
	el.mu.Lock()
	defer el.mu.Unlock()
	out := map[string]int{}
	for _, c := range el.calls {
		if c.startID != "" || c.endID != "" {
			out[c.number] = c.known
		}
	}
	return out
}

func (el *eventLoad) sent() (calls, events int) {
	el.mu.Lock()
	defer el.mu.Unlock()
	return len(el.calls), 2 * len(el.calls)
}

// --- CRM check ---

// crmCheck compares what the fake CRM holds with what the stored events
// must have made: per number, one call record per call_end (answered as
// posted), one task per missed call_end, one lead (with its contact) per
// new number and none for a known one.
type crmCheck struct {
	wantCalls, gotCalls, wantTasks, gotTasks, wantLeads, gotLeads, gotContacts int
	missingCalls, extraCalls, missingTasks, extraTasks                         int
	missingLeads, extraLeads, wrongAnswered, wrongOwner                        int
	samples                                                                    []string
}

func compareCRM(calls []soakCall, done []string, w crmtest.Written) crmCheck {
	isDone := map[string]bool{}
	for _, id := range done {
		isDone[id] = true
	}
	type perNumber struct {
		calls, answered, tasks, leads int
		isNew                         bool
	}
	want, got := map[string]*perNumber{}, map[string]*perNumber{}
	at := func(m map[string]*perNumber, num string) *perNumber {
		if m[num] == nil {
			m[num] = &perNumber{}
		}
		return m[num]
	}
	var cc crmCheck
	for _, c := range calls {
		if isDone[c.startID] || isDone[c.endID] {
			at(want, c.number).isNew = c.known < 0
		}
		if !isDone[c.endID] {
			continue
		}
		p := at(want, c.number)
		p.calls++
		cc.wantCalls++
		if c.answered {
			p.answered++
		} else {
			p.tasks++
			cc.wantTasks++
		}
	}
	for _, p := range want {
		if p.isNew {
			p.leads = 1
			cc.wantLeads++
		}
	}
	for _, c := range w.Calls {
		p := at(got, c.Phone)
		p.calls++
		if c.Answered {
			p.answered++
		}
		cc.gotCalls++
	}
	for _, tk := range w.Tasks {
		num, _, _ := strings.Cut(strings.TrimPrefix(tk.Text, "Call back +"), ":")
		at(got, num).tasks++
		cc.gotTasks++
	}
	for _, l := range w.Leads {
		at(got, l.Phone).leads++
		cc.gotLeads++
		if l.OwnerID != strconv.Itoa(soakSenior) {
			cc.wrongOwner++
		}
	}
	cc.gotContacts = len(w.Contacts)
	nums := map[string]bool{}
	for n := range want {
		nums[n] = true
	}
	for n := range got {
		nums[n] = true
	}
	diff := func(num, what string, want, got int, missing, extra *int) {
		switch {
		case got < want:
			*missing += want - got
		case got > want:
			*extra += got - want
		default:
			return
		}
		if len(cc.samples) < 5 {
			cc.samples = append(cc.samples, fmt.Sprintf("%s: %d %s, want %d", num, got, what, want))
		}
	}
	for num := range nums {
		wp, gp := at(want, num), at(got, num)
		diff(num, "calls", wp.calls, gp.calls, &cc.missingCalls, &cc.extraCalls)
		diff(num, "tasks", wp.tasks, gp.tasks, &cc.missingTasks, &cc.extraTasks)
		diff(num, "leads", wp.leads, gp.leads, &cc.missingLeads, &cc.extraLeads)
		if wp.calls == gp.calls && wp.answered != gp.answered {
			cc.wrongAnswered++
		}
	}
	return cc
}

func (cc crmCheck) report(v *verdict) {
	if cc.missingCalls+cc.extraCalls+cc.missingTasks+cc.extraTasks+cc.missingLeads+cc.extraLeads > 0 {
		v.fail("CRM: calls %d missing %d extra, tasks %d missing %d extra, leads %d missing %d extra: %s",
			cc.missingCalls, cc.extraCalls, cc.missingTasks, cc.extraTasks, cc.missingLeads, cc.extraLeads, strings.Join(cc.samples, "; "))
	}
	if cc.wrongAnswered > 0 {
		v.fail("CRM: %d numbers have their calls filed with the wrong answered/missed status", cc.wrongAnswered)
	}
	if cc.wrongOwner > 0 {
		v.fail("CRM: %d leads are not the default owner's (lead_on_call_start makes them for the senior manager)", cc.wrongOwner)
	}
	if cc.gotContacts != cc.gotLeads {
		v.fail("CRM: %d contacts made for %d leads", cc.gotContacts, cc.gotLeads)
	}
}

// --- summary ---

func (so *soak) summary() string {
	var b strings.Builder
	el := so.events
	calls, sent := el.sent()
	stored := len(el.storedIDs())
	status := "PASS"
	if len(so.v.failures) > 0 {
		status = "FAIL"
	}
	var req, answered, unanswered, unansweredRestart, s5xx, non2xx, wrong uint64
	for _, s := range so.slices {
		req += s.res.Requests
		answered += s.answered
		unanswered += s.unanswered
		if s.restart != "" {
			unansweredRestart += s.unanswered
		}
		s5xx += s.s5xx
		non2xx += s.non2xx
		wrong += s.wrong
	}
	fmt.Fprintf(&b, "# callrouter soak test: %s\n\n", status)
	fmt.Fprintf(&b, "%s · backend **%s** · %s of load, started %s · total wall time %s\n\n", report.Machine(),
		so.backend, so.d, so.began.UTC().Format("2006-01-02 15:04 UTC"), time.Since(so.began).Round(time.Second))
	fmt.Fprintf(&b, "Load: route requests at **%s req/s** open loop (JSON-RPC, 95 %% hits over %s indexed phones, 5 %% callers never seen), "+
		"and **%.1f calls/s** (%.1f events/s: call_start, then call_end after up to %s of ringing) on a tenant connected to a fake amoCRM "+
		"(%d req/s limit) holding %d open leads; %.0f %% of the calls to those, the rest to %d new numbers; %.0f %% missed; "+
		"%.0f %% of call_end webhooks delivered twice. A graceful restart (SIGTERM, start again on the same data) at 1/3 of the run, "+
		"a crash (SIGKILL) at 2/3; the server keeps its address, so the load goes on while it is down.\n\n",
		thousands(int(*soakRate)), thousands(*soakPhones), *soakCalls, 2**soakCalls, soakMaxRing, soakCRMLimit, soakKnown,
		100*soakPKnown, el.newN, 100*soakPMissed, 100*soakPDup)

	b.WriteString("| slice | time | server | route req/s | p50 ms | p99 ms | max ms | unanswered | non-2xx | 5xx | wrong | events acked | event posts failed | backlog | RSS MB |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range so.slices {
		server := s.server
		if s.restart != "" {
			server += " (" + s.restart + ")"
		}
		backlog := strconv.Itoa(s.backlog)
		if s.backlog < 0 {
			backlog = "—"
		}
		fmt.Fprintf(&b, "| %d | %s–%s | %s | %.0f | %.3f | %.3f | %.1f | %d | %d | %d | %d | %d | %d | %s | %.0f |\n",
			s.n, fmtClock(s.from), fmtClock(s.to), server, s.res.AchievedRate, ms(s.res.P50), ms(s.res.P99), ms(s.res.Max),
			s.unanswered, s.non2xx, s.s5xx, s.wrong, s.evAcked, s.evFail, backlog, s.rss)
	}
	b.WriteString("\n| figure | value |\n|---|---|\n")
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(format, args...)) }
	row("route requests", "%s sent, %s answered 2xx (%.3f %%)", thousands(int(req)), thousands(int(answered-non2xx-s5xx)),
		100*float64(answered-non2xx-s5xx)/float64(max(req, 1)))
	row("route: unanswered", "%s: %s in the restart slices, %s in the others", thousands(int(unanswered)),
		thousands(int(unansweredRestart)), thousands(int(unanswered-unansweredRestart)))
	for _, s := range so.slices {
		if s.restart != "" && len(s.res.ErrorSamples) > 0 {
			row("route: unanswered in the "+s.restart+" restart", "%s", strings.Join(s.res.ErrorSamples, "; "))
		}
	}
	row("route: non-2xx / 5xx / wrong answers", "%d / %d / %d", non2xx, s5xx, wrong)
	for _, r := range so.restarts {
		row("restart: "+r.kind, "at %s: old process gone after %s (exit code %d), new one listening after %s, ready after %s",
			fmtClock(r.at), r.exited.Round(time.Millisecond), r.exitCode, r.listening.Round(time.Millisecond), r.ready.Round(time.Millisecond))
	}
	row("calls / events sent", "%s / %s (plus %d redeliveries of a stored call_end)", thousands(calls), thousands(sent), el.dupSent.Load())
	row("event posts", "%s attempts: %s got no answer (e.g. %s), %d answered 5xx, %d 4xx; each retried until 200",
		thousands(int(el.attempts.Load())), thousands(int(el.unanswered.Load())), cmpOr(strings.Join(el.samplesNet, "; "), "none"),
		el.s5xx.Load(), el.s4xx.Load())
	row("events stored (200 with an id)", "%s of %s; given up: %d; redeliveries answered another id: %d",
		thousands(stored), thousands(sent), el.gaveUp.Load(), el.dupMismatch.Load())
	row("events processed (done)", "%s, backlog processed %s after the load", thousands(len(el.states[domain.EventDone])),
		so.drained.Round(100*time.Millisecond))
	var notDone []string
	for state, ids := range el.states {
		if state != domain.EventDone {
			notDone = append(notDone, fmt.Sprintf("%s %d", state, len(ids)))
		}
	}
	slices.Sort(notDone)
	row("events lost", "%d (not stored %d; stored but not done: %s)", int(el.gaveUp.Load())+stored-len(el.states[domain.EventDone]),
		el.gaveUp.Load(), cmpOr(strings.Join(notDone, ", "), "none"))
	cc := el.crm
	row("CRM call records", "%d made for %d call_end events: %d missing, %d duplicated", cc.gotCalls, cc.wantCalls, cc.missingCalls, cc.extraCalls)
	row("CRM call-back tasks", "%d made for %d missed calls: %d missing, %d duplicated", cc.gotTasks, cc.wantTasks, cc.missingTasks, cc.extraTasks)
	row("CRM leads (+ contacts)", "%d (%d) made for %d new numbers: %d missing, %d duplicated; none for the %d known leads' numbers",
		cc.gotLeads, cc.gotContacts, cc.wantLeads, cc.missingLeads, cc.extraLeads, soakKnown)
	row("numbers routed to their lead's owner afterwards", "%d of %d", len(el.numbers())-el.routedBad, len(el.numbers()))
	row("CRM requests", "%s, busiest second %d (limit %d)", thousands(so.fake.Meter().Count()), so.fake.Meter().Peak(), soakCRMLimit)
	for _, l := range so.lives {
		row("RSS, server "+l.name, "%.0f MB when ready → %.0f MB at its end (peak %.0f MB); %s–%s; ended by %s (%s)",
			l.rssStart, l.rssEnd, l.peak, fmtClock(l.started), fmtClock(l.ended), l.endBy, l.exit)
	}
	row("setup", "index of %s phones seeded in %s; first server ready %s after start", thousands(*soakPhones),
		so.seeded.Round(time.Millisecond), so.firstRdy.Round(time.Millisecond))
	if len(so.v.failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range so.v.failures {
			fmt.Fprintf(&b, "- %s\n", oneLineMD(f))
		}
	}
	b.WriteString("\nRoute latencies are the load generator's, open loop and coordinated-omission corrected; requests sent while " +
		"no server listened fail at once and count in their slice's latencies. \"unanswered\" is a request that got no HTTP answer; " +
		"\"event posts failed\" are attempts that got none or a 5xx and were posted again. Backlog is the CRM tenant's waiting events " +
		"at the end of the slice.\n")
	return b.String()
}

func fmtClock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func oneLineMD(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// newRouterCmd is `router serve` on addr and db, as the suite starts it
// but with the default sync interval.
func newRouterCmd(bin, addr, db string) *exec.Cmd {
	return exec.Command(bin, "serve", "--listen", addr, "--db", db, "--admin-token", benchToken,
		"--secret-key", benchKey, "--log-format", "json", "--log-level", "info", "--crm-allow-private")
}

// TestSoakCheckers feeds the soak's judges made-up answers: they must
// count a lost, a duplicated and a misfiled CRM record, and a wrong route
// answer, or a passing soak would prove nothing.
func TestSoakCheckers(t *testing.T) {
	calls := []soakCall{
		{uniq: "1", number: "380930000001", known: -1, answered: true, startID: "s1", endID: "e1"},
		{uniq: "2", number: "380930000001", known: -1, answered: false, startID: "s2", endID: "e2"},
		{uniq: "3", number: knownPhone(0), known: 0, answered: false, startID: "s3", endID: "e3"},
		{uniq: "4", number: knownPhone(1), known: 1, answered: true, startID: "s4", endID: ""}, // call_end never stored
	}
	done := []string{"s1", "e1", "s2", "e2", "s3", "e3", "s4"}
	senior := strconv.Itoa(soakSenior)
	good := crmtest.Written{
		Contacts: []crmtest.WrittenContact{{ID: "c1", Phone: "380930000001"}},
		Leads:    []crmtest.WrittenLead{{ID: "l1", Phone: "380930000001", OwnerID: senior}},
		Calls: []crmtest.WrittenCall{{Phone: "380930000001", Answered: true}, {Phone: "380930000001"},
			{Phone: knownPhone(0)}},
		Tasks: []crmtest.WrittenTask{{Text: "Call back +380930000001: missed call at x [cr:k1]"},
			{Text: "Call back +" + knownPhone(0) + ": missed call at y [cr:k2]"}},
	}
	var v verdict
	cc := compareCRM(calls, done, good)
	cc.report(&v)
	if len(v.failures) > 0 || cc.wantCalls != 3 || cc.wantTasks != 2 || cc.wantLeads != 1 {
		t.Fatalf("a CRM holding exactly what the events made: %+v %v", cc, v.failures)
	}

	bad := good
	bad.Calls = []crmtest.WrittenCall{{Phone: "380930000001", Answered: true}, {Phone: "380930000001", Answered: true}}
	bad.Tasks = append(slices.Clone(good.Tasks), good.Tasks[1])
	bad.Leads = append(slices.Clone(good.Leads), crmtest.WrittenLead{ID: "l2", Phone: knownPhone(1), OwnerID: "7001"})
	cc = compareCRM(calls, done, bad)
	if cc.missingCalls != 1 || cc.extraCalls != 0 || cc.wrongAnswered != 1 || cc.extraTasks != 1 || cc.extraLeads != 1 || cc.wrongOwner != 1 {
		t.Fatalf("lost call, misfiled call, doubled task, extra lead: %+v", cc)
	}
	v = verdict{}
	cc.report(&v)
	if len(v.failures) != 4 { // counts, answered status, owner, contacts vs leads
		t.Fatalf("failures: %q", v.failures)
	}

	rl := newRouteLoad("k", 1000)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	for _, c := range []struct {
		body, reason string
		ok           bool
	}{
		{`{"jsonrpc":"2.0","id":7,"result":{"number":"sip_7"}}`, "owner", true},
		{`{"jsonrpc":"2.0","id":57,"result":{"number":"sip_7"}}`, "owner", true},
		{`{"jsonrpc":"2.0","id":57,"result":{"number":"sip_8"}}`, "owner", false},
		{`{"jsonrpc":"2.0","id":7,"result":{}}`, "no_match", false},
		{`{"jsonrpc":"2.0","id":` + strconv.Itoa(soakMissID+3) + `,"result":{}}`, "no_match", true},
		{`{"jsonrpc":"2.0","id":` + strconv.Itoa(soakMissID+3) + `,"result":{}}`, "unavailable", false},
		{`{"number":"sip_7"}`, "owner", false},
	} {
		resp.Reset()
		resp.SetBodyString(c.body)
		resp.Header.Set("X-Route-Reason", c.reason)
		if err := rl.check(resp); (err == nil) != c.ok {
			t.Errorf("%s (%s): %v, want ok=%v", c.body, c.reason, err, c.ok)
		}
	}
	resp.Reset()
	resp.SetStatusCode(503)
	if rl.check(resp) == nil || rl.s5xx.Load() != 1 || rl.wrong.Load() != 4 || rl.ok.Load() != 7 {
		t.Fatalf("counts: 5xx %d, wrong %d, ok %d", rl.s5xx.Load(), rl.wrong.Load(), rl.ok.Load())
	}
}
