// Package loadgen is the HTTP load generator of the benchmark suite: closed-loop runs (N workers at
// maximum throughput) and open-loop runs at a fixed request rate with wrk2-style coordinated-omission
// correction, both on the fasthttp client and against loopback addresses only.
//
// Latencies are recorded per worker into HdrHistograms (microsecond resolution, three significant
// digits) without locks and merged when the run ends.
//
// Open-loop latency origin: request n is due at start + n/Rate. When it falls due while every
// worker is busy, its latency (and its timeout) runs from that intended start, so a server stall
// shows up in every request that queued behind it; if it waits past its timeout it is recorded as a
// timeout without being sent. When a worker was idle and waiting for it, latency runs from the
// actual send instead, because Go timers wake up to ~1 ms late on an idle machine and that lag is
// the generator's, not the server's. Give open-loop runs enough workers (Concurrency well above
// Rate × expected latency) so that queueing reflects the server, and check Result.Warnings.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Limits and defaults of a run.
const (
	// MaxDuration bounds Config.Duration and Config.Warmup each.
	MaxDuration = 10 * time.Minute
	// MaxConcurrency bounds Config.Concurrency; every worker owns a histogram of ~100 KB.
	MaxConcurrency = 1024
	// MaxRate bounds Config.Rate in requests per second.
	MaxRate = 10_000_000
	// DefaultTimeout is the per-request timeout when Config.Timeout is zero.
	DefaultTimeout = time.Second
	// MaxTimeout bounds Config.Timeout.
	MaxTimeout = time.Minute
	// QueuedThreshold is how late an open-loop request must be due before a worker was free to
	// count in Result.Queued; below it the delay is scheduling noise.
	QueuedThreshold = time.Millisecond
	// maxErrorSamples is the number of distinct error texts kept in Result.ErrorSamples.
	maxErrorSamples = 5
	// stopSlack is how long Run waits past Warmup+Duration+Timeout before it aborts the
	// connections itself; fasthttp's own deadlines should always have fired by then.
	stopSlack = 500 * time.Millisecond
)

// PlotPercentiles are the percentiles reported in Result.Percentiles.
var PlotPercentiles = []float64{0, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99, 99.995, 99.999, 100}

// ErrNotLoopback is returned by Run when Config.Addr is not a loopback address; the benchmark
// suite must never generate load against another machine.
var ErrNotLoopback = errors.New("loadgen: address is not a loopback address")

// ErrInvalidConfig is wrapped by every configuration error Run returns.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// errQueueTimeout is the error of an open-loop request whose deadline passed while it waited for a
// free worker; it was never sent.
var errQueueTimeout = errors.New("timeout: deadline passed while waiting for a free worker (raise Concurrency)")

// errAborted is returned by the dialer once Run has closed all connections.
var errAborted = errors.New("loadgen: run aborted")

// RequestFunc fills req (method, URI path+query, headers, body) for the i-th request of a run.
// The Host header is preset to Config.Addr. It is called concurrently from many goroutines and
// must not keep req.
type RequestFunc func(i uint64, req *fasthttp.Request)

// CheckFunc judges a response; a non-nil error counts the request as an error (its text is
// sampled). A nil CheckFunc accepts any 2xx status. It is called concurrently and must not keep
// resp.
type CheckFunc func(resp *fasthttp.Response) error

// Config describes one run.
type Config struct {
	Name string
	// Addr is "host:port"; it must be a loopback address (127.0.0.0/8, ::1, or "localhost"),
	// anything else is rejected before any request. Connections are also refused at dial time
	// if the resolved address is not loopback.
	Addr string
	// Request fills each request; nil sends GET /.
	Request RequestFunc
	// Check judges each response; nil accepts any 2xx.
	Check CheckFunc
	// KeepAlive false: every request carries "Connection: close" and uses a new TCP connection.
	KeepAlive bool
	// Duration is the measured run length; required, > 0, at most MaxDuration.
	Duration time.Duration
	// Warmup runs first and is not recorded; at most MaxDuration.
	Warmup time.Duration
	// Concurrency is, in a closed loop, the number of workers each doing request→response→next;
	// in an open loop the maximum number of requests in flight. 1..MaxConcurrency.
	Concurrency int
	// Rate 0 runs a closed loop (maximum throughput); > 0 an open loop at this many requests
	// per second, at most MaxRate.
	Rate float64
	// Timeout is per request (default DefaultTimeout, at most MaxTimeout); a timed-out request is
	// an error and recorded at its timeout.
	Timeout time.Duration
}

