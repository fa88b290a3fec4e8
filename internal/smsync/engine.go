// Package smsync keeps a tenant's SALESmanago contacts and its Zoho CRM
// leads and contacts in step (seed 001's "Integracja"), both ways.
//
// A person is keyed by e-mail (SALESmanago keys contacts by e-mail). A
// pass reads what changed on each side since the last pass (SALESmanago's
// paginatedModifiedContacts, Zoho's Modified_Time via If-Modified-Since;
// the first pass and the scheduled ones read everything), merges each
// person field by field and writes what a side lacks:
//   - fields: name, e-mail, phone, fax, company, state/province, street,
//     city, zip, country, birthday, e-mail opt-out (Zoho Email_Opt_Out),
//     owner, and status;
//   - status moves the record: SALESmanago PROSPECT ("Potencjalny") is a
//     Zoho lead, CUSTOMER ("Klient") a Zoho contact; a prospect who becomes
//     a customer has its lead converted, a lead converted in Zoho makes the
//     SALESmanago contact a customer. Zoho cannot turn a contact back into
//     a lead: a customer demoted in SALESmanago stays a Zoho contact;
//   - owners are matched by e-mail between SALESmanago's users
//     (/api/user/listByClient) and Zoho's; an owner without a match goes to
//     the main user (the connection's owner_email in SALESmanago, the
//     tenant's default owner in Zoho);
//   - no ping-pong: each side's values after a pass are kept per person
//     (store.SMLink) and a side whose values equal them did not change, so
//     what the sync wrote is not sent back; when both sides changed a field
//     since, the later change wins that field and a conflict is counted.
//
// Writes go in chunks of 100 persons: lead conversions, the contacts'
// accounts, Zoho upserts (100 a call), SALESmanago batch upserts (100 a
// call, one owner per call, job polled to its end), then the chunk's
// fingerprints. A pass that stops half-way (a crash, an error) leaves its
// cursors where they were; the next pass reads the same changes again,
// finds the chunks already done unchanged, and redoes the rest (upserts by
// e-mail are idempotent, so nothing is duplicated).
//
// Limits known and kept: SALESmanago's upsert cannot clear a field, so a
// field cleared in Zoho keeps its value in SALESmanago; Zoho leads have no
// birthday field, and a birthday without a year (SALESmanago's MMdd) has
// no Zoho form: those stay on the SALESmanago side. Contacts without an
// e-mail are not synced (counted as skipped).
package smsync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/salesmanago"
	"github.com/callrouter/callrouter/internal/secret"
	"github.com/callrouter/callrouter/internal/store"
)

var (
	passesTotal    = metrics.NewCounter(`callrouter_salesmanago_passes_total`)
	passErrors     = metrics.NewCounter(`callrouter_salesmanago_pass_errors_total`)
	writtenZoho    = metrics.NewCounter(`callrouter_salesmanago_written_total{side="zoho"}`)
	writtenSM      = metrics.NewCounter(`callrouter_salesmanago_written_total{side="salesmanago"}`)
	conflictsTotal = metrics.NewCounter(`callrouter_salesmanago_conflicts_total`)
)

// Kinds of pass.
const (
	KindFull        = "full"        // the first sync: everything on both sides
	KindScheduled   = "scheduled"   // 00/06/12/18 in the tenant's zone: everything again
	KindIncremental = "incremental" // the changes since the last pass
	KindManual      = "manual"      // asked by an admin: the changes, or everything before the first
)

// chunk is how many persons are written and recorded together.
const chunk = 100

// ErrBusy is returned by Run when another pass, on this instance or
// another, holds the tenant's sync lease.
var ErrBusy = errors.New("smsync: another pass is syncing this tenant")

// ZohoSource returns the Zoho side of a tenant's active CRM integration.
// It fails when the tenant has none, or it is not Zoho CRM.
type ZohoSource func(ctx context.Context, tenantID string) (zoho.People, error)

