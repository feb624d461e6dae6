package chattest

import (
	"context"
	"sync"

	"github.com/moonchat/moonchat/core/chat"
)

// Hooks is a scripted, recording chat.Hooks: each hook runs its On
// function when set (and otherwise lets everything through), and Join,
// Leave and Rename are recorded in order ("join ROOM NAME", "leave ROOM
// NAME", "rename OLD NEW") for Events. The zero value is ready to use.
type Hooks struct {
	OnJoin    func(u chat.User) chat.JoinResult
	OnMessage func(u chat.User, m *chat.Message) chat.MessageResult
	OnLeave   func(u chat.User) error
	OnRename  func(u chat.User, old string) error

	mu     sync.Mutex
	events []string
}

var _ chat.Hooks = (*Hooks)(nil)

func (h *Hooks) record(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

// Events returns what the hooks saw so far, oldest first.
func (h *Hooks) Events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

// Join implements chat.Hooks.
func (h *Hooks) Join(ctx context.Context, u chat.User) chat.JoinResult {
	h.record("join " + u.Room + " " + u.Name)
	if h.OnJoin != nil {
		return h.OnJoin(u)
	}
	return chat.JoinResult{}
}

// Message implements chat.Hooks.
func (h *Hooks) Message(ctx context.Context, u chat.User, m *chat.Message) chat.MessageResult {
	if h.OnMessage != nil {
		return h.OnMessage(u, m)
	}
	return chat.MessageResult{}
}

// Leave implements chat.Hooks.
func (h *Hooks) Leave(ctx context.Context, u chat.User) error {
	h.record("leave " + u.Room + " " + u.Name)
	if h.OnLeave != nil {
		return h.OnLeave(u)
	}
	return nil
}

// Rename implements chat.Hooks.
func (h *Hooks) Rename(ctx context.Context, u chat.User, old string) error {
	h.record("rename " + old + " " + u.Name)
	if h.OnRename != nil {
		return h.OnRename(u, old)
	}
	return nil
}
