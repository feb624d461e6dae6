package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// The record encoding (one stream message's payload), version 1:
//
//	byte     version (1)
//	byte     kind: 1 = batch, 2 = redaction
//	batch:     uvarint first id, uvarint count, count × message
//	redaction: uvarint the room's last id, uvarint the redacted id
//	4 bytes  CRC-32C (Castagnoli), little endian, of everything before
//
// message:
//
//	byte     flags: 1 = action, 2 = account follows, 4 = zero time
//	varint   time, Unix seconds; uvarint its nanoseconds (both absent
//	         with flag 4): exact for any time.Time, not only 1678–2262
//	string   user, string text
//	account: string id, uvarint role count, role strings
//
// A string is a uvarint length and the bytes. The room is the record's
// subject (subject.go); Message.To is not carried (a stored message's
// recipient is the conversation's other account). Every record says the
// room's last id after it (a batch: first+count-1; a redaction: carried),
// so that the last record of a subject alone tells a publisher where the
// room's ids stand.
//
// JetStream checksums its own blocks; the CRC here is end to end: a record
// damaged anywhere between the encoder and the decoder is refused
// (ErrCorrupt), never half-applied.
const (
	codecVersion byte = 1

	kindBatch  byte = 1
	kindRedact byte = 2

	flagAction   byte = 1
	flagAccount  byte = 2
	flagZeroTime byte = 4

	// recordOverhead bounds a record's bytes beyond its messages'.
	recordOverhead = 2 + 2*binary.MaxVarintLen64 + crc32.Size
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one decoded stream record.
type record struct {
	kind byte
	// first is a batch's first id; msgs its messages (ids set).
	first uint64
	msgs  []chat.Message
	// last is a redaction's room last id; target the id it redacts.
	last, target uint64
}

// lastID is the room's last id once r is applied.
func (r *record) lastID() uint64 {
	if r.kind == kindBatch {
		return r.first + uint64(len(r.msgs)) - 1
	}
	return r.last
}

// appendMsg appends m's encoding (without its id and room) to b.
func appendMsg(b []byte, m *chat.Message) []byte {
	var flags byte
	if m.Action {
		flags |= flagAction
	}
	if m.Account != nil {
		flags |= flagAccount
	}
	if m.Time.IsZero() {
		flags |= flagZeroTime
	}
	b = append(b, flags)
	if !m.Time.IsZero() {
		b = binary.AppendVarint(b, m.Time.Unix())
		b = binary.AppendUvarint(b, uint64(m.Time.Nanosecond()))
	}
	b = appendString(b, m.User)
	b = appendString(b, m.Text)
	if m.Account != nil {
		b = appendString(b, m.Account.ID)
		b = binary.AppendUvarint(b, uint64(len(m.Account.Roles)))
		for _, r := range m.Account.Roles {
			b = appendString(b, r)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeBatch returns the record of a batch whose first id is first and
// whose messages' encodings are bodies (count of them, concatenated).
func encodeBatch(first uint64, count int, bodies []byte) []byte {
	b := make([]byte, 0, recordOverhead+len(bodies))
	b = append(b, codecVersion, kindBatch)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(count))
	b = append(b, bodies...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// encodeRedact returns the record of a redaction of id target in a room
// whose last id is last.
func encodeRedact(last, target uint64) []byte {
	b := make([]byte, 0, recordOverhead)
	b = append(b, codecVersion, kindRedact)
	b = binary.AppendUvarint(b, last)
	b = binary.AppendUvarint(b, target)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeRecord decodes data, a record of room key. Errors wrap ErrCorrupt
// or ErrVersion.
func decodeRecord(key string, data []byte) (record, error) {
	var r record
	if len(data) < 2+crc32.Size {
		return r, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(data))
	}
	body, sum := data[:len(data)-crc32.Size], data[len(data)-crc32.Size:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(sum) {
		return r, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[0] != codecVersion {
		return r, fmt.Errorf("%w: version %d", ErrVersion, body[0])
	}
	d := decoder{b: body[2:]}
	r.kind = body[1]
	switch r.kind {
	case kindBatch:
		r.first = d.uvarint()
		n := d.uvarint()
		// Every message takes at least 3 bytes: bounds the allocation.
		if d.err == nil && (r.first == 0 || n == 0 || n > uint64(len(d.b))/3 || r.first+n-1 < r.first) {
			d.fail("batch header")
		}
		if d.err != nil {
			break
		}
		r.msgs = make([]chat.Message, n)
		for i := range r.msgs {
			m := &r.msgs[i]
			m.ID = r.first + uint64(i)
			m.Room = key
			d.message(m)
		}
	case kindRedact:
		r.last = d.uvarint()
		r.target = d.uvarint()
		if d.err == nil && (r.target == 0 || r.target > r.last) {
			d.fail("redaction")
		}
	default:
		return r, fmt.Errorf("%w: kind %d", ErrCorrupt, r.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return record{}, d.err
	}
	return r, nil
}

// decoder reads a record body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("message")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) message(m *chat.Message) {
	flags := d.byte()
	if flags&^(flagAction|flagAccount|flagZeroTime) != 0 {
		d.fail("message flags")
		return
	}
	if flags&flagZeroTime == 0 {
		sec := d.varint()
		ns := d.uvarint()
		if ns >= 1e9 {
			d.fail("time")
			return
		}
		m.Time = time.Unix(sec, int64(ns)).UTC()
	}
	m.Action = flags&flagAction != 0
	m.User = d.string()
	m.Text = d.string()
	if flags&flagAccount != 0 {
		a := &chat.Account{ID: d.string()}
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail("roles")
			return
		}
		if n > 0 {
			a.Roles = make([]string, n)
			for i := range a.Roles {
				a.Roles[i] = d.string()
			}
		}
		m.Account = a
	}
}
