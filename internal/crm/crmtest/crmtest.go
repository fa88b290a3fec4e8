// Package crmtest holds what the fake CRM servers of the adapter tests
// share: a request-rate meter that fails a test when a client exceeds the
// CRM's documented limit, an in-memory token store, and helpers.
package crmtest

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// RateMeter is HTTP middleware that counts requests in every sliding
// one-second window and fails the test when one holds more than Max, the
// way a CRM would start answering 429 or blocking the account.
type RateMeter struct {
	t     testing.TB
	max   int
	now   func() time.Time
	mu    sync.Mutex
	scale int // Scale's k; 0 is 1
	hits  []time.Time
	peak  int
}

// NewRateMeter returns a meter allowing max requests per second.
func NewRateMeter(t testing.TB, max int) *RateMeter {
	return &RateMeter{t: t, max: max, now: time.Now}
}

// Scale makes the meter allow k times the requests per second it was made
// with (setting it twice does not compound). Call it before any request.
func (m *RateMeter) Scale(k int) {
	m.mu.Lock()
	m.scale = k
	m.mu.Unlock()
}

// Wrap counts the requests h serves.
func (m *RateMeter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hit()
		h.ServeHTTP(w, r)
	})
}

func (m *RateMeter) hit() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.hits = append(m.hits, now)
	n := 0
	for i := len(m.hits) - 1; i >= 0 && now.Sub(m.hits[i]) < time.Second; i-- {
		n++
	}
	m.peak = max(m.peak, n)
	if allowed := m.max * max(m.scale, 1); n > allowed {
		m.t.Errorf("rate limit exceeded: %d requests within one second, the CRM allows %d", n, allowed)
	}
}

// Peak returns the most requests seen in one second.
func (m *RateMeter) Peak() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// Count returns the requests seen.
func (m *RateMeter) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.hits)
}

// TokenStore is an in-memory crm.TokenStore that records every save.
type TokenStore struct {
	mu    sync.Mutex
	tok   crm.Token
	ver   int64
	Saves []crm.Token
}

// NewTokenStore returns a store holding tok at version 1.
func NewTokenStore(tok crm.Token) *TokenStore { return &TokenStore{tok: tok, ver: 1} }

// LoadToken implements crm.TokenStore.
func (s *TokenStore) LoadToken(context.Context) (crm.Token, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, s.ver, nil
}

// SaveToken implements crm.TokenStore.
func (s *TokenStore) SaveToken(_ context.Context, tok crm.Token, version int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version != s.ver {
		return 0, domain.Errorf(domain.ECONFLICT, "token changed")
	}
	s.tok, s.ver = tok, s.ver+1
	s.Saves = append(s.Saves, tok)
	return s.ver, nil
}

// Token returns the stored token.
func (s *TokenStore) Token() crm.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// NoSleep is an HTTPConfig.Sleep that returns at once and records the
// waits asked for, so retry tests need no real time.
type NoSleep struct {
	mu    sync.Mutex
	Waits []time.Duration
}

// Sleep implements HTTPConfig.Sleep.
func (n *NoSleep) Sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.Waits = append(n.Waits, d)
	n.mu.Unlock()
	return ctx.Err()
}

// Fake is a fake CRM account served on a loopback port, speaking the CRM's
// real API. Every adapter's fake implements it, so tests beyond the adapter
// (sync engine, live lookup, end to end) can run against all CRMs alike.
type Fake interface {
	// URL is the base URL to configure the integration with.
	URL() string
	// Creds are credentials this fake accepts, as the admin would send them.
	Creds() json.RawMessage
	// Put creates or changes a record (a change is seen by incremental
	// syncs and gets a newer update time).
	Put(e crm.Entity)
	// Delete removes a record.
	Delete(r crm.Ref)
	// SetUsers replaces the account's users.
	SetUsers(users []crm.User)
	// Revoke makes the account reject every current credential, refresh
	// tokens included, with the CRM's own error body.
	Revoke()
	// SetDelay makes API answers take d; a negative d hangs each request
	// until the client gives up.
	SetDelay(d time.Duration)
	// Notification returns the webhook the CRM would post to callrouter
	// after a change of the record r, or ok=false when this CRM's
	// notifications carry nothing callrouter can use for it.
	Notification(r crm.Ref) (contentType string, body []byte, ok bool)
	// Meter counts the requests against the CRM's rate limit.
	Meter() *RateMeter
	// SetClock makes the fake read the time from now: the update times it
	// stamps, its tokens' expiry.
	SetClock(now func() time.Time)
	// ScaleRate makes every limit the fake's meters allow k times higher, for
	// clients made with crm.Deps.RateScale k. Call it before any request.
	ScaleRate(k int)
}

