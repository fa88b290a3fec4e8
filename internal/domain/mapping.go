package domain

import (
	"slices"
	"strconv"
	"strings"
)

// Sources of a mapped value (seed 003's three columns).
const (
	// SourceRingostat takes the value of a Ringostat variable (utm_source,
	// landing, roistat, pool_name…) of the call or form.
	SourceRingostat = "ringostat"
	// SourceForm takes the first non-empty of a comma-separated list of
	// form field names.
	SourceForm = "form"
	// SourceConstant writes Value itself.
	SourceConstant = "constant"
)

// Entities a mapping writes to.
const (
	MapContact = "contact"
	MapDeal    = "deal"
)

// Limits of a mapping.
const (
	MaxMappedFields  = 50
	MaxMappedValue   = 1024
	MaxCRMFieldBytes = 128
)

// FieldMap writes one CRM field: CRMField is addressed the way the CRM
// does (an amoCRM field id or code, a Zoho API name, a retailCRM
// customFields code or standard field, a Uspacy field code); the value
// comes from Source and Value.
type FieldMap struct {
	CRMField string `json:"crm_field"`
	Source   string `json:"source"`
	Value    string `json:"value"`
}

// Mapping lists, per entity (contact, deal), the fields written into it.
type Mapping map[string][]FieldMap

// Resolve returns the CRM fields of entity with their values for an event
// whose fields are given; a mapping whose value is empty is left out, so
// an empty form field never blanks a CRM field.
func (m Mapping) Resolve(entity string, fields map[string]string) map[string]string {
	var out map[string]string
	for _, f := range m[entity] {
		var v string
		switch f.Source {
		case SourceConstant:
			v = f.Value
		case SourceRingostat:
			v = strings.TrimSpace(fields[f.Value])
		case SourceForm:
			for _, name := range strings.Split(f.Value, ",") {
				if v = strings.TrimSpace(fields[strings.TrimSpace(name)]); v != "" {
					break
				}
			}
		}
		if v == "" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[f.CRMField] = v
	}
	return out
}

// Fields returns the CRM fields the mapping of entity writes.
func (m Mapping) Fields(entity string) []string {
	var out []string
	for _, f := range m[entity] {
		out = append(out, f.CRMField)
	}
	return out
}

func (m *Mapping) normalize() {
	if *m == nil {
		*m = Mapping{}
	}
	for ent, fs := range *m {
		for i := range fs {
			f := &fs[i]
			f.CRMField = strings.TrimSpace(f.CRMField)
			f.Source = strings.ToLower(strings.TrimSpace(f.Source))
			if f.Source != SourceConstant {
				f.Value = strings.TrimSpace(f.Value)
			}
		}
		(*m)[ent] = fs
	}
}

// validate returns an EINVALID error naming the first bad entry of the
// setting called name.
func (m Mapping) validate(name string) error {
	ents := make([]string, 0, len(m))
	for ent := range m {
		ents = append(ents, ent)
	}
	slices.Sort(ents)
	for _, ent := range ents {
		fs := m[ent]
		if ent != MapContact && ent != MapDeal {
			return Errorf(EINVALID, "%s.%s: unknown entity (use contact or deal)", name, clipKey(ent))
		}
		if len(fs) > MaxMappedFields {
			return Errorf(EINVALID, "%s.%s: at most %d fields, got %d", name, ent, MaxMappedFields, len(fs))
		}
		seen := map[string]bool{}
		for i, f := range fs {
			at := func(field string) string { return name + "." + ent + "[" + strconv.Itoa(i) + "]." + field }
			if f.CRMField == "" || len(f.CRMField) > MaxCRMFieldBytes {
				return Errorf(EINVALID, "%s: must be the CRM field's id, code or API name, 1-%d bytes", at("crm_field"), MaxCRMFieldBytes)
			}
			if seen[f.CRMField] {
				return Errorf(EINVALID, "%s: %q mapped twice", at("crm_field"), clipKey(f.CRMField))
			}
			seen[f.CRMField] = true
			switch f.Source {
			case SourceRingostat, SourceForm:
				if f.Value == "" {
					return Errorf(EINVALID, "%s: must name the %s field to read", at("value"), f.Source)
				}
			case SourceConstant:
			default:
				return Errorf(EINVALID, "%s: must be ringostat, form or constant, got %q", at("source"), clipKey(f.Source))
			}
			if len(f.Value) > MaxMappedValue {
				return Errorf(EINVALID, "%s: longer than %d bytes", at("value"), MaxMappedValue)
			}
		}
	}
	return nil
}
