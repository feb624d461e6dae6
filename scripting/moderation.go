package scripting

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// The moderation functions of the chat table (issue 14): bans, mutes,
// room settings, the audit log and the room rules' permissions, over the
// Host methods of core/chat/moderation_seams.go. The server enforces
// them; scripts decide who may use them (defaults/scripts/ban.lua, …).
// They follow the convention of the other functions: wrong arguments (a
// script's bug) raise, and what the server or a user's input can refuse
// (a duration that does not parse, an address that is none, a store
// error) is nil, err.

// auditedHost is an optional interface of a chat.Host: Kick and Redact
// with the audit log's "by" (core/chat's Server has them). chat.kick and
// chat.redact use them when a script says who acts; a host without them
// gets the plain calls.
type auditedHost interface {
	KickBy(sessionID uint64, reason, by string) error
	RedactBy(room string, id uint64, by string) error
}

// maxDuration is the longest ban, mute or slow mode interval a script may
// set: ten years, far inside time.Duration's range, so that no expiry
// overflows. Longer is "until lifted" (0).
const maxDuration = 3650 * 24 * time.Hour

// maxAudit is the most audit entries chat.audit returns.
const maxAudit = 1000

// durationUnits are the units of a duration string ("10m").
var durationUnits = map[byte]time.Duration{
	's': time.Second, 'm': time.Minute, 'h': time.Hour,
	'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
}

// errBadDuration is the reason a duration does not parse.
func errBadDuration(s string) error {
	return fmt.Errorf("invalid duration %q: want seconds, or a whole number and one of s, m, h, d, w (90, 10m, 2h, 7d; at most 3650d)", s)
}

// parseDuration reads a duration as scripts give it: a number of seconds
// (fractions allowed) or a string of digits with an optional unit s, m,
// h, d or w ("90", "90s", "10m", "2h", "7d", "1w"). 0 means none (a
// restriction that lasts until lifted, slow mode off). ok is false when
// v is neither a number nor a string (the caller raises); err is set for
// a value of the right type that is not a duration.
func parseDuration(v lua.LValue) (d time.Duration, ok bool, err error) {
	switch v := v.(type) {
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || f < 0 || f > maxDuration.Seconds() {
			return 0, true, errBadDuration(v.String())
		}
		return time.Duration(f * float64(time.Second)), true, nil
	case lua.LString:
		s := string(v)
		digits, unit := s, time.Second
		if n := len(s); n > 0 {
			if u, isUnit := durationUnits[s[n-1]]; isUnit {
				digits, unit = s[:n-1], u
			}
		}
		if digits == "" || len(digits) > 10 || digits[0] == '+' || digits[0] == '-' {
			return 0, true, errBadDuration(s)
		}
		n, perr := strconv.ParseUint(digits, 10, 64)
		if perr != nil || time.Duration(n) > maxDuration/unit {
			return 0, true, errBadDuration(s)
		}
		return time.Duration(n) * unit, true, nil
	}
	return 0, false, nil
}

// checkDuration is parseDuration for argument or field what of fname: a
// value of the wrong type raises.
func checkDuration(L *lua.LState, v lua.LValue, fname, what string) (time.Duration, error) {
	d, ok, err := parseDuration(v)
	if !ok {
		L.RaiseError("%s: %s must be a number of seconds or a string such as \"10m\", got %s", fname, what, v.Type())
	}
	return d, err
}

// checkRoom reads argument n as a room: a string. emptyOK allows ""
// (every room). A string that is not a room name is the caller's nil,
// err, since it may come from a user's input.
func checkRoom(L *lua.LState, n int, fname string, emptyOK bool) (string, error) {
	s, ok := L.Get(n).(lua.LString)
	if !ok {
		L.RaiseError("%s: argument #%d must be a room name (a string), got %s", fname, n, L.Get(n).Type())
	}
	room := string(s)
	if room == "" && emptyOK {
		return "", nil
	}
	if err := chat.ValidRoomName(room); err != nil {
		return "", fmt.Errorf("invalid room %q: %w", truncate(room, 64), err)
	}
	return room, nil
}

// isUserTable reports whether t is a user table (or msg.user): it has a
// session number.
func isUserTable(t *lua.LTable) bool {
	_, ok := t.RawGetString("session").(lua.LNumber)
	return ok
}

