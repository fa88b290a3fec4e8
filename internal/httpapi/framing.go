package httpapi

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/callrouter/callrouter/internal/domain"
)

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	valueChunked        = []byte("chunked")
)

// framingOK refuses a request whose body framing a proxy in front of the
// server could read differently (request smuggling): Content-Length and
// Transfer-Encoding together (RFC 9112 §6.3 lets a server read the chunked
// body and close afterwards; an intermediary may have used the length, so
// the request itself is refused here), or a Transfer-Encoding other than
// exactly "chunked" (fasthttp accepts "identity" and ignores it). It answers
// 400 naming the header, closes the connection after the answer and
// returns false. fasthttp itself refuses, with 400 and a close (see
// serveReadError), a repeated Content-Length or Transfer-Encoding, a
// non-numeric length and unknown codings.
//
// It reads the headers as received, so it sees what fasthttp normalized
// away; it does not allocate.
func framingOK(ctx *fasthttp.RequestCtx) bool {
	raw := ctx.Request.Header.RawHeaders()
	var cl, te bool
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		key := line[:colon]
		switch {
		case len(key) == len(hdrContentLength) && bytes.EqualFold(key, hdrContentLength):
			cl = true
		case len(key) == len(hdrTransferEncoding) && bytes.EqualFold(key, hdrTransferEncoding):
			te = true
			if !bytes.EqualFold(bytes.Trim(line[colon+1:], " \t\r"), valueChunked) {
				refuseFraming(ctx, "Transfer-Encoding: only chunked is accepted")
				return false
			}
		}
	}
	if cl && te {
		refuseFraming(ctx, "Transfer-Encoding: sent with Content-Length; the body's length is ambiguous")
		return false
	}
	return true
}

func refuseFraming(ctx *fasthttp.RequestCtx, msg string) {
	ctx.SetConnectionClose()
	writeErrorCode(ctx, fasthttp.StatusBadRequest, domain.EINVALID, msg)
}
