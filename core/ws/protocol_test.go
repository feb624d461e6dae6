package ws

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// TestProtocolErrors sends frames that break RFC 6455 section 5 and asserts
// the close code the server answers with (and that it then drops TCP).
func TestProtocolErrors(t *testing.T) {
	long64 := []byte{finBit | byte(OpBinary), maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
	nonMin16 := []byte{finBit | byte(OpText), maskBit | 126, 0, 5, 1, 2, 3, 4}
	nonMin64 := []byte{finBit | byte(OpText), maskBit | 127, 0, 0, 0, 0, 0, 0, 0, 200, 1, 2, 3, 4}
	tests := []struct {
		name string
		send [][]byte
		code StatusCode
	}{
		{"unmasked", [][]byte{frame(finBit|byte(OpText), []byte("hi"), true)}, StatusProtocolError},
		{"RSV1", [][]byte{frame(finBit|0x40|byte(OpText), []byte("hi"))}, StatusProtocolError},
		{"RSV2", [][]byte{frame(finBit|0x20|byte(OpText), []byte("hi"))}, StatusProtocolError},
		{"RSV3", [][]byte{frame(finBit|0x10|byte(OpBinary), []byte("hi"))}, StatusProtocolError},
		{"RSV on ping", [][]byte{frame(finBit|0x40|byte(OpPing), nil)}, StatusProtocolError},
		{"opcode 3", [][]byte{frame(finBit|3, nil)}, StatusProtocolError},
		{"opcode 7", [][]byte{frame(finBit|7, []byte("x"))}, StatusProtocolError},
		{"opcode 11", [][]byte{frame(finBit|11, nil)}, StatusProtocolError},
		{"opcode 15", [][]byte{frame(finBit|15, []byte("x"))}, StatusProtocolError},
		{"fragmented ping", [][]byte{frame(byte(OpPing), []byte("x")), frame(finBit|byte(OpContinuation), nil)}, StatusProtocolError},
		{"ping 126 bytes", [][]byte{frame(finBit|byte(OpPing), bytes.Repeat([]byte("x"), 126))}, StatusProtocolError},
		{"close 126 bytes", [][]byte{closeF(closeBody(1000, strings.Repeat("x", 124)))}, StatusProtocolError},
		{"continuation without start", [][]byte{frame(finBit|byte(OpContinuation), []byte("x"))}, StatusProtocolError},
		{"text inside fragmented", [][]byte{frame(byte(OpText), []byte("a")), text("b")}, StatusProtocolError},
		{"binary inside fragmented", [][]byte{frame(byte(OpBinary), []byte("a")), frame(byte(OpBinary), []byte("b"))}, StatusProtocolError},
		{"64-bit length MSB", [][]byte{long64}, StatusProtocolError},
		{"non-minimal 16-bit length", [][]byte{append(nonMin16, 1, 2, 3, 4, 5)}, StatusProtocolError},
		{"non-minimal 64-bit length", [][]byte{nonMin64}, StatusProtocolError},
		{"invalid UTF-8", [][]byte{text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")}, StatusInvalidFramePayloadData},
		{"truncated UTF-8", [][]byte{text("ab\xe2\x82")}, StatusInvalidFramePayloadData},
		{"UTF-8 split across fragments, bad", [][]byte{frame(byte(OpText), []byte("\xe2")), frame(finBit|byte(OpContinuation), []byte("\x28\xa1"))}, StatusInvalidFramePayloadData},
		{"close 1-byte payload", [][]byte{closeF([]byte{3})}, StatusProtocolError},
		{"close reason bad UTF-8", [][]byte{closeF(closeBody(1000, "\xff\xfe"))}, StatusInvalidFramePayloadData},
	}
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rc, _ := dial(t, ts.addr, nil)
				for _, f := range tt.send {
					rc.write(f)
				}
				rc.expectClose(tt.code)
				if ce := ts.h.closeOf(t, rc); ce.Code != tt.code {
					t.Fatalf("OnClose code %d, want %d", ce.Code, tt.code)
				}
			})
		}
	})
}

// TestCloseCodes checks the close code rules of section 7.4 against what
// Autobahn 7.7.x/7.9.x/7.13.x expect: valid codes are echoed, others fail
// with 1002.
func TestCloseCodes(t *testing.T) {
	valid := []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []StatusCode{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		for _, code := range valid {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(closeF(closeBody(code, "why")))
			rc.expectClose(code, "why")
			if ce := ts.h.closeOf(t, rc); ce.Code != code || ce.Reason != "why" {
				t.Fatalf("OnClose %+v, want %d why", ce, code)
			}
		}
		for _, code := range invalid {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(closeF(closeBody(code, "")))
			rc.expectClose(StatusProtocolError)
			ts.h.closeOf(t, rc)
		}
		// An empty close is answered with an empty close; OnClose sees 1005.
		rc, _ := dial(t, ts.addr, nil)
		rc.write(closeF(nil))
		f := rc.mustFrame()
		if f.op != OpClose || len(f.payload) != 0 {
			t.Fatalf("got %v %q, want empty close", f.op, f.payload)
		}
		rc.expectEOF()
		if ce := ts.h.closeOf(t, rc); ce.Code != StatusNoStatusRcvd {
			t.Fatalf("OnClose %+v, want 1005", ce)
		}
	})
}

