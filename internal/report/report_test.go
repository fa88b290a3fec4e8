package report

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/lookup"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

func testTenant() *tenant.Config {
	st := domain.DefaultSettings()
	st.DefaultCountry = "UA"
	st.Timezone = "Europe/Kyiv"
	return tenant.Build(domain.Tenant{ID: "acme", Settings: st, DefaultOwner: "u9"}, []domain.Employee{
		{TenantID: "acme", CRMUserID: "u1", SIP: "anna", Name: "Anna"},
		{TenantID: "acme", CRMUserID: "u2", SIP: "boris", Name: "Boris"},
		{TenantID: "acme", CRMUserID: "u3", Phone: "380671110000", Name: "Clara"},
		{TenantID: "acme", CRMUserID: "u9", SIP: "senior", Name: "Senior"},
	}, nil)
}

// sink keeps the batches it is given; fail makes the next calls fail.
type sink struct {
	mu      sync.Mutex
	batches [][]store.RouteDecision
	fail    int
}

func (s *sink) InsertRouteDecisions(_ context.Context, ds []store.RouteDecision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("disk full")
	}
	s.batches = append(s.batches, slices.Clone(ds))
	return nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		var ids []string
		for _, d := range b {
			ids = append(ids, d.TenantID+"/"+d.CallID+"/"+d.OwnerID+"/"+d.Target+"/"+d.Reason)
		}
		out = append(out, strings.Join(ids, " "))
	}
	return out
}

func TestRecordDoesNotAllocate(t *testing.T) {
	r := NewRecorder(&sink{}, RecorderConfig{Buffer: 1})
	cfg := testTenant()
	id := []byte("1700000000.12345")
	res := lookup.Result{Target: "anna", Reason: lookup.ReasonOwner}
	now := time.Now()
	// The buffer holds one: the first send fills it, the rest take the
	// full-buffer path; both are measured.
	if n := testing.AllocsPerRun(100, func() { r.Record(cfg, id, res, now) }); n != 0 {
		t.Fatalf("Record allocates %.1f times per call, want 0", n)
	}
	<-r.ch
	if n := testing.AllocsPerRun(1, func() { r.Record(cfg, id, res, now) }); n != 0 {
		t.Fatalf("Record into an empty buffer allocates %.1f times, want 0", n)
	}
}

func TestRecorderBatchesAndOwners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sk := &sink{}
		r := NewRecorder(sk, RecorderConfig{Batch: 3, Interval: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		cfg := testTenant()
		now := time.Now()
		r.Record(cfg, []byte(" c1 "), lookup.Result{Target: "anna", Reason: lookup.ReasonOwner}, now)
		r.Record(cfg, nil, lookup.Result{Reason: lookup.ReasonNoMatch}, now)                                // no id: counted only
		r.Record(cfg, []byte("c\xff"), lookup.Result{Reason: lookup.ReasonNoMatch}, now)                    // not text: dropped
		r.Record(cfg, []byte(strings.Repeat("x", MaxCallID+1)), lookup.Result{}, now)                       // too long: dropped
		r.Record(cfg, []byte("c2"), lookup.Result{Target: "380671110000", Reason: lookup.ReasonOwner}, now) // a phone target
		synctest.Wait()
		if got := sk.got(); len(got) != 0 {
			t.Fatalf("before the interval: %q written, want nothing yet", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want := []string{"acme/c1/u1/anna/owner acme/c2/u3/380671110000/owner"}
		if got := sk.got(); !slices.Equal(got, want) {
			t.Fatalf("after the interval: %q, want %q", got, want)
		}
		// A full batch goes at once, without waiting for the interval.
		for _, id := range []string{"c3", "c4", "c5"} {
			r.Record(cfg, []byte(id), lookup.Result{Target: "senior", Reason: lookup.ReasonDefaultOwner}, now)
		}
		synctest.Wait()
		want = append(want, "acme/c3/u9/senior/default_owner acme/c4/u9/senior/default_owner acme/c5/u9/senior/default_owner")
		if got := sk.got(); !slices.Equal(got, want) {
			t.Fatalf("after a full batch: %q, want %q", got, want)
		}
		// What is buffered at shutdown is written before Run returns.
		r.Record(cfg, []byte("c6"), lookup.Result{Reason: lookup.ReasonNoMatch}, now)
		cancel()
		<-done
		want = append(want, "acme/c6///no_match")
		if got := sk.got(); !slices.Equal(got, want) {
			t.Fatalf("after shutdown: %q, want %q", got, want)
		}
	})
}

func TestRecorderFullBufferDropsAndStoreErrorsRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sk := &sink{fail: 1}
		r := NewRecorder(sk, RecorderConfig{Buffer: 2, Batch: 10, Interval: time.Second})
		cfg := testTenant()
		now := time.Now()
		before := droppedFull.Get()
		for _, id := range []string{"a", "b", "c"} {
			r.Record(cfg, []byte(id), lookup.Result{Reason: lookup.ReasonNoMatch}, now)
		}
		if d := droppedFull.Get() - before; d != 1 {
			t.Fatalf("a third decision into a buffer of 2: %d dropped, want 1", d)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		time.Sleep(time.Second) // the first write fails
		synctest.Wait()
		if got := sk.got(); len(got) != 0 {
			t.Fatalf("after a refused write: %q stored", got)
		}
		time.Sleep(time.Second) // retried
		synctest.Wait()
		if got, want := sk.got(), []string{"acme/a///no_match acme/b///no_match"}; !slices.Equal(got, want) {
			t.Fatalf("after the retry: %q, want %q", got, want)
		}
		cancel()
		<-done
	})
}

