package chat

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// This file holds the seams between the chat server and the packages that
// plug into it. The chat server (this package) owns rooms, members and
// fan-out; it depends only on these interfaces. Package scripting implements
// Hooks, package store implements History (and its optional RoomLister and
// prometheus.Collector), and cmd/moonchat wires them together from
// config.toml. Neither implementation is imported here. Every interface the
// chat server expects another package (or a test) to implement is in this
// file, but for the moderation seam (moderation_seams.go).

// Message is one chat message as it flows through hooks, history and
// fan-out. A Message is immutable once History.Append has returned.
type Message struct {
	// ID is the room's sequence number, assigned by History.Append. IDs of a
	// room increase strictly, across restarts too; 0 means "not stored yet".
	ID   uint64
	Room string
	User string
	Text string
	// Time is when the server accepted the message (UTC).
	Time time.Time
	// Action marks a "/me" action ("* alice waves" in plain text): Text is
	// what the user does, shown after their name.
	Action bool
	// Account is the sender's account (nil for a guest), for moonchat.v1's
	// message events: its id and roles as the session had them when the
	// message was sent. A guest whose session was granted roles
	// (Host.Grant) has one too, with an empty ID. A History may store
	// it (package store does, with each message): a replayed message
	// then has it too. (A pointer keeps Message comparable.)
	Account *Account
	// To is the recipient's name of a direct message (Room is then its
	// ConversationKey, or a key of the process's own for a conversation
	// with a guest); "" for a room message. Hooks see it as msg.to. It
	// is not stored: a stored message's recipient is the conversation's
	// other account.
	To string
}

// Account is an authenticated member's account: its stable id and roles
// ("user" and those its credentials grant, as Host.Grant and Host.Revoke
// changed them for the session). ID is empty for a guest whose session
// was granted roles ("guest" first). Immutable once made: the chat server
// shares one between a member's messages until its roles change.
type Account struct {
	ID    string
	Roles []string
}

// User identifies one connected member. SessionID is unique for the life of
// the process and stable across renames; Name is unique within Room.
type User struct {
	SessionID uint64
	Name      string
	Room      string
	// Addr is the remote address (host:port) of the connection.
	Addr string
	// ID is the stable account id of an authenticated user ("" for a
	// guest): the same person across connections, rooms and restarts.
	ID string
	// Roles are the user's roles: the built-in "guest" (no ID) or "user"
	// (an ID), then those its credentials grant, as Host.Grant and
	// Host.Revoke changed them for the session. Room rules (RoomRules)
	// decide what each role may do.
	Roles []string
	// Node is, in a cluster with a cluster-wide roster (Config.Presence),
	// the node another node's member is connected to; "" for this node's
	// members. Such a member's SessionID is this node's own for it:
	// Host.Kick of it asks its node to kick it, and the Host methods that
	// act on a connection (Send, Action, Rename, Grant, ...) return
	// ErrRemoteMember. Addr is empty for it.
	Node string
}

// Identity is who a connection's credentials say the user is, as an
// Authenticator found it. ID is the stable account id (never empty for an
// authenticated user); Name is the nick the account holds (its "name",
// default the id); Roles are what the credentials grant (the built-in
// "user" is added by the chat server); Rooms, when not nil, are the room
// patterns (RoomAllowed) the credentials allow, an empty non-nil list
// allowing none; Expires is zero when the credentials do not expire.
type Identity struct {
	ID, Name string
	Roles    []string
	Rooms    []string
	Expires  time.Time
}

// AuthError is an Authenticator's refusal: Status is the HTTP status the
// handshake is answered with (401 for missing or bad credentials, 403 for
// credentials that are not allowed here, 503 when the check could not
// complete, such as a connect script that failed: refused, fail closed;
// any other status is answered 401) and Reason one line for the client
// and the log. Reason must never contain the credentials.
type AuthError struct {
	Status int
	Reason string
}

// Error implements error.
func (e *AuthError) Error() string {
	return "auth refused (" + http.StatusText(e.Status) + "): " + e.Reason
}

// Authenticator turns a WebSocket handshake into an identity before the
// upgrade (Config.Authenticator; nil means everyone is a guest). The HTTP
// API asks it the same way about its callers: GET /api/session and
// /api/history for their room, GET /api/rooms and /api/direct with room "" (no room in
// particular: the chat server applies Identity.Rooms to each room).
// Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the identity of the request's credentials for
	// room; ok is false for a guest (no credentials, guests allowed). A
	// refusal is an error: an *AuthError says its status and reason; any
	// other error is refused with 401 (fail closed).
	Authenticate(r *http.Request, room string) (id Identity, ok bool, err error)
}

