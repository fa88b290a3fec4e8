package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/phone"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/tenant"
)

// CRM is what processing needs from the CRM side (crmsync.Calls).
type CRM interface {
	// Writer returns the tenant's CRM; crm.ErrInactive (wrapped) when
	// events must wait.
	Writer(ctx context.Context, tenantID string) (crm.Writer, error)
	// Lookup searches the CRM for a phone, indexes what it finds and
	// returns the phone's index rows.
	Lookup(ctx context.Context, tenantID, number string) ([]domain.IndexEntry, error)
	// Index puts entities callrouter created into the phone index (and so
	// into routing) at once.
	Index(ctx context.Context, tenantID string, ents []crm.Entity) error
	// Broken marks the integration broken with the CRM's words.
	Broken(ctx context.Context, tenantID string, err *crm.AuthError) error
	// Gone reads refs from the CRM, puts what it finds into the phone index,
	// drops the rows of those the CRM no longer has, and returns those.
	Gone(ctx context.Context, tenantID string, refs []crm.Ref) ([]crm.Ref, error)
}

// Store is the part of the store processing uses.
type Store interface {
	store.Events
	LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error)
}

// Tenants returns the current configuration of a tenant (tenant.Registry).
type Tenants interface {
	Lookup(id string) *tenant.Config
}

// DefaultMaxAttempts is how many times an event is tried before it is
// marked failed: with Backoff that spans about 15 hours, enough to ride
// out a CRM outage, short of blocking a client's later calls for ever.
const DefaultMaxAttempts = 24

// Backoff is how long an event waits after its n-th failed attempt: 10 s,
// doubling, at most an hour.
func Backoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// DefaultLeaseTTL is how long a partition stays claimed without renewal.
// A drain renews it before every event and every CRM write, so it only
// runs out when its holder died: then another instance takes over.
const DefaultLeaseTTL = 20 * time.Second

// ErrBusy is Drain's answer when another drain holds the partition; the
// caller tries again shortly.
var ErrBusy = errors.New("events: another drain holds this partition")

// Processor applies stored events to the CRM.
type Processor struct {
	store       Store
	tenants     Tenants
	crm         CRM
	now         func() time.Time
	log         *zap.Logger
	maxAttempts int
	leaseTTL    time.Duration
}

// Config wires a Processor.
type Config struct {
	Store       Store
	Tenants     Tenants
	CRM         CRM
	Now         func() time.Time
	Log         *zap.Logger
	MaxAttempts int
	LeaseTTL    time.Duration
}

// NewProcessor returns a Processor.
func NewProcessor(cfg Config) *Processor {
	p := &Processor{store: cfg.Store, tenants: cfg.Tenants, crm: cfg.CRM, now: cfg.Now, log: cfg.Log,
		maxAttempts: cfg.MaxAttempts, leaseTTL: cfg.LeaseTTL}
	if p.leaseTTL <= 0 {
		p.leaseTTL = DefaultLeaseTTL
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = DefaultMaxAttempts
	}
	return p
}

var unverifiedRetries = metrics.NewCounter(`callrouter_events_unverified_retries_total`)

