package crm

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Deps are what an adapter gets from callrouter besides its Config.
type Deps struct {
	// Tokens keeps OAuth tokens; required by OAuth adapters.
	Tokens TokenStore
	// Transport, Sleep and Now are for tests; nil means the real ones.
	Transport http.RoundTripper
	Sleep     func(ctx context.Context, d time.Duration) error
	Now       func() time.Time
}

// Adapter describes one CRM to the rest of callrouter. Each adapter
// package exports one.
type Adapter struct {
	// Name is the value of the integration's "crm" field.
	Name string
	// Check validates credentials and names the bad or missing field
	// (EINVALID).
	Check func(creds json.RawMessage) error
	// Seed returns the token pair an OAuth integration starts from; ok is
	// false for CRMs without tokens.
	Seed func(creds json.RawMessage) (tok Token, ok bool)
	// New connects to one account. EINVALID for bad credentials or base URL.
	New func(cfg Config, deps Deps) (Source, error)
	// MinInterval is the least time between two scheduled incremental
	// syncs, for CRMs that charge every call against a daily quota; webhooks
	// still apply at once. Zero: the server's sync interval alone decides.
	MinInterval time.Duration
}
