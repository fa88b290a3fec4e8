package httpapi

import (
	"slices"
	"strings"
	"testing"
)

// The admin API's routes come from one table: a known path with another
// method answers 405 naming exactly the methods the table has for it, and a
// path the table lacks answers 404 before any of its body is read.
func TestAdminRouteTable(t *testing.T) {
	h := newHardEnv(t, openSQLite(t), 0)
	h.acme("")
	auth := map[string]string{"Authorization": "Bearer " + testAdminToken}
	methods := map[string][]string{}
	for _, r := range adminRoutes {
		methods[r.pattern] = append(methods[r.pattern], r.method)
	}
	fill := strings.NewReplacer("{t}", "acme", "{id}", "103")
	for pattern, allowed := range methods {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(allowed, m) {
				continue
			}
			a := h.as(t).do(m, "/admin/v1"+fill.Replace(pattern), "application/json", "{}", auth)
			got := strings.Split(a.header.Get("Allow"), ", ")
			slices.Sort(got)
			want := slices.Sorted(slices.Values(allowed))
			if a.status != 405 || !slices.Equal(got, want) {
				t.Errorf("%s %s: %d, Allow %q; want 405 with %v", m, pattern, a.status, a.header.Get("Allow"), want)
			}
		}
	}
	// Over the admin limit, so reading it would answer 413, and under
	// what a refusal drains, so the client reads the 404.
	big := strings.Repeat(" ", maxAdminBodyBytes+maxAdminBodyBytes/2)
	for _, path := range []string{"/admin/v1/tenants/acme/nothing-here", "/admin/v1/tenants/acme/employees/103/extra", "/admin/v1/nothing"} {
		if a := h.as(t).do("PUT", path, "application/json", "{}"+big, auth); a.status != 404 {
			t.Errorf("PUT %s with a 1.5 MiB body: %d %s, want 404 without reading it", path, a.status, a.body)
		}
	}
}
