package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// nopSink discards decoder events.
type nopSink struct{ n int }

func (s *nopSink) onMessage(op Opcode, data []byte) bool { s.n += len(data); return true }
func (s *nopSink) onPing([]byte) bool                    { return true }
func (s *nopSink) onPong([]byte) bool                    { return true }
func (s *nopSink) onClose(StatusCode, []byte)            {}

func BenchmarkFrameHeaderEncode(b *testing.B) {
	for _, n := range []int{100, 1000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var h [10]byte
			for b.Loop() {
				putHeader(h[:], OpText, n)
			}
		})
	}
}

func BenchmarkFrameHeaderDecode(b *testing.B) {
	for _, n := range []int{100, 1000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := bin(make([]byte, n))
			h := f[:headerLen(f[1])]
			d := newDecoder(1<<30, false, nil)
			for b.Loop() {
				d.state, d.msgOp = decHeader, 0
				if err := d.header(h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecoder measures decoder throughput on a 64 KiB read buffer full
// of masked messages (unmasking, UTF-8 validation for text, delivery).
func BenchmarkDecoder(b *testing.B) {
	for _, tc := range []struct {
		name string
		op   Opcode
		size int
	}{
		{"binary-16B", OpBinary, 16},
		{"binary-1KiB", OpBinary, 1024},
		{"binary-16KiB", OpBinary, 16 << 10},
		{"text-ascii-1KiB", OpText, 1024},
		{"text-multibyte-1KiB", OpText, 1024},
	} {
		b.Run(tc.name, func(b *testing.B) {
			payload := bytes.Repeat([]byte("x"), tc.size)
			if strings.Contains(tc.name, "multibyte") {
				payload = []byte(strings.Repeat("κόσμε日本😀", tc.size)[:tc.size])
				for !validUTF8(payload) {
					payload = payload[:len(payload)-1]
				}
			}
			var pristine []byte
			for len(pristine) < 64<<10-tc.size-14 {
				pristine = append(pristine, frame(finBit|byte(tc.op), payload)...)
			}
			buf := make([]byte, len(pristine))
			var pool bufPool
			d := newDecoder(1<<30, false, &pool)
			s := &nopSink{}
			b.SetBytes(int64(len(pristine)))
			for b.Loop() {
				copy(buf, pristine) // the decoder unmasks in place
				if _, err := d.feed(buf, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecoderFragmented measures the buffered path: a message in
// 1 KiB fragments.
func BenchmarkDecoderFragmented(b *testing.B) {
	var pristine []byte
	chunk := bytes.Repeat([]byte("y"), 1024)
	pristine = append(pristine, frame(byte(OpText), chunk)...)
	for i := 0; i < 30; i++ {
		pristine = append(pristine, frame(byte(OpContinuation), chunk)...)
	}
	pristine = append(pristine, frame(finBit|byte(OpContinuation), chunk)...)
	buf := make([]byte, len(pristine))
	var pool bufPool
	d := newDecoder(1<<30, false, &pool)
	s := &nopSink{}
	b.SetBytes(int64(len(pristine)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, pristine)
		if _, err := d.feed(buf, s); err != nil {
			b.Fatal(err)
		}
	}
}

func validUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "") == string(b) }

// TestConnSize keeps Conn small: idle connections are the memory budget
// (<= 4 KB per idle connection, socket buffers aside).
func TestConnSize(t *testing.T) {
	if s := unsafe.Sizeof(Conn{}); s > 300 {
		t.Fatalf("Conn is %d bytes, budget 300", s)
	} else {
		t.Logf("Conn is %d bytes", s)
	}
}

// BenchmarkFanOut writes one Prepared message to 100 connections per
// iteration (the broadcast path of a chat room); clients read and discard.
// deliveries/s is the figure to compare with other engines.
func BenchmarkFanOut(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			h := newRecHandler()
			srv, err := NewServer(h, Config{MaxQueueBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer func() { hs.Close(); _ = srv.Close() }()
			addr := hs.Listener.Addr().String()
			const n = 100
			conns := make([]*Conn, 0, n)
			for i := 0; i < n; i++ {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				if _, err := nc.Write([]byte(handshakeRequest(addr, "/"))); err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(nc)
				if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
					b.Fatal("handshake failed", err)
				}
				go io.Copy(io.Discard, br)
				conns = append(conns, (<-h.events).c)
			}
			p := NewPrepared(OpText, bytes.Repeat([]byte("m"), size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, c := range conns {
					if err := c.WritePrepared(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
