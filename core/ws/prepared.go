package ws

import (
	"encoding/binary"
	"sync"
)

// Prepared is one or more data messages encoded once (one frame per
// message, concatenated) and written to many connections without copying:
// the broadcast fast path. A Prepared is immutable; connections whose
// socket cannot take it at once queue a reference to its bytes.
type Prepared struct {
	op     Opcode
	n      int
	frames []byte

	hixieOnce sync.Once
	hixie     []byte // hixie-76 framing, built on first use
	hixieErr  error
}

// NewPrepared encodes msgs as op (OpText or OpBinary) frames. Other opcodes
// are encoded as binary.
func NewPrepared(op Opcode, msgs ...[]byte) *Prepared {
	if op != OpText {
		op = OpBinary
	}
	size := 0
	for _, m := range msgs {
		size += 10 + len(m)
	}
	b := make([]byte, 0, size)
	for _, m := range msgs {
		b = appendFrame(b, op, m)
	}
	return &Prepared{op: op, n: len(msgs), frames: b}
}

// Len returns the number of messages.
func (p *Prepared) Len() int { return p.n }

// hixieFrames returns the messages in hixie-76 framing, derived from the
// RFC 6455 frames (which are unmasked, so their payloads are the messages).
func (p *Prepared) hixieFrames() ([]byte, error) {
	p.hixieOnce.Do(func() {
		if p.op != OpText {
			p.hixieErr = errHixieBinary
			return
		}
		out := make([]byte, 0, len(p.frames))
		b := p.frames
		for len(b) > 0 {
			n := int(b[1] & lenBits)
			h := 2
			switch n {
			case 126:
				n = int(binary.BigEndian.Uint16(b[2:]))
				h = 4
			case 127:
				n = int(binary.BigEndian.Uint64(b[2:]))
				h = 10
			}
			out = append(out, 0x00)
			out = append(out, b[h:h+n]...)
			out = append(out, 0xFF)
			b = b[h+n:]
		}
		p.hixie = out
	})
	return p.hixie, p.hixieErr
}
