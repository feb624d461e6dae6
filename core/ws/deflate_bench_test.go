package ws

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// chatWords is the vocabulary of the generated chat corpus: common English
// words, chat slang, a few technical words, emoji and accented words, so
// that the text has the letter statistics and the short repeats of real
// chat without being downloaded.
var chatWords = strings.Fields(`the a to and of is in it you that for on was with he be at this have are
not but what all were we when your can said there use an each which she do how their if will up other
about out many then them these so some her would make like him into time has look two more write go see
number no way could people my than first been call who its now find long down day did get come made may
part hello hi hey thanks thx yeah yes no lol ok okay sure maybe tomorrow tonight meeting deploy server room
chat anyone know why build failing test passed merged review please link here branch release fixed bug
:) :D ;) 👍 🎉 café naïve über déjà-vu`)

// chatCorpus returns n moonchat.v1-like message events: JSON with a room,
// a sequence id, a time, a nick and a text of 2 to 21 words (one in ten
// much longer), which is what a chat server broadcasts most.
func chatCorpus(n int) [][]byte {
	r := rand.New(rand.NewPCG(7, 13))
	nicks := []string{"alice", "bob", "carol", "dave", "eve", "mallory", "trent", "peggy", "victor", "walter"}
	out := make([][]byte, n)
	for i := range out {
		k := 2 + r.IntN(20)
		if r.IntN(10) == 0 {
			k += 20 + r.IntN(80)
		}
		var b strings.Builder
		for j := range k {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(chatWords[r.IntN(len(chatWords))])
		}
		out[i] = fmt.Appendf(nil, `{"type":"message","room":"lobby","id":%d,"time":"2026-12-02T17:%02d:%02dZ","user":%q,"text":%q}`,
			100000+i, r.IntN(60), r.IntN(60), nicks[r.IntN(len(nicks))], b.String())
	}
	return out
}

// BenchmarkDeflateMessage: compressing and inflating one corpus message
// (what a broadcast costs once, whatever the number of members, and what
// one incoming compressed message costs), with the compression ratio.
func BenchmarkDeflateMessage(b *testing.B) {
	corpus := chatCorpus(1000)
	var fp flatePools
	b.Run("compress", func(b *testing.B) {
		in, out := 0, 0
		var dst []byte
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			m := corpus[i%len(corpus)]
			i++
			d := fp.getDeflater()
			z, _ := d.compress(dst[:0], m)
			dst = z
			fp.putDeflater(d)
			in += len(m)
			out += len(z)
		}
		b.ReportMetric(float64(out)/float64(in), "ratio")
		b.ReportMetric(float64(in)/float64(i), "bytes/msg")
	})
	b.Run("inflate", func(b *testing.B) {
		d := fp.getDeflater()
		zs := make([][]byte, len(corpus))
		for i, m := range corpus {
			z, _ := d.compress(nil, m)
			zs[i] = z
		}
		var dst []byte
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			out, err := fp.inflate(dst[:0], zs[i%len(zs)], 1<<20, nil)
			if err != nil {
				b.Fatal(err)
			}
			dst = out
			i++
		}
	})
}

// BenchmarkBroadcastDeflate is the 100-member broadcast of a chat room on
// the corpus, with and without permessage-deflate: one op is one message
// delivered to all 100 members, a new Prepared per message as core/chat
// builds them (so the one compression per message is in the figure).
// wire-B/delivery is the frame bytes each member receives per message;
// ns/delivery is the broadcaster's time per member per message.
func BenchmarkBroadcastDeflate(b *testing.B) {
	corpus := chatCorpus(1000)
	for _, compress := range []bool{false, true} {
		name := "off"
		if compress {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			const members = 100
			conns := benchMembers(b, members, Config{MaxQueueBytes: 64 << 20, Compression: compress}, compress)
			wire := 0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				p := NewPrepared(OpText, corpus[i%len(corpus)])
				i++
				for _, c := range conns {
					if err := c.WritePrepared(p); err != nil {
						b.Fatal(err)
					}
				}
				wire += len(p.framesFor(conns[0].dec.z, &conns[0].srv.pool.z))
			}
			b.ReportMetric(float64(wire)/float64(i), "wire-B/delivery")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*members), "ns/delivery")
			b.ReportMetric(float64(i*members)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// benchMembers connects n clients that read and discard (offering
// permessage-deflate when offer is set) and returns the server's Conns.
func benchMembers(b *testing.B, n int, cfg Config, offer bool) []*Conn {
	b.Helper()
	h := newRecHandler()
	srv, err := NewServer(h, cfg)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() { hs.Close(); _ = srv.Close() })
	addr := hs.Listener.Addr().String()
	var extra []string
	if offer {
		extra = []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}
	}
	conns := make([]*Conn, 0, n)
	for range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nc.Close() })
		if _, err := nc.Write([]byte(handshakeRequest(addr, "/", extra...))); err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			b.Fatal("handshake failed", err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != offer {
			b.Fatalf("compression negotiated: %v, want %v", got, offer)
		}
		go func() { _, _ = io.Copy(io.Discard, br) }()
		conns = append(conns, (<-h.events).c)
	}
	return conns
}

// BenchmarkDeflateBySize reports the compression ratio of single chat
// messages by size class: what CompressionThreshold trades.
func BenchmarkDeflateBySize(b *testing.B) {
	corpus := chatCorpus(5000)
	var fp flatePools
	for _, lim := range [][2]int{{0, 64}, {64, 128}, {128, 256}, {256, 512}, {512, 1 << 20}} {
		var msgs [][]byte
		for _, m := range corpus {
			if len(m) >= lim[0] && len(m) < lim[1] {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) == 0 {
			continue
		}
		b.Run(strconv.Itoa(lim[0])+"-"+strconv.Itoa(lim[1]), func(b *testing.B) {
			in, out, i := 0, 0, 0
			for b.Loop() {
				m := msgs[i%len(msgs)]
				i++
				d := fp.getDeflater()
				z, ok := d.compress(nil, m)
				fp.putDeflater(d)
				in += len(m)
				if ok {
					out += len(z)
				} else {
					out += len(m) // sent uncompressed
				}
			}
			b.ReportMetric(float64(out)/float64(in), "ratio")
		})
	}
}
