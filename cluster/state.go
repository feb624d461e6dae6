package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// State is the cluster's store of moderation, name ownership and ignore
// lists (chat.SharedState) on the key-value bucket <stream>_state, with
// the audit log on the stream <stream>_audit (audit.go). Every write
// returns once JetStream acknowledged it (stored on the bucket's quorum).
// Watch hands every stored change, any node's, to the chat server.
//
// Keys (tokens as tok makes them):
//
//	x.<kind>.<room>.<a|n|i>.<target>  a restriction (JSON); target kind
//	                                   a = account, n = name, i = address
//	s.<room>                           a room's settings (JSON)
//	o.<account>                        the name an account owns
//	i.<account>                        an account's ignore list (JSON)
//
// Its methods take no context (chat.SharedState's do not): each call is
// bounded by Config.PublishTimeout.
type State struct {
	l      *Log
	kv     jetstream.KeyValue
	audit  jetstream.Stream
	bucket string

	undecodable atomic.Uint64 // StateStats
	expiryKept  atomic.Uint64
}

// StateStats are a State's counters since OpenState, for /metrics.
type StateStats struct {
	// Undecodable counts stored changes Watch skipped because they did
	// not decode (each is logged): a sign of another program, or a newer
	// moonchat, writing to the bucket.
	Undecodable uint64
	// ExpiriesKept counts DeleteExpired calls that found the restriction
	// replaced by a newer one (another node's ban made in its place) and
	// left it: the sweeps that, without the check, would have removed a
	// restriction in force.
	ExpiriesKept uint64
}

// Stats returns the State's counters.
func (s *State) Stats() StateStats {
	return StateStats{Undecodable: s.undecodable.Load(), ExpiriesKept: s.expiryKept.Load()}
}

// Compile-time check: State is a chat.SharedState.
var _ chat.SharedState = (*State)(nil)

// StateConfig configures OpenState.
type StateConfig struct {
	// AuditMaxAge drops audit entries older than this (0 = keep them
	// forever, as the single-node store does).
	AuditMaxAge time.Duration
}

// OpenState creates (or opens) the state bucket and the audit stream on
// l's connection. It fails, wrapping ErrUnavailable and
// chat.ErrUnavailable, when NATS cannot be reached.
func (l *Log) OpenState(ctx context.Context, cfg StateConfig) (*State, error) {
	kv, err := l.openBucket(ctx, bucketState, "moderation, name owners and ignore lists")
	if err != nil {
		return nil, err
	}
	a, err := l.openAudit(ctx, cfg.AuditMaxAge)
	if err != nil {
		return nil, err
	}
	return &State{l: l, kv: kv, audit: a, bucket: l.cfg.Stream + bucketState}, nil
}

// ctx bounds one call.
func (s *State) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.l.cfg.PublishTimeout)
}

// ready refuses a call at once while NATS is unreachable, rather than
// after a timeout.
func (s *State) ready(what string) error {
	if err := s.l.usable(); err != nil {
		return s.l.unreachable(what, err)
	}
	return nil
}

// Restriction keys.
const (
	prefixRestriction = "x."
	prefixSettings    = "s."
	prefixOwner       = "o."
	prefixIgnore      = "i."
)

// restrictionKey is the key of the restriction of kind in room on t.
func restrictionKey(kind chat.RestrictionKind, room string, t chat.Target) string {
	tk, tv := "a", t.Account
	switch {
	case t.Name != "":
		tk, tv = "n", t.Name
	case t.Addr != "":
		tk, tv = "i", t.Addr
	}
	return prefixRestriction + tok(string(kind)) + "." + tok(room) + "." + tk + "." + tok(tv)
}

