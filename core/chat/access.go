package chat

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Room permission rules ([rooms."PATTERN"] tables in config.toml, issue
// 12): who may read, post and moderate in which rooms, and whether a
// room's history is public over HTTP. This file holds the rules as a
// value and the decision, and the Server's helpers that apply them on
// every path: joining (read), posting (post), WebSocket history requests
// (read), /api/history (the caller's identity: read, and public history
// unless it is a member) and /api/rooms (rooms the caller may read). Lua's chat.history
// reads as the server itself, for no user (docs/lua.md).
//
// Patterns are path.Match globs over room names, restricted to what can
// match a room name: room-name characters (A-Z a-z 0-9 - _ .) stand for
// themselves, "*" matches any run of characters, "?" one character, and
// "[...]" one character of a class ("[a-c]", "[^0-9]"). A backslash is
// refused: room names have no character that needs escaping.
//
// Most specific wins. The specificity of a pattern is, in order:
//  1. an exact name (no "*", "?" or "[") beats every pattern;
//  2. then more literal characters (outside "*", "?" and "[...]") win:
//     "team-dev-*" beats "team-*", which beats "*";
//  3. then fewer "*" win: "team-?" beats "team-*".
//
// Rules that are still tied and all match a room are combined fail-closed:
// an action is allowed only when every tied rule allows it, and history is
// public only when every tied rule says so ("a*" and "*a" for room "aa").
// Config order plays no part: TOML tables have none that survives
// decoding, and reordering a file must not change who may do what.
//
// The most specific rule decides alone: a room matched by "ops-*" gets
// nothing from "*". A room no rule matches gets DefaultRoomRule's
// permissions, which are today's behaviour: read and post open to
// everyone, nobody moderates, history public.

// Action is what a caller wants to do in a room.
type Action int

// The actions a RoomRule governs.
const (
	// ActionRead is joining a room and reading its messages and history.
	ActionRead Action = iota + 1
	// ActionPost is sending messages to a room.
	ActionPost
	// ActionModerate is acting on other members and their messages.
	ActionModerate
)

// String names the action as config.toml does.
func (a Action) String() string {
	switch a {
	case ActionRead:
		return "read"
	case ActionPost:
		return "post"
	case ActionModerate:
		return "moderate"
	default:
		return fmt.Sprintf("Action(%d)", int(a))
	}
}

// Role names with a meaning of their own in RoomRule lists.
const (
	// RoleEveryone in a list allows every caller, with or without roles.
	RoleEveryone = "*"
	// RoleGuest is the built-in role of a connection without an account.
	// The identity layer gives it to guests; a rule names it like any
	// other role.
	RoleGuest = "guest"
	// RoleUser is the built-in role of every authenticated identity.
	RoleUser = "user"
)

// RoomRule is the permissions of the rooms whose names match Pattern. The
// lists hold role names (RoleEveryone, RoleGuest, RoleUser or roles from
// tokens and scripts); an empty list allows nobody. The lists mean what
// they say: filling in defaults for keys a config file leaves out is the
// config loader's business (DefaultRoomRule).
type RoomRule struct {
	// Pattern is an exact room name or a glob (see the package comment of
	// access.go: "*", "?", "[...]").
	Pattern string
	// Read lists the roles that may join the room and read it.
	Read []string
	// Post lists the roles that may send messages to the room.
	Post []string
	// Moderate lists the roles that may moderate the room.
	Moderate []string
	// History says whether callers who are not members of the room may
	// read its history over HTTP (/api/history); they still need Read.
	History bool
}

// DefaultRoomRule returns the permissions of a room no rule matches, with
// the given pattern: read and post for everyone, no moderators, history
// public — moonchat's behaviour before room rules existed.
func DefaultRoomRule(pattern string) RoomRule {
	return RoomRule{
		Pattern: pattern,
		Read:    []string{RoleEveryone},
		Post:    []string{RoleEveryone},
		History: true,
	}
}

// RoomRules decides who may do what in which room. The zero value and a
// nil *RoomRules hold no rules: every room gets DefaultRoomRule. A
// RoomRules is immutable and safe for concurrent use.
type RoomRules struct {
	rules []compiledRule
}

// compiledRule is a RoomRule with its specificity.
type compiledRule struct {
	RoomRule
	exact    bool // no metacharacters: Pattern is a room name
	literals int  // characters outside "*", "?" and "[...]"
	stars    int  // number of "*"
}

// more reports whether c is more specific than d (package comment).
func (c *compiledRule) more(d *compiledRule) bool {
	if c.exact != d.exact {
		return c.exact
	}
	if c.literals != d.literals {
		return c.literals > d.literals
	}
	return c.stars < d.stars
}

// ErrInvalidPattern marks a room pattern that is not valid.
var ErrInvalidPattern = errors.New("invalid room pattern")

// NewRoomRules validates rules and returns them ready to decide. Every
// problem is reported (joined), each naming its pattern: an invalid
// pattern (ValidRoomPattern), a pattern given twice, an empty role name,
// or "*" next to other roles in one list.
func NewRoomRules(rules []RoomRule) (*RoomRules, error) {
	rr := &RoomRules{rules: make([]compiledRule, 0, len(rules))}
	var errs []error
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[r.Pattern] {
			errs = append(errs, fmt.Errorf("room pattern %q: given twice", r.Pattern))
			continue
		}
		seen[r.Pattern] = true
		rr.rules = append(rr.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rr, nil
}

// compileRule validates r and measures its specificity. The lists are
// copied so that the caller's slices cannot change the rules later.
func compileRule(r RoomRule) (compiledRule, error) {
	c := compiledRule{RoomRule: r}
	var err error
	c.exact, c.literals, c.stars, err = scanPattern(r.Pattern)
	if err != nil {
		return c, fmt.Errorf("room pattern %q: %w", r.Pattern, err)
	}
	for _, l := range []struct {
		name  string
		roles *[]string
	}{{"read", &c.Read}, {"post", &c.Post}, {"moderate", &c.Moderate}} {
		if err := CheckRoles(*l.roles); err != nil {
			return c, fmt.Errorf("room pattern %q: %s: %w", r.Pattern, l.name, err)
		}
		*l.roles = slices.Clone(*l.roles)
	}
	return c, nil
}

// CheckRoles says what is wrong with a role list of a RoomRule (nil when
// nothing is): an empty role name, or RoleEveryone next to other roles
// (which would say nothing more, and suggests a misunderstanding).
func CheckRoles(roles []string) error {
	for _, r := range roles {
		switch {
		case r == "" || strings.TrimSpace(r) != r:
			return fmt.Errorf("invalid role %q: want a non-empty name without surrounding spaces", r)
		case r == RoleEveryone && len(roles) > 1:
			return fmt.Errorf("%q allows everyone: it must be the only entry", RoleEveryone)
		}
	}
	return nil
}

// ValidRoomPattern reports why p cannot be a room pattern (nil when it
// can): it must be a valid glob (path.Match syntax, no backslash) whose
// literal characters are room-name characters and that can match a name
// of at most 32 characters (ValidRoomName); otherwise it would match no
// room, which is always a mistake.
func ValidRoomPattern(p string) error {
	_, _, _, err := scanPattern(p)
	if err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidPattern, p, err)
	}
	return nil
}

