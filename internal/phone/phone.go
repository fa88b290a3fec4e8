// Package phone turns caller numbers and CRM phones into the keys of the
// phone index: E.164 digits without the '+'.
//
// Two paths produce the same key. The route path (Normalize, Fast) runs on
// a live call, so it tries a hand-written, allocation-free reading of the
// shapes a PBX sends (about 20 ns) and calls phonenumbers (tens of
// microseconds, some 60 allocations) only when that declines. The import
// path (Ingest) runs on messy CRM data: labels, extensions, numbers
// phonenumbers' metadata does not know yet. It reads them with phonenumbers
// first and heuristics after; for any input that reading and the fast
// path's give the same key, which FuzzFastAgreesWithPhonenumbers and the
// differential test check, so Ingest too takes the fast path first.
package phone

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/nyaruka/phonenumbers"
)

// SuffixLen is the length of the national-suffix key.
const SuffixLen = 9

// maxInput is phonenumbers' limit on the text it parses; anything longer
// is no phone number.
const maxInput = 250

// ValidRegion reports whether phonenumbers knows the region (used to
// validate a tenant's default_country). iso is case-insensitive.
func ValidRegion(iso string) bool {
	return len(iso) == 2 && phonenumbers.GetSupportedRegions()[strings.ToUpper(iso)]
}

// Normalize returns the E.164 digits of a caller number: the fast path
// first, then phonenumbers. iso may be "". It returns exactly what Ingest
// returns for the same arguments, only faster for the common shapes; errors
// are EINVALID for an unknown iso or a raw that is no phone number.
func Normalize(raw, iso string) (string, error) {
	c, err := countryFor(iso)
	if err != nil {
		return "", err
	}
	if c.fast && len(raw) <= maxInput {
		var in [maxInput]byte
		var buf [maxE164]byte
		if out, ok := Fast(buf[:0], in[:copy(in[:], raw)], c.region); ok {
			return string(out), nil
		}
	}
	return c.slow(raw)
}

// Ingest normalizes a messy CRM phone at import/sync time. A label before
// the number ("tel:", "моб.") and a trailing extension ("ext. 12", "доб. 12",
// "x12") are dropped, then phonenumbers parses the rest with iso (may be "")
// as the default region, and a valid number gives its E.164 digits.
// Otherwise digit heuristics apply, separators ignored: the fast path's
// reading if it has one, so that the route path finds the number; a '+' or
// "00" number as international (8 to 15 digits); a national number with
// iso's calling code in place of its trunk prefix; and without iso the
// national digits less a trunk prefix ('0', or '8' before ten digits),
// which share their Suffix with the international form. It returns EINVALID
// for an unknown iso, letters inside the number, other stray characters,
// and fewer than 7 or more than 15 digits.
//
// The common shapes are read by the fast path, as Normalize reads them:
// whenever it answers, its answer is the reading above (the fuzz and
// differential tests hold the two equal), at a thousandth of the cost, and
// every call event, sync page and import row passes through here.
func Ingest(raw, iso string) (string, error) { return Normalize(raw, iso) }

// ingestSlow is the reading Ingest's doc describes, without the fast path:
// phonenumbers, then the heuristics. The tests compare Normalize with it.
func ingestSlow(raw, iso string) (string, error) {
	c, err := countryFor(iso)
	if err != nil {
		return "", err
	}
	return c.slow(raw)
}

// Suffix returns the national-suffix key of a normalized phone: its last
// SuffixLen digits, or all of it if shorter.
func Suffix(phone string) string {
	if len(phone) > SuffixLen {
		return phone[len(phone)-SuffixLen:]
	}
	return phone
}

// Same reports whether an indexed phone is a caller's normalized number:
// the same digits, or a national number stored without its country code
// (see domain.IndexEntry.Phone) that the caller's number ends with. At
// least SuffixLen digits must match, so short fragments never do. Routing
// and call events both decide "the same client" by it.
func Same(indexed, number string) bool { return same(indexed, number) }

// SameBytes is Same for a caller held as bytes; it does not allocate.
func SameBytes(indexed string, number []byte) bool { return same(indexed, number) }

func same[T string | []byte](indexed string, number T) bool {
	return indexed == string(number) ||
		len(indexed) >= SuffixLen && len(indexed) < len(number) && string(number[len(number)-len(indexed):]) == indexed
}

// SuffixBytes is Suffix for a byte slice; it returns a sub-slice and never
// allocates.
func SuffixBytes(phone []byte) []byte {
	if len(phone) > SuffixLen {
		return phone[len(phone)-SuffixLen:]
	}
	return phone
}

