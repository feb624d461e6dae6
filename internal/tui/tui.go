// Package tui is moonchat's full-screen terminal client (`moonchat
// client` on a terminal), built on bubbletea, bubbles and lipgloss over a
// chatclient.Client, which keeps the connection, resumes after drops and
// pages history.
//
// The screen, top to bottom: a title bar (the room, its topic, and the
// open conversations with their unread counts), the message pane with the
// member list at its right, a status line (connected or reconnecting, the
// resume point since=ID, sends in flight, who is typing), and the input
// line.
//
// Keys: Enter sends; PgUp/PgDn scroll the pane, and PgUp at the top loads
// older messages (moonchat.v1 history requests); Up/Down recall what was
// sent; Tab completes a /command (from the server's /help answer) or a
// member's name; Ctrl+N/Ctrl+P switch between the room and the direct
// conversations; Ctrl+C quits. /dm NICK [TEXT] opens a conversation with
// NICK (and sends TEXT), /close closes the current one; in a conversation
// what is typed goes to that user only.
package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/moonchat/moonchat/internal/chatclient"
)

// Run runs the full-screen client on the terminal in/out until the user
// quits (Ctrl+C) or the server ends the connection for good (its
// *chatclient.ClosedError is returned, after the screen is restored).
func Run(ctx context.Context, c *chatclient.Client, in, out *os.File) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() {
		// Owned by Run, which waits for it below.
		runDone <- c.Run(ctx)
	}()
	m := newModel(c, lipgloss.NewRenderer(out))
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithInput(in), tea.WithOutput(out), tea.WithContext(ctx))
	_, perr := p.Run()
	c.Close()
	cancel()
	// Nobody reads the updates any more: drain them so that Run can end.
	for range c.Updates() {
	}
	runErr := <-runDone
	if errors.Is(perr, tea.ErrProgramKilled) || errors.Is(perr, context.Canceled) {
		perr = nil
	}
	if m.closed != nil {
		return m.closed
	}
	if perr != nil {
		return perr
	}
	return runErr
}

// kind is what a line of the message pane shows.
type kind uint8

const (
	kMessage kind = iota
	kAction
	kSystem
	kError
)

// line is one entry of a conversation.
type line struct {
	id   uint64
	at   time.Time
	kind kind
	user string
	text string

	// drawn is the line rendered at width drawnW (render's cache: the
	// pane is redrawn at every event, its lines rarely change).
	drawn  string
	drawnW int
}

// conv is the room (peer "") or a direct conversation with peer.
type conv struct {
	peer   string
	lines  []line
	unread int
	loaded bool // a first page was asked for (conversations)
	oldest uint64
	more   bool // older messages exist (conversations)
}

// model is the bubbletea model.
type model struct {
	c     *chatclient.Client
	st    styles
	w, h  int
	vp    viewport.Model
	in    textinput.Model
	convs []*conv // convs[0] is the room
	cur   int

	members  []string
	accounts map[string]chatclient.Account
	topic    string
	state    chatclient.State
	sending  int

	sent     []string // input history, oldest first
	histPos  int      // index into sent while recalling; len(sent) = the new line
	draft    string   // the line being typed when recall started
	commands []string // "/name" from the server's /help, sorted
	helpAsk  bool     // the automatic /help was sent
	helpHide time.Time
	flash    string // a one-off note in the status line (completion candidates, errors)
	typing   map[string]time.Time
	lastType time.Time

	loadingOlder bool
	closed       error
}

func newModel(c *chatclient.Client, r *lipgloss.Renderer) *model {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "type a message, /help for commands"
	in.Cursor.SetMode(cursor.CursorStatic)
	in.Focus()
	m := &model{
		c:        c,
		st:       newStyles(r),
		vp:       viewport.New(80, 20),
		in:       in,
		convs:    []*conv{{}},
		accounts: map[string]chatclient.Account{},
		typing:   map[string]time.Time{},
	}
	m.vp.KeyMap = viewport.KeyMap{} // keys are routed by the model
	return m
}

// updateMsg carries one client update into the program.
type updateMsg chatclient.Update

// closedMsg says the client's update stream ended.
type closedMsg struct{}

// tickMsg refreshes what expires (typing indicators, the help window).
type tickMsg time.Time

