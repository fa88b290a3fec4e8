// Package adapters lists every CRM adapter callrouter supports.
package adapters

import (
	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm"
	"github.com/callrouter/callrouter/internal/crm/retailcrm"
	"github.com/callrouter/callrouter/internal/crm/uspacy"
	"github.com/callrouter/callrouter/internal/crm/zoho"
)

// All returns the supported CRMs' adapters.
func All() []crm.Adapter {
	return []crm.Adapter{amocrm.Adapter, zoho.Adapter, retailcrm.Adapter, uspacy.Adapter}
}
