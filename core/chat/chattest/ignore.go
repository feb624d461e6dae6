package chattest

import (
	"fmt"
	"maps"
	"slices"

	"github.com/moonchat/moonchat/core/chat"
)

var _ chat.IgnoreStore = (*History)(nil)

// IgnoreLists implements chat.IgnoreStore: a copy of the stored lists.
func (h *History) IgnoreLists() (map[string][]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]string, len(h.ignores))
	for acc, ids := range h.ignores {
		out[acc] = slices.Clone(ids)
	}
	return out, nil
}

// SetIgnoreList implements chat.IgnoreStore (an empty list deletes), or
// fails with the error FailIgnores set.
func (h *History) SetIgnoreList(account string, ignored []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ignoreErr != nil {
		return fmt.Errorf("set ignore list: %w", h.ignoreErr)
	}
	if h.ignores == nil {
		h.ignores = make(map[string][]string)
	}
	if len(ignored) == 0 {
		delete(h.ignores, account)
	} else {
		h.ignores[account] = slices.Clone(ignored)
	}
	return nil
}

// FailIgnores makes SetIgnoreList fail with err (nil: succeed again).
func (h *History) FailIgnores(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ignoreErr = err
}

// Ignores returns the stored lists' accounts, sorted (for tests).
func (h *History) Ignores() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.ignores))
}
