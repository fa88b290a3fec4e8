package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
)

// statusTTL is how long the account's order statuses are trusted: admins
// add statuses rarely, and rereading them costs a request of the rate limit.
const statusTTL = 10 * time.Minute

// finalGroups are retailCRM's status groups of finished orders.
var finalGroups = map[string]bool{"complete": true, "cancel": true}

// finalStatuses are the final status codes of a new retailCRM account, used
// when the key may not read the status reference: "complete" (group
// complete) and the codes of the default cancel group. Accounts can add
// their own, which then count as open.
var finalStatuses = map[string]bool{
	"complete":              true,
	"cancel-other":          true,
	"canceled":              true,
	"cancelled":             true,
	"no-call":               true,
	"no-product":            true,
	"already-buyed":         true,
	"delyvery-did-not-suit": true,
	"prices-did-not-suit":   true,
}

// statusRef is one order status of /api/v5/reference/statuses.
type statusRef struct {
	Code  string `json:"code"`
	Group string `json:"group"`
}

type statusesAnswer struct {
	envelope
	// Statuses is an object keyed by code; a list is accepted too.
	Statuses json.RawMessage `json:"statuses"`
}

// openFunc returns a function telling whether an order status is not
// final, loading the account's status reference when it is older than
// statusTTL. A key that may not read the reference (403 Access denied.)
// falls back to finalStatuses until the next reload; other errors are
// returned, so a passing outage does not mark the account's own final
// statuses open for ten minutes.
func (s *Source) openFunc(ctx context.Context) (func(string) bool, error) {
	s.mu.Lock()
	final, at := s.final, s.loadedAt
	s.mu.Unlock()
	if at.IsZero() || s.now().Sub(at) >= statusTTL {
		var err error
		if final, err = s.loadStatuses(ctx); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.final, s.loadedAt = final, s.now()
		s.mu.Unlock()
	}
	return func(status string) bool {
		if final != nil {
			if f, ok := final[status]; ok {
				return !f
			}
		}
		return !finalStatuses[status]
	}, nil
}

// loadStatuses reads which status codes are final; nil when the key may
// not read them.
func (s *Source) loadStatuses(ctx context.Context) (map[string]bool, error) {
	var a statusesAnswer
	err := s.get(ctx, "/api/v5/reference/statuses", nil, false, &a)
	var se *crm.StatusError
	if errors.As(err, &se) && se.Status == http.StatusForbidden {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var refs []statusRef
	var byCode map[string]statusRef
	if json.Unmarshal(a.Statuses, &byCode) == nil {
		for code, r := range byCode {
			if r.Code == "" {
				r.Code = code
			}
			refs = append(refs, r)
		}
	} else if err := json.Unmarshal(a.Statuses, &refs); err != nil {
		return nil, nil
	}
	final := make(map[string]bool, len(refs))
	for _, r := range refs {
		final[r.Code] = finalGroups[r.Group]
	}
	return final, nil
}
