package admin

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/callrouter/callrouter/internal/domain"
)

// standardMapped are the crm_field names every CRM has under one name
// (the entity's name, tags, the client's phone and e-mail), which no
// field list holds.
var standardMapped = []string{"name", "title", "tag", "tags", "phone", "email"}

// checkMappings refuses a changed form or call mapping naming a field the
// tenant's CRM account lacks, where the CRM lets callrouter list its
// fields (amoCRM, Zoho CRM, retailCRM). Without an integration, or when
// the CRM cannot be asked, the mapping is saved unchecked: the CRM then
// refuses the write and the event's note names the field.
func (s *Service) checkMappings(ctx context.Context, tenantID string, old, cur domain.Settings) error {
	if s.crms == nil {
		return nil
	}
	type named struct {
		name string
		m    domain.Mapping
	}
	var changed []named
	if !reflect.DeepEqual(old.FormMapping, cur.FormMapping) {
		changed = append(changed, named{"form_mapping", cur.FormMapping})
	}
	if !reflect.DeepEqual(old.CallMapping, cur.CallMapping) {
		changed = append(changed, named{"call_mapping", cur.CallMapping})
	}
	listed := map[string][]string{}
	for _, c := range changed {
		for _, ent := range []string{domain.MapContact, domain.MapDeal} {
			for i, f := range c.m[ent] {
				if slices.Contains(standardMapped, strings.ToLower(f.CRMField)) {
					continue
				}
				fields, seen := listed[ent]
				if !seen {
					crmName, fs, ok, err := s.crms.MappableFields(ctx, tenantID, ent)
					if err != nil || !ok {
						// Not listable now: checked by the CRM at write time.
						return nil
					}
					fields = fs
					listed[ent] = fields
					listed["crm"] = []string{crmName}
				}
				if !slices.Contains(fields, f.CRMField) && !slices.Contains(fields, strings.ToUpper(f.CRMField)) {
					return domain.Errorf(domain.EINVALID, "%s.%s[%d].crm_field: the %s account has no %s field %q",
						c.name, ent, i, listed["crm"][0], ent, f.CRMField)
				}
			}
		}
	}
	return nil
}

// checkUnsorted refuses amo_unsorted for a tenant connected to a CRM other
// than amoCRM: only amoCRM has unsorted leads, and a setting stored but
// never applied would mislead. A tenant without an integration may set it
// ahead of connecting amoCRM.
func (s *Service) checkUnsorted(ctx context.Context, tenantID string, cur domain.Settings) error {
	if !cur.AmoUnsorted {
		return nil
	}
	in, err := s.store.Integration(ctx, tenantID)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return nil
	case err != nil:
		return fmt.Errorf("read the integration: %w", err)
	case in.CRM != "amocrm":
		return domain.Errorf(domain.EINVALID, "amo_unsorted: unsorted leads are amoCRM's; this tenant's CRM is %s", in.CRM)
	}
	return nil
}
