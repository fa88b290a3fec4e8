package httpapi

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// rssKiB reads a field (VmRSS, VmHWM) of /proc/self/status in KiB.
func rssKiB(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			n, _ := strconv.Atoi(string(bytes.Fields(v)[0]))
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestBigBodyAttackRSS measures the resident set of the process while 8
// connections each send a 64 MiB body to an unknown tenant's route, with
// the server as it was (bodies read whole before the handler) and as it
// is (streamed, never read). It only reports figures (docs/security.md);
// run it alone: BIGBODY_RSS=1 go test -run TestBigBodyAttackRSS -v.
func TestBigBodyAttackRSS(t *testing.T) {
	if os.Getenv("BIGBODY_RSS") == "" {
		t.Skip("set BIGBODY_RSS=1 to measure")
	}
	const conns, size = 8, 64 << 20
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	attack := func(t *testing.T, stream bool) (peakKiB, baseKiB int) {
		h := newHardEnv(t, openSQLite(t), 30*time.Second)
		runtime.GC()
		debug.FreeOSMemory()
		baseKiB = rssKiB(t, "VmRSS")
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			peak = baseKiB
		)
		// The streamed server is h's; the old one is the same handler with
		// fasthttp's default of reading bodies before the handler.
		addr := h.addr
		if !stream {
			hs := NewFastHTTP(h.srv.Handler, zap.NewNop())
			hs.StreamRequestBody = false
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
			defer hs.Shutdown()
			addr = ln.Addr().String()
		}
		start := make(chan struct{})
		for range conns {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				<-start
				_, _ = c.Write([]byte("POST /pbx/nobody/route HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"))
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						break // the server closed: it does not want the body
					}
				}
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, _ = bufio.NewReader(c).ReadString('\n')
				mu.Lock()
				peak = max(peak, rssKiB(t, "VmRSS"))
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return peak, baseKiB
	}
	peak, base := attack(t, true)
	t.Logf("streamed (now): RSS %d MiB before, %d MiB at the peak: +%d MiB", base>>10, peak>>10, (peak-base)>>10)
	peak, base = attack(t, false)
	t.Logf("read before the handler (before): RSS %d MiB before, %d MiB at the peak: +%d MiB", base>>10, peak>>10, (peak-base)>>10)
}
