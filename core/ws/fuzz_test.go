package ws

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// recSink records decoder events as strings.
type recSink struct{ out []string }

func (s *recSink) onMessage(op Opcode, data []byte) bool {
	s.out = append(s.out, fmt.Sprintf("msg %v %x", op, data))
	return true
}
func (s *recSink) onPing(p []byte) bool {
	s.out = append(s.out, fmt.Sprintf("ping %x", p))
	return true
}
func (s *recSink) onPong(p []byte) bool {
	s.out = append(s.out, fmt.Sprintf("pong %x", p))
	return true
}
func (s *recSink) onClose(code StatusCode, reason []byte) {
	s.out = append(s.out, fmt.Sprintf("close %d %x", code, reason))
}

const fuzzMax = 4096

// decodeAll feeds data in pieces cut at the given offsets and returns the
// events and the error code (0 when none).
func decodeAll(t *testing.T, data []byte, cuts []int, hixie bool) ([]string, StatusCode) {
	return decodeAllWith(t, data, cuts, hixie, nil)
}

// decodeAllWith is decodeAll on a decoder with permessage-deflate
// parameters z (nil: not negotiated).
func decodeAllWith(t *testing.T, data []byte, cuts []int, hixie bool, z *deflateParams) ([]string, StatusCode) {
	data = bytes.Clone(data) // unmasking works in place
	var pool bufPool
	d := newDecoder(fuzzMax, hixie, &pool)
	d.z = z
	s := &recSink{}
	prev := 0
	for _, c := range append(cuts, len(data)) {
		if c < prev || c > len(data) {
			continue
		}
		n, err := d.feed(data[prev:c], s)
		if err != nil {
			return s.out, err.Code
		}
		if n != c-prev {
			t.Fatalf("feed consumed %d of %d without stopping", n, c-prev)
		}
		if d.buf != nil && cap(*d.buf) > 2*fuzzMax+poolBufSize {
			t.Fatalf("message buffer grew to %d with max %d", cap(*d.buf), fuzzMax)
		}
		prev = c
	}
	return s.out, 0
}

// FuzzDecoder feeds arbitrary bytes split arbitrarily: no panic, bounded
// buffers, and the same events and verdict however the input is split.
func FuzzDecoder(f *testing.F) {
	seeds := [][]byte{
		text("hello"),
		append(frame(byte(OpText), []byte("frag")), frame(finBit|byte(OpContinuation), []byte("ment"))...),
		append(append(frame(byte(OpBinary), []byte{1, 2}), ping("p")...), frame(finBit|byte(OpContinuation), []byte{3})...),
		closeF(closeBody(1000, "bye")),
		closeF([]byte{1}),
		text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
		bin(bytes.Repeat([]byte{9}, 300)),
		bin(bytes.Repeat([]byte{9}, 5000)),
		{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4},
		frame(finBit|0x40|byte(OpText), nil),
		{0x00, 'h', 'i', 0xff, 0xff, 0x00},
	}
	for i, s := range seeds {
		f.Add(s, uint16(i*7), uint16(len(s)/2), false)
	}
	f.Add([]byte("\x00hello\xff\x00\xce\xba\xff\xff\x00"), uint16(3), uint16(9), true)
	f.Fuzz(func(t *testing.T, data []byte, c1, c2 uint16, hixie bool) {
		whole, wcode := decodeAll(t, data, nil, hixie)
		a, b := int(c1)%(len(data)+1), int(c2)%(len(data)+1)
		if a > b {
			a, b = b, a
		}
		split, scode := decodeAll(t, data, []int{a, b}, hixie)
		// Byte by byte too: the most adversarial split.
		var every []int
		for i := 1; i < len(data) && i < 512; i++ {
			every = append(every, i)
		}
		bytewise, bcode := decodeAll(t, data, every, hixie)
		if wcode != scode || wcode != bcode || strings.Join(whole, "|") != strings.Join(split, "|") || strings.Join(whole, "|") != strings.Join(bytewise, "|") {
			t.Fatalf("split changes the outcome:\nwhole %v %d\nsplit %v %d\nbytes %v %d", whole, wcode, split, scode, bytewise, bcode)
		}
	})
}

// FuzzHandshake parses arbitrary request headers through every handshake
// check: no panic, and accepted requests produce well-formed responses.
func FuzzHandshake(f *testing.F) {
	f.Add("Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, x")
	f.Add("Host: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key1: " + hixieKey1 + "\r\nSec-WebSocket-Key2: " + hixieKey2 + "\r\nOrigin: http://a")
	f.Add("Host: a\r\nConnection: keep-alive, upgrade\r\nUpgrade: x,websocket\r\nSec-WebSocket-Version: 8")
	f.Add("Host: a\r\nSec-WebSocket-Key1: 99999999999999999999 \r\nSec-WebSocket-Key2:  ")
	f.Add("Host: a\r\nOrigin: ://%zz\r\nSec-WebSocket-Key: ====")
	f.Add("Host: a\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits, x; y=\"a,b\"")
	// One rule of each form, so that the fuzzer walks them all.
	hosts, err := NewHostPolicy([]string{"a", "b.example:8080", "*.c.example", "*.d.example:443", "192.0.2.1", "2001:db8::1", "[2001:db8::2]:8443"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, headers string) {
		raw := "GET /p?q HTTP/1.1\r\n" + headers + "\r\n\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		IsUpgradeRequest(r)
		SameOrigin(r)
		if herr, ok := hosts.Check(r).(*HandshakeError); ok && (herr.Status != 421 || strings.ContainsAny(herr.Reason, "\r\n")) {
			t.Fatalf("host refusal %+v", herr)
		}
		if ext, z := negotiateDeflate(r.Header, 0); (ext == "") != (z == nil) || strings.ContainsAny(ext, "\r\n,") {
			t.Fatalf("permessage-deflate answer %q %+v", ext, z)
		}
		proto := selectSubprotocol(r, []string{"chat", "moonchat.v1"})
		if proto != "" && proto != "chat" && proto != "moonchat.v1" {
			t.Fatalf("selected unsupported %q", proto)
		}
		if key, herr := checkRFC6455(r); herr == nil {
			if a := AcceptKey(key); len(a) != 28 {
				t.Fatalf("accept %q", a)
			}
		} else if herr.Status != 400 && herr.Status != 426 || strings.ContainsAny(herr.Reason, "\r\n") {
			t.Fatalf("refusal %+v", herr)
		}
		if p1, p2, herr := checkHixie76(r); herr == nil {
			resp := hixieResponse(r, proto, hixieChallenge(p1, p2, [8]byte{}))
			head := string(resp[:len(resp)-16])
			if !strings.HasSuffix(head, "\r\n\r\n") || strings.Count(head, "\n") != strings.Count(head, "\r\n") || strings.Contains(head[:len(head)-4], "\r\n\r\n") {
				t.Fatalf("malformed hixie-76 response %q", head)
			}
		} else if herr.Status != 400 {
			t.Fatalf("refusal %+v", herr)
		}
	})
}
