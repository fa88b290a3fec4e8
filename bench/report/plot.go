package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/callrouter/callrouter/bench/loadgen"
)

// Plot geometry in pixels.
const (
	PlotWidth  = 1000 // width of the PNG written by PlotPNG
	PlotHeight = 600  // height of the PNG written by PlotPNG

	marginLeft   = 90
	marginRight  = 30
	marginTop    = 50
	marginBottom = 60
	lineWidth    = 3
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

var (
	background = color.RGBA{0xff, 0xff, 0xff, 0xff}
	ink        = color.RGBA{0x20, 0x20, 0x20, 0xff}
	gridMajor  = color.RGBA{0xd0, 0xd0, 0xd0, 0xff}
	gridMinor  = color.RGBA{0xee, 0xee, 0xee, 0xff}
)

// PlotPNG writes the latency-by-percentile plot as a PlotWidth×PlotHeight PNG: percentile on the
// HdrHistogram log scale (x = log10(1/(1-p))), latency in ms on a linear axis, or a log axis when
// the curves span more than two decades; one coloured line per series with a legend. It returns
// the encoding or write error.
func (r *Report) PlotPNG(w io.Writer) error {
	img := image.NewRGBA(image.Rect(0, 0, PlotWidth, PlotHeight))
	draw.Draw(img, img.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)
	area := image.Rect(marginLeft, marginTop, PlotWidth-marginRight, PlotHeight-marginBottom)

	title := r.Title
	if title == "" {
		title = "Benchmark"
	}
	title += " - latency by percentile"
	drawText(img, title, (PlotWidth-textWidth(title, 2))/2, 12, ink, 2, false)

	xs := newXScale(r.Series, area)
	ys := newYScale(r.Series, area)

	// Grid and tick labels first, so that the curves are drawn over them.
	for _, t := range ys.ticks {
		y := ys.pixel(t.v)
		col := gridMajor
		if !t.major {
			col = gridMinor
		}
		hline(img, area.Min.X, area.Max.X, y, col)
		if t.major {
			label := sig(t.v, 3)
			drawText(img, label, area.Min.X-8-textWidth(label, 1), y-6, ink, 1, false)
		}
	}
	for d := 0; d <= xs.decades; d++ {
		x := xs.pixelDecade(float64(d))
		vline(img, x, area.Min.Y, area.Max.Y, gridMajor)
		label := decadeLabel(d)
		drawText(img, label, x-textWidth(label, 1)/2, area.Max.Y+8, ink, 1, false)
	}
	rect(img, area, ink)
	xTitle := "percentile"
	drawText(img, xTitle, area.Min.X+(area.Dx()-textWidth(xTitle, 1))/2, area.Max.Y+30, ink, 1, false)
	yTitle := "latency (ms)"
	if ys.log {
		yTitle = "latency (ms, log scale)"
	}
	drawText(img, yTitle, 12, area.Min.Y+(area.Dy()+textWidth(yTitle, 1))/2, ink, 1, true)

	plot := img.SubImage(area.Inset(1)).(*image.RGBA)
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
		col := SeriesColor(i)
		var prev image.Point
		for j, p := range pts {
			pt := image.Pt(xs.pixel(p.Percentile), ys.pixel(ms(p.Latency)))
			if j == 0 {
				dot(plot, pt, col)
			} else {
				line(plot, prev, pt, col)
			}
			prev = pt
			drawn++
		}
	}
	if drawn == 0 {
		msg := "no latency data"
		drawText(img, msg, area.Min.X+(area.Dx()-textWidth(msg, 2))/2, area.Min.Y+area.Dy()/2-13, ink, 2, false)
	}
	drawLegend(img, r.Series, area)

	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("report: write png: %w", err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// xScale maps percentiles to pixels on the log10(1/(1-p)) axis from 0 % to 99.9…% with decades
// nines; 100 % (the maximum) lands on the right edge.
type xScale struct {
	area    image.Rectangle
	decades int
}

func newXScale(series []Series, area image.Rectangle) xScale {
	decades := 2
	for _, s := range series {
		for _, p := range s.Points {
			if p.Percentile < 100 {
				d := int(math.Ceil(nines(p.Percentile) - 1e-6))
				decades = max(decades, d)
			}
		}
	}
	return xScale{area: area, decades: min(decades, 7)}
}

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

func (s xScale) pixelDecade(v float64) int {
	v = min(max(v, 0), float64(s.decades))
	return s.area.Min.X + int(math.Round(v/float64(s.decades)*float64(s.area.Dx()-1)))
}

func (s xScale) pixel(p float64) int { return s.pixelDecade(nines(p)) }

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

type tick struct {
	v     float64
	major bool
}

// yScale maps milliseconds to pixels, linear from 0 or logarithmic over whole decades.
type yScale struct {
	area       image.Rectangle
	log        bool
	lo, hi     float64 // ms, or log10(ms) when log
	ticks      []tick
	minVisible float64 // log: values below are drawn at the bottom
}

func newYScale(series []Series, area image.Rectangle) yScale {
	maxV, minPos := 0.0, math.Inf(1)
	for _, s := range series {
		for _, p := range s.Points {
			v := ms(p.Latency)
			maxV = max(maxV, v)
			if v > 0 {
				minPos = min(minPos, v)
			}
		}
	}
	s := yScale{area: area}
	if maxV <= 0 {
		maxV = 1
	}
	if !math.IsInf(minPos, 1) && maxV/minPos > 100 {
		s.log = true
		lo := math.Floor(math.Log10(minPos))
		hi := math.Ceil(math.Log10(maxV))
		if hi <= lo {
			hi = lo + 1
		}
		s.lo, s.hi, s.minVisible = lo, hi, math.Pow(10, lo)
		for d := lo; d <= hi; d++ {
			base := math.Pow(10, d)
			s.ticks = append(s.ticks, tick{v: base, major: true})
			if d < hi {
				for _, m := range []float64{2, 5} {
					s.ticks = append(s.ticks, tick{v: m * base})
				}
			}
		}
		return s
	}
	step := niceStep(maxV * 1.05 / 6)
	s.hi = math.Ceil(maxV*1.05/step) * step
	for i := 0; float64(i)*step <= s.hi*(1+1e-9); i++ {
		s.ticks = append(s.ticks, tick{v: float64(i) * step, major: true})
	}
	return s
}

// niceStep is the smallest 1, 2 or 5 × 10^k at least raw.
func niceStep(raw float64) float64 {
	base := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*base >= raw*(1-1e-9) {
			return m * base
		}
	}
	return 10 * base
}

func (s yScale) pixel(v float64) int {
	var f float64
	if s.log {
		v = max(v, s.minVisible)
		f = (math.Log10(v) - s.lo) / (s.hi - s.lo)
	} else {
		f = v / s.hi
	}
	f = min(max(f, 0), 1)
	return s.area.Max.Y - 1 - int(math.Round(f*float64(s.area.Dy()-1)))
}

// drawLegend puts the series names in a box at the top left of the plot area, where latency
// curves, rising to the right, leave room.
func drawLegend(img *image.RGBA, series []Series, area image.Rectangle) {
	if len(series) == 0 {
		return
	}
	const rowH, swatch, pad = 16, 24, 8
	width := 0
	for _, s := range series {
		width = max(width, textWidth(s.Name, 1))
	}
	box := image.Rect(area.Min.X+12, area.Min.Y+12, area.Min.X+12+pad*3+swatch+width, area.Min.Y+12+pad*2+rowH*len(series))
	box = box.Intersect(area.Inset(1))
	draw.Draw(img, box, image.NewUniform(background), image.Point{}, draw.Src)
	rect(img, box, gridMajor)
	for i, s := range series {
		y := box.Min.Y + pad + i*rowH + rowH/2
		col := SeriesColor(i)
		for dy := -1; dy <= 1; dy++ {
			hline(img, box.Min.X+pad, box.Min.X+pad+swatch, y+dy, col)
		}
		drawText(img, s.Name, box.Min.X+pad*2+swatch, y-7, ink, 1, false)
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func rect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X, r.Max.Y-1, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, c)
	vline(img, r.Max.X-1, r.Min.Y, r.Max.Y, c)
}

// dot paints a lineWidth square centred on p; SetRGBA ignores pixels outside img, which clips
// the curves to the plot area.
func dot(img *image.RGBA, p image.Point, c color.RGBA) {
	for dy := -lineWidth / 2; dy <= lineWidth/2; dy++ {
		for dx := -lineWidth / 2; dx <= lineWidth/2; dx++ {
			img.SetRGBA(p.X+dx, p.Y+dy, c)
		}
	}
}

// line draws a thick segment with Bresenham's algorithm.
func line(img *image.RGBA, a, b image.Point, c color.RGBA) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for p := a; ; {
		dot(img, p, c)
		if p == b {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			p.X += sx
		} else {
			e += dx
			p.Y += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// asciiFor maps the non-ASCII characters used in figure names and targets to what the ASCII-only
// basicfont can show.
var asciiFor = strings.NewReplacer("—", "-", "–", "-", "≥", ">=", "≤", "<=", "×", "x", "·", "-", "µ", "u", "…", "...", "→", "->", "\u00a0", " ", "\u202f", " ")

func plain(s string) string {
	s = asciiFor.Replace(oneLine(s))
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func textWidth(s string, scale int) int {
	return len(plain(s)) * basicfont.Face7x13.Advance * scale
}

// drawText draws s with its top-left corner at (x, y), magnified by scale, or rotated a quarter
// turn anticlockwise (reading bottom to top, (x, y) then being the bottom-left corner).
func drawText(img *image.RGBA, s string, x, y int, c color.RGBA, scale int, vertical bool) {
	s = plain(s)
	if s == "" {
		return
	}
	face := basicfont.Face7x13
	mask := image.NewAlpha(image.Rect(0, 0, len(s)*face.Advance, face.Height))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(s)
	b := mask.Bounds()
	for my := 0; my < b.Dy(); my++ {
		for mx := 0; mx < b.Dx(); mx++ {
			if mask.AlphaAt(mx, my).A < 0x80 {
				continue
			}
			for sy := 0; sy < scale; sy++ {
				for sx := 0; sx < scale; sx++ {
					px, py := mx*scale+sx, my*scale+sy
					if vertical {
						img.SetRGBA(x+py, y-px, c)
					} else {
						img.SetRGBA(x+px, y+py, c)
					}
				}
			}
		}
	}
}