// Config wires an Engine.
type Config struct {
	Store store.Store
	Zoho  ZohoSource
	Box   *secret.Box
	// Transport carries SALESmanago requests; nil means the CRM SSRF guard
	// (crm.NewTransport(false)).
	Transport http.RoundTripper
	Now       func() time.Time
	Sleep     func(ctx context.Context, d time.Duration) error
	Log       *zap.Logger
	// Instance names this process in the sync lease.
	Instance string
	// Every is the least time between incremental passes (default 5 min).
	Every time.Duration
	// Overlap is read again of SALESmanago's change feed (clock skew;
	// default 5 min).
	Overlap time.Duration
	// Since is where a full read of SALESmanago starts (default 2008-01-01).
	Since time.Time
	// PollEvery is the wait between SALESmanago job-status polls.
	PollEvery time.Duration
	// LeaseTTL bounds a pass's lease (default 30 min).
	LeaseTTL time.Duration
}

// Engine runs passes. It is safe for concurrent use.
type Engine struct{ cfg Config }

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Minute
	}
	if cfg.Overlap <= 0 {
		cfg.Overlap = 5 * time.Minute
	}
	if cfg.Since.IsZero() {
		cfg.Since = time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Minute
	}
	if cfg.Instance == "" {
		cfg.Instance = "local"
	}
	return &Engine{cfg: cfg}
}

// Secrets are the sealed part of a connection.
type Secrets struct {
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
}

func aad(tenantID string) []byte { return []byte(tenantID + "\x00salesmanago") }

// Seal encrypts a tenant's SALESmanago secrets for the store.
func (e *Engine) Seal(tenantID string, s Secrets) []byte {
	b, _ := json.Marshal(s) // two strings always encode
	return e.cfg.Box.Seal(b, aad(tenantID))
}

// Client returns a SALESmanago client for a stored connection. Errors:
// secret.ErrOpen wrapped when the secrets do not open, EINVALID for a bad
// configuration.
func (e *Engine) Client(c store.SMConn) (*salesmanago.Client, error) {
	pt, err := e.cfg.Box.Open(c.Secrets, aad(c.TenantID))
	if err != nil {
		return nil, fmt.Errorf("open salesmanago secrets of %s: %w", c.TenantID, err)
	}
	var s Secrets
	if err := json.Unmarshal(pt, &s); err != nil {
		return nil, fmt.Errorf("decode salesmanago secrets of %s: %w", c.TenantID, err)
	}
	return salesmanago.New(salesmanago.Config{BaseURL: c.BaseURL, ClientID: c.ClientID, APIKey: s.APIKey,
		APISecret: s.APISecret, Owner: c.OwnerEmail},
		salesmanago.Options{Transport: e.cfg.Transport, Now: e.cfg.Now, Sleep: e.cfg.Sleep, PollEvery: e.cfg.PollEvery})
}

// Due returns the pass due at now for a connection in the tenant's zone
// loc, and the scheduled slot it covers: the full sync until it finished,
// then a scheduled pass at each of 00:00, 06:00, 12:00 and 18:00 local
// time not covered yet, else an incremental pass once Every has passed
// since the last pass; "" when nothing is due or the connection is not
// active.
func (e *Engine) Due(c store.SMConn, now time.Time, loc *time.Location) (kind string, slot time.Time) {
	if c.State != store.SMActive {
		return "", time.Time{}
	}
	if !c.FullDone {
		return KindFull, time.Time{}
	}
	slot = Slot(now, loc)
	if c.LastSlot.Before(slot) {
		return KindScheduled, slot
	}
	if c.RunAt.IsZero() || !now.Before(c.RunAt.Add(e.cfg.Every)) {
		return KindIncremental, time.Time{}
	}
	return "", time.Time{}
}

// Slot returns the latest of 00:00, 06:00, 12:00, 18:00 in loc at or
// before now, in UTC.
func Slot(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	h := l.Hour() / 6 * 6
	return time.Date(l.Year(), l.Month(), l.Day(), h, 0, 0, 0, loc).UTC()
}

