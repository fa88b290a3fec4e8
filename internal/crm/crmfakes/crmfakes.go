// Package crmfakes lists the fake CRM servers, so that tests beyond one
// adapter (sync engine, call events, end to end) run against every CRM
// from one table.
package crmfakes

import (
	"testing"

	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/crm/crmtest"
	"github.com/callrouter/callrouter/internal/crm/retailcrm/retailcrmfake"
	"github.com/callrouter/callrouter/internal/crm/uspacy/uspacyfake"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
)

// Fake is a fake CRM account: its API, and what call events wrote in it.
type Fake interface {
	crmtest.Fake
	crmtest.Writes
}

// Entry is one fake CRM and what its CRM can do.
type Entry struct {
	// CRM is the integration's "crm" value.
	CRM string
	New func(testing.TB) Fake
	// Pipelines says whether the CRM's leads take a pipeline (Zoho's
	// leads have none).
	Pipelines bool
}

// All returns every fake CRM.
func All() []Entry {
	return []Entry{
		{"amocrm", func(t testing.TB) Fake { return amocrmfake.New(t) }, true},
		{"zoho", func(t testing.TB) Fake { return zohofake.New(t) }, false},
		{"retailcrm", func(t testing.TB) Fake { return retailcrmfake.New(t) }, true},
		{"uspacy", func(t testing.TB) Fake { return uspacyfake.New(t) }, true},
	}
}
