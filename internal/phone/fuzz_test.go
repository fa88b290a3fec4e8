package phone

import (
	"bytes"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// fuzzRegion maps the fuzzer's region index onto the table, with one value
// for no default region.
func fuzzRegion(i int) (*Region, string) {
	n := len(regions) + 1
	i = (i%n + n) % n
	if i == len(regions) {
		return nil, ""
	}
	return &regions[i], regions[i].ISO
}

func FuzzFastAgreesWithPhonenumbers(f *testing.F) {
	for _, c := range fastCases {
		i := len(regions)
		for k := range regions {
			if regions[k].ISO == c.iso {
				i = k
			}
		}
		f.Add(c.raw, i)
	}
	f.Fuzz(func(t *testing.T, raw string, region int) {
		r, iso := fuzzRegion(region)
		prefix := []byte("key:")
		out, ok := Fast(prefix, []byte(raw), r)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("Fast(%q, %s) = %q: lost dst", raw, iso, out)
		}
		got := out[len(prefix):]
		if !ok && len(got) != 0 {
			t.Fatalf("Fast(%q, %s) declined but appended %q", raw, iso, got)
		}
		if len(got) > maxE164 {
			t.Fatalf("Fast(%q, %s) = %s: more than 15 digits", raw, iso, got)
		}
		for _, c := range got {
			if c < '0' || c > '9' {
				t.Fatalf("Fast(%q, %s) = %q: not digits", raw, iso, got)
			}
		}
		again, ok2 := Fast(nil, []byte(raw), r)
		if ok2 != ok || !bytes.Equal(again, got) {
			t.Fatalf("Fast(%q, %s) = %q, %v then %q, %v", raw, iso, got, ok, again, ok2)
		}
		if ok {
			if want, valid := oracle(raw, iso); valid && want != string(got) {
				t.Fatalf("Fast(%q, %s) = %s, phonenumbers %s", raw, iso, got, want)
			}
		}
		// The route path and the import path must key a number alike.
		n, nerr := Normalize(raw, iso)
		i, ierr := ingestSlow(raw, iso)
		if n != i || domain.ErrorCode(nerr) != domain.ErrorCode(ierr) {
			t.Fatalf("%s %q: Normalize = %q, %v; phonenumbers first = %q, %v", iso, raw, n, nerr, i, ierr)
		}
	})
}
