package events_test

import (
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// TestCallNotesInTenantLanguage: the words of a call record (amoCRM's
// call_result, Zoho's Subject and Description, Uspacy's subject and note)
// are in the tenant's language; retailCRM's call record carries no words.
func TestCallNotesInTenantLanguage(t *testing.T) {
	cases := []struct {
		lang string
		// want are what a missed (BUSY) call's words must hold: amoCRM's
		// result, then the others' subject and a note label.
		result, subject, label string
	}{
		{"uk", "зайнято", "Пропущений дзвінок +380671000951", "Телефон: +380671000951"},
		{"pl", "zajęte", "Nieodebrane połączenie +380671000951", "Telefon: +380671000951"},
		{"en", "busy", "Missed call +380671000951", "Phone: +380671000951"},
	}
	for _, tc := range cases {
		t.Run(tc.lang, func(t *testing.T) {
			each(t, domain.Settings{Language: tc.lang}, func(t *testing.T, w *world, _ bool) {
				id := w.post(domain.EventCallEnd, map[string]string{"uniqueid": "lang1", "caller": "380671000951",
					"disposition": "BUSY", "employee_number": "sip_anna", "recording": "https://rec.example/l.mp3"})
				w.mustDrain()
				if ev := w.event(id); ev.State != domain.EventDone {
					t.Fatalf("event: %q %q", ev.State, ev.Note)
				}
				c := oneCall(t, w.fake.Written(), "380671000951")
				if c.Recording != "https://rec.example/l.mp3" {
					t.Errorf("recording %q", c.Recording)
				}
				switch w.crmName() {
				case "amocrm":
					if c.Text != tc.result {
						t.Errorf("call_result %q, want %q", c.Text, tc.result)
					}
				case "retailcrm":
					if c.Text != "" {
						t.Errorf("retailCRM call words %q, want none", c.Text)
					}
				default:
					if !strings.Contains(c.Text, tc.subject) || !strings.Contains(c.Text, tc.label) {
						t.Errorf("call words %q, want %q and %q", c.Text, tc.subject, tc.label)
					}
				}
			})
		})
	}
}
