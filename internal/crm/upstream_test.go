package crm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// timeoutErr is a transport error that reports a timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Upstream's classes for the failures the HTTP test cannot stage (no DNS,
// a transport timeout), and what it leaves alone.
func TestUpstreamClasses(t *testing.T) {
	if Upstream("zoho", nil) != nil {
		t.Fatal("nil became an error")
	}
	nf := domain.Errorf(domain.ENOTFOUND, "integration: none")
	if err := Upstream("zoho", nf); err != nf {
		t.Fatalf("a domain error was rewrapped: %v", err)
	}
	auth := &AuthError{CRM: "zoho", Status: 401, Message: "invalid_token"}
	for _, tc := range []struct {
		err  error
		code string
	}{
		{&net.DNSError{Err: "no such host", Name: "acme.example", IsNotFound: true}, domain.ECRMDOWN},
		{fmt.Errorf("zoho GET /users: %w", &net.OpError{Op: "read", Err: timeoutErr{}}), domain.ECRMTIMEOUT},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), domain.ECRMTIMEOUT},
		{&StatusError{CRM: "zoho", Status: 504}, domain.ECRMTIMEOUT},
		{&StatusError{CRM: "zoho", Status: 500}, domain.ECRMERROR},
		{auth, domain.ECRMERROR},
		{errors.New("decode answer: unexpected end"), domain.ECRMERROR},
	} {
		err := Upstream("zoho", tc.err)
		if domain.ErrorCode(err) != tc.code || !errors.Is(err, tc.err) {
			t.Errorf("Upstream(%v) = %v, want %s wrapping the cause", tc.err, err, tc.code)
		}
	}
	if err := Upstream("zoho", auth); !IsAuth(err) {
		t.Errorf("IsAuth lost through Upstream: %v", err)
	}
}
