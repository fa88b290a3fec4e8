package phone

import "math/bits"

// The fast path does not approximate libphonenumber: it replays the parts of
// its parsing algorithm that digits-only input can reach, with a copy of the
// metadata those parts read. For each region, that is the calling code, the
// international prefix, the national prefixes recognised when parsing, the
// possible lengths of a national significant number (NSN) and the general
// description pattern (a union of "leading digits, then so many digits"
// alternatives). TestRegionsMatchMetadata compares every entry with the
// metadata phonenumbers embeds, so a library upgrade that changes a country's
// plan fails the build instead of silently splitting the phone index.

// Region is the fast path's knowledge of one country: calling code, trunk
// prefix, national significant number length(s). Values come from RegionFor
// and are shared; do not modify them.
type Region struct {
	// ISO is the ISO 3166 alpha-2 code, upper case.
	ISO string

	cc    string     // calling code digits
	idd   string     // international prefix when it is not "00"
	trunk []string   // national prefixes, in the order libphonenumber's regexp tries them
	lens  uint32     // bit n: an NSN of n digits is possible
	local uint32     // bit n: n digits is a possible local-only (subscriber) number
	spans []span     // general description: an NSN that matches none is invalid
	first [10]uint32 // lengths of the spans open to each first digit, to skip spans quickly
	main  *Region    // the region whose metadata libphonenumber uses for numbers with this calling code
}

// span is one alternative of a general description: numbers whose first
// digits are in lead[0], lead[1], ... and whose length has its bit in lens.
type span struct {
	lead  [4]uint16 // bit d: digit d allowed at that position
	nlead int
	lens  uint32
}