// Drain applies the waiting events of one partition, oldest first, until
// none waits, holding the partition's lease so that no other drain, on any
// instance, applies its events meanwhile. It returns nil when the
// partition is drained or must wait for the integration (inactive, broken:
// the events stay waiting), ErrBusy when another drain holds the
// partition, and the error of an event that failed in a way a later
// attempt may fix; the caller retries the partition later, so order holds.
func (p *Processor) Drain(ctx context.Context, tenantID, partition string) error {
	// Events of a tenant without an active integration wait; finding that
	// out before the lease costs a read instead of two writes, which on
	// SQLite's single writer would slow the ingest of every tenant.
	if _, err := p.crm.Writer(ctx, tenantID); errors.Is(err, crm.ErrInactive) {
		return nil
	}
	l := &lease{p: p, tenantID: tenantID, partition: partition, holder: store.NewID()}
	if err := l.renew(ctx); err != nil {
		return err
	}
	defer func() {
		if err := p.store.ReleasePartition(context.WithoutCancel(ctx), tenantID, partition, l.holder); err != nil {
			p.log.Warn("release partition", zap.String("tenant", tenantID), zap.Error(err))
		}
	}()
	for {
		ev, err := p.store.NextEvent(ctx, tenantID, partition)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil
		}
		if err != nil {
			return fmt.Errorf("next event: %w", err)
		}
		if ev.RetryAt.After(p.now()) {
			// The head waits for its retry; later events wait behind it,
			// and the sweep comes back when it is due.
			return nil
		}
		note, err := p.apply(ctx, ev, l)
		var ae *crm.AuthError
		switch {
		case err == nil:
			counter("callrouter_events_processed_total", tenantID).Inc()
			if err := p.store.FinishEvent(ctx, tenantID, ev.ID, domain.EventDone, note); err != nil {
				return fmt.Errorf("finish event: %w", err)
			}
		case errors.Is(err, crm.ErrInactive):
			return nil
		case errors.Is(err, ErrBusy):
			return err
		case errors.As(err, &ae):
			if berr := p.crm.Broken(ctx, tenantID, ae); berr != nil {
				return errors.Join(err, berr)
			}
			p.log.Warn("events wait: the CRM rejected the credentials", zap.String("tenant", tenantID))
			return nil
		case crm.IsPermanent(err):
			p.failed(ctx, ev, err)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			n, nerr := p.store.NoteAttempt(ctx, tenantID, ev.ID, err.Error(), p.now().Add(Backoff(ev.Attempts+1)))
			if nerr != nil {
				return errors.Join(err, nerr)
			}
			if n < p.maxAttempts {
				counter("callrouter_events_retries_total", tenantID).Inc()
				return fmt.Errorf("event %s, attempt %d: %w", ev.ID, n, err)
			}
			p.failed(ctx, ev, err)
		}
		if err := l.renew(ctx); err != nil {
			return err
		}
	}
}

// lease is a drain's claim on its partition.
type lease struct {
	p                           *Processor
	tenantID, partition, holder string
}

// renew extends the lease; ErrBusy when someone else took it over (this
// drain stalled past the lease's end).
func (l *lease) renew(ctx context.Context) error {
	ok, err := l.p.store.LeasePartition(ctx, l.tenantID, l.partition, l.holder, l.p.leaseTTL)
	if err != nil {
		return fmt.Errorf("lease partition: %w", err)
	}
	if !ok {
		return ErrBusy
	}
	return nil
}

func (p *Processor) failed(ctx context.Context, ev domain.CallEvent, err error) {
	counter("callrouter_events_failed_total", ev.TenantID).Inc()
	p.log.Warn("event failed", zap.String("tenant", ev.TenantID), zap.String("event", ev.ID), zap.Error(err))
	if ferr := p.store.FinishEvent(ctx, ev.TenantID, ev.ID, domain.EventFailed, err.Error()); ferr != nil {
		p.log.Error("mark event failed", zap.String("event", ev.ID), zap.Error(ferr))
	}
}

// client is what the CRM knows of the caller.
type client struct {
	lead      crm.Ref // open lead or deal; zero when none
	leadOwner string
	contact   crm.Ref
}

// run is one event being applied.
type run struct {
	p     *Processor
	lease *lease
	ev    domain.CallEvent
	t     *tenant.Config
	w     crm.Writer
	c     Call
	num   string // the client's number, E.164 digits
	did   []string
	// linked are the existing CRM entities this attempt links its writes
	// to, as the index or the CRM's search named them.
	linked []crm.Ref
}

// apply runs the scenario matrix for one event and returns what it did.
func (p *Processor) apply(ctx context.Context, ev domain.CallEvent, l *lease) (string, error) {
	t := p.tenants.Lookup(ev.TenantID)
	if t == nil {
		return "tenant deleted", nil
	}
	if ev.Kind == domain.EventForm {
		w, err := p.crm.Writer(ctx, ev.TenantID)
		if err != nil {
			return "", err
		}
		return p.form(ctx, &run{p: p, lease: l, ev: ev, t: t, w: w})
	}
	c := ReadCall(ev, t.Location)
	switch ev.Kind {
	case domain.EventCallAnswered, domain.EventOutgoingStart:
		return "recorded", nil
	case domain.EventCallStart:
		if !t.Settings.LeadOnCallStart {
			return "recorded", nil
		}
	}
	// A call to or from one of the project's own lines (incoming: the line
	// called or the employee who answered; outgoing: the employee or line
	// that dialled) creates nothing, whoever the client is.
	if t.StoppedLine(c.Line) || t.StoppedLine(c.Employee) {
		counter("callrouter_events_stop_list_total", t.ID).Inc()
		return "stop list: project line", nil
	}
	num, ok := c.ClientNumber(t.Settings.DefaultCountry)
	if !ok {
		return "no client number", nil
	}
	if t.Stopped(num) {
		counter("callrouter_events_stop_list_total", t.ID).Inc()
		return "stop list", nil
	}
	w, err := p.crm.Writer(ctx, ev.TenantID)
	if err != nil {
		return "", err
	}
	r := &run{p: p, lease: l, ev: ev, t: t, w: w, c: c, num: num}
	return r.matrix(ctx)
}

