package ws

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// permessage-deflate (RFC 7692): the negotiation of section 7.1 and the
// framing of section 7.2. DEFLATE itself is the standard library's
// compress/flate; this file only frames it.
//
// Decisions (docs/performance.md has the measurements behind them):
//   - The server never takes its context over: every response carries
//     server_no_context_takeover (section 7.1.1.1 lets a server add it to
//     any offer it accepts). Each message is compressed on its own, so a
//     broadcast is compressed once and the same bytes go to every member
//     (prepared_deflate.go), and no connection owns a compressor:
//     compressors are pooled per Server (bufPool.z) and held only while a
//     message is compressed.
//   - Nor does the client: every response also carries
//     client_no_context_takeover (section 7.1.1.2 lets a server add it
//     too). Each incoming message then inflates on its own, with an
//     inflater taken from a pool for that message only, so an idle
//     compressed connection holds no compression state at all (no 32 KiB
//     window per connection).
//   - server_max_window_bits=N is honoured without a smaller compressor:
//     a message of at most 2^N bytes cannot refer further back than 2^N
//     bytes (there is no context), so exactly those messages are
//     compressed and longer ones are sent uncompressed (RSV1 clear), which
//     section 6 allows message by message.
//   - A message is sent compressed only when it is at least the threshold
//     (Config.CompressionThreshold) and compression made it smaller.
//   - Inflation is bounded: a message that inflates past MaxMessageBytes
//     fails with 1009 as soon as the output passes the bound, before more
//     memory is spent (zip bombs).
//   - Compressed input that is not valid DEFLATE fails with 1007 (data
//     inconsistent with the message's type, RFC 6455 section 7.4.1).

// rsv1Bit is RSV1 in the first header byte: on the first frame of a
// message it marks the message as compressed (RFC 7692 section 6).
const rsv1Bit = 0x40

// deflateTail is what the sender strips from the end of every compressed
// message and the receiver appends before inflating (section 7.2.1 and
// 7.2.2): the empty stored block a sync flush ends with.
const deflateTail = "\x00\x00\xff\xff"

// defaultCompressionThreshold is Config.CompressionThreshold's zero value:
// below it, DEFLATE's block header and Huffman tables eat the gain.
const defaultCompressionThreshold = 64

// deflateParams is what a connection negotiated; immutable once the
// connection is shared. Prepared messages key their compressed framings by
// its value.
type deflateParams struct {
	// min and max bound the messages sent compressed: at least the
	// threshold, at most 2^server_max_window_bits bytes (see above).
	min, max int
}

// wants reports whether a message of n bytes should be compressed.
func (p *deflateParams) wants(n int) bool { return n >= p.min && n <= p.max }

// deflateOffer is one parsed permessage-deflate offer (section 7.1).
type deflateOffer struct {
	serverNoContext bool
	clientNoContext bool
	serverMaxBits   int // 0: not offered
	clientMaxBits   int // 0: not offered or offered without a value (clientMaxSet)
	clientMaxSet    bool
}

// negotiateDeflate picks the first acceptable permessage-deflate offer of
// the request's Sec-WebSocket-Extensions headers (section 7.1: "accept the
// first acceptable offer") and returns the response's extension element
// ("" when none is acceptable: the extension is declined by not naming it)
// and the parameters to use. Offers are declined when they carry a
// parameter not defined for offers, a parameter twice, or an invalid value
// (section 7, the four conditions for declining); every other offer can be
// honoured, so the first valid one is accepted.
func negotiateDeflate(h http.Header, threshold int) (string, *deflateParams) {
	for _, el := range parseExtensions(h.Values("Sec-WebSocket-Extensions")) {
		if !strings.EqualFold(el.name, "permessage-deflate") {
			continue
		}
		o, ok := parseDeflateOffer(el.params)
		if !ok {
			continue
		}
		p := &deflateParams{min: threshold, max: int(^uint(0) >> 1)}
		resp := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		if o.serverMaxBits != 0 {
			// Section 7.1.2.1: accepted by answering with the same or
			// a smaller value; we use the client's.
			resp += "; server_max_window_bits=" + strconv.Itoa(o.serverMaxBits)
			p.max = 1 << o.serverMaxBits
		}
		// client_max_window_bits needs no answer (section 7.1.2.2: the
		// server MAY limit the client's window; our inflater takes any).
		return resp, p
	}
	return "", nil
}