// Result is the outcome of one run. All counts and latencies cover the measured window only: a
// request belongs to it when its (intended, in an open loop) start time falls within it.
type Result struct {
	Name        string
	Closed      bool    // closed-loop run
	Rate        float64 // target rate (open loop)
	Concurrency int
	KeepAlive   bool
	// Requests completed in the measured window, successes + errors. In an open loop every
	// scheduled request is counted, also those that expired waiting for a worker.
	Requests     uint64
	Errors       uint64
	Timeouts     uint64   // errors that were timeouts (a subset of Errors)
	ErrorSamples []string // up to 5 distinct error texts
	Status       map[int]uint64
	// Queued counts open-loop requests that became due while every worker was busy and therefore
	// started more than QueuedThreshold late; that wait is part of their latency.
	Queued uint64
	// Elapsed is the length of the measured window; shorter than Config.Duration only when the
	// run was cancelled.
	Elapsed time.Duration
	// Throughput is successful responses per second in the measured window.
	Throughput float64
	// AchievedRate is requests actually sent per second in the measured window; in an open loop
	// it falls short of Rate when the workers could not keep up (see Warnings).
	AchievedRate             float64
	P50, P90, P99, P999, Max time.Duration
	// Percentiles is latency by percentile for plotting, at PlotPercentiles.
	Percentiles []Point
	// Hist holds every recorded latency in microseconds, errors included (timeouts at the
	// timeout).
	Hist *hdrhistogram.Histogram
	// Warnings are human-readable remarks on the validity of the run: a missed target rate,
	// queueing for workers, errors, an aborted run.
	Warnings []string
}

// Point is the latency at one percentile (0..100).
type Point struct {
	Percentile float64
	Latency    time.Duration
}

// Run generates load as cfg describes and returns what it measured. It returns an error wrapping
// ErrInvalidConfig or ErrNotLoopback, without sending anything, when cfg is invalid. It returns
// within about Warmup+Duration+Timeout even when the server hangs. When ctx is cancelled it aborts
// the requests in flight (they are not recorded) and returns the partial result together with an
// error wrapping the context's cause.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Result{Name: cfg.Name}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{Name: cfg.Name}, fmt.Errorf("loadgen: run %q: %w", cfg.Name, context.Cause(ctx))
	}

	conns := &connSet{conns: make(map[*trackedConn]struct{})}
	hc := &fasthttp.HostClient{
		Addr:                      cfg.Addr,
		Name:                      "callrouter-loadgen",
		DialTimeout:               conns.dial,
		MaxConns:                  cfg.Concurrency + 1,
		MaxConnWaitTimeout:        cfg.Timeout,
		MaxIdemponentCallAttempts: 1, // a retry would hide an error and skew the latency
		ReadBufferSize:            16 << 10,
		DisablePathNormalizing:    true,
	}
	defer func() {
		conns.closeAll()
		hc.CloseIdleConnections()
	}()

	r := &run{cfg: cfg, hc: hc, stopCh: make(chan struct{})}
	if cfg.Check == nil {
		r.check = check2xx
	} else {
		r.check = cfg.Check
	}
	if cfg.Rate > 0 {
		r.interval = float64(time.Second) / cfg.Rate
	}
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = newWorker(cfg.Timeout)
	}
	defer func() {
		for _, w := range workers {
			w.release()
		}
	}()

	r.start = time.Now()
	r.warmEnd = r.start.Add(cfg.Warmup)
	r.end = r.warmEnd.Add(cfg.Duration)

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if cfg.Rate > 0 {
				w.openLoop(r)
			} else {
				w.closedLoop(r)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	hard := time.NewTimer(time.Until(r.end.Add(cfg.Timeout + stopSlack)))
	defer hard.Stop()
	var (
		runErr    error
		stoppedAt time.Time
		warnings  []string
	)
	select {
	case <-done:
	case <-ctx.Done():
		stoppedAt = time.Now()
		r.cancelled.Store(true)
		r.stop()
		conns.closeAll()
		<-done
		runErr = fmt.Errorf("loadgen: run %q: %w", cfg.Name, context.Cause(ctx))
	case <-hard.C:
		// fasthttp's deadlines should have ended every request by now; closing the connections
		// makes the bound hold regardless. Requests cut off here are recorded as errors.
		r.stop()
		conns.closeAll()
		<-done
		warnings = append(warnings, fmt.Sprintf("run overran Warmup+Duration+Timeout by %v; in-flight requests were aborted", stopSlack))
	}

	res := r.result(workers, stoppedAt)
	res.Warnings = append(warnings, res.Warnings...)
	return res, runErr
}

