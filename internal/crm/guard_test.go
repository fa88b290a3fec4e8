package crm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/domain"
)

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8":          true,
		"93.184.216.34":    true,
		"172.32.0.1":       true, // just past 172.16/12
		"100.128.0.1":      true, // just past 100.64/10
		"2a00:1450::1":     true,
		"::ffff:8.8.8.8":   true,
		"64:ff9b::808:808": true, // NAT64 of 8.8.8.8
		"2002:808:808::1":  true, // 6to4 of 8.8.8.8

		"127.0.0.1":              false,
		"127.8.9.10":             false,
		"10.1.2.3":               false,
		"172.16.0.1":             false,
		"172.31.255.255":         false,
		"192.168.1.1":            false,
		"100.64.0.1":             false,
		"100.127.255.254":        false,
		"169.254.169.254":        false, // cloud metadata
		"169.254.1.1":            false,
		"0.0.0.0":                false,
		"224.0.0.1":              false,
		"239.255.255.250":        false,
		"255.255.255.255":        false,
		"::1":                    false,
		"::":                     false,
		"fe80::1":                false,
		"fe80::1%eth0":           false,
		"febf::1":                false,
		"fc00::1":                false,
		"fd12:3456::1":           false,
		"ff02::1":                false,
		"::ffff:127.0.0.1":       false, // IPv4-mapped loopback
		"::ffff:169.254.169.254": false,
		"64:ff9b::a00:1":         false, // NAT64 of 10.0.0.1
		"2002:a00:1::1":          false, // 6to4 of 10.0.0.1
		"2002:7f00:1::1":         false, // 6to4 of 127.0.0.1
	} {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if got := crm.PublicAddr(a); got != public {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, public)
		}
	}
	if crm.PublicAddr(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

func TestCheckTarget(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://acme.amocrm.ru":         true,
		"https://93.184.216.34":          true,
		"https://[2a00:1450::1]:8443":    true,
		"https://10.0.0.5":               false,
		"https://169.254.169.254/latest": false,
		"https://100.64.1.1":             false,
		"https://[::1]:9000":             false,
		"https://[fd00::1]":              false,
		"https://[::ffff:192.168.0.1]":   false,
		"http://127.0.0.1:8081":          false,
		"https://localhost":              false,
		"https://LOCALHOST.":             false,
		"https://api.localhost":          false,
		"https://0.0.0.0":                false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = crm.CheckTarget(u, false, "")
		if ok != (err == nil) {
			t.Errorf("CheckTarget(%s) = %v; want ok=%v", raw, err, ok)
		}
		if err != nil && (domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "base_url:") ||
			!strings.Contains(domain.ErrorMessage(err), "--crm-allow-private")) {
			t.Errorf("CheckTarget(%s) error %q does not name base_url and the flag", raw, err)
		}
		if err := crm.CheckTarget(u, true, ""); err != nil {
			t.Errorf("CheckTarget(%s) with the allowance = %v", raw, err)
		}
	}
	u, _ := url.Parse("https://10.0.0.1")
	if err := crm.CheckTarget(u, false, "credentials.accounts_url"); !strings.HasPrefix(domain.ErrorMessage(err), "credentials.accounts_url:") {
		t.Errorf("CheckTarget with a field name: %v", err)
	}
}