// TestUTF8FailFast: the server fails the connection at the first byte that
// makes the text invalid, before the frame or message is complete
// (Autobahn 6.4.x).
func TestUTF8FailFast(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		t.Run("mid-frame", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			payload := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\xce\xba\xe1\xbd\xb9")
			f := text(string(payload))
			// Header + the bytes up to and including 0x90 (which makes
			// \xf4 impossible); the rest is never sent.
			cut := len(f) - len(payload) + 13
			rc.write(f[:cut])
			rc.expectClose(StatusInvalidFramePayloadData)
		})
		t.Run("across fragments", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(frame(byte(OpText), []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")))
			rc.write(frame(byte(OpContinuation), []byte("\xf4\x90\x80\x80")))
			// No final fragment: the error must not wait for it.
			rc.expectClose(StatusInvalidFramePayloadData)
		})
		t.Run("valid split across fragments", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(frame(byte(OpText), []byte("\xf0\x9f")))
			rc.write(frame(byte(OpContinuation), []byte("\x98")))
			rc.write(frame(finBit|byte(OpContinuation), []byte("\x80!")))
			rc.expectMessage(OpText, []byte("😀!"))
		})
	})
}

// TestMessageTooBig: 1009 as soon as a header or the running total passes
// MaxMessageBytes, without waiting for (or buffering) the payload.
func TestMessageTooBig(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{MaxMessageBytes: 1000}, fallback, nil)
		t.Run("exactly max", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			msg := bytes.Repeat([]byte{7}, 1000)
			rc.write(bin(msg))
			rc.expectMessage(OpBinary, msg)
		})
		t.Run("one big frame, header only", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			h := []byte{finBit | byte(OpBinary), maskBit | 126, 0x13, 0x88, 1, 2, 3, 4} // 5000 bytes announced
			rc.write(h)
			rc.expectClose(StatusMessageTooBig)
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusMessageTooBig {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("huge 64-bit frame", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			h := []byte{finBit | byte(OpText), maskBit | 127}
			h = binary.BigEndian.AppendUint64(h, 1<<62)
			rc.write(append(h, 1, 2, 3, 4))
			rc.expectClose(StatusMessageTooBig)
		})
		t.Run("many small fragments", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			chunk := bytes.Repeat([]byte("y"), 100)
			rc.write(frame(byte(OpText), chunk))
			for i := 0; i < 9; i++ { // 1000 bytes so far: still fine
				rc.write(frame(byte(OpContinuation), chunk))
			}
			rc.write(frame(byte(OpContinuation), []byte("z"))) // 1001
			rc.expectClose(StatusMessageTooBig)
		})
	})
}

// TestEchoAndFragments covers data paths: small and large messages (the
// latter split across reads), fragmented messages with interleaved control
// frames, ping/pong, handshake and first frame in one segment.
func TestEchoAndFragments(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		t.Run("small text and binary", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(text("hello"))
			rc.expectMessage(OpText, []byte("hello"))
			rc.write(bin([]byte{0, 1, 2, 0xff}))
			rc.expectMessage(OpBinary, []byte{0, 1, 2, 0xff})
			rc.write(text(""))
			rc.expectMessage(OpText, nil)
		})
		t.Run("bytes after the handshake in the same segment", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, append(text("first"), text("second")...))
			rc.expectMessage(OpText, []byte("first"))
			rc.expectMessage(OpText, []byte("second"))
		})
		t.Run("large messages", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			for _, n := range []int{125, 126, 65535, 65536, 300000} {
				msg := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
				rc.write(bin(msg))
				rc.expectMessage(OpBinary, msg)
			}
		})
		t.Run("byte by byte", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			f := append(text("split"), ping("p")...)
			for i := range f {
				rc.write(f[i : i+1])
				time.Sleep(time.Millisecond)
			}
			rc.expectMessage(OpText, []byte("split"))
			rc.expectMessage(OpPong, []byte("p"))
		})
		t.Run("fragments with interleaved ping", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			var b []byte
			b = append(b, frame(byte(OpText), []byte("frag"))...)
			b = append(b, ping("ping payload")...)
			b = append(b, frame(byte(OpContinuation), []byte("men"))...)
			b = append(b, frame(finBit|byte(OpPong), []byte("unsolicited"))...)
			b = append(b, frame(finBit|byte(OpContinuation), []byte("ted"))...)
			rc.write(b)
			rc.expectMessage(OpPong, []byte("ping payload"))
			rc.expectMessage(OpText, []byte("fragmented"))
		})
		t.Run("ping 125 bytes", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			p := strings.Repeat("\xfe", 125)
			rc.write(ping(p))
			rc.expectMessage(OpPong, []byte(p))
		})
		t.Run("peer close is echoed and reported", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(closeF(closeBody(4001, "done")))
			rc.expectClose(4001, "done")
			if ce := ts.h.closeOf(t, rc); ce.Code != 4001 || ce.Reason != "done" {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("TCP drop is 1006", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.nc.Close()
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusAbnormalClosure {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("nothing processed after close", func(t *testing.T) {
			rc, _ := dial(t, ts.addr, nil)
			rc.write(append(closeF(closeBody(1000, "")), text("after")...))
			rc.expectClose(1000)
		})
	})
}