// country is a default region as both paths need it.
type country struct {
	iso    string  // upper case, "" for none
	region *Region // nil without iso or when the fast path has no entry
	fast   bool    // Fast may run: there is no iso, or the table knows it
}

func countryFor(iso string) (country, error) {
	if iso == "" {
		return country{fast: true}, nil
	}
	if !ValidRegion(iso) {
		return country{}, domain.Errorf(domain.EINVALID, "phone: unknown country %q", iso)
	}
	// Without a table entry Fast would have to run with no region, and
	// read as international what phonenumbers reads as national.
	r, ok := RegionFor(iso)
	return country{iso: strings.ToUpper(iso), region: r, fast: ok}, nil
}

// slow is Ingest: phonenumbers, then the heuristics.
func (c country) slow(raw string) (string, error) {
	if len(raw) > maxInput {
		return "", domain.Errorf(domain.EINVALID, "phone: number is %d bytes long, more than %d", len(raw), maxInput)
	}
	if strings.TrimSpace(raw) == "" {
		return "", domain.Errorf(domain.EINVALID, "phone: empty number")
	}
	// A label before the number ("tel:", "моб.") is fine and an
	// extension after it is dropped, but letters inside it are refused
	// rather than dialled as on a keypad, as phonenumbers would.
	body := extension.ReplaceAllLiteralString(raw, "")
	body = body[max(strings.IndexFunc(body, startsNumber), 0):]
	if strings.IndexFunc(body, unicode.IsLetter) >= 0 {
		return "", domain.Errorf(domain.EINVALID, "phone: %q contains letters", raw)
	}
	if n, err := phonenumbers.Parse(body, c.iso); err == nil && phonenumbers.IsValidNumber(n) {
		return strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+"), nil
	}
	return c.heuristic(raw, body)
}

func startsNumber(r rune) bool { return r == '+' || '0' <= r && r <= '9' }

// extension matches an extension at the end of a CRM phone.
var extension = regexp.MustCompile(`(?i)[\s,;]*(?:ext\.?|extension|доб\.?|вн\.?|x|#)\s*\d{1,6}\s*$`)

// heuristic keeps a number phonenumbers rejects (a range newer than its
// metadata, a typo the CRM user will fix later) as the key the route path
// would compute for it. body is raw from its first digit or '+', without
// an extension.
func (c country) heuristic(raw, body string) (string, error) {
	num := make([]byte, 0, len(body))
	plus := false
	for _, ch := range body {
		switch {
		case '0' <= ch && ch <= '9':
			num = append(num, byte(ch))
		case ch == '+' && !plus && len(num) == 0:
			plus = true
		case strings.ContainsRune("-.()/", ch) || unicode.IsSpace(ch):
		default:
			return "", domain.Errorf(domain.EINVALID, "phone: %q contains %q", raw, ch)
		}
	}
	if len(num) < minDigits {
		return "", domain.Errorf(domain.EINVALID, "phone: %q has %d digits, want at least %d", raw, len(num), minDigits)
	}
	if c.fast {
		// Through Fast, a number the route path reads is stored under the
		// key the route path computes for it.
		in := num
		if plus {
			in = append([]byte{'+'}, num...)
		}
		var buf [maxE164]byte
		if out, ok := Fast(buf[:0], in, c.region); ok {
			return string(out), nil
		}
	}
	var intl []byte
	switch {
	case plus:
		intl = num
	case num[0] == '0' && num[1] == '0':
		intl = num[2:]
	}
	if intl != nil {
		if intl[0] == '0' {
			return "", domain.Errorf(domain.EINVALID, "phone: %q has no calling code after the international prefix", raw)
		}
		if len(intl) < 8 || len(intl) > maxE164 {
			return "", domain.Errorf(domain.EINVALID, "phone: %q has %d digits after the international prefix, want 8 to 15", raw, len(intl))
		}
		return string(intl), nil
	}
	if len(num) > maxE164 {
		return "", domain.Errorf(domain.EINVALID, "phone: %q has %d digits, more than 15", raw, len(num))
	}
	if c.iso == "" {
		switch {
		case num[0] == '0', num[0] == '8' && len(num) == 11:
			num = num[1:]
		}
		return string(num), nil
	}
	nsn := string(num)
	if trunk := phonenumbers.GetNddPrefixForRegion(c.iso, true); trunk != "" {
		nsn = strings.TrimPrefix(nsn, trunk)
	}
	out := strconv.Itoa(phonenumbers.GetCountryCodeForRegion(c.iso)) + nsn
	if len(out) > maxE164 {
		return "", domain.Errorf(domain.EINVALID, "phone: %q is %d digits with its calling code, more than 15", raw, len(out))
	}
	return out, nil
}
