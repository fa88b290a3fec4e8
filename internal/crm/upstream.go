package crm

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/callrouter/callrouter/internal/domain"
)

// Upstream turns the error of a call an admin request made to a CRM into
// the domain error its answer carries, so that the CRM's trouble is a
// gateway status naming the CRM and its (already redacted) words, never
// a 500:
//
//   - ECRMTIMEOUT (504): no answer in time, the call's deadline or a
//     transport timeout, or the CRM's own 504;
//   - ECRMDOWN (503): the CRM cannot be reached (connection refused or
//     reset, no such host) or answers 503 after the retries;
//   - ECRMERROR (502): the CRM refused the credentials, answered with
//     another error status or a redirect (never followed: it would carry
//     the token elsewhere), gave an answer that does not parse, or its
//     address is one the SSRF guard refuses. The guard's refusal is a 502
//     and not a 503 because waiting does not help: the address stays
//     private until the operator allows private CRMs (--crm-allow-private)
//     or the base URL is fixed.
//
// An error that already is a *domain.Error (an unknown tenant, bad
// credentials the adapter refuses before asking) is returned as it is, nil
// as nil. The cause stays wrapped for errors.Is and errors.As.
func Upstream(crmName string, err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	code, what := classify(err)
	return &domain.Error{Code: code, Message: crmName + " " + what + ": " + err.Error(), Err: err}
}

// classify names the domain code of a CRM call's failure and says what
// happened, for Upstream.
func classify(err error) (code, what string) {
	var (
		se  *StatusError
		ne  net.Error
		dns *net.DNSError
		op  *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return domain.ECRMTIMEOUT, "did not answer in time"
	case IsAuth(err):
		return domain.ECRMERROR, "refused the credentials"
	case IsAddressRefused(err):
		return domain.ECRMERROR, "is on an address the server may not call"
	case errors.As(err, &se):
		switch {
		case se.Status == http.StatusServiceUnavailable:
			return domain.ECRMDOWN, "is unavailable"
		case se.Status == http.StatusGatewayTimeout:
			return domain.ECRMTIMEOUT, "timed out"
		case se.Status/100 == 3:
			return domain.ECRMERROR, "redirected the call (not followed)"
		default:
			return domain.ECRMERROR, "answered with an error"
		}
	case errors.As(err, &ne) && ne.Timeout():
		return domain.ECRMTIMEOUT, "did not answer in time"
	case errors.As(err, &dns), errors.As(err, &op), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return domain.ECRMDOWN, "is unreachable"
	default:
		return domain.ECRMERROR, "gave an answer callrouter cannot use"
	}
}
