package httpapi

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// /metrics is Prometheus text format Prometheus can use: every family has
// a # HELP line with text and a # TYPE line, and the route histogram has
// `le` buckets that histogram_quantile reads.
func TestMetricsArePrometheusFormat(t *testing.T) {
	e := newEnv(t)
	secret := e.acme("")
	e.route(secret, "caller=380671234567")
	body := e.do("GET", "/metrics", "", "", nil).body
	for _, want := range []string{
		"# HELP callrouter_route_duration_seconds " + MetricHelp["callrouter_route_duration_seconds"] + "\n",
		"# TYPE callrouter_route_duration_seconds histogram\n",
		`callrouter_route_duration_seconds_bucket{le="+Inf"} `,
		`callrouter_route_duration_seconds_bucket{le="0.0001"} `,
		"callrouter_route_duration_seconds_count ",
		"# TYPE callrouter_http_requests_total counter\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "vmrange") {
		t.Error("/metrics has VictoriaMetrics vmrange buckets Prometheus cannot read")
	}
	types := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# HELP "); ok {
			if fam, help, _ := strings.Cut(name, " "); strings.TrimSpace(help) == "" {
				t.Errorf("# HELP of %s has no text", fam)
			}
		}
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			fam, _, _ := strings.Cut(name, " ")
			types[fam] = true
		}
	}
	for _, fam := range []string{"callrouter_cache_hits_total", "callrouter_route_reasons_total"} {
		if !types[fam] {
			t.Errorf("no # TYPE line for %s", fam)
		}
	}
}

// Every metric the code registers has a MetricHelp text, and every one is
// in the metrics table of docs/operations.md.
func TestEveryMetricIsDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	named := regexp.MustCompile("(?:New\\w*|GetOrCreate\\w*|counter)\\(\\s*[`\"](callrouter_[a-z_]+)")
	found := map[string]string{}
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range named.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 30 {
		t.Fatalf("found only %d metric names in the code: the pattern is stale", len(found))
	}
	for name, path := range found {
		if MetricHelp[name] == "" {
			t.Errorf("%s (%s) has no MetricHelp text", name, path)
		}
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range MetricHelp {
		if found[name] == "" {
			t.Errorf("MetricHelp documents %s, which the code no longer registers", name)
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/operations.md does not document %s", name)
		}
	}
}
