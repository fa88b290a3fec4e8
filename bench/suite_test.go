// Package bench_test is callrouter's benchmark suite: it measures every
// figure of DESIGN.md's performance contract on this machine, beside the
// ceiling (a bare fasthttp handler) and the obvious designs (a net/http
// server querying the store per call, one asking the CRM per call), and
// writes the table, its JSON and a latency plot to bench/results.
//
//	make bench         # every figure, 1M phones, ≤ 10 min
//	make bench-quick   # the same table from short runs and 20k phones, ≤ 60 s
//
// Servers run as child processes on loopback addresses only; every run is
// bounded in time. Without -suite the suite is skipped, so `make test`
// compiles it without running it.
package bench_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/bench/loadgen"
	"github.com/callrouter/callrouter/bench/report"
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store/storetest"
)

var (
	suiteMode    = flag.String("suite", "", "run the benchmark suite: full or quick (make bench, make bench-quick)")
	suiteOut     = flag.String("suite.out", "results", "directory for results.md, results.json and latency.png")
	suiteProfile = flag.Bool("suite.profile", false, "save CPU profiles of the router during the keep-alive hit runs (cpu-<backend>-hits.pprof in -suite.out)")
	suitePhones  = flag.Int("suite.phones", 0, "phones in the indexed dataset (default 1,000,000 full, 20,000 quick)")
	reportOnly   = flag.Bool("suite.report-only", false, "report missed targets without failing (make bench exits non-zero on a miss otherwise)")
)

const (
	employees  = 50
	benchToken = "bench-admin-token-not-a-secret"
	benchKey   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	liveBudget = 100 * time.Millisecond
	hitSample  = 100_000 // distinct callers the hit runs cycle through
)

// plan is how long and how big each run is.
type plan struct {
	mode         string
	run, warmup  time.Duration
	closeRun     time.Duration // Connection: close runs (each request costs a port)
	phones       int
	syncContacts int
	syncWindow   time.Duration
	benchtime    string
}

func planFor(mode string, phones int) (plan, error) {
	var p plan
	switch mode {
	case "full":
		p = plan{mode: mode, run: 10 * time.Second, warmup: time.Second, closeRun: 5 * time.Second, phones: 1_000_000,
			syncContacts: 25_000, syncWindow: 8 * time.Second, benchtime: "2s"}
	case "quick":
		p = plan{mode: mode, run: time.Second, warmup: 200 * time.Millisecond, closeRun: time.Second, phones: 20_000,
			syncContacts: 5_000, syncWindow: 2 * time.Second, benchtime: "200ms"}
	default:
		return p, fmt.Errorf("-suite=%q: want full or quick", mode)
	}
	if phones > 0 {
		p.phones = phones
	}
	return p, nil
}

// suite is one run of the benchmark suite.
type suite struct {
	t   *testing.T
	p   plan
	rep *report.Report
	bin string
	ctx context.Context

	ceilingProc             *proc
	ceilingKA, ceilingClose float64
	wrk                     string  // wrk's path
	routerKA                float64 // SQLite router, hits, keep-alive: the naive-CRM ratio's numerator
	seq                     atomic.Uint64
}

func TestSuite(t *testing.T) {
	if *suiteMode == "" {
		t.Skip("the benchmark suite runs with -suite=full or -suite=quick (make bench, make bench-quick)")
	}
	p, err := planFor(*suiteMode, *suitePhones)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{t: t, p: p, ctx: context.Background(), rep: &report.Report{Title: "callrouter benchmark suite",
		Started: time.Now().UTC(), Machine: report.Machine(), Mode: p.mode}}
	began := time.Now()
	loadStart := loadAverage()
	if s.wrk, err = wrkPath(); err != nil {
		t.Fatal(err)
	}
	s.bin = buildRouter(t)

	s.micro()
	s.backend("sqlite", filepath.Join(t.TempDir(), "callrouter.db"))
	if url, ok := postgresURL(t); ok {
		s.backend("postgres", url)
	} else {
		s.rep.Note("PostgreSQL was not reachable at POSTGRES_URL: its rows are missing from this run.")
	}
	s.naiveCRM()

	s.rep.Note("Machine: load generator and server share its %d CPUs, as do the ceiling and baselines, so ratios compare like with like.", runtimeCPUs())
	s.rep.Note("Hit runs cycle through %d distinct indexed callers; miss runs use callers never seen before, so each is a store read.", min(hitSample, p.phones))
	s.rep.Note("Open-loop latencies are coordinated-omission corrected (wrk2-style); closed-loop figures are the maximum throughput.")
	s.rep.Note("Suite wall time: %s (mode %s, %d phones).", time.Since(began).Round(time.Second), p.mode, p.phones)
	loadEnd := loadAverage()
	s.rep.Note("Load average (1 min) %.2f at the start, %.2f at the end.", loadStart, loadEnd)
	if busy := 0.5 * float64(runtimeCPUs()); loadStart > busy || loadEnd > busy {
		s.rep.Note("WARNING: the machine was busy (load above %.1f): figures are lower and noisier than on an idle machine.", busy)
		fmt.Printf("WARNING: load average %.2f at the start, %.2f at the end on %d CPUs: the machine was busy\n", loadStart, loadEnd, runtimeCPUs())
	}

	var md strings.Builder
	if err := s.rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	fmt.Println(md.String())
	paths, err := s.rep.WriteFiles(*suiteOut)
	if err != nil {
		t.Fatal(err)
	}
	pass, miss := s.rep.Counts()
	fmt.Printf("%d targets met, %d missed; written: %s\n", pass, miss, strings.Join(paths, ", "))
	if miss > 0 && !*reportOnly {
		t.Errorf("%d of %d targets missed (-suite.report-only reports without failing)", miss, pass+miss)
	}
}

