package chat

import "github.com/moonchat/moonchat/core/ws"

// This file is what the chat server does when a hook does not complete
// (see Hooks): count it, log it, and — unless Config.DeliverOnHookFailure —
// fail closed.

// hookKind indexes the per-hook failure counters.
type hookKind int

const (
	hookKindJoin hookKind = iota
	hookKindMessage
	hookKindLeave
	hookKindRename
	numHookKinds
)

var hookKindNames = [numHookKinds]string{"join", "message", "leave", "rename"}

// hookFailReasons are the reason labels of moonchat_hook_failures_total,
// in counter order.
var hookFailReasons = [...]HookFailReason{HookFailTimeout, HookFailBusy, HookFailError, HookFailCanceled, HookFailMemory}

const numHookFailReasons = len(hookFailReasons)

// codeHookFailed is the JSON error code for a message or join refused
// because a hook did not complete (docs/protocol.md).
const codeHookFailed = "hook_failed"

// hookFailed counts and logs one failed hook call; outcome says what the
// server did about it ("message refused", "delivered anyway", …).
func (s *Server) hookFailed(kind hookKind, u User, err error, outcome string) HookFailReason {
	reason := hookFailReason(err)
	for i, r := range hookFailReasons {
		if r == reason {
			s.metrics.hookFailures[kind][i].Add(1)
		}
	}
	s.log.Warn("chat: "+hookKindNames[kind]+" hook failed; "+outcome,
		"room", u.Room, "user", u.Name, "reason", string(reason), "err", err)
	return reason
}

// hookFailText is what a user is told when their message or join was
// refused because a hook did not complete.
func hookFailText(reason HookFailReason) string {
	switch reason {
	case HookFailTimeout:
		return "a server script took too long"
	case HookFailBusy:
		return "the server's scripts are busy, try again"
	case HookFailCanceled:
		return "the server is shutting down"
	case HookFailMemory:
		return "a server script used too much memory"
	}
	return "a server script failed"
}

// hookFailClose is the close code for a join refused because its hook did
// not complete: 1013 Try Again Later (IANA registry of RFC 6455 §11.7) when
// the failure may pass (time limit, busy scripts), 1011 Internal Error
// (RFC 6455 §7.4.1) for a script error, 1001 Going Away at shutdown.
func hookFailClose(reason HookFailReason) ws.StatusCode {
	switch reason {
	case HookFailTimeout, HookFailBusy:
		return ws.StatusTryAgainLater
	case HookFailCanceled:
		return ws.StatusGoingAway
	}
	return ws.StatusInternalError
}
