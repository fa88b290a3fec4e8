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
	"slices"
	"strconv"
	"strings"
	"time"
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
// Content-Type, or the body's first byte (head is the body's start).
// EINVALID for an unknown format.
func DetectFormat(param, contentType string, head []byte) (string, error) {
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
	if b := bytes.TrimSpace(head); len(b) > 0 && b[0] == '{' {
		return FormatJSONL, nil
	}
	return FormatCSV, nil
}

// importPeek is how much of an import's start is looked at to tell an empty
// body and its format; it is also the read buffer's size.
const importPeek = 64 << 10

// Import reads contacts (fields phone, owner_crm_user_id, entity_kind,
// entity_id, name, open) as JSON lines or CSV with a header row from body,
// row by row, stores every valid row in the phone index in batches of
// importBatch as it goes and reports each bad row with its line number and
// reason. format is "csv", "jsonl" or "" to tell it from contentType or the
// body's first byte. Memory stays flat whatever the body's size: one batch
// and the report's first maxReportErrors errors are held.
//
// EINVALID when the body as a whole is unusable (empty, CSV header without
// phone or owner_crm_user_id, an unknown format) or cannot be read to its
// end (the error then also wraps the read error, and the rows of the
// batches before it are stored); ENOTFOUND for an unknown tenant. A store
// failure returns the report of what was stored before it.
func (s *Service) Import(ctx context.Context, actor, id, format, contentType string, body io.Reader) (ImportReport, error) {
	t, err := s.store.Tenant(ctx, id)
	if err != nil {
		return ImportReport{}, err
	}
	br := bufio.NewReaderSize(body, importPeek)
	// A read error here with bytes before it is met again by the row
	// readers, after the rows before it are stored.
	head, perr := br.Peek(importPeek)
	if len(head) == 0 && perr != nil && perr != io.EOF {
		return ImportReport{}, errors.Join(domain.Errorf(domain.EINVALID, "body: could not be read"), perr)
	}
	if len(bytes.TrimSpace(head)) == 0 && len(head) < importPeek {
		return ImportReport{}, domain.Errorf(domain.EINVALID, "body: empty; send JSON lines or CSV with a header row")
	}
	if format, err = DetectFormat(format, contentType, head); err != nil {
		return ImportReport{}, err
	}
	rep := ImportReport{Format: format, Errors: []RowError{}}
	b := &importBatcher{s: s, ctx: ctx, tenant: id, country: t.Settings.DefaultCountry, now: s.now().UTC(), rep: &rep,
		batch: make([]domain.IndexEntry, 0, importBatch), seen: make(map[[3]string]int, importBatch)}
	if format == FormatCSV {
		err = readCSV(br, &rep, b.add)
	} else {
		err = readJSONL(br, &rep, b.add)
	}
	if err == nil {
		err = b.flush()
	}
	var rerr *readError
	switch {
	case errors.As(err, &rerr):
		rep.Accepted = b.stored
		return rep, errors.Join(domain.Errorf(domain.EINVALID, "body: could not be read to its end after %d rows; the %d rows before the last batch were stored", rep.Rows, b.stored), rerr.err)
	case err != nil:
		return rep, err
	}
	rep.Accepted = b.valid
	detail := map[string]int{"accepted": rep.Accepted, "rejected": rep.Rejected}
	if err := s.publish(ctx, actor, id, "contacts.import", detail); err != nil {
		return rep, err
	}
	return rep, nil
}

// readError is a failure to read an import's body (not a bad row).
type readError struct{ err error }

func (e *readError) Error() string { return "read the import: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// importBatcher validates rows as they are read and stores them a batch at
// a time.
type importBatcher struct {
	s       *Service
	ctx     context.Context
	tenant  string
	country string
	now     time.Time
	rep     *ImportReport
	batch   []domain.IndexEntry
	// seen maps a batch entry's key to its index: later rows for the same
	// entity phone win, as if imported one by one, and a batch must not
	// carry one key twice. Across batches the later upsert wins.
	seen          map[[3]string]int
	valid, stored int
}

// add takes one row; it returns a store error.
func (b *importBatcher) add(r importRow) error {
	e, err := r.entry(b.tenant, b.country)
	if err != nil {
		b.rep.reject(r.line, domain.ErrorMessage(err))
		return nil
	}
	b.valid++
	e.UpdatedAt = b.now
	k := [3]string{string(e.Kind), e.EntityID, e.Phone}
	if i, ok := b.seen[k]; ok {
		b.batch[i] = e
		return nil
	}
	b.seen[k] = len(b.batch)
	b.batch = append(b.batch, e)
	if len(b.batch) >= importBatch {
		return b.flush()
	}
	return nil
}

// flush stores the batch and drops its cache keys here and on the other
// instances.
func (b *importBatcher) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	if err := b.s.store.UpsertIndex(b.ctx, b.batch); err != nil {
		b.rep.Accepted = b.stored
		return fmt.Errorf("import: stored %d rows, then: %w", b.stored, err)
	}
	b.stored += len(b.batch)
	if err := b.s.invalidate(b.ctx, b.tenant, b.batch); err != nil {
		b.rep.Accepted = b.stored
		return err
	}
	b.batch = b.batch[:0]
	clear(b.seen)
	return nil
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

// readCSV reads CSV with a header row from r, passing each data row to
// emit; it returns emit's error or a *readError when r fails.
func readCSV(r *bufio.Reader, rep *ImportReport, emit func(importRow) error) error {
	if bom, _ := r.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = r.Discard(3) // Excel's byte-order mark
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	if head, _ := r.Peek(r.Buffered()); strings.Count(firstLine(head), ";") > strings.Count(firstLine(head), ",") {
		cr.Comma = ';' // spreadsheet exports in many locales
	}
	header, err := cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if err != io.EOF && !errors.As(err, &pe) {
			return &readError{err}
		}
		return domain.Errorf(domain.EINVALID, "csv header: %v", err)
	}
	header = slices.Clone(header) // ReuseRecord
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range csvColumns[:2] {
		if _, ok := col[need]; !ok {
			return domain.Errorf(domain.EINVALID, "csv header: missing column %s (have %s; need %s)",
				need, strings.Join(header, ","), strings.Join(csvColumns, ","))
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				// Not a bad record but a reader failure: nothing more can be read.
				return &readError{err}
			}
			rep.Rows++
			rep.reject(pe.StartLine, "csv: "+pe.Err.Error())
			continue
		}
		line, _ := cr.FieldPos(0) // only valid after a successful Read
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		rep.Rows++
		if err := emit(importRow{line: line, phone: get(rec, "phone"), owner: get(rec, "owner_crm_user_id"),
			kind: get(rec, "entity_kind"), entity: get(rec, "entity_id"), name: get(rec, "name"), open: get(rec, "open")}); err != nil {
			return err
		}
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

// readJSONL reads JSON lines from r, passing each object to emit; it
// returns emit's error or a *readError when r fails. A line longer than
// maxLineBytes ends the import with that line reported.
func readJSONL(r *bufio.Reader, rep *ImportReport, emit func(importRow) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
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
		if err := emit(importRow{line: line, phone: string(in.Phone), owner: string(in.Owner),
			kind: strings.TrimSpace(in.Kind), entity: string(in.Entity), name: strings.TrimSpace(in.Name), open: open}); err != nil {
			return err
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		rep.Rows++
		rep.reject(line+1, fmt.Sprintf("line longer than %d bytes; the rest of the body was not read", maxLineBytes))
	case err != nil:
		return &readError{err}
	}
	return nil
}