// normalize applies defaults and validates; it returns an error wrapping ErrInvalidConfig or
// ErrNotLoopback.
func (cfg Config) normalize() (Config, error) {
	if err := checkLoopbackAddr(cfg.Addr); err != nil {
		return cfg, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return cfg, fmt.Errorf("%w: Duration %v must be in (0, %v]", ErrInvalidConfig, cfg.Duration, MaxDuration)
	case cfg.Warmup < 0 || cfg.Warmup > MaxDuration:
		return cfg, fmt.Errorf("%w: Warmup %v must be in [0, %v]", ErrInvalidConfig, cfg.Warmup, MaxDuration)
	case cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency:
		return cfg, fmt.Errorf("%w: Concurrency %d must be in [1, %d]", ErrInvalidConfig, cfg.Concurrency, MaxConcurrency)
	case math.IsNaN(cfg.Rate) || cfg.Rate < 0 || cfg.Rate > MaxRate:
		return cfg, fmt.Errorf("%w: Rate %v must be 0 (closed loop) or in (0, %d]", ErrInvalidConfig, cfg.Rate, MaxRate)
	case cfg.Timeout < 0 || cfg.Timeout > MaxTimeout:
		return cfg, fmt.Errorf("%w: Timeout %v must be in (0, %v]", ErrInvalidConfig, cfg.Timeout, MaxTimeout)
	}
	if cfg.Request == nil {
		cfg.Request = getRoot
	}
	return cfg, nil
}

func getRoot(_ uint64, req *fasthttp.Request) { req.SetRequestURI("/") }

// checkLoopbackAddr returns an error wrapping ErrNotLoopback unless addr is host:port with a
// loopback IP or "localhost" as host and a valid port.
func checkLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrNotLoopback, addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w: %q: bad port", ErrNotLoopback, addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// loopbackOnly is a net.Dialer Control hook: it sees the resolved address just before connect, so
// a name that resolves elsewhere is refused without a packet leaving the machine.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("%w: resolved to %s", ErrNotLoopback, address)
	}
	return nil
}

func check2xx(resp *fasthttp.Response) error {
	if code := resp.StatusCode(); code < 200 || code > 299 {
		return fmt.Errorf("unexpected status %d", code)
	}
	return nil
}

// run is the state shared by the workers of one Run; the hot path only reads it, apart from the
// request counter.
type run struct {
	cfg      Config
	hc       *fasthttp.HostClient
	check    CheckFunc
	interval float64 // open loop: nanoseconds between intended starts

	start, warmEnd, end time.Time

	next      atomic.Uint64 // index of the next request to claim
	stopped   atomic.Bool
	cancelled atomic.Bool // requests failing after this are aborted by us, not by the server
	stopOnce  sync.Once
	stopCh    chan struct{}
}

func (r *run) stop() {
	r.stopOnce.Do(func() {
		r.stopped.Store(true)
		close(r.stopCh)
	})
}

