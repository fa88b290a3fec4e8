package httpapi

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadersStopAtTheLimit reads bodies of the limit and of one byte more
// through readAtMost and limitedBody, one byte per Read as a slow client
// sends them: the first is read whole, the second fails with errTooLarge
// having read at most the limit + 1 byte, never the rest.
func TestReadersStopAtTheLimit(t *testing.T) {
	const limit = 100
	for _, n := range []int{0, limit, limit + 1, 10 * limit} {
		src := &countingReader{r: iotest.OneByteReader(strings.NewReader(strings.Repeat("x", n)))}
		b, err := readAtMost(nil, src, limit)
		switch {
		case n <= limit && (err != nil || len(b) != n):
			t.Errorf("readAtMost, %d bytes: %d, %v; want them all", n, len(b), err)
		case n > limit && !errors.Is(err, errTooLarge):
			t.Errorf("readAtMost, %d bytes: %v, want errTooLarge", n, err)
		case src.n > limit+1:
			t.Errorf("readAtMost, %d bytes: read %d, want at most %d", n, src.n, limit+1)
		}

		src = &countingReader{r: iotest.OneByteReader(strings.NewReader(strings.Repeat("x", n)))}
		got, err := io.ReadAll(&limitedBody{r: src, left: limit})
		switch {
		case n <= limit && (err != nil || len(got) != n):
			t.Errorf("limitedBody, %d bytes: %d, %v; want them all", n, len(got), err)
		case n > limit && !errors.Is(err, errTooLarge):
			t.Errorf("limitedBody, %d bytes: %v, want errTooLarge (not an EOF that makes a cut body look whole)", n, err)
		case src.n > limit+1:
			t.Errorf("limitedBody, %d bytes: read %d, want at most %d", n, src.n, limit+1)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int]string{64 << 10: "64 KiB", 1 << 20: "1 MiB", 64 << 20: "64 MiB", 1000: "1000 bytes"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}