var reresolved = metrics.NewCounter(`callrouter_events_reresolved_total`)

// matrix files the event (scenario). An entity deleted in the CRM since
// the index read it (before any feed said so) never gets the event: the
// client's open lead is read back before the event is filed on it, and
// when the CRM refuses a write for good and an entity the write linked to
// (the lead, or the contact a new lead was to join) is gone from the CRM,
// the client is looked up again without it and the event filed as for
// whoever the CRM still knows, a new client when nobody, instead of
// failing. Whether a refusal was about that entity is asked of the CRM
// (Gone) rather than read from its error text, which differs per CRM
// (amoCRM and retailCRM answer 400, Zoho 400 INVALID_DATA, Uspacy 422).
func (r *run) matrix(ctx context.Context) (string, error) {
	note, err := r.scenario(ctx)
	if err == nil || !crm.IsPermanent(err) || len(r.linked) == 0 {
		return note, err
	}
	gone, gerr := r.p.crm.Gone(ctx, r.t.ID, r.linked)
	if gerr != nil {
		// Unknown whether the entity is gone: try the event again later.
		return "", fmt.Errorf("check the linked entities after the CRM refused a write (%v): %w", err, gerr)
	}
	if len(gone) == 0 {
		return note, err
	}
	reresolved.Inc()
	for _, g := range gone {
		r.did = append(r.did, fmt.Sprintf("%s %s deleted in the CRM", g.Kind, g.ID))
	}
	return r.scenario(ctx)
}

// scenario is DESIGN.md's scenario matrix: find the client, make the lead
// when there is none (contact → deal), file the call, and for a missed
// incoming call the call-back task. Users the CRM shows deactivated or
// removed get nothing: their calls and tasks go to the default owner.
func (r *run) scenario(ctx context.Context) (string, error) {
	known, err := r.find(ctx)
	if err != nil {
		return "", err
	}
	if known.lead.ID != "" {
		// The index may predate a deletion by up to a sync cycle, and some
		// CRMs file a call by phone without naming the lead (retailCRM) or
		// may accept writes to a trashed record: read the lead back before
		// filing on it.
		gone, err := r.p.crm.Gone(ctx, r.t.ID, []crm.Ref{known.lead})
		if err != nil {
			return "", fmt.Errorf("check the client's %s %s: %w", known.lead.Kind, known.lead.ID, err)
		}
		if len(gone) > 0 {
			reresolved.Inc()
			r.did = append(r.did, fmt.Sprintf("%s %s deleted in the CRM", known.lead.Kind, known.lead.ID))
			if known, err = r.find(ctx); err != nil {
				return "", err
			}
		}
	}
	defOwner := r.t.DefaultOwner
	manager := defOwner
	id, mapped := r.t.Employee(r.c.Employee)
	// A user the CRM shows deactivated or removed counts as unmapped.
	mapped = mapped && r.t.Active(id)
	if mapped {
		manager = id
	}
	uw, unsorted := r.unsorted(known)
	if r.ev.Kind == domain.EventCallStart {
		if known.lead.ID != "" {
			return "client known", nil
		}
		if unsorted {
			// The request is filed when the call ends, with its talk time
			// and recording.
			return "recorded: amo_unsorted files the request when the call ends", nil
		}
		if _, err := r.lead(ctx, known, defOwner); err != nil {
			return "", err
		}
		return r.note(), nil
	}

	missed := !r.c.Outgoing && !r.c.Answered
	// The responsible of the call: who answered or dialled; for a missed
	// call the lead's responsible, or the default owner for a new client.
	responsible := manager
	if missed {
		responsible = defOwner
		if known.leadOwner != "" && r.t.Active(known.leadOwner) {
			responsible = known.leadOwner
		}
	}
	row := domain.CallRow(r.c.Outgoing, r.c.Answered, known.lead.ID != "")
	want := r.t.Settings.Matrix.Row(row)
	if want.Nothing() {
		counter("callrouter_events_matrix_nothing_total", r.t.ID).Inc()
		return "matrix row " + row + " creates nothing", nil
	}
	if unsorted && !r.c.Outgoing {
		return r.unsortedCall(ctx, uw)
	}
	cl := known
	switch {
	case want.Lead:
		// A known client's row that asks for a lead gets a new one each
		// call, linked to the client's contact.
		if cl, err = r.lead(ctx, known, responsible); err != nil {
			return "", err
		}
	case known.lead.ID != "" && !r.c.UTM.Empty():
		if err := r.fillUTM(ctx, known.lead); err != nil {
			return "", err
		}
	}
	if want.Contact && cl.contact.ID == "" {
		if cl.contact, err = r.contact(ctx, responsible); err != nil {
			return "", err
		}
	}
	if want.Call {
		if err := r.call(ctx, cl, responsible); err != nil {
			return "", err
		}
	}
	tx := textsFor(r.t.Settings.Language)
	switch {
	case !r.c.Outgoing && r.c.Answered && !mapped && r.c.Employee != "" && defOwner != "":
		// Seed 000: a call answered on a line or SIP login no employee is
		// mapped to is the senior manager's to follow up, so they get a
		// task as well as the call, whatever the matrix row says of tasks.
		counter("callrouter_events_unmapped_answer_tasks_total", r.t.ID).Inc()
		if err := r.task(ctx, cl, defOwner, fmt.Sprintf(tx.unmapped, r.num, r.local(r.c.Start), r.c.Employee)); err != nil {
			return "", err
		}
	case want.Task:
		text := tx.followUp
		if missed {
			text = tx.callBack
		}
		if err := r.task(ctx, cl, responsible, fmt.Sprintf(text, r.num, r.local(r.c.Start))); err != nil {
			return "", err
		}
	}
	return r.note(), nil
}

