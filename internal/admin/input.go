package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"

	"github.com/callrouter/callrouter/internal/domain"
)

// The inputs of the admin operations. The HTTP transport decodes request
// bodies into them (strictly: an unknown field is refused, naming it); the
// service validates them, because the console and the CLI reach it the
// same way and a caller in Go may hand it anything.

// NewTenant is a tenant to create: its id, its name (the id when empty)
// and its settings, flat next to them in JSON.
type NewTenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	domain.Settings
}

// NewTenantDefaults returns a NewTenant holding the settings of a new
// tenant, for a body to be decoded on top of: fields the body leaves out
// keep their defaults and the body's matrix rows merge into the default
// matrix.
func NewTenantDefaults() NewTenant { return NewTenant{Settings: domain.DefaultSettings()} }

// TenantPatch changes a tenant's name and the settings it gives; what it
// leaves out keeps its stored value. In JSON the settings are flat next to
// the name, as in the tenant's view.
type TenantPatch struct {
	Name *string `json:"name,omitzero"`
	SettingsPatch
}

// Given is a list or object setting of a SettingsPatch: Set when the patch
// gives it. A given null (Set with a nil Value) resets the setting to its
// default, as it always did when a body was decoded onto the stored
// settings; an absent one keeps the stored value.
type Given[T any] struct {
	Value T
	Set   bool
}

// Give returns v as a given setting.
func Give[T any](v T) Given[T] { return Given[T]{Value: v, Set: true} }

// UnmarshalJSON marks the setting given and decodes it, refusing unknown
// fields of nested objects (pipeline rules, mappings) as the decoder of the
// whole body does, which does not reach into an Unmarshaler. Type errors
// come back with their field path for the outer decoder to extend.
func (g *Given[T]) UnmarshalJSON(b []byte) error {
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	g.Value, g.Set = v, true
	return nil
}

// MarshalJSON encodes the value (null when given as null).
func (g Given[T]) MarshalJSON() ([]byte, error) { return json.Marshal(g.Value) }

// IsZero reports whether the setting was left out, for omitzero.
func (g Given[T]) IsZero() bool { return !g.Set }

// SettingsPatch is a change of a tenant's settings: one field per field of
// domain.Settings, under the same JSON name. A nil scalar keeps the stored
// value; so does a JSON null, as it did when bodies were decoded onto the
// stored settings. Lists replace the stored ones; the matrix and the
// mappings merge into the stored ones row by row (entity by entity); and
// form_entities sets the matrix's form row only when given.
type SettingsPatch struct {
	DefaultCountry            *string                      `json:"default_country,omitzero"`
	CallerParam               *string                      `json:"caller_param,omitzero"`
	ResponseFormat            *string                      `json:"response_format,omitzero"`
	ResponseField             *string                      `json:"response_field,omitzero"`
	RouteBudgetMS             *int                         `json:"route_budget_ms,omitzero"`
	OwnerOrder                Given[[]domain.EntityKind]   `json:"owner_order,omitzero"`
	OnMiss                    *string                      `json:"on_miss,omitzero"`
	OnUnmapped                *string                      `json:"on_unmapped,omitzero"`
	LiveLookup                *bool                        `json:"live_lookup,omitzero"`
	LeadOnCallStart           *bool                        `json:"lead_on_call_start,omitzero"`
	CallbackDueMinutes        *int                         `json:"callback_due_minutes,omitzero"`
	PipelineRules             Given[[]domain.PipelineRule] `json:"pipeline_rules,omitzero"`
	Matrix                    Given[domain.Matrix]         `json:"matrix,omitzero"`
	FormEntities              Given[[]string]              `json:"form_entities,omitzero"`
	FormPhoneFields           Given[[]string]              `json:"form_phone_fields,omitzero"`
	FormEmailFields           Given[[]string]              `json:"form_email_fields,omitzero"`
	FormMapping               Given[domain.Mapping]        `json:"form_mapping,omitzero"`
	CallMapping               Given[domain.Mapping]        `json:"call_mapping,omitzero"`
	AmoUnsorted               *bool                        `json:"amo_unsorted,omitzero"`
	Language                  *string                      `json:"language,omitzero"`
	Presence                  *string                      `json:"presence,omitzero"`
	OnUnavailable             *string                      `json:"on_unavailable,omitzero"`
	AutoCallback              *bool                        `json:"auto_callback,omitzero"`
	AutoCallbackDelaySeconds  *int                         `json:"auto_callback_delay_seconds,omitzero"`
	AutoCallbackWindowMinutes *int                         `json:"auto_callback_window_minutes,omitzero"`
	EventRetentionDays        *int                         `json:"event_retention_days,omitzero"`
	Timezone                  *string                      `json:"timezone,omitzero"`
	ReconcileIntervalHours    *int                         `json:"reconcile_interval_hours,omitzero"`
}