// next waits for the client's next update.
func (m *model) next() tea.Cmd {
	ch := m.c.Updates()
	return func() tea.Msg {
		u, ok := <-ch
		if !ok {
			return closedMsg{}
		}
		return updateMsg(u)
	}
}

// Init starts reading the client's updates and the one-second tick.
func (m *model) Init() tea.Cmd {
	return tea.Batch(m.next(), tick())
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update applies a key, a resize, a tick or a client update.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tickMsg:
		return m, tick()
	case closedMsg:
		return m, tea.Quit
	case updateMsg:
		m.apply(chatclient.Update(msg))
		if m.closed != nil {
			return m, tea.Quit
		}
		return m, m.next()
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	var cmd tea.Cmd
	m.in, cmd = m.in.Update(msg)
	return m, cmd
}

// apply takes one client update into the model.
func (m *model) apply(u chatclient.Update) {
	switch {
	case u.State != nil:
		if u.State.Status == chatclient.Connected && m.state.Status == chatclient.Reconnecting {
			text := "reconnected"
			if u.State.Since > 0 {
				text += fmt.Sprintf(": resuming since=%d", u.State.Since)
			}
			m.addLine(m.convs[0], line{at: time.Now(), kind: kSystem, text: text})
		}
		if u.State.Status == chatclient.Reconnecting && m.state.Status == chatclient.Connected {
			m.addLine(m.convs[0], line{at: time.Now(), kind: kError, text: "disconnected: " + errText(u.State.Err)})
		}
		m.state = *u.State
		if u.State.Status == chatclient.Closed && u.State.Err != nil {
			m.closed = u.State.Err
		}
		if u.State.Status == chatclient.Connected && !m.helpAsk {
			// The commands for completion: the server's /help answer,
			// hidden for a few seconds (it is not what the user asked).
			m.helpAsk = true
			m.helpHide = time.Now().Add(5 * time.Second)
			m.c.Send("/help")
		}
		if u.State.Status != chatclient.Connected {
			m.loadingOlder = false
		}
	case u.Settled != nil:
		if !u.Settled.OK && u.Settled.Text != "/help" {
			m.flash = "not sent: " + chatclient.Line(u.Settled.Reason)
		}
	case u.Event != nil:
		m.event(u.Event)
	}
	m.sending = m.c.Pending()
	m.state.Since = m.c.Since()
	m.refresh(false)
}

// errText is err's text for the screen ("" for nil).
func errText(err error) string {
	if err == nil {
		return "connection lost"
	}
	return chatclient.Line(err.Error())
}

// event applies a server event.
func (m *model) event(e *chatclient.Event) {
	room := m.convs[0]
	switch e.Type {
	case "welcome":
		m.members = nil
		clear(m.accounts)
		m.topic = ""
	case "history":
		if e.With != "" {
			m.directPage(e)
			return
		}
		lines := make([]line, 0, len(e.Messages))
		for i := range e.Messages {
			lines = append(lines, msgLine(&e.Messages[i]))
		}
		if e.Reason == "before" {
			m.loadingOlder = false
			m.prepend(room, lines)
			return
		}
		for _, l := range lines {
			m.addLine(room, l)
		}
	case "message":
		delete(m.typing, e.User)
		m.addLine(room, msgLine(e))
	case "direct":
		cv := m.conv(e.With)
		m.addLine(cv, msgLine(e))
	case "conversations":
		for _, cv := range e.Conversations {
			m.conv(cv.With)
		}
	case "system":
		if help := helpCommand(e.Text); help != "" {
			m.addCommand(help)
			if time.Now().Before(m.helpHide) {
				return
			}
		}
		m.addLine(room, line{at: e.Time(), kind: kSystem, text: e.Text})
	case "error":
		if e.Code == "unknown_command" && strings.Contains(e.Text, "/help") && time.Now().Before(m.helpHide) {
			return // the client's own /help, on a server without one
		}
		m.addLine(m.convs[m.cur], line{at: time.Now(), kind: kError, text: e.Text})
	case "gap":
		m.addLine(room, line{at: time.Now(), kind: kError, text: "messages were pruned by the server and cannot be shown"})
	case "presence":
		if e.Users != nil {
			m.members = append(m.members[:0], e.Users...)
		} else {
			for _, n := range e.Left {
				m.members = remove(m.members, n)
			}
			for _, n := range e.Joined {
				if !contains(m.members, n) {
					m.members = append(m.members, n)
				}
			}
		}
		for n, a := range e.Accounts {
			m.accounts[n] = a
		}
		for n, a := range e.Guests {
			m.accounts[n] = a
		}
	case "rename":
		for i, n := range m.members {
			if n == e.Old {
				m.members[i] = e.New
			}
		}
		if a, ok := m.accounts[e.Old]; ok {
			delete(m.accounts, e.Old)
			m.accounts[e.New] = a
		}
	case "roles":
		m.accounts[e.Name] = chatclient.Account{ID: e.UserID, Roles: e.Roles}
	case "topic":
		m.topic = e.Topic
	case "typing":
		m.typing[e.Name] = time.Now().Add(4 * time.Second)
	case "redact":
		for i, l := range room.lines {
			if l.id == e.ID && e.ID != 0 {
				room.lines[i].kind, room.lines[i].text, room.lines[i].drawn = kSystem, "(message deleted)", ""
			}
		}
	}
}

