package events_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/events"
)

func TestFormParseAndKey(t *testing.T) {
	for _, alias := range []string{"form", "form_submit", "Form-Sent"} {
		in, err := events.Parse("", url.Values{"event": {alias}, "phone": {"0671234567"}}, nil)
		if err != nil || in.Kind != domain.EventForm || in.UniqueID != "" {
			t.Fatalf("%s: %+v %v, want a form without a call id", alias, in, err)
		}
	}
	if _, err := events.Parse("", url.Values{"event": {"call_end"}}, nil); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("a call event still needs its uniqueid: %v", err)
	}
	at := time.Date(2026, 5, 1, 10, 0, 5, 0, time.UTC)
	f := map[string]string{"event": "form", "phone": "0671234567", "name": "Ivan"}
	k := events.FormKey(f, at)
	if events.FormKey(f, at.Add(50*time.Second)) != k {
		t.Error("a double post within the minute gets another key")
	}
	if events.FormKey(f, at.Add(time.Minute)) == k {
		t.Error("the same form a minute later is not a new request")
	}
	if events.FormKey(map[string]string{"event": "form", "phone": "0671234567", "name": "Ivana"}, at) == k {
		t.Error("another body got the same key")
	}
}

func TestReadForm(t *testing.T) {
	s := domain.DefaultSettings()
	s.DefaultCountry = "UA"
	f := events.ReadForm(map[string]string{"tel": "+38 (067) 123-45-67", "email": " Ivan@Example.COM ", "client_id": "GA1.2.3",
		"first-name": "Ivan"}, s)
	if f.Number != "380671234567" || f.Email != "ivan@example.com" || f.ClientID != "GA1.2.3" || f.Name != "Ivan" {
		t.Errorf("form %+v", f)
	}
	s.FormPhoneFields = []string{"mobile"}
	if f := events.ReadForm(map[string]string{"phone": "0671234567", "mobile": "0501234567"}, s); f.Number != "380501234567" {
		t.Errorf("form_phone_fields ignored: %+v", f)
	}
	if p := events.FormPartition("form:x", map[string]string{"email": "a@b.example"}, s); p != "email:a@b.example" {
		t.Errorf("partition of an e-mail-only form: %q", p)
	}
}
