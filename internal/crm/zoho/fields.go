package zoho

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/callrouter/callrouter/internal/crm"
)

// layout is a module's fields as the connected account has them: read
// once per connection from GET /crm/v8/settings/fields?module=…, because
// Zoho refuses a read whose fields= names a field the account lacks and a
// write that carries one (INVALID_DATA), and custom phone fields exist
// only where an account made them.
type layout struct {
	types map[string]string // api_name → data_type
	// guessed is set when the account did not let callrouter read its
	// field metadata (the token lacks the ZohoCRM.settings.fields.READ
	// scope): the standard layout is assumed, without custom fields.
	guessed bool
}

// has reports whether the layout has the field. System fields ("$…")
// are not in the metadata and are always there.
func (l layout) has(name string) bool {
	if strings.HasPrefix(name, "$") {
		return true
	}
	if l.guessed {
		for _, m := range modules {
			if slices.Contains(m.fields, name) {
				return true
			}
		}
		return false
	}
	_, ok := l.types[name]
	return ok
}

// isPhone reports whether the field is one of the layout's phone fields.
func (l layout) isPhone(name string) bool {
	if l.guessed {
		return slices.Contains(standardPhones[:], name)
	}
	return l.types[name] == "phone"
}

// fieldsAnswer is the answer of GET /settings/fields.
type fieldsAnswer struct {
	Fields []struct {
		APIName  string `json:"api_name"`
		DataType string `json:"data_type"`
	} `json:"fields"`
}

// layoutSlot holds one module's layout once read; its mutex makes
// concurrent first uses read it once, while other modules' reads proceed.
type layoutSlot struct {
	mu   sync.Mutex
	l    layout
	read bool
}

// layoutOf returns module's layout, reading it on first use after the
// connection was made. A token without the scope to read field metadata
// (401 OAUTH_SCOPE_MISMATCH, 403 NO_PERMISSION) gets the standard layout
// (guessed) rather than a broken integration; other errors are returned
// and the next use reads again.
func (s *source) layoutOf(ctx context.Context, module string) (layout, error) {
	s.metaMu.Lock()
	if s.layouts == nil {
		s.layouts = map[string]*layoutSlot{}
	}
	slot := s.layouts[module]
	if slot == nil {
		slot = &layoutSlot{}
		s.layouts[module] = slot
	}
	s.metaMu.Unlock()
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.read {
		return slot.l, nil
	}
	resp, err := s.http.Do(ctx, crm.Request{Method: http.MethodGet, Path: apiPrefix + "/settings/fields",
		Query: url.Values{"module": {module}}})
	var l layout
	switch {
	case err != nil && metadataRefused(err):
		l = layout{guessed: true}
	case err != nil:
		return layout{}, fmt.Errorf("zoho: read the fields of %s: %w", module, err)
	default:
		var ans fieldsAnswer
		if resp.Status == http.StatusNoContent || json.Unmarshal(resp.Body, &ans) != nil || len(ans.Fields) == 0 {
			return layout{}, fmt.Errorf("zoho: read the fields of %s: bad answer (HTTP %d): %s", module, resp.Status, crm.Snippet(resp.Body))
		}
		l.types = make(map[string]string, len(ans.Fields))
		for _, f := range ans.Fields {
			if f.APIName != "" {
				l.types[f.APIName] = f.DataType
			}
		}
	}
	slot.l, slot.read = l, true
	return l, nil
}

// views returns every synced module's view, reading the layouts not read
// yet at once (a live lookup on a fresh connection must not wait for four
// reads in a row).
func (s *source) views(ctx context.Context) ([]view, error) {
	out := make([]view, len(modules))
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range modules {
		g.Go(func() error {
			v, err := s.view(gctx, m)
			out[i] = v
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// metadataRefused reports whether err is Zoho refusing the token the
// field metadata, as opposed to refusing the token.
func metadataRefused(err error) bool {
	var ae *crm.AuthError
	if errors.As(err, &ae) {
		return strings.Contains(ae.Message, "OAUTH_SCOPE_MISMATCH")
	}
	var se *crm.StatusError
	return errors.As(err, &se) && se.Status == http.StatusForbidden
}

// view returns module m as the account has it: the wanted fields its
// layout has, plus every phone field of the layout (custom ones too).
func (s *source) view(ctx context.Context, m module) (view, error) {
	l, err := s.layoutOf(ctx, m.name)
	if err != nil {
		return view{}, err
	}
	v := view{module: m}
	for _, f := range m.fields {
		if l.has(f) {
			v.fields = append(v.fields, f)
			if l.isPhone(f) {
				v.phones = append(v.phones, f)
			}
		}
	}
	if !l.guessed {
		custom := make([]string, 0, 4)
		for name, typ := range l.types {
			if typ == "phone" && !slices.Contains(v.fields, name) {
				custom = append(custom, name)
			}
		}
		slices.Sort(custom) // map order is random; page tokens bind the fields
		v.fields = append(v.fields, custom...)
		v.phones = append(v.phones, custom...)
	}
	return v, nil
}

// MissingFields returns the custom fields of seed 000 (rs_utm_source,
// rs_utm_medium, rs_utm_campaign, rs_utm_term, rs_utm_content,
// rs_google_client_id) that the account's Leads lack, by name; leads are
// written without them. Errors: the token may not read field
// metadata (add the ZohoCRM.settings.fields.READ scope), *crm.AuthError,
// other CRM and transport errors wrapped.
func (s *source) MissingFields(ctx context.Context) ([]string, error) {
	l, err := s.layoutOf(ctx, "Leads")
	if err != nil {
		return nil, err
	}
	if l.guessed {
		return nil, errors.New("zoho: the token may not read field metadata (scope ZohoCRM.settings.fields.READ); the UTM fields are not written")
	}
	var out []string
	for _, f := range utmFields {
		if !l.has(f) {
			out = append(out, f)
		}
	}
	return out, nil
}

var _ crm.FieldLister = (*source)(nil)

// MappableFields lists the API names of the Leads layout (the entity a
// "deal" mapping writes: callrouter's leads are Zoho Leads) or of the
// Contacts layout, from GET /settings/fields. ok is false when the token
// may not read field metadata. Errors: the CRM's.
func (s *source) MappableFields(ctx context.Context, entity string) ([]string, bool, error) {
	module := "Leads"
	if entity == "contact" {
		module = "Contacts"
	}
	l, err := s.layoutOf(ctx, module)
	if err != nil {
		return nil, false, err
	}
	if l.guessed {
		return nil, false, nil
	}
	return slices.Sorted(maps.Keys(l.types)), true, nil
}
