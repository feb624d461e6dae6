package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// This file holds the byte layouts described in the package documentation
// ("File layout"). Keep the two in step.

// Top-level bucket names and the format marker.
var (
	bucketMeta     = []byte("meta")
	bucketRooms    = []byte("rooms")
	bucketRoomMeta = []byte("roommeta")
	bucketKV       = []byte("kv")
	keyFormat      = []byte("format")
)

const (
	// formatVersion is the file layout version stored under meta/format.
	formatVersion = 1
	// recordV1 is the first (and current) message record version.
	recordV1 = 1
	// metaV1 is the first (and current) room meta record version.
	metaV1 = 1

	recordV1Header = 1 + 8 + 8
	metaV1Size     = 1 + 8 + 8 + 8

	// maxRoomLen bounds room names (and script names) so that they always
	// fit a bbolt key with room to spare; the chat server allows 32 bytes.
	maxRoomLen = 255
	// maxKeyLen is bbolt's key size limit (bbolt.MaxKeySize).
	maxKeyLen = 32768
	// maxValueLen bounds one KV value or message record; bbolt allows
	// nearly 2 GiB but nothing in moonchat comes close to this.
	maxValueLen = 64 << 20
)

// idKey returns the 8-byte big-endian key of id: byte order equals numeric
// order, so cursors walk a room oldest first.
func idKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// keyID is the inverse of idKey. It reports false for keys that are not
// 8 bytes long.
func keyID(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// recordSize is the exact encoded size of m as a version 1 record.
func recordSize(m *chat.Message) int {
	return recordV1Header +
		uvarintLen(len(m.Room)) + len(m.Room) +
		uvarintLen(len(m.User)) + len(m.User) +
		uvarintLen(len(m.Text)) + len(m.Text)
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// appendRecord appends the version 1 record of m, with the given id, to b.
func appendRecord(b []byte, id uint64, m *chat.Message) []byte {
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(m.Room)))
	b = append(b, m.Room...)
	b = binary.AppendUvarint(b, uint64(len(m.User)))
	b = append(b, m.User...)
	b = binary.AppendUvarint(b, uint64(len(m.Text)))
	b = append(b, m.Text...)
	return b
}

// decodeRecord decodes a message record of any known version. The strings
// are copied, so the result stays valid after the transaction ends.
func decodeRecord(v []byte) (chat.Message, error) {
	if len(v) == 0 {
		return chat.Message{}, fmt.Errorf("%w: empty message record", ErrCorrupt)
	}
	switch v[0] {
	case recordV1:
		return decodeRecordV1(v)
	default:
		return chat.Message{}, fmt.Errorf("%w: unknown message record version %d", ErrCorrupt, v[0])
	}
}

func decodeRecordV1(v []byte) (chat.Message, error) {
	if len(v) < recordV1Header {
		return chat.Message{}, fmt.Errorf("%w: message record of %d bytes is too short", ErrCorrupt, len(v))
	}
	m := chat.Message{
		ID:   binary.BigEndian.Uint64(v[1:9]),
		Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))).UTC(),
	}
	rest := v[recordV1Header:]
	var err error
	if m.Room, rest, err = decodeString(rest, "room"); err != nil {
		return chat.Message{}, err
	}
	if m.User, rest, err = decodeString(rest, "user"); err != nil {
		return chat.Message{}, err
	}
	if m.Text, rest, err = decodeString(rest, "text"); err != nil {
		return chat.Message{}, err
	}
	if len(rest) != 0 {
		return chat.Message{}, fmt.Errorf("%w: message record %d has %d trailing bytes", ErrCorrupt, m.ID, len(rest))
	}
	return m, nil
}

func decodeString(b []byte, field string) (string, []byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 || n > uint64(len(b)-l) {
		return "", nil, fmt.Errorf("%w: message record: bad %s length", ErrCorrupt, field)
	}
	end := l + int(n)
	return string(b[l:end]), b[end:], nil
}

// recordTime returns the Time of a record without decoding its strings
// (retention reads only the time).
func recordTime(v []byte) (time.Time, error) {
	if len(v) == 0 || v[0] != recordV1 || len(v) < recordV1Header {
		_, err := decodeRecord(v) // for the precise error
		if err == nil {
			err = fmt.Errorf("%w: message record without a time", ErrCorrupt)
		}
		return time.Time{}, err
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))), nil
}

// recordUser returns the User of a record without copying the text.
func recordUser(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != recordV1 || len(v) < recordV1Header {
		_, err := decodeRecord(v)
		if err == nil {
			err = fmt.Errorf("%w: message record without a user", ErrCorrupt)
		}
		return nil, err
	}
	rest := v[recordV1Header:]
	for i := 0; i < 2; i++ { // skip Room, then read User
		n, l := binary.Uvarint(rest)
		if l <= 0 || n > uint64(len(rest)-l) {
			return nil, fmt.Errorf("%w: message record: bad length", ErrCorrupt)
		}
		if i == 1 {
			return rest[l : l+int(n)], nil
		}
		rest = rest[l+int(n):]
	}
	panic("unreachable")
}

// roomMeta is the decoded room meta record.
type roomMeta struct {
	LastID uint64 // highest ID ever assigned
	Pruned uint64 // highest ID removed by retention
	Count  uint64 // records in the room bucket
}

func (m roomMeta) encode() []byte {
	b := make([]byte, 0, metaV1Size)
	b = append(b, metaV1)
	b = binary.BigEndian.AppendUint64(b, m.LastID)
	b = binary.BigEndian.AppendUint64(b, m.Pruned)
	b = binary.BigEndian.AppendUint64(b, m.Count)
	return b
}

func decodeMeta(v []byte) (roomMeta, error) {
	if len(v) == 0 {
		return roomMeta{}, fmt.Errorf("%w: empty room meta record", ErrCorrupt)
	}
	switch v[0] {
	case metaV1:
		if len(v) != metaV1Size {
			return roomMeta{}, fmt.Errorf("%w: room meta record of %d bytes, want %d", ErrCorrupt, len(v), metaV1Size)
		}
		return roomMeta{
			LastID: binary.BigEndian.Uint64(v[1:9]),
			Pruned: binary.BigEndian.Uint64(v[9:17]),
			Count:  binary.BigEndian.Uint64(v[17:25]),
		}, nil
	default:
		return roomMeta{}, fmt.Errorf("%w: unknown room meta version %d", ErrCorrupt, v[0])
	}
}
