package phone

import (
	"bytes"
	"strings"
	"testing"
)

// fastCases are the shapes a PBX sends, per default region; want "" means
// Fast must decline.
var fastCases = []struct {
	iso, raw, want string
}{
	// Ukraine: trunk 0, international prefix 00.
	{"UA", "380671234567", "380671234567"},
	{"UA", "+380671234567", "380671234567"},
	{"UA", "+380 (67) 123-45-67", "380671234567"},
	{"UA", "(+380) 67 123 45 67", "380671234567"},
	{"UA", "+380.67.123.45.67", "380671234567"},
	{"UA", "+380/67/1234567", "380671234567"},
	{"UA", "0671234567", "380671234567"},
	{"UA", "067 123 45 67", "380671234567"},
	{"UA", "00380671234567", "380671234567"},
	{"UA", "671234567", "380671234567"},
	{"UA", "+380 0671234567", "380671234567"},   // trunk after the calling code
	{"UA", "3800671234567", "380671234567"},     // the same without '+'
	{"UA", "0800123456", "380800123456"},        // toll free
	{"UA", "+79161234567", "79161234567"},       // foreign
	{"UA", "0079161234567", "79161234567"},      // foreign via 00
	{"UA", "79161234567", "79161234567"},        // foreign without a prefix
	{"UA", "067123456", ""},                     // one digit short
	{"UA", "06712345678", ""},                   // one digit long
	{"UA", "8 916 123-45-67", ""},               // RU trunk means nothing here
	{"UA", "000380671234567", ""},               // no calling code starts with 0
	{"UA", "+0671234567", ""},                   // phonenumbers retries without '+': not replayed
	{"UA", "+00380671234567", ""},               // likewise
	{"UA", "++380671234567", ""},                // one '+' only
	{"UA", "380+671234567", ""},                 // '+' after a digit
	{"UA", "+380 67 123 45 67 ext 12", ""},      // letters
	{"UA", "+380671234567#", ""},                // '#'
	{"UA", "*380671234567", ""},                 // '*'
	{"UA", "380671234567;", ""},                 // ';'
	{"UA", "+380\t671234567", ""},               // tab
	{"UA", "+380 67 123 45 67\u00a0", ""},       // non-ASCII space
	{"UA", "٣٨٠٦٧١٢٣٤٥٦٧", ""},                  // non-ASCII digits
	{"UA", "anonymous", ""},                     // hidden caller
	{"UA", "", ""},                              // empty
	{"UA", "+", ""},                             // no digits
	{"UA", "123", ""},                           // internal extension
	{"UA", "+999 123456789", ""},                // unassigned calling code
	{"UA", "+39 06 6982 1234", ""},              // calling code not in the table
	{"UA", "+380 12 345 67 89 01 23 45 67", ""}, // more than 18 digits
	// Russia: trunk 8, international prefix 810.
	{"RU", "89161234567", "79161234567"},
	{"RU", "8 916 123-45-67", "79161234567"},
	{"RU", "8 (916) 123-45-67", "79161234567"},
	{"RU", "+7 916 1234567", "79161234567"},
	{"RU", "79161234567", "79161234567"},
	{"RU", "9161234567", "79161234567"},
	{"RU", "8 800 123 45 67", "78001234567"},
	{"RU", "8 10 380 67 123 45 67", "380671234567"},
	{"RU", "00380671234567", "380671234567"},
	{"RU", "7012345678", "77012345678"}, // a Kazakh number dialled as a Russian one
	{"RU", "0671234567", ""},
	// Kazakhstan shares +7 with Russia.
	{"KZ", "8 701 123 45 67", "77011234567"},
	{"KZ", "7011234567", "77011234567"},
	{"KZ", "77011234567", "77011234567"},
	{"KZ", "8 916 123-45-67", "79161234567"},
	{"KZ", "9161234567", "79161234567"},
	{"KZ", "+7 727 258 3456", "77272583456"},
	// Belarus: trunk 0, 8 or 80; international prefix 810.
	{"BY", "+375 29 123-45-67", "375291234567"},
	{"BY", "8 029 123 45 67", "375291234567"},
	{"BY", "029 1234567", "375291234567"},
	{"BY", "291234567", "375291234567"},
	{"BY", "8 10 7 916 123 45 67", "79161234567"},
	// Poland: no trunk prefix.
	{"PL", "48 512 345 678", "48512345678"},
	{"PL", "512345678", "48512345678"},
	{"PL", "+48 22 123 45 67", "48221234567"},
	{"PL", "0048 22 123 45 67", "48221234567"},
	{"PL", "481234567", "48481234567"}, // area code 48 (Radom), not the calling code
	{"PL", "0512345678", ""},
	// United States: trunk 1, international prefix 011.
	{"US", "+1 (650) 253-0000", "16502530000"},
	{"US", "650-253-0000", "16502530000"},
	{"US", "1 650 253 0000", "16502530000"},
	{"US", "16502530000", "16502530000"},
	{"US", "011 380 67 123 45 67", "380671234567"},
	{"US", "00380671234567", "380671234567"},
	{"US", "253-0000", ""}, // local-only: needs the area code
	// Canada shares +1.
	{"CA", "613 555 0123", "16135550123"},
	{"CA", "1 613 555 0123", "16135550123"},
	// United Kingdom: trunk 0.
	{"GB", "+44 (0)20 7946 0000", "442079460000"},
	{"GB", "020 7946 0000", "442079460000"},
	{"GB", "07911 123456", "447911123456"},
	{"GB", "7911123456", "447911123456"},
	{"GB", "447911123456", "447911123456"},
	{"GB", "00 44 7911 123456", "447911123456"},
	// Germany: variable lengths.
	{"DE", "+49 30 123456", "4930123456"},
	{"DE", "030 123456", "4930123456"},
	{"DE", "30123456", "4930123456"},
	{"DE", "4930123456", "4930123456"},
	{"DE", "0151 12345678", "4915112345678"},
	// The rest of the table, one national and one international each.
	{"MD", "022 123456", "37322123456"},
	{"MD", "+373 69 123456", "37369123456"},
	{"GE", "0555 12 34 56", "995555123456"},
	{"GE", "+995 555 12 34 56", "995555123456"},
	{"AM", "010 123456", "37410123456"},
	{"AM", "+374 10 123456", "37410123456"},
	{"AZ", "050 123 45 67", "994501234567"},
	{"AZ", "+994 50 123 45 67", "994501234567"},
	{"UZ", "90 123 45 67", "998901234567"},
	{"UZ", "+998 90 123 45 67", "998901234567"},
	{"KG", "0700 123 456", "996700123456"},
	{"KG", "+996 700 123 456", "996700123456"},
	{"LT", "8 612 34567", "37061234567"},
	{"LT", "0 612 34567", "37061234567"},
	{"LV", "21 234 567", "37121234567"},
	{"LV", "+371 21 234 567", "37121234567"},
	{"EE", "5123 4567", "37251234567"},
	{"EE", "+372 5123 4567", "37251234567"},
	// No default region: only what carries its calling code.
	{"", "+380671234567", "380671234567"},
	{"", "00380671234567", "380671234567"},
	{"", "380671234567", "380671234567"},
	{"", "79161234567", "79161234567"},
	{"", "0671234567", ""},
	{"", "89161234567", ""},
	{"", "671234567", ""},
	{"", "9161234567", ""},
}

