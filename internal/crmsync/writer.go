package crmsync

// Writing to the CRM for call events: the writer, indexing what a write
// made, and checking whether linked entities are gone.

import (
	"context"
	"fmt"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Calls is the CRM side of processing call events (events.CRM): the
// tenant's writer, and the index kept true to what the writes made. It is
// safe for concurrent use.
type Calls struct {
	conns *Conns
	index *indexer
	live  *Live
}

// Writer returns the write side of a tenant's active integration.
// crm.ErrInactive (wrapped) when there is none, or it is inactive or broken.
func (c *Calls) Writer(ctx context.Context, tenantID string) (crm.Writer, error) {
	src, in, err := c.conns.activeSource(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	w, ok := src.(crm.Writer)
	if !ok {
		return nil, fmt.Errorf("crm %s cannot create records: %w", in.CRM, crm.ErrInactive)
	}
	if err := c.conns.registerOnce(ctx, tenantID, src); err != nil {
		return nil, err
	}
	return w, nil
}

// Index puts entities callrouter created in the CRM into the phone index
// and invalidates their cache keys, as a webhook about them would.
func (c *Calls) Index(ctx context.Context, tenantID string, ents []crm.Entity) error {
	o := c.index.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	_, _, err := c.index.apply(ctx, tenantID, nil, crm.Batch{Entities: ents}, o, start)
	return err
}

// Gone reads refs from the tenant's CRM and applies what it answers, as a
// webhook naming them would: found entities replace their index rows, and
// those the CRM no longer has lose theirs. It returns the latter. The call
// events processor asks this when the CRM refuses a write linked to an
// entity the index knows. Errors: crm.ErrInactive (wrapped) without an
// active integration, and the CRM's.
func (c *Calls) Gone(ctx context.Context, tenantID string, refs []crm.Ref) ([]crm.Ref, error) {
	src, _, err := c.conns.activeSource(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	o := c.index.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	b, err := src.Get(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read back %d linked entities: %w", len(refs), err)
	}
	asked := make(map[crm.Ref]bool, len(refs))
	for _, r := range refs {
		asked[r] = true
	}
	var gone []crm.Ref
	for _, d := range b.Deleted {
		if asked[d] {
			gone = append(gone, d)
		}
	}
	if _, _, err := c.index.apply(ctx, tenantID, src, b, o, start); err != nil {
		return nil, err
	}
	return gone, nil
}

// Lookup searches the tenant's CRM for a phone, as on a route miss
// (Live.Lookup).
func (c *Calls) Lookup(ctx context.Context, tenantID, number string) ([]domain.IndexEntry, error) {
	return c.live.Lookup(ctx, tenantID, number)
}

// Broken marks the tenant's integration broken after the CRM rejected the
// credentials of a write (Conns.Broken). It returns the store's error.
func (c *Calls) Broken(ctx context.Context, tenantID string, ae *crm.AuthError) error {
	return c.conns.Broken(ctx, tenantID, ae)
}
