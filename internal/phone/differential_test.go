package phone

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// number is one national significant number of a table region.
type number struct {
	region *Region
	nsn    string
	random bool // pseudo-random digits, mostly invalid
}

// numberTypes are the types phonenumbers has example numbers and patterns
// for.
var numberTypes = []phonenumbers.PhoneNumberType{
	phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
	phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP,
	phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN,
	phonenumbers.VOICEMAIL,
}

// corpus returns, for every table region, its example numbers, numbers
// generated from each type's pattern (mostly valid) and pseudo-random
// numbers of each possible length (mostly not).
func corpus(rng *rand.Rand, perType, random int) []number {
	var out []number
	for i := range regions {
		r := &regions[i]
		md := metadata()[r.ISO]
		for _, typ := range numberTypes {
			if n := phonenumbers.GetExampleNumberForType(r.ISO, typ); n != nil {
				out = append(out, number{region: r, nsn: phonenumbers.GetNationalSignificantNumber(n)})
			}
		}
		descs := []*phonenumbers.PhoneNumberDesc{
			md.GetFixedLine(), md.GetMobile(), md.GetTollFree(), md.GetPremiumRate(),
			md.GetSharedCost(), md.GetVoip(), md.GetPersonalNumber(), md.GetPager(),
			md.GetUan(), md.GetVoicemail(),
		}
		for _, d := range descs {
			p := d.GetNationalNumberPattern()
			if p == "" || p == "NA" {
				continue
			}
			g := newGenerator(p)
			for range perType {
				out = append(out, number{region: r, nsn: g.next(rng)})
			}
		}
		var lens []int
		for n := range 32 {
			if r.lens&(1<<n) != 0 {
				lens = append(lens, n)
			}
		}
		for range random {
			b := []byte{byte('1' + rng.IntN(9))}
			for n := lens[rng.IntN(len(lens))]; len(b) < n; {
				b = append(b, byte('0'+rng.IntN(10)))
			}
			out = append(out, number{region: r, nsn: string(b), random: true})
		}
	}
	return out
}

// shapes returns the ways a PBX or a person writes n when r (nil for none)
// is the default region: the digit-only shapes, and with formatted also
// those with separators and phonenumbers' own formats.
func shapes(n number, r *Region, formatted bool) []string {
	cc, nsn := n.region.cc, n.nsn
	out := []string{
		"+" + cc + nsn,
		"00" + cc + nsn,
		cc + nsn,
		"+" + cc + "0" + nsn,        // a trunk prefix after the calling code
		cc + "0" + nsn,              // ...without the '+'
		"+" + cc + nsn[:len(nsn)-1], // a digit short
		"+" + cc + nsn + "1",        // a digit long
	}
	split := min(2, len(nsn))
	if formatted {
		out = append(out,
			"+"+cc+" ("+nsn[:split]+") "+dashed(nsn[split:]),
			"(+"+cc+") "+spaced(nsn),
			"00 "+cc+" "+dashed(nsn),
			cc+"."+nsn,
			"+"+cc+" (0)"+nsn, // as the British write it
		)
		if pn, err := phonenumbers.Parse("+"+cc+nsn, ""); err == nil {
			out = append(out, phonenumbers.Format(pn, phonenumbers.INTERNATIONAL))
			if r != nil && r.cc == cc {
				out = append(out, phonenumbers.Format(pn, phonenumbers.NATIONAL))
			}
		}
	}
	if r == nil {
		return out
	}
	if r.idd != "" {
		out = append(out, r.idd+cc+nsn)
	}
	// National shapes, also of a foreign number: phonenumbers reads those
	// as national numbers of r, so must Fast.
	out = append(out, nsn, nsn[:len(nsn)-1], nsn+"0")
	for _, t := range r.trunk {
		out = append(out, t+nsn)
	}
	if formatted {
		out = append(out, spaced(nsn), "("+nsn[:split]+") "+dashed(nsn[split:]))
		for _, t := range r.trunk {
			out = append(out, t+" "+spaced(nsn), t+" ("+nsn[:split]+") "+dashed(nsn[split:]))
		}
	}
	return out
}

// spaced writes digits in groups of three.
func spaced(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 3 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+3, len(s))])
	}
	return b.String()
}

// dashed writes digits as 123-45-67.
func dashed(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:3])
	for i := 3; i < len(s); i += 2 {
		b.WriteByte('-')
		b.WriteString(s[i:min(i+2, len(s))])
	}
	return b.String()
}

// mustAnswer reports whether Fast may not decline raw when phonenumbers
// reads it as the valid number e164: Fast replays phonenumbers for every
// input of digits and separators except these it declines by design. (The
// calling code of e164 can be outside the table when a national number of a
// table region starts with its international prefix, as RU's 810.)
func mustAnswer(raw, e164 string) bool {
	digits := 0
	for i := 0; i < len(raw); i++ {
		if '0' <= raw[i] && raw[i] <= '9' {
			digits++
		}
	}
	plusZero := false // phonenumbers retries "+0..." without the '+'
	if i := strings.IndexByte(raw, '+'); i >= 0 {
		plusZero = strings.HasPrefix(strings.TrimLeft(raw[i+1:], " -.()/"), "0")
	}
	inTable, _ := regionOf([]byte(e164))
	return digits >= minDigits && digits <= maxDigits && len(e164) <= maxE164 && !plusZero && inTable != nil
}

