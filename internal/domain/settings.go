package domain

import (
	"slices"
	"strings"
	"time"
	// The zone database is embedded so that timezone is validated and
	// applied the same on hosts without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Settings are a tenant's routing settings, as the admin API shows them.
type Settings struct {
	DefaultCountry string       `json:"default_country"`
	CallerParam    string       `json:"caller_param"`
	ResponseFormat string       `json:"response_format"`
	ResponseField  string       `json:"response_field"`
	RouteBudgetMS  int          `json:"route_budget_ms"`
	OwnerOrder     []EntityKind `json:"owner_order"`
	OnMiss         string       `json:"on_miss"`
	OnUnmapped     string       `json:"on_unmapped"`
	LiveLookup     bool         `json:"live_lookup"`
	// LeadOnCallStart creates a lead for a new client as soon as an
	// incoming call starts, assigned to the default owner.
	LeadOnCallStart bool `json:"lead_on_call_start"`
	// CallbackDueMinutes is how long after a missed call its call-back task
	// is due.
	CallbackDueMinutes int `json:"callback_due_minutes"`
	// PipelineRules choose the pipeline of a new lead from the call's
	// fields; the first matching rule wins, none matching leaves the CRM's
	// default.
	PipelineRules []PipelineRule `json:"pipeline_rules"`
	// Matrix chooses what each kind of call, and a website form, creates
	// in the CRM; rows left out keep DefaultMatrix's.
	Matrix Matrix `json:"matrix"`
	// FormEntities is the matrix's form row under the name the form
	// settings use: the two are one setting, and a body that gives
	// form_entities sets the form row.
	FormEntities []string `json:"form_entities"`
	// FormPhoneFields and FormEmailFields name the form fields the client's
	// phone and e-mail are read from, first non-empty wins.
	FormPhoneFields []string `json:"form_phone_fields"`
	FormEmailFields []string `json:"form_email_fields"`
	// FormMapping and CallMapping write form fields, Ringostat variables
	// and constants into CRM fields of the entities forms and calls create.
	FormMapping Mapping `json:"form_mapping"`
	CallMapping Mapping `json:"call_mapping"`
	// AmoUnsorted files a new client's incoming calls and website forms
	// as amoCRM unsorted leads for the managers to accept, as Ringostat's
	// "requests" do, instead of the entities the matrix makes. Only an
	// amoCRM integration takes it: the admin API refuses it for a tenant
	// connected to another CRM.
	AmoUnsorted bool `json:"amo_unsorted"`
	// Language is the language of lead titles, task texts and call notes
	// callrouter writes into the CRM.
	Language string `json:"language"`
	// Presence makes routing skip an owner whose Ringostat SIP login is
	// offline (skip_offline) or offline or in a call
	// (skip_offline_and_busy); off by default.
	Presence string `json:"presence"`
	// OnUnavailable is what a call of a skipped owner gets: the default
	// owner (default_owner) or the PBX's next block (next).
	OnUnavailable string `json:"on_unavailable"`
	// AutoCallback asks Ringostat to connect a client whose call was
	// missed with the responsible manager, AutoCallbackDelaySeconds after
	// the call unless the client called again or was called back, at most
	// once per client per AutoCallbackWindowMinutes.
	AutoCallback              bool `json:"auto_callback"`
	AutoCallbackDelaySeconds  int  `json:"auto_callback_delay_seconds"`
	AutoCallbackWindowMinutes int  `json:"auto_callback_window_minutes"`
	// EventRetentionDays is how long finished events and rejected bodies
	// are kept; 0 means the server's default (--event-retention).
	EventRetentionDays int `json:"event_retention_days"`
	// Timezone is the IANA name of the project's time zone: a calldate
	// without a zone is read in it, and times are written to the CRM in it.
	// Empty means the zone of DefaultCountry (see CountryTimezone), UTC
	// when that is unknown too.
	Timezone string `json:"timezone"`
	// ReconcileIntervalHours is how often a full sync reconciles the phone
	// index with the CRM, removing rows of entities the CRM no longer
	// returns that no deletion feed reported.
	ReconcileIntervalHours int `json:"reconcile_interval_hours"`
}

// countryZones are the zones of the countries callrouter normalizes phones
// for; a country spanning several zones gets its capital's.
var countryZones = map[string]string{
	"UA": "Europe/Kyiv", "RU": "Europe/Moscow", "KZ": "Asia/Almaty", "BY": "Europe/Minsk", "MD": "Europe/Chisinau",
	"GE": "Asia/Tbilisi", "AM": "Asia/Yerevan", "AZ": "Asia/Baku", "UZ": "Asia/Tashkent", "KG": "Asia/Bishkek",
	"PL": "Europe/Warsaw", "LT": "Europe/Vilnius", "LV": "Europe/Riga", "EE": "Europe/Tallinn", "DE": "Europe/Berlin",
	"GB": "Europe/London", "US": "America/New_York", "CA": "America/Toronto", "CZ": "Europe/Prague",
	"SK": "Europe/Bratislava", "RO": "Europe/Bucharest", "BG": "Europe/Sofia", "TR": "Europe/Istanbul",
	"IL": "Asia/Jerusalem", "FR": "Europe/Paris", "ES": "Europe/Madrid", "IT": "Europe/Rome", "NL": "Europe/Amsterdam",
	"AT": "Europe/Vienna", "HU": "Europe/Budapest", "FI": "Europe/Helsinki", "PT": "Europe/Lisbon",
}

// CountryTimezone returns the IANA zone of an ISO country code ("UA" →
// "Europe/Kyiv"), "" when it has none here.
func CountryTimezone(country string) string {
	return countryZones[strings.ToUpper(strings.TrimSpace(country))]
}

// Location returns the tenant's time zone: Timezone, else the zone of
// DefaultCountry, else UTC. Settings that passed Validate always load.
func (s Settings) Location() *time.Location {
	name := s.Timezone
	if name == "" {
		name = CountryTimezone(s.DefaultCountry)
	}
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc

}

// Limits and defaults of the automatic call-back.
const (
	DefaultAutoCallbackDelaySeconds  = 60
	MaxAutoCallbackDelaySeconds      = 3600
	DefaultAutoCallbackWindowMinutes = 60
	MaxAutoCallbackWindowMinutes     = 7 * 24 * 60
)

// Presence settings.
const (
	PresenceOff                = "off"
	PresenceSkipOffline        = "skip_offline"
	PresenceSkipOfflineAndBusy = "skip_offline_and_busy"
)

// PipelineRule sends leads of calls whose Param equals Value (ignoring
// case and surrounding space) to Pipeline, e.g. pool_name = "Context ads".
type PipelineRule struct {
	Param    string `json:"param"`
	Value    string `json:"value"`
	Pipeline string `json:"pipeline"`
}

// Match reports whether the call fields satisfy the rule.
func (r PipelineRule) Match(fields map[string]string) bool {
	v, ok := fields[r.Param]
	return ok && strings.EqualFold(strings.TrimSpace(v), strings.TrimSpace(r.Value))
}

// Pipeline returns the pipeline of the first rule the fields match, "" when
// none does.
func (s Settings) Pipeline(fields map[string]string) string {
	for _, r := range s.PipelineRules {
		if r.Match(fields) {
			return r.Pipeline
		}
	}
	return ""
}

// Limits of the settings a tenant may choose.
const (
	DefaultRouteBudgetMS = 300
	MinRouteBudgetMS     = 10
	MaxRouteBudgetMS     = 10000

	DefaultCallbackDueMinutes = 60
	MaxCallbackDueMinutes     = 7 * 24 * 60
	MaxPipelineRules          = 100
	MaxFormFieldNames         = 20

	DefaultEventRetentionDays = 30
	MinEventRetentionDays     = 3
	MaxEventRetentionDays     = 3660

	DefaultReconcileIntervalHours = 24
	MaxReconcileIntervalHours     = 30 * 24
)

// DefaultCallerKeys are the request parameters the caller is read from when
// a tenant sets no caller_param, first non-empty wins.
var DefaultCallerKeys = []string{
	"caller", "caller_number", "callerid", "caller_id", "phone", "from", "src",
	"userfield", "additional_call_data.userfield",
}

// DefaultSettings returns the settings of a new tenant.
func DefaultSettings() Settings {
	return Settings{
		ResponseFormat: FormatJSON,
		ResponseField:  "number",
		RouteBudgetMS:  DefaultRouteBudgetMS,
		OwnerOrder:     []EntityKind{KindLead, KindDeal, KindContact, KindCompany},
		OnMiss:         PolicyNext,
		OnUnmapped:     PolicyDefaultOwner,
		Presence:       PresenceOff,
		OnUnavailable:  PolicyDefaultOwner,

		AutoCallbackDelaySeconds:  DefaultAutoCallbackDelaySeconds,
		AutoCallbackWindowMinutes: DefaultAutoCallbackWindowMinutes,

		CallbackDueMinutes:     DefaultCallbackDueMinutes,
		Matrix:                 DefaultMatrix(),
		FormEntities:           DefaultMatrix()[RowForm],
		FormPhoneFields:        DefaultFormPhoneFields(),
		FormEmailFields:        DefaultFormEmailFields(),
		FormMapping:            Mapping{},
		CallMapping:            Mapping{},
		Language:               LangEN,
		ReconcileIntervalHours: DefaultReconcileIntervalHours,
	}
}

// DefaultFormPhoneFields returns the form field names the client's phone
// is read from when a tenant names none (seed 003). Each call returns a
// new slice: a settings value is decoded into, and must never write into
// another tenant's defaults.
func DefaultFormPhoneFields() []string { return []string{"phone", "tel", "telephone"} }

// DefaultFormEmailFields returns the form field names the client's e-mail
// is read from when a tenant names none, as a new slice.
func DefaultFormEmailFields() []string { return []string{"email"} }

// Languages of the texts callrouter writes into the CRM.
const (
	LangUK = "uk"
	LangRU = "ru"
	LangEN = "en"
	LangPL = "pl"
)

// Normalize fills empty fields with their defaults and canonicalizes case,
// so stored settings are always complete.
func (s *Settings) Normalize() {
	d := DefaultSettings()
	s.DefaultCountry = strings.ToUpper(strings.TrimSpace(s.DefaultCountry))
	s.CallerParam = strings.TrimSpace(s.CallerParam)
	s.ResponseFormat = strings.ToLower(strings.TrimSpace(s.ResponseFormat))
	if s.ResponseFormat == "" {
		s.ResponseFormat = d.ResponseFormat
	}
	s.ResponseField = strings.TrimSpace(s.ResponseField)
	if s.ResponseField == "" {
		s.ResponseField = d.ResponseField
	}
	if s.RouteBudgetMS == 0 {
		s.RouteBudgetMS = d.RouteBudgetMS
	}
	if len(s.OwnerOrder) == 0 {
		s.OwnerOrder = d.OwnerOrder
	}
	s.OnMiss = strings.ToLower(strings.TrimSpace(s.OnMiss))
	if s.OnMiss == "" {
		s.OnMiss = d.OnMiss
	}
	s.OnUnmapped = strings.ToLower(strings.TrimSpace(s.OnUnmapped))
	if s.OnUnmapped == "" {
		s.OnUnmapped = d.OnUnmapped
	}
	if s.CallbackDueMinutes == 0 {
		s.CallbackDueMinutes = d.CallbackDueMinutes
	}
	s.Presence = strings.ToLower(strings.TrimSpace(s.Presence))
	if s.Presence == "" {
		s.Presence = d.Presence
	}
	s.OnUnavailable = strings.ToLower(strings.TrimSpace(s.OnUnavailable))
	if s.OnUnavailable == "" {
		s.OnUnavailable = d.OnUnavailable
	}
	if s.AutoCallbackDelaySeconds == 0 {
		s.AutoCallbackDelaySeconds = d.AutoCallbackDelaySeconds
	}
	if s.AutoCallbackWindowMinutes == 0 {
		s.AutoCallbackWindowMinutes = d.AutoCallbackWindowMinutes
	}
	s.Timezone = strings.TrimSpace(s.Timezone)
	if s.ReconcileIntervalHours == 0 {
		s.ReconcileIntervalHours = d.ReconcileIntervalHours
	}
	for i := range s.PipelineRules {
		r := &s.PipelineRules[i]
		r.Param, r.Value, r.Pipeline = strings.TrimSpace(r.Param), strings.TrimSpace(r.Value), strings.TrimSpace(r.Pipeline)
	}
	if s.FormEntities != nil {
		if s.Matrix == nil {
			s.Matrix = Matrix{}
		}
		s.Matrix[RowForm] = s.FormEntities
	}
	s.Matrix.normalize()
	s.FormEntities = s.Matrix[RowForm]
	s.FormPhoneFields = trimList(s.FormPhoneFields, d.FormPhoneFields)
	s.FormEmailFields = trimList(s.FormEmailFields, d.FormEmailFields)
	s.FormMapping.normalize()
	s.CallMapping.normalize()
	s.Language = strings.ToLower(strings.TrimSpace(s.Language))
	if s.Language == "" {
		s.Language = d.Language
	}
}

// trimList trims the names of a list and drops empty ones; an empty list
// takes def.
func trimList(l, def []string) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return slices.Clone(def)
	}
	return out
}

