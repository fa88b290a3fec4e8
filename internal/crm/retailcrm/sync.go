package retailcrm

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// Full-sync phases, in order.
const (
	phaseCustomers = "customers"
	phaseOrders    = "orders"
)

// The history feeds.
const (
	customersHistory = "/api/v5/customers/history"
	ordersHistory    = "/api/v5/orders/history"
)

// cursor is the adapter's sync position, stored by the engine as JSON.
// During a full sync Kind and Page say which page comes next; a finished
// full sync and every incremental one have Kind "" and only the history
// positions.
type cursor struct {
	Kind string `json:"kind,omitempty"`
	Page int    `json:"page,omitempty"`
	// CustomersSince and OrdersSince are the last history record ids read
	// (or, before any was, the ids the feeds ended at when the full sync
	// began); incremental syncs read the records after them.
	CustomersSince int64 `json:"customers_since"`
	OrdersSince    int64 `json:"orders_since"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c) // a struct of strings and integers always encodes
	return string(b)
}

func parseCursor(s string) (cursor, error) {
	var c cursor
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.CustomersSince < 0 || c.OrdersSince < 0 {
		return c, domain.Errorf(domain.EINVALID, "retailcrm: cursor %q is not one of this adapter's", s)
	}
	return c, nil
}

type customersAnswer struct {
	envelope
	Pagination pagination `json:"pagination"`
	Customers  []customer `json:"customers"`
}

type ordersAnswer struct {
	envelope
	Pagination pagination `json:"pagination"`
	Orders     []order    `json:"orders"`
}

// Full returns the next page of a full sync: first every customer, then
// every order, one page of 100 per call. The first call (cursor "") also
// notes where both history feeds end. When Done, Cursor is where Changes
// starts. Errors: EINVALID for a cursor that is not a full sync's, and those
// of the CRM calls (*crm.AuthError, *crm.StatusError, transport and context
// errors).
func (s *Source) Full(ctx context.Context, cur string) (crm.Batch, error) {
	var c cursor
	if cur == "" {
		var err error
		if c.CustomersSince, err = s.lastHistoryID(ctx, customersHistory); err != nil {
			return crm.Batch{}, err
		}
		if c.OrdersSince, err = s.lastHistoryID(ctx, ordersHistory); err != nil {
			return crm.Batch{}, err
		}
		c.Kind, c.Page = phaseCustomers, 1
	} else {
		var err error
		if c, err = parseCursor(cur); err != nil {
			return crm.Batch{}, err
		}
		if (c.Kind != phaseCustomers && c.Kind != phaseOrders) || c.Page < 1 {
			return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm: cursor %q is not a full sync's", cur)
		}
	}
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}, "page": {strconv.Itoa(c.Page)}}
	var b crm.Batch
	var last bool
	switch c.Kind {
	case phaseCustomers:
		var a customersAnswer
		if err := s.get(ctx, "/api/v5/customers", q, false, &a); err != nil {
			return crm.Batch{}, err
		}
		for i := range a.Customers {
			b.Entities = append(b.Entities, a.Customers[i].entity())
		}
		last = a.Pagination.last(c.Page) || len(a.Customers) == 0
	case phaseOrders:
		open, err := s.openFunc(ctx)
		if err != nil {
			return crm.Batch{}, err
		}
		var a ordersAnswer
		if err := s.get(ctx, "/api/v5/orders", q, false, &a); err != nil {
			return crm.Batch{}, err
		}
		for i := range a.Orders {
			b.Entities = append(b.Entities, a.Orders[i].entity(open))
		}
		last = a.Pagination.last(c.Page) || len(a.Orders) == 0
	}
	switch {
	case !last:
		c.Page++
	case c.Kind == phaseCustomers:
		c.Kind, c.Page = phaseOrders, 1
	default:
		c.Kind, c.Page = "", 0
		b.Done = true
	}
	b.Cursor = c.String()
	return b, nil
}

// historyRecord is one record of a customers or orders history feed.
type historyRecord struct {
	ID         int64     `json:"id"`
	CreatedAt  string    `json:"createdAt"`
	Created    bool      `json:"created"`
	Deleted    bool      `json:"deleted"`
	Field      string    `json:"field"`
	Customer   *customer `json:"customer"`
	Order      *order    `json:"order"`
	CombinedTo *struct {
		ID int64 `json:"id"`
	} `json:"combinedTo"`
}

type historyAnswer struct {
	envelope
	Pagination pagination      `json:"pagination"`
	History    []historyRecord `json:"history"`
}

// lastHistoryID returns the id of the newest record of a history feed, 0
// for an empty feed. The feed is sorted by id, so that is the last record
// of its last page: a small first page tells how many pages there are.
func (s *Source) lastHistoryID(ctx context.Context, feed string) (int64, error) {
	const small = 20
	q := url.Values{"limit": {strconv.Itoa(small)}}
	var a historyAnswer
	if err := s.get(ctx, feed, q, false, &a); err != nil {
		return 0, err
	}
	if n := a.Pagination.TotalPageCount; n > 1 {
		q.Set("page", strconv.Itoa(n))
		a = historyAnswer{}
		if err := s.get(ctx, feed, q, false, &a); err != nil {
			return 0, err
		}
	}
	var last int64
	for _, r := range a.History {
		last = max(last, r.ID)
	}
	return last, nil
}

// Changes returns the next page of changes: up to 100 records of each
// history feed after the cursor's positions, folded into one batch per
// entity (see changeSet). Done reports that both feeds are read to their
// end. Errors: EINVALID for a cursor that is not a finished sync's, and
// those of the CRM calls.
func (s *Source) Changes(ctx context.Context, cur string) (crm.Batch, error) {
	if cur == "" {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm: incremental sync needs the cursor of a finished full sync")
	}
	c, err := parseCursor(cur)
	if err != nil {
		return crm.Batch{}, err
	}
	if c.Kind != "" {
		return crm.Batch{}, domain.Errorf(domain.EINVALID, "retailcrm: incremental sync needs the cursor of a finished full sync, got %q", cur)
	}
	cs := newChangeSet()
	moreCustomers, err := s.readHistory(ctx, customersHistory, &c.CustomersSince, cs)
	if err != nil {
		return crm.Batch{}, err
	}
	moreOrders, err := s.readHistory(ctx, ordersHistory, &c.OrdersSince, cs)
	if err != nil {
		return crm.Batch{}, err
	}
	b := cs.batch()
	b.Cursor = c.String()
	b.Done = !moreCustomers && !moreOrders
	return b, nil
}

// readHistory reads one page of a feed after *since into cs, advances
// *since to the last record read, and reports whether more records follow.
func (s *Source) readHistory(ctx context.Context, feed string, since *int64, cs *changeSet) (bool, error) {
	q := url.Values{"filter[sinceId]": {strconv.FormatInt(*since, 10)}, "limit": {strconv.Itoa(pageLimit)}}
	var a historyAnswer
	if err := s.get(ctx, feed, q, false, &a); err != nil {
		return false, err
	}
	var open func(string) bool
	from := *since
	for i := range a.History {
		r := &a.History[i]
		// sinceId is documented as "from this id": should the bound be
		// inclusive, the record already read is skipped here.
		if r.ID <= from {
			continue
		}
		*since = max(*since, r.ID)
		if r.Order != nil && r.Created && open == nil {
			var err error
			if open, err = s.openFunc(ctx); err != nil {
				return false, err
			}
		}
		cs.add(r, open)
	}
	more := len(a.History) >= pageLimit || a.Pagination.TotalPageCount > 1
	return more, nil
}

// Fields whose change can move a phone's routing; changes of any other
// field are skipped. History field names are retailCRM's snake_case ones.
var (
	customerFields = map[string]bool{"phones": true, "manager": true, "first_name": true, "last_name": true}
	orderFields    = map[string]bool{
		"status": true, "manager": true, "phone": true, "additional_phone": true,
		"first_name": true, "last_name": true, "number": true, "customer": true, "contact": true,
	}
)

// What a batch says about one entity.
type verdict int

const (
	verdictEntity  verdict = iota + 1 // carried whole
	verdictRefetch                    // changed, read it again
	verdictDeleted                    // gone
)

type change struct {
	verdict verdict
	entity  crm.Entity
}

// changeSet folds history records, oldest first, into one verdict per
// entity, so no entity is both carried and deleted in one batch: a
// deletion wins; a record after the one that carried an entity makes it
// stale, so it is refetched; anything after a deletion (a restore, should
// retailCRM have one) is refetched, and Get tells the truth.
type changeSet struct {
	order []crm.Ref
	byRef map[crm.Ref]*change
}

func newChangeSet() *changeSet { return &changeSet{byRef: map[crm.Ref]*change{}} }

func (cs *changeSet) set(ref crm.Ref, v verdict, e crm.Entity) {
	c, ok := cs.byRef[ref]
	if !ok {
		cs.order = append(cs.order, ref)
		cs.byRef[ref] = &change{verdict: v, entity: e}
		return
	}
	switch {
	case v == verdictDeleted:
		c.verdict = verdictDeleted
	case c.verdict == verdictEntity, c.verdict == verdictDeleted:
		c.verdict = verdictRefetch
	}
}

// add folds one history record; open tells order statuses apart and is
// only used for records that create an order.
func (cs *changeSet) add(r *historyRecord, open func(string) bool) {
	var ref crm.Ref
	var relevant bool
	var whole func() crm.Entity
	switch {
	case r.Customer != nil && r.Customer.ID != 0:
		ref = crm.Ref{Kind: domain.KindContact, ID: idString(r.Customer.ID)}
		relevant = customerFields[r.Field]
		whole = r.Customer.entity
	case r.Order != nil && r.Order.ID != 0:
		ref = crm.Ref{Kind: domain.KindDeal, ID: idString(r.Order.ID)}
		relevant = orderFields[r.Field]
		whole = func() crm.Entity { return r.Order.entity(open) }
	default:
		return
	}
	switch {
	case r.Deleted:
		cs.set(ref, verdictDeleted, crm.Entity{})
	case r.Created:
		e := whole()
		if t := parseTime(r.CreatedAt); t.After(e.UpdatedAt) {
			e.UpdatedAt = t
		}
		cs.set(ref, verdictEntity, e)
	case relevant:
		cs.set(ref, verdictRefetch, crm.Entity{})
	}
	// Merged customers and orders: the survivor gains the phones.
	if r.CombinedTo != nil && r.CombinedTo.ID != 0 {
		cs.set(crm.Ref{Kind: ref.Kind, ID: idString(r.CombinedTo.ID)}, verdictRefetch, crm.Entity{})
	}
}

func (cs *changeSet) batch() crm.Batch {
	var b crm.Batch
	for _, ref := range cs.order {
		switch c := cs.byRef[ref]; c.verdict {
		case verdictEntity:
			b.Entities = append(b.Entities, c.entity)
		case verdictRefetch:
			b.Refetch = append(b.Refetch, ref)
		case verdictDeleted:
			b.Deleted = append(b.Deleted, ref)
		}
	}
	return b
}
