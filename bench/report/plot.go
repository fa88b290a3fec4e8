package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/callrouter/callrouter/bench/loadgen"
)

// Plot size in pixels of the PNG written by PlotPNG.
const (
	PlotWidth  = 1000
	PlotHeight = 600
	plotDPI    = 96
)

// Palette is the colour of each series in order; it repeats after the last.
var Palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0x8c, 0x56, 0x4b, 0xff}, // brown
	{0xe3, 0x77, 0xc2, 0xff}, // pink
	{0x17, 0xbe, 0xcf, 0xff}, // cyan
	{0xbc, 0xbd, 0x22, 0xff}, // olive
}

// SeriesColor is the colour of the i-th series in the plot.
func SeriesColor(i int) color.RGBA { return Palette[i%len(Palette)] }

// PlotPNG writes the latency-by-percentile plot as a PlotWidth×PlotHeight PNG, drawn with
// gonum/plot: percentile on the HdrHistogram log scale (x = log10(1/(1-p)), labelled 90 %, 99 %,
// 99.9 %, …), latency in ms on a linear axis, or a log axis when the curves span more than two
// decades; one coloured line per series with a legend. It returns the drawing or write error.
func (r *Report) PlotPNG(w io.Writer) error {
	p := plot.New()
	title := r.Title
	if title == "" {
		title = "Benchmark"
	}
	p.Title.Text = title + " - latency by percentile"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true

	decades := 2
	lo, hi := math.Inf(1), 0.0
	drawn := 0
	for i, s := range r.Series {
		pts := slices.Clone(s.Points)
		slices.SortStableFunc(pts, func(a, b loadgen.Point) int {
			switch {
			case a.Percentile < b.Percentile:
				return -1
			case a.Percentile > b.Percentile:
				return 1
			}
			return 0
		})
		xys := make(plotter.XYs, 0, len(pts))
		for _, pt := range pts {
			n := nines(pt.Percentile)
			if math.IsInf(n, 1) {
				continue // the maximum: no place on a log-of-nines axis
			}
			decades = max(decades, int(math.Ceil(n-1e-6)))
			v := ms(pt.Latency)
			lo, hi = min(lo, v), max(hi, v)
			xys = append(xys, plotter.XY{X: n, Y: v})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("report: plot series %q: %w", s.Name, err)
		}
		l.Color = SeriesColor(i)
		l.Width = vg.Points(2.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
		drawn += len(xys)
	}
	decades = min(decades, 7)
	p.X.Min, p.X.Max = 0, float64(decades)
	ticks := make([]plot.Tick, 0, decades+1)
	for d := 0; d <= decades; d++ {
		ticks = append(ticks, plot.Tick{Value: float64(d), Label: decadeLabel(d)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if drawn == 0 {
		p.Title.Text += " (no latency data)"
		p.Y.Min, p.Y.Max = 0, 1
	} else if lo > 0 && hi/lo > 100 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = "latency (ms, log scale)"
	} else {
		p.Y.Min = 0
	}

	c := vgimg.NewWith(vgimg.UseWH(vg.Length(PlotWidth)*vg.Inch/plotDPI, vg.Length(PlotHeight)*vg.Inch/plotDPI),
		vgimg.UseDPI(plotDPI), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("report: write png: %w", err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// nines is log10(1/(1-p)) for p in percent: 90 → 1, 99.9 → 3.
func nines(p float64) float64 {
	if p <= 0 {
		return 0
	}
	if p >= 100 {
		return math.Inf(1)
	}
	return -math.Log10(1 - p/100)
}

func decadeLabel(d int) string {
	switch d {
	case 0:
		return "0%"
	case 1:
		return "90%"
	case 2:
		return "99%"
	}
	return "99." + strings.Repeat("9", d-2) + "%"
}