// regions is the fast path's table. A region is here only if its metadata
// fits the replayed algorithm: a national prefix without capture groups or
// transform rule, an international prefix that is a literal, no valid
// number with a leading zero (E.164 would need the "Italian leading zero"),
// and the general description of its calling code covering every region
// that shares the code. Each row mirrors libphonenumber's PhoneMetadata; the
// comment is its generalDesc pattern.
var regions = [...]Region{
	// [89]\d{9}|[3-9]\d{8}
	{ISO: "UA", cc: "380", trunk: []string{"0"}, lens: lengths(9, 10), local: lengths(5, 6, 7),
		spans: []span{sp("[89]", 10, 10), sp("[3-9]", 9, 9)}},
	// 8\d{13}|[347-9]\d{9}
	{ISO: "RU", cc: "7", idd: "810", trunk: []string{"8"}, lens: lengths(10, 14), local: lengths(7),
		spans: []span{sp("8", 14, 14), sp("[347-9]", 10, 10)}},
	// 8\d{13}|[78]\d{9}
	{ISO: "KZ", cc: "7", idd: "810", trunk: []string{"8"}, lens: lengths(10, 14), local: lengths(5, 6, 7),
		spans: []span{sp("8", 14, 14), sp("[78]", 10, 10)}},
	// (?:[12]\d|33|44|902)\d{7}|8(?:0[0-79]\d{5,7}|[1-7]\d{9})|8(?:1[0-489]|[5-79]\d)\d{7}|
	// 8[1-79]\d{6,7}|8[0-79]\d{5}|8\d{5}
	{ISO: "BY", cc: "375", idd: "810", trunk: []string{"0", "80", "8"}, lens: lengths(6, 7, 8, 9, 10, 11), local: lengths(5),
		spans: []span{
			sp("[12]", 9, 9), sp("33", 9, 9), sp("44", 9, 9), sp("902", 10, 10),
			sp("80[0-79]", 8, 10), sp("8[1-7]", 11, 11), sp("81[0-489]", 10, 10), sp("8[5-79]", 10, 10),
			sp("8[1-79]", 8, 9), sp("8[0-79]", 7, 7), sp("8", 6, 6),
		}},
	// (?:[235-7]\d|[89]0)\d{6}
	{ISO: "MD", cc: "373", trunk: []string{"0"}, lens: lengths(8),
		spans: []span{sp("[235-7]", 8, 8), sp("[89]0", 8, 8)}},
	// (?:[3-57]\d\d|800)\d{6}
	{ISO: "GE", cc: "995", trunk: []string{"0"}, lens: lengths(9), local: lengths(6, 7),
		spans: []span{sp("[3-57]", 9, 9), sp("800", 9, 9)}},
	// (?:[1-489]\d|55|60|77)\d{6}
	{ISO: "AM", cc: "374", trunk: []string{"0"}, lens: lengths(8), local: lengths(5, 6),
		spans: []span{sp("[1-489]", 8, 8), sp("55", 8, 8), sp("60", 8, 8), sp("77", 8, 8)}},
	// 365\d{6}|(?:[124579]\d|60|88)\d{7}
	{ISO: "AZ", cc: "994", trunk: []string{"0"}, lens: lengths(9), local: lengths(7),
		spans: []span{sp("365", 9, 9), sp("[124579]", 9, 9), sp("60", 9, 9), sp("88", 9, 9)}},
	// (?:20|33|[5-9]\d)\d{7}
	{ISO: "UZ", cc: "998", lens: lengths(9),
		spans: []span{sp("20", 9, 9), sp("33", 9, 9), sp("[5-9]", 9, 9)}},
	// 8\d{9}|[235-9]\d{8}
	{ISO: "KG", cc: "996", trunk: []string{"0"}, lens: lengths(9, 10), local: lengths(5, 6),
		spans: []span{sp("8", 10, 10), sp("[235-9]", 9, 9)}},
	// (?:6|8\d\d)\d{7}|[1-9]\d{6}(?:\d{2})?|[26]\d{5}
	{ISO: "PL", cc: "48", lens: lengths(6, 7, 8, 9, 10),
		spans: []span{sp("6", 8, 8), sp("8", 10, 10), sp("[1-9]", 7, 7), sp("[1-9]", 9, 9), sp("[26]", 6, 6)}},
	// (?:[3469]\d|52|[78]0)\d{6}
	{ISO: "LT", cc: "370", trunk: []string{"0", "8"}, lens: lengths(8),
		spans: []span{sp("[3469]", 8, 8), sp("52", 8, 8), sp("[78]0", 8, 8)}},
	// (?:[268]\d|78|90)\d{6}
	{ISO: "LV", cc: "371", lens: lengths(8),
		spans: []span{sp("[268]", 8, 8), sp("78", 8, 8), sp("90", 8, 8)}},
	// 8\d{9}|[4578]\d{7}|(?:[3-8]\d|90)\d{5}
	{ISO: "EE", cc: "372", lens: lengths(7, 8, 10),
		spans: []span{sp("8", 10, 10), sp("[4578]", 8, 8), sp("[3-8]", 7, 7), sp("90", 7, 7)}},
	// [2579]\d{5,14}|49(?:[34]0|69|8\d)\d\d?|49(?:37|49|60|7[089]|9\d)\d{1,3}|
	// 49(?:2[024-9]|3[2-689]|7[1-7])\d{1,8}|(?:1|[368]\d|4[0-8])\d{3,13}|
	// 49(?:[015]\d|2[13]|31|[46][1-8])\d{1,9}
	{ISO: "DE", cc: "49", trunk: []string{"0"}, lens: lengths(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), local: lengths(2, 3),
		spans: []span{
			sp("[2579]", 6, 15),
			sp("49[34]0", 5, 6), sp("4969", 5, 6), sp("498", 5, 6),
			sp("4937", 5, 7), sp("4949", 5, 7), sp("4960", 5, 7), sp("497[089]", 5, 7), sp("499", 5, 7),
			sp("492[024-9]", 5, 12), sp("493[2-689]", 5, 12), sp("497[1-7]", 5, 12),
			sp("1", 4, 14), sp("[368]", 5, 15), sp("4[0-8]", 5, 15),
			sp("49[015]", 5, 13), sp("492[13]", 5, 13), sp("4931", 5, 13), sp("49[46][1-8]", 5, 13),
		}},
	// [1-357-9]\d{9}|[18]\d{8}|8\d{6}
	{ISO: "GB", cc: "44", trunk: []string{"0", "180020"}, lens: lengths(7, 9, 10), local: lengths(4, 5, 6, 8),
		spans: []span{sp("[1-357-9]", 10, 10), sp("[18]", 9, 9), sp("8", 7, 7)}},
	// [2-9]\d{9}|3\d{6}
	{ISO: "US", cc: "1", idd: "011", trunk: []string{"1"}, lens: lengths(10), local: lengths(7),
		spans: []span{sp("[2-9]", 10, 10), sp("3", 7, 7)}},
	// [2-9]\d{9}|3\d{6}
	{ISO: "CA", cc: "1", idd: "011", trunk: []string{"1"}, lens: lengths(7, 10),
		spans: []span{sp("[2-9]", 10, 10), sp("3", 7, 7)}},
}

