package phone

import (
	"math/bits"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestRegionsMatchMetadata checks every table row against the metadata
// phonenumbers embeds: Fast agrees with phonenumbers only while they do.
func TestRegionsMatchMetadata(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range regions {
		r := &regions[i]
		t.Run(r.ISO, func(t *testing.T) {
			md := metadataFor(t, r.ISO)
			if got := strconv.Itoa(int(md.GetCountryCode())); r.cc != got {
				t.Errorf("calling code %s, metadata %s", r.cc, got)
			}
			if main := phonenumbers.GetRegionCodeForCountryCode(int(md.GetCountryCode())); r.main.ISO != main {
				t.Errorf("main region %s, metadata %s", r.main.ISO, main)
			}
			idd := md.GetInternationalPrefix()
			if idd == "00" {
				idd = ""
			}
			if r.idd != idd {
				t.Errorf("international prefix %q, metadata %q", r.idd, md.GetInternationalPrefix())
			}
			checkTrunk(t, r, md)
			if got := lengthBits(md.GetGeneralDesc().PossibleLength); r.lens != got {
				t.Errorf("possible lengths %b, metadata %b", r.lens, got)
			}
			if got := lengthBits(md.GetGeneralDesc().PossibleLengthLocalOnly); r.local != got {
				t.Errorf("local-only lengths %b, metadata %b", r.local, got)
			}
			checkSpans(t, r, md.GetGeneralDesc().GetNationalNumberPattern(), rng)
			for _, s := range r.spans {
				// E.164 of a number with a leading zero needs
				// libphonenumber's "Italian leading zero" rules.
				if s.lead[0]&1 != 0 {
					t.Errorf("a span allows a leading zero")
				}
			}
		})
	}
}

func lengthBits(lengths []int32) uint32 {
	var m uint32
	for _, n := range lengths {
		m |= 1 << n
	}
	return m
}

// checkTrunk compares r.trunk with national_prefix_for_parsing on every
// string of up to four digits and on each prefix followed by digits.
func checkTrunk(t *testing.T, r *Region, md *phonenumbers.PhoneMetadata) {
	t.Helper()
	if md.GetNationalPrefixTransformRule() != "" {
		t.Fatalf("national prefix transform rule %q: Fast cannot replay it", md.GetNationalPrefixTransformRule())
	}
	npp := md.GetNationalPrefixForParsing()
	if npp == "" {
		if len(r.trunk) != 0 {
			t.Errorf("trunk %q, metadata has none", r.trunk)
		}
		return
	}
	re := regexp.MustCompile("^(?:" + npp + ")")
	if re.NumSubexp() != 0 {
		t.Fatalf("national prefix %q captures a carrier code: Fast cannot replay it", npp)
	}
	var inputs []string
	for n := 1; n <= 4; n++ {
		for k := range pow10(n) {
			inputs = append(inputs, pad(k, n))
		}
	}
	for _, tr := range r.trunk {
		inputs = append(inputs, tr+"1234567", tr+"0123456")
	}
	for _, in := range inputs {
		want := 0
		if loc := re.FindStringIndex(in); loc != nil {
			want = loc[1]
		}
		if got := r.trunkLen([]byte(in)); got != want {
			t.Errorf("national prefix of %q: %d digits, metadata %q: %d", in, got, npp, want)
		}
	}
}

// checkSpans compares r.matches with the general description on every
// prefix as deep as the spans look and every length, with random tails.
func checkSpans(t *testing.T, r *Region, pattern string, rng *rand.Rand) {
	t.Helper()
	re := whole(pattern)
	depth := 1
	for _, s := range r.spans {
		depth = max(depth, len(s.lead))
	}
	buf := make([]byte, 0, 20)
	for n := 1; n <= bits.Len32(r.lens)+1; n++ {
		d := min(depth, n)
		for k := range pow10(d) {
			for range 3 - min(d, 2) {
				buf = append(buf[:0], pad(k, d)...)
				for len(buf) < n {
					buf = append(buf, byte('0'+rng.IntN(10)))
				}
				if got, want := r.matches(buf), re.Match(buf); got != want {
					t.Fatalf("matches(%s) = %v, general description %s says %v", buf, got, pattern, want)
				}
			}
		}
	}
}

// TestSharedCallingCodes checks that the general description of a calling
// code's main region covers every region that shares the code: a number
// valid anywhere under the code must not be declined.
func TestSharedCallingCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range regions {
		r := &regions[i]
		if r.main != r {
			continue
		}
		cc, _ := strconv.Atoi(r.cc)
		for _, iso := range phonenumbers.GetRegionCodesForCountryCode(cc) {
			g := newGenerator(metadataFor(t, iso).GetGeneralDesc().GetNationalNumberPattern())
			for range 300 {
				if nsn := g.next(rng); !r.matches([]byte(nsn)) {
					t.Errorf("%s number %s (+%s) does not match %s's general description", iso, nsn, r.cc, r.ISO)
				}
			}
		}
	}
}

// TestCallingCodesPrefixFree backs byCC: a table calling code is neither a
// prefix of another code phonenumbers knows nor has one as its prefix.
func TestCallingCodesPrefixFree(t *testing.T) {
	for code := range phonenumbers.GetSupportedCallingCodes() {
		s := strconv.Itoa(code)
		for i := range regions {
			cc := regions[i].cc
			if s != cc && (strings.HasPrefix(s, cc) || strings.HasPrefix(cc, s)) {
				t.Errorf("calling codes %s and %s overlap", cc, s)
			}
		}
	}
}

func TestRegionFor(t *testing.T) {
	for _, iso := range []string{"UA", "ua", "Ua", "gb", "KZ"} {
		r, ok := RegionFor(iso)
		if !ok || r.ISO != strings.ToUpper(iso) {
			t.Errorf("RegionFor(%q) = %v, %v", iso, r, ok)
		}
	}
	for _, iso := range []string{"", "U", "UAA", "ZZ", "IT", "001", "u\x00"} {
		if r, ok := RegionFor(iso); ok {
			t.Errorf("RegionFor(%q) = %s, want none", iso, r.ISO)
		}
	}
	isos := make([]string, len(regions))
	for i := range regions {
		isos[i] = regions[i].ISO
	}
	slices.Sort(isos)
	if len(slices.Compact(isos)) != len(regions) {
		t.Errorf("a region is listed twice: %v", isos)
	}
}

func TestValidRegion(t *testing.T) {
	for _, iso := range []string{"UA", "ua", "IT", "fr", "US"} {
		if !ValidRegion(iso) {
			t.Errorf("ValidRegion(%q) = false", iso)
		}
	}
	for _, iso := range []string{"", "ZZ", "XX", "001", "UAH", "U"} {
		if ValidRegion(iso) {
			t.Errorf("ValidRegion(%q) = true", iso)
		}
	}
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// pad formats k with n digits.
func pad(k, n int) string {
	s := strconv.Itoa(k)
	return strings.Repeat("0", n-len(s)) + s
}