// scanPattern validates p and returns whether it is an exact name, its
// number of literal characters and of "*".
func scanPattern(p string) (exact bool, literals, stars int, err error) {
	if p == "" {
		return false, 0, 0, errors.New("empty")
	}
	if strings.Contains(p, `\`) {
		return false, 0, 0, errors.New(`"\" is not allowed (room names need no escaping)`)
	}
	if _, err := path.Match(p, ""); err != nil {
		return false, 0, 0, errors.New(`bad glob syntax (want room-name characters, "*", "?" and "[...]")`)
	}
	minLen := 0 // the shortest name p matches
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*':
			stars++
		case c == '?':
			minLen++
		case c == '[':
			// path.Match accepted the syntax: the class ends at the first
			// "]" that is not its first character (after an optional "^").
			j := i + 1
			if j < len(p) && p[j] == '^' {
				j++
			}
			j++ // a "]" right after "[" or "[^" is a member
			for j < len(p) && p[j] != ']' {
				j++
			}
			i = j
			minLen++
		case isRoomChar(c):
			literals++
			minLen++
		default:
			return false, 0, 0, fmt.Errorf("%q can never match a room name (A-Z a-z 0-9 - _ . only)", c)
		}
	}
	if minLen > maxRoomLength {
		return false, 0, 0, fmt.Errorf("matches only names longer than %d characters", maxRoomLength)
	}
	return literals == len(p), literals, stars, nil
}

// isRoomChar reports whether c may appear in a room name (ValidRoomName).
func isRoomChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// Len returns the number of rules (0 for nil).
func (rr *RoomRules) Len() int {
	if rr == nil {
		return 0
	}
	return len(rr.rules)
}

