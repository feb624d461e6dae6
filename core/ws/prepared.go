package ws

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
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

	// Compressed framings (permessage-deflate), one per set of
	// parameters connections asked for, built on first use
	// (prepared_deflate.go).
	zmu sync.Mutex
	z   atomic.Pointer[[]zframes]
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
		eachPayload(p.frames, func(m []byte) {
			out = append(out, 0x00)
			out = append(out, m...)
			out = append(out, 0xFF)
		})
		p.hixie = out
	})
	return p.hixie, p.hixieErr
}

// eachPayload calls f with the payload of every frame in frames: unmasked
// final frames as appendFrame writes them, so a payload is the message.
func eachPayload(frames []byte, f func([]byte)) {
	for len(frames) > 0 {
		n := int(frames[1] & lenBits)
		h := 2
		switch n {
		case 126:
			n = int(binary.BigEndian.Uint16(frames[2:]))
			h = 4
		case 127:
			n = int(binary.BigEndian.Uint64(frames[2:]))
			h = 10
		}
		f(frames[h : h+n])
		frames = frames[h+n:]
	}
}
