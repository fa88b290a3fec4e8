package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/domain"
)

// errLeaseLost ends a sync cycle whose lease another holder took over.
var errLeaseLost = errors.New("sync lease lost to another holder")

// leasedSync runs one sync cycle of a tenant under the tenant's sync lease
// (Config.Leases), so one instance at a time talks to the tenant's CRM.
//
// Sync jobs are not unique in River on purpose: River's uniqueness must
// count running jobs, and the job of an instance killed mid-sync stays
// "running" until River rescues it, an hour and more later, blocking every
// new cycle of that tenant until then. The lease runs out SyncLeaseTTL
// after its holder stops renewing it instead. A job that finds the lease
// held snoozes half a lease and tries again, so a survivor resumes a dead
// holder's sync from its stored position within a lease, while a live
// holder keeps at most this one job waiting (the tick adds none while one
// waits). The holder renews the lease while its cycle runs, and stops the
// cycle if another holder took the lease over (it was paused for longer
// than a lease).
func leasedSync(ctx context.Context, cfg Config, jobID int64, tenantID string) error {
	if cfg.Leases == nil {
		return syncJob(ctx, cfg, tenantID)
	}
	holder := fmt.Sprintf("%s/%d", cfg.Instance, jobID)
	ok, err := cfg.Leases.LeaseSync(ctx, tenantID, holder, cfg.SyncLeaseTTL)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil // the tenant is gone
	}
	if err != nil {
		return fmt.Errorf("lease sync of %s: %w", tenantID, err)
	}
	if !ok {
		return river.JobSnooze(cfg.SyncLeaseTTL / 2)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	renewing := make(chan struct{})
	go func() {
		defer close(renewing)
		t := time.NewTicker(cfg.SyncLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			ok, err := cfg.Leases.LeaseSync(cctx, tenantID, holder, cfg.SyncLeaseTTL)
			switch {
			case cctx.Err() != nil:
				return
			case err != nil:
				// The lease is still ours until it runs out; the next tick
				// tries again.
				cfg.Log.Warn("renew sync lease", zap.String("tenant", tenantID), zap.Error(err))
			case !ok:
				cancel(errLeaseLost)
				return
			}
		}
	}()
	err = syncJob(cctx, cfg, tenantID)
	lost := errors.Is(context.Cause(cctx), errLeaseLost)
	cancel(nil)
	<-renewing
	// Released after every job, continuations included: the next job of
	// the tenant, wherever it runs, takes it at once.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if rerr := cfg.Leases.ReleaseSync(rctx, tenantID, holder); rerr != nil {
		cfg.Log.Warn("release sync lease", zap.String("tenant", tenantID), zap.Error(rerr))
	}
	if lost {
		cfg.Log.Warn("sync lease taken over by another holder; leaving the sync to it", zap.String("tenant", tenantID))
		return nil
	}
	return err
}

// waitingJobs returns the tenants that have a job of kind (whose
// arguments name a tenant_id) waiting to run (not running), so a periodic
// tick adds no second one.
func waitingJobs[TTx any](ctx context.Context, client *river.Client[TTx], kind string) (map[string]bool, error) {
	const page = 1000
	params := river.NewJobListParams().Kinds(kind).First(page).States(rivertype.JobStateAvailable,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateScheduled)
	out := map[string]bool{}
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("list waiting %s jobs: %w", kind, err)
		}
		for _, j := range res.Jobs {
			var a struct {
				TenantID string `json:"tenant_id"`
			}
			if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
				return nil, fmt.Errorf("%s job %d: %w", kind, j.ID, err)
			}
			out[a.TenantID] = true
		}
		if len(res.Jobs) < page {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}