// Validate checks normalized settings and returns an EINVALID error naming
// the first bad field. Country codes are checked by the caller, which knows
// the supported regions.
func (s Settings) Validate() error {
	switch s.ResponseFormat {
	case FormatJSON, FormatText, FormatJSONRPC:
	default:
		return Errorf(EINVALID, "response_format: must be json, text or jsonrpc, got %q", s.ResponseFormat)
	}
	if !validKey(s.ResponseField) {
		return Errorf(EINVALID, "response_field: must be 1-64 characters of letters, digits, '_', '-' or '.', got %q", s.ResponseField)
	}
	if s.CallerParam != "" && !validKey(s.CallerParam) {
		return Errorf(EINVALID, "caller_param: must be 1-64 characters of letters, digits, '_', '-' or '.', got %q", s.CallerParam)
	}
	if s.RouteBudgetMS < MinRouteBudgetMS || s.RouteBudgetMS > MaxRouteBudgetMS {
		return Errorf(EINVALID, "route_budget_ms: must be between %d and %d, got %d", MinRouteBudgetMS, MaxRouteBudgetMS, s.RouteBudgetMS)
	}
	seen := map[EntityKind]bool{}
	for _, k := range s.OwnerOrder {
		if !k.Valid() {
			return Errorf(EINVALID, "owner_order: unknown entity kind %q (use lead, deal, contact, company)", k)
		}
		if seen[k] {
			return Errorf(EINVALID, "owner_order: %q listed twice", k)
		}
		seen[k] = true
	}
	if s.OnMiss != PolicyNext && s.OnMiss != PolicyDefaultOwner {
		return Errorf(EINVALID, "on_miss: must be next or default_owner, got %q", s.OnMiss)
	}
	if s.OnUnmapped != PolicyNext && s.OnUnmapped != PolicyDefaultOwner {
		return Errorf(EINVALID, "on_unmapped: must be next or default_owner, got %q", s.OnUnmapped)
	}
	switch s.Presence {
	case PresenceOff, PresenceSkipOffline, PresenceSkipOfflineAndBusy:
	default:
		return Errorf(EINVALID, "presence: must be off, skip_offline or skip_offline_and_busy, got %q", s.Presence)
	}
	if s.OnUnavailable != PolicyNext && s.OnUnavailable != PolicyDefaultOwner {
		return Errorf(EINVALID, "on_unavailable: must be next or default_owner, got %q", s.OnUnavailable)
	}
	if s.AutoCallbackDelaySeconds < 1 || s.AutoCallbackDelaySeconds > MaxAutoCallbackDelaySeconds {
		return Errorf(EINVALID, "auto_callback_delay_seconds: must be between 1 and %d, got %d", MaxAutoCallbackDelaySeconds, s.AutoCallbackDelaySeconds)
	}
	if s.AutoCallbackWindowMinutes < 1 || s.AutoCallbackWindowMinutes > MaxAutoCallbackWindowMinutes {
		return Errorf(EINVALID, "auto_callback_window_minutes: must be between 1 and %d, got %d", MaxAutoCallbackWindowMinutes, s.AutoCallbackWindowMinutes)
	}
	if s.CallbackDueMinutes < 1 || s.CallbackDueMinutes > MaxCallbackDueMinutes {
		return Errorf(EINVALID, "callback_due_minutes: must be between 1 and %d, got %d", MaxCallbackDueMinutes, s.CallbackDueMinutes)
	}
	if d := s.EventRetentionDays; d != 0 && (d < MinEventRetentionDays || d > MaxEventRetentionDays) {
		return Errorf(EINVALID, "event_retention_days: must be between %d and %d (0 for the server's default), got %d", MinEventRetentionDays, MaxEventRetentionDays, d)
	}
	if s.Timezone != "" {
		// LoadLocation also takes "Local", the host's zone, which would
		// make the setting mean something else on every host.
		if _, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "Local" || len(s.Timezone) > 64 {
			return Errorf(EINVALID, "timezone: %q is not an IANA time zone name (e.g. Europe/Kyiv)", s.Timezone)
		}
	}
	if s.ReconcileIntervalHours < 1 || s.ReconcileIntervalHours > MaxReconcileIntervalHours {
		return Errorf(EINVALID, "reconcile_interval_hours: must be between 1 and %d, got %d", MaxReconcileIntervalHours, s.ReconcileIntervalHours)
	}
	if len(s.PipelineRules) > MaxPipelineRules {
		return Errorf(EINVALID, "pipeline_rules: at most %d rules, got %d", MaxPipelineRules, len(s.PipelineRules))
	}
	if err := s.Matrix.validate(); err != nil {
		return err
	}
	for _, l := range []struct {
		name  string
		names []string
	}{{"form_phone_fields", s.FormPhoneFields}, {"form_email_fields", s.FormEmailFields}} {
		if len(l.names) > MaxFormFieldNames {
			return Errorf(EINVALID, "%s: at most %d names, got %d", l.name, MaxFormFieldNames, len(l.names))
		}
		for i, n := range l.names {
			if len(n) > 128 {
				return Errorf(EINVALID, "%s[%d]: longer than 128 bytes", l.name, i)
			}
		}
	}
	if err := s.FormMapping.validate("form_mapping"); err != nil {
		return err
	}
	if err := s.CallMapping.validate("call_mapping"); err != nil {
		return err
	}
	switch s.Language {
	case LangUK, LangRU, LangEN, LangPL:
	default:
		return Errorf(EINVALID, "language: must be uk, ru, en or pl, got %q", clipKey(s.Language))
	}
	for i, r := range s.PipelineRules {
		if !validKey(r.Param) {
			return Errorf(EINVALID, "pipeline_rules[%d].param: must be 1-64 characters of letters, digits, '_', '-' or '.', got %q", i, r.Param)
		}
		if r.Pipeline == "" || len(r.Pipeline) > 64 {
			return Errorf(EINVALID, "pipeline_rules[%d].pipeline: must be the CRM's pipeline id, 1-64 characters", i)
		}
		if len(r.Value) > 256 {
			return Errorf(EINVALID, "pipeline_rules[%d].value: longer than 256 characters", i)
		}
	}
	return nil
}

// CallerKeys returns the request parameters the caller is read from, in order.
func (s Settings) CallerKeys() []string {
	if s.CallerParam != "" {
		return []string{s.CallerParam}
	}
	return DefaultCallerKeys
}

func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
