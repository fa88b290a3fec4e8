package bench_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what wrk printed for one run.
type wrkResult struct {
	Throughput float64 // requests/s
	Latency    string  // wrk's own "Latency avg stdev max" line
	Non2xx     int
	SocketErrs string
}

var (
	wrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+Latency\s+(.+)$`)
	wrkNon2xx  = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocket  = regexp.MustCompile(`(?m)^\s+Socket errors:\s+(.+)$`)
)

// wrkPath finds Debian's wrk (make bench installs it when missing).
func wrkPath() (string, error) {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("wrk not found: make bench installs it (apt-get install wrk): %w", err)
	}
	return p, nil
}

// wrkScript writes a Lua script that cycles through uris, so wrk asks for
// the same callers our own load generator does. The ceiling gets the same
// script: its per-request cost in wrk is then the same on both sides of the
// ratio.
func wrkScript(dir string, uris []string) (string, error) {
	var b strings.Builder
	b.WriteString("local uris = {\n")
	for _, u := range uris {
		fmt.Fprintf(&b, "  %q,\n", u)
	}
	b.WriteString("}\nlocal n = #uris\nlocal i = 0\n")
	b.WriteString("request = function()\n  i = i % n + 1\n  return wrk.format(\"GET\", uris[i])\nend\n")
	path := filepath.Join(dir, "cycle.lua")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// runWrk runs wrk against a loopback address for d with 2 threads and conns
// connections; close adds "Connection: close" so every request opens its own
// connection.
func runWrk(bin, addr, script string, d time.Duration, conns int, close bool) (wrkResult, error) {
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return wrkResult{}, fmt.Errorf("wrk: %s is not a loopback address", addr)
	}
	args := []string{"-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(int(d.Seconds()), 1)),
		"--timeout", "5s", "-s", script}
	if close {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, "http://"+addr+"/")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no Requests/sec in its output:\n%s", out)
	}
	r.Throughput, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkLatency.FindStringSubmatch(out); m != nil {
		r.Latency = strings.Join(strings.Fields(m[1]), " ")
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.Atoi(m[1])
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		r.SocketErrs = strings.TrimSpace(m[1])
	}
	return r, nil
}
