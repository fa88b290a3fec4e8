package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/phone"
)

// Import formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// Limits of one import.
const (
	importBatch     = 1000    // rows per store transaction
	maxReportErrors = 1000    // row errors listed in a report; the rest are only counted
	maxLineBytes    = 1 << 20 // a longer JSON line is reported as an error
)

// RowError is one rejected import row.
type RowError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportReport says what an import kept and what it rejected.
type ImportReport struct {
	Format          string     `json:"format"`
	Rows            int        `json:"rows"`     // data rows read
	Accepted        int        `json:"accepted"` // rows stored in the phone index
	Rejected        int        `json:"rejected"`
	Errors          []RowError `json:"errors"`
	ErrorsTruncated bool       `json:"errors_truncated,omitempty"`
}

// importRow is one row of either format before validation.
type importRow struct {
	line                                   int
	phone, owner, kind, entity, name, open string
}

// DetectFormat picks the import format from an explicit format parameter, the
// Content-Type, or the body's first byte. EINVALID for an unknown format.
func DetectFormat(param, contentType string, body []byte) (string, error) {
	switch strings.ToLower(param) {
	case FormatCSV:
		return FormatCSV, nil
	case FormatJSONL, "ndjson", "json":
		return FormatJSONL, nil
	case "":
	default:
		return "", domain.Errorf(domain.EINVALID, "format: must be csv or jsonl, got %q", param)
	}
	ct := strings.ToLower(contentType)
	switch {
	case strings.Contains(ct, "csv"):
		return FormatCSV, nil
	case strings.Contains(ct, "json"):
		return FormatJSONL, nil
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
		return FormatJSONL, nil
	}
	return FormatCSV, nil
}

// Import reads contacts (fields phone, owner_crm_user_id, entity_kind,
// entity_id, name, open) as JSON lines or CSV with a header row, stores
// every valid row in the phone index and reports each bad row with its line
// number and reason. EINVALID when the body as a whole is unusable (empty,
// CSV header without phone or owner_crm_user_id), ENOTFOUND for an unknown
// tenant. A store failure returns the report of what was stored before it.
func (s *Service) Import(ctx context.Context, actor, id, format string, body []byte) (ImportReport, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return ImportReport{}, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return ImportReport{}, domain.Errorf(domain.EINVALID, "body: empty; send JSON lines or CSV with a header row")
	}
	rep := ImportReport{Format: format, Errors: []RowError{}}
	var rows []importRow
	switch format {
	case FormatCSV:
		rows, err = readCSV(body, &rep)
	case FormatJSONL:
		rows, err = readJSONL(body, &rep)
	default:
		err = domain.Errorf(domain.EINVALID, "format: must be csv or jsonl, got %q", format)
	}
	if err != nil {
		return ImportReport{}, err
	}

	now := s.now().UTC()
	// Later rows for the same entity phone win, as if imported one by one; a
	// batch must not carry one key twice.
	seen := make(map[[3]string]int, len(rows))
	entries := make([]domain.IndexEntry, 0, len(rows))
	valid := 0
	for _, r := range rows {
		e, err := r.entry(id, t.Settings.DefaultCountry)
		if err != nil {
			rep.reject(r.line, domain.ErrorMessage(err))
			continue
		}
		valid++
		e.UpdatedAt = now
		k := [3]string{string(e.Kind), e.EntityID, e.Phone}
		if i, ok := seen[k]; ok {
			entries[i] = e
			continue
		}
		seen[k] = len(entries)
		entries = append(entries, e)
	}
	rep.Accepted = valid
	stored := 0
	for stored < len(entries) {
		end := min(stored+importBatch, len(entries))
		batch := entries[stored:end]
		if err := s.store.UpsertIndex(ctx, batch); err != nil {
			rep.Accepted = stored
			if aerr := s.invalidate(ctx, id, entries[:stored]); aerr != nil {
				err = errors.Join(err, aerr)
			}
			return rep, fmt.Errorf("import: stored %d rows, then: %w", stored, err)
		}
		stored = end
	}
	if err := s.invalidate(ctx, id, entries); err != nil {
		return rep, err
	}
	detail := map[string]int{"accepted": rep.Accepted, "rejected": rep.Rejected}
	if err := s.publish(ctx, actor, id, "contacts.import", detail); err != nil {
		return rep, err
	}
	return rep, nil
}

// invalidate drops the cache keys of imported rows here and on the other
// instances; it returns the error of announcing them.
func (s *Service) invalidate(ctx context.Context, id string, entries []domain.IndexEntry) error {
	suffixes := make([]string, 0, len(entries))
	for _, e := range entries {
		suffixes = append(suffixes, e.Suffix)
	}
	s.cache.Invalidate(id, suffixes...)
	if s.peers != nil {
		if err := s.peers.Publish(ctx, notify.Keys(id, suffixes)); err != nil {
			return fmt.Errorf("announce imported rows to the other instances: %w", err)
		}
	}
	return nil
}

