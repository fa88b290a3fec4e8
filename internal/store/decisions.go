package store

import (
	"context"
	"time"
)

// RouteDecision is one route answer kept for the routing report: which
// owner the PBX was told to ring for a call id.
type RouteDecision struct {
	TenantID string
	// CallID is the PBX's call id as the route request carried it; the
	// call's events carry the same id as their UniqueID.
	CallID string
	At     time.Time
	// OwnerID is the CRM user id of the manager the call was routed to, ""
	// for no forward or a target no employee has.
	OwnerID string
	// Target is the SIP login or phone answered, "" for no forward.
	Target string
	// Reason is the X-Route-Reason of the answer.
	Reason string
}

// RoutedCall is a kept route decision with the fields of the call's
// events, nil where the call has none (yet, or any more).
type RoutedCall struct {
	RouteDecision
	Answered map[string]string // fields of the call's call_answered event
	End      map[string]string // fields of the call's call_end event
}

// RouteDecisions stores the route decisions of the routing report.
type RouteDecisions interface {
	// InsertRouteDecisions stores ds in one transaction. A call id a tenant
	// already has keeps its first decision (the PBX asking again for the
	// same call, a later block of its scheme); a decision of a tenant that
	// does not exist (deleted meanwhile) is skipped. Errors are the
	// store's.
	InsertRouteDecisions(ctx context.Context, ds []RouteDecision) error
	// RoutedCalls calls fn for every decision of a tenant made in [from,
	// to), oldest first, with the fields of the call's call_answered and
	// call_end events, and stops at fn's first error, which it returns.
	RoutedCalls(ctx context.Context, tenantID string, from, to time.Time, fn func(RoutedCall) error) error
	// ExpireRouteDecisions deletes up to limit of a tenant's decisions
	// made before before, oldest first, and returns how many.
	ExpireRouteDecisions(ctx context.Context, tenantID string, before time.Time, limit int) (int, error)
}

// MetaRingostatCallback names the meta rows of the automatic call-back:
// when a tenant's client was last called back.
const MetaRingostatCallback = "ringostat_callback/"

// TenantMeta lists the prefixes of meta keys kept per tenant, made with
// TenantMetaKey; DeleteTenant deletes a tenant's rows of each.
var TenantMeta = []string{MetaRingostatCallback}

// TenantMetaKey returns the meta key of kind (one of TenantMeta) for a
// tenant and a rest: kind + tenant id + "/" + rest. Tenant ids hold no
// '/', so one tenant's prefix never covers another's keys.
func TenantMetaKey(kind, tenantID, rest string) string {
	return kind + tenantID + "/" + rest
}