// Delay implements a fake's SetDelay for one request: it waits d, or
// forever when d is negative, and reports whether to answer. It gives up
// (false) when the client goes away (ctx) or the fake shuts down (stop),
// so a hanging fake never holds a test past its end.
func Delay(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	if d == 0 {
		return true
	}
	var elapsed <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		elapsed = t.C
	}
	select {
	case <-elapsed:
		return true
	case <-ctx.Done():
	case <-stop:
	}
	return false
}

// Writes is the part of a fake CRM that call-event tests inspect and
// steer. Every adapter's fake implements it.
type Writes interface {
	// Written returns what clients created through the API (not by Put),
	// in creation order.
	Written() Written
	// SetUTM sets the UTM fields of an existing lead or deal.
	SetUTM(r crm.Ref, u crm.UTM)
	// UTM returns the UTM fields of a lead or deal, created or Put.
	UTM(r crm.Ref) crm.UTM
	// FailWrites makes the next n create or update requests fail with
	// status, with the CRM's own error body (429 carries Retry-After: 1).
	FailWrites(status, n int)
	// LeadKind is the kind of the entity CreateLead makes in this CRM.
	LeadKind() domain.EntityKind
	// Reauthorize ends a Revoke, as an admin granting access again does:
	// Creds returns working credentials afterwards.
	Reauthorize()
	// CustomField returns the address (as a tenant's mapping names it) of
	// a custom text field the fake account has on entity "contact" or
	// "deal"; writes naming fields the account lacks are refused.
	CustomField(entity string) string
	// Fields returns the custom fields (by CustomField's address) record r
	// holds now, as created and updated through the API; nil when none.
	Fields(r crm.Ref) map[string]string
}

// Written is what call events created in a fake CRM, in a shape common to
// all CRMs. Seq orders every creation of the account, across kinds.
type Written struct {
	Contacts []WrittenContact
	Leads    []WrittenLead
	Calls    []WrittenCall
	Tasks    []WrittenTask
}

// WrittenContact is a contact created through the API.
type WrittenContact struct {
	Seq     int
	ID      string
	Phone   string // E.164 digits
	OwnerID string
	Email   string
	Name    string
	// Fields are the custom fields written, by CustomField's address.
	Fields map[string]string
	Tags   []string
}

// WrittenLead is a lead or deal created through the API.
type WrittenLead struct {
	Seq       int
	Kind      domain.EntityKind
	ID        string
	Title     string
	Phone     string // E.164 digits, own or its contact's
	OwnerID   string
	ContactID string
	Pipeline  string // "" when the CRM's default was used
	UTM       crm.UTM
	// Fields are the custom fields written, by CustomField's address.
	Fields map[string]string
	Tags   []string
}

// WrittenCall is a call record created through the API.
type WrittenCall struct {
	Seq      int
	ID       string
	Key      string // what the adapter stored for Find (uniq, externalId...)
	Outgoing bool
	Answered bool
	Phone    string // E.164 digits
	// Start is when the call started, read as the CRM reads what it was
	// sent (retailCRM: a local time in the account's zone).
	Start     time.Time
	Duration  time.Duration
	Recording string
	UserID    string
	LeadID    string // "" when linked to the contact only
	ContactID string
	// Text is the record's human-readable words without the key marker:
	// amoCRM's call_result, Zoho's Subject and Description, Uspacy's
	// subject and note; "" for retailCRM, whose calls carry none.
	Text string
}

// WrittenTask is a task created through the API.
type WrittenTask struct {
	Seq       int
	ID        string
	Text      string
	UserID    string
	LeadID    string
	ContactID string
	Due       time.Time
}

// Merged returns cur with add's values set over it, for fakes whose
// updates keep the fields they are not sent; cur itself is not changed.
func Merged(cur, add map[string]string) map[string]string {
	if len(add) == 0 {
		return cur
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, add)
	return out
}