// match returns the most specific rules matching room: one, several tied
// (package comment), or none.
func (rr *RoomRules) match(room string) []*compiledRule {
	if rr == nil {
		return nil
	}
	var best []*compiledRule
	for i := range rr.rules {
		c := &rr.rules[i]
		if ok, err := path.Match(c.Pattern, room); err != nil || !ok {
			continue // err cannot happen: NewRoomRules validated the pattern
		}
		switch {
		case len(best) == 0 || c.more(best[0]):
			best = append(best[:0], c)
		case !best[0].more(c):
			best = append(best, c) // tied
		}
	}
	return best
}

// Allows reports whether a caller with roles may do action in room. The
// caller's roles are matched exactly; RoleEveryone in a rule's list allows
// any caller, also one with no roles. The identity layer is expected to
// give guests RoleGuest and authenticated identities RoleUser besides
// their own roles. An unknown action is refused.
func (rr *RoomRules) Allows(room string, roles []string, action Action) bool {
	best := rr.match(room)
	if len(best) == 0 {
		def := DefaultRoomRule("")
		return ruleAllows(&def, roles, action)
	}
	for _, c := range best {
		if !ruleAllows(&c.RoomRule, roles, action) {
			return false
		}
	}
	return true
}

// ruleAllows reports whether r lets a caller with roles do action.
func ruleAllows(r *RoomRule, roles []string, action Action) bool {
	var list []string
	switch action {
	case ActionRead:
		list = r.Read
	case ActionPost:
		list = r.Post
	case ActionModerate:
		list = r.Moderate
	default:
		return false
	}
	for _, allowed := range list {
		if allowed == RoleEveryone || slices.Contains(roles, allowed) {
			return true
		}
	}
	return false
}

// HistoryPublic reports whether callers who are not members of room may
// read its history over HTTP (RoomRule.History). It says nothing of who:
// such a caller must also be allowed ActionRead.
func (rr *RoomRules) HistoryPublic(room string) bool {
	best := rr.match(room)
	if len(best) == 0 {
		return DefaultRoomRule("").History
	}
	for _, c := range best {
		if !c.History {
			return false
		}
	}
	return true
}

// RoomAllowed reports whether room matches one of patterns: the rooms
// claim of a token, which narrows what the room rules allow. Patterns have
// RoomRule.Pattern's syntax; an invalid one matches nothing. An empty or
// nil list allows no room: a token without a rooms claim is not narrowed,
// and its holder's caller must not ask (fail closed, so that a claim lost
// on the way never opens every room).
func RoomAllowed(patterns []string, room string) bool {
	for _, p := range patterns {
		if _, _, _, err := scanPattern(p); err != nil {
			continue
		}
		if ok, err := path.Match(p, room); err == nil && ok {
			return true
		}
	}
	return false
}

// rolesOrGuest returns roles, or the guest role when there are none: a
// caller without roles is a guest.
func rolesOrGuest(roles []string) []string {
	if len(roles) == 0 {
		return []string{RoleGuest}
	}
	return roles
}

// allows reports whether a caller with roles may do action in room under
// Config.RoomRules (no rules: everything is allowed, at no cost).
func (s *Server) allows(room string, roles []string, action Action) bool {
	if s.cfg.RoomRules.Len() == 0 {
		return true
	}
	return s.cfg.RoomRules.Allows(room, rolesOrGuest(roles), action)
}

// readRefusal returns why a caller with roles may not join room, or ""
// when it may. It is the one decision for joins, whether taken in the
// room (membership.go, close 1008) or before the upgrade (HTTP 403).
func (s *Server) readRefusal(room string, roles []string) string {
	if s.allows(room, roles, ActionRead) {
		return ""
	}
	return "you may not read " + room
}

// historyRefusal returns why the HTTP caller id may not read room's
// history over /api/history, or "" when it may: it must be allowed to
// read the room, and the room's history must be public (RoomRule.History)
// unless id is an account with a live connection in the room (a member).
// Its credentials' rooms claim was applied by identify.
func (s *Server) historyRefusal(room string, id *identity) string {
	if s.cfg.RoomRules.Len() == 0 {
		return ""
	}
	if !s.allows(room, id.roles, ActionRead) {
		return "you may not read " + room
	}
	if !s.cfg.RoomRules.HistoryPublic(room) && !s.hasAccountIn(room, id.account) {
		return "the history of " + room + " is not public"
	}
	return ""
}