// clientDeflateOffer is what Dial offers with DialOptions.Compression:
// each message compressed on its own in both directions, so that neither
// side keeps a compression context per connection.
const clientDeflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// acceptDeflateResponse checks the server's answer to clientDeflateOffer
// (RFC 7692 section 7.1; a client fails the connection when the answer is
// not one its offer allows): exactly one permessage-deflate element,
// server_no_context_takeover present (we inflate each message on its own),
// client_no_context_takeover optional, nothing else (window sizes were not
// offered, so the server may not answer with them).
func acceptDeflateResponse(values []string, threshold int) (*deflateParams, error) {
	els := parseExtensions(values)
	if len(els) != 1 || !strings.EqualFold(els[0].name, "permessage-deflate") {
		return nil, fmt.Errorf("server chose extensions %q; permessage-deflate was offered", strings.Join(values, ", "))
	}
	seen := map[string]bool{}
	for _, p := range els[0].params {
		name := strings.ToLower(p.name)
		if seen[name] || p.hasValue || (name != "server_no_context_takeover" && name != "client_no_context_takeover") {
			return nil, fmt.Errorf("permessage-deflate answer %q has a parameter the offer does not allow", strings.Join(values, ", "))
		}
		seen[name] = true
	}
	if !seen["server_no_context_takeover"] {
		return nil, fmt.Errorf("permessage-deflate answer %q lacks server_no_context_takeover", strings.Join(values, ", "))
	}
	switch {
	case threshold == 0:
		threshold = defaultCompressionThreshold
	case threshold < 0:
		threshold = 0
	}
	return &deflateParams{min: threshold, max: int(^uint(0) >> 1)}, nil
}

// parseDeflateOffer validates an offer's parameters (section 7.1).
func parseDeflateOffer(params []extParam) (deflateOffer, bool) {
	var o deflateOffer
	seen := map[string]bool{}
	for _, p := range params {
		name := strings.ToLower(p.name)
		if seen[name] {
			return o, false // "multiple extension parameters with the same name"
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover":
			if p.hasValue {
				return o, false // section 7.1.1.1: no value
			}
			o.serverNoContext = true
		case "client_no_context_takeover":
			if p.hasValue {
				return o, false // section 7.1.1.2: no value
			}
			o.clientNoContext = true
		case "server_max_window_bits":
			bits, ok := windowBits(p)
			if !ok || !p.hasValue {
				return o, false // section 7.1.2.1: a value is required
			}
			o.serverMaxBits = bits
		case "client_max_window_bits":
			o.clientMaxSet = true
			if p.hasValue {
				bits, ok := windowBits(p)
				if !ok {
					return o, false
				}
				o.clientMaxBits = bits
			}
		default:
			return o, false // not defined for use in an offer
		}
	}
	return o, true
}

// windowBits parses a window-bits value: a decimal integer from 8 to 15
// without leading zeros (section 7.1.2.1).
func windowBits(p extParam) (int, bool) {
	v := p.value
	if len(v) == 1 && v[0] >= '8' && v[0] <= '9' {
		return int(v[0] - '0'), true
	}
	if len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5' {
		return 10 + int(v[1]-'0'), true
	}
	return 0, false
}

// extElement is one element of a Sec-WebSocket-Extensions list (RFC 6455
// section 9.1): a name and its parameters.
type extElement struct {
	name   string
	params []extParam
}

type extParam struct {
	name, value string
	hasValue    bool
}

// parseExtensions parses Sec-WebSocket-Extensions values (RFC 6455 section
// 9.1): comma-separated extensions, each a token followed by
// ";"-separated parameters, a parameter's value a token or a
// quoted-string (whose unescaped value must itself be a token). An element
// that does not follow the grammar is dropped, so that its offer is
// declined; parsing goes on at the next comma outside a quoted-string.
func parseExtensions(values []string) []extElement {
	var out []extElement
	for _, v := range values {
		for _, raw := range splitOutsideQuotes(v, ',') {
			if strings.TrimSpace(raw) == "" {
				continue // empty list elements are allowed (RFC 7230 section 7)
			}
			if el, ok := parseElement(raw); ok {
				out = append(out, el)
			}
		}
	}
	return out
}

func parseElement(s string) (extElement, bool) {
	parts := splitOutsideQuotes(s, ';')
	name := strings.TrimSpace(parts[0])
	if !isToken(name) {
		return extElement{}, false
	}
	el := extElement{name: name}
	for _, part := range parts[1:] {
		k, v, hasValue := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !isToken(k) {
			return extElement{}, false
		}
		p := extParam{name: k, hasValue: hasValue}
		if hasValue {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				var ok bool
				if v, ok = unquote(v[1 : len(v)-1]); !ok {
					return extElement{}, false
				}
			}
			if !isToken(v) {
				return extElement{}, false
			}
			p.value = v
		}
		el.params = append(el.params, p)
	}
	return el, true
}

