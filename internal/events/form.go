package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// FormTag is the tag the fixed default mapping puts on what a form
// creates (seed 003's "Ringostat Automation").
const FormTag = "Ringostat Automation"

// formNameKeys are the form fields a client's name is read from, first
// non-empty wins (seed 003's example maps name from "name,first-name").
var formNameKeys = []string{"name", "first-name", "first_name", "fio", "full_name"}

// FormKey is the id of a form that carries no call id: a hash of its
// fields and the minute it arrived, so a double post (the browser's, or
// the PBX's) makes one event and one set of CRM entities, while the same
// form sent again later is a new request.
func FormKey(fields map[string]string, at time.Time) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(fields[k]))
		h.Write([]byte{0})
	}
	h.Write([]byte(at.UTC().Truncate(time.Minute).Format(time.RFC3339)))
	return "form:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Form is a website form read for processing.
type Form struct {
	// Number is the client's phone in E.164 digits, "" when the form has
	// none that normalizes.
	Number   string
	Email    string
	ClientID string
	Name     string
}

// ReadForm reads a form's client by the tenant's field names: the first
// non-empty phone field (special characters stripped, normalized like
// callers), the first non-empty e-mail field, Ringostat's client_id.
func ReadForm(fields map[string]string, s domain.Settings) Form {
	var f Form
	phones := s.FormPhoneFields
	if len(phones) == 0 {
		phones = domain.DefaultFormPhoneFields()
	}
	if raw := first(fields, phones); raw != "" {
		f.Number, _ = normalized(raw, s.DefaultCountry)
	}
	emails := s.FormEmailFields
	if len(emails) == 0 {
		emails = domain.DefaultFormEmailFields()
	}
	if e := first(fields, emails); strings.Contains(e, "@") && len(e) <= 254 {
		f.Email = strings.ToLower(e)
	}
	f.ClientID = strings.TrimSpace(fields["client_id"])
	f.Name = first(fields, formNameKeys)
	return f
}

// FormPartition orders a form with the client's other events: by phone
// like calls, else by e-mail or client id, else alone.
func FormPartition(uniqueID string, fields map[string]string, s domain.Settings) string {
	f := ReadForm(fields, s)
	switch {
	case f.Number != "":
		return f.Number
	case f.Email != "":
		return "email:" + f.Email
	case f.ClientID != "":
		return "client:" + f.ClientID
	}
	return "form:" + uniqueID
}

// form applies a website form: finds the client by phone (index, then
// CRM) or e-mail (CRM), writes the mapped fields onto what it found
// (updateFound), and creates what the matrix's form row asks for that the
// client lacks, contact → deal → task; the deal in the CRM's default
// pipeline, the task for the default owner. With amo_unsorted a client
// the CRM does not know becomes an unsorted forms request instead.
//
// A linked entity deleted in the CRM since the index read it is handled
// as for calls (see matrix): when the CRM refuses a write for good and
// one of the found entities is gone, the form is applied again without it.
func (p *Processor) form(ctx context.Context, r *run) (string, error) {
	note, err := r.formScenario(ctx)
	if err == nil || !crm.IsPermanent(err) || len(r.linked) == 0 {
		return note, err
	}
	gone, gerr := r.p.crm.Gone(ctx, r.t.ID, r.linked)
	if gerr != nil {
		return "", fmt.Errorf("check the found entities after the CRM refused a write (%v): %w", err, gerr)
	}
	if len(gone) == 0 {
		return note, err
	}
	reresolved.Inc()
	for _, g := range gone {
		r.did = append(r.did, fmt.Sprintf("%s %s deleted in the CRM", g.Kind, g.ID))
	}
	return r.formScenario(ctx)
}

