package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// This file holds the byte layouts described in the package documentation
// ("File layout"). Keep the two in step.
//
// Message records are versioned. Version 2 added a flags byte after Time
// (bit 0: chat.Message.Action) and a CRC-32C trailer over the whole record;
// version 3 (the one written) is version 2 with flag bit 1 (the sender's
// chat.Account follows Text). Versions 1 (no flags, no checksum) and 2 are
// still read, unchanged.

// Top-level bucket names and the format marker.
var (
	bucketMeta     = []byte("meta")
	bucketRooms    = []byte("rooms")
	bucketRoomMeta = []byte("roommeta")
	bucketKV       = []byte("kv")
	bucketNames    = []byte("names")
	keyFormat      = []byte("format")
)

const (
	// formatVersion is the file layout version stored under meta/format.
	// Format 2 is format 1 whose rooms may hold version 2 records; format
	// 3 is format 2 whose rooms may hold version 3 records, plus the
	// "names" bucket; format 4 is format 3 plus the moderation buckets
	// ("restrictions", "roomsettings", "audit"; moderation.go). A writable
	// Open upgrades a format 1 to 3 marker (and creates the buckets the
	// file lacks). Each bump makes an older moonchat refuse the
	// file with ErrFormat ("upgrade moonchat") instead of calling the
	// records it cannot decode corrupt.
	formatVersion = 4
	// formatV1 is the first layout: only version 1 records.
	formatV1 = 1
	// formatV2 added version 2 records.
	formatV2 = 2
	// formatV3 added version 3 records and the "names" bucket.
	formatV3 = 3
	// formatReplica is format 4 plus meta/applied: the file is a replica
	// of the cluster's log (replica.go). Only a replica file has it (a
	// single-node file stays formatVersion), so that a moonchat without
	// replicas refuses a replica file with ErrFormat instead of appending
	// to it as a single node, which would fork the cluster's ids.
	formatReplica = 5

	// recordV1 is the first message record version: no checksum, no flags.
	// It is still read, never written.
	recordV1 = 1
	// recordV2 added a flags byte (Action) and a CRC-32C trailer. It is
	// still read, never written.
	recordV2 = 2
	// recordV3 is the current message record version: version 2 whose
	// flag bit 1 says that the sender's account follows Text.
	recordV3 = 3
	// metaV1 is the first (and current) room meta record version.
	metaV1 = 1

	recordV1Header = 1 + 8 + 8
	recordV2Header = 1 + 8 + 8 + 1
	recordV2CRC    = 4
	metaV1Size     = 1 + 8 + 8 + 8

	// flagAction is bit 0 of a version 2 or 3 record's flags:
	// chat.Message.Action.
	flagAction = 1 << 0
	// flagAccount is bit 1 of a version 3 record's flags: the sender's
	// chat.Account (ID, Roles) follows Text. A guest's message has none.
	flagAccount = 1 << 1
	// knownFlagsV2 and knownFlagsV3 are the flag bits each version
	// defines; the others must be 0 (a new flag means a new record
	// version, so that an old record is never read differently).
	knownFlagsV2 = flagAction
	knownFlagsV3 = flagAction | flagAccount

	// maxRoomLen bounds room names (and script names) so that they always
	// fit a bbolt key with room to spare; the chat server allows 32 bytes.
	maxRoomLen = 255
	// maxKeyLen is bbolt's key size limit (bbolt.MaxKeySize).
	maxKeyLen = 32768
	// maxValueLen bounds one KV value or message record; bbolt allows
	// nearly 2 GiB but nothing in moonchat comes close to this.
	maxValueLen = 64 << 20
)

// Bounds of what an account leaves in the file: a message's chat.Account
// and an owned name (SetNameOwner). They are far above anything real (a
// JWT "sub", a nick, a role name) and keep one record's account part
// under 65 KiB; Append and SetNameOwner refuse more (ErrInvalidAccount,
// ErrInvalidName), and a record claiming more is corrupt.
const (
	// MaxAccountIDLen bounds an account id, in bytes.
	MaxAccountIDLen = 1024
	// MaxRoles bounds the roles stored with one message.
	MaxRoles = 256
	// MaxRoleLen bounds one role name, in bytes.
	MaxRoleLen = 255
	// MaxOwnedNameLen bounds an owned name, in bytes.
	MaxOwnedNameLen = 1024
)

