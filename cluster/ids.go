package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Id reservations: what keeps a room's ids going after MaxAge dropped
// every record of it (docs/cluster.md, "Retention").
//
// The stream knows a room's last id only while it holds one of its
// records. Config.Floor (the node's replica) covers a node that applied
// the room's records, but not a node whose store is empty or behind
// (added, or down, while the records expired): it would number the next
// message from 1, or from its own lower id, and every node holding the
// room's higher ids would stop at that record (store.ErrDiverged).
//
// So the bucket <stream>_ids keeps, per room (key: the room's token, as
// tok makes it; value: a decimal id), an upper bound of every id the
// room's records carry: before Publish sends a record whose last id is
// above the bound this node knows, it raises the bound to the next
// multiple of idBlock above that id (a revision-checked write, read again
// on a mismatch), and sends only once the write is acknowledged. A room
// unknown to the stream continues after max(Floor, its bound). Writing
// ahead, not after the acknowledgement, is what makes it sound: a record
// is never in the stream with an id above the bound, even when its
// publisher dies at once (a bound written after the acknowledgement,
// off the publishing path, would be lost with a publisher killed in
// between, and that record could be the room's last before it expired).
// The price: one write per room every idBlock ids (and one read, the
// first time a node publishes to a room since it started), and a room
// that comes back after its records expired skips up to idBlock ids
// (a hole, reported as any pruned history is). A room new to the stream
// does not: each bound also records the one before it and the stream's
// last sequence when it was written, and while the stream still holds
// every record since then, a room without records continues after the
// previous bound (its first publishers racing, one having reserved but
// not sent, start at 1). Keys are never removed:
// one short key per room and conversation ever published to.

// bucketIDs is the id reservations' bucket suffix.
const bucketIDs = "_ids"

// idBlock is how far ahead a reservation reaches.
const idBlock = 1000

// reservation is what this node knows of a room's bound: it is at least
// upTo (the bucket may hold more: another node raised it), at revision
// rev (0: no key).
type reservation struct {
	upTo, rev uint64
	// prev is the bound before this one was written, and at the
	// stream's last sequence when it was (0, 0: unknown). A record
	// carrying ids above prev was published after the reservation, so
	// at a sequence above at: while the stream still holds every record
	// after at, a room without records never published any above prev
	// (fetchHeadOf: a room's first publishers racing do not skip a
	// block). 0, 0 with history false: unknown.
	prev, at uint64
	history  bool // prev and at are known (the value had them)
}

// encode is the bucket's value of r: "upTo prev at".
func (r reservation) encode() []byte {
	return fmt.Appendf(nil, "%d %d %d", r.upTo, r.prev, r.at)
}

// decodeReservation parses a bucket value: "upTo prev at", or a bare
// "upTo" (prev and at unknown).
func decodeReservation(v []byte) (reservation, error) {
	var r reservation
	f := strings.Fields(string(v))
	if len(f) != 1 && len(f) != 3 {
		return r, fmt.Errorf("%d fields", len(f))
	}
	var err error
	if r.upTo, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return r, err
	}
	if len(f) == 3 {
		if r.prev, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return r, err
		}
		if r.at, err = strconv.ParseUint(f[2], 10, 64); err != nil {
			return r, err
		}
		r.history = true
		if r.prev > r.upTo {
			return r, fmt.Errorf("previous bound %d above %d", r.prev, r.upTo)
		}
	}
	return r, nil
}

// openIDs opens (or creates) the reservations' bucket on l's connection:
// one value per key, no removal markers (nothing is removed).
func (l *Log) openIDs(ctx context.Context) error {
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      l.cfg.Stream + bucketIDs,
		Description: "moonchat rooms' id reservations (package cluster)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
	})
	if err != nil {
		return l.unavailable("bucket "+l.cfg.Stream+bucketIDs, err)
	}
	l.ids = kv
	return nil
}

// readReservation reads key's bound from the bucket (0 without one) and
// remembers it.
func (l *Log) readReservation(ctx context.Context, key string) (reservation, error) {
	e, err := l.ids.Get(ctx, tok(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		l.rememberReservation(key, reservation{}) // a new room: reserve creates it
		return reservation{}, nil
	}
	if err != nil {
		return reservation{}, l.unavailable("reading the id reservation of "+key, err)
	}
	r, err := decodeReservation(e.Value())
	if err != nil {
		// Nothing this package wrote: refuse rather than number below
		// what it may have meant (fail closed).
		return reservation{}, fmt.Errorf("%w: id reservation of room %q: %q: %v", ErrCorrupt, key, e.Value(), err)
	}
	r.rev = e.Revision()
	l.rememberReservation(key, r)
	return r, nil
}

// rememberReservation records r as key's bound when it is higher than
// the one known.
func (l *Log) rememberReservation(key string, r reservation) {
	l.mu.Lock()
	if cur, ok := l.reserved[key]; !ok || r.upTo > cur.upTo || (r.upTo == cur.upTo && r.rev > cur.rev) {
		l.reserved[key] = r
	}
	l.mu.Unlock()
}

// reserve makes sure key's bound in the bucket is at least last before a
// record carrying ids up to last is sent: at once when the bound this
// node knows covers it, else with a write acknowledged by the bucket.
func (l *Log) reserve(ctx context.Context, key string, last uint64) error {
	l.mu.Lock()
	r, known := l.reserved[key]
	l.mu.Unlock()
	if known && r.upTo >= last {
		return nil
	}
	for {
		if !known {
			var err error
			if r, err = l.readReservation(ctx, key); err != nil {
				if l.again(ctx, err) {
					continue
				}
				return err
			}
			known = true
			if r.upTo >= last {
				return nil
			}
		}
		upTo := (last/idBlock + 1) * idBlock
		// The stream's last sequence before the write: every record
		// carrying ids above r.upTo comes after the write, so above it.
		info, err := l.stream.Info(ctx)
		if err != nil {
			err = l.unavailable("reserving ids of "+key, err)
			if l.again(ctx, err) {
				continue
			}
			return err
		}
		nr := reservation{upTo: upTo, prev: r.upTo, at: info.State.LastSeq, history: true}
		v := nr.encode()
		var rev uint64
		if r.rev == 0 {
			rev, err = l.ids.Create(ctx, tok(key), v)
		} else {
			rev, err = l.ids.Update(ctx, tok(key), v, r.rev)
		}
		if err == nil {
			l.reservations.Add(1)
			nr.rev = rev
			l.rememberReservation(key, nr)
			return nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			known = false // another node raised it first: read it again
			continue
		}
		err = l.unavailable("reserving ids of "+key, err)
		if !l.again(ctx, err) {
			return err
		}
		known = false // the write may have been stored: read it again
	}
}

// again reports whether a request that failed with err is to be made
// again after a pause (which it waits): while JetStream is briefly
// unavailable (a leader election, a lost answer) but the connection is
// up, until ctx ends, as Publish's sends are.
func (l *Log) again(ctx context.Context, err error) bool {
	if !errors.Is(err, ErrUnavailable) || l.usable() != nil || ctx.Err() != nil {
		return false
	}
	l.retries.Add(1)
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
