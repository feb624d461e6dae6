package ws

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// The example of draft-hixie-thewebsocketprotocol-76 (checked independently:
// parts 829309203 and 259970620, MD5 answer "8jKS'y:G*Co,Wxa-").
const (
	hixieKey1   = "4 @1  46546xW%0l 1 5"
	hixieKey2   = "12998 5 Y3 1  .P00"
	hixieKey3   = "^n:ds[4U"
	hixieAnswer = "8jKS'y:G*Co,Wxa-"
)

func TestHixieKeyPart(t *testing.T) {
	tests := []struct {
		key  string
		part uint32
		ok   bool
	}{
		{hixieKey1, 829309203, true},
		{hixieKey2, 259970620, true},
		{"1 2", 12, true},
		{"12", 0, false},                       // no spaces
		{"1 0 1", 0, false},                    // 101 / 2
		{"  ", 0, true},                        // 0 / 2
		{"99999999999999999999999 ", 0, false}, // overflow
		{"8589934590 ", 0, false},              // part above 32 bits
	}
	for _, tt := range tests {
		part, err := hixieKeyPart(tt.key)
		if (err == nil) != tt.ok || (tt.ok && part != tt.part) {
			t.Errorf("hixieKeyPart(%q) = %d, %v; want %d ok=%v", tt.key, part, err, tt.part, tt.ok)
		}
	}
	var key3 [8]byte
	copy(key3[:], hixieKey3)
	if got := hixieChallenge(829309203, 259970620, key3); string(got[:]) != hixieAnswer {
		t.Fatalf("challenge %q", got)
	}
}

func hixieRequest(host, key1, key2 string) string {
	return "GET /demo HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: " + key2 +
		"\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: " + key1 +
		"\r\nOrigin: http://" + host + "\r\n\r\n" + hixieKey3
}

func TestHixie76(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{Hixie76: true, Subprotocols: []string{"sample"}}, fallback, nil)
		t.Run("handshake, framing, close", func(t *testing.T) {
			rc := dialTCP(t, ts.addr)
			// The first frame rides in the same segment as the handshake.
			rc.write(append([]byte(hixieRequest(ts.addr, hixieKey1, hixieKey2)), "\x00first\xff"...))
			want := "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Origin: http://" + ts.addr + "\r\nSec-WebSocket-Location: ws://" + ts.addr + "/demo\r\n" +
				"Sec-WebSocket-Protocol: sample\r\n\r\n" + hixieAnswer
			got := make([]byte, len(want))
			if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != want {
				t.Fatalf("response %q, %v\nwant %q", got, err, want)
			}
			ev := ts.h.next(t, "open")
			if !ev.c.Hixie76() || ev.c.Subprotocol() != "sample" {
				t.Fatalf("Hixie76=%v Subprotocol=%q", ev.c.Hixie76(), ev.c.Subprotocol())
			}
			expect := func(want string) {
				t.Helper()
				got := make([]byte, len(want))
				if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != want {
					t.Fatalf("got %q, %v; want %q", got, err, want)
				}
			}
			expect("\x00first\xff")
			// A frame split across writes, with UTF-8.
			rc.write([]byte("\x00κό"))
			rc.write([]byte("σμε\xff\x00\xff"))
			expect("\x00κόσμε\xff\x00\xff")
			// Prepared messages are re-framed for hixie-76.
			if err := ev.c.WritePrepared(NewPrepared(OpText, []byte("p1"), bytes.Repeat([]byte("x"), 300))); err != nil {
				t.Fatal(err)
			}
			expect("\x00p1\xff\x00" + string(bytes.Repeat([]byte("x"), 300)) + "\xff")
			if err := ev.c.WritePreparedBatch([]*Prepared{NewPrepared(OpText, []byte("q1")), NewPrepared(OpText, []byte("q2"), []byte("q3"))}); err != nil {
				t.Fatal(err)
			}
			expect("\x00q1\xff\x00q2\xff\x00q3\xff")
			if err := ev.c.WriteMessage(OpBinary, []byte{1}); err == nil {
				t.Fatal("binary write on hixie-76 accepted")
			}
			// Close: 0xFF 0x00 answered with 0xFF 0x00, then TCP closes.
			rc.write([]byte{0xff, 0x00})
			expect("\xff\x00")
			rc.expectEOF()
			ts.h.closeOf(t, rc)
		})
		t.Run("bad UTF-8 closes", func(t *testing.T) {
			rc := dialTCP(t, ts.addr)
			rc.write([]byte(hixieRequest(ts.addr, hixieKey1, hixieKey2)))
			if resp := rc.response(); resp.StatusCode != 101 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			rc.write([]byte("\x00ok\xc0"))
			rest, _ := io.ReadAll(rc.br)
			if string(rest) != hixieAnswer+"\xff\x00" {
				t.Fatalf("got %q, want the answer, the closing frame, EOF", rest)
			}
			rc.nc.Close()
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusInvalidFramePayloadData {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		for _, tt := range []struct{ name, k1, k2 string }{
			{"key without spaces", "12345", hixieKey2},
			{"key not a multiple of its spaces", hixieKey1, "1 0 1"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				rc := dialTCP(t, ts.addr)
				rc.write([]byte(hixieRequest(ts.addr, tt.k1, tt.k2)))
				resp := rc.response()
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d", resp.StatusCode)
				}
			})
		}
	})
}

// TestHixie76Key3Timeout: a client that never sends the eight key3 bytes is
// dropped after HandshakeTimeout, without OnOpen.
func TestHixie76Key3Timeout(t *testing.T) {
	ts := newTestServer(t, Config{Hixie76: true, HandshakeTimeout: 100 * time.Millisecond}, false, nil)
	rc := dialTCP(t, ts.addr)
	req := hixieRequest(ts.addr, hixieKey1, hixieKey2)
	rc.write([]byte(req[:len(req)-len(hixieKey3)+3])) // 3 of the 8 bytes
	rc.expectEOF()
	select {
	case ev := <-ts.h.events:
		t.Fatalf("unexpected %s event", ev.kind)
	default:
	}
}
