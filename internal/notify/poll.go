package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/store"
)

// pollBatch bounds the entries one read of the change log returns.
const pollBatch = 1000

// Poller is the Bus on a store without notifications (SQLite): Publish
// appends to the change log, and the poller reads the entries after its
// position every PollInterval and applies the other instances'. It also
// trims entries older than Retention. A single-process deployment finds
// nothing to apply; processes sharing the file see each other's changes
// within a PollInterval. It is safe for concurrent use.
type Poller struct {
	cfg Config
	log store.ChangeLog

	mu       sync.Mutex
	last     int64 // seq of the last entry read; owned by the polling goroutine once started
	pending  bool  // a resync is owed; owned by the polling goroutine
	lastTrim time.Time
	cancel   context.CancelFunc
	done     chan struct{}
}

var _ Bus = (*Poller)(nil)

// NewPoller returns a Bus on the change log. It returns an error when cfg
// has no Origin.
func NewPoller(log store.ChangeLog, cfg Config) (*Poller, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Poller{cfg: cfg, log: log}, nil
}

// Publish appends changes to the change log, in one transaction. It
// returns the store's error.
func (p *Poller) Publish(ctx context.Context, changes ...Change) error {
	payloads, err := encode(&p.cfg, changes)
	if err != nil || len(payloads) == 0 {
		return err
	}
	if err := p.log.AppendChanges(ctx, payloads); err != nil {
		failures.Inc()
		return fmt.Errorf("notify: publish: %w", err)
	}
	published.Add(len(payloads))
	return nil
}

// Start takes the log's current end as its position and polls in the
// background until Close or ctx ends. It returns the store's error;
// calling it twice is an error.
func (p *Poller) Start(ctx context.Context, a Applier) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("notify: started twice")
	}
	last, err := p.log.LastChange(ctx)
	if err != nil {
		return fmt.Errorf("notify: read the change log: %w", err)
	}
	p.last = last
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go p.run(ctx, a)
	return nil
}

// Close stops polling. It returns nil.
func (p *Poller) Close() error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (p *Poller) run(ctx context.Context, a Applier) {
	defer close(p.done)
	for sleep(ctx, p.cfg.PollInterval) {
		if err := p.poll(ctx, a); err != nil && ctx.Err() == nil {
			// The entries stay in the log: the next poll reads them.
			failures.Inc()
			p.cfg.Log.Warn("notify: reading the change log failed", zap.Error(err))
		}
		p.trim(ctx)
	}
}

// poll applies the entries after the position. An entry that cannot be
// applied, or a gap (entries trimmed before this poller read them), owes a
// resync, tried now and at every poll until it succeeds. It returns the
// store's error of reading the log.
func (p *Poller) poll(ctx context.Context, a Applier) error {
	for {
		if p.pending {
			if !resync(ctx, &p.cfg, a) {
				return nil
			}
			p.pending = false
		}
		// One read of the high-water mark is all an idle poll costs.
		hw, err := p.log.LastChange(ctx)
		if err != nil {
			return err
		}
		if hw <= p.last {
			return nil
		}
		got, err := p.log.ChangesAfter(ctx, p.last, pollBatch)
		if err != nil {
			return err
		}
		if len(got) == 0 || got[0].Seq != p.last+1 {
			// Whatever the resync reads covers every entry up to hw.
			p.cfg.Log.Warn("notify: the change log was trimmed past this instance's position; resyncing",
				zap.Int64("position", p.last))
			p.last, p.pending = hw, true
			continue
		}
		payloads := make([]string, len(got))
		for i, c := range got {
			payloads[i] = c.Payload
		}
		if !receiveAll(ctx, &p.cfg, payloads, a) {
			p.pending = true
		}
		p.last = got[len(got)-1].Seq
		if len(got) < pollBatch && !p.pending {
			return nil
		}
	}
}

// trim removes entries older than Retention, at most once a tenth of it.
func (p *Poller) trim(ctx context.Context) {
	now := p.cfg.Now()
	if now.Sub(p.lastTrim) < p.cfg.Retention/10 {
		return
	}
	p.lastTrim = now
	if err := p.log.TrimChanges(ctx, now.Add(-p.cfg.Retention)); err != nil && ctx.Err() == nil {
		failures.Inc()
		p.cfg.Log.Warn("notify: trimming the change log failed", zap.Error(err))
	}
}