// parseRestrictionKey is restrictionKey's inverse.
func parseRestrictionKey(key string) (kind chat.RestrictionKind, room string, t chat.Target, err error) {
	parts := strings.Split(strings.TrimPrefix(key, prefixRestriction), ".")
	if len(parts) != 4 {
		return "", "", t, fmt.Errorf("%w: key %q", ErrCorrupt, key)
	}
	k, err1 := untok(parts[0])
	room, err2 := untok(parts[1])
	v, err3 := untok(parts[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", "", t, err
	}
	switch parts[2] {
	case "a":
		t.Account = v
	case "n":
		t.Name = v
	case "i":
		t.Addr = v
	default:
		return "", "", t, fmt.Errorf("%w: key %q", ErrCorrupt, key)
	}
	return chat.RestrictionKind(k), room, t, nil
}

// Restrictions returns every stored restriction.
func (s *State) Restrictions() ([]chat.Restriction, error) {
	var out []chat.Restriction
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.l.scan(ctx, s.bucket, []string{prefixRestriction + ">"}, func(c change) error {
		var r chat.Restriction
		if err := json.Unmarshal(c.Value, &r); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, c.Key, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// PutRestriction stores r, replacing the one with the same Kind, Room and
// Target.
func (s *State) PutRestriction(r chat.Restriction) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.put("restriction", restrictionKey(r.Kind, r.Room, r.Target), b)
}

// DeleteRestriction removes the restriction of kind in room on t and
// reports whether there was one. The delete is conditional on the
// revision read: of several nodes deleting the same restriction at once,
// exactly one gets true. It removes whatever is stored under the key: an
// expiry goes through DeleteExpired instead.
func (s *State) DeleteRestriction(kind chat.RestrictionKind, room string, t chat.Target) (bool, error) {
	return s.deleteRestriction(kind, room, t, nil)
}

// Compile-time check: State removes expired restrictions only while they
// are the stored ones.
var _ chat.ExpiryDeleter = (*State)(nil)

// DeleteExpired removes the restriction of r's Kind, Room and Target only
// while the stored one was created at r.Created, to the millisecond
// (chat.ExpiryDeleter): a node whose watcher is behind must not sweep
// away the ban another node just stored in place of the expiring one.
// It reports false when the key is gone or holds another restriction;
// of several nodes sweeping the same expiry at once, exactly one gets
// true (a delete with the revision read, read again on a mismatch). A
// stored value that does not decode is left alone, with an error
// wrapping ErrCorrupt (fail closed: nothing is removed that was not
// recognised).
func (s *State) DeleteExpired(r chat.Restriction) (bool, error) {
	return s.deleteRestriction(r.Kind, r.Room, r.Target, func(value []byte) (bool, error) {
		var cur chat.Restriction
		if err := json.Unmarshal(value, &cur); err != nil {
			return false, fmt.Errorf("%w: restriction %s %q: %v", ErrCorrupt, r.Kind, r.Room, err)
		}
		if cur.Created.UnixMilli() != r.Created.UnixMilli() {
			s.expiryKept.Add(1)
			return false, nil
		}
		return true, nil
	})
}

// deleteRestriction is DeleteRestriction and DeleteExpired: the key is
// purged with the revision read, provided match (nil: any) accepts the
// value read; on a revision mismatch it reads again.
func (s *State) deleteRestriction(kind chat.RestrictionKind, room string, t chat.Target, match func([]byte) (bool, error)) (bool, error) {
	if err := s.ready("restriction"); err != nil {
		return false, err
	}
	key := restrictionKey(kind, room, t)
	ctx, cancel := s.ctx()
	defer cancel()
	for {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return false, nil
		}
		if err != nil {
			return false, s.l.unreachable("restriction", err)
		}
		if match != nil {
			if ok, err := match(e.Value()); !ok || err != nil {
				return false, err
			}
		}
		err = s.kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()), s.l.purgeTTL())
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, s.l.unreachable("restriction", err)
		}
		// Another node deleted or replaced it first: read again.
	}
}

// RoomSettings returns every room's stored settings.
func (s *State) RoomSettings() (map[string]chat.RoomSettings, error) {
	out := make(map[string]chat.RoomSettings)
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.l.scan(ctx, s.bucket, []string{prefixSettings + ">"}, func(c change) error {
		room, err := untok(strings.TrimPrefix(c.Key, prefixSettings))
		if err != nil {
			return err
		}
		var rs chat.RoomSettings
		if err := json.Unmarshal(c.Value, &rs); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, c.Key, err)
		}
		out[room] = rs
		return nil
	})
	return out, err
}

// PutRoomSettings stores room's settings (the zero value deletes them).
func (s *State) PutRoomSettings(room string, rs chat.RoomSettings) error {
	key := prefixSettings + tok(room)
	if rs == (chat.RoomSettings{}) {
		return s.del("room settings", key)
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return s.put("room settings", key, b)
}

// NameOwners returns every owned name: account id → its name.
func (s *State) NameOwners() (map[string]string, error) {
	out := make(map[string]string)
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.l.scan(ctx, s.bucket, []string{prefixOwner + ">"}, func(c change) error {
		id, err := untok(strings.TrimPrefix(c.Key, prefixOwner))
		if err != nil {
			return err
		}
		out[id] = string(c.Value)
		return nil
	})
	return out, err
}

// SetNameOwner records that account id owns name (one name per account:
// the key is the account's, so the name it owned before goes with the
// same write).
func (s *State) SetNameOwner(id, name string) error {
	key := prefixOwner + tok(id)
	if name == "" {
		return s.del("name owner", key)
	}
	return s.put("name owner", key, []byte(name))
}

// IgnoreLists returns every stored ignore list, by account id.
func (s *State) IgnoreLists() (map[string][]string, error) {
	out := make(map[string][]string)
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.l.scan(ctx, s.bucket, []string{prefixIgnore + ">"}, func(c change) error {
		id, err := untok(strings.TrimPrefix(c.Key, prefixIgnore))
		if err != nil {
			return err
		}
		var list []string
		if err := json.Unmarshal(c.Value, &list); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, c.Key, err)
		}
		out[id] = list
		return nil
	})
	return out, err
}

