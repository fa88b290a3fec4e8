package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/bench/loadgen"
)

func sampleReport() *Report {
	r := &Report{
		Title:   "callrouter benchmarks",
		Started: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Machine: "linux/amd64, 2 CPUs, Go 1.26.8",
		Mode:    "quick",
	}
	r.Add(Row{Figure: "HTTP throughput, cache hits, keep-alive", Value: 123456.7, Unit: "req/s",
		Ratio: 0.934, RatioTo: "bare fasthttp", Target: "≥ 90 % of bare fasthttp", Status: Pass,
		Detail: "p50 0.12 ms · p99 0.4 ms"})
	r.Add(Row{Figure: "miss → store", Backend: "postgres", Value: 3.4567, Unit: "ms", Target: "p99 ≤ 3 ms", Status: Miss,
		Detail: "a|b pipe\nand newline"})
	r.Add(Row{Figure: "route decision in-process", Value: 212.4, Unit: "ns/op", Target: "≤ 250 ns/op", Status: Pass})
	r.Add(Row{Figure: "warm start RSS", Value: 321.5, Unit: "MB"}) // no status: info
	r.Note("run %d of %d", 1, 1)
	r.Notes = append(r.Notes, "second | note")
	r.AddSeries("keep-alive", curve(100*time.Microsecond, 3*time.Millisecond))
	r.AddSeries("connection close", curve(300*time.Microsecond, 9*time.Millisecond))
	r.AddSeries("miss sqlite", curve(1*time.Millisecond, 20*time.Millisecond))
	return r
}

// curve is a latency-by-percentile curve rising from p50 to max.
func curve(p50, maxLat time.Duration) []loadgen.Point {
	var pts []loadgen.Point
	for _, p := range loadgen.PlotPercentiles {
		f := nines(p) / 5
		if math.IsInf(f, 1) || f > 1 {
			f = 1
		}
		pts = append(pts, loadgen.Point{Percentile: p, Latency: p50 + time.Duration(f*float64(maxLat-p50))})
	}
	return pts
}

func TestMarkdown(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.Markdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"# callrouter benchmarks\n",
		"machine: linux/amd64, 2 CPUs, Go 1.26.8 · mode: quick",
		"2 of 3 targets met, **1 missed**",
		"| figure | backend | value | ratio | target | result | detail |",
		"| HTTP throughput, cache hits, keep-alive |  | 123,457 req/s | 0.934× bare fasthttp | ≥ 90 % of bare fasthttp | pass | p50 0.12 ms · p99 0.4 ms |",
		"| miss → store | postgres | 3.46 ms |  | p99 ≤ 3 ms | **MISS** | a\\|b pipe and newline |",
		"| route decision in-process |  | 212 ns/op |  | ≤ 250 ns/op | pass |  |",
		"| warm start RSS |  | 322 MB |  |  | info |  |",
		"- run 1 of 1\n",
		"- second | note\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table line has exactly the 8 unescaped pipes of 7 columns.
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| ") {
			if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != 8 {
				t.Errorf("table line has %d cell separators: %q", n, l)
			}
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{1234567.4, "req/s", "1,234,567 req/s"},
		{99.44, "req/s", "99.4 req/s"},
		{2500, "events/s", "2,500 events/s"},
		{0.1234, "ms", "0.123 ms"},
		{0.01234, "ms", "0.0123 ms"},
		{1.5, "ms", "1.5 ms"},
		{12.345, "ms", "12.3 ms"},
		{1234.6, "ms", "1,235 ms"},
		{0, "allocs/op", "0 allocs/op"},
		{1.5, "allocs/op", "1.5 allocs/op"},
		{93.456, "%", "93.5 %"},
		{math.NaN(), "ms", "n/a ms"},
		{-12345, "", "-12,345"},
	} {
		if got := FormatValue(c.v, c.unit); got != c.want {
			t.Errorf("FormatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	r.Add(Row{Figure: "broken ratio", Value: math.Inf(1), Unit: "req/s", Ratio: math.NaN()})
	var buf bytes.Buffer
	if err := r.JSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ratio_to": "bare fasthttp"`, `"latency_ms": 0.1`, `"status": "miss"`, `"value": null`, "\n  \"rows\": ["} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("json lacks %q", want)
		}
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	last := back.Rows[len(back.Rows)-1]
	if !math.IsNaN(last.Value) || !math.IsNaN(last.Ratio) {
		t.Errorf("non-finite values read back as %v, %v", last.Value, last.Ratio)
	}
	back.Rows, r.Rows = back.Rows[:len(back.Rows)-1], r.Rows[:len(r.Rows)-1]
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", back, r)
	}
}