// apply returns st with the patch applied, not yet normalized or
// validated. The maps it returns are copies, so st's stay as they were to
// compare with; form_entities is cleared unless given, so that only a
// patch giving it sets the matrix's form row through it.
func (p SettingsPatch) apply(st domain.Settings) domain.Settings {
	set(&st.DefaultCountry, p.DefaultCountry)
	set(&st.CallerParam, p.CallerParam)
	set(&st.ResponseFormat, p.ResponseFormat)
	set(&st.ResponseField, p.ResponseField)
	set(&st.RouteBudgetMS, p.RouteBudgetMS)
	replace(&st.OwnerOrder, p.OwnerOrder)
	set(&st.OnMiss, p.OnMiss)
	set(&st.OnUnmapped, p.OnUnmapped)
	set(&st.LiveLookup, p.LiveLookup)
	set(&st.LeadOnCallStart, p.LeadOnCallStart)
	set(&st.CallbackDueMinutes, p.CallbackDueMinutes)
	replace(&st.PipelineRules, p.PipelineRules)
	st.Matrix = merge(st.Matrix, p.Matrix)
	st.FormEntities = nil
	replace(&st.FormEntities, p.FormEntities)
	replace(&st.FormPhoneFields, p.FormPhoneFields)
	replace(&st.FormEmailFields, p.FormEmailFields)
	st.FormMapping = merge(st.FormMapping, p.FormMapping)
	st.CallMapping = merge(st.CallMapping, p.CallMapping)
	set(&st.AmoUnsorted, p.AmoUnsorted)
	set(&st.Language, p.Language)
	set(&st.Presence, p.Presence)
	set(&st.OnUnavailable, p.OnUnavailable)
	set(&st.AutoCallback, p.AutoCallback)
	set(&st.AutoCallbackDelaySeconds, p.AutoCallbackDelaySeconds)
	set(&st.AutoCallbackWindowMinutes, p.AutoCallbackWindowMinutes)
	set(&st.EventRetentionDays, p.EventRetentionDays)
	set(&st.Timezone, p.Timezone)
	set(&st.ReconcileIntervalHours, p.ReconcileIntervalHours)
	return st
}

// cloneSettings returns a copy of st sharing no list or map with it, down
// to the matrix's rows and the mappings' fields, which normalization
// rewrites in place.
func cloneSettings(st domain.Settings) domain.Settings {
	st.OwnerOrder = slices.Clone(st.OwnerOrder)
	st.PipelineRules = slices.Clone(st.PipelineRules)
	st.FormEntities = slices.Clone(st.FormEntities)
	st.FormPhoneFields = slices.Clone(st.FormPhoneFields)
	st.FormEmailFields = slices.Clone(st.FormEmailFields)
	st.Matrix = cloneRows(st.Matrix)
	st.FormMapping = cloneRows(st.FormMapping)
	st.CallMapping = cloneRows(st.CallMapping)
	return st
}

