package tui

import (
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/moonchat/moonchat/internal/chatclient"
)

// localCommands are the client's own commands, completed with the
// server's.
var localCommands = []string{"/close", "/dm"}

// key handles a key press.
func (m *model) key(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "ctrl+c":
		return tea.Quit
	case "enter":
		m.submit()
		return nil
	case "pgup":
		m.vp.PageUp()
		if m.vp.AtTop() {
			m.older()
		}
		return nil
	case "pgdown":
		m.vp.PageDown()
		return nil
	case "ctrl+n":
		m.switchTo((m.cur + 1) % len(m.convs))
		return nil
	case "ctrl+p":
		m.switchTo((m.cur + len(m.convs) - 1) % len(m.convs))
		return nil
	case "up":
		m.recall(-1)
		return nil
	case "down":
		m.recall(1)
		return nil
	case "tab":
		m.complete()
		return nil
	}
	m.flash = ""
	var cmd tea.Cmd
	m.in, cmd = m.in.Update(k)
	m.typed()
	return cmd
}

// typed tells the room that the user is typing a message (not a
// command), at most every 2.1 s (the server relays one per 2 s).
func (m *model) typed() {
	v := m.in.Value()
	if m.cur != 0 || v == "" || strings.HasPrefix(v, "/") || time.Since(m.lastType) < 2100*time.Millisecond {
		return
	}
	m.lastType = time.Now()
	m.c.Typing()
}

// older asks for the page before the oldest line of the current
// conversation.
func (m *model) older() {
	cv := m.convs[m.cur]
	if cv.peer != "" {
		if cv.more && cv.oldest != 0 && !m.loadingOlder {
			m.c.Conversation(cv.peer, cv.oldest)
		}
		return
	}
	if m.c.Older() {
		m.loadingOlder = true
		m.refresh(false)
	}
}

// switchTo makes conversation i current, asking for its newest page the
// first time.
func (m *model) switchTo(i int) {
	m.cur = i
	cv := m.convs[i]
	cv.unread = 0
	if cv.peer != "" && !cv.loaded {
		cv.loaded = true
		m.c.Conversation(cv.peer, 0)
	}
	m.refresh(true)
	m.vp.GotoBottom()
}

// submit sends the input line.
func (m *model) submit() {
	text := m.in.Value()
	if strings.TrimSpace(text) == "" {
		return
	}
	m.in.Reset()
	m.sent = append(m.sent, text)
	m.histPos = len(m.sent)
	m.draft = ""
	m.flash = ""
	cv := m.convs[m.cur]
	switch name, args, _ := strings.Cut(text, " "); name {
	case "/dm":
		peer, msg, _ := strings.Cut(strings.TrimSpace(args), " ")
		if peer == "" {
			m.flash = "usage: /dm NICK [TEXT]"
			return
		}
		if !m.state.Direct {
			m.flash = "this server has no direct messages"
			return
		}
		target := m.conv(peer)
		m.switchTo(slices.Index(m.convs, target))
		if strings.TrimSpace(msg) != "" {
			_ = m.c.SendDirect(peer, msg)
		}
		return
	case "/close":
		if cv.peer == "" {
			m.flash = "/close closes a direct conversation; this is the room"
			return
		}
		m.convs = slices.Delete(m.convs, m.cur, m.cur+1)
		m.switchTo(0)
		return
	}
	if cv.peer != "" && !strings.HasPrefix(text, "/") {
		if err := m.c.SendDirect(cv.peer, text); err != nil {
			m.flash = err.Error()
		}
	} else {
		m.c.Send(text)
	}
	m.sending = m.c.Pending()
	m.vp.GotoBottom()
}

// recall moves through the input history: dir -1 older, 1 newer.
func (m *model) recall(dir int) {
	if len(m.sent) == 0 {
		return
	}
	if m.histPos == len(m.sent) {
		m.draft = m.in.Value()
	}
	m.histPos = max(0, min(len(m.sent), m.histPos+dir))
	if m.histPos == len(m.sent) {
		m.in.SetValue(m.draft)
	} else {
		m.in.SetValue(m.sent[m.histPos])
	}
	m.in.CursorEnd()
}

// complete completes the word before the cursor: a /command at the start
// of the line (the server's, from /help, and the client's own), else a
// member's name (followed by ": " at the start of the line). Several
// candidates: their common prefix, and the list in the status line.
func (m *model) complete() {
	v := m.in.Value()
	pos := m.in.Position()
	head := v[:min(pos, len(v))]
	start := strings.LastIndexByte(head, ' ') + 1
	word := head[start:]
	var pool []string
	if start == 0 && strings.HasPrefix(word, "/") {
		pool = append(append(pool, m.commands...), localCommands...)
	} else {
		pool = append(pool, m.members...)
	}
	var cands []string
	for _, p := range pool {
		if strings.HasPrefix(strings.ToLower(p), strings.ToLower(word)) && !contains(cands, p) {
			cands = append(cands, p)
		}
	}
	sortStrings(cands)
	switch len(cands) {
	case 0:
		m.flash = "no completion for " + chatclient.Line(word)
		return
	case 1:
		fill := cands[0]
		switch {
		case strings.HasPrefix(fill, "/"), start != 0:
			fill += " "
		default:
			fill += ": "
		}
		m.in.SetValue(v[:start] + fill + v[len(head):])
		m.in.SetCursor(start + len(fill))
		m.flash = ""
		return
	}
	prefix := cands[0]
	for _, c := range cands[1:] {
		for !strings.HasPrefix(c, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if len(prefix) > len(word) {
		m.in.SetValue(v[:start] + prefix + v[len(head):])
		m.in.SetCursor(start + len(prefix))
	}
	m.flash = chatclient.Line(strings.Join(cands, " "))
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func remove(list []string, s string) []string {
	if i := slices.Index(list, s); i >= 0 {
		return slices.Delete(list, i, i+1)
	}
	return list
}

func sortStrings(s []string) { slices.Sort(s) }