func (rep *ImportReport) reject(line int, reason string) {
	rep.Rejected++
	if len(rep.Errors) < maxReportErrors {
		rep.Errors = append(rep.Errors, RowError{Line: line, Reason: reason})
	} else {
		rep.ErrorsTruncated = true
	}
}

// entry validates a row and turns it into an index entry.
func (r importRow) entry(tenantID, country string) (domain.IndexEntry, error) {
	if r.phone == "" {
		return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "phone: required")
	}
	p, err := phone.Ingest(r.phone, country)
	if err != nil {
		return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "phone: %q: %s", r.phone, domain.ErrorMessage(err))
	}
	if err := validID("owner_crm_user_id", r.owner); err != nil {
		return domain.IndexEntry{}, err
	}
	kind := domain.EntityKind(strings.ToLower(r.kind))
	if kind == "" {
		kind = domain.KindContact
	}
	if !kind.Valid() {
		return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "entity_kind: %q is not lead, deal, contact or company", r.kind)
	}
	entity := r.entity
	if entity == "" {
		entity = p
	}
	if len(entity) > 128 {
		return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "entity_id: longer than 128 characters")
	}
	open := true
	if r.open != "" {
		if open, err = parseBool(r.open); err != nil {
			return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "open: %q is not true or false", r.open)
		}
	}
	if len(r.name) > 512 {
		return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "name: longer than 512 characters")
	}
	// PostgreSQL refuses invalid UTF-8 and NUL bytes in text, which would
	// fail the whole import there while SQLite kept garbage: the row is
	// reported instead, on both.
	for _, f := range [...][2]string{{"entity_id", entity}, {"name", r.name}} {
		if !utf8.ValidString(f[1]) || strings.IndexByte(f[1], 0) >= 0 {
			return domain.IndexEntry{}, domain.Errorf(domain.EINVALID, "%s: not UTF-8 text (a NUL byte, or another encoding: save the file as UTF-8)", f[0])
		}
	}
	return domain.IndexEntry{TenantID: tenantID, Phone: p, Suffix: phone.Suffix(p), Kind: kind, EntityID: entity,
		Open: open, OwnerID: r.owner, Name: r.name}, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "y", "t", "open":
		return true, nil
	case "0", "false", "no", "n", "f", "closed":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

var csvColumns = []string{"phone", "owner_crm_user_id", "entity_kind", "entity_id", "name", "open"}

func readCSV(body []byte, rep *ImportReport) ([]importRow, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // Excel's byte-order mark
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	if first := firstLine(body); strings.Count(first, ";") > strings.Count(first, ",") {
		cr.Comma = ';' // spreadsheet exports in many locales
	}
	header, err := cr.Read()
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "csv header: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range csvColumns[:2] {
		if _, ok := col[need]; !ok {
			return nil, domain.Errorf(domain.EINVALID, "csv header: missing column %s (have %s; need %s)",
				need, strings.Join(header, ","), strings.Join(csvColumns, ","))
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var rows []importRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			rep.Rows++
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				// Not a bad record but a reader failure: nothing more can be read.
				rep.reject(0, "csv: "+err.Error())
				return rows, nil
			}
			rep.reject(pe.StartLine, "csv: "+pe.Err.Error())
			continue
		}
		line, _ := cr.FieldPos(0) // only valid after a successful Read
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		rep.Rows++
		rows = append(rows, importRow{line: line, phone: get(rec, "phone"), owner: get(rec, "owner_crm_user_id"),
			kind: get(rec, "entity_kind"), entity: get(rec, "entity_id"), name: get(rec, "name"), open: get(rec, "open")})
	}
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// flexString accepts a JSON string or number: CRM exports write phones and
// ids either way.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(strings.TrimSpace(s))
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if _, err := strconv.ParseFloat(string(b), 64); err != nil {
		return errors.New("must be a string or a number")
	}
	*f = flexString(b)
	return nil
}

func readJSONL(body []byte, rep *ImportReport) ([]importRow, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
	var rows []importRow
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rep.Rows++
		var in struct {
			Phone  flexString      `json:"phone"`
			Owner  flexString      `json:"owner_crm_user_id"`
			Kind   string          `json:"entity_kind"`
			Entity flexString      `json:"entity_id"`
			Name   string          `json:"name"`
			Open   json.RawMessage `json:"open"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				rep.reject(line, fmt.Sprintf("%s: must be a %s, got %s", te.Field, te.Type, te.Value))
			} else {
				rep.reject(line, "invalid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
			}
			continue
		}
		open := strings.Trim(string(bytes.TrimSpace(in.Open)), `"`)
		if open == "null" {
			open = ""
		}
		rows = append(rows, importRow{line: line, phone: string(in.Phone), owner: string(in.Owner),
			kind: strings.TrimSpace(in.Kind), entity: string(in.Entity), name: strings.TrimSpace(in.Name), open: open})
	}
	if err := sc.Err(); err != nil {
		rep.Rows++
		rep.reject(line+1, fmt.Sprintf("line longer than %d bytes; the rest of the body was not read", maxLineBytes))
	}
	return rows, nil
}
