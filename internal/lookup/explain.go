package lookup

import (
	"context"
	"time"

	"github.com/callrouter/callrouter/internal/cache"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/tenant"
)

// Explanation is a routing decision laid open: what Route would decide for
// a caller now, from the same rows and by the same rules (Decide, then
// presence), with the verdict on every index row.
type Explanation struct {
	Caller         string `json:"caller"`
	Normalized     string `json:"normalized"`
	NormalizeError string `json:"normalize_error,omitempty"`
	Suffix         string `json:"suffix"`
	// Source is where Route would read the rows: "cache" when the key is
	// cached, else "store" (and, on a miss with live_lookup, the CRM).
	Source     string              `json:"source"`
	OwnerOrder []domain.EntityKind `json:"owner_order"`
	Rows       []RowVerdict        `json:"rows"`
	// Owner is the row whose responsible user owns the call; nil when none.
	Owner  *RowVerdict `json:"owner,omitempty"`
	Reason string      `json:"reason"`
	Target string      `json:"target"`
	Why    string      `json:"why"`
	// Result is the decision itself, for rendering the route answer.
	Result Result `json:"-"`
}

// RowVerdict is one index row and what the decision made of it.
type RowVerdict struct {
	Kind      domain.EntityKind `json:"kind"`
	EntityID  string            `json:"entity_id"`
	Phone     string            `json:"phone"`
	CRMUserID string            `json:"owner_crm_user_id"`
	Open      bool              `json:"open"`
	Chosen    bool              `json:"chosen"`
	Verdict   string            `json:"verdict"`
}

// Explain tells what Route would answer for caller on tenant t at now, and
// why. It reads the cache without counting, and the store (never the CRM);
// it is for admins, not the hot path. Errors are the store's.
func (s *Service) Explain(ctx context.Context, t *tenant.Config, caller string, now time.Time) (Explanation, error) {
	x := Explanation{Caller: caller, OwnerOrder: t.OwnerOrder, Rows: []RowVerdict{}}
	var buf [24]byte
	num, ok := phone.Fast(buf[:0], []byte(caller), t.Region)
	if !ok {
		n, err := phone.Normalize(caller, t.Settings.DefaultCountry)
		if err != nil {
			x.NormalizeError = domain.ErrorMessage(err)
			x.Reason, x.Result = ReasonInvalidCaller.String(), Result{Reason: ReasonInvalidCaller}
			x.Why = "the caller is not a phone number the route endpoint can read, so the PBX gets no forward"
			return x, nil
		}
		num = append(buf[:0], n...)
	}
	x.Normalized = string(num)
	x.Suffix = phone.Suffix(x.Normalized)
	var rows []cache.Row
	if cached, ok := s.cache.Get(t.ID, []byte(x.Suffix), nil); ok {
		x.Source = "cache"
		rows = cached
	} else {
		x.Source = "store"
		entries, err := s.src.LookupSuffix(ctx, t.ID, x.Suffix)
		if err != nil {
			return x, err
		}
		rows = Rows(entries)
		if len(rows) == 0 && t.Settings.LiveLookup && s.live != nil {
			x.Source = "store, then a live CRM search (not run by explain)"
		}
	}
	decided := Decide(t, rows, num)
	final := s.present(t, decided, now)
	x.Reason, x.Target, x.Result = final.Reason.String(), final.Target, final

	rank := map[domain.EntityKind]int{}
	for i, k := range t.OwnerOrder {
		rank[k] = i + 1
	}
	chosen := -1
	for _, kind := range t.OwnerOrder {
		for i := range rows {
			r := &rows[i]
			if chosen < 0 && r.Kind == kind && r.Open && r.OwnerID != "" && phone.SameBytes(r.Phone, num) {
				chosen = i
			}
		}
	}
	for i, r := range rows {
		v := RowVerdict{Kind: r.Kind, EntityID: r.EntityID, Phone: r.Phone, CRMUserID: r.OwnerID, Open: r.Open, Chosen: i == chosen}
		switch {
		case v.Chosen:
			v.Verdict = "chosen"
		case !phone.SameBytes(r.Phone, num):
			v.Verdict = "another number with the same last digits"
		case !r.Open:
			v.Verdict = "closed"
		case r.OwnerID == "":
			v.Verdict = "no responsible user"
		case rank[r.Kind] == 0:
			v.Verdict = "kind not in owner_order"
		default:
			v.Verdict = "an earlier row won"
		}
		x.Rows = append(x.Rows, v)
	}
	if chosen >= 0 {
		x.Owner = &x.Rows[chosen]
	}
	x.Why = why(t, x.Owner, decided, final)
	return x, nil
}

// why says in words how the decision came about.
func why(t *tenant.Config, owner *RowVerdict, decided, final Result) string {
	var s string
	switch decided.Reason {
	case ReasonOwner:
		s = "the " + string(owner.Kind) + " " + owner.EntityID + " is the first open entity in owner_order with this number; its responsible user " +
			owner.CRMUserID + " is mapped to " + decided.Target
	case ReasonDefaultOwner:
		if owner != nil {
			s = "the responsible user " + owner.CRMUserID + " of " + string(owner.Kind) + " " + owner.EntityID +
				" is not mapped to an employee; on_unmapped is default_owner, so the senior manager (" + t.DefaultOwner + ") gets the call"
		} else {
			s = "no open entity with a responsible user has this number; on_miss is default_owner, so the senior manager (" + t.DefaultOwner + ") gets the call"
		}
	case ReasonUnmappedOwner:
		s = "the responsible user " + owner.CRMUserID + " is not mapped to an employee and on_unmapped sends the call on (or there is no mapped senior manager): no forward"
	default:
		s = "no open entity with a responsible user has this number and on_miss is next (or there is no mapped senior manager): no forward"
	}
	if final != decided {
		s += "; then presence: " + final.Reason.String()
		if final.Target != "" {
			s += ", so the senior manager (" + final.Target + ") gets it"
		} else {
			s += ", so the PBX moves on"
		}
	}
	return s
}