// TokenRefresher is an optional interface of an Authenticator: one that
// implements it lets a moonchat.v1 client replace its credentials before
// they expire ({"type":"token","token":…}, docs/protocol.md). Without it,
// or when the new token is refused, a connection whose credentials expire
// is closed with close code 4001 ("token expired") when they do.
type TokenRefresher interface {
	// Refresh verifies token as the new credentials of a connection in
	// room. The chat server accepts the result only when it names the
	// same account (Identity.ID) the connection already has, and then
	// takes its Expires (the session's roles and name do not change). A
	// refusal is an error, an *AuthError when it has a reason to show.
	Refresh(token, room string) (Identity, error)
}

// NameOwners is an optional interface of a History: one that implements it
// keeps which account owns which nick across restarts, so that an
// account's name stays its own while it is offline and after a restart (a
// guest or another account asking for it gets a variant). Without it the
// chat server remembers owners only while the process runs. The chat
// server type-asserts it, as it does RoomLister.
type NameOwners interface {
	// NameOwners returns every owned name: account id → the name it owns.
	// The chat server calls it once, from New.
	NameOwners() (map[string]string, error)
	// SetNameOwner records durably that account id now owns name, and no
	// longer the name it owned before (an account owns one name: the one
	// it was last given). It returns once the change is on disk.
	SetNameOwner(id, name string) error
}

// JoinResult is what Hooks.Join decides about a newcomer.
type JoinResult struct {
	// Name replaces the requested name when non-empty. The chat server still
	// makes it unique in the room (numeric suffix) and validates it.
	Name string
	// Refuse turns the newcomer away before anyone sees them; Reason is
	// shown to them and sent as the close reason (close code 1008).
	Refuse bool
	Reason string
	// Err is set when the hook did not complete (a script failed, ran out
	// of time, or could not run because the scripts were busy): usually a
	// *HookError. The other fields then hold what the hook decided before
	// it failed. The chat server refuses the newcomer unless
	// Config.DeliverOnHookFailure is set (see Hooks).
	Err error
}

// MessageResult is what Hooks.Message decides about one message.
type MessageResult struct {
	// Text replaces the message text when Replace is true.
	Text    string
	Replace bool
	// Drop keeps the message out of the room and out of history. A non-empty
	// Reason is sent to the sender alone as a notice.
	Drop   bool
	Reason string
	// Code is the JSON "error" event's code for Reason: one of the error
	// codes listed in docs/protocol.md (such as "unknown_command"). Empty,
	// or a code the protocol does not list, means "dropped". Plain-text
	// clients see only Reason.
	Code string
	// Err is set when the hooks did not complete, as in JoinResult.Err.
	// The chat server then drops the message (not stored, not delivered,
	// the sender told why) unless Config.DeliverOnHookFailure is set.
	Err error
}

// HookFailReason says why a hook call did not complete. It is the reason
// label of the moonchat_hook_failures_total metric.
type HookFailReason string

// The reasons a hook call can fail.
const (
	// HookFailTimeout: a script ran past its time limit.
	HookFailTimeout HookFailReason = "timeout"
	// HookFailBusy: the scripts were busy with other calls for too long,
	// so the hook could not run at all.
	HookFailBusy HookFailReason = "busy"
	// HookFailError: a script raised an error or returned a value that
	// cannot be used.
	HookFailError HookFailReason = "error"
	// HookFailCanceled: the call's context ended (the server is shutting
	// down) before the hook could run or finish.
	HookFailCanceled HookFailReason = "canceled"
	// HookFailMemory: a script allocated more than its memory limit in
	// the call, or the scripts' data had grown past it (they are then
	// loaded again).
	HookFailMemory HookFailReason = "memory"
)

// HookError is a hook call that did not complete.
type HookError struct {
	Reason HookFailReason
	// Err says what failed, for the log (for scripts: file:line and the
	// error).
	Err error
}

// Error implements error.
func (e *HookError) Error() string {
	if e.Err == nil {
		return "hook failed: " + string(e.Reason)
	}
	return "hook failed (" + string(e.Reason) + "): " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *HookError) Unwrap() error { return e.Err }

// hookFailReason is err's reason: HookError.Reason, or HookFailError for
// an error of another type.
func hookFailReason(err error) HookFailReason {
	var he *HookError
	if errors.As(err, &he) {
		switch he.Reason {
		case HookFailTimeout, HookFailBusy, HookFailError, HookFailCanceled, HookFailMemory:
			return he.Reason
		}
	}
	return HookFailError
}

