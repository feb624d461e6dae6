package scripting

import (
	"io/fs"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
)

// accountsSource is the accounts example as the binary ships it
// (defaults.Examples, what `moonchat init` writes to scripts/examples/).
func accountsSource(t *testing.T) []byte {
	t.Helper()
	src, err := fs.ReadFile(defaults.Examples(), "accounts.lua")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func accountsRig(t *testing.T, opts ScriptOptions) *rig {
	t.Helper()
	src := accountsSource(t)
	return newRigOpts(t, Options{FS: scriptFS(map[string]string{"accounts.lua": string(src)}), ScriptOptions: opts})
}

// TestAccountsExample: /register from a guest session, then log-in with
// the name and password; the refusals (short password, name registered,
// already an account, wrong password, unknown name); the password never
// in an answer, a host call or the log.
func TestAccountsExample(t *testing.T) {
	const pw = "hunter2-but-longer"
	r := accountsRig(t, nil)
	ctx := t.Context()
	acct := chat.User{SessionID: bob.SessionID, Name: "bob", Room: "lobby", ID: "u-bob", Roles: []string{"user"}}
	var seen []string // every text a user or the log got
	step := func(u chat.User, text string, want chat.MessageResult, sends ...string) {
		t.Helper()
		got := r.say(u, text)
		seen = append(seen, got.Reason, got.Text)
		if got != want {
			t.Errorf("%s %q → %+v, want %+v", u.Name, text, got, want)
		}
		var gotSends []string
		for _, c := range r.host.take() {
			seen = append(seen, c.Text)
			gotSends = append(gotSends, c.Method+":"+c.Text)
		}
		var wantSends []string
		for _, s := range sends {
			wantSends = append(wantSends, "Send:"+s)
		}
		if !reflect.DeepEqual(gotSends, wantSends) {
			t.Errorf("%s %q: host calls %q, want %q", u.Name, text, gotSends, wantSends)
		}
	}
	step(alice, "/register", chat.MessageResult{Drop: true, Reason: "usage: /register PASSWORD"})
	step(alice, "/register short", chat.MessageResult{Drop: true, Reason: "a password needs at least 8 characters"})
	// Eight characters in more than eight bytes is long enough; seven is not.
	step(alice, "/register ééééééé", chat.MessageResult{Drop: true, Reason: "a password needs at least 8 characters"})
	step(acct, "/register "+pw, chat.MessageResult{Drop: true, Reason: "you are logged in to an account already"})
	step(alice, "/register "+pw, chat.MessageResult{Drop: true}, "registered alice: log in with this name and password to keep it yours")
	step(alice, "/register "+pw+"2", chat.MessageResult{Drop: true, Reason: "the name alice is registered already"})
	aliceCaps := alice
	aliceCaps.SessionID, aliceCaps.Name = carol.SessionID, "ALICE"
	step(aliceCaps, "/register another-password", chat.MessageResult{Drop: true, Reason: "the name ALICE is registered already"})
	step(carol, "/register ëëëëëëëë", chat.MessageResult{Drop: true}, "registered carol: log in with this name and password to keep it yours")

	stored, _, _ := r.kv.Get("accounts.lua", "account:alice")
	if !strings.HasPrefix(stored, "$argon2id$v=19$") || !strings.HasSuffix(stored, " alice") || strings.Contains(stored, pw) {
		t.Errorf("stored %q, want an argon2id hash and the name", stored)
	}

	aliceID := &chat.Identity{ID: "accounts:alice", Name: "alice"}
	for _, tc := range []struct {
		name, password string
		want           LoginResult
	}{
		{"alice", pw, LoginResult{Identity: aliceID}},
		{"Alice", pw, LoginResult{Identity: aliceID}},
		{"carol", "ëëëëëëëë", LoginResult{Identity: &chat.Identity{ID: "accounts:carol", Name: "carol"}}},
		{"alice", pw + "x", LoginResult{Refuse: true, Reason: "wrong name or password"}},
		{"alice", "", LoginResult{Refuse: true, Reason: "wrong name or password"}},
		{"alice", strings.Repeat("p", 2000), LoginResult{Refuse: true, Reason: "wrong name or password"}},
		{"dave", pw, LoginResult{Refuse: true, Reason: "wrong name or password"}},
		{"", pw, LoginResult{Refuse: true, Reason: "wrong name or password"}},
		{strings.Repeat("n", 300), pw, LoginResult{Refuse: true, Reason: "wrong name or password"}},
	} {
		got := r.e.Login(ctx, LoginRequest{Name: tc.name, Password: tc.password, Addr: "127.0.0.1:1"})
		if got.Err != nil || got.Refuse != tc.want.Refuse || got.Reason != tc.want.Reason || !reflect.DeepEqual(got.Identity, tc.want.Identity) {
			t.Errorf("login %.20q/%.20q: %+v %+v, want %+v %+v", tc.name, tc.password, got, got.Identity, tc.want, tc.want.Identity)
		}
	}
	seen = append(seen, r.log.String())
	for _, s := range seen {
		if strings.Contains(s, pw) {
			t.Errorf("the password shows in %q", s)
		}
	}
}

// TestAccountsOptions: min_password_length from [scripts.accounts], and a
// bad value refused when the script loads.
func TestAccountsOptions(t *testing.T) {
	r := accountsRig(t, ScriptOptions{"accounts": {"min_password_length": int64(12)}})
	if got := r.say(alice, "/register elevenchars"); got.Reason != "a password needs at least 12 characters" {
		t.Errorf("11 characters: %+v", got)
	}
	if got := r.say(alice, "/register twelve-chars"); got != (chat.MessageResult{Drop: true}) {
		t.Errorf("12 characters: %+v", got)
	}
	src := accountsSource(t)
	for _, bad := range []any{"8", int64(0), 2.5} {
		_, err := New(t.Context(), Options{
			FS:            scriptFS(map[string]string{"accounts.lua": string(src)}),
			ScriptOptions: ScriptOptions{"accounts": {"min_password_length": bad}},
			Logger:        slog.New(slog.DiscardHandler),
		})
		if err == nil || !strings.Contains(err.Error(), "min_password_length must be a whole number") {
			t.Errorf("min_password_length = %v: %v", bad, err)
		}
	}
}

// TestAccountsRegisterNeverShown: over the wire, "/register PASSWORD" is a
// command: the room does not get it, history does not keep it, the sender
// gets only the answer, and neither the chat server's log nor the
// engine's holds the password. The message after it shows that nothing
// was delivered before (a room delivers in order).
func TestAccountsRegisterNeverShown(t *testing.T) {
	const pw = "s3cret-enough-pw"
	src := accountsSource(t)
	engineLog, serverLog := &logBuf{}, &logBuf{}
	e, err := New(t.Context(), Options{
		FS:          scriptFS(map[string]string{"accounts.lua": string(src)}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(engineLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{
		Logger: slog.New(slog.NewTextHandler(serverLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, e, hist)
	alice := ts.Dial(t, "/chat/lobby?name=alice", "")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	// readUntil reads c's frames until one contains want, failing on one
	// that holds the password.
	readUntil := func(name string, c *chattest.Client, want string) {
		t.Helper()
		for range 20 {
			frame := c.Read()
			if strings.Contains(frame, pw) {
				t.Fatalf("%s got the password: %q", name, frame)
			}
			if strings.Contains(frame, want) {
				return
			}
		}
		t.Fatalf("%s never got %q", name, want)
	}
	alice.Send("/register " + pw)
	// The answer is queued by the command, after whatever else it queued
	// for the room; "after" is sent only once the answer is in, so it is
	// queued after all of that.
	readUntil("alice", alice, "registered alice")
	alice.Send("after")
	readUntil("alice", alice, "alice: after")
	readUntil("bob", bob, "alice: after")
	for _, m := range hist.All("lobby") {
		if strings.Contains(m.Text, pw) || strings.Contains(m.Text, "/register") {
			t.Errorf("history holds %q", m.Text)
		}
	}
	if got := hist.All("lobby"); len(got) != 1 || got[0].Text != "after" {
		t.Errorf("history %+v, want only \"after\"", got)
	}
	if _, ok, _ := e.sh.kv.Get("accounts.lua", "account:alice"); !ok {
		t.Error("alice is not registered")
	}
	for name, l := range map[string]*logBuf{"engine": engineLog, "server": serverLog} {
		if strings.Contains(l.String(), pw) {
			t.Errorf("the %s log holds the password:\n%s", name, l.String())
		}
	}
}

// TestExamplesNotLoaded: the scripts directory's subdirectories are not
// loaded — the accounts example in defaults/scripts/examples does not run
// when defaults/scripts is the scripts directory — and the built-in
// scripts do not include it.
func TestExamplesNotLoaded(t *testing.T) {
	r := newRigOpts(t, Options{Dir: "../defaults/scripts"})
	st := r.e.cur.Load()
	if slices.ContainsFunc(st.scripts, func(s string) bool { return strings.Contains(s, "accounts") }) {
		t.Errorf("loaded %v", st.scripts)
	}
	if len(st.scripts) == 0 {
		t.Fatal("no scripts loaded from ../defaults/scripts")
	}
	if r.e.Handles("login") {
		t.Error("the default scripts directory handles login")
	}
	for _, c := range r.e.Commands() {
		if c.Name == "register" {
			t.Errorf("/register is registered by %s", c.Script)
		}
	}
	if _, err := fs.Stat(defaults.Scripts(), "examples"); err == nil {
		t.Error("the built-in scripts include examples/")
	}
	// The same directory's examples/ as the scripts directory: it loads.
	ex := newRigOpts(t, Options{Dir: "../defaults/scripts/examples"})
	if !ex.e.Handles("login") {
		t.Error("examples/ as the scripts directory does not handle login")
	}
}
