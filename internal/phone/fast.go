package phone

// maxE164 is the longest E.164 number, calling code included.
const maxE164 = 15

// maxDigits bounds the digits Fast reads: a three-digit international
// prefix before a full-length E.164 number.
const maxDigits = 3 + maxE164

// minDigits is the fewest digits Fast reads. Shorter are internal
// extensions and service numbers, and Ingest refuses them.
const minDigits = 7

// Fast appends the E.164 digits (no '+') of raw to dst and returns the
// extended slice and true; it returns dst unchanged and false whenever it
// cannot be sure (then callers fall back to Normalize). r may be nil (tenant
// without default country). It never allocates when cap(dst)-len(dst) >= 15.
//
// Fast accepts 7 to 18 ASCII digits, the separators " -.()/" and one '+'
// before the first digit. It reads them the way phonenumbers.Parse would
// with r as the default region and answers only when the national
// significant number it finds matches the general description of its
// calling code, so whenever phonenumbers calls a number valid, Fast gives
// the same digits or declines. Where phonenumbers would reject the input it
// also takes "00" as an international prefix in every region and, when a
// number is no national number of r, reads it as a calling code of the
// table followed by a national number.
//
// It is not generic on purpose: a generic instantiation called across
// packages defeats escape analysis, and the caller's stack buffer for dst
// would move to the heap.
func Fast(dst, raw []byte, r *Region) ([]byte, bool) {
	if len(raw) > maxInput {
		return dst, false
	}
	var buf [maxDigits]byte
	n, plus, ok := scan(&buf, raw)
	if !ok || n < minDigits {
		return dst, false
	}
	m, nsn, ok := parse(buf[:n], plus, r)
	if !ok || len(m.cc)+len(nsn) > maxE164 {
		return dst, false
	}
	dst = append(dst, m.cc...)
	return append(dst, nsn...), true
}

// scan copies the digits of raw into buf and reports whether raw had a
// leading '+'. It fails on any other byte, on an empty number and on more
// digits than any number Fast can answer for.
func scan(buf *[maxDigits]byte, raw []byte) (n int, plus, ok bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch class[c] {
		case digit:
			if n == len(buf) {
				return 0, false, false
			}
			buf[n] = c
			n++
		case separator:
		case plusSign:
			if n > 0 || plus {
				return 0, false, false
			}
			plus = true
		default:
			return 0, false, false
		}
	}
	return n, plus, n > 0
}

// Byte classes for scan; a table beats a switch on every byte.
const (
	other uint8 = iota
	digit
	separator
	plusSign
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = digit
	}
	for _, c := range " -.()/" {
		t[c] = separator
	}
	t['+'] = plusSign
	return t
}()

// parse splits the digits d into the region of their calling code and the
// national significant number, following the order of phonenumbers'
// parseHelper: '+', the region's international prefix, the region's own
// calling code, then a national number.
func parse(d []byte, plus bool, r *Region) (*Region, []byte, bool) {
	switch {
	case plus:
		// After "+0" phonenumbers retries without the '+', a reading
		// not worth replaying: no calling code starts with 0.
		return international(d)
	case r != nil && r.idd != "" && isIDD(d, r.idd):
		return international(d[len(r.idd):])
	case isIDD(d, "00"):
		// The region's own prefix, or one phonenumbers does not know
		// for it (RU, US...): no table region has a national number
		// starting with "00", so the number is invalid to phonenumbers
		// and reading it as international disagrees with nothing.
		return international(d[2:])
	case r == nil:
		return international(d)
	}
	own := hasPrefix(d, r.cc)
	if own {
		if rest, ok := r.ccInFront(d); ok {
			nsn := r.main.nationalNumber(rest)
			return r.main, nsn, r.main.matches(nsn)
		}
	}
	if nsn := r.nationalNumber(d); r.main.matches(nsn) {
		return r.main, nsn, true
	}
	if own {
		return nil, nil, false
	}
	// Not a national number, so phonenumbers calls it invalid; a PBX
	// showing a foreign caller often drops the prefix.
	return international(d)
}

// isIDD reports whether d starts with the international prefix idd as
// libphonenumber's parsePrefixAsIdd sees it: a calling code, which never
// starts with 0, must follow.
func isIDD(d []byte, idd string) bool {
	return hasPrefix(d, idd) && (len(d) == len(idd) || d[len(idd)] != '0')
}

// international reads d as a calling code followed by a national number.
func international(d []byte) (*Region, []byte, bool) {
	m, n := regionOf(d)
	if m == nil {
		return nil, nil, false
	}
	nsn := m.nationalNumber(d[n:])
	return m, nsn, m.matches(nsn)
}

// ccInFront is the branch of libphonenumber's maybeExtractCountryCode for a
// number d that starts with r's own calling code: the code is taken off when
// the number is too long to be national, or when d is not a valid-looking
// national number but what follows the code (less a national prefix) is.
// It returns what follows the code.
func (r *Region) ccInFront(d []byte) ([]byte, bool) {
	rest, _ := r.stripTrunk(d[len(r.cc):])
	if r.testLength(len(d)) == tooLong || !r.matches(d) && r.matches(rest) {
		return rest, true
	}
	return nil, false
}