// loadAverage is the 1-minute load average, 0 when /proc does not tell.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func runtimeCPUs() int {
	n, _ := strconv.Atoi(strings.TrimSpace(cpuCount()))
	return n
}

func cpuCount() string {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return "0"
	}
	return string(out)
}

func buildRouter(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "router")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/router")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build router: %v\n%s", err, out)
	}
	return bin
}

// postgresURL returns a URL on a fresh schema when PostgreSQL answers.
func postgresURL(t *testing.T) (string, bool) {
	base := os.Getenv("POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", false
	}
	defer conn.Close(ctx)
	schema := storetest.FreshSchema(t, base)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, true
}

// --- the figures ---

var benchLine = regexp.MustCompile(`(?m)^BenchmarkRouteHit\S*\s+\d+\s+([\d.]+) ns/op\s+\d+ B/op\s+(\d+) allocs/op`)

// micro runs the in-process route decision benchmark (go test -bench).
func (s *suite) micro() {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkRouteHit$", "-benchmem", "-benchtime", s.p.benchtime, "-count", "1", "../internal/httpapi")
	out, err := cmd.CombinedOutput()
	m := benchLine.FindSubmatch(out)
	if err != nil || m == nil {
		s.t.Fatalf("BenchmarkRouteHit: %v\n%s", err, out)
	}
	ns, _ := strconv.ParseFloat(string(m[1]), 64)
	allocs, _ := strconv.Atoi(string(m[2]))
	s.rep.Add(report.Row{Figure: "route decision in-process (normalize + cache hit + encode)", Value: ns, Unit: "ns/op",
		Detail: fmt.Sprintf("%d allocs/op · go test -bench BenchmarkRouteHit ./internal/httpapi", allocs),
		Target: "≤ 250 ns/op, 0 allocs/op", Status: passIf(ns <= 250 && allocs == 0)})
}

// ceiling measures the bare fasthttp handler, right before the runs it
// is compared with: the machine's state drifts between runs minutes apart
// (page cache, PostgreSQL's checkpoints), and a ratio of adjacent runs
// cancels that drift.
func (s *suite) ceiling(backend string) {
	if s.ceilingProc == nil {
		s.ceilingProc = helper(s.t, "ceiling")
		s.t.Cleanup(func() { s.ceilingProc.stop(s.t) })
	}
	addr := s.ceilingProc.addr
	ka := s.closed(addr, "ceiling keep-alive", true, constRequests("/"), nil)
	cl := s.closed(addr, "ceiling close", false, constRequests("/"), nil)
	s.ceilingKA, s.ceilingClose = ka.Throughput, cl.Throughput
	s.rep.Add(report.Row{Figure: "ceiling: bare fasthttp handler, keep-alive", Backend: backend, Value: ka.Throughput, Unit: "req/s", Detail: latencyDetail(ka)})
	s.rep.Add(report.Row{Figure: "ceiling: bare fasthttp handler, Connection: close", Backend: backend, Value: cl.Throughput, Unit: "req/s", Detail: latencyDetail(cl)})
}

// tenantSetup is what the admin API answered while the router was set up.
type tenantSetup struct {
	benchSecret, liveSecret string
	live                    *amocrmfake.Server
}

