package phone

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// metadata returns phonenumbers' embedded metadata by region code.
var metadata = sync.OnceValue(func() map[string]*phonenumbers.PhoneMetadata {
	col, err := phonenumbers.MetadataCollection()
	if err != nil {
		panic(err)
	}
	m := make(map[string]*phonenumbers.PhoneMetadata, len(col.Metadata))
	for _, md := range col.Metadata {
		m[md.GetId()] = md
	}
	return m
})

func metadataFor(t testing.TB, iso string) *phonenumbers.PhoneMetadata {
	t.Helper()
	md := metadata()[iso]
	if md == nil {
		t.Fatalf("phonenumbers has no metadata for %s", iso)
	}
	return md
}

// whole compiles a metadata pattern the way phonenumbers matches it: the
// whole string.
func whole(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^(?:" + pattern + ")$")
}

// oracle is what phonenumbers makes of raw with iso as the default region:
// the E.164 digits and whether the number is valid.
func oracle(raw, iso string) (string, bool) {
	n, err := phonenumbers.Parse(raw, iso)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", false
	}
	return strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+"), true
}

// fast runs Fast on a string.
func fast(raw string, r *Region) (string, bool) {
	out, ok := Fast(nil, []byte(raw), r)
	return string(out), ok
}

// generator produces random digit strings matching a metadata pattern.
type generator struct {
	re *syntax.Regexp
}

func newGenerator(pattern string) generator {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		panic(err)
	}
	return generator{re: re}
}

func (g generator) next(rng *rand.Rand) string {
	return string(gen(rng, g.re, nil))
}

func gen(rng *rand.Rand, re *syntax.Regexp, b []byte) []byte {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			b = append(b, byte(r))
		}
	case syntax.OpCharClass:
		i := rng.IntN(len(re.Rune) / 2)
		lo, hi := re.Rune[2*i], re.Rune[2*i+1]
		b = append(b, byte(lo+rng.Int32N(hi-lo+1)))
	case syntax.OpCapture:
		b = gen(rng, re.Sub[0], b)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			b = gen(rng, sub, b)
		}
	case syntax.OpAlternate:
		b = gen(rng, re.Sub[rng.IntN(len(re.Sub))], b)
	case syntax.OpQuest:
		if rng.IntN(2) == 0 {
			b = gen(rng, re.Sub[0], b)
		}
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			lo, hi = 0, 3
		case syntax.OpPlus:
			lo, hi = 1, 3
		}
		if hi < 0 {
			hi = lo + 3
		}
		for range lo + rng.IntN(hi-lo+1) {
			b = gen(rng, re.Sub[0], b)
		}
	case syntax.OpEmptyMatch, syntax.OpBeginText, syntax.OpEndText, syntax.OpBeginLine, syntax.OpEndLine:
	default:
		panic("phone: cannot generate " + re.String())
	}
	return b
}
