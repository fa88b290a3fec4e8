package crmtest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback HTTP proxy in front of a fake CRM that makes it
// misbehave the way a real CRM or the network between does: it refuses
// connections (Down), answers canned failures such as 429 storms and 5xx
// (Fail), serves malformed JSON (Garbage), and holds an answer back until
// the test lets it go (HoldAnswer). Configure the integration with its URL
// instead of the fake's. Every request reaching the proxy, failed or
// forwarded, passes its own RateMeter, since a CRM counts the requests it
// refuses against the limit too. It is closed when the test ends; its
// methods are safe for concurrent use.
type Proxy struct {
	t     testing.TB
	addr  string
	rp    *httputil.ReverseProxy
	meter *RateMeter
	stop  chan struct{}

	mu         sync.Mutex
	srv        *http.Server
	closed     bool
	failStatus int
	failN      int
	retryAfter time.Duration
	garbageN   int
	holds      []*Held
	requests   int
}

// NewProxy starts a proxy to the fake CRM at target whose meter allows rps
// requests per second.
func NewProxy(t testing.TB, target string, rps int) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("crmtest: proxy target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("crmtest: proxy listen: %v", err)
	}
	p := &Proxy{t: t, addr: ln.Addr().String(), meter: NewRateMeter(t, rps), stop: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		// Never an environment proxy: the fake is on loopback.
		Transport:      &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 5 * time.Second},
		ModifyResponse: p.modify,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	p.serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		srv := p.srv
		p.mu.Unlock()
		close(p.stop) // releases held answers
		if srv != nil {
			srv.Close()
		}
	})
	return p
}

// serve starts an HTTP server on ln. Callers must not hold mu.
func (p *Proxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: p.meter.Wrap(http.HandlerFunc(p.handle)), ErrorLog: log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Down or cleanup
}

// URL is the base URL to configure the integration with.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Meter counts every request that reached the proxy.
func (p *Proxy) Meter() *RateMeter { return p.meter }

// Requests returns how many requests reached the proxy.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Down closes the listener and every open connection, so the CRM looks
// down: new connections are refused until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Up listens again on the same address after Down.
func (p *Proxy) Up() {
	p.t.Helper()
	p.mu.Lock()
	up := p.srv != nil || p.closed
	p.mu.Unlock()
	if up {
		return
	}
	var ln net.Listener
	var err error
	// The port was just released; the kernel may take a moment to let it go.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("crmtest: proxy listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// Fail makes the next n requests answer status without reaching the CRM,
// with Retry-After in whole seconds when retryAfter > 0 and the short
// HTML body a gateway or an overloaded CRM sends.
func (p *Proxy) Fail(status, n int, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failStatus, p.failN, p.retryAfter = status, n, retryAfter
}

// Garbage makes the next n successful answers of the CRM that have a body
// (not 204) arrive as malformed JSON (cut off mid-object), with their
// status and headers.
func (p *Proxy) Garbage(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.garbageN = n
}

// GarbageBody is what Garbage serves.
const GarbageBody = `{"data":[{"id":"1","phone":"+3806711`

// Held is an answer held back by HoldAnswer.
type Held struct {
	match   func(r *http.Request, body []byte) bool
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

// Held is closed once an answer was caught and is being held.
func (h *Held) Held() <-chan struct{} { return h.held }

// Release lets the held answer go on to the client (at once, if it comes
// later). It may be called more than once.
func (h *Held) Release() { h.once.Do(func() { close(h.release) }) }

// HoldAnswer catches the next answer of the CRM whose body contains marker
// and holds it back until Release, the client giving up, or the test's
// end. The CRM has answered when it is caught, so what it holds is the
// CRM's state of that moment, delivered late.
func (p *Proxy) HoldAnswer(marker string) *Held {
	m := []byte(marker)
	return p.HoldAnswerWhere(func(_ *http.Request, body []byte) bool { return bytes.Contains(body, m) })
}

// HoldAnswerWhere is HoldAnswer for the next answer match accepts, given
// the request and the answer's body.
func (p *Proxy) HoldAnswerWhere(match func(r *http.Request, body []byte) bool) *Held {
	h := &Held{match: match, held: make(chan struct{}), release: make(chan struct{})}
	p.mu.Lock()
	p.holds = append(p.holds, h)
	p.mu.Unlock()
	return h
}

func (p *Proxy) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	status, retry := 0, time.Duration(0)
	if p.failN > 0 {
		p.failN--
		status, retry = p.failStatus, p.retryAfter
	}
	p.mu.Unlock()
	if status != 0 {
		if retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
		return
	}
	p.rp.ServeHTTP(w, r)
}

// modify applies Garbage and HoldAnswer to an answer of the CRM.
func (p *Proxy) modify(resp *http.Response) error {
	p.mu.Lock()
	// 204 and 304 carry no body to garble.
	garbage := p.garbageN > 0 && resp.StatusCode/100 == 2 && resp.StatusCode != http.StatusNoContent
	if garbage {
		p.garbageN--
	}
	holds := len(p.holds) > 0
	p.mu.Unlock()
	if garbage {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // the answer is thrown away
		resp.Body.Close()
		setBody(resp, []byte(GarbageBody))
		return nil
	}
	if !holds {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	setBody(resp, body)
	var h *Held
	p.mu.Lock()
	for i, c := range p.holds {
		if c.match(resp.Request, body) {
			h = c
			p.holds = append(p.holds[:i:i], p.holds[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if h == nil {
		return nil
	}
	close(h.held)
	select {
	case <-h.release:
	case <-resp.Request.Context().Done():
	case <-p.stop:
	}
	return nil
}

func setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
}
