// Package report renders the benchmark suite's results: a GitHub markdown table with the
// DESIGN.md targets, the same data as JSON, and a latency-by-percentile plot as PNG.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/bench/loadgen"
)

// Status is the verdict of one row against its target.
type Status string

// Row statuses.
const (
	Pass Status = "pass"
	Miss Status = "miss"
	Info Status = "info" // no target
)

// Row is one measured figure.
type Row struct {
	Figure  string  // e.g. "HTTP throughput, cache hits, keep-alive"
	Backend string  // "sqlite", "postgres", ""
	Value   float64 // in Unit
	Unit    string  // "req/s", "ms", "ns/op", "allocs/op", "s", "MB", "events/s", "%"
	Detail  string  // free text, e.g. "p50 0.12 ms · p99 0.4 ms · p99.9 1.1 ms"
	Ratio   float64 // 0 when none
	RatioTo string  // what the ratio compares with, e.g. "bare fasthttp"
	Target  string  // DESIGN.md target text, e.g. "≥ 90 % of ceiling", "≤ 1 ms"
	Status  Status
}

// Report is the result of one benchmark-suite run. It is not safe for concurrent use.
type Report struct {
	Title   string
	Started time.Time
	Machine string // e.g. "linux/amd64, 2 CPUs, Go 1.26.8" (fill via Machine())
	Mode    string // "full" or "quick"
	Rows    []Row
	Notes   []string
	Series  []Series // latency curves for the plot
}

// Series is one latency-by-percentile curve of the plot.
type Series struct {
	Name   string
	Points []loadgen.Point
}

// Machine describes the machine the suite runs on: OS/arch, CPU count and model (when
// /proc/cpuinfo tells), GOMAXPROCS when it differs, and the Go version.
func Machine() string {
	cpus := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if model := cpuModel(); model != "" {
		cpus += " (" + model + ")"
	}
	if p := runtime.GOMAXPROCS(0); p != runtime.NumCPU() {
		cpus += fmt.Sprintf(", GOMAXPROCS %d", p)
	}
	return fmt.Sprintf("%s/%s, %s, Go %s", runtime.GOOS, runtime.GOARCH, cpus, strings.TrimPrefix(runtime.Version(), "go"))
}

// cpuModel is the first "model name" of /proc/cpuinfo, "" where there is none.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.Join(strings.Fields(val), " ")
		}
	}
	return ""
}

// Add appends row; an empty Status becomes Info.
func (r *Report) Add(row Row) {
	if row.Status == "" {
		row.Status = Info
	}
	r.Rows = append(r.Rows, row)
}

// Note appends a note, formatted as by fmt.Sprintf.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// AddSeries appends a latency curve for the plot.
func (r *Report) AddSeries(name string, points []loadgen.Point) {
	r.Series = append(r.Series, Series{Name: name, Points: points})
}

// Counts returns how many rows passed and missed their target.
func (r *Report) Counts() (pass, miss int) {
	for _, row := range r.Rows {
		switch row.Status {
		case Pass:
			pass++
		case Miss:
			miss++
		}
	}
	return pass, miss
}

// Markdown writes the report as GitHub markdown: title, machine/mode line, the results table and
// the notes as a bullet list. It returns the first write error.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	title := r.Title
	if title == "" {
		title = "Benchmark results"
	}
	fmt.Fprintf(&b, "# %s\n\n", oneLine(title))
	meta := []string{}
	if r.Machine != "" {
		meta = append(meta, "machine: "+oneLine(r.Machine))
	}
	if r.Mode != "" {
		meta = append(meta, "mode: "+oneLine(r.Mode))
	}
	if !r.Started.IsZero() {
		meta = append(meta, "started: "+r.Started.Format(time.RFC3339))
	}
	if len(meta) > 0 {
		fmt.Fprintf(&b, "%s\n\n", strings.Join(meta, " · "))
	}
	if pass, miss := r.Counts(); pass+miss > 0 {
		fmt.Fprintf(&b, "%d of %d targets met", pass, pass+miss)
		if miss > 0 {
			fmt.Fprintf(&b, ", **%d missed**", miss)
		}
		b.WriteString(".\n\n")
	}

	b.WriteString("| figure | backend | value | ratio | target | result | detail |\n")
	b.WriteString("|---|---|--:|--:|---|---|---|\n")
	for _, row := range r.Rows {
		cells := []string{
			cell(row.Figure),
			cell(row.Backend),
			cell(FormatValue(row.Value, row.Unit)),
			cell(formatRatio(row.Ratio, row.RatioTo)),
			cell(row.Target),
			statusCell(row.Status),
			cell(row.Detail),
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

func statusCell(s Status) string {
	switch s {
	case Pass:
		return "pass"
	case Miss:
		return "**MISS**"
	case Info, "":
		return "info"
	}
	return cell(string(s))
}

// oneLine folds line breaks so that free text cannot break the markdown structure.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell escapes text for a table cell: "|" would end the cell, a backslash before it would
// unescape it.
func cell(s string) string {
	s = oneLine(s)
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, "|", `\|`)
}

func formatRatio(ratio float64, to string) string {
	if ratio == 0 {
		return ""
	}
	s := sig(ratio, 3) + "×"
	if to != "" {
		s += " " + to
	}
	return s
}

// FormatValue renders v in unit for humans: thousands separators for rates and counts, two to
// three significant digits for times and sizes, "n/a" for NaN and infinities.
func FormatValue(v float64, unit string) string {
	var s string
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		s = "n/a"
	case unit == "req/s" || unit == "events/s" || strings.HasSuffix(unit, "/s") || unit == "ns/op" || unit == "B/op":
		if math.Abs(v) >= 100 {
			s = thousands(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
		} else {
			s = sig(v, 3)
		}
	case unit == "allocs/op":
		if v == math.Trunc(v) {
			s = thousands(strconv.FormatFloat(v, 'f', 0, 64))
		} else {
			s = sig(v, 3)
		}
	case unit == "%":
		s = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		s = sig(v, 3)
	}
	if unit == "" {
		return s
	}
	if unit == "%" {
		return s + " %"
	}
	return s + " " + unit
}

// sig formats v with n significant digits (at least, for integers of more digits), without an
// exponent, with thousands separators and without trailing zeros after the point.
func sig(v float64, n int) string {
	if v == 0 {
		return "0"
	}
	mag := int(math.Floor(math.Log10(math.Abs(v)))) // 123 → 2, 0.0123 → -2
	decimals := max(n-1-mag, 0)
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return thousands(s)
}

// thousands puts commas between groups of three digits of the integer part of a formatted number.
func thousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if len(intPart) <= 3 {
		return sign + s
	}
	var b strings.Builder
	lead := len(intPart) % 3
	if lead > 0 {
		b.WriteString(intPart[:lead])
	}
	for i := lead; i < len(intPart); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(intPart[i : i+3])
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return sign + b.String()
}