// clientByMarketingID finds the client of a form that carries only
// Ringostat's client_id (the visitor's Google Analytics id): none of the
// four CRMs can be searched by it, but the tenant's earlier calls and forms
// carry it next to the client's number or e-mail, kept as their partition.
// The newest such event wins, a number over an e-mail. Both are "" when no
// kept event names it (events expire with the retention period).
func (p *Processor) clientByMarketingID(ctx context.Context, tenantID, clientID string) (number, email string, err error) {
	evs, err := p.store.ListEvents(ctx, tenantID, store.EventFilter{MarketingID: clientID, Limit: 1000})
	if err != nil {
		return "", "", fmt.Errorf("events by client_id: %w", err)
	}
	var numberAt, emailAt time.Time
	for _, ev := range evs {
		if strings.TrimSpace(ev.Fields["client_id"]) != clientID {
			continue // the store's filter is a prefilter
		}
		switch part := ev.Partition; {
		case strings.HasPrefix(part, "email:"):
			if ev.ReceivedAt.After(emailAt) {
				email, emailAt = part[len("email:"):], ev.ReceivedAt
			}
		case part != "" && !strings.Contains(part, ":"):
			if ev.ReceivedAt.After(numberAt) {
				number, numberAt = part, ev.ReceivedAt
			}
		}
	}
	if number != "" {
		email = ""
	}
	return number, email, nil
}

// formScenario is one pass of form.
func (r *run) formScenario(ctx context.Context) (string, error) {
	f := ReadForm(r.ev.Fields, r.t.Settings)
	if f.Number == "" && f.Email == "" && f.ClientID != "" {
		var err error
		if f.Number, f.Email, err = r.p.clientByMarketingID(ctx, r.t.ID, f.ClientID); err != nil {
			return "", err
		}
		if f.Number != "" || f.Email != "" {
			r.did = append(r.did, "client by client_id from an earlier call or form")
		}
	}
	if f.Number == "" && f.Email == "" {
		return "no client phone or e-mail", nil
	}
	if f.Number != "" && r.t.Stopped(f.Number) {
		counter("callrouter_events_stop_list_total", r.t.ID).Inc()
		return "stop list", nil
	}
	want := r.t.Settings.Matrix.Row(domain.RowForm)
	if want.Nothing() {
		counter("callrouter_events_matrix_nothing_total", r.t.ID).Inc()
		return "matrix row form creates nothing", nil
	}
	r.num = f.Number
	var known client
	if f.Number != "" {
		var err error
		if known, err = r.find(ctx); err != nil {
			return "", err
		}
	} else if ef, ok := r.w.(crm.EmailFinder); ok {
		ref, err := ef.FindContactByEmail(ctx, f.Email)
		if err != nil {
			return "", fmt.Errorf("CRM search by e-mail: %w", err)
		}
		known.contact = ref
		r.linked = r.linked[:0]
		if ref.ID != "" {
			r.linked = append(r.linked, ref)
		}
	}
	if known.contact.ID != "" || known.lead.ID != "" {
		counter("callrouter_events_form_known_total", r.t.ID).Inc()
		r.did = append(r.did, "client found")
		if err := r.updateFound(ctx, known, want, f); err != nil {
			return "", err
		}
	}
	owner := r.t.DefaultOwner
	if known.leadOwner != "" {
		owner = known.leadOwner
	}
	tx := textsFor(r.t.Settings.Language)
	who := f.Name
	if who == "" {
		who = cmpOr("+"+f.Number, f.Email)
	}
	if uw, ok := r.unsorted(known); ok {
		return r.unsortedForm(ctx, uw, f, fmt.Sprintf(tx.formTitle, who))
	}
	cl := known
	if want.Contact && cl.contact.ID == "" {
		ref, err := r.formContact(ctx, f, owner)
		if err != nil {
			return "", err
		}
		cl.contact = ref
	}
	if want.Lead && cl.lead.ID == "" {
		if f.Number == "" {
			r.did = append(r.did, "deal not created: the form has no phone")
		} else {
			var err error
			if cl, err = r.formLead(ctx, cl, f, owner, fmt.Sprintf(tx.formTitle, who)); err != nil {
				return "", err
			}
		}
	}
	if want.Task {
		parent := cl.lead
		if parent.ID == "" {
			parent = cl.contact
		}
		if parent.ID == "" {
			r.did = append(r.did, "task not created: no lead or contact")
		} else {
			minutes := max(r.t.Settings.CallbackDueMinutes, 1)
			sent := r.ev.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC")
			id, err := r.once(ctx, crm.WriteTask, parent, func(key string) (string, error) {
				return r.w.CreateTask(ctx, crm.NewTask{Key: key, UserID: r.t.DefaultOwner, Phone: f.Number, Lead: cl.lead,
					Contact: cl.contact, Text: fmt.Sprintf(tx.formTask, cmpOr(who, f.Email), sent),
					Due: r.p.now().Add(time.Duration(minutes) * time.Minute)})
			})
			if err != nil {
				return "", err
			}
			r.did = append(r.did, "task "+id)
		}
	}
	return r.note(), nil
}

