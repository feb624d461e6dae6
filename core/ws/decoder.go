package ws

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/moonchat/moonchat/core/ws/internal/mask"
	"github.com/moonchat/moonchat/core/ws/internal/utf8"
)

// frameSink receives what a decoder recognises. Each method returns false to
// make feed stop right after the event (PauseReading, or the connection
// ending); feed then reports how many bytes it consumed.
type frameSink interface {
	// onMessage delivers a complete data message. data is only valid
	// during the call.
	onMessage(op Opcode, data []byte) bool
	onPing(payload []byte) bool
	onPong(payload []byte) bool
	// onClose delivers a valid close frame; code is StatusNoStatusRcvd when
	// the frame had no body. Nothing is decoded after it.
	onClose(code StatusCode, reason []byte)
}

// Decoder states.
const (
	decHeader  uint8 = iota // reading a frame header (hdr holds hdrN bytes)
	decPayload              // reading remain more payload bytes
	decDone                 // after a close frame or an error: input is ignored
	hixType                 // hixie-76: expecting a frame type byte
	hixText                 // hixie-76: inside a 0x00 … 0xFF text frame
	hixClose                // hixie-76: got 0xFF, expecting 0x00
)

// decoder is a push-style frame parser (RFC 6455 section 5, or the hixie-76
// draft): feed takes whatever bytes arrived, split anywhere, and reports
// complete messages and control frames to a frameSink.
//
// Invariants:
//   - Between calls it keeps only a partial header (at most 14 bytes), the
//     current frame's key/length and the message's running length and
//     UTF-8 state.
//   - A message that lies whole inside one feed call is delivered as a slice
//     of the caller's buffer (zero copy). Only a message split across frames
//     or reads is copied into buf, which exists while the message is
//     incomplete and goes back to the pool once it has been delivered, so an
//     idle connection holds no buffer.
//   - Limits are checked on the frame header, before the payload is read:
//     a message over max fails with 1009 without being buffered.
//   - Text is validated as bytes arrive, so invalid UTF-8 fails (1007) at
//     the first impossible byte, even in the middle of a frame.
//   - Payload length encodings must be minimal (section 5.2: "the minimal
//     number of bytes MUST be used"); a non-minimal one fails with 1002.
//     Browsers and the common client libraries always encode minimally.
//   - With permessage-deflate (z set), a compressed message (RSV1 on its
//     first frame, RFC 7692 section 6) is gathered compressed, bounded by
//     zmax, and inflated once complete with a pooled inflater into a
//     pooled buffer, bounded by max as it inflates (1009 before the memory
//     is spent); UTF-8 is validated on the inflated text. Nothing of it is
//     kept between messages.
type decoder struct {
	state  uint8
	hdrN   uint8
	keyPos uint8
	fin    bool
	fresh  bool   // no payload of the current frame consumed yet
	ctrlN  uint8  // bytes in ctrl
	op     Opcode // opcode of the current frame
	msgOp  Opcode // OpText/OpBinary while a message is in progress, else 0
	utf8   utf8.Validator
	hdr    [maxHeaderLen]byte
	key    [4]byte
	// client is set on the client side of a connection (Dial): the peer
	// is a server, whose frames must NOT be masked (RFC 6455 section 5.1),
	// while a server requires masked frames from its clients.
	client     bool
	masked     bool  // the current frame carries a masking key
	compressed bool  // the message in progress is compressed (RFC 7692)
	remain     int64 // payload bytes of the current frame still to come
	msgLen     int64 // payload bytes of the current message so far
	max        int64
	buf        *[]byte                  // message bytes, while a message is incomplete
	ctrl       *[maxControlPayload]byte // control payload split across reads
	pool       *bufPool
	// z is the permessage-deflate parameters when the extension was
	// negotiated (RFC 7692), else nil: RSV1 may then mark a message as
	// compressed, inflated with pool.z's inflaters. Set before the
	// connection is shared and never changed, so the write path reads it
	// too (Conn.WriteMessage) from any goroutine.
	z *deflateParams
}