// local formats t in the tenant's time zone for a task's text, e.g.
// "2026-12-05 17:55 EET".
func (r *run) local(t time.Time) string {
	return crm.In(t, r.t.Location).Format("2006-01-02 15:04 MST")
}

// due is when a task about this call is due: callback_due_minutes after the
// call started (its calldate), however late the event is processed.
func (r *run) due() time.Time {
	minutes := r.t.Settings.CallbackDueMinutes
	if minutes <= 0 {
		minutes = domain.DefaultCallbackDueMinutes
	}
	return r.c.Start.Add(time.Duration(minutes) * time.Minute)
}

func (r *run) note() string {
	if len(r.did) == 0 {
		return "nothing to do"
	}
	return strings.Join(r.did, "; ")
}

// find looks the client up in the phone index, then in the CRM when the
// index knows no open lead: a lead made by an earlier call must never be
// made again, even when the index lags or a crash lost its id.
func (r *run) find(ctx context.Context) (client, error) {
	rows, err := r.p.store.LookupSuffix(ctx, r.t.ID, phone.Suffix(r.num))
	if err != nil {
		return client{}, fmt.Errorf("index lookup: %w", err)
	}
	c := r.pick(rows)
	if c.lead.ID == "" {
		if rows, err = r.p.crm.Lookup(ctx, r.t.ID, r.num); err != nil {
			return client{}, fmt.Errorf("CRM search: %w", err)
		}
		c = r.pick(rows)
	}
	r.linked = r.linked[:0]
	for _, ref := range []crm.Ref{c.lead, c.contact} {
		if ref.ID != "" {
			r.linked = append(r.linked, ref)
		}
	}
	return c, nil
}

// pick chooses the open lead or deal by the tenant's owner order (most
// recently updated first within a kind) and the contact.
func (r *run) pick(rows []domain.IndexEntry) client {
	var c client
	for _, kind := range r.t.OwnerOrder {
		if kind != domain.KindLead && kind != domain.KindDeal {
			continue
		}
		for _, e := range rows {
			if e.Kind == kind && e.Open && phone.Same(e.Phone, r.num) {
				c.lead, c.leadOwner = crm.Ref{Kind: kind, ID: e.EntityID}, e.OwnerID
				break
			}
		}
		if c.lead.ID != "" {
			break
		}
	}
	for _, e := range rows {
		if e.Kind == domain.KindContact && phone.Same(e.Phone, r.num) {
			c.contact = crm.Ref{Kind: domain.KindContact, ID: e.EntityID}
			break
		}
	}
	return c
}