// mainRegion names the region libphonenumber takes a shared calling code's
// metadata from (its main_country_for_code).
var mainRegion = map[string]string{"7": "RU", "1": "US", "44": "GB"}

// byCC maps the first three digits of an international number to the index
// in regions of the main region of its calling code, plus one; 0 means the
// calling code is not in the table. Calling codes are prefix-free, so three
// digits decide any code of one to three.
var byCC [1000]uint8

func init() {
	for i := range regions {
		r := &regions[i]
		for _, s := range r.spans {
			for d := range r.first {
				if s.lead[0]&(1<<d) != 0 {
					r.first[d] |= s.lens
				}
			}
		}
		if iso, shared := mainRegion[r.cc]; shared && iso != r.ISO {
			continue
		}
		r.main = r
		start, end := ccRange(r.cc)
		for k := start; k < end; k++ {
			if byCC[k] != 0 {
				panic("phone: calling code " + r.cc + " listed twice")
			}
			byCC[k] = uint8(i + 1)
		}
	}
	for i := range regions {
		r := &regions[i]
		if r.main == nil {
			m, _ := RegionFor(mainRegion[r.cc])
			r.main = m
		}
	}
}

// ccRange returns the span of byCC keys that start with calling code cc.
func ccRange(cc string) (start, end int) {
	start, width := 0, 1000
	for i := 0; i < len(cc); i++ {
		width /= 10
		start += int(cc[i]-'0') * width
	}
	return start, start + width
}

