package tui

import (
	"io"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/moonchat/moonchat/internal/chatclient"
)

// testModel is a model on a client that is never run, drawn without
// colours at 80×20.
func testModel(t *testing.T) *model {
	t.Helper()
	c, err := chatclient.New(chatclient.Options{URL: "ws://127.0.0.1:1/chat/lobby", Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(c, lipgloss.NewRenderer(io.Discard))
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 20})
	return m
}

func (m *model) feed(ups ...chatclient.Update) {
	for _, u := range ups {
		m.Update(updateMsg(u))
	}
}

func ev(e chatclient.Event) chatclient.Update { return chatclient.Update{Event: &e} }

func (m *model) typeText(s string) {
	for _, r := range s {
		m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// TestModel: what the screen shows of the events, completion from the
// /help answer (which is not shown) and member names, and texts that
// cannot drive the terminal or fake a line.
func TestModel(t *testing.T) {
	m := testModel(t)
	m.feed(
		chatclient.Update{State: &chatclient.State{Status: chatclient.Connected, Name: "alice", Room: "lobby"}},
		ev(chatclient.Event{Type: "welcome", Room: "lobby", User: "alice"}),
		ev(chatclient.Event{Type: "history", Room: "lobby", Reason: "join", Messages: []chatclient.Event{
			{ID: 1, User: "bob", Text: "hi", TS: "2026-12-03T10:00:00.000Z"},
			{ID: 2, User: "bob", Text: "waves", Action: true, TS: "2026-12-03T10:01:00.000Z"},
		}}),
		ev(chatclient.Event{Type: "presence", Room: "lobby", Users: []string{"bob", "alice"},
			Accounts: map[string]chatclient.Account{"bob": {ID: "b1", Roles: []string{"user", "moderator"}}}}),
		ev(chatclient.Event{Type: "system", Text: "/help: list the commands"}),
		ev(chatclient.Event{Type: "system", Text: "/nick NICK: change your name"}),
		ev(chatclient.Event{Type: "system", Text: "(moderators) /ban NICK [DURATION] [REASON]: ban"}),
		ev(chatclient.Event{Type: "topic", Room: "lobby", Topic: "release day"}),
		ev(chatclient.Event{Type: "message", ID: 3, User: "bob", Text: "evil\x1b]0;owned\x07 two\nalice: lines", TS: "2026-12-03T10:02:00.000Z"}),
	)
	v := m.View()
	for _, want := range []string{"#lobby", "release day", "bob: hi", "* bob waves", "members (2)", "◆bob", " alice",
		"● connected as alice", "evil�]0;owned� two ⏎ alice: lines"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "\x1b]") || strings.Contains(v, "\x07") || strings.Contains(v, "/nick NICK") {
		t.Errorf("screen shows a control character or the /help answer:\n%q", v)
	}

	m.feed(ev(chatclient.Event{Type: "roles", Room: "lobby", Name: "alice", Roles: []string{"guest", "admin"}}))
	if v := m.View(); !strings.Contains(v, "★alice") {
		t.Errorf("no admin badge after a roles event:\n%s", v)
	}

	for _, tc := range []struct{ typed, want string }{
		{"/ni", "/nick "},
		{"/b", "/ban "},
		{"/d", "/dm "},
		{"bo", "bob: "},
		{"hello al", "hello alice "},
	} {
		m.in.Reset()
		m.typeText(tc.typed)
		m.Update(tea.KeyMsg{Type: tea.KeyTab})
		if got := m.in.Value(); got != tc.want {
			t.Errorf("%q + Tab = %q, want %q", tc.typed, got, tc.want)
		}
	}
	m.in.Reset()
	m.typeText("/")
	m.Update(tea.KeyMsg{Type: tea.KeyTab})
	if !strings.Contains(m.flash, "/ban /close /dm /help /nick") {
		t.Errorf("candidates %q", m.flash)
	}
}

// TestModelDirect: a direct message opens its conversation with an
// unread count, outside the room; switching shows it.
func TestModelDirect(t *testing.T) {
	m := testModel(t)
	m.feed(
		chatclient.Update{State: &chatclient.State{Status: chatclient.Connected, Name: "alice", Room: "lobby", Direct: true}},
		ev(chatclient.Event{Type: "direct", ID: 7, With: "bob", From: "bob", To: "alice", Text: "psst", TS: "2026-12-03T10:02:00.000Z"}),
	)
	v := m.View()
	if !strings.Contains(v, "@bob (1)") || strings.Contains(v, "psst") {
		t.Fatalf("room screen:\n%s", v)
	}
	m.Update(tea.KeyMsg{Type: tea.KeyCtrlN})
	v = m.View()
	if !strings.Contains(v, "bob: psst") || strings.Contains(v, "(1)") {
		t.Fatalf("conversation screen:\n%s", v)
	}
}
