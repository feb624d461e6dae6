package ws

import (
	"encoding/binary"
	"strconv"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode byte

// Opcodes defined by RFC 6455 section 11.8.
const (
	OpContinuation Opcode = 0
	OpText         Opcode = 1
	OpBinary       Opcode = 2
	OpClose        Opcode = 8
	OpPing         Opcode = 9
	OpPong         Opcode = 10
)

// String returns the opcode's name.
func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode(" + strconv.Itoa(int(op)) + ")"
}

// isControl reports whether op is a control opcode (section 5.5).
func (op Opcode) isControl() bool { return op&0x8 != 0 }

// Frame header layout, RFC 6455 section 5.2:
//
//	byte 0: FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
//	byte 1: MASK(1) payload len(7)
//	        126 → 16-bit length follows, 127 → 64-bit length follows
//	then the 4-byte masking key when MASK is set.
const (
	finBit  = 0x80
	rsvBits = 0x70
	opBits  = 0x0f
	maskBit = 0x80
	lenBits = 0x7f

	// maxHeaderLen is the longest header: 2 + 8 (64-bit length) + 4 (key).
	maxHeaderLen = 14
	// maxControlPayload bounds control frames (section 5.5).
	maxControlPayload = 125
)

// putHeader writes an unmasked (server-to-client) header for a final frame
// of op with an n-byte payload into h and returns its length. The length
// uses the minimal encoding, as section 5.2 requires.
func putHeader(h []byte, op Opcode, n int) int {
	h[0] = finBit | byte(op)
	switch {
	case n <= 125:
		h[1] = byte(n)
		return 2
	case n <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		return 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		return 10
	}
}

// headerLen returns the header length implied by its second byte.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & lenBits {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&maskBit != 0 {
		n += 4
	}
	return n
}

// appendFrame appends one unmasked final frame.
func appendFrame(b []byte, op Opcode, payload []byte) []byte {
	var h [10]byte
	n := putHeader(h[:], op, len(payload))
	b = append(b, h[:n]...)
	return append(b, payload...)
}
