package chat_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// rule builds a RoomRule.
func rule(pattern string, read, post, moderate []string, history bool) chat.RoomRule {
	return chat.RoomRule{Pattern: pattern, Read: read, Post: post, Moderate: moderate, History: history}
}

func roles(r ...string) []string { return r }

// TestRoomRulesAllows: the most specific matching rule decides alone
// (exact name, then literal characters, then fewer "*"), tied rules are
// combined fail-closed, "*" and the built-in roles mean what access.go
// says, and unmatched rooms keep today's behaviour.
func TestRoomRulesAllows(t *testing.T) {
	everyone := roles("*")
	rules := []chat.RoomRule{
		rule("*", everyone, everyone, roles("admin"), true),
		rule("team-*", roles("user"), roles("staff"), roles("lead"), false),
		rule("team-dev-*", roles("dev"), roles("dev"), nil, false),
		rule("team-?", roles("guest"), roles("guest"), nil, true),
		rule("team-x", roles("x"), roles("x"), roles("x"), true),
		rule("a*", everyone, everyone, nil, true),       // tie with "*a" on "aa"
		rule("*a", everyone, roles("user"), nil, false), // stricter twin
		rule("ops[0-9]", roles("ops"), roles("ops"), roles("ops"), false),
		rule("closed", nil, nil, nil, false),
	}
	rr, err := chat.NewRoomRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	R, P, M := chat.ActionRead, chat.ActionPost, chat.ActionModerate
	tests := []struct {
		name   string
		room   string
		roles  []string
		action chat.Action
		want   bool
	}{
		{"star rule: guest reads", "lobby", roles("guest"), R, true},
		{"star rule: no roles at all still everyone", "lobby", nil, P, true},
		{"star rule: admin moderates", "lobby", roles("user", "admin"), M, true},
		{"star rule: user does not moderate", "lobby", roles("user"), M, false},
		{"team-*: built-in user reads", "team-blue", roles("user"), R, true},
		{"team-*: guest does not read", "team-blue", roles("guest"), R, false},
		{"team-*: user does not post", "team-blue", roles("user"), P, false},
		{"team-*: staff posts", "team-blue", roles("user", "staff"), P, true},
		{"team-*: admin from * does not carry over", "team-blue", roles("user", "admin"), M, false},
		{"team-dev-* beats team-* (more literals)", "team-dev-api", roles("user", "staff"), P, false},
		{"team-dev-*: dev posts", "team-dev-api", roles("dev"), P, true},
		{"team-dev-*: nobody moderates", "team-dev-api", roles("dev", "lead"), M, false},
		{"team-? beats team-* (fewer stars)", "team-q", roles("guest"), P, true},
		{"team-? beats team-*: staff loses post", "team-q", roles("staff"), P, false},
		{"exact beats team-?", "team-x", roles("guest"), R, false},
		{"exact: x reads", "team-x", roles("x"), R, true},
		{"tie: both allow read", "aa", nil, R, true},
		{"tie: one refuses post, so refused", "aa", roles("guest"), P, false},
		{"tie: both allow user post", "aa", roles("user"), P, true},
		{"no tie: only a* matches", "ab", roles("guest"), P, true},
		{"class: ops1", "ops1", roles("ops"), M, true},
		{"class: opsx falls to *", "opsx", roles("guest"), P, true},
		{"empty lists allow nobody", "closed", roles("admin", "user"), R, false},
		{"unknown action refused", "lobby", roles("admin"), chat.Action(99), false},
		{"roles match exactly", "team-blue", roles("User"), R, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rr.Allows(tt.room, tt.roles, tt.action); got != tt.want {
				t.Fatalf("Allows(%q, %q, %v) = %v, want %v", tt.room, tt.roles, tt.action, got, tt.want)
			}
		})
	}
}

