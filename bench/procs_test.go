package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// The suite's servers run as child processes so that each has its own
// runtime, heap and RSS, as in production. This test binary is the child
// for the ceiling and the naive baselines: helperEnv selects the server.
const (
	helperEnv  = "CALLROUTER_BENCH_HELPER"
	helperAddr = "CALLROUTER_BENCH_ADDR"
	helperDB   = "CALLROUTER_BENCH_DB"
	helperKey  = "CALLROUTER_BENCH_KEY"
	helperCRM  = "CALLROUTER_BENCH_CRM"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(helperEnv); kind != "" {
		if err := runHelper(kind); err != nil {
			fmt.Fprintln(os.Stderr, "bench helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper serves one baseline on 127.0.0.1:0, prints "listening ADDR"
// and serves until killed.
func runHelper(kind string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	switch kind {
	case "ceiling":
		// The bare fasthttp handler: a constant answer, nothing else. The
		// same server limits as callrouter's, so the comparison is fair.
		body := []byte(`{"number":"sip_1"}`)
		s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		}, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
		return s.Serve(ln)
	case "naive-store":
		st, err := openStore(context.Background(), os.Getenv(helperDB))
		if err != nil {
			return err
		}
		return http.Serve(ln, naiveStore{st: st, key: os.Getenv(helperKey)})
	case "stub-crm":
		return http.Serve(ln, http.HandlerFunc(stubCRM))
	case "naive-crm":
		return http.Serve(ln, naiveCRM{crm: os.Getenv(helperCRM), key: os.Getenv(helperKey),
			client: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}})
	}
	return fmt.Errorf("unknown helper %q", kind)
}

func openStore(ctx context.Context, db string) (store.Store, error) {
	if strings.HasPrefix(db, "postgres://") {
		return postgres.Open(ctx, db)
	}
	return sqlite.Open(ctx, db)
}

// naiveStore is the obvious design: net/http, and a database query for
// every call.
type naiveStore struct {
	st  store.Store
	key string
}

func (n naiveStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("key")), []byte(n.key)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	e164, err := phone.Normalize(q.Get("caller"), "UA")
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"number":""}`)
		return
	}
	rows, err := n.st.LookupSuffix(r.Context(), "bench", phone.Suffix(e164))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	owner := ""
	for _, row := range rows {
		if row.Open && row.OwnerID != "" {
			owner = row.OwnerID
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"number":"`+sipOf(owner)+`"}`)
}

// naiveCRM is the other obvious design: ask the CRM on every call.
type naiveCRM struct {
	crm    string
	key    string
	client *http.Client
}

func (n naiveCRM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("key")), []byte(n.key)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	resp, err := n.client.Get(n.crm + "/api/v4/contacts?query=" + q.Get("caller"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var found struct {
		Embedded struct {
			Contacts []struct {
				Responsible int64 `json:"responsible_user_id"`
			} `json:"contacts"`
		} `json:"_embedded"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&found); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	owner := ""
	if c := found.Embedded.Contacts; len(c) > 0 {
		owner = "u" + strconv.FormatInt(c[0].Responsible%employees, 10)
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"number":"`+sipOf(owner)+`"}`)
}

// stubCRM answers a contact search the way amoCRM does, at once and
// without a rate limit: the best case for the naive CRM design.
func stubCRM(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/hal+json")
	io.WriteString(w, `{"_page":1,"_links":{"self":{"href":"https://example.amocrm.ru/api/v4/contacts?page=1"}},`+
		`"_embedded":{"contacts":[{"id":1001,"name":"Client","responsible_user_id":7,"updated_at":1700000000,`+
		`"custom_fields_values":[{"field_code":"PHONE","values":[{"value":"`+r.URL.Query().Get("query")+`","enum_code":"WORK"}]}]}]}}`)
}

// sipOf is the SIP login of a bench employee.
func sipOf(owner string) string {
	if owner == "" {
		return ""
	}
	return "sip_" + strings.TrimPrefix(owner, "u")
}

// proc is a server child process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	debug   string // router's pprof address (--debug-listen), once logged
	db      string // the router's --db
	started time.Time
	mu      sync.Mutex
	tail    []string // last lines of its output, for failures
	done    chan struct{}
}

// startProc runs cmd, waits for its listening address (a "listening ADDR"
// line, or callrouter's JSON log line) and returns it running.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	addr := make(chan string, 1)
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 40 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			if a, ok := debugAddr(line); ok {
				p.mu.Lock()
				p.debug = a
				p.mu.Unlock()
			}
			if a, ok := listeningAddr(line); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		cmd.Wait() //nolint:errcheck // the exit is reported by stop or the tail
	}()
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("%s exited before listening:\n%s", name, p.output())
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("%s did not listen within 60s:\n%s", name, p.output())
	}
	t.Cleanup(p.kill)
	return p
}

func listeningAddr(line string) (string, bool) {
	if a, ok := strings.CutPrefix(line, "listening "); ok {
		return strings.TrimSpace(a), true
	}
	if !strings.Contains(line, `"listening"`) {
		return "", false
	}
	var l struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" && l.Addr != "" {
		return l.Addr, true
	}
	return "", false
}

func debugAddr(line string) (string, bool) {
	if !strings.Contains(line, `"debug listening"`) {
		return "", false
	}
	var l struct {
		Addr string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &l) == nil && l.Addr != "" {
		return l.Addr, true
	}
	return "", false
}

// profile fetches a CPU profile of d from the router's pprof listener
// into path, in the background; wait on the returned channel.
func (p *proc) profile(d time.Duration, path string) <-chan error {
	done := make(chan error, 1)
	p.mu.Lock()
	addr := p.debug
	p.mu.Unlock()
	go func() {
		if addr == "" {
			done <- fmt.Errorf("%s has no debug listener", p.name)
			return
		}
		c := &http.Client{Timeout: d + 30*time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		done <- err
	}()
	return done
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// stop asks the process to drain and exit (SIGTERM), and kills it after
// 30 s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Errorf("%s did not stop within 30s after SIGTERM", p.name)
	}
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill() //nolint:errcheck // it may have exited
		<-p.done
	}
}

// memory returns the process's resident set now and at its peak, in MB,
// from /proc (Linux).
func (p *proc) memory() (rss, peak float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak, nil
}

// waitReady polls /readyz until it answers 200 and returns how long after
// the process started that was.
func (p *proc) waitReady(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	c := &fasthttp.Client{}
	deadline := time.Now().Add(limit)
	for {
		code, _, err := c.GetTimeout(nil, "http://"+p.addr+"/readyz", time.Second)
		if err == nil && code == http.StatusOK {
			return time.Since(p.started)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v:\n%s", p.name, limit, p.output())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// helper starts one of this binary's baseline servers.
func helper(t *testing.T, kind string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+kind)...)
	return startProc(t, kind, cmd)
}

// httpJSON sends a JSON request and decodes the answer into out (nil: any).
func httpJSON(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