func newDecoder(max int64, hixie bool, pool *bufPool) decoder {
	d := decoder{max: max, pool: pool}
	if hixie {
		d.state = hixType
	}
	return d
}

func protoErr(reason string) *CloseError {
	return &CloseError{Code: StatusProtocolError, Reason: reason}
}

var (
	errTooBig  = &CloseError{Code: StatusMessageTooBig, Reason: "message too big"}
	errBadUTF8 = &CloseError{Code: StatusInvalidFramePayloadData, Reason: "invalid UTF-8"}
)

// feed consumes p. It returns the number of bytes consumed, which is less
// than len(p) only when the sink asked to stop, and a non-nil error when the
// peer broke the protocol; the error's code is the one to close with. After
// an error or a close frame, the decoder ignores all further input.
func (d *decoder) feed(p []byte, s frameSink) (int, *CloseError) {
	if d.state >= decDone {
		if d.state == decDone {
			return len(p), nil
		}
		return d.feedHixie(p, s)
	}
	i := 0
	for {
		if d.state == decHeader {
			if i == len(p) {
				return i, nil
			}
			var h []byte
			if rest := p[i:]; d.hdrN == 0 && len(rest) >= 2 && len(rest) >= headerLen(rest[1]) {
				h = rest[:headerLen(rest[1])]
				i += len(h)
			} else {
				for {
					need := 2
					if d.hdrN >= 2 {
						need = headerLen(d.hdr[1])
					}
					if int(d.hdrN) == need {
						break
					}
					if i == len(p) {
						return i, nil
					}
					c := copy(d.hdr[d.hdrN:need], p[i:])
					d.hdrN += uint8(c)
					i += c
				}
				h = d.hdr[:d.hdrN]
				d.hdrN = 0
			}
			if err := d.header(h); err != nil {
				d.fail()
				return i, err
			}
		}
		// decPayload; a zero-length payload completes at once.
		n := len(p) - i
		if int64(n) > d.remain {
			n = int(d.remain)
		}
		chunk := p[i : i+n]
		i += n
		d.remain -= int64(n)
		if d.masked {
			d.keyPos = uint8(mask.Apply(d.key, int(d.keyPos), chunk))
		}
		more, err := d.payload(chunk, s)
		if err != nil {
			d.fail()
			return i, err
		}
		if d.state == decDone {
			return len(p), nil // after a close frame, input is discarded
		}
		if !more {
			return i, nil
		}
		if d.state == decPayload && i == len(p) {
			return i, nil
		}
	}
}

// header validates a complete frame header and sets up the frame.
func (d *decoder) header(h []byte) *CloseError {
	b0, b1 := h[0], h[1]
	op := Opcode(b0 & opBits)
	rsv1 := false
	if rsv := b0 & rsvBits; rsv != 0 {
		if rsv != rsv1Bit || d.z == nil {
			return protoErr("reserved bits set without a negotiated extension")
		}
		// RFC 7692 section 6: RSV1 marks a compressed message on its
		// first frame only; never on a control or continuation frame.
		if op.isControl() || op == OpContinuation {
			return protoErr("RSV1 set on a " + op.String() + " frame")
		}
		rsv1 = true
	}
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return protoErr("reserved opcode")
	}
	// Section 5.1: a client masks every frame, a server none; a frame
	// breaking the rule for its direction fails the connection (1002).
	masked := b1&maskBit != 0
	if masked != !d.client {
		if d.client {
			return protoErr("server frame masked")
		}
		return protoErr("client frame not masked")
	}
	var n uint64
	switch l := b1 & lenBits; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
		if n < 126 {
			return protoErr("non-minimal payload length")
		}
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
		if n>>63 != 0 {
			return protoErr("payload length has its most significant bit set")
		}
		if n <= 0xffff {
			return protoErr("non-minimal payload length")
		}
	default:
		n = uint64(l)
	}
	fin := b0&finBit != 0
	if op.isControl() {
		if !fin {
			return protoErr("fragmented control frame")
		}
		if n > maxControlPayload {
			return protoErr("control frame payload over 125 bytes")
		}
	} else {
		if op == OpContinuation {
			if d.msgOp == 0 {
				return protoErr("continuation frame without a message")
			}
		} else if d.msgOp != 0 {
			return protoErr("new data frame inside a fragmented message")
		}
		compressed := d.compressed
		if op != OpContinuation {
			compressed = rsv1
		}
		limit := d.max
		if compressed {
			limit = zmax(d.max)
		}
		if n > uint64(limit-d.msgLenIf(op)) {
			return errTooBig
		}
		if op != OpContinuation {
			d.msgOp = op
			d.msgLen = 0
			d.utf8.Reset()
			d.compressed = compressed
		}
		d.msgLen += int64(n)
	}
	if masked {
		copy(d.key[:], h[len(h)-4:])
	}
	d.masked = masked
	d.keyPos = 0
	d.op = op
	d.fin = fin
	d.remain = int64(n)
	d.fresh = true
	d.state = decPayload
	return nil
}

