package chat_test

import (
	"time"

	"github.com/moonchat/moonchat/core/chat/chattest"
)

// addedAt is the time of the messages add stores, and replayAt how a
// plain-text replay shows it.
var addedAt = time.Date(2026, 12, 2, 14, 3, 59, 0, time.UTC)

const replayAt = "[2026-12-02 14:03 UTC] "

// add stores texts in room from user, at addedAt (test setup).
func add(h *chattest.History, room, user string, texts ...string) {
	for _, t := range texts {
		h.Add(room, user, t, addedAt)
	}
}