// directPage merges a page of a conversation.
func (m *model) directPage(e *chatclient.Event) {
	cv := m.conv(e.With)
	lines := make([]line, 0, len(e.Messages))
	for i := range e.Messages {
		lines = append(lines, msgLine(&e.Messages[i]))
	}
	if e.Reason == "after" {
		for _, l := range lines {
			m.addLine(cv, l)
		}
		return
	}
	cv.more = e.More
	m.prepend(cv, lines)
}

// msgLine is the line of a chat or direct message.
func msgLine(e *chatclient.Event) line {
	l := line{id: e.ID, at: e.Time(), kind: kMessage, user: e.User, text: e.Text}
	if l.user == "" {
		l.user = e.From
	}
	if e.Action {
		l.kind = kAction
	}
	return l
}

// conv returns the conversation with peer, opened if need be.
func (m *model) conv(peer string) *conv {
	for _, cv := range m.convs[1:] {
		if cv.peer == peer {
			return cv
		}
	}
	cv := &conv{peer: peer}
	m.convs = append(m.convs, cv)
	return cv
}

// addLine appends l to cv (in id order: a page that overlaps what is
// there adds only what is new).
func (m *model) addLine(cv *conv, l line) {
	if l.id != 0 {
		for i := len(cv.lines) - 1; i >= 0 && i >= len(cv.lines)-200; i-- {
			if cv.lines[i].id == l.id {
				return
			}
		}
	}
	cv.lines = append(cv.lines, l)
	if cv != m.convs[m.cur] && (l.kind == kMessage || l.kind == kAction) {
		cv.unread++
	}
}

// prepend puts an older page before cv's lines, keeping the pane where
// it was (the page appears above what the reader is looking at).
func (m *model) prepend(cv *conv, lines []line) {
	if len(lines) > 0 {
		cv.oldest = lines[0].id
	}
	var first uint64
	for _, l := range cv.lines {
		if l.id != 0 {
			first = l.id
			break
		}
	}
	keep := lines[:0:0]
	for _, l := range lines {
		if first == 0 || l.id < first {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return
	}
	before := m.vp.TotalLineCount()
	cv.lines = append(keep, cv.lines...)
	if cv == m.convs[m.cur] {
		off := m.vp.YOffset
		m.refresh(true)
		m.vp.SetYOffset(off + m.vp.TotalLineCount() - before)
	}
}

// addCommand remembers a command for completion.
func (m *model) addCommand(c string) {
	if contains(m.commands, c) {
		return
	}
	m.commands = append(m.commands, c)
	sortStrings(m.commands)
}

// helpCommand returns "/name" when text is a line of the /help answer
// ("/nick NICK: change your name", "(moderators) /ban …").
func helpCommand(text string) string {
	t := strings.TrimPrefix(text, "(moderators) ")
	if !strings.HasPrefix(t, "/") {
		return ""
	}
	end := 1
	for end < len(t) && (isWordByte(t[end])) {
		end++
	}
	if end == 1 || (end < len(t) && t[end] != ' ' && t[end] != ':') {
		return ""
	}
	return t[:end]
}

func isWordByte(b byte) bool {
	return b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}
