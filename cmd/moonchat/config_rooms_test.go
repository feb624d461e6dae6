package main

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// TestConfigRoomRules: [rooms."PATTERN"] tables reach chat.Config.RoomRules
// with what they say, keys left out taking chat.DefaultRoomRule's values,
// and no table (the built-in defaults) means no rules.
func TestConfigRoomRules(t *testing.T) {
	p := writeConfig(t, `
[rooms."*"]
moderate = ["admin"]

[rooms."staff-*"]
read = ["staff", "admin"]
post = ["staff"]
history = false

[rooms.announcements]
post = []

[rooms."team.dev"]
read = ["user"]
`)
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	rr := chatConfig(cfg, nil).RoomRules
	if rr.Len() != 4 {
		t.Fatalf("%d rules, want 4", rr.Len())
	}
	R, P, M := chat.ActionRead, chat.ActionPost, chat.ActionModerate
	for _, c := range []struct {
		room   string
		roles  []string
		action chat.Action
		want   bool
	}{
		{"lobby", []string{"guest"}, R, true}, // read left out: everyone
		{"lobby", []string{"guest"}, P, true},
		{"lobby", []string{"user", "admin"}, M, true},
		{"lobby", []string{"user"}, M, false},
		{"staff-room", []string{"user"}, R, false},
		{"staff-room", []string{"admin"}, R, true},
		{"staff-room", []string{"admin"}, P, false},
		{"staff-room", []string{"admin"}, M, false}, // moderate left out: nobody
		{"announcements", []string{"admin"}, P, false},
		{"announcements", []string{"guest"}, R, true},
		{"team.dev", []string{"guest"}, R, false},
		{"team.dev", []string{"user"}, R, true},
	} {
		if got := rr.Allows(c.room, c.roles, c.action); got != c.want {
			t.Errorf("Allows(%q, %q, %v) = %v, want %v", c.room, c.roles, c.action, got, c.want)
		}
	}
	if rr.HistoryPublic("staff-x") || !rr.HistoryPublic("lobby") {
		t.Error("history = false not applied, or history left out is not public")
	}

	def, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if def.Rooms != nil || chatConfig(def, nil).RoomRules != nil {
		t.Fatalf("built-in defaults set room rules: %v", def.Rooms)
	}
}

// TestConfigRoomRulesErrors: every problem in a rooms table is an error
// naming its key, all of them at once.
func TestConfigRoomRulesErrors(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"bad glob", "[rooms.\"team-[a\"]\nread = [\"*\"]\n",
			[]string{`config.toml: [rooms."team-[a"]: invalid room pattern "team-[a": bad glob syntax`}},
		{"impossible character", "[rooms.\"the lobby\"]\n",
			[]string{`[rooms."the lobby"]: invalid room pattern "the lobby": ' ' can never match a room name`}},
		{"backslash", "[rooms.'a\\*']\n",
			[]string{`[rooms."a\\*"]: invalid room pattern`, `"\" is not allowed`}},
		{"too long", "[rooms." + strings.Repeat("a", 33) + "]\n",
			[]string{`matches only names longer than 32 characters`}},
		{"unknown key", "[rooms.lobby]\nraed = [\"*\"]\n",
			[]string{`config.toml: [rooms."lobby"]: unknown key raed (did you mean read?)`}},
		{"unquoted dot", "[rooms.team.dev]\nread = [\"*\"]\n",
			[]string{`[rooms."team"]: unknown key dev: a table inside a rooms table; a pattern with a dot must be quoted: [rooms."team.dev"]`}},
		{"list as string", "[rooms.lobby]\nread = \"*\"\n",
			[]string{`config.toml: [rooms."lobby"] read: want an array of strings, got string "*"`}},
		{"list of numbers", "[rooms.lobby]\npost = [1]\n",
			[]string{`[rooms."lobby"] post: want an array of strings, got an array`}},
		{"history as string", "[rooms.lobby]\nhistory = \"no\"\n",
			[]string{`[rooms."lobby"] history: want true or false, got string "no"`}},
		{"empty role", "[rooms.lobby]\nmoderate = [\"\"]\n",
			[]string{`[rooms."lobby"] moderate: invalid role ""`}},
		{"star not alone", "[rooms.lobby]\nread = [\"*\", \"user\"]\n",
			[]string{`[rooms."lobby"] read: "*" allows everyone: it must be the only entry`}},
		{"not a table", "[rooms]\nlobby = 1\n",
			[]string{`config.toml: [rooms] lobby: must be a table ([rooms.lobby]), got integer 1`}},
		{"every problem at once", "[rooms.\"[\"]\n[rooms.a]\nraed = []\npost = \"x\"\n[chat]\nmax_rooms = 0\n",
			[]string{`[rooms."["]: invalid room pattern`, `[rooms."a"]: unknown key raed`, `[rooms."a"] post: want an array of strings`,
				`[chat] max_rooms: must be at least 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tt.toml))
			wantConfigError(t, err, tt.toml, tt.want)
		})
	}
}

// roomRules fails closed for a Config that was not validated: an invalid
// table yields rules that let nobody read or post, not open rooms.
func TestRoomRulesUnvalidatedConfigClosed(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rooms = map[string]map[string]any{"staff": {"read": "staff"}}
	rr := roomRules(cfg)
	for _, a := range []chat.Action{chat.ActionRead, chat.ActionPost} {
		if rr.Allows("lobby", []string{"user", "admin"}, a) {
			t.Errorf("invalid table: %v allowed", a)
		}
	}
	if rr.HistoryPublic("lobby") {
		t.Error("invalid table: history public")
	}
}

// moonchat check validates rooms tables: a bad glob fails naming its key;
// valid tables pass without a warning, and serve runs with them and
// enforces them (an anonymous /api/history of a room only "user" may read
// is refused with 403; an open room gets past the rules to the 404 of a
// server without a store).
func TestCheckAndServeRoomRules(t *testing.T) {
	t.Chdir(t.TempDir())
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile("config.toml", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[rooms.\"team-[\"]\nread = [\"user\"]\n")
	code, _, stderr := runCmd(t, "check")
	if code != 1 || !strings.Contains(stderr, `config.toml: [rooms."team-["]: invalid room pattern "team-["`) {
		t.Fatalf("check with a bad glob: exit %d\n%s", code, stderr)
	}

	base := "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"\"\n[scripting]\nenabled = false\n"
	write(base + "[rooms.\"team-*\"]\nread = [\"user\"]\n")
	code, stdout, stderr := runCmd(t, "check")
	if code != 0 || !strings.HasSuffix(stdout, "ok\n") || strings.Contains(stderr, "level=WARN") {
		t.Fatalf("check with valid rules: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	srv := startInProcess(t, "config.toml")
	for _, tc := range []struct {
		room   string
		status int
	}{{"team-x", http.StatusForbidden}, {"lobby", http.StatusNotFound}} {
		if status, body := httpGet(t, "http://"+srv.addr+"/api/history?room="+tc.room); status != tc.status {
			t.Errorf("/api/history?room=%s: %d %s, want %d", tc.room, status, body, tc.status)
		}
	}
}