// Result is what a pass did.
type Result struct {
	Kind      string
	Persons   int // persons looked at
	ToZoho    int
	ToSM      int
	Conflicts int
	Skipped   int
}

// person is one e-mail's records read this pass.
type person struct {
	sm *salesmanago.Contact
	zh *zoho.Person
}

// pass is one run's state.
type pass struct {
	e        *Engine
	tenantID string
	conn     store.SMConn
	sm       *salesmanago.Client
	zh       zoho.People
	smUsers  map[string]bool
	zhByMail map[string]string // e-mail → Zoho user id
	zhByID   map[string]string // Zoho user id → e-mail
	defOwner string            // the tenant's default Zoho owner id
	res      Result
	recorded int // conflicts already added to the store
}

// Run runs one pass of kind for a tenant (KindManual picks full or
// incremental), under the tenant's sync lease, and records its outcome.
// Errors: ENOTFOUND without a connection, ECONFLICT when it is not active,
// ErrBusy, and the pass's failure (SALESmanago's or Zoho's words), which
// is recorded as the last error too; SALESmanago refusing the credentials
// marks the connection broken.
func (e *Engine) Run(ctx context.Context, tenantID, kind string, slot time.Time) (Result, error) {
	c, err := e.cfg.Store.SMConn(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if c.State != store.SMActive {
		return Result{}, domain.Errorf(domain.ECONFLICT, "salesmanago connection of %s is %s; activate it first", tenantID, c.State)
	}
	// The lease is the pass's own, not the instance's: two passes of one
	// instance (its queue runs two at a time) exclude each other too, and
	// the release at the end frees only this pass's lease.
	holder := e.cfg.Instance + "/" + rand.Text()[:10]
	ok, err := e.cfg.Store.LeaseSM(ctx, tenantID, holder, e.cfg.LeaseTTL)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, ErrBusy
	}
	if kind == KindManual && !c.FullDone {
		kind = KindFull
	}
	passesTotal.Inc()
	res, err := e.run(ctx, c, kind)
	// Done, the pass lets the next one start at once (a Zoho change another
	// instance heard, an admin's sync) instead of after the lease's TTL:
	// its record and the end of its lease are one write, so whoever sees
	// the pass recorded finds the lease free. A pass whose record cannot be
	// written, or that dies with its process, leaves the lease to run out.
	p := store.SMProgress{Kind: kind, Release: holder}
	if err != nil {
		passErrors.Inc()
		p.Error = err.Error()
		e.cfg.Log.Warn("salesmanago sync failed", zap.String("tenant", tenantID), zap.String("kind", kind), zap.Error(err))
		if salesmanago.IsAuth(err) {
			_ = e.cfg.Store.SetSMState(ctx, tenantID, store.SMBroken, err.Error())
		}
	} else if kind == KindScheduled {
		p.Slot = slot
	}
	if serr := e.cfg.Store.SaveSMProgress(context.WithoutCancel(ctx), tenantID, p); serr != nil && err == nil {
		err = serr
	}
	return res, err
}