// TestRoomRulesDefaults: no rules (nil, zero value, empty list, or no rule
// matching) is today's behaviour: everyone reads and posts, history is
// public, nobody moderates.
func TestRoomRulesDefaults(t *testing.T) {
	empty, err := chat.NewRoomRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	onlyExact, err := chat.NewRoomRules([]chat.RoomRule{rule("staff", roles("staff"), roles("staff"), nil, false)})
	if err != nil {
		t.Fatal(err)
	}
	for name, rr := range map[string]*chat.RoomRules{"nil": nil, "zero": {}, "empty": empty, "unmatched": onlyExact} {
		for _, who := range [][]string{nil, roles("guest"), roles("user", "admin")} {
			if !rr.Allows("lobby", who, chat.ActionRead) || !rr.Allows("lobby", who, chat.ActionPost) {
				t.Errorf("%s: %q may not read or post in an open room", name, who)
			}
			if rr.Allows("lobby", who, chat.ActionModerate) {
				t.Errorf("%s: %q moderates without a rule", name, who)
			}
		}
		if !rr.HistoryPublic("lobby") {
			t.Errorf("%s: history not public without a rule", name)
		}
	}
	if onlyExact.Allows("staff", roles("guest"), chat.ActionRead) || onlyExact.Len() != 1 {
		t.Error("the exact rule does not apply to its room")
	}
	if d := chat.DefaultRoomRule("x"); d.Pattern != "x" || !d.History || len(d.Moderate) != 0 {
		t.Errorf("DefaultRoomRule = %+v", d)
	}
}

func TestRoomRulesHistoryPublic(t *testing.T) {
	rr, err := chat.NewRoomRules([]chat.RoomRule{
		rule("*", roles("*"), roles("*"), nil, true),
		rule("priv-*", roles("*"), roles("*"), nil, false),
		rule("priv-open", roles("*"), roles("*"), nil, true),
		rule("x*", roles("*"), roles("*"), nil, true),
		rule("*x", roles("*"), roles("*"), nil, false),
	})
	if err != nil {
		t.Fatal(err)
	}
	for room, want := range map[string]bool{
		"lobby": true, "priv-a": false, "priv-open": true,
		"xx": false, // tied: public only when every tied rule says so
		"xy": true,
	} {
		if got := rr.HistoryPublic(room); got != want {
			t.Errorf("HistoryPublic(%q) = %v, want %v", room, got, want)
		}
	}
}

// TestNewRoomRulesRefuses: every invalid rule is refused, each error
// naming its pattern, all of them at once.
func TestNewRoomRulesRefuses(t *testing.T) {
	ok := roles("*")
	tests := []struct {
		name string
		rule chat.RoomRule
		want string
	}{
		{"empty pattern", rule("", ok, ok, nil, true), `room pattern "": empty`},
		{"unclosed class", rule("team-[a", ok, ok, nil, true), `room pattern "team-[a": bad glob syntax`},
		{"empty class", rule("a[]", ok, ok, nil, true), `room pattern "a[]": bad glob syntax`},
		{"backslash", rule(`a\*`, ok, ok, nil, true), `room pattern "a\\*": "\" is not allowed`},
		{"space", rule("the lobby", ok, ok, nil, true), `room pattern "the lobby": ' ' can never match a room name`},
		{"slash", rule("a/*", ok, ok, nil, true), `room pattern "a/*": '/' can never match`},
		{"too long", rule(strings.Repeat("a", 33), ok, ok, nil, true), "matches only names longer than 32 characters"},
		{"too long with ?", rule(strings.Repeat("?", 33)+"*", ok, ok, nil, true), "matches only names longer than 32"},
		{"empty role", rule("a", roles(""), ok, nil, true), `room pattern "a": read: invalid role ""`},
		{"spaced role", rule("a", ok, roles(" staff"), nil, true), `room pattern "a": post: invalid role " staff"`},
		{"star not alone", rule("a", ok, ok, roles("*", "admin"), true), `room pattern "a": moderate: "*" allows everyone: it must be the only entry`},
	}
	var all []chat.RoomRule
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chat.NewRoomRules([]chat.RoomRule{rule("fine-*", ok, ok, nil, true), tt.rule})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
		all = append(all, tt.rule)
	}
	all = append(all, rule("dup", ok, ok, nil, true), rule("dup", ok, ok, nil, true))
	_, err := chat.NewRoomRules(all)
	if err == nil {
		t.Fatal("no error")
	}
	for _, tt := range tests {
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("joined error lacks %q", tt.want)
		}
	}
	if !strings.Contains(err.Error(), `room pattern "dup": given twice`) {
		t.Errorf("duplicate not reported: %v", err)
	}
}

