// Package crm is what callrouter needs from a CRM: page through the
// entities that own phones (full and incremental), find by phone, list
// users, and parse the CRM's change notifications. Each CRM is an adapter
// in a subpackage (amocrm, zoho, retailcrm, uspacy) built on the shared
// plumbing here: an HTTP client with timeouts, a per-integration rate
// limit, retries that honour Retry-After, and OAuth2 refresh that persists
// rotated tokens before using them.
package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

// Entity is a CRM record as routing needs it.
type Entity struct {
	Kind domain.EntityKind
	ID   string
	Name string
	// Phones are as the CRM stores them; the sync engine normalizes them
	// with the tenant's default country.
	Phones []string
	// OwnerID is the responsible CRM user, "" when none.
	OwnerID string
	// Open is false for closed, won or lost leads and deals; contacts and
	// companies are always open.
	Open      bool
	UpdatedAt time.Time
}

// Ref names one entity.
type Ref struct {
	Kind domain.EntityKind
	ID   string
}

// User is a CRM user, listed so admins can map employees to SIP logins.
type User struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email,omitempty"`
	Active bool   `json:"active"`
	// Extension is the user's telephony extension when the CRM keeps one
	// (retailCRM's manager code).
	Extension string `json:"extension,omitempty"`
}

// Batch is one page of a sync or one webhook delivery.
type Batch struct {
	// Entities replace all index rows of each entity.
	Entities []Entity
	// Deleted entities lose their index rows.
	Deleted []Ref
	// Refetch names entities that changed but whose data the delivery did
	// not carry; the engine reads them with Get.
	Refetch []Ref
	// Cursor resumes after this page. It is opaque to everything but the
	// adapter and is stored after each page, so a sync survives restarts.
	Cursor string
	// Done reports that there is nothing more for now. After a full sync,
	// Cursor is then where incremental syncs start.
	Done bool
}

// Source is one connected CRM account.
type Source interface {
	// Full returns the next page of a full sync, starting at cursor "".
	Full(ctx context.Context, cursor string) (Batch, error)
	// Changes returns the next page of changes after cursor, which comes
	// from a finished Full or an earlier Changes.
	Changes(ctx context.Context, cursor string) (Batch, error)
	// Get reads entities by reference; missing ones are reported in
	// Batch.Deleted.
	Get(ctx context.Context, refs []Ref) (Batch, error)
	// FindByPhone returns the entities that have the phone (E.164 digits,
	// no '+'); none is an empty result, not an error.
	FindByPhone(ctx context.Context, phone string) ([]Entity, error)
	// Users lists the CRM's users.
	Users(ctx context.Context) ([]User, error)
	// Webhook parses a change notification the CRM posted to callrouter.
	// EINVALID when the body is not one.
	Webhook(ctx context.Context, contentType string, body []byte) (Batch, error)
}

// FieldChecker is implemented by sources whose writes use fields an
// account must create itself (Zoho's rs_ custom fields of seed 000).
type FieldChecker interface {
	// MissingFields names the fields callrouter writes that the account
	// lacks; writes leave them out instead of failing. Errors: the CRM's,
	// or that the account's fields cannot be read.
	MissingFields(ctx context.Context) ([]string, error)
}

// Registrar is implemented by sources of CRMs whose telephony methods
// need callrouter registered as the account's telephony integration
// (retailCRM). The engine registers when a full sync starts: on connect and
// on every activation, so a re-activation re-registers.
type Registrar interface {
	// Register creates or updates callrouter's integration in the account.
	// Errors: the CRM's (*AuthError when it rejects the credentials).
	Register(ctx context.Context, r Registration) error
}

// Registration is what a Registrar registers.
type Registration struct {
	// ClientID names the project in the CRM's integration list (the tenant
	// id).
	ClientID string
	// Codes are the employees' extension codes (SIP logins, else phones)
	// with their CRM user ids.
	Codes []ExtensionCode
	// ExternalPhones are the project's own phone numbers (its line entries
	// of the stop list that are phones), E.164 digits.
	ExternalPhones []string
}

// ExtensionCode maps an employee's extension to their CRM user.
type ExtensionCode struct {
	Code   string
	UserID string
}

// Config is one tenant's integration as the admin configured it.
type Config struct {
	CRM     string          // amocrm, zoho, retailcrm, uspacy
	BaseURL string          // the account's API base, e.g. https://acme.amocrm.ru
	Creds   json.RawMessage // the CRM's credentials, see each adapter's Credentials
}

// CheckBaseURL parses a CRM base URL: https, or plain http to a loopback
// address only (fake CRMs in tests and local development), with no
// credentials, query or fragment. EINVALID names the problem.
func CheckBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return nil, domain.Errorf(domain.EINVALID, "base_url: %q is not an absolute URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, domain.Errorf(domain.EINVALID, "base_url: must not carry credentials, a query or a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			return nil, domain.Errorf(domain.EINVALID, "base_url: plain http is allowed to loopback addresses only; use https")
		}
	default:
		return nil, domain.Errorf(domain.EINVALID, "base_url: scheme must be https, got %q", u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// AuthError says the CRM rejected the integration's credentials: the
// integration is broken until an admin reconnects it. Message is the CRM's
// own error text.
type AuthError struct {
	CRM     string
	Status  int
	Message string
}

// Error implements error.
func (e *AuthError) Error() string {
	return fmt.Sprintf("%s rejected the credentials (HTTP %d): %s", e.CRM, e.Status, e.Message)
}

// StatusError is any other unsuccessful CRM answer, after retries.
type StatusError struct {
	CRM     string
	Method  string
	Path    string
	Status  int
	Message string
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s %s: HTTP %d: %s", e.CRM, e.Method, e.Path, e.Status, e.Message)
}