// splitOutsideQuotes splits s at sep where sep is not inside a
// quoted-string.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote undoes quoted-pair escapes of a quoted-string's content.
func unquote(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return "", false
		}
		if c == '\\' {
			i++
			if i == len(s) {
				return "", false
			}
			c = s[i]
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// isToken reports whether s is an HTTP token (RFC 7230 section 3.2.6).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// flatePools holds a Server's compressors and inflaters. They are taken
// for one message and given back, so their number follows the messages
// being compressed or inflated at once, not the connections.
type flatePools struct {
	w sync.Pool // *deflater
	r sync.Pool // *inflater
}

// deflater is a pooled compressor with a scratch output buffer (out.b)
// that its user may keep in it between uses.
type deflater struct {
	fw  *flate.Writer
	out appendWriter
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maxKeptDeflateBuf bounds the output buffer a pooled deflater keeps, so
// that one large message does not pin its size in the pool.
const maxKeptDeflateBuf = 64 << 10

func (fp *flatePools) getDeflater() *deflater {
	if d, ok := fp.w.Get().(*deflater); ok {
		return d
	}
	// BestSpeed: on chat-sized messages it compresses as well as the
	// default level at half the CPU (docs/performance.md).
	fw, err := flate.NewWriter(nil, flate.BestSpeed)
	if err != nil {
		panic("websocket: flate.NewWriter(BestSpeed): " + err.Error()) // a valid level cannot fail
	}
	return &deflater{fw: fw}
}

func (fp *flatePools) putDeflater(d *deflater) {
	if cap(d.out.b) > maxKeptDeflateBuf {
		d.out.b = nil
	}
	fp.w.Put(d)
}

// compress appends msg compressed as one permessage-deflate message (no
// context: the compressor is reset first; the sync flush's trailing
// 00 00 ff ff removed, section 7.2.1) to dst. ok is false when the result
// is not smaller than msg, which is then better sent uncompressed.
func (d *deflater) compress(dst, msg []byte) (out []byte, ok bool) {
	// d.out, not a local appendWriter: a pointer to a local would escape
	// through the io.Writer and cost an allocation per message.
	d.out.b = dst
	d.fw.Reset(&d.out)
	// Writes to an appendWriter cannot fail.
	_, _ = d.fw.Write(msg)
	_ = d.fw.Flush()
	out = d.out.b[:len(d.out.b)-len(deflateTail)]
	d.out.b = nil
	return out, len(out)-len(dst) < len(msg)
}

// inflater is a pooled decompressor reading one message.
type inflater struct {
	fr  io.ReadCloser
	src tailReader
}

// tailReader reads b followed by deflateTail (section 7.2.2: the receiver
// appends 00 00 ff ff to the payload). It is an io.ByteReader, so flate
// reads from it directly instead of through a bufio.Reader.
type tailReader struct {
	b    []byte
	tail int // bytes of deflateTail already read
}

func (t *tailReader) Read(p []byte) (int, error) {
	if len(t.b) > 0 {
		n := copy(p, t.b)
		t.b = t.b[n:]
		return n, nil
	}
	if t.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(p, deflateTail[t.tail:])
	t.tail += n
	return n, nil
}

func (t *tailReader) ReadByte() (byte, error) {
	if len(t.b) > 0 {
		c := t.b[0]
		t.b = t.b[1:]
		return c, nil
	}
	if t.tail == len(deflateTail) {
		return 0, io.EOF
	}
	c := deflateTail[t.tail]
	t.tail++
	return c, nil
}

func (t *tailReader) done() bool { return len(t.b) == 0 && t.tail == len(deflateTail) }

var errBadDeflate = &CloseError{Code: StatusInvalidFramePayloadData, Reason: "invalid compressed data"}

// inflate decompresses the payload of one compressed message (section
// 7.2.2), appending to dst, and returns the message. It stops with
// errTooBig as soon as the output passes limit bytes (the inflated bound,
// checked as the output grows, so a zip bomb costs at most limit bytes),
// and with errBadUTF8 as soon as check rejects a piece of output
// (UTF-8 validation of text as it is inflated).
func (fp *flatePools) inflate(dst, payload []byte, limit int64, check func([]byte) bool) ([]byte, *CloseError) {
	inf, _ := fp.r.Get().(*inflater)
	if inf == nil {
		inf = &inflater{}
		inf.src = tailReader{b: payload}
		inf.fr = flate.NewReader(&inf.src)
	} else {
		inf.src = tailReader{b: payload}
		if err := inf.fr.(flate.Resetter).Reset(&inf.src, nil); err != nil {
			return dst, errBadDeflate // cannot happen: Reset reads nothing
		}
	}
	defer func() {
		inf.src = tailReader{}
		fp.r.Put(inf)
	}()
	for {
		if len(dst) == cap(dst) {
			if int64(len(dst)) > limit {
				return dst, errTooBig
			}
			grow := int64(max(cap(dst), 512))
			if rest := limit + 1 - int64(len(dst)); grow > rest {
				grow = rest
			}
			dst = append(dst[:cap(dst)], make([]byte, grow)...)[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		if rest := limit + 1 - int64(len(dst)); int64(len(room)) > rest {
			room = room[:rest]
		}
		n, err := inf.fr.Read(room)
		if n > 0 {
			if check != nil && !check(room[:n]) {
				return dst, errBadUTF8
			}
			dst = dst[:len(dst)+n]
			if int64(len(dst)) > limit {
				return dst, errTooBig
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			// A block with BFINAL set ends the stream (section 7.2.3
			// shows it is allowed); what follows it is ignored.
			return dst, nil
		case errors.Is(err, io.ErrUnexpectedEOF) && inf.src.done():
			// The usual end: the appended empty stored block was
			// read and the input is exhausted.
			return dst, nil
		default:
			return dst, errBadDeflate
		}
	}
}
