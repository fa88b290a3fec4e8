package httpapi

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

// Body limits per endpoint. The server streams request bodies (fasthttp's
// StreamRequestBody): a handler runs once the headers are read, and a body
// is read only by the endpoint that takes it, after the tenant and its key
// (or the admin token) are checked, and only up to that endpoint's limit.
// Unknown paths, unknown tenants and refused keys never read a body.
const (
	// MaxBodyBytes bounds a contacts import, the only endpoint that takes
	// a large body; the import reads it row by row.
	MaxBodyBytes = 64 << 20
	// maxAdminBodyBytes bounds an admin call's JSON and a CRM webhook.
	maxAdminBodyBytes = 1 << 20
	// maxEventBody bounds a call event: Ringostat's richest events are a
	// few KiB.
	maxEventBody = 64 << 10
)

// errTooLarge reports a body over its endpoint's limit.
var errTooLarge = errors.New("body over the limit")

// bodyBufs holds the buffers streamed bodies are read into, so the route
// endpoint reads one without allocating.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// readBody returns the request body if it is at most limit bytes. A body
// announced larger (Content-Length) is refused before a byte of it is read;
// a streamed body of unknown length (chunked) is read only up to limit+1
// bytes. Otherwise readBody answers 413 (or 400 for a body that cannot be
// read, e.g. the client stopped sending), marks the connection to be closed
// so the rest is never read, and returns false. The bytes belong to the
// request: copy them to keep them.
func readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, bool) {
	req := &ctx.Request
	if req.Header.ContentLength() > limit {
		refuseTooLarge(ctx, limit)
		return nil, false
	}
	if !req.IsBodyStream() {
		// A server without streaming (or a test) has read it already.
		if b := req.Body(); len(b) <= limit {
			return b, true
		}
		refuseTooLarge(ctx, limit)
		return nil, false
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	b, err := readAtMost((*bp)[:0], req.BodyStream(), limit)
	*bp = b[:0]
	switch {
	case errors.Is(err, errTooLarge):
		refuseTooLarge(ctx, limit)
		return nil, false
	case err != nil:
		ctx.SetConnectionClose()
		writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, "body: could not be read to its end")
		return nil, false
	}
	// SetBody copies into the request's own buffer, so the body outlives
	// this pool's buffer, and ends the stream.
	req.SetBody(b)
	return req.Body(), true
}

// readAtMost appends r's bytes to dst until io.EOF; errTooLarge once more
// than limit bytes came, without reading further.
func readAtMost(dst []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// maxDrain bounds what a refusal reads of a body it will not use: closing a
// connection with unread bytes in the kernel's buffer sends a reset, which
// can destroy the 413 before the client reads it. Twice the largest limit
// but the import's covers a client that overshoots any of them; the bytes
// are discarded as they arrive, never held, and the read timeout cuts a
// slow sender. A body announced larger is refused unread.
const maxDrain = 2 * maxAdminBodyBytes

// refuseTooLarge answers 413 naming the limit and closes the connection
// after the answer. A body announced at most maxDrain long is read and
// discarded first, so the client, still sending, gets the answer instead of
// a reset; a larger one is never read.
func refuseTooLarge(ctx *fasthttp.RequestCtx, limit int) {
	discardBody(ctx)
	writeErrorCode(ctx, fasthttp.StatusRequestEntityTooLarge, domain.ETOOLARGE, "body: larger than "+sizeText(limit))
}

// discardBody readies a refusal of a request whose body will not be used:
// the connection closes after the answer, and a body announced at most
// maxDrain long is read and thrown away first (never held), so the client,
// still sending, gets the answer instead of a reset.
func discardBody(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	if req := &ctx.Request; req.IsBodyStream() && req.Header.ContentLength() > 0 && req.Header.ContentLength() <= maxDrain {
		// A body that stops short is cut by the read timeout; its error
		// changes nothing about the answer.
		_, _ = io.CopyN(io.Discard, req.BodyStream(), maxDrain)
	}
}

// sizeText writes n bytes as KiB or MiB when it is a whole number of them.
func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// unreadBody reports whether the request still has body bytes the handler
// did not read.
func unreadBody(req *fasthttp.Request) bool {
	return req.IsBodyStream() && req.Header.ContentLength() != 0
}

// bodyReader returns a reader of the request body of at most limit bytes
// for an endpoint that reads it piece by piece (the contacts import). A body
// announced larger is refused with 413 before a byte is read (false); a
// streamed body of unknown length fails the read with errTooLarge past the
// limit.
func bodyReader(ctx *fasthttp.RequestCtx, limit int) (io.Reader, bool) {
	req := &ctx.Request
	if req.Header.ContentLength() > limit {
		refuseTooLarge(ctx, limit)
		return nil, false
	}
	if !req.IsBodyStream() {
		b := req.Body()
		if len(b) > limit {
			refuseTooLarge(ctx, limit)
			return nil, false
		}
		return bytes.NewReader(b), true
	}
	return &limitedBody{r: req.BodyStream(), left: int64(limit)}, true
}

// limitedBody reads r up to left bytes and then fails with errTooLarge,
// unlike io.LimitReader, whose EOF would make a cut body look complete.
type limitedBody struct {
	r    io.Reader
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}
