package phone

import "testing"

func BenchmarkFast(b *testing.B) {
	for _, c := range []struct{ name, iso, raw string }{
		{"bare-international", "UA", "380671234567"},
		{"plus-formatted", "UA", "+380 (67) 123-45-67"},
		{"national-trunk", "UA", "0671234567"},
		{"idd-00", "UA", "00380671234567"},
		{"bare-national", "UA", "671234567"},
		{"ru-trunk-8", "RU", "8 916 123-45-67"},
		{"gb-trunk-in-parens", "GB", "+44 (0)20 7946 0000"},
		{"de-national", "DE", "030 1234567"},
		{"no-region", "", "+380671234567"},
		{"decline", "UA", "anonymous"},
	} {
		r := regionOrNil(b, c.iso)
		raw := []byte(c.raw)
		buf := make([]byte, 0, maxE164)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Fast(buf, raw, r)
			}
		})
	}
}

func BenchmarkNormalizeSlow(b *testing.B) {
	for _, c := range []struct{ name, iso, raw string }{
		{"label", "UA", "tel: +380 67 123 45 67"},
		{"extension", "UA", "+380 67 123 45 67 ext. 12"},
		{"region-not-in-table", "IT", "06 6982 1234"},
		{"heuristics", "UA", "+380 10 123 45 67"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(c.raw, c.iso); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSuffix(b *testing.B) {
	s, p := "380671234567", []byte("380671234567")
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Suffix(s)
		}
	})
	b.Run("bytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			SuffixBytes(p)
		}
	})
}

// BenchmarkIngest is the import path on a CRM's common shapes (the fast
// path answers) and on a labelled one with an extension (phonenumbers).
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct{ name, iso, raw string }{
		{"formatted", "UA", "+380 (67) 123-45-67"},
		{"national", "UA", "067 123 45 67"},
		{"label-and-extension", "UA", "моб. +380 67 123 45 67 доб. 12"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Ingest(c.raw, c.iso); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
