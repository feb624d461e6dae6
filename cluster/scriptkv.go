package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ScriptKV is the Lua chat.kv storage (it implements scripting.KV; this
// package does not import scripting) shared by the
// cluster: the key-value bucket <stream>_kv, one key per script and key,
// <script token>.<key token> (tokens as tok makes them: any script or key
// string is one valid token). Every write returns once JetStream
// acknowledged it; a read sees every acknowledged write (the bucket's
// leader answers). Each call is bounded by Config.PublishTimeout.
type ScriptKV struct {
	l  *Log
	kv jetstream.KeyValue
}

// OpenScriptKV creates (or opens) the scripts' bucket on l's connection.
func (l *Log) OpenScriptKV(ctx context.Context) (*ScriptKV, error) {
	kv, err := l.openBucket(ctx, bucketKV, "Lua chat.kv")
	if err != nil {
		return nil, err
	}
	return &ScriptKV{l: l, kv: kv}, nil
}

func scriptKey(script, key string) string { return tok(script) + "." + tok(key) }

func (s *ScriptKV) ctx(what string) (context.Context, context.CancelFunc, error) {
	if err := s.l.usable(); err != nil {
		return nil, nil, s.l.unreachable(what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.l.cfg.PublishTimeout)
	return ctx, cancel, nil
}

// Get returns the value of key in script's namespace and whether it
// exists.
func (s *ScriptKV) Get(script, key string) (string, bool, error) {
	ctx, cancel, err := s.ctx("chat.kv")
	if err != nil {
		return "", false, err
	}
	defer cancel()
	e, err := s.kv.Get(ctx, scriptKey(script, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.l.unreachable("chat.kv", err)
	}
	return string(e.Value()), true, nil
}

// Set stores value under key in script's namespace.
func (s *ScriptKV) Set(script, key, value string) error {
	ctx, cancel, err := s.ctx("chat.kv")
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := s.kv.Put(ctx, scriptKey(script, key), []byte(value)); err != nil {
		return s.l.unreachable("chat.kv", err)
	}
	return nil
}

// Delete removes key from script's namespace (a missing key is no error).
// The removal is a purge whose marker expires after markerTTL: nothing of
// the key stays in the bucket.
func (s *ScriptKV) Delete(script, key string) error {
	ctx, cancel, err := s.ctx("chat.kv")
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.kv.Purge(ctx, scriptKey(script, key), s.l.purgeTTL()); err != nil {
		return s.l.unreachable("chat.kv", err)
	}
	return nil
}

// Keys lists the keys of script's namespace in byte order.
func (s *ScriptKV) Keys(script string) ([]string, error) {
	ctx, cancel, err := s.ctx("chat.kv")
	if err != nil {
		return nil, err
	}
	defer cancel()
	var out []string
	prefix := tok(script) + "."
	err = s.l.scan(ctx, s.kv.Bucket(), []string{prefix + "*"}, func(c change) error {
		k, err := untok(strings.TrimPrefix(c.Key, prefix))
		if err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out) // tokens are not in their strings' order
	return out, nil
}