func (e *Engine) run(ctx context.Context, c store.SMConn, kind string) (Result, error) {
	p := &pass{e: e, tenantID: c.TenantID, conn: c, res: Result{Kind: kind}}
	t, err := e.cfg.Store.Tenant(ctx, c.TenantID)
	if err != nil {
		return p.res, err
	}
	p.defOwner = t.DefaultOwner
	if p.zh, err = e.cfg.Zoho(ctx, c.TenantID); err != nil {
		return p.res, err
	}
	if p.sm, err = e.Client(c); err != nil {
		return p.res, err
	}
	if err := p.users(ctx); err != nil {
		return p.res, err
	}
	start := e.cfg.Now().UTC()
	everything := kind == KindFull || kind == KindScheduled
	people := map[string]*person{}
	smFrom := c.SMCursor.Add(-e.cfg.Overlap)
	if everything || c.SMCursor.IsZero() {
		smFrom = e.cfg.Since
	}
	if err := p.readSM(ctx, smFrom, start, people); err != nil {
		return p.res, err
	}
	var zhSince time.Time
	if !everything && !c.ZohoCursor.IsZero() {
		zhSince = c.ZohoCursor.Add(-time.Second)
	}
	zhMark, err := p.readZoho(ctx, zhSince, people)
	if err != nil {
		return p.res, err
	}
	emails := make([]string, 0, len(people))
	for m := range people {
		emails = append(emails, m)
	}
	slices.Sort(emails)
	p.res.Persons = len(emails)
	for len(emails) > 0 {
		n := min(chunk, len(emails))
		if err := p.chunk(ctx, emails[:n], people); err != nil {
			return p.res, err
		}
		emails = emails[n:]
	}
	if zhMark.IsZero() {
		zhMark = c.ZohoCursor
	}
	prog := store.SMProgress{SMCursor: start, ZohoCursor: zhMark, FullDone: true, Skipped: p.res.Skipped}
	if err := e.cfg.Store.SaveSMProgress(ctx, c.TenantID, prog); err != nil {
		return p.res, err
	}
	e.cfg.Log.Info("salesmanago sync", zap.String("tenant", c.TenantID), zap.String("kind", kind),
		zap.Int("persons", p.res.Persons), zap.Int("to_zoho", p.res.ToZoho), zap.Int("to_salesmanago", p.res.ToSM),
		zap.Int("conflicts", p.res.Conflicts))
	return p.res, nil
}

func (p *pass) users(ctx context.Context) error {
	smUsers, err := p.sm.Users(ctx)
	if err != nil {
		return fmt.Errorf("salesmanago users: %w", err)
	}
	p.smUsers = map[string]bool{}
	for _, u := range smUsers {
		p.smUsers[strings.ToLower(u)] = true
	}
	zu, err := p.zh.Users(ctx)
	if err != nil {
		return fmt.Errorf("zoho users: %w", err)
	}
	p.zhByMail, p.zhByID = map[string]string{}, map[string]string{}
	for _, u := range zu {
		if u.Email != "" {
			m := strings.ToLower(u.Email)
			if _, dup := p.zhByMail[m]; !dup {
				p.zhByMail[m] = u.ID
			}
			p.zhByID[u.ID] = m
		}
	}
	return nil
}

// readSM reads the contacts SALESmanago changed in [from, to), in windows
// of at most 30 days and pages of 200, then by id, 100 a request.
func (p *pass) readSM(ctx context.Context, from, to time.Time, people map[string]*person) error {
	seen := map[string]bool{}
	var ids []string
	for w := from; w.Before(to); w = w.Add(salesmanago.MaxWindow) {
		end := w.Add(salesmanago.MaxWindow)
		if end.After(to) {
			end = to
		}
		for page := 1; ; page++ {
			refs, more, err := p.sm.Modified(ctx, w, end, page, salesmanago.MaxPage)
			if err != nil {
				return fmt.Errorf("salesmanago modified contacts: %w", err)
			}
			for _, r := range refs {
				if r.ID != "" && !seen[r.ID] {
					seen[r.ID] = true
					ids = append(ids, r.ID)
				}
			}
			if !more || len(refs) == 0 {
				break
			}
		}
	}
	for len(ids) > 0 {
		n := min(salesmanago.MaxByID, len(ids))
		cs, err := p.sm.ByID(ctx, ids[:n])
		if err != nil {
			return fmt.Errorf("salesmanago contacts by id: %w", err)
		}
		ids = ids[n:]
		for i := range cs {
			c := cs[i]
			m := strings.ToLower(strings.TrimSpace(c.Email))
			if !salesmanago.ValidEmail(m) {
				p.res.Skipped++
				continue
			}
			pp := people[m]
			if pp == nil {
				pp = &person{}
				people[m] = pp
			}
			pp.sm = &c
		}
	}
	return nil
}