// castagnoli is the CRC-32C table of record checksums: CRC-32C detects
// every burst error of up to 32 bits and is computed in hardware on amd64
// and arm64, so verifying every record read costs little.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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

// recordSize is the exact encoded size of m as a version 3 record.
func recordSize(m *chat.Message) int {
	n := recordV2Header +
		uvarintLen(len(m.Room)) + len(m.Room) +
		uvarintLen(len(m.User)) + len(m.User) +
		uvarintLen(len(m.Text)) + len(m.Text) +
		recordV2CRC
	if a := m.Account; a != nil {
		n += uvarintLen(len(a.ID)) + len(a.ID) + uvarintLen(len(a.Roles))
		for _, r := range a.Roles {
			n += uvarintLen(len(r)) + len(r)
		}
	}
	return n
}

// checkAccount reports why a message's account cannot be stored (nil for
// no account or a storable one): the bounds above, and no empty role (the
// chat server never makes one). The id may be empty: the chat server gives
// a guest whose session was granted roles an Account without ID, and it is
// stored as it came.
func checkAccount(a *chat.Account) error {
	switch {
	case a == nil:
		return nil
	case len(a.ID) > MaxAccountIDLen:
		return fmt.Errorf("%w: account id of %d bytes (at most %d)", ErrInvalidAccount, len(a.ID), MaxAccountIDLen)
	case len(a.Roles) > MaxRoles:
		return fmt.Errorf("%w: %d roles (at most %d)", ErrInvalidAccount, len(a.Roles), MaxRoles)
	}
	for _, r := range a.Roles {
		if r == "" || len(r) > MaxRoleLen {
			return fmt.Errorf("%w: role of %d bytes (1 to %d)", ErrInvalidAccount, len(r), MaxRoleLen)
		}
	}
	return nil
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// appendRecord appends the version 3 record of m, with the given id, to b.
// m.Account must have passed checkAccount.
func appendRecord(b []byte, id uint64, m *chat.Message) []byte {
	start := len(b)
	b = append(b, recordV3)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	var flags byte
	if m.Action {
		flags |= flagAction
	}
	if m.Account != nil {
		flags |= flagAccount
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(m.Room)))
	b = append(b, m.Room...)
	b = binary.AppendUvarint(b, uint64(len(m.User)))
	b = append(b, m.User...)
	b = binary.AppendUvarint(b, uint64(len(m.Text)))
	b = append(b, m.Text...)
	if a := m.Account; a != nil {
		b = binary.AppendUvarint(b, uint64(len(a.ID)))
		b = append(b, a.ID...)
		b = binary.AppendUvarint(b, uint64(len(a.Roles)))
		for _, r := range a.Roles {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// rawRecord is a message record whose version, size and checksum have been
// verified (openRecord): its fields can be read in place, without decoding
// or copying the whole record. It is valid while the transaction is.
type rawRecord struct {
	b     []byte // the record without its checksum trailer
	ver   byte
	flags byte
}

// openRecord verifies a message record of any known version: the version
// byte, the header size and, for versions 2 and 3, the CRC-32C of
// everything before the trailer (a mismatch wraps ErrChecksum and
// ErrCorrupt) and the flags the version defines.
// Version 1 records carry no checksum: only decoding can find their damage.
func openRecord(v []byte) (rawRecord, error) {
	if len(v) == 0 {
		return rawRecord{}, fmt.Errorf("%w: empty message record", ErrCorrupt)
	}
	switch v[0] {
	case recordV1:
		if len(v) < recordV1Header {
			return rawRecord{}, fmt.Errorf("%w: message record of %d bytes is too short", ErrCorrupt, len(v))
		}
		return rawRecord{b: v, ver: recordV1}, nil
	case recordV2, recordV3:
		if len(v) < recordV2Header+recordV2CRC {
			return rawRecord{}, fmt.Errorf("%w: message record of %d bytes is too short", ErrCorrupt, len(v))
		}
		body := v[:len(v)-recordV2CRC]
		stored := binary.BigEndian.Uint32(v[len(body):])
		if sum := crc32.Checksum(body, castagnoli); sum != stored {
			return rawRecord{}, fmt.Errorf("%w: %w: stored CRC-32C %08x, computed %08x", ErrCorrupt, ErrChecksum, stored, sum)
		}
		flags, known := body[recordV2Header-1], byte(knownFlagsV2)
		if v[0] == recordV3 {
			known = knownFlagsV3
		}
		if flags&^known != 0 {
			return rawRecord{}, fmt.Errorf("%w: version %d message record has unknown flags %#02x", ErrCorrupt, v[0], flags)
		}
		return rawRecord{b: body, ver: v[0], flags: flags}, nil
	default:
		return rawRecord{}, fmt.Errorf("%w: unknown message record version %d", ErrCorrupt, v[0])
	}
}

// peekRecord is openRecord without the checksum: for filters that only
// reject. A record it lets through must still be verified (openRecord)
// before anything of it is served or decided on.
func peekRecord(v []byte) (rawRecord, bool) {
	switch {
	case len(v) >= recordV1Header && v[0] == recordV1:
		return rawRecord{b: v, ver: recordV1}, true
	case len(v) >= recordV2Header+recordV2CRC && (v[0] == recordV2 || v[0] == recordV3):
		return rawRecord{b: v[:len(v)-recordV2CRC], ver: v[0], flags: v[recordV2Header-1]}, true
	}
	return rawRecord{}, false
}

// id returns the record's ID field.
func (r rawRecord) id() uint64 { return binary.BigEndian.Uint64(r.b[1:9]) }

// time returns the record's Time field.
func (r rawRecord) time() time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(r.b[9:17])))
}