// intended is the scheduled start of open-loop request n.
func (r *run) intended(n uint64) time.Time {
	return r.start.Add(time.Duration(float64(n) * r.interval))
}

// worker owns everything it writes, so recording needs no lock; Run reads it after the worker
// has finished.
type worker struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	hist *hdrhistogram.Histogram
	maxU int64 // highest trackable latency in µs

	requests, errors, timeouts, queued, sent uint64

	status      [600]uint64
	otherStatus map[int]uint64
	samples     []string
}

func newWorker(timeout time.Duration) *worker {
	// Headroom above the timeout for a response that lands just after its deadline.
	maxU := (2*timeout + time.Second).Microseconds()
	return &worker{
		req:  fasthttp.AcquireRequest(),
		resp: fasthttp.AcquireResponse(),
		hist: hdrhistogram.New(1, maxU, 3),
		maxU: maxU,
	}
}

func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
	w.req, w.resp = nil, nil
}

// prepare resets the worker's request and lets the config fill it.
func (w *worker) prepare(r *run, n uint64) {
	req := w.req
	req.Reset()
	req.Header.SetHost(r.cfg.Addr)
	r.cfg.Request(n, req)
	if !r.cfg.KeepAlive {
		req.SetConnectionClose()
	}
}

func (w *worker) closedLoop(r *run) {
	for !r.stopped.Load() {
		if !time.Now().Before(r.end) {
			return
		}
		n := r.next.Add(1) - 1
		w.prepare(r, n)
		begin := time.Now()
		err := r.hc.DoDeadline(w.req, w.resp, begin.Add(r.cfg.Timeout))
		lat := time.Since(begin)
		if begin.Before(r.warmEnd) || !begin.Before(r.end) {
			continue
		}
		w.sent++
		w.record(r, lat, err)
	}
}

// openLoop claims requests in schedule order. A worker that claims a request before it is due
// waits for its intended start; one that claims an overdue request (every worker was busy when it
// fell due) sends it at once and counts the wait as latency, which is the coordinated-omission
// correction. The deadline runs from the same origin as the latency.
func (w *worker) openLoop(r *run) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for !r.stopped.Load() {
		n := r.next.Add(1) - 1
		intended := r.intended(n)
		if !intended.Before(r.end) {
			return
		}
		measured := !intended.Before(r.warmEnd)
		wait := time.Until(intended)
		idle := wait > 0
		if idle {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-r.stopCh:
				return
			}
		} else {
			if measured && -wait > QueuedThreshold {
				w.queued++
			}
			if -wait >= r.cfg.Timeout {
				if measured {
					w.record(r, r.cfg.Timeout, errQueueTimeout)
				}
				continue
			}
		}
		w.prepare(r, n)
		sendAt := time.Now()
		origin := intended
		if idle {
			// The worker was waiting for this request, so any lateness now is the generator's
			// own timer lag (Go timers may wake ~1 ms late on an idle machine), not the
			// server's: start the clock at the actual send.
			origin = sendAt
		}
		err := r.hc.DoDeadline(w.req, w.resp, origin.Add(r.cfg.Timeout))
		lat := time.Since(origin)
		if !measured {
			continue
		}
		if sendAt.Before(r.end) {
			w.sent++
		}
		w.record(r, lat, err)
	}
}

// record accounts one finished request of the measured window. err is the transport error; a
// response is judged by the check.
func (w *worker) record(r *run, lat time.Duration, err error) {
	if err != nil && r.cancelled.Load() {
		return // aborted by the cancellation, says nothing about the server
	}
	switch {
	case err == nil:
		code := w.resp.StatusCode()
		if code >= 0 && code < len(w.status) {
			w.status[code]++
		} else {
			if w.otherStatus == nil {
				w.otherStatus = make(map[int]uint64)
			}
			w.otherStatus[code]++
		}
		err = r.check(w.resp)
	case isTimeout(err):
		w.timeouts++
		lat = r.cfg.Timeout
	}
	w.requests++
	if err != nil {
		w.errors++
		w.sample(err)
	}
	us := lat.Microseconds()
	if us > w.maxU {
		us = w.maxU
	} else if us < 0 {
		us = 0
	}
	_ = w.hist.RecordValue(us) // cannot fail: us is within the histogram's range
}