// Hooks lets scripts see and change what happens in rooms. The chat server
// calls them on the room's ordering goroutine, one call at a time per room;
// an implementation serving several rooms must serialise itself.
//
// An implementation enforces its own time limit; the chat server passes a
// context that is cancelled when the server shuts down. A hook that fails
// must say so (JoinResult.Err, MessageResult.Err, the error of Leave and
// Rename), never act as "carry on": the chat server decides. By default it
// fails closed — a message whose hooks did not complete is neither stored
// nor delivered, a join whose hook did not complete is refused — unless
// Config.DeliverOnHookFailure is set; every failure is logged and counted
// in /metrics (moonchat_hook_failures_total).
type Hooks interface {
	// Join runs before anyone sees the newcomer.
	Join(ctx context.Context, u User) JoinResult
	// Message runs for every chat message (including "/command" texts)
	// before it is stored and broadcast.
	Message(ctx context.Context, u User, m *Message) MessageResult
	// Leave runs after the member has left the room. Every member that
	// joined gets exactly one Leave: at Shutdown it runs for the members
	// still connected, before their connections are closed (with the
	// shutdown's context, cancelled when its deadline passes). A non-nil
	// error (usually a *HookError) says the hook did not complete; it is
	// logged and counted, the member has left regardless.
	Leave(ctx context.Context, u User) error
	// Rename runs after a member's name changed from old to u.Name. Its
	// error is treated like Leave's.
	Rename(ctx context.Context, u User, old string) error
}

// Host is what the chat server offers to hooks: the functions behind the
// Lua chat.* API. Every method is safe to call from inside a hook call (on a
// room's goroutine) and from any other goroutine; none of them waits for a
// room's goroutine, so a hook can never deadlock the server through them.
// Methods that act on a member take its SessionID and return ErrNoSuchUser
// when that member has gone.
type Host interface {
	// Send delivers a notice ("* TEXT" in plain text, a "system" event in
	// JSON) to one member only.
	Send(sessionID uint64, text string) error
	// Broadcast delivers a system notice to every member of room. It is not
	// stored in history.
	Broadcast(room, text string) error
	// Action posts text as a "/me" action of a member: a chat message with
	// Action set that goes through the Message hooks (its text is never a
	// command), is stored and is delivered in order like any message.
	// Errors wrap ErrInvalidText for a text a client could not send either.
	Action(sessionID uint64, text string) error
	// Rename changes a member's name (validated and made unique in the
	// room) and announces it; it returns the name actually given.
	Rename(sessionID uint64, newName string) (string, error)
	// Kick closes a member's connection with close code 1000 after sending
	// reason as a notice (when non-empty).
	Kick(sessionID uint64, reason string) error
	// Users lists the members of room, in join order.
	Users(room string) []User
	// Rooms lists the rooms that have at least one member, sorted by name.
	Rooms() []string
	// History returns up to n of room's most recent stored messages, oldest
	// first. It returns ErrNoHistory when the server runs without a store.
	History(room string, n int) ([]Message, error)
	// HistoryFor is History read on behalf of a member: it returns
	// ErrNotAllowed (wrapped with the reason) when the member may not read
	// room — the room rules for its roles now, or its credentials' rooms
	// claim — as /api/history and WebSocket history requests refuse it.
	HistoryFor(sessionID uint64, room string, n int) ([]Message, error)
	// Redact deletes a stored message for good and tells the room's live
	// members so that pages can hide it.
	Redact(room string, id uint64) error
	// DeleteMessage deletes message id of room on behalf of the member of
	// session sessionID: any message when they moderate the room, else
	// only their own within [chat] delete_own_window (ErrNotYours,
	// ErrTooLate otherwise). The room is told, the audit log names them.
	DeleteMessage(sessionID uint64, room string, id uint64) error
	// Grant gives a member role for the rest of its session (not its
	// account: a new connection starts with its credentials' roles), and
	// Revoke takes it away. Room rules see the change at the member's next
	// action; moonchat.v1 clients in the room are told (docs/protocol.md).
	// The built-in roles "guest" and "user" cannot be granted or revoked
	// (ErrBuiltinRole); granting a role the member has, or revoking one it
	// lacks, is not an error.
	Grant(sessionID uint64, role string) error
	Revoke(sessionID uint64, role string) error

	// Restrict makes (or replaces) a ban or a mute (moderation_seams.go),
	// stored durably and written to the audit log before it returns; a
	// ban kicks the members it matches at once (close 1008 with the
	// reason). d is how long it lasts (0 = until lifted).
	Restrict(kind RestrictionKind, room string, t Target, d time.Duration, reason, by string) error
	// Lift removes a ban or a mute; false when there was none.
	Lift(kind RestrictionKind, room string, t Target, by string) (bool, error)
	// Restrictions lists the restrictions in force in room (those of
	// every room included), oldest first; expired ones are gone.
	Restrictions(room string) []Restriction
	// SetRoomSettings changes room's topic and slow mode (stored, audited
	// as by, and announced to the room's members: the topic to everyone,
	// slow mode as a notice).
	SetRoomSettings(room string, s RoomSettings, by string) error
	// RoomSettings returns room's settings (the zero value when none).
	RoomSettings(room string) RoomSettings
	// Audit returns up to n audit entries of room ("" = all) since since.
	Audit(room string, since time.Time, n int) ([]AuditEntry, error)
	// May reports whether a member may do action in room under the room
	// rules ([rooms."PATTERN"]) for its roles now, and its credentials'
	// rooms claim: what scripts ask before a moderator command
	// (chat.may). Without rules nobody may moderate (DefaultRoomRule).
	May(sessionID uint64, room string, action Action) (bool, error)
	// Limits returns a member's flood limits: those of its connection
	// ([chat] flood_rate and flood_burst) until SetLimits changed them.
	Limits(sessionID uint64) (Limits, error)
	// SetLimits replaces a member's flood limits for the rest of its
	// session (not its account: a new connection starts with the
	// server's). From then on the member is held to these limits alone:
	// its messages no longer count against, nor are refused by, the
	// buckets its address and account share (flood.go), so that a script
	// can give a trusted bot more than its account would get as well as
	// give a suspicious guest less. It returns an error wrapping
	// ErrInvalidLimits for limits that cannot work (see Limits).
	SetLimits(sessionID uint64, l Limits) error
}