// readZoho reads Zoho's leads and contacts modified after since (all when
// zero) and returns the latest Modified_Time read. A contact wins over a
// lead with the same e-mail (the lead was converted, or is a duplicate).
func (p *pass) readZoho(ctx context.Context, since time.Time, people map[string]*person) (time.Time, error) {
	var mark time.Time
	for _, module := range []string{zoho.ModuleLeads, zoho.ModuleContacts} {
		for page := ""; ; {
			got, next, err := p.zh.ListPeople(ctx, module, since, page)
			if err != nil {
				return mark, err
			}
			for i := range got {
				z := got[i]
				if z.Modified.After(mark) {
					mark = z.Modified
				}
				m := strings.ToLower(strings.TrimSpace(z.Email))
				if !salesmanago.ValidEmail(m) {
					p.res.Skipped++
					continue
				}
				pp := people[m]
				if pp == nil {
					pp = &person{}
					people[m] = pp
				}
				if pp.zh == nil || z.Module == zoho.ModuleContacts || pp.zh.Module == zoho.ModuleLeads {
					pp.zh = &z
				}
			}
			if next == "" {
				break
			}
			page = next
		}
	}
	return mark, nil
}

// plan is what a chunk does for one person.
type plan struct {
	email     string
	link      store.SMLink
	smNow     values
	zhNow     values
	smAfter   values
	zhAfter   values
	smRaw     *salesmanago.Contact // as read, when read
	writeSM   bool
	writeZoho bool
	convert   string // the lead to convert, "" for none
	module    string // the Zoho module written
	ownerID   string // the Zoho owner to set, "" to leave
	company   string // a contact's account to find or create
}

func (p *pass) sides(email string, pp *person, link *store.SMLink) (side, side) {
	var sm, zh side
	if link != nil {
		sm.seen, zh.seen = decodeValues(link.SMSeen), decodeValues(link.ZohoSeen)
		if link.SMID != "" && sm.seen != nil {
			sm.now, sm.present = sm.seen, true
		}
		if link.ZohoID != "" && zh.seen != nil {
			zh.now, zh.present = zh.seen, true
		}
	}
	if pp.sm != nil {
		sm.now, sm.present, sm.modified = fromSM(*pp.sm), true, pp.sm.Modified()
	}
	if pp.zh != nil {
		zh.now, zh.present, zh.modified = fromZoho(*pp.zh), true, pp.zh.Modified
	}
	return sm, zh
}

// textFields are the fields SALESmanago's upsert cannot clear.
var textFields = []string{fName, fPhone, fFax, fCompany, fState, fStreet, fCity, fZip, fCountry, fBirthday}