func TestPlotPNG(t *testing.T) {
	for name, r := range map[string]*Report{
		"log, three series": sampleReport(),
		"linear": {Title: "narrow", Series: []Series{
			{Name: "keep-alive", Points: curve(200*time.Microsecond, 2*time.Millisecond)},
			{Name: "connection close", Points: curve(400*time.Microsecond, 5*time.Millisecond)},
		}},
		"log": {Title: "wide", Series: []Series{
			{Name: "fast", Points: curve(20*time.Microsecond, 400*time.Microsecond)},
			{Name: "stalled", Points: curve(50*time.Microsecond, 200*time.Millisecond)},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.PlotPNG(&buf); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != PlotWidth || b.Dy() != PlotHeight {
				t.Fatalf("size %v, want %dx%d", b, PlotWidth, PlotHeight)
			}
			counts := colourCounts(img)
			for i, s := range r.Series {
				// The legend swatch alone is 75 pixels; a curve across the plot is thousands.
				if n := counts[SeriesColor(i)]; n < 500 {
					t.Errorf("series %q: %d pixels of its colour", s.Name, n)
				}
			}
			if n := darkPixels(counts); n < 500 {
				t.Errorf("only %d pixels of axis and text ink", n)
			}
		})
	}
}

func TestPlotPNGWithoutSeries(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Report{}).PlotPNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if counts := colourCounts(img); darkPixels(counts) < 500 || counts[SeriesColor(0)] != 0 {
		t.Errorf("empty plot: %d ink pixels, %d series pixels", darkPixels(counts), counts[SeriesColor(0)])
	}
}

func colourCounts(img image.Image) map[color.RGBA]int {
	counts := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			counts[c]++
		}
	}
	return counts
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "run1")
	paths, err := sampleReport().WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "results.md"), filepath.Join(dir, "results.json"), filepath.Join(dir, "latency.png")}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths = %q, want %q", paths, want)
	}
	md, err := os.ReadFile(paths[0])
	if err != nil || !strings.Contains(string(md), "**MISS**") {
		t.Errorf("results.md: %v %q", err, md)
	}
	fj, err := os.Open(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fj.Close() }()
	if back, err := ReadJSON(fj); err != nil || len(back.Rows) != 4 {
		t.Errorf("results.json: %v", err)
	}
	fp, err := os.Open(paths[2])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fp.Close() }()
	if cfg, err := png.DecodeConfig(fp); err != nil || cfg.Width != PlotWidth || cfg.Height != PlotHeight {
		t.Errorf("latency.png: %v %+v", err, cfg)
	}
}

func TestMachine(t *testing.T) {
	m := Machine()
	if !strings.Contains(m, "CPUs") || !strings.Contains(m, ", Go 1.") {
		t.Errorf("Machine() = %q", m)
	}
}

// darkPixels counts the pixels of axes, ticks and text: gonum/plot draws
// them black and anti-aliases their edges.
func darkPixels(counts map[color.RGBA]int) int {
	n := 0
	for c, k := range counts {
		if c.R < 0x60 && c.G < 0x60 && c.B < 0x60 {
			n += k
		}
	}
	return n
}