// checkTarget reads argument n as whom a ban or mute matches: a user
// table (its account id when it has one, else its name: a guest), or a
// table with exactly one of account, name or addr. A bad address is nil,
// err (it may come from a user's input); any other shape raises.
func checkTarget(L *lua.LState, n int, fname string) (chat.Target, error) {
	t, ok := L.Get(n).(*lua.LTable)
	if !ok {
		L.RaiseError("%s: argument #%d must be a user table or {account = …}, {name = …} or {addr = …}, got %s", fname, n, L.Get(n).Type())
	}
	if isUserTable(t) {
		if id, ok := t.RawGetString("id").(lua.LString); ok && id != "" {
			return chat.Target{Account: string(id)}, nil
		}
		name, ok := t.RawGetString("name").(lua.LString)
		if !ok || name == "" {
			L.RaiseError("%s: argument #%d is a user table without a name or id", fname, n)
		}
		return chat.Target{Name: string(name)}, nil
	}
	var tg chat.Target
	set := 0
	t.ForEach(func(k, v lua.LValue) {
		s, isStr := v.(lua.LString)
		if !isStr || s == "" || len(s) > maxNameBytes {
			L.RaiseError("%s: target field %s must be a string of 1 to %d bytes", fname, lua.LVAsString(k), maxNameBytes)
		}
		switch k {
		case lua.LString("account"):
			tg.Account = string(s)
		case lua.LString("name"):
			tg.Name = string(s)
		case lua.LString("addr"):
			tg.Addr = string(s)
		default:
			L.RaiseError("%s: unknown target field %s (want account, name or addr)", fname, lua.LVAsString(k))
		}
		set++
	})
	if set != 1 {
		L.RaiseError("%s: a target has exactly one of account, name or addr (got %d)", fname, set)
	}
	if tg.Addr != "" {
		if _, err := netip.ParsePrefix(tg.Addr); err != nil {
			if _, err := netip.ParseAddr(tg.Addr); err != nil {
				return tg, fmt.Errorf("invalid address %q: want an IP address or a CIDR prefix (203.0.113.7, 2001:db8::/48)", tg.Addr)
			}
		}
	}
	return tg, nil
}

// targetTable is the Lua view of a Target: the table checkTarget reads,
// so that an entry of chat.restrictions can be lifted as it is.
func targetTable(L *lua.LState, t chat.Target) *lua.LTable {
	out := L.CreateTable(0, 1)
	switch {
	case t.Account != "":
		out.RawSetString("account", lua.LString(t.Account))
	case t.Name != "":
		out.RawSetString("name", lua.LString(t.Name))
	case t.Addr != "":
		out.RawSetString("addr", lua.LString(t.Addr))
	}
	return out
}

// byOf reads who acts: a user table ("alice", or "alice (u-42)" for an
// account), a string, or nil (the script's file name).
func byOf(L *lua.LState, v lua.LValue, fname, script string) string {
	switch v := v.(type) {
	case *lua.LNilType:
		return script
	case lua.LString:
		if v == "" || len(v) > maxNameBytes {
			L.RaiseError("%s: by must be a user table or a string of 1 to %d bytes", fname, maxNameBytes)
		}
		return string(v)
	case *lua.LTable:
		if isUserTable(v) {
			name := lua.LVAsString(v.RawGetString("name"))
			if id, ok := v.RawGetString("id").(lua.LString); ok && id != "" {
				return name + " (" + string(id) + ")"
			}
			return name
		}
	}
	L.RaiseError("%s: by must be a user table or a string, got %s", fname, v.Type())
	return ""
}

// unixTime is t as Lua sees times: seconds since 1970 with milliseconds,
// as chat.history's ts; nil for the zero time.
func unixTime(t time.Time) lua.LValue {
	if t.IsZero() {
		return lua.LNil
	}
	return lua.LNumber(float64(t.UnixMilli()) / 1000)
}

// chat.ban(room, target [, {duration = D, reason = R, by = B}]) -> true | nil, err
func (st *state) apiBan(L *lua.LState, script string) int {
	return st.restrict(L, script, "chat.ban", chat.KindBan)
}

// chat.mute(room, target [, {duration = D, reason = R, by = B}]) -> true | nil, err
func (st *state) apiMute(L *lua.LState, script string) int {
	return st.restrict(L, script, "chat.mute", chat.KindMute)
}

