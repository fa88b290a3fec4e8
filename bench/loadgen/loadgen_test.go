package loadgen

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// countingListener counts accepted connections, to tell keep-alive from Connection: close.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// startServer serves h on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, h fasthttp.RequestHandler) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 5 * time.Second, CloseOnShutdown: true}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(cl) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), cl
}

// startHangingServer accepts connections and never answers.
func startHangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// countAtLeast is the number of recorded latencies of at least d.
func countAtLeast(h *hdrhistogram.Histogram, d time.Duration) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.From >= d.Microseconds() {
			n += b.Count
		}
	}
	return n
}

func TestClosedLoopCountsStatusAndRequest(t *testing.T) {
	var served, badRequest atomic.Int64
	addr, _ := startServer(t, func(ctx *fasthttp.RequestCtx) {
		served.Add(1)
		if !ctx.IsPost() || string(ctx.Request.Header.Peek("X-Bench")) != "yes" || string(ctx.PostBody()) != "hello" {
			badRequest.Add(1)
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			return
		}
		switch string(ctx.Path()) {
		case "/ok":
			ctx.SetBodyString("fine")
		case "/bad":
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		default:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		}
	})
	res, err := Run(t.Context(), Config{
		Name: "closed",
		Addr: addr,
		Request: func(i uint64, req *fasthttp.Request) {
			req.Header.SetMethod(fasthttp.MethodPost)
			if i%4 == 3 {
				req.SetRequestURI("/bad")
			} else {
				req.SetRequestURI("/ok?x=1")
			}
			req.Header.Set("X-Bench", "yes")
			req.SetBodyString("hello")
		},
		KeepAlive:   true,
		Duration:    300 * time.Millisecond,
		Warmup:      50 * time.Millisecond,
		Concurrency: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Closed || res.Name != "closed" || res.Concurrency != 4 {
		t.Errorf("result header = %+v", res)
	}
	if badRequest.Load() != 0 {
		t.Errorf("server saw %d requests without the method, header or body set by RequestFunc", badRequest.Load())
	}
	if res.Requests < 20 {
		t.Fatalf("only %d requests in 300 ms", res.Requests)
	}
	if got := uint64(served.Load()); got < res.Requests {
		t.Errorf("server handled %d requests, result claims %d", got, res.Requests)
	}
	if res.Status[200]+res.Status[503] != res.Requests || res.Status[503] == 0 || res.Status[200] == 0 {
		t.Errorf("status = %v, requests = %d", res.Status, res.Requests)
	}
	if res.Errors != res.Status[503] || res.Timeouts != 0 {
		t.Errorf("errors = %d, timeouts = %d, want %d 503s and no timeouts", res.Errors, res.Timeouts, res.Status[503])
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != "unexpected status 503" {
		t.Errorf("error samples = %q", res.ErrorSamples)
	}
	if got := res.Hist.TotalCount(); got != int64(res.Requests) {
		t.Errorf("histogram holds %d values, want %d", got, res.Requests)
	}
	if res.Elapsed != 300*time.Millisecond {
		t.Errorf("elapsed = %v", res.Elapsed)
	}
	if want := float64(res.Requests-res.Errors) / res.Elapsed.Seconds(); res.Throughput != want {
		t.Errorf("throughput = %v, want %v", res.Throughput, want)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || len(res.Percentiles) != len(PlotPercentiles) {
		t.Errorf("p50 %v p99 %v max %v, %d points", res.P50, res.P99, res.Max, len(res.Percentiles))
	}
	for i := 1; i < len(res.Percentiles); i++ {
		if res.Percentiles[i].Latency < res.Percentiles[i-1].Latency {
			t.Errorf("percentile curve not monotonic: %v", res.Percentiles)
		}
	}
}

func TestCheckFuncJudgesResponses(t *testing.T) {
	addr, _ := startServer(t, func(ctx *fasthttp.RequestCtx) {
		if n, _ := ctx.QueryArgs().GetUint("n"); n%2 == 0 {
			ctx.SetBodyString("good")
		} else {
			ctx.SetBodyString("evil")
		}
	})
	res, err := Run(t.Context(), Config{
		Addr: addr,
		Request: func(i uint64, req *fasthttp.Request) {
			req.SetRequestURI("/?n=" + strconv.FormatUint(i, 10))
		},
		Check: func(resp *fasthttp.Response) error {
			if string(resp.Body()) != "good" {
				return errors.New("bad body")
			}
			return nil
		},
		KeepAlive:   true,
		Duration:    200 * time.Millisecond,
		Concurrency: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 10 || res.Errors == 0 || res.Errors == res.Requests || res.Status[200] != res.Requests {
		t.Errorf("requests %d errors %d status %v", res.Requests, res.Errors, res.Status)
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != "bad body" {
		t.Errorf("samples = %q", res.ErrorSamples)
	}
}

func TestOpenLoopRate(t *testing.T) {
	addr, _ := startServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	const rate, dur = 400.0, time.Second
	res, err := Run(t.Context(), Config{
		Addr:        addr,
		KeepAlive:   true,
		Duration:    dur,
		Warmup:      100 * time.Millisecond,
		Concurrency: 8,
		Rate:        rate,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := rate * dur.Seconds()
	if got := float64(res.Requests); got < 0.5*want || got > 1.1*want {
		t.Errorf("requests = %v, want about %v", got, want)
	}
	if res.Closed || res.Rate != rate || res.Errors != 0 {
		t.Errorf("closed %v rate %v errors %d %q", res.Closed, res.Rate, res.Errors, res.ErrorSamples)
	}
	if res.AchievedRate < 0.5*rate || res.AchievedRate > 1.1*rate {
		t.Errorf("achieved rate = %v", res.AchievedRate)
	}
}

// stallingHandler answers at once except that, from the n-th request on, every request waits until
// 200 ms after the n-th arrived: one server-wide pause, as a GC or lock stall would cause.
func stallingHandler(n int64) fasthttp.RequestHandler {
	var count, until atomic.Int64
	return func(ctx *fasthttp.RequestCtx) {
		if count.Add(1) == n {
			until.Store(time.Now().Add(200 * time.Millisecond).UnixNano())
		}
		if d := time.Until(time.Unix(0, until.Load())); d > 0 {
			time.Sleep(d)
		}
	}
}

func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	addr, _ := startServer(t, stallingHandler(100))
	res, err := Run(t.Context(), Config{
		Addr:        addr,
		KeepAlive:   true,
		Duration:    time.Second,
		Concurrency: 4,
		Rate:        500,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests fall due during the 200 ms stall; those in its first half wait ≥ 100 ms.
	slow := countAtLeast(res.Hist, 100*time.Millisecond)
	if slow < 25 {
		t.Errorf("open loop recorded %d requests ≥ 100 ms (p99 %v, max %v); the stall was omitted", slow, res.P99, res.Max)
	}
	if res.Max < 150*time.Millisecond || res.P99 < 100*time.Millisecond {
		t.Errorf("p99 %v max %v, want the stall visible", res.P99, res.Max)
	}
	if res.Queued < 25 || res.Errors != 0 {
		t.Errorf("queued %d errors %d", res.Queued, res.Errors)
	}

	// The same stall seen by one closed-loop worker is a single slow request.
	addr, _ = startServer(t, stallingHandler(100))
	res, err = Run(t.Context(), Config{
		Addr:        addr,
		KeepAlive:   true,
		Duration:    500 * time.Millisecond,
		Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if slow := countAtLeast(res.Hist, 100*time.Millisecond); slow < 1 || slow > 2 {
		t.Errorf("closed loop recorded %d requests ≥ 100 ms, want the one stalled request", slow)
	}
}

func TestRejectsNonLoopbackWithoutConnecting(t *testing.T) {
	for _, addr := range []string{"10.1.2.3:80", "example.com:80", "0.0.0.0:80", "[2001:db8::1]:80", "192.168.0.1:8080",
		"127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:80,10.1.2.3:80", ""} {
		called := false
		_, err := Run(t.Context(), Config{
			Addr:        addr,
			Request:     func(uint64, *fasthttp.Request) { called = true },
			Duration:    time.Second,
			Concurrency: 1,
		})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Run(%q) error = %v, want ErrNotLoopback", addr, err)
		}
		if called {
			t.Errorf("Run(%q) built a request", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:80", "127.1.2.3:8080", "[::1]:80", "localhost:80", "LocalHost:1", "[::ffff:127.0.0.1]:80"} {
		if err := checkLoopbackAddr(addr); err != nil {
			t.Errorf("checkLoopbackAddr(%q) = %v, want nil", addr, err)
		}
	}
	// The dial hook is the second line of defence, for names that resolve elsewhere.
	for addr, ok := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "10.1.2.3:80": false, "[2001:db8::1]:443": false} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v", addr, err)
		}
	}
}

func TestRejectsInvalidConfig(t *testing.T) {
	base := Config{Addr: "127.0.0.1:9", Duration: time.Second, Concurrency: 1}
	for name, mod := range map[string]func(*Config){
		"no duration":     func(c *Config) { c.Duration = 0 },
		"long duration":   func(c *Config) { c.Duration = 11 * time.Minute },
		"negative warmup": func(c *Config) { c.Warmup = -time.Second },
		"no workers":      func(c *Config) { c.Concurrency = 0 },
		"too many":        func(c *Config) { c.Concurrency = MaxConcurrency + 1 },
		"negative rate":   func(c *Config) { c.Rate = -1 },
		"NaN rate":        func(c *Config) { c.Rate = nan() },
		"negative tmo":    func(c *Config) { c.Timeout = -time.Second },
	} {
		cfg := base
		mod(&cfg)
		if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestConnectionCloseOpensNewConnections(t *testing.T) {
	var served atomic.Int64
	h := func(ctx *fasthttp.RequestCtx) { served.Add(1) }

	addr, ln := startServer(t, h)
	res, err := Run(t.Context(), Config{Addr: addr, KeepAlive: false, Duration: 200 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 10 || res.Errors != 0 {
		t.Fatalf("requests %d errors %d %q", res.Requests, res.Errors, res.ErrorSamples)
	}
	if got, want := ln.accepted.Load(), served.Load(); got != want {
		t.Errorf("Connection: close: %d connections for %d requests, want one each", got, want)
	}

	served.Store(0)
	addr, ln = startServer(t, h)
	res, err = Run(t.Context(), Config{Addr: addr, KeepAlive: true, Duration: 200 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 10 || ln.accepted.Load() > 3 {
		t.Errorf("keep-alive: %d connections for %d requests", ln.accepted.Load(), res.Requests)
	}
}

func TestHangingServerIsBounded(t *testing.T) {
	for _, rate := range []float64{0, 100} {
		addr := startHangingServer(t)
		const dur, timeout = 300 * time.Millisecond, 200 * time.Millisecond
		began := time.Now()
		res, err := Run(t.Context(), Config{Addr: addr, KeepAlive: true, Duration: dur, Concurrency: 2, Rate: rate, Timeout: timeout})
		took := time.Since(began)
		if err != nil {
			t.Fatal(err)
		}
		if limit := dur + timeout + stopSlack + time.Second; took > limit {
			t.Errorf("rate %v: Run took %v, bound %v", rate, took, limit)
		}
		if res.Requests == 0 || res.Errors != res.Requests || res.Timeouts != res.Errors {
			t.Errorf("rate %v: requests %d errors %d timeouts %d %q", rate, res.Requests, res.Errors, res.Timeouts, res.ErrorSamples)
		}
		if res.Max < timeout || res.P50 < timeout {
			t.Errorf("rate %v: p50 %v max %v, want timeouts recorded at %v", rate, res.P50, res.Max, timeout)
		}
		if rate > 0 && !hasWarning(res, "workers were busy") {
			t.Errorf("rate %v: warnings %q, want the queueing reported", rate, res.Warnings)
		}
	}
}

func TestCancelAbortsPromptly(t *testing.T) {
	addr := startHangingServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	began := time.Now()
	res, err := Run(ctx, Config{Addr: addr, KeepAlive: true, Duration: time.Minute, Concurrency: 2, Timeout: 30 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("cancelled Run took %v", took)
	}
	if res.Elapsed >= time.Minute || res.Errors != 0 || !hasWarning(res, "cancelled") {
		t.Errorf("elapsed %v errors %d warnings %q", res.Elapsed, res.Errors, res.Warnings)
	}
}

func hasWarning(res Result, sub string) bool {
	for _, w := range res.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
