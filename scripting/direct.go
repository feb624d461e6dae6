package scripting

import (
	"errors"
	"strings"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// Direct messages (issue 14): chat.direct reaches chat.Directer when the
// host has it. The message hook side is in hooks.go: a message with
// Message.To set is passed to handlers with msg.to and is never a command.

// errNoDirect is returned when the host does not send direct messages.
var errNoDirect = errors.New("this server does not send direct messages")

// chat.direct(user, to, text) -> true | nil, err
//
// true means the server accepted the message for sending: the message
// hooks, the store and the recipient's ignore list still decide later,
// and what fails then is told to the sender as for a room message.
func (st *state) apiDirect(L *lua.LState) int {
	id := checkSession(L, 1, "chat.direct")
	// The name usually comes from what a user typed (/msg NICK): one no
	// name can be is nobody, an answer rather than the script's error.
	to := checkText(L, 2, "chat.direct", "recipient", maxNoticeBytes)
	text := checkText(L, 3, "chat.direct", "text", st.sh.maxText)
	dh, ok := st.sh.hostOf().(chat.Directer)
	if !ok {
		return failed(L, errNoDirect)
	}
	if to == "" {
		return failed(L, errors.New("no recipient given"))
	}
	if len(to) > maxNameBytes {
		return failed(L, errors.New("no such user: "+truncate(to, maxNameBytes)))
	}
	if err := dh.Direct(id, to, text); err != nil {
		return failed(L, directError(err, to))
	}
	return succeeded(L)
}

// directError words Directer.Direct's errors for the scripts, which pass
// them on to the sender: "no such user" names the user (the sentinel's
// text alone does not say whom), and the sender's own absence is told
// apart from the recipient's (both sentinels read "no such user"). Other
// errors (invalid text, muted, shutting down) already say what went
// wrong and pass as they are.
func directError(err error, to string) error {
	switch {
	case errors.Is(err, chat.ErrNoSuchRecipient):
		// A wrapped error that names the user carries the server's detail
		// ("no such user: bob is ambiguous…"): kept as it is.
		if err != chat.ErrNoSuchRecipient && strings.Contains(err.Error(), to) {
			return err
		}
		return errors.New("no such user: " + to)
	case errors.Is(err, chat.ErrNoSuchUser):
		return errors.New("you are no longer connected")
	}
	return err
}