// jsonNum is a float that survives JSON: NaN and infinities, which encoding/json refuses, are
// written as null and read back as NaN.
type jsonNum float64

// MarshalJSON writes null for non-finite values.
func (n jsonNum) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *jsonNum) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = jsonNum(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("report: number %s: %w", b, err)
	}
	*n = jsonNum(f)
	return nil
}

type jsonReport struct {
	Title   string       `json:"title"`
	Started time.Time    `json:"started"`
	Machine string       `json:"machine"`
	Mode    string       `json:"mode"`
	Rows    []jsonRow    `json:"rows"`
	Notes   []string     `json:"notes"`
	Series  []jsonSeries `json:"series"`
}

type jsonRow struct {
	Figure  string  `json:"figure"`
	Backend string  `json:"backend"`
	Value   jsonNum `json:"value"`
	Unit    string  `json:"unit"`
	Detail  string  `json:"detail"`
	Ratio   jsonNum `json:"ratio"`
	RatioTo string  `json:"ratio_to"`
	Target  string  `json:"target"`
	Status  Status  `json:"status"`
}

type jsonSeries struct {
	Name   string      `json:"name"`
	Points []jsonPoint `json:"points"`
}

type jsonPoint struct {
	Percentile float64 `json:"percentile"`
	LatencyMS  float64 `json:"latency_ms"`
}

// JSON writes the report as indented JSON: every row field, series as percentile/latency_ms
// pairs; non-finite numbers become null. It returns the encoding or write error.
func (r *Report) JSON(w io.Writer) error {
	out := jsonReport{
		Title: r.Title, Started: r.Started, Machine: r.Machine, Mode: r.Mode,
		Rows: make([]jsonRow, 0, len(r.Rows)), Notes: r.Notes, Series: make([]jsonSeries, 0, len(r.Series)),
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	for _, row := range r.Rows {
		out.Rows = append(out.Rows, jsonRow{
			Figure: row.Figure, Backend: row.Backend, Value: jsonNum(row.Value), Unit: row.Unit, Detail: row.Detail,
			Ratio: jsonNum(row.Ratio), RatioTo: row.RatioTo, Target: row.Target, Status: row.Status,
		})
	}
	for _, s := range r.Series {
		js := jsonSeries{Name: s.Name, Points: make([]jsonPoint, 0, len(s.Points))}
		for _, p := range s.Points {
			js.Points = append(js.Points, jsonPoint{Percentile: p.Percentile, LatencyMS: float64(p.Latency) / float64(time.Millisecond)})
		}
		out.Series = append(out.Series, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("report: write json: %w", err)
	}
	return nil
}

// ReadJSON parses a report written by JSON, e.g. a baseline to compare a run with. Latencies come
// back rounded to the nanosecond. It returns the decoding error.
func ReadJSON(rd io.Reader) (*Report, error) {
	var in jsonReport
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("report: read json: %w", err)
	}
	r := &Report{Title: in.Title, Started: in.Started, Machine: in.Machine, Mode: in.Mode, Notes: in.Notes}
	for _, row := range in.Rows {
		r.Rows = append(r.Rows, Row{
			Figure: row.Figure, Backend: row.Backend, Value: float64(row.Value), Unit: row.Unit, Detail: row.Detail,
			Ratio: float64(row.Ratio), RatioTo: row.RatioTo, Target: row.Target, Status: row.Status,
		})
	}
	for _, s := range in.Series {
		rs := Series{Name: s.Name}
		for _, p := range s.Points {
			rs.Points = append(rs.Points, loadgen.Point{
				Percentile: p.Percentile,
				Latency:    time.Duration(math.Round(p.LatencyMS * float64(time.Millisecond))),
			})
		}
		r.Series = append(r.Series, rs)
	}
	return r, nil
}

// File names written by WriteFiles.
const (
	MarkdownFile = "results.md"
	JSONFile     = "results.json"
	PlotFile     = "latency.png"
)

// WriteFiles writes results.md, results.json and latency.png into dir, creating it, and returns
// the paths written. It stops at the first error and returns it with the paths written so far.
func (r *Report) WriteFiles(dir string) (paths []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: create %s: %w", dir, err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{MarkdownFile, r.Markdown},
		{JSONFile, r.JSON},
		{PlotFile, r.PlotPNG},
	} {
		path := filepath.Join(dir, f.name)
		if err := writeFile(path, f.write); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func writeFile(path string, write func(io.Writer) error) (err error) {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if cerr := fh.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("report: close %s: %w", path, cerr)
		}
	}()
	bw := bufio.NewWriter(fh)
	if err := write(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}