// counting is a loopback server that counts the requests reaching it.
func counting(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// The guard refuses the resolved address at dial time: a client left with
// the default transport never reaches a loopback server, whether the base
// URL names its IP or a host name that resolves to it ("localhost", as a
// rebinding DNS name would), and a refusal is not retried.
func TestDialGuardRefusesPrivateAddresses(t *testing.T) {
	srv, hits := counting(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, base := range []string{srv.URL, fmt.Sprintf("http://localhost:%d", port)} {
		ns := &crmtest.NoSleep{}
		h, err := crm.NewHTTP(crm.HTTPConfig{CRM: "testcrm", BaseURL: base, Sleep: ns.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Do(context.Background(), crm.Request{Method: http.MethodGet, Path: "/api/users"})
		if !crm.IsAddressRefused(err) {
			t.Fatalf("%s: Do = %v, want the guard's refusal", base, err)
		}
		if !strings.Contains(err.Error(), "--crm-allow-private") {
			t.Errorf("%s: the refusal %q does not say how to allow it", base, err)
		}
		if len(ns.Waits) != 0 {
			t.Errorf("%s: a refusal was retried after %v", base, ns.Waits)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests through the guard", n)
	}

	// The operator's allowance lets the same client through.
	h, err := crm.NewHTTP(crm.HTTPConfig{CRM: "testcrm", BaseURL: srv.URL, Transport: crm.NewTransport(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Do(context.Background(), crm.Request{Method: http.MethodGet, Path: "/api/users"}); err != nil || hits.Load() != 1 {
		t.Fatalf("with the allowance: %v, %d requests", err, hits.Load())
	}
}

// A transport failure's error names the URL without the query's values,
// where CRMs that take their key as a parameter would have it.
func TestTransportErrorHidesQuerySecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close() // connection refused from now on
	const apiKey = "rk_live_0123456789abcdef"
	h, err := crm.NewHTTP(crm.HTTPConfig{CRM: "retailcrm", BaseURL: base, Transport: crm.NewTransport(true),
		Sleep: (&crmtest.NoSleep{}).Sleep})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Do(context.Background(), crm.Request{Method: http.MethodGet, Path: "/api/v5/customers",
		Query: url.Values{"apiKey": {apiKey}, "limit": {"100"}}})
	if err == nil {
		t.Fatal("Do against a closed port succeeded")
	}
	if strings.Contains(err.Error(), apiKey) {
		t.Fatalf("the error shows the key: %v", err)
	}
	if !strings.Contains(err.Error(), "/api/v5/customers") || !strings.Contains(err.Error(), "apiKey=") {
		t.Errorf("the error %q no longer says what was called", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("the error %v no longer wraps the *url.Error", err)
	}
}

// A CRM that echoes the credentials in its refusal does not get them into
// the error: the token the request carried, a key in its query, and the
// secrets of a token request's form or JSON body are cut out.
func TestRefusalsHideEchoedSecrets(t *testing.T) {
	const (
		token        = "tok_abcdef0123456789"
		queryKey     = "qk_9876543210fedcba"
		clientSecret = "cs_secret_value_42"
		refresh      = "rt_refresh/value+1="
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		body, _ := io.ReadAll(r.Body) // what ParseForm left: a JSON body
		status := http.StatusUnauthorized
		if r.URL.Path == "/bad" {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		// Echo everything, raw and encoded, as a careless CRM might.
		fmt.Fprintf(w, "denied: auth=%s key=%s form=%s raw=%s body=%s", r.Header.Get("Authorization"), r.URL.Query().Get("apiKey"),
			r.PostForm.Encode(), r.URL.RawQuery, body)
	}))
	defer srv.Close()
	h, err := crm.NewHTTP(crm.HTTPConfig{CRM: "testcrm", BaseURL: srv.URL, Transport: crm.NewTransport(true),
		Auth: crm.StaticKey{Header: "Authorization", Value: "Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"client_secret": {clientSecret}, "refresh_token": {refresh}, "grant_type": {"refresh_token"}}
	for _, r := range []crm.Request{
		{Method: http.MethodGet, Path: "/users", Query: url.Values{"apiKey": {queryKey}}},
		{Method: http.MethodPost, Path: "/bad", Body: []byte(form.Encode()), ContentType: "application/x-www-form-urlencoded"},
		{Method: http.MethodPost, Path: "/bad", Body: []byte(`{"client_secret":"` + clientSecret + `","refresh_token":"` + refresh + `"}`),
			ContentType: "application/json"},
	} {
		_, err := h.Do(context.Background(), r)
		if err == nil {
			t.Fatalf("%s %s succeeded", r.Method, r.Path)
		}
		msg := err.Error()
		for _, secret := range []string{token, queryKey, clientSecret, refresh, url.QueryEscape(refresh)} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s %s: error shows %q: %s", r.Method, r.Path, secret, msg)
			}
		}
		if !strings.Contains(msg, "denied") || !strings.Contains(msg, "[redacted]") {
			t.Errorf("%s %s: the CRM's own words are gone or nothing was redacted: %s", r.Method, r.Path, msg)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://acme.example/api?apiKey=s3cret&limit=5": "https://acme.example/api?apiKey=%5Bredacted%5D&limit=%5Bredacted%5D",
		"https://user:pw@acme.example/x#frag":            "https://acme.example/x",
		"https://acme.example/plain":                     "https://acme.example/plain",
		"%zz":                                            "[redacted]",
	} {
		got := crm.RedactURL(raw)
		// The brackets may come back escaped or not; what matters is that
		// no value survives.
		if got != want && got != strings.NewReplacer("%5B", "[", "%5D", "]").Replace(want) {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