// key is the idempotency key of one step of this event: short, and the
// same on every attempt.
func (r *run) key(step crm.WriteKind) string {
	h := sha256.Sum256([]byte(r.t.ID + "\x00" + r.ev.UniqueID + "\x00" + string(r.ev.Kind) + "\x00" + string(step)))
	return "cr" + hex.EncodeToString(h[:12])
}

// once runs create unless an earlier attempt finished it, and returns the
// created id. An attempt whose answer was lost (a crash between the CRM's
// answer and storing the id) is looked for in the CRM first.
func (r *run) once(ctx context.Context, kind crm.WriteKind, parent crm.Ref, create func(key string) (string, error)) (string, error) {
	key := r.key(kind)
	// Renewed before every write: a drain that stalled past its lease must
	// not write what the drain that took over may be writing too.
	if err := r.lease.renew(ctx); err != nil {
		return "", err
	}
	w, fresh, err := r.p.store.BeginWrite(ctx, domain.CRMWrite{TenantID: r.t.ID, Key: key, Kind: string(kind)})
	if err != nil {
		return "", fmt.Errorf("begin %s write: %w", kind, err)
	}
	if w.EntityID != "" {
		return w.EntityID, nil
	}
	if !fresh && kind != crm.WriteLead {
		id, err := r.w.Find(ctx, kind, key, parent)
		switch {
		case errors.Is(err, crm.ErrNotSearchable):
			unverifiedRetries.Inc()
		case err != nil:
			return "", fmt.Errorf("find earlier %s: %w", kind, err)
		case id != "":
			return id, r.finish(ctx, key, id)
		}
	}
	id, err := create(key)
	if err != nil {
		return "", err
	}
	return id, r.finish(ctx, key, id)
}

func (r *run) finish(ctx context.Context, key, id string) error {
	// The CRM has the entity now: storing its id must not be cut short by
	// the job's context.
	if err := r.p.store.FinishWrite(context.WithoutCancel(ctx), r.t.ID, key, id); err != nil {
		return fmt.Errorf("store created id: %w", err)
	}
	return nil
}

// lead creates the lead (and the contact where the CRM needs one) for a
// client without an open one, and indexes them so routing and the next
// event find them at once.
func (r *run) lead(ctx context.Context, known client, owner string) (client, error) {
	var made crm.Created
	title := fmt.Sprintf(textsFor(r.t.Settings.Language).leadTitle, r.num)
	mappedTitle, tags, dealFields := standard(r.t.Settings.CallMapping.Resolve(domain.MapDeal, r.ev.Fields))
	title = cmpOr(mappedTitle, title)
	_, _, contactFields := standard(r.t.Settings.CallMapping.Resolve(domain.MapContact, r.ev.Fields))
	stored, err := r.once(ctx, crm.WriteLead, crm.Ref{}, func(key string) (string, error) {
		var err error
		made, err = r.w.CreateLead(ctx, crm.NewLead{Key: key, Phone: r.num, Title: title, OwnerID: owner,
			ContactID: known.contact.ID, Pipeline: r.t.Settings.Pipeline(r.ev.Fields), UTM: r.c.UTM,
			Fields: dealFields, ContactFields: contactFields, Tags: tags})
		if err != nil {
			return "", err
		}
		return encodeCreated(made), nil
	})
	if err != nil {
		return client{}, err
	}
	made = decodeCreated(stored)
	ents := []crm.Entity{{Kind: made.Lead.Kind, ID: made.Lead.ID, Name: title, Phones: []string{r.num},
		OwnerID: owner, Open: true, UpdatedAt: r.p.now()}}
	if made.Contact.ID != "" && made.Contact.ID != known.contact.ID {
		ents = append(ents, crm.Entity{Kind: domain.KindContact, ID: made.Contact.ID, Name: "+" + r.num,
			Phones: []string{r.num}, OwnerID: owner, Open: true, UpdatedAt: r.p.now()})
	}
	if err := r.p.crm.Index(ctx, r.t.ID, ents); err != nil {
		return client{}, fmt.Errorf("index the new lead: %w", err)
	}
	r.did = append(r.did, fmt.Sprintf("%s %s created", made.Lead.Kind, made.Lead.ID))
	if made.Contact.ID == "" {
		made.Contact = known.contact
	}
	return client{lead: made.Lead, leadOwner: owner, contact: made.Contact}, nil
}

