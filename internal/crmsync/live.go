package crmsync

// CRM webhooks and live lookups: a change or a phone applied at once,
// between sync cycles.

import (
	"context"
	"errors"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
)

// Live applies CRM webhooks and looks phones up in the CRM on a route
// miss, between sync cycles and alongside them. It is safe for concurrent
// use.
type Live struct {
	conns *Conns
	index *indexer
	store store.Store
}

// Webhook applies a CRM change notification for a tenant. EINVALID when
// the body is not a notification of the tenant's CRM, ENOTFOUND without an
// integration; an inactive integration ignores it.
//
// It does not wait for a sync cycle in progress: only the index write is
// ordered with the cycle's pages (see order), so a notification is applied
// within the time its CRM reads take.
func (l *Live) Webhook(ctx context.Context, tenantID, contentType string, body []byte) error {
	src, in, err := l.conns.source(ctx, tenantID)
	if err != nil {
		return err
	}
	if in.State != store.IntegrationActive {
		return nil
	}
	o := l.index.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	b, err := src.Webhook(ctx, contentType, body)
	if err != nil {
		return err
	}
	if _, _, err := l.index.apply(ctx, tenantID, src, b, o, start); err != nil {
		var ae *crm.AuthError
		if errors.As(err, &ae) {
			return l.conns.failed(ctx, in, in.Phase, in.Cursor, in.Synced, err)
		}
		return err
	}
	return nil
}

// Lookup searches the tenant's CRM for a phone on a route miss, indexes
// what it finds and returns the index rows of the phone's suffix. It
// returns nil rows without error when the integration is not active.
func (l *Live) Lookup(ctx context.Context, tenantID, number string) ([]domain.IndexEntry, error) {
	liveLookups.Inc()
	src, in, err := l.conns.source(ctx, tenantID)
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil, nil
		}
		liveErrors.Inc()
		return nil, err
	}
	if in.State != store.IntegrationActive {
		return nil, nil
	}
	o := l.index.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	found, err := src.FindByPhone(ctx, number)
	if err != nil {
		liveErrors.Inc()
		return nil, err
	}
	if len(found) > 0 {
		if _, _, err := l.index.apply(ctx, tenantID, src, crm.Batch{Entities: found}, o, start); err != nil {
			liveErrors.Inc()
			return nil, err
		}
	}
	return l.store.LookupSuffix(ctx, tenantID, phone.Suffix(number))
}