// calls is a Source over a fixed list.
type calls []store.RoutedCall

func (cs calls) RoutedCalls(_ context.Context, tenantID string, from, to time.Time, fn func(store.RoutedCall) error) error {
	for _, c := range cs {
		if c.TenantID == tenantID && !c.At.Before(from) && c.At.Before(to) {
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestBuild(t *testing.T) {
	cfg := testTenant()
	kyiv := cfg.Location
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, kyiv)
	today := now.Add(-time.Hour)
	yesterday := time.Date(2026, 3, 9, 23, 30, 0, 0, kyiv) // 21:30 UTC: the report's day is the tenant's
	answered := func(emp string) map[string]string { return map[string]string{"employee": emp} }
	end := func(disposition, billsec, emp string) map[string]string {
		return map[string]string{"disposition": disposition, "billsec": billsec, "employee": emp}
	}
	dec := func(id string, at time.Time, owner, target, reason string) store.RouteDecision {
		return store.RouteDecision{TenantID: "acme", CallID: id, At: at.UTC(), OwnerID: owner, Target: target, Reason: reason}
	}
	src := calls{
		{RouteDecision: dec("c1", today, "u1", "anna", "owner"), Answered: answered("anna"), End: end("ANSWERED", "30", "anna")},
		{RouteDecision: dec("c2", today, "u1", "anna", "owner"), End: end("ANSWERED", "12", "boris")},
		{RouteDecision: dec("c3", today, "u1", "anna", "owner"), End: end("NO ANSWER", "0", "")},
		{RouteDecision: dec("c4", today, "u1", "anna", "owner")},                                   // still ringing
		{RouteDecision: dec("c5", today, "u1", "anna", "owner"), Answered: answered("0671110000")}, // Clara by her phone, no end yet
		{RouteDecision: dec("c6", today, "u1", "anna", "owner"), End: end("ANSWERED", "40", "boris")},
		{RouteDecision: dec("c7", today, "", "", "no_match"), End: end("ANSWERED", "5", "boris")},         // no forward
		{RouteDecision: dec("c8", yesterday, "u2", "boris", "owner"), End: end("ANSWERED", "9", "line7")}, // a line nobody has
		{RouteDecision: dec("c9", yesterday, "u2", "boris", "owner"), Answered: answered("boris"), End: map[string]string{"x": "1"}},
		{RouteDecision: dec("c0", now.AddDate(0, 0, -2), "u2", "boris", "owner")}, // before the window
	}
	names := map[string]string{"u1": "Anna", "u2": "Boris", "u3": "Clara"}
	rep, err := Build(t.Context(), src, cfg, names, 2, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(rep, "", " ")
	want := `{
 "tenant": "acme",
 "days": 2,
 "time_zone": "Europe/Kyiv",
 "from": "2026-03-08T22:00:00Z",
 "to": "2026-03-10T13:00:00Z",
 "rows": [
  {
   "day": "2026-03-10",
   "manager": "",
   "name": "",
   "target": "",
   "routed": 1,
   "answered": 0,
   "fell_through": 1,
   "missed": 0,
   "unknown": 0,
   "answered_instead": [
    {
     "manager": "u2",
     "employee": "boris",
     "name": "Boris",
     "calls": 1
    }
   ]
  },
  {
   "day": "2026-03-10",
   "manager": "u1",
   "name": "Anna",
   "target": "anna",
   "routed": 6,
   "answered": 1,
   "fell_through": 4,
   "missed": 1,
   "unknown": 1,
   "answered_instead": [
    {
     "manager": "u2",
     "employee": "boris",
     "name": "Boris",
     "calls": 2
    },
    {
     "manager": "u3",
     "employee": "0671110000",
     "name": "Clara",
     "calls": 1
    }
   ]
  },
  {
   "day": "2026-03-09",
   "manager": "u2",
   "name": "Boris",
   "target": "boris",
   "routed": 2,
   "answered": 1,
   "fell_through": 1,
   "missed": 0,
   "unknown": 0,
   "answered_instead": [
    {
     "manager": "",
     "employee": "line7",
     "name": "",
     "calls": 1
    }
   ]
  }
 ]
}`
	if string(b) != want {
		t.Fatalf("report\n%s\nwant\n%s", b, want)
	}
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]int{"": DefaultDays, "1": 1, "90": 90, " 30 ": 30} {
		if got, err := ParseDays(in); err != nil || got != want {
			t.Errorf("ParseDays(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "91", "-1", "7d", "1e2", "07", "x"} {
		if _, err := ParseDays(in); domain.ErrorCode(err) != domain.EINVALID || !strings.HasPrefix(domain.ErrorMessage(err), "days:") {
			t.Errorf("ParseDays(%q): %v, want EINVALID naming days", in, err)
		}
	}
}