// encodeCreated keeps both refs of a created lead in one stored id.
func encodeCreated(c crm.Created) string {
	s := string(c.Lead.Kind) + ":" + c.Lead.ID
	if c.Contact.ID != "" {
		s += "|" + string(c.Contact.Kind) + ":" + c.Contact.ID
	}
	return s
}

func decodeCreated(s string) crm.Created {
	var c crm.Created
	for i, part := range strings.SplitN(s, "|", 2) {
		kind, id, _ := strings.Cut(part, ":")
		ref := crm.Ref{Kind: domain.ParseKind(kind), ID: id}
		if i == 0 {
			c.Lead = ref
		} else {
			c.Contact = ref
		}
	}
	return c
}

func (r *run) fillUTM(ctx context.Context, lead crm.Ref) error {
	wrote, err := r.w.FillUTM(ctx, lead, r.c.UTM)
	if err != nil {
		return fmt.Errorf("fill UTM: %w", err)
	}
	if wrote {
		r.did = append(r.did, "UTM written")
	}
	return nil
}

func (r *run) call(ctx context.Context, cl client, user string) error {
	parent := cl.lead
	if parent.ID == "" {
		parent = cl.contact
	}
	if parent.ID == "" {
		// A row without lead or contact for a new client leaves the call
		// nothing to be filed under.
		r.did = append(r.did, "call not filed: no lead or contact")
		return nil
	}
	id, err := r.once(ctx, crm.WriteCall, parent, func(key string) (string, error) {
		return r.w.CreateCall(ctx, crm.NewCall{Key: key, CallID: r.c.UniqueID, Outgoing: r.c.Outgoing, Answered: r.c.Answered,
			Disposition: r.c.Disposition, Phone: r.num, Line: r.c.Line, Start: r.c.Start, Zone: r.t.Location, Duration: r.c.Talk,
			Wait: r.c.Wait, Recording: r.c.Recording, UserID: user, Lead: cl.lead, Contact: cl.contact,
			Texts: textsFor(r.t.Settings.Language).call.callTexts(r.c, r.num)})
	})
	if err != nil {
		return err
	}
	r.did = append(r.did, "call "+id)
	return nil
}

// task creates a task about the call for user: the call-back task of a
// missed call, the follow-up task a matrix row asks for, or the default
// owner's task for a call answered on an unmapped line.
func (r *run) task(ctx context.Context, cl client, user, text string) error {
	parent := cl.lead
	if parent.ID == "" {
		parent = cl.contact
	}
	if parent.ID == "" {
		r.did = append(r.did, "task not created: no lead or contact")
		return nil
	}
	id, err := r.once(ctx, crm.WriteTask, parent, func(key string) (string, error) {
		return r.w.CreateTask(ctx, crm.NewTask{Key: key, UserID: user, Phone: r.num, Lead: cl.lead, Contact: cl.contact,
			Text: text, Due: r.due(), Zone: r.t.Location})
	})
	if err != nil {
		return err
	}
	r.did = append(r.did, "task "+id)
	return nil
}

// contact creates a contact alone for a client without one, when the
// matrix asks for it without a lead, and indexes it.
func (r *run) contact(ctx context.Context, owner string) (crm.Ref, error) {
	cw, ok := r.w.(crm.ContactWriter)
	if !ok {
		r.did = append(r.did, "contact not created: this CRM adapter cannot create one alone")
		return crm.Ref{}, nil
	}
	id, err := r.once(ctx, crm.WriteContact, crm.Ref{}, func(key string) (string, error) {
		name, tags, fields := standard(r.t.Settings.CallMapping.Resolve(domain.MapContact, r.ev.Fields))
		ref, err := cw.CreateContact(ctx, crm.NewContact{Key: key, Phone: r.num, Name: cmpOr(name, "+"+r.num), OwnerID: owner,
			Fields: fields, Tags: tags})
		return ref.ID, err
	})
	if err != nil {
		return crm.Ref{}, err
	}
	ref := crm.Ref{Kind: domain.KindContact, ID: id}
	if err := r.p.crm.Index(ctx, r.t.ID, []crm.Entity{{Kind: domain.KindContact, ID: id, Name: "+" + r.num,
		Phones: []string{r.num}, OwnerID: owner, Open: true, UpdatedAt: r.p.now()}}); err != nil {
		return crm.Ref{}, fmt.Errorf("index the new contact: %w", err)
	}
	r.did = append(r.did, "contact "+id+" created")
	return ref, nil
}
