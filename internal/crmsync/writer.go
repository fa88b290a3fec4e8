package crmsync

// Writing to the CRM for call events: the writer, indexing what a write
// made, and checking whether linked entities are gone.

import (
	"context"
	"fmt"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// activeSource is the tenant's connection when its integration is active.
// crm.ErrInactive (wrapped) when there is none, or it is inactive or
// broken; the store's or the adapter's error otherwise.
func (e *Engine) activeSource(ctx context.Context, tenantID string) (crm.Source, store.Integration, error) {
	src, in, err := e.source(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, in, fmt.Errorf("tenant %s has no integration: %w", tenantID, crm.ErrInactive)
	}
	if err != nil {
		return nil, in, err
	}
	if in.State != store.IntegrationActive {
		return nil, in, fmt.Errorf("integration of %s is %s: %w", tenantID, in.State, crm.ErrInactive)
	}
	return src, in, nil
}

// Writer returns the write side of a tenant's active integration.
// crm.ErrInactive (wrapped) when there is none, or it is inactive or broken.
func (e *Engine) Writer(ctx context.Context, tenantID string) (crm.Writer, error) {
	src, in, err := e.activeSource(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	w, ok := src.(crm.Writer)
	if !ok {
		return nil, fmt.Errorf("crm %s cannot create records: %w", in.CRM, crm.ErrInactive)
	}
	if err := e.registerOnce(ctx, tenantID, src); err != nil {
		return nil, err
	}
	return w, nil
}

// Index puts entities callrouter created in the CRM into the phone index
// and invalidates their cache keys, as a webhook about them would.
func (e *Engine) Index(ctx context.Context, tenantID string, ents []crm.Entity) error {
	o := e.orderOf(tenantID)
	start := o.begin()
	defer o.end(start)
	_, _, err := e.apply(ctx, tenantID, nil, crm.Batch{Entities: ents}, o, start)
	return err
}

// Gone reads refs from the tenant's CRM and applies what it answers, as a
// webhook naming them would: found entities replace their index rows, and
// those the CRM no longer has lose theirs. It returns the latter. The call
// events processor asks this when the CRM refuses a write linked to an
// entity the index knows. Errors: crm.ErrInactive (wrapped) without an
// active integration, and the CRM's.
func (e *Engine) Gone(ctx context.Context, tenantID string, refs []crm.Ref) ([]crm.Ref, error) {
	src, _, err := e.activeSource(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	o := e.orderOf(tenantID)
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
	if _, _, err := e.apply(ctx, tenantID, src, b, o, start); err != nil {
		return nil, err
	}
	return gone, nil
}