// RegionFor returns the fast-path table entry for an ISO 3166 alpha-2 code
// (case-insensitive); ok=false if the fast path has no entry.
func RegionFor(iso string) (*Region, bool) {
	if len(iso) != 2 {
		return nil, false
	}
	a, b := upper(iso[0]), upper(iso[1])
	for i := range regions {
		if regions[i].ISO[0] == a && regions[i].ISO[1] == b {
			return &regions[i], true
		}
	}
	return nil, false
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// regionOf returns the main region of the calling code d starts with and
// the code's length.
func regionOf(d []byte) (*Region, int) {
	if len(d) < 3 {
		return nil, 0
	}
	i := byCC[int(d[0]-'0')*100+int(d[1]-'0')*10+int(d[2]-'0')]
	if i == 0 {
		return nil, 0
	}
	r := &regions[i-1]
	return r, len(r.cc)
}

// matches reports whether nsn matches r's general description, the
// generalDesc national number pattern of libphonenumber.
func (r *Region) matches(nsn []byte) bool {
	if len(nsn) == 0 {
		return false
	}
	bit := uint32(1) << len(nsn)
	if r.first[nsn[0]-'0']&bit == 0 {
		return false
	}
	for i := range r.spans {
		s := &r.spans[i]
		if s.lens&bit != 0 && s.leads(nsn) {
			return true
		}
	}
	return false
}

func (s *span) leads(nsn []byte) bool {
	for i, m := range s.lead[:s.nlead] {
		if m&(1<<(nsn[i]-'0')) == 0 {
			return false
		}
	}
	return true
}

// lengthResult mirrors libphonenumber's ValidationResult for an NSN length.
type lengthResult uint8

const (
	isPossible lengthResult = iota
	isPossibleLocalOnly
	tooShort
	tooLong
	invalidLength
)

// testLength is libphonenumber's testNumberLength for the general
// description.
func (r *Region) testLength(n int) lengthResult {
	switch {
	case r.local&(1<<n) != 0:
		return isPossibleLocalOnly
	case n < bits.TrailingZeros32(r.lens):
		return tooShort
	case n >= bits.Len32(r.lens):
		return tooLong
	case r.lens&(1<<n) != 0:
		return isPossible
	}
	return invalidLength
}

// trunkLen returns the length of the national prefix n starts with, 0 if
// none: the match of libphonenumber's national_prefix_for_parsing.
func (r *Region) trunkLen(n []byte) int {
	for _, t := range r.trunk {
		if hasPrefix(n, t) {
			return len(t)
		}
	}
	return 0
}

// stripTrunk is libphonenumber's maybeStripNationalPrefixAndCarrierCode: it
// removes the national prefix n starts with unless n is a valid-looking
// number and what would remain is not.
func (r *Region) stripTrunk(n []byte) ([]byte, bool) {
	k := r.trunkLen(n)
	if k == 0 || r.matches(n) && !r.matches(n[k:]) {
		return n, false
	}
	return n[k:], true
}

// nationalNumber is the last step of libphonenumber's parseHelper: strip a
// national prefix only when what remains still has a possible length, so a
// short number that merely starts with the prefix keeps it.
func (r *Region) nationalNumber(n []byte) []byte {
	if rest, ok := r.stripTrunk(n); ok {
		if res := r.testLength(len(rest)); res == isPossible || res == tooLong {
			return rest
		}
	}
	return n
}

// hasPrefix compares byte by byte: prefixes here are one to six digits, too
// short to pay for a call to memequal.
func hasPrefix(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if b[i] != prefix[i] {
			return false
		}
	}
	return true
}

// lengths returns a set of lengths, bit n for length n.
func lengths(ns ...int) uint32 {
	var m uint32
	for _, n := range ns {
		m |= 1 << n
	}
	return m
}

// sp builds a span from leading digits written as in the metadata's
// patterns (digits, \d and classes like [1-357-9]) and an inclusive range of
// total lengths. It panics on a malformed pattern: the table is static, so a
// typo fails every test at package initialisation.
func sp(lead string, minLen, maxLen int) span {
	var s span
	for i := 0; i < len(lead); {
		var m uint16
		switch c := lead[i]; {
		case c >= '0' && c <= '9':
			m, i = 1<<(c-'0'), i+1
		case c == '\\' && i+1 < len(lead) && lead[i+1] == 'd':
			m, i = 0x3ff, i+2
		case c == '[':
			i++
			for i < len(lead) && lead[i] != ']' {
				lo, hi := lead[i], lead[i]
				if i+2 < len(lead) && lead[i+1] == '-' {
					hi, i = lead[i+2], i+2
				}
				if lo < '0' || hi > '9' || lo > hi {
					panic("phone: bad span " + lead)
				}
				for d := lo; d <= hi; d++ {
					m |= 1 << (d - '0')
				}
				i++
			}
			if i == len(lead) {
				panic("phone: bad span " + lead)
			}
			i++
		default:
			panic("phone: bad span " + lead)
		}
		if s.nlead == len(s.lead) {
			panic("phone: span too deep " + lead)
		}
		s.lead[s.nlead] = m
		s.nlead++
	}
	if minLen < s.nlead || maxLen < minLen || maxLen > 17 {
		panic("phone: bad span lengths for " + lead)
	}
	for n := minLen; n <= maxLen; n++ {
		s.lens |= 1 << n
	}
	return s
}
