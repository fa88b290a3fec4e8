// Package domain holds the small types shared by every part of callrouter:
// tenants and their routing settings, employees, the phone index, the stop
// list and the audit log. It imports nothing of the project, so adapters can
// depend on it without depending on each other.
package domain

import (
	"strings"
	"time"
)

// EntityKind names the CRM entity a phone belongs to.
type EntityKind string

// The entity kinds a phone can be indexed under, in the default owner order.
const (
	KindLead    EntityKind = "lead"
	KindDeal    EntityKind = "deal"
	KindContact EntityKind = "contact"
	KindCompany EntityKind = "company"
)

// InternKind returns k as the package's constant when it is one of the
// kinds above, so that a million cached rows share four strings instead
// of holding one copy each.
func InternKind(k EntityKind) EntityKind {
	switch k {
	case KindLead:
		return KindLead
	case KindDeal:
		return KindDeal
	case KindContact:
		return KindContact
	case KindCompany:
		return KindCompany
	}
	return k
}

// ParseKind returns the EntityKind named s. Known kinds come back as the
// package's constants, so millions of scanned rows share four strings
// instead of holding a copy each; unknown kinds are returned as they are
// (check Valid).
func ParseKind(s string) EntityKind {
	switch EntityKind(s) {
	case KindLead:
		return KindLead
	case KindDeal:
		return KindDeal
	case KindContact:
		return KindContact
	case KindCompany:
		return KindCompany
	}
	return EntityKind(s)
}

// Valid reports whether k is one of the known entity kinds.
func (k EntityKind) Valid() bool {
	switch k {
	case KindLead, KindDeal, KindContact, KindCompany:
		return true
	}
	return false
}

// Response formats a tenant can answer the PBX in.
const (
	FormatJSON    = "json"
	FormatText    = "text"
	FormatJSONRPC = "jsonrpc"
)

// Fallback policies for on_miss and on_unmapped.
const (
	PolicyNext         = "next"
	PolicyDefaultOwner = "default_owner"
)

// Tenant is one PBX project: its routing settings, the hash of its webhook
// secret and its default owner (the "senior manager").
type Tenant struct {
	ID         string
	Name       string
	Settings   Settings
	SecretHash []byte // SHA-256 of the webhook secret; the secret itself is never stored
	// PrevSecretHash is the SHA-256 of the secret the last rotation
	// replaced, still accepted until PrevSecretUntil; nil when there is none.
	// Only a rotation (store.Security) writes them.
	PrevSecretHash  []byte
	PrevSecretUntil time.Time
	DefaultOwner    string // CRM user id of the default owner, empty when unset
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Employee maps a CRM user to the place the PBX can ring: a SIP login or a
// phone in international digits.
type Employee struct {
	TenantID  string    `json:"-"`
	CRMUserID string    `json:"crm_user_id"`
	SIP       string    `json:"sip"`
	Phone     string    `json:"phone"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Target returns what the PBX should ring for this employee: the SIP login
// when there is one, else the phone. It is empty when neither is set.
func (e Employee) Target() string {
	if e.SIP != "" {
		return e.SIP
	}
	return e.Phone
}

// StopKind says what a stop-list number is.
type StopKind string

// Stop-list kinds. A line is one of the project's own lines (a SIP login, an
// FMC or virtual number): a call to or from it creates nothing. A client is
// a client's number: calls with that client create nothing.
const (
	StopLine   StopKind = "line"
	StopClient StopKind = "client"
)

// ParseStopKind reads a stop-list kind; "" is StopLine. EINVALID names the
// field kind.
func ParseStopKind(s string) (StopKind, error) {
	switch k := StopKind(strings.ToLower(strings.TrimSpace(s))); k {
	case "":
		return StopLine, nil
	case StopLine, StopClient:
		return k, nil
	default:
		return "", Errorf(EINVALID, "kind: must be line or client, got %q", s)
	}
}

// StopEntry is a stop-list number: a project line or a client number whose
// calls create nothing in the CRM.
type StopEntry struct {
	TenantID string `json:"-"`
	Number   string `json:"number"`
	// Kind is StopLine or StopClient; stores write "" as StopLine.
	Kind      StopKind  `json:"kind"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// IndexEntry is one row of the phone index: a phone of one CRM entity and
// the CRM user responsible for it. An entity has one row per phone.
type IndexEntry struct {
	TenantID string
	// Phone is the E.164 number in digits without '+'. When the country of a
	// CRM phone could not be told, it holds the national digits without the
	// trunk prefix, and matches any caller whose number ends with them.
	Phone string
	// Suffix is the national-suffix key (see phone.Suffix): the cache and the
	// store look callers up by it, so national-only CRM phones still match.
	Suffix    string
	Kind      EntityKind
	EntityID  string
	Open      bool
	OwnerID   string // responsible CRM user id
	Name      string
	UpdatedAt time.Time
}

// AuditEntry records one admin change.
type AuditEntry struct {
	ID       int64     `json:"id"`
	TenantID string    `json:"tenant_id"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Detail   string    `json:"detail"`
	At       time.Time `json:"at"`
}
