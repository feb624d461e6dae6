package ws

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDeflateNegotiate covers RFC 7692 section 7.1: every parameter, the
// first acceptable offer wins, invalid offers are declined.
func TestDeflateNegotiate(t *testing.T) {
	const base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	unlimited := int(^uint(0) >> 1)
	for _, tc := range []struct {
		name    string
		headers []string
		want    string // "" = declined
		max     int
	}{
		{"no header", nil, "", 0},
		{"other extension only", []string{"x-webkit-deflate-frame"}, "", 0},
		{"plain offer", []string{"permessage-deflate"}, base, unlimited},
		{"browser offer", []string{"permessage-deflate; client_max_window_bits"}, base, unlimited},
		{"client window value", []string{"permessage-deflate; client_max_window_bits=10"}, base, unlimited},
		{"both no-context", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, base, unlimited},
		{"server window", []string{"permessage-deflate; server_max_window_bits=10"}, base + "; server_max_window_bits=10", 1024},
		{"server window 8", []string{"permessage-deflate; server_max_window_bits=8"}, base + "; server_max_window_bits=8", 256},
		{"server window 15 quoted", []string{`permessage-deflate; server_max_window_bits="15"`}, base + "; server_max_window_bits=15", 1 << 15},
		{"case and spaces", []string{"  Permessage-Deflate ;  Server_Max_Window_Bits = 9 "}, base + "; server_max_window_bits=9", 512},
		{"server window without value", []string{"permessage-deflate; server_max_window_bits"}, "", 0},
		{"server window 16", []string{"permessage-deflate; server_max_window_bits=16"}, "", 0},
		{"server window 7", []string{"permessage-deflate; server_max_window_bits=7"}, "", 0},
		{"leading zero", []string{"permessage-deflate; server_max_window_bits=09"}, "", 0},
		{"client window 16", []string{"permessage-deflate; client_max_window_bits=16"}, "", 0},
		{"value on no-context", []string{"permessage-deflate; server_no_context_takeover=1"}, "", 0},
		{"value on client no-context", []string{"permessage-deflate; client_no_context_takeover=true"}, "", 0},
		{"duplicate parameter", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}, "", 0},
		{"unknown parameter", []string{"permessage-deflate; mem_level=8"}, "", 0},
		{"bad syntax", []string{"permessage-deflate; =8"}, "", 0},
		{"first invalid, second accepted", []string{"permessage-deflate; mem_level=8, permessage-deflate; server_max_window_bits=12"}, base + "; server_max_window_bits=12", 4096},
		{"first acceptable wins", []string{"permessage-deflate; server_max_window_bits=9; client_max_window_bits, permessage-deflate; server_no_context_takeover, permessage-deflate"}, base + "; server_max_window_bits=9", 512},
		{"over two header lines", []string{"x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=11"}, base + "; server_max_window_bits=11", 2048},
		{"comma inside quotes", []string{`permessage-deflate; x="a,b", permessage-deflate`}, base, unlimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.headers {
				h.Add("Sec-WebSocket-Extensions", v)
			}
			got, p := negotiateDeflate(h, 64)
			if got != tc.want {
				t.Fatalf("response %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				if p != nil {
					t.Fatalf("declined but params %+v", p)
				}
				return
			}
			if p.max != tc.max || p.min != 64 {
				t.Fatalf("params %+v, want min 64 max %d", p, tc.max)
			}
		})
	}
}

// TestDeflateHandshake: the 101 response names the extension only when the
// server has compression on and the client offered it; a declined offer
// does not refuse the connection.
func TestDeflateHandshake(t *testing.T) {
	offer := "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
	for _, tc := range []struct {
		name  string
		on    bool
		extra []string
		want  string
	}{
		{"on, offered", true, []string{offer}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"on, not offered", true, nil, ""},
		{"on, invalid offer", true, []string{"Sec-WebSocket-Extensions: permessage-deflate; bogus"}, ""},
		{"off, offered", false, []string{offer}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{Compression: tc.on}, false, nil)
			rc, resp := dial(t, ts.addr, nil, tc.extra...)
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
				t.Fatalf("Sec-WebSocket-Extensions %q, want %q", got, tc.want)
			}
			// The connection works either way.
			rc.write(text("hi"))
			rc.expectMessage(OpText, []byte("hi"))
		})
	}
}