// cloneRows copies a map of lists and each of its lists.
func cloneRows[M ~map[string][]E, E any](m M) M {
	if m == nil {
		return nil
	}
	out := make(M, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// replace sets a list to a given one; a given null resets it (the settings'
// normalization then fills in the default).
func replace[T any](dst *[]T, v Given[[]T]) {
	if v.Set {
		*dst = slices.Clone(v.Value)
	}
}

// merge returns a copy of stored with the given entries put over it; a
// given null drops the stored map (normalization fills in the defaults).
func merge[M ~map[string]V, V any](stored M, v Given[M]) M {
	switch {
	case !v.Set:
		return maps.Clone(stored)
	case v.Value == nil:
		return nil
	}
	out := maps.Clone(stored)
	if out == nil {
		out = make(M, len(v.Value))
	}
	maps.Copy(out, v.Value)
	return out
}

// DefaultOwnerInput sets a tenant's default owner; CRMUserID is required,
// and "" clears it.
type DefaultOwnerInput struct {
	CRMUserID *string `json:"crm_user_id"`
}

// EmployeeInput maps a CRM user to a SIP login and/or a phone.
type EmployeeInput struct {
	SIP   string `json:"sip"`
	Phone string `json:"phone"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// StopInput describes a stop-list number: a note and its kind ("line", the
// default, or "client").
type StopInput struct {
	Note string `json:"note"`
	Kind string `json:"kind"`
}

// IntegrationInput connects a tenant to its CRM: the CRM's name, its base
// URL and the credentials its adapter checks.
type IntegrationInput struct {
	CRM         string     `json:"crm"`
	BaseURL     string     `json:"base_url"`
	Credentials SecretJSON `json:"credentials"`
}

// ActivateInput says what an activation does with the call events that
// waited while the integration was not active: replay them (Resend) or
// drop them.
type ActivateInput struct {
	Resend bool `json:"resend"`
}

// RingostatInput connects a tenant to its Ringostat project; an empty
// BaseURL means ringostat.DefaultBaseURL.
type RingostatInput struct {
	BaseURL   string    `json:"base_url"`
	AuthKey   Secret    `json:"auth_key"`
	ProjectID ProjectID `json:"project_id"`
}

// ProjectID is a Ringostat project id. The cabinet shows it as a number,
// so JSON may carry a string or a number; anything else decodes to "",
// which the service refuses naming project_id.
type ProjectID string

// UnmarshalJSON takes a string or a number.
func (p *ProjectID) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		*p = ProjectID(x)
	case float64:
		*p = ProjectID(fmt.Sprintf("%.0f", x))
	default:
		*p = ""
	}
	return nil
}

// SALESmanagoInput connects a tenant to its SALESmanago account.
type SALESmanagoInput struct {
	BaseURL    string `json:"base_url"`
	ClientID   string `json:"client_id"`
	APIKey     Secret `json:"api_key"`
	APISecret  Secret `json:"api_secret"`
	OwnerEmail string `json:"owner_email"`
}

// RotateInput is a webhook secret rotation: how long the replaced secret
// keeps working (nil: DefaultSecretGrace).
type RotateInput struct {
	GraceSeconds *int64 `json:"grace_seconds"`
}

// TokenInput is an admin token to create: its name and scope ("read" or
// "admin").
type TokenInput struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

// redacted is what a Secret or SecretJSON shows instead of itself.
const redacted = "[redacted]"

// Secret is a credential in an admin input (an API key, an Auth-key). It
// decodes from a JSON string like any string, but never shows itself: fmt
// with any verb, zap (a Stringer, or reflected through encoding/json),
// slog and encoding/json all get "[redacted]", so an input that reaches a
// log line or an audit entry cannot leak it. The service reads it with
// string(s).
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON encodes "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// LogValue is "[redacted]" for slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// SecretJSON is a JSON value holding credentials (an integration's): kept
// as its raw bytes when decoded, and redacted like a Secret everywhere it
// could be shown.
type SecretJSON []byte

// UnmarshalJSON keeps a copy of the raw value, null included (which the
// service refuses as missing).
func (s *SecretJSON) UnmarshalJSON(b []byte) error {
	*s = append((*s)[:0], b...)
	return nil
}

// String returns "[redacted]".
func (SecretJSON) String() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (SecretJSON) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON encodes "[redacted]".
func (SecretJSON) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// LogValue is "[redacted]" for slog.
func (SecretJSON) LogValue() slog.Value { return slog.StringValue(redacted) }