// updateFound writes the form onto the client the CRM already has (seed
// 003: found → update): the contact mapping's fields onto the found
// contact, and, when the form row makes deals, the deal mapping's fields
// onto the client's open lead or deal, with the form's UTM by the UTM rule
// (written only when all of the deal's UTM fields are empty). Only the
// mapped CRM fields a form fills are sent: fields the form leaves empty or
// the mapping does not name keep their values, and the client's name,
// tags, phones and e-mails stay as the managers keep them. Writing the
// same values again is harmless, so a retried event simply repeats it.
func (r *run) updateFound(ctx context.Context, known client, want domain.Creates, f Form) error {
	fu, ok := r.w.(crm.FieldUpdater)
	if !ok {
		return nil
	}
	update := func(ref crm.Ref, entity string) error {
		_, _, fields := standard(r.t.Settings.FormMapping.Resolve(entity, r.ev.Fields))
		if len(fields) == 0 {
			return nil
		}
		if err := r.lease.renew(ctx); err != nil {
			return err
		}
		if err := fu.UpdateFields(ctx, ref, fields); err != nil {
			return fmt.Errorf("update the found %s %s: %w", ref.Kind, ref.ID, err)
		}
		r.did = append(r.did, fmt.Sprintf("%s %s updated", ref.Kind, ref.ID))
		return nil
	}
	if known.contact.ID != "" {
		if err := update(known.contact, domain.MapContact); err != nil {
			return err
		}
	}
	if !want.Lead || known.lead.ID == "" {
		return nil
	}
	if err := update(known.lead, domain.MapDeal); err != nil {
		return err
	}
	if utm := formUTM(r.ev.Fields, f); !utm.Empty() {
		wrote, err := r.w.FillUTM(ctx, known.lead, utm)
		if err != nil {
			return fmt.Errorf("fill UTM of the found %s %s: %w", known.lead.Kind, known.lead.ID, err)
		}
		if wrote {
			r.did = append(r.did, "UTM written")
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" && a != "+" {
		return a
	}
	return b
}

// formContact creates the form's contact with the mapped fields and the
// automation tag, and indexes it by its phone.
func (r *run) formContact(ctx context.Context, f Form, owner string) (crm.Ref, error) {
	cw, ok := r.w.(crm.ContactWriter)
	if !ok {
		r.did = append(r.did, "contact not created: this CRM adapter cannot create one alone")
		return crm.Ref{}, nil
	}
	mappedName, tags, fields := standard(r.t.Settings.FormMapping.Resolve(domain.MapContact, r.ev.Fields))
	name := cmpOr(mappedName, cmpOr(f.Name, cmpOr("+"+f.Number, f.Email)))
	id, err := r.once(ctx, crm.WriteContact, crm.Ref{}, func(key string) (string, error) {
		ref, err := cw.CreateContact(ctx, crm.NewContact{Key: key, Phone: f.Number, Email: f.Email, Name: name, OwnerID: owner,
			Fields: fields, Tags: withTag(tags)})
		return ref.ID, err
	})
	if err != nil {
		return crm.Ref{}, err
	}
	if f.Number != "" {
		if err := r.p.crm.Index(ctx, r.t.ID, []crm.Entity{{Kind: domain.KindContact, ID: id, Name: name,
			Phones: []string{f.Number}, OwnerID: owner, Open: true, UpdatedAt: r.p.now()}}); err != nil {
			return crm.Ref{}, fmt.Errorf("index the new contact: %w", err)
		}
	}
	r.did = append(r.did, "contact "+id+" created")
	return crm.Ref{Kind: domain.KindContact, ID: id}, nil
}

// formLead creates the form's deal in the CRM's default pipeline, linked
// to the contact, with the UTM, the mapped fields and the tag.
func (r *run) formLead(ctx context.Context, cl client, f Form, owner, title string) (client, error) {
	var made crm.Created
	utm := crm.UTM{Source: r.ev.Fields["utm_source"], Medium: r.ev.Fields["utm_medium"], Campaign: r.ev.Fields["utm_campaign"],
		Term: r.ev.Fields["utm_term"], Content: r.ev.Fields["utm_content"], ClientID: f.ClientID}
	mappedTitle, tags, fields := standard(r.t.Settings.FormMapping.Resolve(domain.MapDeal, r.ev.Fields))
	title = cmpOr(mappedTitle, title)
	_, _, contactFields := standard(r.t.Settings.FormMapping.Resolve(domain.MapContact, r.ev.Fields))
	stored, err := r.once(ctx, crm.WriteLead, crm.Ref{}, func(key string) (string, error) {
		var err error
		made, err = r.w.CreateLead(ctx, crm.NewLead{Key: key, Phone: f.Number, Title: title, OwnerID: owner,
			ContactID: cl.contact.ID, UTM: utm, Tags: withTag(tags), Fields: fields, ContactFields: contactFields})
		if err != nil {
			return "", err
		}
		return encodeCreated(made), nil
	})
	if err != nil {
		return client{}, err
	}
	made = decodeCreated(stored)
	ents := []crm.Entity{{Kind: made.Lead.Kind, ID: made.Lead.ID, Name: title, Phones: []string{f.Number},
		OwnerID: owner, Open: true, UpdatedAt: r.p.now()}}
	if made.Contact.ID != "" && made.Contact.ID != cl.contact.ID {
		ents = append(ents, crm.Entity{Kind: domain.KindContact, ID: made.Contact.ID, Name: title,
			Phones: []string{f.Number}, OwnerID: owner, Open: true, UpdatedAt: r.p.now()})
	}
	if err := r.p.crm.Index(ctx, r.t.ID, ents); err != nil {
		return client{}, fmt.Errorf("index the new deal: %w", err)
	}
	r.did = append(r.did, fmt.Sprintf("%s %s created", made.Lead.Kind, made.Lead.ID))
	if made.Contact.ID == "" {
		made.Contact = cl.contact
	}
	return client{lead: made.Lead, leadOwner: owner, contact: made.Contact}, nil
}

// standard takes the fields every CRM has under one name out of a
// resolved mapping: "name" (or "title") names the entity, "tag"/"tags"
// adds comma-separated tags, "phone" and "email" are the client's own
// (read through form_phone_fields and form_email_fields). The rest are
// the CRM's fields by its own address.
func standard(m map[string]string) (name string, tags []string, rest map[string]string) {
	for k, v := range m {
		switch strings.ToLower(k) {
		case "name", "title":
			name = v
		case "tag", "tags":
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					tags = append(tags, t)
				}
			}
		case "phone", "email":
		default:
			if rest == nil {
				rest = map[string]string{}
			}
			rest[k] = v
		}
	}
	slices.Sort(tags)
	return name, tags, rest
}

// withTag returns tags with the automation tag first, once.
func withTag(tags []string) []string {
	out := []string{FormTag}
	for _, t := range tags {
		if t != FormTag {
			out = append(out, t)
		}
	}
	return out
}
