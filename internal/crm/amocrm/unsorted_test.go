package amocrm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/amocrm/amocrmfake"
	"github.com/callrouter/callrouter/internal/domain"
)

func unsortedWriter(t *testing.T) (*env, crm.UnsortedWriter) {
	t.Helper()
	e, w := writer(t)
	uw, ok := w.(crm.UnsortedWriter)
	if !ok {
		t.Fatal("the amoCRM source does not implement crm.UnsortedWriter")
	}
	return e, uw
}

// TestCreateUnsortedSIP: a call request carries the call's metadata, is
// found again by its key, a second one with the key is refused, and its
// contact stays out of the phone search until accepted.
func TestCreateUnsortedSIP(t *testing.T) {
	t.Parallel()
	e, uw := unsortedWriter(t)
	ctx := context.Background()
	at := time.Date(2026, 5, 4, 8, 30, 0, 0, time.UTC)
	in := crm.NewUnsorted{Key: "crkey1", Category: crm.UnsortedSIP, Phone: clientPhone, Title: "+" + clientPhone,
		At: at, Line: "380441112233", Duration: 42 * time.Second, Recording: "https://rec.example/1.mp3",
		UTM: crm.UTM{Source: "google"}, Tags: []string{"Ringostat Automation"}}
	u, err := uw.CreateUnsorted(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if u.UID == "" || u.Lead.ID == "" || u.Contact.ID == "" {
		t.Fatalf("created %+v", u)
	}
	got := e.fake.Unsorted()
	if len(got) != 1 {
		t.Fatalf("requests %+v", got)
	}
	r := got[0]
	m := r.Metadata
	if r.SourceUID != "crkey1" || r.SourceName != "callrouter" || m["uniq"] != "crkey1" || m["from"] != "+"+clientPhone ||
		m["phone"] != "380441112233" || m["duration"] != float64(42) || m["called_at"] != float64(at.Unix()) ||
		m["link"] != "https://rec.example/1.mp3" || m["service_code"] != "callrouter" || m["is_call_event_needed"] != true {
		t.Errorf("request %+v", r)
	}
	if r.UTM.Source != "google" || len(r.Tags) != 1 {
		t.Errorf("lead UTM %+v tags %q", r.UTM, r.Tags)
	}
	id, err := e.src.(crm.Writer).Find(ctx, crm.WriteUnsorted, "crkey1", crm.Ref{})
	if err != nil || id != u.UID {
		t.Fatalf("Find = %q, %v; want %q", id, err, u.UID)
	}
	if id, err := e.src.(crm.Writer).Find(ctx, crm.WriteUnsorted, "other", crm.Ref{}); err != nil || id != "" {
		t.Fatalf("Find(other) = %q, %v", id, err)
	}
	_, err = uw.CreateUnsorted(ctx, in)
	if !crm.IsPermanent(err) {
		t.Fatalf("a second request with the key: %v, want a permanent refusal", err)
	}
	if n := len(e.fake.Unsorted()); n != 1 {
		t.Fatalf("%d requests after the refused duplicate", n)
	}
	found, err := e.src.FindByPhone(ctx, clientPhone)
	if err != nil || len(found) != 0 {
		t.Fatalf("FindByPhone before acceptance: %+v, %v", found, err)
	}
}

// TestCreateUnsortedForms: a form request with only an e-mail carries the
// form's metadata; local refusals name what is missing.
func TestCreateUnsortedForms(t *testing.T) {
	t.Parallel()
	e, uw := unsortedWriter(t)
	ctx := context.Background()
	u, err := uw.CreateUnsorted(ctx, crm.NewUnsorted{Key: "crkey2", Category: crm.UnsortedForms, Email: "a@example.com",
		Name: "Ann", Title: "Website form: Ann", FormName: "Callback", FormPage: "https://shop.example/", IP: "203.0.113.7"})
	if err != nil || u.UID == "" {
		t.Fatalf("CreateUnsorted: %+v, %v", u, err)
	}
	r := e.fake.Unsorted()[0]
	if r.Category != "forms" || r.Metadata["form_name"] != "Callback" || r.Metadata["form_id"] != "callrouter" ||
		r.Metadata["ip"] != "203.0.113.7" || r.ContactEmail != "a@example.com" || r.ContactName != "Ann" {
		t.Errorf("request %+v", r)
	}
	for _, bad := range []crm.NewUnsorted{
		{Key: "k", Category: "mail", Phone: clientPhone},
		{Key: "k", Category: crm.UnsortedSIP},
		{Key: "k", Category: crm.UnsortedForms},
	} {
		if _, err := uw.CreateUnsorted(ctx, bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%+v: %v, want EINVALID", bad, err)
		}
	}
}

// TestFakeUnsortedRefusals: the fake refuses what amoCRM refuses: a
// category other than sip and forms, and requests missing source_uid,
// source_name or a metadata field.
func TestFakeUnsortedRefusals(t *testing.T) {
	t.Parallel()
	sip := func() map[string]any {
		return map[string]any{"source_name": "x", "source_uid": "u1", "created_at": 1, "metadata": map[string]any{
			"from": "+380671234567", "phone": "100", "called_at": 1, "duration": 0, "link": "", "service_code": "x",
			"uniq": "q1", "is_call_event_needed": true}}
	}
	// Each case has its own account: their requests together would pass
	// amoCRM's rate limit.
	account := func() (*amocrmfake.Server, func(path string, item map[string]any) int) {
		f := amocrmfake.New(t)
		var creds struct {
			Token string `json:"long_lived_token"`
		}
		if err := json.Unmarshal(f.LongLivedCreds(), &creds); err != nil || creds.Token == "" {
			t.Fatalf("long-lived creds: %v", err)
		}
		return f, func(path string, item map[string]any) int {
			b, _ := json.Marshal([]any{item})
			req, _ := http.NewRequest(http.MethodPost, f.URL()+path, bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+creds.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
	}
	cases := map[string]func(m map[string]any){
		"source_uid":  func(m map[string]any) { delete(m, "source_uid") },
		"source_name": func(m map[string]any) { m["source_name"] = "" },
		"metadata":    func(m map[string]any) { delete(m, "metadata") },
		"uniq":        func(m map[string]any) { delete(m["metadata"].(map[string]any), "uniq") },
		"from":        func(m map[string]any) { m["metadata"].(map[string]any)["from"] = "" },
		"event":       func(m map[string]any) { m["metadata"].(map[string]any)["is_call_event_needed"] = "yes" },
	}
	for name, spoil := range cases {
		m := sip()
		spoil(m)
		if _, post := account(); post("/api/v4/leads/unsorted/sip", m) != http.StatusBadRequest {
			t.Errorf("%s: want 400", name)
		}
	}
	if _, post := account(); post("/api/v4/leads/unsorted/forms", sip()) != http.StatusBadRequest {
		t.Errorf("sip metadata as a form: want 400")
	}
	if _, post := account(); post("/api/v4/leads/unsorted/mail", sip()) != http.StatusNotFound {
		t.Errorf("category mail: want 404")
	}
	f, post := account()
	if got := post("/api/v4/leads/unsorted/sip", sip()); got != http.StatusOK {
		t.Fatalf("a complete request: HTTP %d", got)
	}
	if got := post("/api/v4/leads/unsorted/sip", sip()); got != http.StatusBadRequest {
		t.Errorf("the same source_uid again: HTTP %d, want 400", got)
	}
	if n := len(f.Unsorted()); n != 1 {
		t.Errorf("%d requests filed, want 1", n)
	}
}
