package domain

import (
	"errors"
	"fmt"
)

// Error codes; the HTTP layer maps each to one status in one place.
const (
	EINVALID      = "invalid"      // 400
	EUNAUTHORIZED = "unauthorized" // 401
	ENOTFOUND     = "not_found"    // 404
	ECONFLICT     = "conflict"     // 409
	ETOOLARGE     = "too_large"    // 413
	EUNAVAILABLE  = "unavailable"  // 503
	EINTERNAL     = "internal"     // 500

	// A CRM (or Ringostat) an admin call had to ask failed it: these are
	// the CRM's trouble, not callrouter's, so they are gateway statuses
	// and are logged as warnings, not errors.
	ECRMERROR   = "crm_error"       // 502: refused, a bad answer, a redirect, or an address the SSRF guard refuses
	ECRMDOWN    = "crm_unavailable" // 503: down, unreachable, or answering 503
	ECRMTIMEOUT = "crm_timeout"     // 504: no answer in time
)

// Error is an error a user of callrouter can act on: a code and a message
// that names the field or thing at fault.
type Error struct {
	Code    string
	Message string
	// Err is the cause, when there is one, for errors.Is and errors.As;
	// Message already says what a client may see of it.
	Err error
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause, nil when none.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error inside err, EINTERNAL for any
// other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the *Error inside err, or a generic
// text for internal errors so their details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}