// SetIgnoreList replaces account's list (empty: deletes it).
func (s *State) SetIgnoreList(account string, ignored []string) error {
	key := prefixIgnore + tok(account)
	if len(ignored) == 0 {
		return s.del("ignore list", key)
	}
	b, err := json.Marshal(ignored)
	if err != nil {
		return err
	}
	return s.put("ignore list", key, b)
}

// put stores value under key and returns once it is acknowledged.
func (s *State) put(what, key string, value []byte) error {
	if err := s.ready(what); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.kv.Put(ctx, key, value); err != nil {
		return s.l.unreachable(what, err)
	}
	return nil
}

// del removes key with a purge whose marker expires after markerTTL (a
// removal of a missing key stores a marker all the same: harmless, and
// watchers apply it idempotently).
func (s *State) del(what, key string) error {
	if err := s.ready(what); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.kv.Purge(ctx, key, s.l.purgeTTL()); err != nil {
		return s.l.unreachable(what, err)
	}
	return nil
}

// Watch hands every change stored in the bucket, by any node (this one
// included), to a: first the current value of every key, then each
// change in the order the bucket stored them. It survives NATS outages:
// it resumes after the last change handed over (one may be repeated, none
// skipped), or after an outage longer than half the removal markers' TTL
// (15 min) loads the bucket afresh and hands over as removals the keys
// that are gone. It runs until ctx ends (returning ctx.Err()) or the Log is
// closed (ErrClosed). A value that does not decode is logged and skipped:
// one bad key must not stop every later change. Run it in one goroutine.
func (s *State) Watch(ctx context.Context, a chat.SharedApplier) error {
	// The keys stored now, for a load afresh after a long outage: those
	// not loaded again were removed meanwhile (their markers may have
	// expired) and a is told so.
	known := knownKeys{}
	rl := known.reload(s.l.markers()/2, func(k string) { s.applyLogged(change{Key: k, Deleted: true}, a) })
	return s.l.follow(ctx, s.bucket, []string{">"}, rl, func(c change) error {
		known.saw(c)
		s.applyLogged(c, a)
		return nil
	})
}

// applyLogged applies c, logging (not returning) a change that does not
// decode.
func (s *State) applyLogged(c change, a chat.SharedApplier) {
	if err := s.apply(c, a); err != nil {
		s.undecodable.Add(1)
		s.l.log.Error("cluster: a stored state change does not decode; skipped", "key", c.Key, "revision", c.Revision, "err", err)
	}
}

// apply hands one change to a.
func (s *State) apply(c change, a chat.SharedApplier) error {
	switch {
	case strings.HasPrefix(c.Key, prefixRestriction):
		kind, room, t, err := parseRestrictionKey(c.Key)
		if err != nil {
			return err
		}
		if c.Deleted {
			a.RestrictionRemoved(kind, room, t)
			return nil
		}
		var r chat.Restriction
		if err := json.Unmarshal(c.Value, &r); err != nil {
			return err
		}
		a.RestrictionStored(r)
	case strings.HasPrefix(c.Key, prefixSettings):
		room, err := untok(strings.TrimPrefix(c.Key, prefixSettings))
		if err != nil {
			return err
		}
		var rs chat.RoomSettings
		if !c.Deleted {
			if err := json.Unmarshal(c.Value, &rs); err != nil {
				return err
			}
		}
		a.RoomSettingsStored(room, rs)
	case strings.HasPrefix(c.Key, prefixOwner):
		id, err := untok(strings.TrimPrefix(c.Key, prefixOwner))
		if err != nil {
			return err
		}
		name := ""
		if !c.Deleted {
			name = string(c.Value)
		}
		a.NameOwnerStored(id, name)
	case strings.HasPrefix(c.Key, prefixIgnore):
		id, err := untok(strings.TrimPrefix(c.Key, prefixIgnore))
		if err != nil {
			return err
		}
		var list []string
		if !c.Deleted {
			if err := json.Unmarshal(c.Value, &list); err != nil {
				return err
			}
		}
		a.IgnoreListStored(id, list)
	default:
		return fmt.Errorf("%w: unknown key %q", ErrCorrupt, c.Key)
	}
	return nil
}