// msgLenIf returns the bytes already counted toward the message that a data
// frame with opcode op belongs to.
func (d *decoder) msgLenIf(op Opcode) int64 {
	if op == OpContinuation {
		return d.msgLen
	}
	return 0
}

// payload handles unmasked payload bytes of the current frame.
func (d *decoder) payload(chunk []byte, s frameSink) (bool, *CloseError) {
	if d.op.isControl() {
		payload := chunk
		if d.remain > 0 || !d.fresh {
			if d.ctrl == nil {
				d.ctrl = new([maxControlPayload]byte)
			}
			d.ctrlN += uint8(copy(d.ctrl[d.ctrlN:], chunk))
			d.fresh = false
			if d.remain > 0 {
				return true, nil
			}
			payload = d.ctrl[:d.ctrlN]
		}
		d.state = decHeader
		more, err := d.control(payload, s)
		d.ctrl, d.ctrlN = nil, 0 // idle connections hold no buffers
		return more, err
	}
	if d.msgOp == OpText && !d.compressed && !d.utf8.Write(chunk) {
		return false, errBadUTF8
	}
	// Zero copy when the whole message is this one chunk.
	whole := d.fin && d.op != OpContinuation && d.fresh && d.remain == 0
	if len(chunk) > 0 {
		d.fresh = false
	}
	if !whole && len(chunk) > 0 {
		if d.buf == nil {
			d.buf = d.pool.get()
		}
		*d.buf = append(*d.buf, chunk...)
	}
	if d.remain > 0 {
		return true, nil
	}
	d.state = decHeader
	if !d.fin {
		return true, nil
	}
	data := chunk
	if !whole && d.buf != nil {
		data = *d.buf
	}
	var zbuf *[]byte // the inflated message, while it is delivered
	if d.compressed {
		zbuf = d.pool.get()
		var check func([]byte) bool
		if d.msgOp == OpText {
			check = d.utf8.Write
		}
		out, err := d.pool.z.inflate((*zbuf)[:0], data, d.max, check)
		*zbuf = out
		if err != nil {
			d.pool.put(zbuf)
			return false, err
		}
		data = out
	}
	if d.msgOp == OpText && !d.utf8.Complete() {
		if zbuf != nil {
			d.pool.put(zbuf)
		}
		return false, errBadUTF8
	}
	op := d.msgOp
	d.msgOp = 0
	d.msgLen = 0
	d.compressed = false
	more := s.onMessage(op, data)
	d.release()
	if zbuf != nil {
		d.pool.put(zbuf)
	}
	return more, nil
}

// zmax bounds the compressed size of a message whose inflated size is
// bounded by max: DEFLATE's worst case on incompressible data is a stored
// block (5 bytes per 64 KiB), so an eighth more is a generous bound that
// still refuses, before reading it, a compressed message that could only
// inflate past max.
func zmax(max int64) int64 {
	if max > (1<<62)/2 {
		return max
	}
	return max + max/8 + 64
}