// TestFastDifferential runs Fast and phonenumbers on a corpus of numbers of
// every table region, written in every shape, with every table region and
// none as the default: when phonenumbers calls a number valid, Fast must
// give its answer, and it must never give another.
func TestFastDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	perType, random, foreign := 6, 100, 40
	if testing.Short() || raceEnabled {
		perType, random, foreign = 2, 20, 5
	}
	numbers := corpus(rng, perType, random)
	defaults := []*Region{nil}
	for i := range regions {
		defaults = append(defaults, &regions[i])
	}
	var checked, valid, answered int
	for _, r := range defaults {
		iso := ""
		if r != nil {
			iso = r.ISO
		}
		for _, n := range numbers {
			// Every number of the region itself, a sample of the rest.
			if (r == nil || r.cc != n.region.cc) && rng.IntN(len(numbers)) >= foreign {
				continue
			}
			for _, raw := range shapes(n, r, !n.random) {
				want, ok := oracle(raw, iso)
				got, fastOK := fast(raw, r)
				checked++
				if ok {
					valid++
				}
				if fastOK {
					answered++
				}
				switch {
				case fastOK && ok && got != want:
					t.Errorf("Fast(%q, %s) = %s, phonenumbers %s", raw, iso, got, want)
				case ok && !fastOK && mustAnswer(raw, want):
					t.Errorf("Fast(%q, %s) declined, phonenumbers says %s", raw, iso, want)
				}
			}
		}
	}
	t.Logf("%d inputs, %d valid to phonenumbers, %d answered by Fast", checked, valid, answered)
	if valid*5 < checked {
		t.Errorf("only %d of %d inputs valid: the corpus no longer tests agreement", valid, checked)
	}
}

// TestFastRandomDigits runs Fast and phonenumbers on digit strings that
// start like numbers do (a '+', an international or trunk prefix, a calling
// code, a code and a trunk prefix) and go on at random, to probe the edges
// between readings that the corpus of valid numbers does not reach.
func TestFastRandomDigits(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	inputs := 100_000
	if testing.Short() || raceEnabled {
		inputs = 5_000
	}
	prefixes := []string{"", "+", "00", "810", "011", "8", "0", "1", "80", "180020"}
	for i := range regions {
		cc := regions[i].cc
		prefixes = append(prefixes, cc, "+"+cc, "00"+cc, cc+"0", cc+"8", "+"+cc+"0", cc+cc)
	}
	var valid, answered int
	b := make([]byte, 0, 32)
	for range inputs {
		b = append(b[:0], prefixes[rng.IntN(len(prefixes))]...)
		for n := 4 + rng.IntN(12); n > 0; n-- {
			b = append(b, byte('0'+rng.IntN(10)))
		}
		raw := string(b)
		r, iso := fuzzRegion(rng.IntN(len(regions) + 1))
		got, ok := fast(raw, r)
		want, pnOK := oracle(raw, iso)
		if pnOK {
			valid++
			if ok {
				answered++
			}
		}
		switch {
		case ok && pnOK && got != want:
			t.Errorf("Fast(%q, %s) = %s, phonenumbers %s", raw, iso, got, want)
		case pnOK && !ok && mustAnswer(raw, want):
			t.Errorf("Fast(%q, %s) declined, phonenumbers says %s", raw, iso, want)
		}
	}
	t.Logf("%d inputs, %d valid to phonenumbers, %d of them answered by Fast", inputs, valid, answered)
}

// TestFastExamples checks every example number phonenumbers has for a table
// region in the shapes the brief names, so a regression shows the plain
// case rather than a random one.
func TestFastExamples(t *testing.T) {
	for i := range regions {
		r := &regions[i]
		for _, typ := range numberTypes {
			n := phonenumbers.GetExampleNumberForType(r.ISO, typ)
			if n == nil {
				continue
			}
			nsn := phonenumbers.GetNationalSignificantNumber(n)
			want := strconv.Itoa(int(n.GetCountryCode())) + nsn
			inputs := []string{"+" + want, "00" + want, want, nsn, phonenumbers.Format(n, phonenumbers.NATIONAL)}
			if r.idd != "" {
				inputs = append(inputs, r.idd+want)
			}
			for _, tr := range r.trunk {
				inputs = append(inputs, tr+nsn)
			}
			for _, raw := range inputs {
				pn, valid := oracle(raw, r.ISO)
				got, ok := fast(raw, r)
				if valid && pn == want && (!ok || got != want) {
					t.Errorf("%s %v example: Fast(%q) = %q, %v; want %s", r.ISO, typ, raw, got, ok, want)
				}
			}
		}
	}
}
