package domain

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func TestSettingsNormalizeFillsDefaults(t *testing.T) {
	s := Settings{DefaultCountry: " ua ", ResponseFormat: "JSON", OnMiss: " Default_Owner "}
	s.Normalize()
	if s.DefaultCountry != "UA" || s.ResponseFormat != "json" || s.ResponseField != "number" || s.RouteBudgetMS != 300 ||
		len(s.OwnerOrder) != 4 || s.OnMiss != PolicyDefaultOwner || s.OnUnmapped != PolicyDefaultOwner {
		t.Fatalf("normalized = %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsValidateNamesTheField(t *testing.T) {
	tests := []struct {
		mut   func(*Settings)
		field string
	}{
		{func(s *Settings) { s.ResponseFormat = "xml" }, "response_format"},
		{func(s *Settings) { s.ResponseField = "a b" }, "response_field"},
		{func(s *Settings) { s.CallerParam = "x\"y" }, "caller_param"},
		{func(s *Settings) { s.RouteBudgetMS = 5 }, "route_budget_ms"},
		{func(s *Settings) { s.RouteBudgetMS = 20000 }, "route_budget_ms"},
		{func(s *Settings) { s.OwnerOrder = []EntityKind{"lead", "ticket"} }, "owner_order"},
		{func(s *Settings) { s.OwnerOrder = []EntityKind{"lead", "lead"} }, "owner_order"},
		{func(s *Settings) { s.OnMiss = "x" }, "on_miss"},
		{func(s *Settings) { s.OnUnmapped = "x" }, "on_unmapped"},
		{func(s *Settings) { s.Timezone = "Europe/Kiev2" }, "timezone"},
		{func(s *Settings) { s.Timezone = "Local" }, "timezone"},
		{func(s *Settings) { s.Timezone = "../../etc/passwd" }, "timezone"},
		{func(s *Settings) { s.Timezone = "+02:00" }, "timezone"},
		{func(s *Settings) { s.EventRetentionDays = 2 }, "event_retention_days"},
		{func(s *Settings) { s.EventRetentionDays = -1 }, "event_retention_days"},
		{func(s *Settings) { s.EventRetentionDays = MaxEventRetentionDays + 1 }, "event_retention_days"},
	}
	for _, days := range []int{0, MinEventRetentionDays, DefaultEventRetentionDays} {
		s := DefaultSettings()
		s.EventRetentionDays = days
		if err := s.Validate(); err != nil {
			t.Errorf("event_retention_days %d: %v, want accepted", days, err)
		}
	}
	for _, tc := range tests {
		s := DefaultSettings()
		tc.mut(&s)
		err := s.Validate()
		if ErrorCode(err) != EINVALID || !strings.HasPrefix(ErrorMessage(err), tc.field+":") {
			t.Errorf("%s: err = %v, want invalid naming the field", tc.field, err)
		}
	}
}

func TestSettingsLocation(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{DefaultCountry: "UA"}, "Europe/Kyiv"},
		{Settings{DefaultCountry: "PL"}, "Europe/Warsaw"},
		{Settings{DefaultCountry: "UA", Timezone: "Asia/Almaty"}, "Asia/Almaty"},
		{Settings{Timezone: "America/Chicago"}, "America/Chicago"},
		{Settings{DefaultCountry: "ZZ"}, "UTC"},
		{Settings{}, "UTC"},
	} {
		if tc.s.Timezone != "" {
			if err := tc.s.Validate(); err != nil && strings.HasPrefix(ErrorMessage(err), "timezone") {
				t.Errorf("%+v: %v", tc.s, err)
			}
		}
		if got := tc.s.Location().String(); got != tc.want {
			t.Errorf("%+v: location %s, want %s", tc.s, got, tc.want)
		}
	}
}

func TestCallerKeys(t *testing.T) {
	s := DefaultSettings()
	if got := s.CallerKeys(); len(got) != len(DefaultCallerKeys) || got[0] != "caller" {
		t.Fatalf("default keys = %v", got)
	}
	s.CallerParam = "client.phone"
	if got := s.CallerKeys(); len(got) != 1 || got[0] != "client.phone" {
		t.Fatalf("caller_param keys = %v", got)
	}
}

func TestErrorHelpers(t *testing.T) {
	e := Errorf(ENOTFOUND, "tenant %q not found", "x")
	wrapped := fmt.Errorf("load: %w", e)
	if ErrorCode(wrapped) != ENOTFOUND || ErrorMessage(wrapped) != `tenant "x" not found` {
		t.Fatalf("wrapped: %s / %s", ErrorCode(wrapped), ErrorMessage(wrapped))
	}
	plain := errors.New("pq: password=hunter2")
	if ErrorCode(plain) != EINTERNAL || ErrorMessage(plain) != "internal error" {
		t.Fatal("a non-domain error must not leak its text")
	}
	if ErrorCode(nil) != "" || ErrorMessage(nil) != "" {
		t.Fatal("nil error")
	}
}

func TestEmployeeTargetPrefersSIP(t *testing.T) {
	if (Employee{SIP: "s", Phone: "1"}).Target() != "s" || (Employee{Phone: "1"}).Target() != "1" || (Employee{}).Target() != "" {
		t.Fatal("Target")
	}
}

func TestInternKindSharesTheConstant(t *testing.T) {
	for _, k := range []EntityKind{KindLead, KindDeal, KindContact, KindCompany} {
		copied := EntityKind(string([]byte(k)))
		got := InternKind(copied)
		if got != k || unsafe.StringData(string(got)) != unsafe.StringData(string(k)) {
			t.Errorf("InternKind(%q) does not return the package's constant", k)
		}
	}
	if got := InternKind("ticket"); got != "ticket" {
		t.Errorf("an unknown kind must come back unchanged, got %q", got)
	}
}

// Each DefaultSettings is a value of its own: decoding a tenant's body into
// one must not change the next tenant's defaults.
func TestDefaultSettingsShareNothing(t *testing.T) {
	a := DefaultSettings()
	a.FormPhoneFields[0], a.FormEmailFields[0], a.OwnerOrder[0] = "mobile", "mail", KindCompany
	a.FormEntities[0] = MatrixTask
	a.Matrix[RowForm] = nil
	b := DefaultSettings()
	if b.FormPhoneFields[0] != "phone" || b.FormEmailFields[0] != "email" || b.OwnerOrder[0] != KindLead ||
		b.FormEntities[0] == MatrixTask || b.Matrix[RowForm] == nil {
		t.Errorf("a change to one DefaultSettings reached the next: %+v", b)
	}
}
