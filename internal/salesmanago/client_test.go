package salesmanago_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/salesmanago/salesmanagofake"
)

const owner = "boss@example.com"

type sleeps struct{ d []time.Duration }

func (s *sleeps) sleep(_ context.Context, d time.Duration) error { s.d = append(s.d, d); return nil }

func newClient(t *testing.T, f *salesmanagofake.Server, cfg salesmanago.Config) (*salesmanago.Client, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	c, err := salesmanago.New(cfg, salesmanago.Options{Transport: crm.NewTransport(true), Sleep: sl.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return c, sl
}

func TestAuthAndRefusalInSALESmanagosWords(t *testing.T) {
	f := salesmanagofake.New(t, owner, "anna@example.com")
	c, _ := newClient(t, f, f.Config(owner))
	users, err := c.Users(context.Background())
	if err != nil || len(users) != 2 || users[1] != "anna@example.com" {
		t.Fatalf("users = %v, %v", users, err)
	}
	bad := f.Config(owner)
	bad.APISecret = "wrong"
	c2, _ := newClient(t, f, bad)
	_, err = c2.Users(context.Background())
	var e *salesmanago.Error
	if !errors.As(err, &e) || e.Status != 200 || !strings.Contains(err.Error(), "Not authenticated") || !salesmanago.IsAuth(err) {
		t.Fatalf("bad secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), salesmanagofake.APIKey) {
		t.Fatalf("error shows a secret: %v", err)
	}
	// An owner who is not a user of the account is refused.
	stranger := f.Config("nobody@example.com")
	c3, _ := newClient(t, f, stranger)
	_, _, err = c3.Modified(context.Background(), time.Now().Add(-time.Hour), time.Now(), 1, 10)
	if err == nil || !strings.Contains(err.Error(), "Owner nobody@example.com not found") {
		t.Fatalf("stranger owner: %v", err)
	}
}

func TestConfigNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg   salesmanago.Config
		field string
	}{
		{salesmanago.Config{BaseURL: "ftp://x", ClientID: "a", APIKey: "b", APISecret: "c", Owner: owner}, "base_url"},
		{salesmanago.Config{BaseURL: "https://app3.salesmanago.pl", APIKey: "b", APISecret: "c", Owner: owner}, "client_id"},
		{salesmanago.Config{BaseURL: "https://app3.salesmanago.pl", ClientID: "a", APISecret: "c", Owner: owner}, "api_key"},
		{salesmanago.Config{BaseURL: "https://app3.salesmanago.pl", ClientID: "a", APIKey: "b", Owner: owner}, "api_secret"},
		{salesmanago.Config{BaseURL: "https://app3.salesmanago.pl", ClientID: "a", APIKey: "b", APISecret: "c", Owner: "boss"}, "owner_email"},
	} {
		_, err := salesmanago.CheckConfig(tc.cfg)
		if domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}

func TestGuardRefusesLoopbackByDefault(t *testing.T) {
	f := salesmanagofake.New(t, owner)
	c, err := salesmanago.New(f.Config(owner), salesmanago.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Users(context.Background())
	if !crm.IsAddressRefused(err) {
		t.Fatalf("loopback reached without --crm-allow-private: %v", err)
	}
}

func TestBackoffOn503AndThrottling(t *testing.T) {
	f := salesmanagofake.New(t, owner)
	c, sl := newClient(t, f, f.Config(owner))
	f.Fail503(2)
	f.Throttle(1)
	if _, err := c.Users(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sl.d) != 3 || sl.d[0] != time.Second || sl.d[1] != 2*time.Second || sl.d[2] != 4*time.Second {
		t.Fatalf("backoffs = %v", sl.d)
	}
	f.Throttle(10)
	_, err := c.Users(context.Background())
	var e *salesmanago.Error
	if !errors.As(err, &e) || !e.Throttled() || !strings.Contains(err.Error(), "Limit of API requests exceeded") {
		t.Fatalf("lasting throttling: %v", err)
	}
}

func TestBatchUpsertPollsTheJob(t *testing.T) {
	f := salesmanagofake.New(t, owner, "anna@example.com")
	f.SetJobPolls(3)
	c, sl := newClient(t, f, f.Config(owner))
	ctx := context.Background()
	err := c.BatchUpsert(ctx, "anna@example.com", []salesmanago.Upsert{
		{Contact: salesmanago.Contact{Email: "jan@example.com", Name: "Jan Kowalski", State: salesmanago.StateCustomer, Birthday: "19800102",
			Address: salesmanago.Address{City: "Kraków"}}, OptOut: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Calls("/api/job/status") != 4 || len(sl.d) != 3 {
		t.Fatalf("status polls = %d, sleeps %v", f.Calls("/api/job/status"), sl.d)
	}
	got, err := c.ByEmail(ctx, []string{"jan@example.com"})
	if err != nil || len(got) != 1 {
		t.Fatalf("read back: %v %v", got, err)
	}
	g := got[0]
	if g.ID == "" || g.Owner != "anna@example.com" || !g.OptedOut || g.State != "CUSTOMER" || g.Address.City != "Kraków" || g.Birthday != "19800102" {
		t.Fatalf("contact = %+v", g)
	}
	byID, err := c.ByID(ctx, []string{g.ID, "unknown"})
	if err != nil || len(byID) != 1 || byID[0].Email != "jan@example.com" {
		t.Fatalf("by id: %v %v", byID, err)
	}
	// Refusals: over 100, a bad birthday (SALESmanago's words), no e-mail.
	many := make([]salesmanago.Upsert, 101)
	if err := c.BatchUpsert(ctx, "", many); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("101 contacts: %v", err)
	}
	err = c.BatchUpsert(ctx, "", []salesmanago.Upsert{{Contact: salesmanago.Contact{Email: "x@example.com", Birthday: "1980-01-02"}}})
	if err == nil || !strings.Contains(err.Error(), "Invalid birthday format") {
		t.Fatalf("bad birthday: %v", err)
	}
	if err := c.BatchUpsert(ctx, "", []salesmanago.Upsert{{Contact: salesmanago.Contact{Name: "no mail"}}}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("no e-mail: %v", err)
	}
}

func TestModifiedPages(t *testing.T) {
	f := salesmanagofake.New(t, owner)
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := base
	f.SetClock(func() time.Time { return now })
	for i := range 5 {
		now = base.Add(time.Duration(i) * time.Minute)
		f.Put(salesmanago.Contact{Email: "c" + string(rune('a'+i)) + "@example.com"})
	}
	c, _ := newClient(t, f, f.Config(owner))
	ctx := context.Background()
	var all []salesmanago.Ref
	for page := 1; ; page++ {
		refs, more, err := c.Modified(ctx, base, base.Add(time.Hour), page, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, refs...)
		if !more {
			break
		}
	}
	if len(all) != 5 || all[0].Email != "ca@example.com" || all[4].Email != "ce@example.com" {
		t.Fatalf("modified = %v", all)
	}
	if _, _, err := c.Modified(ctx, base.Add(-40*24*time.Hour), base, 1, 10); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("40-day window: %v", err)
	}
	if _, _, err := c.Modified(ctx, base, base.Add(time.Hour), 1, 201); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("page of 201: %v", err)
	}
}