// deflateMsg compresses msg as a permessage-deflate payload (section 7.2.1:
// sync flush, trailing 00 00 ff ff removed).
func deflateMsg(t testing.TB, msg []byte) []byte {
	return deflateLevel(t, msg, flate.BestCompression)
}

// deflateLevel is deflateMsg at a given compress/flate level.
func deflateLevel(t testing.TB, msg []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte(deflateTail)) {
		t.Fatalf("flush did not end with 00 00 ff ff")
	}
	return out[:len(out)-4]
}

// inflateMsg undoes deflateMsg (section 7.2.2).
func inflateMsg(t testing.TB, payload []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader(deflateTail)))
	out, err := io.ReadAll(r)
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// zFrame is a frame from the server, RSV1 included.
type zFrame struct {
	fin, rsv1 bool
	op        Opcode
	payload   []byte
}

// readZFrame reads one server frame, allowing RSV1 (and only RSV1).
func (rc *rawClient) readZFrame() zFrame {
	rc.t.Helper()
	_ = rc.nc.SetReadDeadline(time.Now().Add(waitLong))
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		rc.t.Fatalf("read frame: %v", err)
	}
	if h[0]&(rsvBits&^rsv1Bit) != 0 || h[1]&maskBit != 0 {
		rc.t.Fatalf("bad server frame header %#x %#x", h[0], h[1])
	}
	n := uint64(h[1] & lenBits)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(rc.br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(rc.br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		rc.t.Fatalf("read payload: %v", err)
	}
	return zFrame{fin: h[0]&finBit != 0, rsv1: h[0]&rsv1Bit != 0, op: Opcode(h[0] & opBits), payload: p}
}

// expectZMessage reads one single-frame message and checks it, and whether
// it came compressed.
func (rc *rawClient) expectZMessage(op Opcode, want []byte, compressed bool) {
	rc.t.Helper()
	f := rc.readZFrame()
	if !f.fin || f.op != op || f.rsv1 != compressed {
		rc.t.Fatalf("frame fin=%v rsv1=%v op=%v, want a final %v frame with rsv1=%v", f.fin, f.rsv1, f.op, op, compressed)
	}
	got := f.payload
	if f.rsv1 {
		got = inflateMsg(rc.t, got)
	}
	if !bytes.Equal(got, want) {
		rc.t.Fatalf("message %q (%d bytes), want %q (%d bytes)", trunc(got), len(got), trunc(want), len(want))
	}
}

const zOffer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"

// TestDeflateEcho: compressed messages in, single and fragmented (RSV1 on
// the first frame only), with control frames between fragments; the echo
// goes out compressed when long enough and smaller, plain otherwise.
func TestDeflateEcho(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{Compression: true, CompressionThreshold: 32}, fallback, nil)
		rc, _ := dial(t, ts.addr, nil, zOffer)
		if ev := ts.h.next(t, "open"); !ev.c.Compression() {
			t.Fatal("Compression() false after negotiation")
		}

		long := strings.Repeat("hello permessage-deflate, ", 40)
		rc.write(frame(finBit|rsv1Bit|byte(OpText), deflateMsg(t, []byte(long))))
		if ev := ts.h.next(t, "message"); string(ev.data) != long {
			t.Fatalf("server got %q", trunc(ev.data))
		}
		rc.expectZMessage(OpText, []byte(long), true)

		// Short: below the threshold, the echo goes plain even though
		// the client compressed it.
		rc.write(frame(finBit|rsv1Bit|byte(OpText), deflateMsg(t, []byte("hi"))))
		rc.expectZMessage(OpText, []byte("hi"), false)

		// Uncompressed messages stay allowed on a compressed connection.
		again := "plain, plain, plain, plain, plain, plain, plain, plain"
		rc.write(text(again))
		rc.expectZMessage(OpText, []byte(again), true)

		// Incompressible binary goes plain: compression would not shrink it.
		noise := make([]byte, 300)
		for i := range noise {
			noise[i] = byte(i*7919>>3) ^ byte(i*31)
		}
		rc.write(bin(noise))
		rc.expectZMessage(OpBinary, noise, false)

		// Fragmented, with a ping between fragments: RSV1 only on the
		// first frame (RFC 7692 section 6).
		big := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
		z := deflateMsg(t, big)
		third := len(z) / 3
		rc.write(frame(rsv1Bit|byte(OpBinary), z[:third]))
		rc.write(ping("p"))
		if f := rc.readZFrame(); f.op != OpPong || f.rsv1 {
			t.Fatalf("got %+v, want a pong without RSV1", f)
		}
		rc.write(frame(byte(OpContinuation), z[third:2*third]))
		rc.write(frame(finBit|byte(OpContinuation), z[2*third:]))
		rc.expectZMessage(OpBinary, big, true)

		// An empty compressed message (a lone empty stored block).
		rc.write(frame(finBit|rsv1Bit|byte(OpText), []byte{0x00}))
		rc.expectZMessage(OpText, []byte{}, false)

		rc.write(closeF(closeBody(StatusNormalClosure, "")))
		rc.expectClose(StatusNormalClosure)
	})
}

