// Package mask implements the WebSocket masking transform (RFC 6455 section
// 5.3): payload byte i is XORed with key[i mod 4].
//
// The transform works a machine word (8 bytes) at a time; the byte-wise form
// only handles the tail. encoding/binary loads and stores compile to single
// unaligned moves on amd64 and arm64, so no unsafe code is needed.
package mask

import (
	"encoding/binary"
	"math/bits"
)

// Apply masks (or unmasks: the transform is its own inverse) b in place with
// key, where pos is the offset of b[0] within the frame payload modulo 4.
// It returns the position that follows b, for the next call on the same
// payload.
func Apply(key [4]byte, pos int, b []byte) int {
	pos &= 3
	if len(b) >= 8 {
		// k32 has key[pos] in its low byte so that a little-endian load of
		// b lines up with the key stream.
		k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*pos)
		k := uint64(k32) | uint64(k32)<<32
		i := 0
		for ; len(b)-i >= 32; i += 32 {
			s := b[i : i+32 : i+32]
			binary.LittleEndian.PutUint64(s[0:], binary.LittleEndian.Uint64(s[0:])^k)
			binary.LittleEndian.PutUint64(s[8:], binary.LittleEndian.Uint64(s[8:])^k)
			binary.LittleEndian.PutUint64(s[16:], binary.LittleEndian.Uint64(s[16:])^k)
			binary.LittleEndian.PutUint64(s[24:], binary.LittleEndian.Uint64(s[24:])^k)
		}
		for ; len(b)-i >= 8; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
		}
		// Whole words keep pos unchanged (8 is a multiple of 4).
		b = b[i:]
	}
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}
