package bench

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeCharts draws one PNG per measure over time, one line per target, and
// returns their file names.
func writeCharts(dir string, results []Result) ([]string, error) {
	charts := []struct {
		file, title, y string
		value          func(Point) float64
	}{
		{"throughput.png", "Throughput", "answered calls per second", func(p Point) float64 { return float64(p.Ops) }},
		{"p99.png", "p99 latency", "ms (per second, by answer time)", func(p Point) float64 { return p.P99Ms }},
		{"rejects.png", "Rejects (overloaded + deadline exceeded)", "calls per second", func(p Point) float64 { return float64(p.Rejects) }},
		{"errors.png", "Errors (unavailable, unknown, ...)", "calls per second", func(p Point) float64 { return float64(p.Errors) }},
	}
	var files []string
	for _, c := range charts {
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = "seconds since the load started"
		p.Y.Label.Text = c.y
		p.Y.Min = 0
		p.Legend.Top = true
		for i, r := range results {
			xys := make(plotter.XYs, len(r.Series))
			for j, pt := range r.Series {
				xys[j].X, xys[j].Y = float64(pt.T), c.value(pt)
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", c.file, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(r.Target, l)
		}
		if err := p.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.file, err)
		}
		files = append(files, c.file)
	}
	return files, nil
}