// TestDeflateProtocolErrors: RSV1 where RFC 7692 forbids it is 1002;
// compressed data that is not DEFLATE, or text that inflates to invalid
// UTF-8, is 1007.
func TestDeflateProtocolErrors(t *testing.T) {
	z := deflateMsg(t, []byte("hello hello hello"))
	for _, tc := range []struct {
		name  string
		on    bool // server has compression on
		offer bool
		in    []byte
		code  StatusCode
	}{
		{"RSV1 without negotiation", false, true, frame(finBit|rsv1Bit|byte(OpText), z), StatusProtocolError},
		{"RSV1 when not offered", true, false, frame(finBit|rsv1Bit|byte(OpText), z), StatusProtocolError},
		{"RSV1 on a continuation", true, true, append(frame(rsv1Bit|byte(OpText), z[:3]), frame(finBit|rsv1Bit|byte(OpContinuation), z[3:])...), StatusProtocolError},
		{"RSV1 on a ping", true, true, frame(finBit|rsv1Bit|byte(OpPing), nil), StatusProtocolError},
		{"RSV2", true, true, frame(finBit|0x20|byte(OpText), z), StatusProtocolError},
		{"RSV1 and RSV3", true, true, frame(finBit|rsv1Bit|0x10|byte(OpText), z), StatusProtocolError},
		{"not DEFLATE", true, true, frame(finBit|rsv1Bit|byte(OpBinary), []byte{0xff, 0xff, 0xff, 0xff}), StatusInvalidFramePayloadData},
		{"invalid UTF-8 inside", true, true, frame(finBit|rsv1Bit|byte(OpText), deflateMsg(t, []byte("ok \xff\xfe"))), StatusInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{Compression: tc.on}, false, nil)
			var extra []string
			if tc.offer {
				extra = []string{zOffer}
			}
			rc, _ := dial(t, ts.addr, nil, extra...)
			rc.write(tc.in)
			rc.expectClose(tc.code)
		})
	}
}

// TestDeflateZipBomb: a message that inflates past MaxMessageBytes closes
// with 1009, and inflation stops at the bound: the output buffer never
// holds more than the bound plus one byte, however far the input would
// inflate.
func TestDeflateZipBomb(t *testing.T) {
	const limit = 1 << 20
	bomb := deflateLevel(t, make([]byte, 32<<20), flate.BestSpeed) // 32 MiB of zeros in less than 128 KiB
	if len(bomb) > 128<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}

	t.Run("inflate stops at the bound", func(t *testing.T) {
		var fp flatePools
		out, err := fp.inflate(nil, bomb, limit, nil)
		if err != errTooBig {
			t.Fatalf("err %v, want errTooBig", err)
		}
		if len(out) > limit+1 || cap(out) > 2*limit {
			t.Fatalf("inflated into len %d cap %d, bound %d", len(out), cap(out), limit)
		}
		// Exactly the bound is fine.
		exact := deflateLevel(t, make([]byte, limit), flate.BestSpeed)
		out, err = fp.inflate(nil, exact, limit, nil)
		if err != nil || len(out) != limit {
			t.Fatalf("exact bound: len %d err %v", len(out), err)
		}
	})

	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{Compression: true, MaxMessageBytes: limit}, fallback, nil)
		t.Run("one frame", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil, zOffer)
			rc.write(frame(finBit|rsv1Bit|byte(OpBinary), bomb))
			rc.expectClose(StatusMessageTooBig)
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusMessageTooBig {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("fragmented text", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil, zOffer)
			text := deflateLevel(t, bytes.Repeat([]byte("a"), limit+1), flate.BestSpeed)
			rc.write(frame(rsv1Bit|byte(OpText), text[:10]))
			rc.write(frame(finBit|byte(OpContinuation), text[10:]))
			rc.expectClose(StatusMessageTooBig)
		})
		t.Run("compressed size over the bound", func(t *testing.T) {
			// Refused on the header, before the payload is read.
			rc, _ := dial(t, ts.addr, nil, zOffer)
			h := []byte{finBit | rsv1Bit | byte(OpBinary), maskBit | 127}
			h = binary.BigEndian.AppendUint64(h, 2*limit)
			rc.write(append(h, 1, 2, 3, 4))
			rc.expectClose(StatusMessageTooBig)
		})
	})
}

