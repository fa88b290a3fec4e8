package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestRestartRefusesNothing restarts a single instance the way the README's
// recipe does (a new process bound with --reuseport on the same address,
// then SIGTERM to the old one) under a steady load of route requests, each
// on a connection of its own, and checks that no request was refused or
// failed, on both store backends.
func TestRestartRefusesNothing(t *testing.T) {
	t.Parallel()
	migrateQueuedConnections(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel() // a process, a port and a database of its own
			db := t.TempDir() + "/router.db"
			if backend == "postgres" {
				db = postgresDB(t)
			}
			restartUnderLoad(t, db)
		})
	}
}

// migrateQueuedConnections turns on Linux's tcp_migrate_req for the test,
// as the README's restart recipe does in production: without it, the
// connections the kernel queued on the old process's listener in the last
// instant before it closes are reset instead of handed to the successor.
// The previous value is restored after the test.
func migrateQueuedConnections(t *testing.T) {
	const path = "/proc/sys/net/ipv4/tcp_migrate_req"
	old, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("this kernel cannot migrate queued connections (%v); the restart recipe needs Linux ≥ 5.14", err)
	}
	if strings.TrimSpace(string(old)) == "1" {
		return
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		t.Skipf("cannot set %s (needs root): %v", path, err)
	}
	t.Cleanup(func() { _ = os.WriteFile(path, old, 0o644) })
}

func restartUnderLoad(t *testing.T, db string) {
	args := []string{"--listen", "127.0.0.1:0", "--db", db, "--admin-token", "restart-token",
		"--secret-key", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		"--reuseport", "--drain-delay", "1s", "--shutdown-timeout", "5s"}
	base, old := startProcess(t, args, gracefulHelperEnv+"=1")
	secret := adminCLI(t, base, "restart-token", "create-tenant", "acme", "default_country=UA", "on_miss=default_owner")["webhook_secret"].(string)
	adminCLI(t, base, "restart-token", "put-employee", "acme", "900", "--sip", "senior_sip")
	adminCLI(t, base, "restart-token", "set-default-owner", "acme", "900")
	addr := base[len("http://"):]

	// Every request on a new connection: a refused connect shows at once.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}}
	const perSecond = 2000
	lim := rate.NewLimiter(perSecond, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent, ok atomic.Int64
	var failMu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lim.Wait(ctx) == nil {
				n := sent.Add(1)
				resp, err := client.Get(fmt.Sprintf("%s/pbx/acme/route?key=%s&caller=38067%07d", base, secret, n))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						return // the run ended while this request was in flight
					}
					failMu.Lock()
					failures = append(failures, err.Error())
					failMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("load running", func() bool { return ok.Load() > perSecond/2 })

	// The successor binds the same address while the old process serves.
	newArgs := append([]string(nil), args...)
	newArgs[1] = addr
	startProcess(t, newArgs, gracefulHelperEnv+"=1")
	before := ok.Load()
	wait("load on both processes", func() bool { return ok.Load() > before+perSecond/2 })
	if err := old.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- old.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("old process: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("old process did not stop within 30s of SIGTERM")
	}
	after := ok.Load()
	wait("load on the successor alone", func() bool { return ok.Load() > after+perSecond })
	cancel()
	wg.Wait()

	failMu.Lock()
	defer failMu.Unlock()
	t.Logf("%d requests answered through the restart, %d failed", ok.Load(), len(failures))
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the restart, e.g. %v", len(failures), ok.Load()+int64(len(failures)),
			failures[:min(5, len(failures))])
	}
}