// backend measures the router and the naive store design on one store.
func (s *suite) backend(name, db string) {
	t := s.t
	// Set up through the admin API, as an operator would.
	setup := s.startRouter(name+" setup", db)
	ts := s.configure(setup, name == "sqlite")
	setup.stop(t)

	loaded := s.seed(db)
	s.rep.Add(report.Row{Figure: "index load, in-process UpsertIndex", Backend: name, Value: float64(s.p.phones) / loaded.Seconds(),
		Unit: "rows/s", Detail: fmt.Sprintf("%d phones in %s", s.p.phones, loaded.Round(time.Millisecond))})

	r := s.startRouter(name, db)
	ready := r.waitReady(t, 2*time.Minute)
	atReady, _, err := r.memory()
	if err != nil {
		t.Fatal(err)
	}
	// Warm-up returns its garbage to the OS right after the cache is
	// ready; the settled figure is what the instance keeps.
	time.Sleep(2 * time.Second)
	rss, peak, err := r.memory()
	if err != nil {
		t.Fatal(err)
	}
	full := s.p.phones >= 1_000_000
	s.rep.Add(report.Row{Figure: fmt.Sprintf("warm start, %s indexed phones: cache ready", thousands(s.p.phones)), Backend: name,
		Value: ready.Seconds(), Unit: "s", Detail: "process start → /readyz 200 (every key in the cache)",
		Target: "≤ 3 s (1M phones)", Status: judge(full, ready <= 3*time.Second)})
	s.rep.Add(report.Row{Figure: fmt.Sprintf("warm start, %s indexed phones: RSS once ready", thousands(s.p.phones)), Backend: name,
		Value: rss, Unit: "MB", Detail: fmt.Sprintf("VmRSS 2 s after /readyz 200 (%.0f MB at it); peak during warm-up (VmHWM) %.0f MB", atReady, peak),
		Target: "≤ 200 MB (1M phones)", Status: judge(full, rss <= 200)})

	s.ceiling(name)
	hits := hitURIs(ts.benchSecret, min(hitSample, s.p.phones), s.p.phones)
	hitCheck := reasonIs("owner")
	var prof <-chan error
	if *suiteProfile {
		if err := os.MkdirAll(*suiteOut, 0o755); err != nil {
			t.Fatal(err)
		}
		prof = r.profile(max(s.p.run-time.Second, time.Second), filepath.Join(*suiteOut, "cpu-"+name+"-hits.pprof"))
	}
	ka := s.closed(r.addr, name+" hits keep-alive", true, cycle(hits), hitCheck)
	if prof != nil {
		if err := <-prof; err != nil {
			t.Errorf("profile: %v", err)
		}
	}
	cl := s.closed(r.addr, name+" hits close", false, cycle(hits), hitCheck)
	if name == "sqlite" {
		s.routerKA = ka.Throughput
	}
	s.rep.Add(report.Row{Figure: "HTTP throughput, cache hits, keep-alive", Backend: name, Value: ka.Throughput, Unit: "req/s",
		Detail: latencyDetail(ka), Ratio: ka.Throughput / s.ceilingKA, RatioTo: "bare fasthttp",
		Target: "≥ 90 % of the ceiling", Status: passIf(ka.Errors == 0 && ka.Throughput >= 0.9*s.ceilingKA)})
	s.rep.Add(report.Row{Figure: "HTTP throughput, cache hits, Connection: close", Backend: name, Value: cl.Throughput, Unit: "req/s",
		Detail: latencyDetail(cl), Ratio: cl.Throughput / s.ceilingClose, RatioTo: "bare fasthttp, close",
		Target: "≥ 95 % of the ceiling", Status: passIf(cl.Errors == 0 && cl.Throughput >= 0.95*s.ceilingClose)})
	s.wrkHits(r, name, hits)

	open := s.open(r.addr, name+" hits 10k/s", 10_000, 64, cycle(hits), hitCheck)
	s.rep.Add(report.Row{Figure: "open loop 10k req/s, cache hits: p99", Backend: name, Value: ms(open.P99), Unit: "ms",
		Detail: latencyDetail(open), Target: "p99 ≤ 1 ms, p99.9 ≤ 2 ms",
		Status: passIf(open.Errors == 0 && open.P99 <= time.Millisecond && open.P999 <= 2*time.Millisecond && open.AchievedRate >= 9_500)})
	s.rep.AddSeries(name+" hits 10k/s", open.Percentiles)

	missTarget := map[string]time.Duration{"sqlite": 2 * time.Millisecond, "postgres": 3 * time.Millisecond}[name]
	miss := s.open(r.addr, name+" miss 1k/s", 1_000, 64, s.unseen(ts.benchSecret, "bench"), reasonNot("timeout", "unavailable"))
	s.rep.Add(report.Row{Figure: "miss → store (open loop 1k req/s, unseen callers): p99", Backend: name, Value: ms(miss.P99), Unit: "ms",
		Detail: latencyDetail(miss), Target: "p99 ≤ " + fmtMS(missTarget),
		Status: passIf(miss.Errors == 0 && miss.P99 <= missTarget)})
	s.rep.AddSeries(name+" miss→store 1k/s", miss.Percentiles)

	mixed := s.open(r.addr, name+" mixed 10k/s", 10_000, 64, s.mixed(hits, ts.benchSecret), reasonNot("timeout", "unavailable"))
	s.rep.Add(report.Row{Figure: "mixed 95 % hits / 5 % misses, open loop 10k req/s: p99", Backend: name, Value: ms(mixed.P99), Unit: "ms",
		Detail: latencyDetail(mixed), Status: report.Info})

	// The naive design on the same database.
	naive := helper(t, "naive-store", helperDB+"="+db, helperKey+"="+ts.benchSecret)
	nka := s.closed(naive.addr, name+" naive store", true, cycle(hits), bodyNot(`{"number":""}`))
	nmiss := s.open(naive.addr, name+" naive store 1k/s", 1_000, 64, cycle(hits), nil)
	naive.stop(t)
	s.rep.Add(report.Row{Figure: "baseline: naive net/http + store query per call, keep-alive", Backend: name, Value: nka.Throughput,
		Unit: "req/s", Detail: latencyDetail(nka), Ratio: ka.Throughput / nka.Throughput, RatioTo: "callrouter hits ÷ naive"})
	s.rep.Add(report.Row{Figure: "baseline: naive net/http + store, open loop 1k req/s: p99", Backend: name, Value: ms(nmiss.P99),
		Unit: "ms", Detail: latencyDetail(nmiss)})

	s.ingest(r, name, ts.benchSecret)
	if ts.live != nil {
		s.liveCRM(r, ts)
		s.fullSync(r)
	}
	r.stop(t)
}

