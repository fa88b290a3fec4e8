package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// pgProxy is a TCP proxy between the router and PostgreSQL that can play a
// server restart: every connection cut and new ones refused for a while,
// then accepted again on the same address. The real server is never
// touched.
type pgProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.accept(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *pgProxy) accept(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.pipe(c)
		}
	}()
}

func (p *pgProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }() //nolint:errcheck // ends when either side closes
	go func() { io.Copy(c, s); done <- struct{}{} }() //nolint:errcheck // ends when either side closes
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// down cuts every connection and refuses new ones, as a PostgreSQL that
// went away.
func (p *pgProxy) down() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	n := len(p.conns) / 2
	for c := range p.conns {
		c.Close()
	}
	return n
}

// up accepts connections again on the same address.
func (p *pgProxy) up() {
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.accept(ln)
}

// tally counts what the load saw, by phase.
type tally struct {
	mu                 sync.Mutex
	routes, routesDown int
	routeBad           []string
	acked              map[string]string // uniqueid → id
	refused            map[string]bool   // uniqueid answered 503, not yet 200
	refusedTotal       int
	eventBad           []string
}

// TestPostgresRestartUnderLoad: PostgreSQL goes away under a load of
// route requests (cache hits) and call events, for about two seconds, and
// comes back. Routing never answers a 5xx and keeps sending each caller to
// its owner; events are answered 200 (stored) or 503 (not stored), never
// anything else; every acknowledged event is in the database, every
// refused one is stored when the PBX posts it again after the restart,
// and no uniqueid is stored twice; the pool reconnects by itself, and the
// job queue goes on to apply every event in the CRM, without restarting
// the router.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	dbURL := postgresDB(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	direct := strings.TrimSuffix(strings.TrimSuffix(dbURL, "search_path="+schema), "&")
	direct = strings.TrimSuffix(direct, "?")
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.addr
	cfg := testConfig(t)
	cfg.db = u.String()
	cfg.secretKey = strings.Repeat("cd", 32) // else a key file would land in ./data, the source tree
	cfg.adminToken = "pg-restart-token"
	base, stop := startServe(t, cfg, io.Discard)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("graceful shutdown after the restart: %v", err)
		}
	}()

	fake := zohofake.New(t) // no rate limit to wait for: every event is applied within the test
	fake.SetUsers([]crm.User{{ID: "501", Name: "Anna", Active: true}, {ID: "503", Name: "Olga", Active: true}})
	secret := adminCLI(t, base, cfg.adminToken, "create-tenant", "acme", "default_country=UA")["webhook_secret"].(string)
	adminCLI(t, base, cfg.adminToken, "put-employee", "acme", "501", "--sip", "anna_sip")
	adminCLI(t, base, cfg.adminToken, "put-employee", "acme", "503", "--sip", "olga_sip")
	adminCLI(t, base, cfg.adminToken, "set-default-owner", "acme", "503")
	// The phones come from the CRM: a connected CRM's full sync reconciles
	// the index with what the CRM has, so imported rows would be swept.
	const phones = 50
	for i := range phones {
		fake.Put(crm.Entity{Kind: domain.KindContact, ID: fmt.Sprint(1000 + i), Phones: []string{fmt.Sprintf("+38067%07d", i)}, OwnerID: "501", Open: true})
	}
	creds, _ := json.Marshal(fake.Creds())
	if conn := adminCLI(t, base, cfg.adminToken, "connect", "acme", "zoho", fake.URL(), string(creds)); conn["state"] != "active" {
		t.Fatalf("connect: %v", conn)
	}
	caller := func(i int) string { return fmt.Sprintf("38067%07d", i%phones) }
	synced := time.Now().Add(60 * time.Second)
	for i := 0; i < phones; { // warm: every phone a cache hit from now on
		if got := route(t, base, secret, caller(i)); got != `{"number":"anna_sip"}` {
			if time.Now().After(synced) {
				t.Fatalf("route %s: %s after 60s of sync", caller(i), got)
			}
			time.Sleep(50 * time.Millisecond) // the first full sync is still under way
			continue
		}
		i++
	}
	// The full sync ends with a reconciliation; wait for it, so that it
	// does not run during the outage.
	for st := adminCLI(t, base, cfg.adminToken, "status", "acme"); ; st = adminCLI(t, base, cfg.adminToken, "status", "acme") {
		if in, _ := st["integration"].(map[string]any); in != nil && in["last_reconciled_at"] != nil && in["last_reconciled_at"] != "" {
			break
		}
		if time.Now().After(synced) {
			t.Fatalf("the first full sync did not finish within 60s: %v", st["integration"])
		}
		time.Sleep(100 * time.Millisecond)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	var outage atomic.Bool
	tl := &tally{acked: map[string]string{}, refused: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 3 { // route requests, as fast as they come back
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i += 3 {
				down := outage.Load()
				resp, err := client.Get(base + "/pbx/acme/route?key=" + secret + "&caller=" + caller(i))
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				tl.mu.Lock()
				tl.routes++
				if down {
					tl.routesDown++
				}
				switch {
				case err != nil:
					tl.routeBad = append(tl.routeBad, err.Error())
				case resp.StatusCode != 200 || string(body) != `{"number":"anna_sip"}`:
					tl.routeBad = append(tl.routeBad, fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("X-Route-Reason"), body))
				}
				tl.mu.Unlock()
			}
		}()
	}
	post := func(uid string) (int, string) {
		resp, err := client.PostForm(base+"/pbx/acme/events?event=call_end&key="+secret,
			url.Values{"uniqueid": {uid}, "caller": {"38050" + strings.ReplaceAll(uid, ".", "")[3:]}, "disposition": {"NO ANSWER"}})
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	record := func(uid string, status int, body string) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		switch status {
		case http.StatusOK:
			var ack struct{ ID string }
			if json.Unmarshal([]byte(body), &ack) != nil || ack.ID == "" {
				tl.eventBad = append(tl.eventBad, uid+": 200 "+body)
				return
			}
			if prev, ok := tl.acked[uid]; ok && prev != ack.ID {
				tl.eventBad = append(tl.eventBad, fmt.Sprintf("%s: acknowledged as %s and %s", uid, prev, ack.ID))
			}
			tl.acked[uid] = ack.ID
			delete(tl.refused, uid)
		case http.StatusServiceUnavailable:
			if strings.Contains(body, `"id"`) {
				tl.eventBad = append(tl.eventBad, uid+": 503 with an id: "+body)
			}
			tl.refused[uid] = true
			tl.refusedTotal++
		default:
			tl.eventBad = append(tl.eventBad, fmt.Sprintf("%s: %d %s", uid, status, body))
		}
	}
	for g := range 2 { // call events, 2 × ~20/s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				uid := fmt.Sprintf("17%d%05d.1", g, n)
				status, body := post(uid)
				record(uid, status, body)
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}

	time.Sleep(time.Second)
	outage.Store(true)
	cut := proxy.down()
	time.Sleep(2 * time.Second)
	proxy.up()
	outage.Store(false)
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()

	// The PBX posts again what was answered 503, until it is stored.
	deadline := time.Now().Add(15 * time.Second)
	for {
		tl.mu.Lock()
		var again []string
		for uid := range tl.refused {
			again = append(again, uid)
		}
		tl.mu.Unlock()
		if len(again) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still refused 15 s after PostgreSQL came back: the pool did not reconnect", len(again))
		}
		for _, uid := range again {
			status, body := post(uid)
			record(uid, status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("PostgreSQL restart: %d connections cut; %d route requests (%d during the outage), %d bad; %d events acknowledged, %d answers 503 (all stored on a later post), %d bad",
		cut, tl.routes, tl.routesDown, len(tl.routeBad), len(tl.acked), tl.refusedTotal, len(tl.eventBad))
	if len(tl.routeBad) > 0 {
		t.Errorf("route answers not 200 to the owner: %d, first %q", len(tl.routeBad), tl.routeBad[0])
	}
	if tl.routesDown == 0 {
		t.Error("no route request was answered during the outage")
	}
	if len(tl.eventBad) > 0 {
		t.Errorf("event answers neither 200 nor 503: %d, first %q", len(tl.eventBad), tl.eventBad[0])
	}
	if tl.refusedTotal == 0 {
		t.Error("no event was refused during the outage: the outage did not reach the store")
	}

	// Every acknowledged event is in the database, once.
	conn, err := pgx.Connect(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT unique_id, id FROM `+pgx.Identifier{schema, "call_events"}.Sanitize()+` WHERE tenant_id = 'acme'`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for rows.Next() {
		var uid, id string
		if err := rows.Scan(&uid, &id); err != nil {
			t.Fatal(err)
		}
		if _, dup := stored[uid]; dup {
			t.Errorf("uniqueid %s stored twice", uid)
		}
		stored[uid] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for uid, id := range tl.acked {
		if stored[uid] != id {
			t.Errorf("event %s acknowledged as %s, stored as %q", uid, id, stored[uid])
		}
	}
	if len(stored) != len(tl.acked) {
		t.Errorf("%d events stored, %d acknowledged", len(stored), len(tl.acked))
	}

	// The job queue reconnected too: every event is applied in the CRM.
	waitDone(t, base, cfg.adminToken, len(tl.acked), 60*time.Second)
	if got := route(t, base, secret, caller(7)); got != `{"number":"anna_sip"}` {
		t.Fatalf("route after the restart: %s", got)
	}
}