// restrict makes a ban or a mute through Host.Restrict.
func (st *state) restrict(L *lua.LState, script, fname string, kind chat.RestrictionKind) int {
	room, roomErr := checkRoom(L, 1, fname, true)
	target, targetErr := checkTarget(L, 2, fname)
	var d time.Duration
	var durErr error
	reason, by := "", script
	switch opts := L.Get(3).(type) {
	case *lua.LNilType:
	case *lua.LTable:
		opts.ForEach(func(k, v lua.LValue) {
			switch k {
			case lua.LString("duration"):
				d, durErr = checkDuration(L, v, fname, "duration")
			case lua.LString("reason"):
				s, ok := v.(lua.LString)
				if !ok || len(s) > maxNoticeBytes {
					L.RaiseError("%s: reason must be a string of at most %d bytes", fname, maxNoticeBytes)
				}
				reason = string(s)
			case lua.LString("by"):
				by = byOf(L, v, fname, script)
			default:
				L.RaiseError("%s: unknown option %s (want duration, reason and by)", fname, lua.LVAsString(k))
			}
		})
	default:
		L.RaiseError("%s: argument #3 must be a table {duration = …, reason = …, by = …}, got %s", fname, opts.Type())
	}
	for _, err := range []error{roomErr, targetErr, durErr} {
		if err != nil {
			return failed(L, err)
		}
	}
	if err := st.sh.hostOf().Restrict(kind, room, target, d, reason, by); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.unban(room, target [, by]) -> true (lifted) | false (none) | nil, err
func (st *state) apiUnban(L *lua.LState, script string) int {
	return st.lift(L, script, "chat.unban", chat.KindBan)
}

// chat.unmute(room, target [, by]) -> true (lifted) | false (none) | nil, err
func (st *state) apiUnmute(L *lua.LState, script string) int {
	return st.lift(L, script, "chat.unmute", chat.KindMute)
}

// lift removes a ban or a mute through Host.Lift.
func (st *state) lift(L *lua.LState, script, fname string, kind chat.RestrictionKind) int {
	room, roomErr := checkRoom(L, 1, fname, true)
	target, targetErr := checkTarget(L, 2, fname)
	by := byOf(L, L.Get(3), fname, script)
	for _, err := range []error{roomErr, targetErr} {
		if err != nil {
			return failed(L, err)
		}
	}
	lifted, err := st.sh.hostOf().Lift(kind, room, target, by)
	if err != nil {
		return failed(L, err)
	}
	L.Push(lua.LBool(lifted))
	return 1
}

// chat.restrictions(room) -> array of {kind, room, target, created,
// expires, by, reason}, oldest first
func (st *state) apiRestrictions(L *lua.LState) int {
	room, err := checkRoom(L, 1, "chat.restrictions", true)
	if err != nil {
		return failed(L, err)
	}
	list := st.sh.hostOf().Restrictions(room)
	t := L.CreateTable(len(list), 0)
	for i, r := range list {
		rt := L.CreateTable(0, 7)
		rt.RawSetString("kind", lua.LString(r.Kind))
		rt.RawSetString("room", lua.LString(r.Room))
		rt.RawSetString("target", targetTable(L, r.Target))
		rt.RawSetString("created", unixTime(r.Created))
		rt.RawSetString("expires", unixTime(r.Expires))
		rt.RawSetString("by", lua.LString(r.By))
		rt.RawSetString("reason", lua.LString(r.Reason))
		t.RawSetInt(i+1, rt)
	}
	L.Push(t)
	return 1
}

// chat.room_settings(room) -> {topic, topic_by, topic_since, slow} | nil, err
func (st *state) apiRoomSettings(L *lua.LState) int {
	room, err := checkRoom(L, 1, "chat.room_settings", false)
	if err != nil {
		return failed(L, err)
	}
	s := st.sh.hostOf().RoomSettings(room)
	t := L.CreateTable(0, 4)
	t.RawSetString("topic", lua.LString(s.Topic))
	if s.TopicBy != "" {
		t.RawSetString("topic_by", lua.LString(s.TopicBy))
	}
	t.RawSetString("topic_since", unixTime(s.TopicSince))
	t.RawSetString("slow", lua.LNumber(s.Slow.Seconds()))
	L.Push(t)
	return 1
}

// chat.set_room_settings(room, {topic = T, slow = D} [, by]) -> true | nil, err
//
// A field left out keeps its value; topic "" clears the topic, slow 0
// turns slow mode off. A changed topic is the by's, from now.
func (st *state) apiSetRoomSettings(L *lua.LState, script string) int {
	const fname = "chat.set_room_settings"
	room, roomErr := checkRoom(L, 1, fname, false)
	opts, ok := L.Get(2).(*lua.LTable)
	if !ok {
		L.RaiseError("%s: argument #2 must be a table {topic = …, slow = …}, got %s", fname, L.Get(2).Type())
	}
	by := byOf(L, L.Get(3), fname, script)
	var topic *string
	var slow *time.Duration
	var slowErr error
	opts.ForEach(func(k, v lua.LValue) {
		switch k {
		case lua.LString("topic"):
			s, ok := v.(lua.LString)
			if !ok || len(s) > st.sh.maxText {
				L.RaiseError("%s: topic must be a string of at most %d bytes", fname, st.sh.maxText)
			}
			str := string(s)
			topic = &str
		case lua.LString("slow"):
			d, err := checkDuration(L, v, fname, "slow")
			slow, slowErr = &d, err
		default:
			L.RaiseError("%s: unknown field %s (want topic and slow)", fname, lua.LVAsString(k))
		}
	})
	for _, err := range []error{roomErr, slowErr} {
		if err != nil {
			return failed(L, err)
		}
	}
	h := st.sh.hostOf()
	s := h.RoomSettings(room)
	if topic != nil && *topic != s.Topic {
		s.Topic, s.TopicBy, s.TopicSince = *topic, by, time.Now().UTC()
		if *topic == "" {
			s.TopicBy, s.TopicSince = "", time.Time{}
		}
	}
	if slow != nil {
		s.Slow = *slow
	}
	if err := h.SetRoomSettings(room, s, by); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.audit(room [, {since = TS, n = N}]) -> array of {time, room, by,
// action, target, reason}, oldest first | nil, err
func (st *state) apiAudit(L *lua.LState) int {
	const fname = "chat.audit"
	room, roomErr := checkRoom(L, 1, fname, true)
	var since time.Time
	n := 20
	switch opts := L.Get(2).(type) {
	case *lua.LNilType:
	case *lua.LTable:
		opts.ForEach(func(k, v lua.LValue) {
			num, isNum := v.(lua.LNumber)
			f := float64(num)
			switch k {
			case lua.LString("since"):
				if !isNum || math.IsNaN(f) || math.IsInf(f, 0) {
					L.RaiseError("%s: since must be a time in seconds since 1970 (os.time()), got %s", fname, lua.LVAsString(v))
				}
				since = time.UnixMilli(int64(max(min(f, 1e12), 0) * 1000)).UTC()
			case lua.LString("n"):
				if !isNum || f != math.Trunc(f) {
					L.RaiseError("%s: n must be a whole number, got %s", fname, lua.LVAsString(v))
				}
				n = int(max(min(f, maxAudit), 0))
			default:
				L.RaiseError("%s: unknown option %s (want since and n)", fname, lua.LVAsString(k))
			}
		})
	default:
		L.RaiseError("%s: argument #2 must be a table {since = …, n = …}, got %s", fname, opts.Type())
	}
	if roomErr != nil {
		return failed(L, roomErr)
	}
	entries, err := st.sh.hostOf().Audit(room, since, n)
	if err != nil {
		return failed(L, err)
	}
	if len(entries) > n {
		entries = entries[len(entries)-n:]
	}
	t := L.CreateTable(len(entries), 0)
	for i, e := range entries {
		et := L.CreateTable(0, 6)
		et.RawSetString("time", unixTime(e.Time))
		et.RawSetString("room", lua.LString(e.Room))
		et.RawSetString("by", lua.LString(e.By))
		et.RawSetString("action", lua.LString(e.Action))
		et.RawSetString("target", lua.LString(e.Target))
		et.RawSetString("reason", lua.LString(e.Reason))
		t.RawSetInt(i+1, et)
	}
	L.Push(t)
	return 1
}

// mayActions are the actions chat.may knows, by their config.toml names.
var mayActions = map[string]chat.Action{
	"read": chat.ActionRead, "post": chat.ActionPost, "moderate": chat.ActionModerate,
}

// chat.may(user, action [, room]) -> bool | nil, err
//
// Whether the member may do action ("read", "post" or "moderate") in room
// (default: the user table's room) under the room rules, for its roles
// now: Host.May.
func (st *state) apiMay(L *lua.LState) int {
	const fname = "chat.may"
	id := checkSession(L, 1, fname)
	name, ok := L.Get(2).(lua.LString)
	action, known := mayActions[string(name)]
	if !ok || !known {
		L.RaiseError("%s: argument #2 must be \"read\", \"post\" or \"moderate\", got %s", fname, lua.LVAsString(L.Get(2)))
	}
	var room string
	var err error
	if L.Get(3) != lua.LNil {
		room, err = checkRoom(L, 3, fname, false)
	} else if ut, isTable := L.Get(1).(*lua.LTable); isTable {
		r, isStr := ut.RawGetString("room").(lua.LString)
		if !isStr {
			L.RaiseError("%s: argument #1 has no room: give the room as argument #3", fname)
		}
		room = string(r)
	} else {
		L.RaiseError("%s: with a session number, give the room as argument #3", fname)
	}
	if err != nil {
		return failed(L, err)
	}
	allowed, err := st.sh.hostOf().May(id, room, action)
	if err != nil {
		return failed(L, err)
	}
	L.Push(lua.LBool(allowed))
	return 1
}