// startRouter starts `router serve` on db.
func (s *suite) startRouter(name, db string) *proc {
	cmd := exec.Command(s.bin, "serve", "--listen", "127.0.0.1:0", "--db", db, "--admin-token", benchToken,
		"--secret-key", benchKey, "--log-format", "json", "--log-level", "info", "--crm-allow-private", "--debug-listen", "127.0.0.1:0")
	cmd.Dir = s.t.TempDir()
	p := startProc(s.t, "router "+name, cmd)
	p.db = db
	return p
}

// configure creates the tenants through the admin API: "bench" (the
// routing and event runs), and on the first backend "live" (live CRM
// lookups against a fake amoCRM, 100 ms budget).
func (s *suite) configure(r *proc, withCRM bool) tenantSetup {
	t := s.t
	base := "http://" + r.addr + "/admin/v1/"
	var ts tenantSetup
	mk := func(id string, settings map[string]any) string {
		body := map[string]any{"id": id, "name": id}
		for k, v := range settings {
			body[k] = v
		}
		var out struct {
			Secret string `json:"webhook_secret"`
		}
		if err := httpJSON(s.ctx, "POST", base+"tenants", benchToken, body, &out); err != nil {
			t.Fatal(err)
		}
		for i := range employees {
			if err := httpJSON(s.ctx, "PUT", base+"tenants/"+id+"/employees/u"+strconv.Itoa(i), benchToken,
				map[string]string{"sip": "sip_" + strconv.Itoa(i)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := httpJSON(s.ctx, "PUT", base+"tenants/"+id+"/default-owner", benchToken, map[string]string{"crm_user_id": "u0"}, nil); err != nil {
			t.Fatal(err)
		}
		return out.Secret
	}
	ts.benchSecret = mk("bench", map[string]any{"default_country": "UA"})
	if withCRM {
		ts.liveSecret = mk("live", map[string]any{"default_country": "UA", "live_lookup": true, "route_budget_ms": int(liveBudget / time.Millisecond)})
		ts.live = amocrmfake.New(t)
		ts.live.SetUsers([]crm.User{{ID: "7", Name: "Anna", Active: true}})
		if err := httpJSON(s.ctx, "PUT", base+"tenants/live/integration", benchToken,
			map[string]any{"crm": "amocrm", "base_url": ts.live.URL(), "credentials": ts.live.Creds()}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

// seed writes the indexed phones straight into the store, in batches, and
// returns how long it took.
func (s *suite) seed(db string) time.Duration {
	st, err := openStore(s.ctx, db)
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	const batch = 5000
	rows := make([]domain.IndexEntry, 0, batch)
	for i := range s.p.phones {
		e164 := indexed(i)
		rows = append(rows, domain.IndexEntry{TenantID: "bench", Phone: e164, Suffix: phone.Suffix(e164), Kind: domain.KindContact,
			EntityID: strconv.Itoa(100000 + i), Open: true, OwnerID: "u" + strconv.Itoa(i%employees), Name: "Client " + strconv.Itoa(i)})
		if len(rows) == batch || i == s.p.phones-1 {
			if err := st.UpsertIndex(s.ctx, rows); err != nil {
				s.t.Fatalf("seed index: %v", err)
			}
			rows = rows[:0]
		}
	}
	took := time.Since(start)
	if strings.HasPrefix(db, "postgres://") {
		// Autovacuum would otherwise analyze the fresh million rows in the
		// middle of the measurements, on the same two cores.
		conn, err := pgx.Connect(s.ctx, db)
		if err != nil {
			s.t.Fatal(err)
		}
		defer conn.Close(s.ctx)
		if _, err := conn.Exec(s.ctx, "VACUUM ANALYZE phone_index"); err != nil {
			s.t.Fatalf("vacuum: %v", err)
		}
		// And the checkpointer would flush the load's pages then.
		if _, err := conn.Exec(s.ctx, "CHECKPOINT"); err != nil {
			s.t.Logf("checkpoint (needs superuser or pg_checkpoint): %v", err)
		}
	}
	return took
}

// indexed is the i-th indexed phone: Kyivstar numbers 38067xxxxxxx.
func indexed(i int) string { return "38067" + fmt.Sprintf("%07d", i) }

// ingest measures the events endpoint: the maximum durable rate (closed
// loop) and the acknowledgement latency at the target rate (open loop).
func (s *suite) ingest(r *proc, name, secret string) {
	target := map[string]float64{"sqlite": 2_000, "postgres": 5_000}[name]
	closed := s.closed(r.addr, name+" events", true, s.events(secret), statusIs(200))
	s.rep.Add(report.Row{Figure: "event ingest, durable (closed loop, 64 posters)", Backend: name, Value: closed.Throughput, Unit: "events/s",
		Detail: latencyDetail(closed), Target: "≥ " + thousands(int(target)) + " events/s",
		Status: passIf(closed.Errors == 0 && closed.Throughput >= target)})
	var prof <-chan error
	if *suiteProfile {
		prof = r.profile(max(s.p.run-time.Second, time.Second), filepath.Join(*suiteOut, "cpu-"+name+"-events.pprof"))
	}
	open := s.open(r.addr, name+" events at target", target, 256, s.events(secret), statusIs(200))
	if prof != nil {
		if err := <-prof; err != nil {
			s.t.Errorf("profile: %v", err)
		}
	}
	if name == "postgres" {
		s.vacuumNote(r)
	}
	s.rep.Add(report.Row{Figure: fmt.Sprintf("event ingest at %s events/s: p99 acknowledgement", thousands(int(target))), Backend: name,
		Value: ms(open.P99), Unit: "ms", Detail: latencyDetail(open), Target: "p99 ≤ 20 ms",
		Status: passIf(open.Errors == 0 && open.P99 <= 20*time.Millisecond && open.AchievedRate >= 0.95*target)})
	s.rep.AddSeries(fmt.Sprintf("%s events %s/s", name, thousands(int(target))), open.Percentiles)
}

// vacuumNote records what PostgreSQL's autovacuum did to the event and
// job tables while the ingest runs wrote them, since it competes with the
// commits for the same cores.
func (s *suite) vacuumNote(r *proc) {
	db := r.db
	conn, err := pgx.Connect(s.ctx, db)
	if err != nil {
		s.t.Logf("vacuum note: %v", err)
		return
	}
	defer conn.Close(s.ctx)
	rows, err := conn.Query(s.ctx, `SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count
		FROM pg_stat_user_tables WHERE relname IN ('call_events', 'river_job') AND schemaname = current_schema() ORDER BY relname`)
	if err != nil {
		s.t.Logf("vacuum note: %v", err)
		return
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var name string
		var live, dead, vac, an int64
		if err := rows.Scan(&name, &live, &dead, &vac, &an); err != nil {
			s.t.Logf("vacuum note: %v", err)
			return
		}
		parts = append(parts, fmt.Sprintf("%s %d live / %d dead rows, %d autovacuums, %d autoanalyzes", name, live, dead, vac, an))
	}
	s.rep.Note("PostgreSQL after the ingest runs: %s.", strings.Join(parts, "; "))
}

// liveCRM measures route misses that ask the CRM: fast, slow and hanging.
func (s *suite) liveCRM(r *proc, ts tenantSetup) {
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{{"fast", 0}, {"slow (60 ms)", 60 * time.Millisecond}, {"hanging", -1}} {
		ts.live.SetDelay(c.delay)
		// Below amoCRM's 7 requests per second, which callrouter keeps to:
		// a faster run would measure the rate limiter's queue.
		res := s.openFor(r.addr, "live CRM "+c.name, 5, 16, s.unseen(ts.liveSecret, "live"), reasonNot("unavailable"), max(s.p.run, 2*time.Second))
		within := fractionWithin(res.Hist, liveBudget+5*time.Millisecond)
		row := report.Row{Figure: "miss with live CRM lookup, CRM " + c.name + ": p99", Backend: "sqlite", Value: ms(res.P99), Unit: "ms",
			Detail: fmt.Sprintf("%s · %.1f %% within budget (%s) + 5 ms", latencyDetail(res), 100*within, fmtMS(liveBudget))}
		if c.delay < 0 {
			row = report.Row{Figure: "CRM hangs: answers within budget + 5 ms", Backend: "sqlite", Value: 100 * within, Unit: "%",
				Detail: fmt.Sprintf("budget %s · %s", fmtMS(liveBudget), latencyDetail(res)), Target: "100 %",
				Status: passIf(res.Errors == 0 && within == 1)}
		}
		s.rep.Add(row)
		s.rep.AddSeries("live CRM "+c.name, res.Percentiles)
	}
	ts.live.SetDelay(0)
}

// fullSync connects a tenant to a fake amoCRM holding many contacts and
// measures the request rate of its first sync against amoCRM's limit; the
// fake fails the suite if any second holds more than 7 requests.
func (s *suite) fullSync(r *proc) {
	t := s.t
	fake := amocrmfake.New(t)
	fake.SetUsers([]crm.User{{ID: "7", Name: "Anna", Active: true}})
	for i := range s.p.syncContacts {
		fake.Put(crm.Entity{Kind: domain.KindContact, ID: strconv.Itoa(5000 + i), Name: "C", Phones: []string{"+38063" + fmt.Sprintf("%07d", i)},
			OwnerID: "7", Open: true})
	}
	base := "http://" + r.addr + "/admin/v1/"
	if err := httpJSON(s.ctx, "POST", base+"tenants", benchToken, map[string]any{"id": "sync", "name": "sync"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := httpJSON(s.ctx, "PUT", base+"tenants/sync/integration", benchToken,
		map[string]any{"crm": "amocrm", "base_url": fake.URL(), "credentials": fake.Creds()}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the first sync job starts
	before := fake.Meter().Count()
	time.Sleep(s.p.syncWindow)
	n := fake.Meter().Count() - before
	rps := float64(n) / s.p.syncWindow.Seconds()
	peak := fake.Meter().Peak()
	s.rep.Add(report.Row{Figure: "full CRM sync (amoCRM, 7 req/s): rate limit used", Backend: "sqlite", Value: 100 * rps / amocrmfake.RPS, Unit: "%",
		Detail: fmt.Sprintf("%.2f req/s over %s; busiest second %d requests", rps, s.p.syncWindow, peak),
		Target: "≥ 90 %, never above", Status: passIf(rps >= 0.9*amocrmfake.RPS && peak <= amocrmfake.RPS)})
}

// naiveCRM measures the design that asks the CRM on every call, against a
// local CRM stub that answers at once with no rate limit.
func (s *suite) naiveCRM() {
	stub := helper(s.t, "stub-crm")
	defer stub.stop(s.t)
	n := helper(s.t, "naive-crm", helperCRM+"=http://"+stub.addr, helperKey+"=k")
	defer n.stop(s.t)
	res := s.closed(n.addr, "naive CRM", true, constRequests("/route?key=k&caller=380671234567"), bodyNot(`{"number":""}`))
	ratio := 0.0
	if res.Throughput > 0 {
		ratio = s.routerKA / res.Throughput
	}
	s.rep.Add(report.Row{Figure: "baseline: naive server asking the CRM per call (local stub, no rate limit)", Value: res.Throughput,
		Unit: "req/s", Detail: latencyDetail(res) + " · a real amoCRM allows 7 req/s", Ratio: ratio, RatioTo: "callrouter hits ÷ naive"})
}

// --- runs ---

func (s *suite) closed(addr, name string, keepAlive bool, req loadgen.RequestFunc, check loadgen.CheckFunc) loadgen.Result {
	run, conc := s.p.run, 64
	if !keepAlive {
		run, conc = s.p.closeRun, 16
	}
	return s.load(loadgen.Config{Name: name, Addr: addr, Request: req, Check: check, KeepAlive: keepAlive,
		Duration: run, Warmup: s.p.warmup, Concurrency: conc, Timeout: 5 * time.Second})
}

func (s *suite) open(addr, name string, rate float64, conc int, req loadgen.RequestFunc, check loadgen.CheckFunc) loadgen.Result {
	return s.openFor(addr, name, rate, conc, req, check, s.p.run)
}

func (s *suite) openFor(addr, name string, rate float64, conc int, req loadgen.RequestFunc, check loadgen.CheckFunc, d time.Duration) loadgen.Result {
	return s.load(loadgen.Config{Name: name, Addr: addr, Request: req, Check: check, KeepAlive: true,
		Duration: d, Warmup: s.p.warmup, Concurrency: conc, Rate: rate, Timeout: 5 * time.Second})
}

func (s *suite) load(cfg loadgen.Config) loadgen.Result {
	res, err := loadgen.Run(s.ctx, cfg)
	if err != nil {
		s.t.Fatalf("%s: %v", cfg.Name, err)
	}
	for _, w := range res.Warnings {
		s.rep.Note("%s: %s", cfg.Name, w)
	}
	if res.Errors > 0 {
		s.t.Logf("%s: %d errors, e.g. %v", cfg.Name, res.Errors, res.ErrorSamples)
	}
	// Progress only: the figures are printed once, in the table at the end.
	fmt.Printf("ran %s\n", cfg.Name)
	return res
}

// --- requests ---

func constRequests(uri string) loadgen.RequestFunc {
	return func(_ uint64, req *fasthttp.Request) { req.SetRequestURI(uri) }
}

// hitURIs returns route requests for n indexed callers spread over the
// whole index.
func hitURIs(secret string, n, phones int) []string {
	uris := make([]string, n)
	step := max(phones/n, 1)
	for i := range uris {
		uris[i] = "/pbx/bench/route?key=" + secret + "&caller=" + indexed((i*step)%phones)
	}
	rand.Shuffle(len(uris), func(i, j int) { uris[i], uris[j] = uris[j], uris[i] })
	return uris
}

func cycle(uris []string) loadgen.RequestFunc {
	return func(i uint64, req *fasthttp.Request) { req.SetRequestURI(uris[i%uint64(len(uris))]) }
}

// unseen returns route requests for callers no run has asked about, so
// each is a cache miss (Vodafone numbers 38050xxxxxxx, never indexed).
func (s *suite) unseen(secret, tenant string) loadgen.RequestFunc {
	prefix := "/pbx/" + tenant + "/route?key=" + secret + "&caller=38050"
	return func(_ uint64, req *fasthttp.Request) {
		n := s.seq.Add(1)
		req.SetRequestURI(prefix + fmt.Sprintf("%07d", n%10_000_000))
	}
}

// mixed sends 95 % hits and 5 % unseen callers.
func (s *suite) mixed(hits []string, secret string) loadgen.RequestFunc {
	miss := s.unseen(secret, "bench")
	return func(i uint64, req *fasthttp.Request) {
		if i%20 == 19 {
			miss(i, req)
			return
		}
		req.SetRequestURI(hits[i%uint64(len(hits))])
	}
}

// events posts call_end events, each a new call from one of 10,000 clients.
func (s *suite) events(secret string) loadgen.RequestFunc {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	uri := "/pbx/bench/events?key=" + secret + "&event=call_end"
	return func(_ uint64, req *fasthttp.Request) {
		n := s.seq.Add(1)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(uri)
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"uniqueid":"` + run + `.` + strconv.FormatUint(n, 10) + `","caller":"` + indexed(int(n%10_000)) +
			`","disposition":"ANSWERED","billsec":"42","employee_number":"sip_` + strconv.FormatUint(n%employees, 10) + `"}`)
	}
}

// --- checks ---

func statusIs(code int) loadgen.CheckFunc {
	return func(resp *fasthttp.Response) error {
		if resp.StatusCode() != code {
			return fmt.Errorf("status %d: %.100s", resp.StatusCode(), resp.Body())
		}
		return nil
	}
}

func reasonIs(want string) loadgen.CheckFunc {
	return func(resp *fasthttp.Response) error {
		if resp.StatusCode() != 200 {
			return fmt.Errorf("status %d", resp.StatusCode())
		}
		if got := string(resp.Header.Peek("X-Route-Reason")); got != want {
			return fmt.Errorf("reason %q, want %q", got, want)
		}
		return nil
	}
}

func reasonNot(bad ...string) loadgen.CheckFunc {
	return func(resp *fasthttp.Response) error {
		if resp.StatusCode() != 200 {
			return fmt.Errorf("status %d", resp.StatusCode())
		}
		got := string(resp.Header.Peek("X-Route-Reason"))
		for _, b := range bad {
			if got == b {
				return errors.New("reason " + got)
			}
		}
		return nil
	}
}

func bodyNot(bad string) loadgen.CheckFunc {
	return func(resp *fasthttp.Response) error {
		if resp.StatusCode() != 200 || string(resp.Body()) == bad {
			return fmt.Errorf("status %d: %.100s", resp.StatusCode(), resp.Body())
		}
		return nil
	}
}

// --- formatting ---

func passIf(ok bool) report.Status {
	if ok {
		return report.Pass
	}
	return report.Miss
}

// judge applies a target that holds for the full dataset only.
func judge(applies, ok bool) report.Status {
	if !applies {
		return report.Info
	}
	return passIf(ok)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(d time.Duration) string { return strconv.FormatFloat(ms(d), 'f', -1, 64) + " ms" }

func latencyDetail(r loadgen.Result) string {
	d := fmt.Sprintf("p50 %.3f · p90 %.3f · p99 %.3f · p99.9 %.3f · max %.3f ms", ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999), ms(r.Max))
	if !r.Closed {
		d += fmt.Sprintf(" · %.0f of %.0f req/s sent", r.AchievedRate, r.Rate)
	}
	if r.Errors > 0 {
		d += fmt.Sprintf(" · %d errors", r.Errors)
	}
	return d
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fractionWithin is the share of recorded latencies at most limit.
func fractionWithin(h *hdrhistogram.Histogram, limit time.Duration) float64 {
	if h == nil || h.TotalCount() == 0 {
		return 0
	}
	var in int64
	for _, b := range h.Distribution() {
		if b.To <= limit.Microseconds() {
			in += b.Count
		}
	}
	return float64(in) / float64(h.TotalCount())
}

// wrkHits measures the ceiling and the router's cache hits with wrk, an
// external load generator, back to back, so the ratio does not rest on our
// own generator alone.
func (s *suite) wrkHits(r *proc, backend string, hits []string) {
	script, err := wrkScript(s.t.TempDir(), hits)
	if err != nil {
		s.t.Fatal(err)
	}
	run := func(addr, name string, close bool) wrkResult {
		d, conns := s.p.run, 64
		if close {
			d, conns = s.p.closeRun, 16
		}
		res, err := runWrk(s.wrk, addr, script, d, conns, close)
		if err != nil {
			s.t.Fatalf("%s: %v", name, err)
		}
		fmt.Printf("ran %s\n", name)
		return res
	}
	for _, close := range []bool{false, true} {
		mode, target := "keep-alive", 0.9
		if close {
			mode, target = "Connection: close", 0.95
		}
		ceil := run(s.ceilingProc.addr, "wrk ceiling "+mode, close)
		got := run(r.addr, "wrk "+backend+" hits "+mode, close)
		ratio := got.Throughput / ceil.Throughput
		s.rep.Add(report.Row{Figure: "wrk: cache hits, " + mode, Backend: backend, Value: got.Throughput, Unit: "req/s",
			Ratio: ratio, RatioTo: "wrk ceiling", Target: fmt.Sprintf("≥ %.0f %% of the ceiling", target*100),
			Detail: fmt.Sprintf("ceiling %.0f req/s by wrk · latency avg/stdev/max %s · non-2xx %d", ceil.Throughput, got.Latency, got.Non2xx),
			Status: passIf(got.Non2xx == 0 && ratio >= target)})
	}
}
