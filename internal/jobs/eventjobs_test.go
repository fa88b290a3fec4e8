package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/riverqueue/river"

	"github.com/callrouter/callrouter/internal/events"
	"github.com/callrouter/callrouter/internal/store"
)

func TestEventJobsGroupPartitionsPerTenant(t *testing.T) {
	var parts []store.Partition
	for i := range 40 {
		parts = append(parts, store.Partition{TenantID: "acme", Partition: "a" + strconv.Itoa(i)})
		if i%10 == 0 {
			parts = append(parts, store.Partition{TenantID: "beta", Partition: "b" + strconv.Itoa(i)})
		}
	}
	jobs := eventJobs(parts)
	var got []string
	for _, j := range jobs {
		a := j.(EventArgs)
		got = append(got, fmt.Sprintf("%s:%d:%s..%s", a.TenantID, len(a.Partitions), a.Partitions[0], a.Partitions[len(a.Partitions)-1]))
	}
	want := "[acme:32:a0..a31 beta:4:b0..b30 acme:8:a32..a39]"
	if fmt.Sprint(got) != want {
		t.Fatalf("jobs %v, want %s: one job per tenant, at most %d clients each, in order", got, want, partitionsPerJob)
	}
}

// drains records the partitions drained and answers per partition.
type drains struct {
	seen    []string
	answers map[string]error
}

func (d *drains) Drain(_ context.Context, tenantID, partition string) error {
	d.seen = append(d.seen, tenantID+"/"+partition)
	return d.answers[partition]
}

func TestDrainAllGivesEveryPartitionItsTurn(t *testing.T) {
	boom := errors.New("store down")
	cases := []struct {
		name    string
		answers map[string]error
		want    func(error) bool
	}{
		{"all done", nil, func(err error) bool { return err == nil }},
		{"one busy snoozes", map[string]error{"p2": events.ErrBusy}, func(err error) bool {
			var snooze *river.JobSnoozeError
			return errors.As(err, &snooze)
		}},
		{"an error wins over busy", map[string]error{"p1": events.ErrBusy, "p2": boom}, func(err error) bool { return errors.Is(err, boom) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &drains{answers: tc.answers}
			err := drainAll(context.Background(), d, EventArgs{TenantID: "acme", Partition: "p0", Partitions: []string{"p1", "p2", "p3"}})
			if !tc.want(err) {
				t.Fatalf("drainAll = %v", err)
			}
			if fmt.Sprint(d.seen) != "[acme/p0 acme/p1 acme/p2 acme/p3]" {
				t.Fatalf("drained %v, want every partition once, in order", d.seen)
			}
		})
	}
}