func TestFast(t *testing.T) {
	for _, c := range fastCases {
		r := regionOrNil(t, c.iso)
		got, ok := fast(c.raw, r)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("Fast(%q, %q) = %q, %v; want %q", c.raw, c.iso, got, ok, c.want)
		}
		// The cases double as a check of the table against phonenumbers.
		if want, valid := oracle(c.raw, c.iso); valid && ok && got != want {
			t.Errorf("Fast(%q, %q) = %q, phonenumbers %q", c.raw, c.iso, got, want)
		}
	}
}

func regionOrNil(t testing.TB, iso string) *Region {
	t.Helper()
	if iso == "" {
		return nil
	}
	r, ok := RegionFor(iso)
	if !ok {
		t.Fatalf("no region %s", iso)
	}
	return r
}

func TestFastAppends(t *testing.T) {
	ua := regionOrNil(t, "UA")
	dst := append(make([]byte, 0, 32), "key:"...)
	out, ok := Fast(dst, []byte("067 123 45 67"), ua)
	if !ok || string(out) != "key:380671234567" {
		t.Fatalf("Fast = %q, %v", out, ok)
	}
	out, ok = Fast(dst, []byte("anonymous"), ua)
	if ok || !bytes.Equal(out, dst) {
		t.Fatalf("declining Fast = %q, %v; want dst unchanged", out, ok)
	}
	// Longer than phonenumbers parses, so Normalize and Ingest agree.
	if got, ok := fast(strings.Repeat(" ", maxInput)+"0671234567", ua); ok {
		t.Errorf("Fast on %d bytes = %q, want a decline", maxInput+10, got)
	}
}

func TestFastDoesNotAllocate(t *testing.T) {
	ua := regionOrNil(t, "UA")
	inputs := [][]byte{
		[]byte("+380 (67) 123-45-67"), []byte("0671234567"), []byte("380671234567"),
		[]byte("8 10 380 67 123 45 67"), []byte("anonymous"),
	}
	buf := make([]byte, 0, maxE164)
	allocs := testing.AllocsPerRun(100, func() {
		for _, in := range inputs {
			Fast(buf, in, ua)
		}
	})
	if allocs != 0 {
		t.Errorf("Fast: %v allocs per run, want 0", allocs)
	}
}

func TestSuffix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"380671234567", "671234567"},
		{"671234567", "671234567"},
		{"79161234567", "161234567"},
		{"9161234567", "161234567"},
		{"1234", "1234"},
		{"", ""},
	} {
		if got := Suffix(c.in); got != c.want {
			t.Errorf("Suffix(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := SuffixBytes([]byte(c.in)); string(got) != c.want {
			t.Errorf("SuffixBytes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	b := []byte("380671234567")
	if allocs := testing.AllocsPerRun(100, func() { SuffixBytes(b) }); allocs != 0 {
		t.Errorf("SuffixBytes: %v allocs, want 0", allocs)
	}
}