func (p *pass) plan(email string, pp *person, link *store.SMLink) plan {
	sm, zh := p.sides(email, pp, link)
	m, conflicts := merge(sm, zh)
	p.res.Conflicts += conflicts
	conflictsTotal.Add(conflicts)
	pl := plan{email: email, smNow: sm.now, zhNow: zh.now, smRaw: pp.sm}
	if link != nil {
		pl.link = *link
	}
	pl.link.Email = email
	if pp.sm != nil {
		pl.link.SMID = pp.sm.ID
	}
	if pp.zh != nil {
		pl.link.ZohoID, pl.link.ZohoModule = pp.zh.ID, pp.zh.Module
	}
	pick := func(k string, now values) string {
		if m[k] == keep {
			return now[k]
		}
		return m[k]
	}
	// SALESmanago after the write.
	sa := values{}
	for _, k := range fieldNames {
		sa[k] = pick(k, sm.now)
	}
	sa[fEmail] = email
	for _, k := range textFields {
		if sa[k] == "" && sm.now[k] != "" {
			sa[k] = sm.now[k]
		}
	}
	if !p.smUsers[sa[fOwner]] {
		sa[fOwner] = strings.ToLower(p.conn.OwnerEmail)
	}
	pl.smAfter = sa
	pl.writeSM = !sm.present || !sa.equal(sm.now)

	// Zoho after the write.
	za := values{}
	for _, k := range fieldNames {
		za[k] = pick(k, zh.now)
	}
	za[fEmail] = email
	pl.module = zoho.ModuleLeads
	switch {
	case zh.present && zh.now[fCustomer] == "true":
		pl.module, za[fCustomer] = zoho.ModuleContacts, "true" // Zoho cannot turn a contact back into a lead
	case za[fCustomer] == "true":
		pl.module = zoho.ModuleContacts
		if zh.present && pp.zh != nil && pp.zh.Module == zoho.ModuleLeads {
			pl.convert = pp.zh.ID
		} else if zh.present && link != nil && link.ZohoModule == zoho.ModuleLeads {
			pl.convert = link.ZohoID
		}
	}
	first, last := splitName(za[fName], email)
	za[fName] = strings.TrimSpace(first + " " + last)
	if pl.module == zoho.ModuleLeads {
		za[fBirthday] = ""
		if za[fCompany] == "" {
			za[fCompany] = za[fName] // Company is mandatory on leads
		}
	} else {
		if strings.HasPrefix(za[fBirthday], "--") {
			za[fBirthday] = zh.now[fBirthday]
		}
		if za[fCompany] == "" {
			za[fCompany] = zh.now[fCompany] // an account link is not cleared
		}
		if za[fCompany] != "" && (za[fCompany] != zh.now[fCompany] || pl.convert != "" || !zh.present) {
			pl.company = za[fCompany]
		}
	}
	switch id, ok := p.zhByMail[za[fOwner]]; {
	case ok:
		pl.ownerID = id
	case p.defOwner != "" && p.zhByID[p.defOwner] != "":
		pl.ownerID, za[fOwner] = p.defOwner, p.zhByID[p.defOwner]
	default:
		za[fOwner] = zh.now[fOwner] // left to Zoho
	}
	pl.zhAfter = za
	pl.writeZoho = !zh.present || pl.convert != "" || !za.equal(zh.now)
	return pl
}

func (p *pass) chunk(ctx context.Context, emails []string, people map[string]*person) error {
	st := p.e.cfg.Store
	links, err := st.SMLinks(ctx, p.tenantID, emails)
	if err != nil {
		return err
	}
	byMail := make(map[string]*store.SMLink, len(links))
	for i := range links {
		byMail[links[i].Email] = &links[i]
	}
	plans := make([]plan, 0, len(emails))
	for _, m := range emails {
		plans = append(plans, p.plan(m, people[m], byMail[m]))
	}
	toZoho, err := p.writeZoho(ctx, plans)
	if err != nil {
		return err
	}
	toSM, err := p.writeSM(ctx, plans)
	if err != nil {
		return err
	}
	out := make([]store.SMLink, 0, len(plans))
	for _, pl := range plans {
		l := pl.link
		l.SMSeen, l.ZohoSeen = pl.smAfter.encode(), pl.zhAfter.encode()
		out = append(out, l)
	}
	if err := st.PutSMLinks(ctx, p.tenantID, out); err != nil {
		return err
	}
	p.res.ToZoho += toZoho
	p.res.ToSM += toSM
	writtenZoho.Add(toZoho)
	writtenSM.Add(toSM)
	return st.SaveSMProgress(ctx, p.tenantID, store.SMProgress{ToZoho: toZoho, ToSM: toSM, Conflicts: p.chunkConflicts(plans)})
}

// chunkConflicts returns the conflicts found since the last chunk was
// recorded: they reach the store with the chunk that resolved them.
func (p *pass) chunkConflicts([]plan) int {
	n := p.res.Conflicts - p.recorded
	p.recorded = p.res.Conflicts
	return n
}