// control handles a complete control frame (section 5.5).
func (d *decoder) control(payload []byte, s frameSink) (bool, *CloseError) {
	switch d.op {
	case OpPing:
		return s.onPing(payload), nil
	case OpPong:
		return s.onPong(payload), nil
	}
	// OpClose, section 5.5.1 and 7.4.
	d.state = decDone
	switch {
	case len(payload) == 0:
		s.onClose(StatusNoStatusRcvd, nil)
		return false, nil
	case len(payload) == 1:
		return false, protoErr("close frame with a 1-byte payload")
	}
	code := StatusCode(binary.BigEndian.Uint16(payload))
	if !validWireCode(code) {
		return false, protoErr("invalid close code")
	}
	reason := payload[2:]
	if !utf8.Valid(reason) {
		return false, &CloseError{Code: StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in close reason"}
	}
	s.onClose(code, reason)
	return false, nil
}

// fail stops decoding for good and drops buffers.
func (d *decoder) fail() {
	d.state = decDone
	d.release()
	d.ctrl, d.ctrlN = nil, 0
}

// release returns the message buffer to the pool.
func (d *decoder) release() {
	if d.buf != nil {
		d.pool.put(d.buf)
		d.buf = nil
	}
}

// feedHixie decodes hixie-76 framing: text frames are 0x00, UTF-8 bytes,
// 0xFF; the closing frame is 0xFF 0x00. The draft's length-prefixed binary
// frames were never used by browsers and are refused.
func (d *decoder) feedHixie(p []byte, s frameSink) (int, *CloseError) {
	i := 0
	for i < len(p) {
		switch d.state {
		case hixType:
			switch p[i] {
			case 0x00:
				d.state = hixText
				d.msgLen = 0
				d.utf8.Reset()
			case 0xFF:
				d.state = hixClose
			default:
				d.fail()
				return i + 1, protoErr("unsupported hixie-76 frame type")
			}
			i++
		case hixText:
			rest := p[i:]
			end := bytes.IndexByte(rest, 0xFF)
			chunk := rest
			if end >= 0 {
				chunk = rest[:end]
			}
			if int64(len(chunk)) > d.max-d.msgLen {
				d.fail()
				return i + len(chunk), errTooBig
			}
			d.msgLen += int64(len(chunk))
			if !d.utf8.Write(chunk) {
				d.fail()
				return i + len(chunk), errBadUTF8
			}
			if end < 0 {
				if len(chunk) > 0 {
					if d.buf == nil {
						d.buf = d.pool.get()
					}
					*d.buf = append(*d.buf, chunk...)
				}
				return len(p), nil
			}
			i += end + 1
			d.state = hixType
			if !d.utf8.Complete() {
				d.fail()
				return i, errBadUTF8
			}
			data := chunk
			if d.buf != nil {
				*d.buf = append(*d.buf, chunk...)
				data = *d.buf
			}
			more := s.onMessage(OpText, data)
			d.release()
			if !more {
				return i, nil
			}
		case hixClose:
			if p[i] != 0x00 {
				d.fail()
				return i + 1, protoErr("unsupported hixie-76 frame type")
			}
			d.state = decDone
			s.onClose(StatusNoStatusRcvd, nil)
			return len(p), nil
		default: // decDone
			return len(p), nil
		}
	}
	return i, nil
}

// bufPool recycles message buffers, and its owner's permessage-deflate
// compressors and inflaters (deflate.go). Buffers that grew large are left
// to the garbage collector so that one huge message does not pin memory.
type bufPool struct {
	p sync.Pool
	z flatePools
}

const (
	poolBufSize = 4 << 10
	poolMaxKeep = 64 << 10
)

func (bp *bufPool) get() *[]byte {
	if bp != nil {
		if v, ok := bp.p.Get().(*[]byte); ok {
			return v
		}
	}
	b := make([]byte, 0, poolBufSize)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if bp == nil || cap(*b) > poolMaxKeep {
		return
	}
	*b = (*b)[:0]
	bp.p.Put(b)
}
