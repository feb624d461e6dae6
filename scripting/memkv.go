package scripting

import (
	"slices"
	"sync"
)

// MemKV is a KV kept in memory: what chat.kv uses when the server runs
// without a store (values are lost on exit), and what tests use. Safe for
// concurrent use.
type MemKV struct {
	mu sync.Mutex
	m  map[string]map[string]string // script → key → value
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: map[string]map[string]string{}} }

// Get implements KV.
func (kv *MemKV) Get(script, key string) (string, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[script][key]
	return v, ok, nil
}

// Set implements KV.
func (kv *MemKV) Set(script, key, value string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	ns := kv.m[script]
	if ns == nil {
		ns = map[string]string{}
		kv.m[script] = ns
	}
	ns[key] = value
	return nil
}

// Delete implements KV.
func (kv *MemKV) Delete(script, key string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.m[script], key)
	return nil
}

// Keys implements KV.
func (kv *MemKV) Keys(script string) ([]string, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	keys := make([]string, 0, len(kv.m[script]))
	for k := range kv.m[script] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

var _ KV = (*MemKV)(nil)
