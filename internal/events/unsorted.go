package events

import (
	"context"
	"fmt"
	"slices"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// unsorted reports whether this event's request is filed as an incoming
// request for the managers to accept (the tenant's amo_unsorted, on an
// adapter that files them: amoCRM) instead of the entities the matrix
// makes: only for a client the CRM knows neither an open lead nor a
// contact of. A known client keeps getting call records and updates on
// the entities it has, so a request is never a second card for it.
func (r *run) unsorted(known client) (crm.UnsortedWriter, bool) {
	if !r.t.Settings.AmoUnsorted || known.lead.ID != "" || known.contact.ID != "" {
		return nil, false
	}
	uw, ok := r.w.(crm.UnsortedWriter)
	return uw, ok
}

// unsortedCall files an incoming call of a new client as an unsorted sip
// request: the call (amoCRM adds it to the request), a lead titled as the
// call's lead would be with the call mapping's deal fields and the UTM,
// and a contact with the phone and the call mapping's contact fields. It
// is neither indexed nor followed by a task: amoCRM keeps a request's
// lead and contact out of its searches until a manager accepts it, and
// accepting is the managers' follow-up.
func (r *run) unsortedCall(ctx context.Context, uw crm.UnsortedWriter) (string, error) {
	title, tags, dealFields := standard(r.t.Settings.CallMapping.Resolve(domain.MapDeal, r.ev.Fields))
	title = cmpOr(title, fmt.Sprintf(textsFor(r.t.Settings.Language).leadTitle, r.num))
	name, contactTags, contactFields := standard(r.t.Settings.CallMapping.Resolve(domain.MapContact, r.ev.Fields))
	id, err := r.once(ctx, crm.WriteUnsorted, crm.Ref{}, func(key string) (string, error) {
		u, err := uw.CreateUnsorted(ctx, crm.NewUnsorted{Key: key, Category: crm.UnsortedSIP, Phone: r.num,
			Name: cmpOr(name, "+"+r.num), Title: title, Pipeline: r.t.Settings.Pipeline(r.ev.Fields), At: r.c.Start,
			UTM: r.c.UTM, Fields: dealFields, ContactFields: contactFields, Tags: union(tags, contactTags),
			Line: r.c.Line, Duration: r.c.Talk, Recording: r.c.Recording})
		return u.UID, err
	})
	if err != nil {
		return "", err
	}
	counter("callrouter_events_unsorted_total", r.t.ID).Inc()
	r.did = append(r.did, "unsorted sip request "+id)
	return r.note(), nil
}

// unsortedForm files a website form of a new client as an unsorted forms
// request: a lead titled as the form's deal would be, with the form
// mapping's deal fields, the UTM and the automation tag, and a contact
// with the phone, e-mail, name and the form mapping's contact fields.
func (r *run) unsortedForm(ctx context.Context, uw crm.UnsortedWriter, f Form, title string) (string, error) {
	mappedTitle, tags, dealFields := standard(r.t.Settings.FormMapping.Resolve(domain.MapDeal, r.ev.Fields))
	name, contactTags, contactFields := standard(r.t.Settings.FormMapping.Resolve(domain.MapContact, r.ev.Fields))
	fields := r.ev.Fields
	id, err := r.once(ctx, crm.WriteUnsorted, crm.Ref{}, func(key string) (string, error) {
		u, err := uw.CreateUnsorted(ctx, crm.NewUnsorted{Key: key, Category: crm.UnsortedForms, Phone: f.Number,
			Email: f.Email, Name: cmpOr(name, cmpOr(f.Name, cmpOr("+"+f.Number, f.Email))), Title: cmpOr(mappedTitle, title),
			At: r.ev.ReceivedAt, UTM: formUTM(fields, f), Fields: dealFields, ContactFields: contactFields,
			Tags: withTag(union(tags, contactTags)), FormID: first(fields, []string{"form_id", "formid"}),
			FormName: first(fields, []string{"form_name", "form", "formname"}),
			FormPage: first(fields, []string{"landing", "page", "page_url", "url"}),
			IP:       first(fields, []string{"ip", "client_ip"}), Referer: first(fields, []string{"referrer", "referer"})})
		return u.UID, err
	})
	if err != nil {
		return "", err
	}
	counter("callrouter_events_unsorted_total", r.t.ID).Inc()
	r.did = append(r.did, "unsorted forms request "+id)
	return r.note(), nil
}

// formUTM is a form's marketing attribution.
func formUTM(fields map[string]string, f Form) crm.UTM {
	return crm.UTM{Source: fields["utm_source"], Medium: fields["utm_medium"], Campaign: fields["utm_campaign"],
		Term: fields["utm_term"], Content: fields["utm_content"], ClientID: f.ClientID}
}

// union returns the sorted tags of a and b, once each.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
