package ringostat

import (
	"context"

	"github.com/callrouter/callrouter/internal/notify"
)

// tee hands this instance's phone-index changes to the manager, then
// announces them through next.
type tee struct {
	m    *Manager
	next notify.Publisher
}

// Tee returns a Publisher that queues every phone-index change this
// instance announces (CRM sync pages, CRM webhooks, live lookups, leads
// made for calls, contacts imports: all of them announce their keys) for
// the next contacts push, then publishes it through next (nil: nowhere).
// It returns next's error.
func (m *Manager) Tee(next notify.Publisher) notify.Publisher { return tee{m: m, next: next} }

// Publish queues index keys and flushes, then announces the changes.
func (t tee) Publish(ctx context.Context, changes ...notify.Change) error {
	for _, c := range changes {
		switch c.Kind {
		case notify.KindKeys:
			t.m.IndexChanged(c.Tenant, c.Keys)
		case notify.KindFlush:
			t.m.IndexFlushed(c.Tenant)
		}
	}
	if t.next == nil {
		return nil
	}
	return t.next.Publish(ctx, changes...)
}