func (w *worker) sample(err error) {
	if len(w.samples) >= maxErrorSamples {
		return
	}
	text := err.Error()
	for _, s := range w.samples {
		if s == text {
			return
		}
	}
	w.samples = append(w.samples, text)
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, errQueueTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// result merges the workers' records. stoppedAt is the cancellation time, zero for a full run.
func (r *run) result(workers []*worker, stoppedAt time.Time) Result {
	cfg := r.cfg
	res := Result{
		Name:        cfg.Name,
		Closed:      cfg.Rate == 0,
		Rate:        cfg.Rate,
		Concurrency: cfg.Concurrency,
		KeepAlive:   cfg.KeepAlive,
		Status:      make(map[int]uint64),
		Elapsed:     cfg.Duration,
	}
	if !stoppedAt.IsZero() {
		res.Elapsed = min(max(stoppedAt.Sub(r.warmEnd), 0), cfg.Duration)
	}
	var sent uint64
	res.Hist = hdrhistogram.New(1, workers[0].maxU, 3)
	for _, w := range workers {
		res.Hist.Merge(w.hist)
		res.Requests += w.requests
		res.Errors += w.errors
		res.Timeouts += w.timeouts
		res.Queued += w.queued
		sent += w.sent
		for code, c := range w.status {
			if c > 0 {
				res.Status[code] += c
			}
		}
		for code, c := range w.otherStatus {
			res.Status[code] += c
		}
		for _, s := range w.samples {
			if len(res.ErrorSamples) < maxErrorSamples && !contains(res.ErrorSamples, s) {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
	}
	if secs := res.Elapsed.Seconds(); secs > 0 {
		res.Throughput = float64(res.Requests-res.Errors) / secs
		res.AchievedRate = float64(sent) / secs
	}
	q := res.Hist.ValueAtPercentilesSlice(PlotPercentiles)
	res.Percentiles = make([]Point, len(PlotPercentiles))
	for i, p := range PlotPercentiles {
		res.Percentiles[i] = Point{Percentile: p, Latency: time.Duration(q[i]) * time.Microsecond}
	}
	at := func(p float64) time.Duration {
		return time.Duration(res.Hist.ValueAtPercentile(p)) * time.Microsecond
	}
	res.P50, res.P90, res.P99, res.P999 = at(50), at(90), at(99), at(99.9)
	if res.Requests > 0 {
		res.Max = time.Duration(res.Hist.Max()) * time.Microsecond
	}

	if !res.Closed && res.Elapsed > 0 && res.AchievedRate < 0.95*cfg.Rate {
		res.Warnings = append(res.Warnings, fmt.Sprintf("achieved rate %.0f req/s is %.0f%% of the target %.0f req/s",
			res.AchievedRate, 100*res.AchievedRate/cfg.Rate, cfg.Rate))
	}
	if res.Queued > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d of %d requests (%.2f%%) fell due while all %d workers were busy; their wait counts as latency",
			res.Queued, res.Requests, 100*float64(res.Queued)/float64(res.Requests), cfg.Concurrency))
	}
	if res.Errors > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d of %d requests failed (%d timeouts): %s",
			res.Errors, res.Requests, res.Timeouts, strings.Join(res.ErrorSamples, "; ")))
	}
	if !stoppedAt.IsZero() {
		res.Warnings = append(res.Warnings, fmt.Sprintf("run cancelled after %v of %v measured", res.Elapsed, cfg.Duration))
	}
	return res
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// connSet tracks the live connections of a run so that a cancellation can cut off requests that
// are blocked on a hanging server.
type connSet struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// dial connects to a loopback address only; it fails with errAborted once the set is closed.
func (s *connSet) dial(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, Control: loopbackOnly}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.Close()
		return nil, errAborted
	}
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc, nil
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*trackedConn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set *connSet
}

// Close forgets the connection and closes it.
func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}
