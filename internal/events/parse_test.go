package events

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
)

func TestParseEncodings(t *testing.T) {
	for _, tc := range []struct {
		name, ct, query, body string
	}{
		{"json", "application/json", "event=call_end",
			`{"uniqueid":"1700000000.42","caller":"380671234567","disposition":"ANSWERED","billsec":42,"additional_call_data":{"userfield":"x"}}`},
		{"json without content type", "", "event=call_end",
			`{"uniqueid":"1700000000.42","caller":"380671234567","disposition":"ANSWERED","billsec":"42","additional_call_data":{"userfield":"x"}}`},
		{"form", "application/x-www-form-urlencoded", "",
			`event=call_end&uniqueid=1700000000.42&caller=%2B380671234567&disposition=ANSWERED&billsec=42&additional_call_data.userfield=x`},
		{"query only", "", "event=call_end&uniqueid=1700000000.42&caller=380671234567&disposition=ANSWERED&billsec=42&additional_call_data.userfield=x", ""},
		{"jsonrpc", "application/json", "",
			`{"jsonrpc":"2.0","id":7,"method":"call_end","params":{"call_id":"1700000000.42","caller":"380671234567","disposition":"ANSWERED","billsec":42,"additional_call_data":{"userfield":"x"}}}`},
		{"percent-encoded inside JSON", "application/json", "event=call_end",
			`{"uniqueid":"1700000000.42","caller":"%2B380671234567","disposition":"ANSWERED","billsec":42,"additional_call_data":{"userfield":"x"}}`},
		{"alias in body", "application/json", "",
			`{"event":"after_call","uuid":"1700000000.42","caller":"380671234567","disposition":"ANSWERED","billsec":42,"additional_call_data":{"userfield":"x"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query + "&key=secret")
			in, err := Parse(tc.ct, q, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if in.Kind != domain.EventCallEnd || in.UniqueID != "1700000000.42" {
				t.Fatalf("kind=%q uniqueid=%q", in.Kind, in.UniqueID)
			}
			if _, ok := in.Fields["key"]; ok {
				t.Fatal("the webhook secret must never be kept with the event")
			}
			if in.Fields["additional_call_data.userfield"] != "x" || in.Fields["billsec"] != "42" {
				t.Fatalf("fields: %v", in.Fields)
			}
			c := ReadCall(domain.CallEvent{Kind: in.Kind, UniqueID: in.UniqueID, Fields: in.Fields}, nil)
			if n, ok := c.ClientNumber("UA"); !ok || n != "380671234567" || !c.Answered || c.Talk != 42*time.Second {
				t.Fatalf("call: client=%q ok=%v answered=%v talk=%s", n, ok, c.Answered, c.Talk)
			}
		})
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, ct, query, body, want string
	}{
		{"no kind", "application/json", "", `{"uniqueid":"1"}`, "event: missing"},
		{"unknown kind", "application/json", "event=explode", `{"uniqueid":"1"}`, `event: unknown kind "explode"`},
		{"no call id", "application/json", "event=call_end", `{"caller":"380671234567"}`, "uniqueid: missing"},
		{"broken JSON", "application/json", "event=call_end", `{"uniqueid":"1",`, "body: invalid JSON"},
		{"JSON array", "application/json", "event=call_end", `[1,2]`, "body: must be a JSON object"},
		{"trailing data", "application/json", "event=call_end", `{"uniqueid":"1"} {}`, "data after the object"},
		{"broken form", "application/x-www-form-urlencoded", "", `event=call_end&uniqueid=%zz`, "body: not a form"},
		{"too deep", "application/json", "event=call_end", `{"uniqueid":"1","a":` + strings.Repeat(`{"a":`, 12) + `1` + strings.Repeat(`}`, 13), "nested deeper"},
		// Rewriting would make "a\xff" and "a\xfe" the same call.
		{"uniqueid invalid UTF-8 in JSON", "application/json", "event=call_end", "{\"uniqueid\":\"a\xff\"}", "uniqueid: not valid UTF-8"},
		{"uniqueid NUL escape in JSON", "application/json", "event=call_end", `{"uniqueid":"a\u0000"}`, "uniqueid: not valid UTF-8 or holds a NUL"},
		{"uniqueid percent-encoded NUL in JSON", "application/json", "event=call_end", `{"uniqueid":"a%00"}`, "uniqueid: not valid UTF-8 or holds a NUL"},
		{"call_id invalid UTF-8 in a form", "application/x-www-form-urlencoded", "event=call_end", "call_id=a%FF", "call_id: not valid UTF-8"},
		{"uniqueid NUL in the query", "", "event=call_end&uniqueid=a%00", "", "uniqueid: not valid UTF-8 or holds a NUL"},
		{"kind with NUL", "application/x-www-form-urlencoded", "", "event=call_end%00&uniqueid=1", "event: not valid UTF-8 or holds a NUL"},
		{"kind invalid UTF-8 in JSON", "application/json", "", "{\"event\":\"call_end\xfe\",\"uniqueid\":\"1\"}", "event: not valid UTF-8"},
		{"huge value", "application/json", "event=call_end", `{"uniqueid":"1","note":"` + strings.Repeat("x", MaxValueBytes+1) + `"}`, "note: value longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			_, err := Parse(tc.ct, q, []byte(tc.body))
			if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want EINVALID containing %q", err, tc.want)
			}
		})
	}
}

func TestReadCall(t *testing.T) {
	received := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		kind     domain.EventKind
		fields   map[string]string
		outgoing bool
		answered bool
		client   string
	}{
		{"answered", domain.EventCallEnd, map[string]string{"caller": "0671234567", "disposition": "answered", "billsec": "30"}, false, true, "380671234567"},
		{"proper", domain.EventCallEnd, map[string]string{"caller": "380671234567", "disposition": "PROPER", "billsec": "3"}, false, true, "380671234567"},
		{"answered with no talk is missed", domain.EventCallEnd, map[string]string{"caller": "380671234567", "disposition": "ANSWERED", "billsec": "0"}, false, false, "380671234567"},
		{"no answer", domain.EventCallEnd, map[string]string{"caller": "380671234567", "disposition": "NO ANSWER"}, false, false, "380671234567"},
		{"voicemail", domain.EventCallEnd, map[string]string{"caller": "380671234567", "disposition": "VOICEMAIL", "billsec": "12"}, false, false, "380671234567"},
		{"talk time alone", domain.EventCallEnd, map[string]string{"caller": "380671234567", "billsec": "12"}, false, true, "380671234567"},
		{"outgoing kind reads dst", domain.EventOutgoingEnd, map[string]string{"caller": "sip_anna", "dst": "380501112233", "disposition": "ANSWERED", "billsec": "5"}, true, true, "380501112233"},
		{"call_type out", domain.EventCallEnd, map[string]string{"call_type": "out", "caller": "sip_anna", "dst": "380501112233"}, true, false, "380501112233"},
		{"webhooks 2.0 userfield", domain.EventCallEnd, map[string]string{"additional_call_data.userfield": "380671234567"}, false, false, "380671234567"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ReadCall(domain.CallEvent{Kind: tc.kind, UniqueID: "u", Fields: tc.fields, ReceivedAt: received}, nil)
			n, _ := c.ClientNumber("UA")
			if c.Outgoing != tc.outgoing || c.Answered != tc.answered || n != tc.client {
				t.Fatalf("outgoing=%v answered=%v client=%q", c.Outgoing, c.Answered, n)
			}
			if !c.Start.Equal(received) {
				t.Fatalf("a call without calldate starts when received, got %s", c.Start)
			}
		})
	}
	c := ReadCall(domain.CallEvent{Kind: domain.EventCallEnd, Fields: map[string]string{"calldate": "2026-11-19 18:04:05",
		"utm_source": "google", "client_id": "GA1.2", "recording": "https://rec/1.mp3", "employee_number": "sip_anna"}}, nil)
	if !c.Start.Equal(time.Date(2026, 11, 19, 18, 4, 5, 0, time.UTC)) || c.UTM.Source != "google" || c.UTM.ClientID != "GA1.2" ||
		c.Recording != "https://rec/1.mp3" || c.Employee != "sip_anna" || c.UTM.Empty() {
		t.Fatalf("call: %+v", c)
	}
}

// TestReadCallTimeZones: a calldate without a zone is the tenant's local
// time; one with a zone or offset (also Ringostat's "+0300" without a
// colon) keeps it; Unix seconds are absolute.
func TestReadCallTimeZones(t *testing.T) {
	kyiv, err := time.LoadLocation("Europe/Kyiv")
	if err != nil {
		t.Fatal(err)
	}
	winter := time.Date(2026, 12, 5, 15, 55, 0, 0, time.UTC) // 17:55 in Kyiv (UTC+2)
	summer := time.Date(2026, 7, 5, 14, 55, 0, 0, time.UTC)  // 17:55 in Kyiv (UTC+3)
	for _, tc := range []struct {
		calldate string
		loc      *time.Location
		want     time.Time
	}{
		{"2026-12-05 17:55:00", kyiv, winter},
		{"2026-12-05T17:55:00", kyiv, winter},
		{"05.12.2026 17:55:00", kyiv, winter},
		{"2026-12-05 17:55", kyiv, winter},
		{"2026-07-05 17:55:00", kyiv, summer},
		{"2026-12-05 17:55:00", nil, winter.Add(2 * time.Hour)},
		{"2026-12-05T17:55:00+02:00", time.UTC, winter},
		{"2026-12-05T17:55:00+0200", time.UTC, winter},
		{"2026-12-05 15:55:00+00:00", kyiv, winter},
		{"2026-12-05T15:55:00Z", kyiv, winter},
		{"1796486100", kyiv, winter},
	} {
		c := ReadCall(domain.CallEvent{Kind: domain.EventCallEnd, Fields: map[string]string{"calldate": tc.calldate}}, tc.loc)
		if !c.Start.Equal(tc.want) {
			t.Errorf("calldate %q in %v: %s, want %s", tc.calldate, tc.loc, c.Start, tc.want)
		}
	}
}

func TestPartition(t *testing.T) {
	a := Partition(domain.EventCallEnd, "u1", map[string]string{"caller": "067 123 45 67"}, "UA")
	b := Partition(domain.EventCallStart, "u2", map[string]string{"caller": "+380671234567"}, "UA")
	if a != "380671234567" || a != b {
		t.Fatalf("one client's events must share a partition: %q %q", a, b)
	}
	if p := Partition(domain.EventCallEnd, "u3", map[string]string{"caller": "anonymous"}, "UA"); p != "call:u3" {
		t.Fatalf("an event without a client number gets its call's partition, got %q", p)
	}
}

func TestParseEventKindAliases(t *testing.T) {
	for in, want := range map[string]domain.EventKind{"Call-Start": domain.EventCallStart, "pickup": domain.EventCallAnswered,
		"after call": domain.EventCallEnd, "missed": domain.EventCallEnd, "outgoing_before": domain.EventOutgoingStart,
		"OUT_END": domain.EventOutgoingEnd} {
		if got, ok := domain.ParseEventKind(in); !ok || got != want {
			t.Errorf("ParseEventKind(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := domain.ParseEventKind("outgoing"); ok {
		t.Error(`"outgoing" is ambiguous (before or after?) and must not be accepted`)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
	for i, w := range want {
		if got := Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := Backoff(30); got != time.Hour {
		t.Errorf("Backoff(30) = %s, want the 1h cap", got)
	}
	var total time.Duration
	for n := 1; n < DefaultMaxAttempts; n++ {
		total += Backoff(n)
	}
	if total < 12*time.Hour {
		t.Errorf("the attempts span %s; a CRM outage of half a day must not fail events", total)
	}
}

func BenchmarkParseEvent(b *testing.B) {
	body := []byte(`{"uniqueid":"1700000000.42","caller":"380671234567","dst":"380441112233","call_type":"in","disposition":"ANSWERED","billsec":42,"duration":50,"waittime":8,"calldate":"2026-11-20 10:11:12","recording":"https%3A%2F%2Fexample.com%2Frec.mp3","employee_number":"sip_anna","pool_name":"Context ads","utm_source":"google","additional_call_data":{"userfield":"380671234567"}}`)
	q := url.Values{"event": {"call_end"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("application/json", q, body); err != nil {
			b.Fatal(err)
		}
	}
}