func (p *pass) writeZoho(ctx context.Context, plans []plan) (int, error) {
	// Conversions first: the converted contact is then updated by e-mail.
	for i := range plans {
		pl := &plans[i]
		if !pl.writeZoho || pl.convert == "" {
			continue
		}
		id, err := p.zh.ConvertLead(ctx, pl.convert)
		if err != nil {
			return 0, err
		}
		pl.link.ZohoID, pl.link.ZohoModule = id, zoho.ModuleContacts
	}
	var names []string
	for _, pl := range plans {
		if pl.writeZoho && pl.company != "" && !slices.Contains(names, pl.company) {
			names = append(names, pl.company)
		}
	}
	accounts := map[string]string{}
	if len(names) > 0 {
		var err error
		if accounts, err = p.zh.UpsertAccounts(ctx, names); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, module := range []string{zoho.ModuleLeads, zoho.ModuleContacts} {
		var idx []int
		var batch []zoho.Person
		for i, pl := range plans {
			if !pl.writeZoho || pl.module != module {
				continue
			}
			a := pl.zhAfter
			first, last := splitName(a[fName], pl.email)
			zp := zoho.Person{Module: module, FirstName: first, LastName: last, Email: pl.email, Phone: a[fPhone],
				Fax: a[fFax], Company: a[fCompany], Street: a[fStreet], City: a[fCity], State: a[fState], Zip: a[fZip],
				Country: a[fCountry], OptOut: a[fOptOut] == "true", OwnerID: pl.ownerID}
			if module == zoho.ModuleContacts {
				zp.Birthday, zp.AccountID = a[fBirthday], accounts[pl.company]
			}
			idx = append(idx, i)
			batch = append(batch, zp)
		}
		if len(batch) == 0 {
			continue
		}
		ids, err := p.zh.UpsertPeople(ctx, module, batch)
		if err != nil {
			return 0, err
		}
		for j, i := range idx {
			plans[i].link.ZohoID, plans[i].link.ZohoModule = ids[j], module
		}
		n += len(batch)
	}
	return n, nil
}

func (p *pass) writeSM(ctx context.Context, plans []plan) (int, error) {
	byOwner := map[string][]int{}
	var owners []string
	for i, pl := range plans {
		if !pl.writeSM {
			continue
		}
		o := pl.smAfter[fOwner]
		if _, ok := byOwner[o]; !ok {
			owners = append(owners, o)
		}
		byOwner[o] = append(byOwner[o], i)
	}
	n := 0
	var created []string
	for _, o := range owners {
		var batch []salesmanago.Upsert
		for _, i := range byOwner[o] {
			pl := plans[i]
			a := pl.smAfter
			state := salesmanago.StateProspect
			switch {
			case a[fCustomer] == "true":
				state = salesmanago.StateCustomer
			case pl.smRaw != nil && pl.smRaw.State != "" && pl.smRaw.State != salesmanago.StateCustomer:
				state = pl.smRaw.State // PARTNER, OTHER… are not prospects to move
			}
			batch = append(batch, salesmanago.Upsert{OptOut: a[fOptOut] == "true", Contact: salesmanago.Contact{
				Email: pl.email, Name: a[fName], Phone: a[fPhone], Fax: a[fFax], Company: a[fCompany], State: state,
				Province: a[fState], Birthday: toSMBirthday(a[fBirthday]),
				Address: salesmanago.Address{Street: a[fStreet], ZipCode: a[fZip], City: a[fCity], Country: a[fCountry]}}})
			if pl.link.SMID == "" {
				created = append(created, pl.email)
			}
		}
		if err := p.sm.BatchUpsert(ctx, o, batch); err != nil {
			return 0, err
		}
		n += len(batch)
	}
	if len(created) > 0 {
		cs, err := p.sm.ByEmail(ctx, created)
		if err != nil {
			return 0, fmt.Errorf("salesmanago: read back created contacts: %w", err)
		}
		ids := map[string]string{}
		for _, c := range cs {
			ids[strings.ToLower(c.Email)] = c.ID
		}
		for i := range plans {
			if plans[i].link.SMID == "" {
				plans[i].link.SMID = ids[plans[i].email]
			}
		}
	}
	for i := range plans {
		if plans[i].smRaw != nil && plans[i].link.SMID == "" {
			plans[i].link.SMID = plans[i].smRaw.ID
		}
	}
	return n, nil
}

// IsAuth reports whether err is SALESmanago's or Zoho's refusal of the
// credentials.
func IsAuth(err error) bool { return salesmanago.IsAuth(err) || crm.IsAuth(err) }
