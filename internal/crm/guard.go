package crm

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// A CRM base URL is whatever an admin typed, so without a guard callrouter
// could be made to call (with a tenant's credentials attached) a database
// on its own network or a cloud metadata endpoint. The guard works on the
// address actually dialed, after DNS resolution, so a name that resolves
// to a public address when the integration is saved and to 10.0.0.1 later
// (DNS rebinding) is still refused.

// nonPublic lists the address ranges a CRM is never on: loopback, RFC 1918
// private, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254
// included), unique local, unspecified, multicast, and the reserved
// ranges (IPv4-mapped addresses are unmapped first). It is never
// modified.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", 0.0.0.0 included
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast included
	netip.MustParsePrefix("::/96"),          // unspecified, loopback, IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001::/32"),      // Teredo: hides the IPv4 it reaches
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// IPv6 prefixes that carry an IPv4 address, judged by that address.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96") // the IPv4 in the last 4 bytes
	sixTo4 = netip.MustParsePrefix("2002::/16")    // the IPv4 in bytes 2–5
)

// PublicAddr reports whether a may be dialed for a CRM without the
// operator's allowance: a unicast address outside every loopback,
// private, shared, link-local, unique-local and reserved range. IPv4
// addresses inside IPv6 (mapped, or behind the well-known NAT64 prefix) are
// judged by their IPv4 address.
func PublicAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return PublicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo4.Contains(a):
			return PublicAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// AddressError is the dial error for an address the guard refuses.
type AddressError struct {
	Addr string // the address as dialed (IP and port)
}

// Error implements error.
func (e *AddressError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: not a public address (a CRM on a private network needs the server's --crm-allow-private)", e.Addr)
}

// guardControl is the dialer's Control hook: it runs once per address the
// dialer tries, after name resolution and before the connection is made.
func guardControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !PublicAddr(ap.Addr()) {
		return &AddressError{Addr: address}
	}
	return nil
}

// NewTransport returns the HTTP transport CRM clients use. Unless
// allowPrivate, its dialer refuses every address PublicAddr rejects,
// checked on the resolved address at connect time, and it ignores the
// environment's proxy settings (a proxy would resolve and connect for us,
// out of the guard's sight). With allowPrivate it is an ordinary transport
// that honours HTTP_PROXY/HTTPS_PROXY.
func NewTransport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if allowPrivate {
		t.Proxy = http.ProxyFromEnvironment
	} else {
		d.Control = guardControl
	}
	return t
}

// CheckTarget refuses, unless allowPrivate, a base URL whose host is
// visibly not public: an IP literal PublicAddr rejects, or localhost. A
// host name is judged when it is dialed (see NewTransport), since what it
// resolves to can change. EINVALID names base_url (or field, when given).
func CheckTarget(u *url.URL, allowPrivate bool, field string) error {
	if allowPrivate {
		return nil
	}
	if field == "" {
		field = "base_url"
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return domain.Errorf(domain.EINVALID, "%s: %s is this server itself; CRMs on private or local addresses need the server's --crm-allow-private", field, host)
	}
	if a, err := netip.ParseAddr(host); err == nil && !PublicAddr(a) {
		return domain.Errorf(domain.EINVALID, "%s: %s is not a public address; CRMs on private or local addresses need the server's --crm-allow-private", field, host)
	}
	return nil
}

// IsAddressRefused reports whether err is (or wraps) the guard's refusal.
func IsAddressRefused(err error) bool {
	var ae *AddressError
	return errors.As(err, &ae)
}
