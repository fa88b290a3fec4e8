package phone

import (
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

func TestIngest(t *testing.T) {
	for _, c := range []struct{ iso, raw, want string }{
		// Valid to phonenumbers.
		{"UA", "067 123 45 67", "380671234567"},
		{"ua", "067 123 45 67", "380671234567"},
		{"UA", "+380 67 123 45 67 ext. 12", "380671234567"},
		{"UA", "tel: +380 67 123 45 67", "380671234567"},
		{"RU", "8 (916) 123-45-67", "79161234567"},
		{"", "+7 916 123-45-67", "79161234567"},
		{"IT", "06 6982 1234", "390669821234"}, // a region the fast path does not know
		// Rejected by phonenumbers, kept by the heuristics.
		{"UA", "+380 10 123 45 67", "380101234567"},
		{"UA", "+380 10 123 45 67 доб. 12", "380101234567"},
		{"UA", "+380 10 123 45 67, x12", "380101234567"},
		{"UA", "0 10 123 45 67 #12", "380101234567"},
		{"UA", "00 999 123 45 67", "9991234567"},
		{"FR", "0 12 34 56 7", "331234567"}, // a region the fast path does not know
		{"UA", "моб. 0 10 123 45 67", "380101234567"},
		// No default country: national digits without the trunk prefix.
		{"", "067 123 45 67", "671234567"},
		{"", "8 916 123 45 67", "9161234567"},
		{"", "916 123 45 67", "9161234567"},
		{"", "380671234567", "380671234567"},
		{"", "00380671234567", "380671234567"},
	} {
		got, err := Ingest(c.raw, c.iso)
		if err != nil || got != c.want {
			t.Errorf("Ingest(%q, %q) = %q, %v; want %q", c.raw, c.iso, got, err, c.want)
		}
	}
}

func TestIngestErrors(t *testing.T) {
	for _, c := range []struct{ iso, raw, msg string }{
		{"UA", "", "empty"},
		{"UA", " ", "empty"},
		{"UA", "()", "0 digits"},
		{"UA", "anonymous", "letters"},
		{"UA", "+380 67 abc 45 67", "letters"},
		{"UA", "12345", "5 digits"},
		{"UA", "+380 10 123*45 67", `'*'`},
		{"UA", "+380 10 123 45 67; +380 10 123 45 68", `';'`},
		{"UA", "+1234567890123456", "16 digits"},
		{"", "1234567890123456", "16 digits"},
		{"UA", "+1234567", "7 digits"},
		{"UA", "000 12345678", "no calling code"},
		{"XX", "0671234567", "unknown country"},
		{"UKR", "0671234567", "unknown country"},
		{"UA", strings.Repeat("1", 300), "300 bytes"},
	} {
		got, err := Ingest(c.raw, c.iso)
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Ingest(%q, %q) = %q, %v; want an invalid error naming %q", c.raw, c.iso, got, err, c.msg)
		}
	}
}

// TestIngestMatchesFast is the reason Ingest exists: a CRM phone stored
// without its calling code must meet the PBX's international form.
func TestIngestMatchesFast(t *testing.T) {
	stored, err := Ingest("067 123 45 67", "UA")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := fast("380671234567", regionOrNil(t, "UA"))
	if !ok || got != stored {
		t.Errorf("Fast = %q, %v; Ingest stored %q", got, ok, stored)
	}
	national, err := Ingest("067 123 45 67", "")
	if err != nil {
		t.Fatal(err)
	}
	if Suffix(national) != Suffix(stored) {
		t.Errorf("Suffix(%q) = %q, Suffix(%q) = %q", national, Suffix(national), stored, Suffix(stored))
	}
}

// TestNormalizeIsIngest checks that the fast path first and phonenumbers
// first (the import path's reading) give every input the same key.
func TestNormalizeIsIngest(t *testing.T) {
	inputs := []struct{ iso, raw string }{
		{"UA", "+380 10 123 45 67"}, {"UA", "tel: +380671234567"}, {"UA", "+380 67 123 45 67 x12"},
		{"IT", "06 6982 1234"}, {"IT", "3912345678"}, {"FR", "380671234567"}, {"", "0671234567"},
		{"UA", "12"}, {"XX", "0671234567"},
	}
	for _, c := range fastCases {
		inputs = append(inputs, struct{ iso, raw string }{c.iso, c.raw})
	}
	for _, c := range inputs {
		n, nerr := Normalize(c.raw, c.iso)
		i, ierr := ingestSlow(c.raw, c.iso)
		if n != i || domain.ErrorCode(nerr) != domain.ErrorCode(ierr) {
			t.Errorf("%s %q: Normalize = %q, %v; phonenumbers first = %q, %v", c.iso, c.raw, n, nerr, i, ierr)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ iso, raw, want string }{
		{"UA", "+380 (67) 123-45-67", "380671234567"}, // fast path
		{"UA", "tel:+380671234567", "380671234567"},   // phonenumbers
		{"IT", "06 6982 1234", "390669821234"},        // region not in the table
		{"", "0671234567", "671234567"},               // heuristics
	} {
		got, err := Normalize(c.raw, c.iso)
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", c.raw, c.iso, got, err, c.want)
		}
	}
	if _, err := Normalize("anonymous", "UA"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Normalize(anonymous) error %v, want invalid", err)
	}
	// The fast path costs one allocation: the string returned.
	if allocs := testing.AllocsPerRun(100, func() { Normalize("+380 (67) 123-45-67", "UA") }); allocs > 1 {
		t.Errorf("Normalize on the fast path: %v allocs, want 1", allocs)
	}
}

// Same is the one rule of "this index phone is this caller", for routing
// and call events alike.
func TestSame(t *testing.T) {
	for _, tc := range []struct {
		indexed, number string
		want            bool
	}{
		{"380671234567", "380671234567", true}, // the same E.164 number
		{"671234567", "380671234567", true},    // national, stored without the country
		{"0671234567", "380671234567", true},   // Ukraine's trunk 0 is the country code's last digit
		{"0671234568", "380671234567", false},
		{"1234567", "380671234567", false},   // shorter than the suffix key: a fragment
		{"380671234567", "671234567", false}, // the caller's number is the shorter one
		{"480671234567", "380671234567", false},
		{"", "", true},
	} {
		if got := Same(tc.indexed, tc.number); got != tc.want {
			t.Errorf("Same(%q, %q) = %v, want %v", tc.indexed, tc.number, got, tc.want)
		}
		if got := SameBytes(tc.indexed, []byte(tc.number)); got != tc.want {
			t.Errorf("SameBytes(%q, %q) = %v, want %v", tc.indexed, tc.number, got, tc.want)
		}
	}
}