func TestValidRoomPattern(t *testing.T) {
	for _, p := range []string{"*", "lobby", "team-*", "a?c", "[a-c]*", "[^0-9]x", "x.y_z-1", strings.Repeat("a", 32), strings.Repeat("a", 40)[:32] + "*"} {
		if err := chat.ValidRoomPattern(p); err != nil {
			t.Errorf("ValidRoomPattern(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "[", "a[b", "a b", "é*", `\a`, strings.Repeat("?", 33)} {
		err := chat.ValidRoomPattern(p)
		if !errors.Is(err, chat.ErrInvalidPattern) {
			t.Errorf("ValidRoomPattern(%q) = %v, want ErrInvalidPattern", p, err)
		}
	}
}

// TestRoomRulesCopiesLists: changing the caller's slices after
// NewRoomRules does not change the rules.
func TestRoomRulesCopiesLists(t *testing.T) {
	read := roles("staff")
	rr, err := chat.NewRoomRules([]chat.RoomRule{rule("ops", read, read, nil, false)})
	if err != nil {
		t.Fatal(err)
	}
	read[0] = "*"
	if rr.Allows("ops", roles("guest"), chat.ActionRead) {
		t.Fatal("the rules follow the caller's slice")
	}
}

// TestRoomAllowed: a token's rooms claim narrows to the rooms its patterns
// match; an empty claim and invalid patterns match nothing.
func TestRoomAllowed(t *testing.T) {
	tests := []struct {
		patterns []string
		room     string
		want     bool
	}{
		{roles("lobby"), "lobby", true},
		{roles("lobby"), "lobby2", false},
		{roles("team-*", "lobby"), "team-red", true},
		{roles("team-*"), "lobby", false},
		{roles("*"), "anything", true},
		{roles("room-?"), "room-1", true},
		{roles("room-?"), "room-12", false},
		{roles("[ab]*"), "bob", true},
		{nil, "lobby", false},
		{roles(), "lobby", false},
		{roles("[", "lob by", `lob\by`), "lobby", false},
		{roles("[", "lobby"), "lobby", true}, // one bad pattern does not spoil the good ones
	}
	for _, tt := range tests {
		if got := chat.RoomAllowed(tt.patterns, tt.room); got != tt.want {
			t.Errorf("RoomAllowed(%q, %q) = %v, want %v", tt.patterns, tt.room, got, tt.want)
		}
	}
}

// TestNewAcceptsRoomRules: New runs with rules (they are enforced, see
// access_e2e_test.go) and without (nil or empty), as before.
func TestNewAcceptsRoomRules(t *testing.T) {
	cfg := chat.Config{DefaultRoom: "lobby", MaxConnections: 1, MaxNameLength: 24, MaxRooms: 1, MaxTextBytes: 100, APILimit: 10}
	rr, err := chat.NewRoomRules([]chat.RoomRule{rule("*", roles("user"), roles("user"), nil, false)})
	if err != nil {
		t.Fatal(err)
	}
	for _, rules := range []*chat.RoomRules{rr, nil, {}} {
		cfg.RoomRules = rules
		srv, err := chat.New(cfg, nil, nil)
		if err != nil {
			t.Fatalf("New with %d rules: %v", rules.Len(), err)
		}
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[chat.Action]string{chat.ActionRead: "read", chat.ActionPost: "post", chat.ActionModerate: "moderate", 0: "Action(0)"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(a), a, want)
		}
	}
}