// TestPreparedDeflateShared: a Prepared is compressed once for every
// connection with the same parameters (the same bytes, not a copy per
// member), plain for connections without compression, and with the
// window rule for a client that asked for server_max_window_bits=9
// (messages over 512 bytes go uncompressed to it).
func TestPreparedDeflateShared(t *testing.T) {
	h := newRecHandler()
	ts := newTestServer(t, Config{Compression: true}, false, h)
	a, _ := dial(t, ts.addr, nil, zOffer)
	ca := h.next(t, "open").c
	b, _ := dial(t, ts.addr, nil, zOffer)
	cb := h.next(t, "open").c
	p9, resp := dial(t, ts.addr, nil, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9")
	if !strings.HasSuffix(resp.Header.Get("Sec-WebSocket-Extensions"), "; server_max_window_bits=9") {
		t.Fatalf("window 9 offer answered %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	c9 := h.next(t, "open").c
	plain, _ := dial(t, ts.addr, nil)
	cp := h.next(t, "open").c

	small := []byte(strings.Repeat("small but compressible ", 10)) // 230 bytes
	large := []byte(strings.Repeat("a longer chat line ", 100))    // 1900 bytes
	tiny := []byte("hi")
	p := NewPrepared(OpText, small, large, tiny)
	for _, c := range []*Conn{ca, cb, c9, cp} {
		if err := c.WritePrepared(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, rc := range []*rawClient{a, b} {
		rc.expectZMessage(OpText, small, true)
		rc.expectZMessage(OpText, large, true)
		rc.expectZMessage(OpText, tiny, false)
	}
	p9.expectZMessage(OpText, small, true)
	p9.expectZMessage(OpText, large, false) // over 2^9 bytes
	p9.expectZMessage(OpText, tiny, false)
	for _, m := range [][]byte{small, large, tiny} {
		plain.expectMessage(OpText, m)
	}

	// Compressed once: both default connections got the same framing,
	// and exactly two framings exist (default and window 9).
	fa, fb := p.framesFor(ca.dec.z, &ts.srv.pool.z), p.framesFor(cb.dec.z, &ts.srv.pool.z)
	if &fa[0] != &fb[0] {
		t.Fatal("connections with the same parameters got different compressed framings")
	}
	if n := len(*p.z.Load()); n != 2 {
		t.Fatalf("%d compressed framings built, want 2", n)
	}
	if &p.framesFor(nil, &ts.srv.pool.z)[0] != &p.frames[0] {
		t.Fatal("a connection without compression does not get the plain frames")
	}
}

// FuzzDecoderDeflate is FuzzDecoder on a connection that negotiated
// permessage-deflate: no panic, inflated messages bounded by the limit, and
// the same events and verdict however the input is split.
func FuzzDecoderDeflate(f *testing.F) {
	z := func(b0 byte, msg []byte) []byte { return frame(b0|rsv1Bit, deflateMsg(f, msg)) }
	zbig := deflateMsg(f, make([]byte, 3*fuzzMax))
	seeds := [][]byte{
		z(finBit|byte(OpText), []byte("hello hello hello")),
		append(frame(rsv1Bit|byte(OpBinary), zbig[:5]), frame(finBit|byte(OpContinuation), zbig[5:])...),
		frame(finBit|rsv1Bit|byte(OpBinary), zbig),
		append(z(byte(OpText), []byte("frag")), ping("p")...),
		z(finBit|byte(OpText), []byte("ok \xff")),
		frame(finBit|rsv1Bit|byte(OpText), []byte{0x00}),
		frame(finBit|rsv1Bit|byte(OpPing), nil),
		text("plain"),
	}
	for i, s := range seeds {
		f.Add(s, uint16(i*7), uint16(len(s)/2))
	}
	params := &deflateParams{max: 1 << 30}
	f.Fuzz(func(t *testing.T, data []byte, c1, c2 uint16) {
		whole, wcode := decodeAllWith(t, data, nil, false, params)
		for _, ev := range whole {
			// "msg OP HEX": a message's hex is twice its length.
			if len(ev) > 2*fuzzMax+32 {
				t.Fatalf("delivered a message over the %d-byte limit", fuzzMax)
			}
		}
		a, b := int(c1)%(len(data)+1), int(c2)%(len(data)+1)
		if a > b {
			a, b = b, a
		}
		split, scode := decodeAllWith(t, data, []int{a, b}, false, params)
		if wcode != scode || strings.Join(whole, "|") != strings.Join(split, "|") {
			t.Fatalf("split changes the outcome:\nwhole %v %d\nsplit %v %d", whole, wcode, split, scode)
		}
	})
}

// TestDialDeflate: the client side offers permessage-deflate
// (DialOptions.Compression), compresses what it sends (RSV1 on a masked
// frame) and inflates what the engine sends compressed.
func TestDialDeflate(t *testing.T) {
	ts := newTestServer(t, Config{Compression: true}, false, nil)
	ctx := context.Background()
	c, resp, err := Dial(ctx, "ws://"+ts.addr+"/", &DialOptions{Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(StatusNormalClosure, "")
	if !c.Compression() || resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if !ts.h.next(t, "open").c.Compression() {
		t.Fatal("server side not compressed")
	}
	for _, m := range [][]byte{[]byte("hi"), bytes.Repeat([]byte("chat line "), 50), bytes.Repeat([]byte("big "), 100000)} {
		if err := c.WriteMessage(ctx, OpText, m); err != nil {
			t.Fatal(err)
		}
		if ev := ts.h.next(t, "message"); !bytes.Equal(ev.data, m) {
			t.Fatalf("server got %q, want %q", trunc(ev.data), trunc(m))
		}
		op, got, err := c.ReadMessage(ctx)
		if err != nil || op != OpText || !bytes.Equal(got, m) {
			t.Fatalf("echo %v %q %v, want %q", op, trunc(got), err, trunc(m))
		}
	}

	// On the wire: a compressed, masked frame with RSV1.
	addr, conns := fakeServer(t, func(fc *fakeConn) {
		accept(fc, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n")
	})
	fcl, _, err := Dial(ctx, "ws://"+addr+"/", &DialOptions{Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	fc := <-conns
	if got := fc.req.Header.Get("Sec-WebSocket-Extensions"); got != clientDeflateOffer {
		t.Fatalf("offer %q", got)
	}
	msg := bytes.Repeat([]byte("compress me "), 20)
	if err := fcl.WriteMessage(ctx, OpText, msg); err != nil {
		t.Fatal(err)
	}
	b0, _ := fc.br.Peek(1)
	if b0[0] != finBit|rsv1Bit|byte(OpText) {
		t.Fatalf("first header byte %#x, want FIN|RSV1|text", b0[0])
	}
	// readClientFrame checks the mask; strip RSV1 from its view.
	_, p := readClientFrame(t, fc.br)
	if got := inflateMsg(t, p); !bytes.Equal(got, msg) {
		t.Fatalf("inflated %q", trunc(got))
	}
}

// TestDialDeflateRefusals: an answer the offer does not allow fails Dial.
func TestDialDeflateRefusals(t *testing.T) {
	for _, ext := range []string{
		"permessage-deflate",                                                        // server would keep its context
		"permessage-deflate; client_no_context_takeover",                            // likewise
		"permessage-deflate; server_no_context_takeover; server_max_window_bits=10", // not offered
		"permessage-deflate; server_no_context_takeover; client_max_window_bits=10", // not offered
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
		"permessage-deflate; server_no_context_takeover=1",
		"permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover",
		"x-webkit-deflate-frame",
	} {
		t.Run(ext, func(t *testing.T) {
			addr, _ := fakeServer(t, func(fc *fakeConn) { accept(fc, "Sec-WebSocket-Extensions: "+ext+"\r\n") })
			c, _, err := Dial(context.Background(), "ws://"+addr+"/", &DialOptions{Compression: true})
			if c != nil || !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("Dial: %v, want ErrBadHandshake", err)
			}
		})
	}
}