// strings returns the bytes after the fixed header: Room, User, Text (and
// a version 3 record's account).
func (r rawRecord) strings() []byte {
	if r.ver == recordV1 {
		return r.b[recordV1Header:]
	}
	return r.b[recordV2Header:]
}

// user returns the User field without copying the text.
func (r rawRecord) user() ([]byte, error) {
	rest := r.strings()
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

// decode returns the message. The strings are copied, so the result stays
// valid after the transaction ends.
func (r rawRecord) decode() (chat.Message, error) {
	m := chat.Message{
		ID:     r.id(),
		Time:   r.time().UTC(),
		Action: r.flags&flagAction != 0,
	}
	rest := r.strings()
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
	if r.flags&flagAccount != 0 { // only ever set in version 3 (openRecord)
		if m.Account, rest, err = decodeAccount(rest); err != nil {
			return chat.Message{}, err
		}
	}
	if len(rest) != 0 {
		return chat.Message{}, fmt.Errorf("%w: message record %d has %d trailing bytes", ErrCorrupt, m.ID, len(rest))
	}
	return m, nil
}

// decodeRecord verifies and decodes a message record of any known version.
func decodeRecord(v []byte) (chat.Message, error) {
	r, err := openRecord(v)
	if err != nil {
		return chat.Message{}, err
	}
	return r.decode()
}

// decodeAccount decodes a version 3 record's account: ID, the number of
// roles, the roles. Anything outside the bounds Append enforces is corrupt.
func decodeAccount(b []byte) (*chat.Account, []byte, error) {
	a := &chat.Account{}
	var err error
	if a.ID, b, err = decodeString(b, "account id"); err != nil {
		return nil, nil, err
	}
	n, l := binary.Uvarint(b)
	if l <= 0 || n > MaxRoles || n > uint64(len(b)-l) { // a role takes a byte at least
		return nil, nil, fmt.Errorf("%w: message record: bad role count", ErrCorrupt)
	}
	b = b[l:]
	if n > 0 {
		a.Roles = make([]string, n)
	}
	for i := range a.Roles {
		if a.Roles[i], b, err = decodeString(b, "role"); err != nil {
			return nil, nil, err
		}
	}
	if err := checkAccount(a); err != nil {
		return nil, nil, fmt.Errorf("%w: message record: %v", ErrCorrupt, err)
	}
	return a, b, nil
}

func decodeString(b []byte, field string) (string, []byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 || n > uint64(len(b)-l) {
		return "", nil, fmt.Errorf("%w: message record: bad %s length", ErrCorrupt, field)
	}
	end := l + int(n)
	return string(b[l:end]), b[end:], nil
}

// recordTime returns the Time of a verified record without decoding its
// strings (retention and Since read only the time).
func recordTime(v []byte) (time.Time, error) {
	r, err := openRecord(v)
	if err != nil {
		return time.Time{}, err
	}
	return r.time(), nil
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