// Limits are a member's flood limits: a token bucket of Rate messages per
// second on average with bursts of up to Burst. Rate 0 means no limit (as
// [chat] flood_rate = 0), and Burst is then 0; otherwise Rate is a
// finite positive number and Burst at least 1 (at most MaxFloodBurst).
type Limits struct {
	Rate  float64
	Burst int
}

// History stores every message before it is broadcast and serves it back.
// Implementations must be safe for concurrent use.
//
// A History that has series of its own for /metrics (package store's DB:
// moonchat_store_*) also implements prometheus.Collector; New registers it
// in the server's own registry, beside the server's series. It is optional,
// like RoomLister, so that any History still plugs in; its names must not
// clash with the server's (New fails if they do).
type History interface {
	// Append stores msgs durably, assigning each its room's next ID (in
	// slice order), and returns only once they are on disk. Concurrent
	// calls should be grouped into one commit.
	Append(ctx context.Context, msgs []*Message) error
	// Recent returns up to n of room's newest messages, oldest first.
	Recent(room string, n int) ([]Message, error)
	// Before returns up to n messages of room with ID < before, oldest
	// first (the n newest of them).
	Before(room string, before uint64, n int) ([]Message, error)
	// After returns up to n messages of room with ID > after, oldest first.
	// Complete is false when retention or redaction already removed some of
	// the messages right after `after` (the caller must report a gap), and
	// More is true when further messages exist beyond the n returned.
	After(room string, after uint64, n int) (msgs []Message, complete, more bool, err error)
	// Redact deletes one message for good; it reports whether it existed.
	Redact(room string, id uint64) (bool, error)
}

// RoomStat describes one room's stored history, as GET /api/rooms reports
// it.
type RoomStat struct {
	Name string
	// Count is the number of messages stored in the room.
	Count int
	// FirstID is the oldest stored message's ID (0 when Count is 0);
	// LastID is the newest ID ever assigned in the room, which stays when
	// the newest messages are redacted or pruned.
	FirstID, LastID uint64
}

// RoomLister is an optional interface of a History: one that implements it
// can list its rooms, which GET /api/rooms needs. It is separate from
// History so that a History without a room index (a test double, a remote
// store) still plugs in; the chat server type-asserts it.
type RoomLister interface {
	// RoomStats lists every room that has ever stored a message, sorted
	// by name.
	RoomStats() ([]RoomStat, error)
}

// Clock schedules the server's timers and tells the flood limits the
// time. Config.Clock injects one; the default is package time (clock.go). Tests use a fake clock to decide when
// an interval has passed, so that they can show that something does not
// happen before it (a held announcement) without sleeping.
type Clock interface {
	// AfterFunc calls f in its own goroutine once d has passed, as
	// time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
	// Now returns the current time, as time.Now. The flood limits' token
	// buckets read it (flood.go), so that a test decides when they refill.
	Now() time.Time
}

// Timer is a Clock's timer, with the semantics of the *time.Timer that
// time.AfterFunc returns.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it was
	// active.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether it was
	// active.
	Reset(d time.Duration) bool
}
