package tui

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/moonchat/moonchat/internal/chatclient"
)

// styles are the looks of the screen, made for the output's colour
// profile (none on a terminal without colours).
type styles struct {
	r      *lipgloss.Renderer
	bar    lipgloss.Style
	tab    lipgloss.Style
	tabCur lipgloss.Style
	dim    lipgloss.Style
	err    lipgloss.Style
	ok     lipgloss.Style
	warn   lipgloss.Style
	sep    lipgloss.Style
	nicks  []lipgloss.Style
}

// nickColours are the ANSI 256 colours names are drawn in: distinct on
// dark and light backgrounds, none of them the plain text colour.
var nickColours = []string{"39", "208", "170", "114", "220", "81", "203", "141", "45", "178", "118", "213"}

func newStyles(r *lipgloss.Renderer) styles {
	s := styles{
		r:      r,
		bar:    r.NewStyle().Background(lipgloss.Color("236")).Foreground(lipgloss.Color("252")),
		tab:    r.NewStyle().Background(lipgloss.Color("236")).Foreground(lipgloss.Color("245")),
		tabCur: r.NewStyle().Background(lipgloss.Color("238")).Foreground(lipgloss.Color("231")).Bold(true),
		dim:    r.NewStyle().Foreground(lipgloss.Color("244")),
		err:    r.NewStyle().Foreground(lipgloss.Color("196")),
		ok:     r.NewStyle().Foreground(lipgloss.Color("42")),
		warn:   r.NewStyle().Foreground(lipgloss.Color("214")),
		sep:    r.NewStyle().Foreground(lipgloss.Color("238")),
	}
	for _, c := range nickColours {
		s.nicks = append(s.nicks, r.NewStyle().Foreground(lipgloss.Color(c)).Bold(true))
	}
	return s
}

// nick draws name in its colour: the same name always gets the same one.
func (s *styles) nick(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return s.nicks[h.Sum32()%uint32(len(s.nicks))].Render(chatclient.Line(name))
}

// memberWidth is the width of the member list (0: the terminal is too
// narrow for one).
func (m *model) memberWidth() int {
	if m.w < 60 {
		return 0
	}
	return 20
}

// layout sizes the pane and the input to the terminal.
func (m *model) layout() {
	mw := m.memberWidth()
	pw := m.w
	if mw > 0 {
		pw -= mw + 1
	}
	m.vp.Width = max(pw, 10)
	m.vp.Height = max(m.h-3, 1)
	m.in.Width = max(m.w-len(m.in.Prompt)-1, 1)
	m.refresh(true)
}

// refresh redraws the message pane's content, following new lines when
// the pane was at its bottom.
func (m *model) refresh(keep bool) {
	follow := m.vp.AtBottom() && !keep
	cv := m.convs[m.cur]
	var b strings.Builder
	switch {
	case cv.peer == "" && m.loadingOlder:
		b.WriteString(m.st.dim.Render("… loading older messages") + "\n")
	case cv.peer == "" && len(cv.lines) > 0 && !m.c.HasOlder():
		b.WriteString(m.st.dim.Render("— start of the history —") + "\n")
	case cv.peer != "" && cv.loaded && !cv.more:
		b.WriteString(m.st.dim.Render("— conversation with "+chatclient.Line(cv.peer)+" —") + "\n")
	}
	for i := range cv.lines {
		b.WriteString(m.render(&cv.lines[i]))
		b.WriteByte('\n')
	}
	m.vp.SetContent(strings.TrimSuffix(b.String(), "\n"))
	if follow || keep && m.vp.PastBottom() {
		m.vp.GotoBottom()
	}
}

// render draws one line of the pane, wrapped to its width.
func (m *model) render(l *line) string {
	if l.drawn != "" && l.drawnW == m.vp.Width {
		return l.drawn
	}
	ts := ""
	if !l.at.IsZero() {
		ts = m.st.dim.Render(l.at.Local().Format("15:04")) + " "
	}
	text := chatclient.Line(l.text)
	var s string
	switch l.kind {
	case kMessage:
		s = ts + m.st.nick(l.user) + ": " + text
	case kAction:
		s = ts + "* " + m.st.nick(l.user) + " " + text
	case kSystem:
		s = ts + m.st.dim.Render("* "+text)
	case kError:
		s = ts + m.st.err.Render("! "+text)
	}
	l.drawn, l.drawnW = m.st.r.NewStyle().Width(m.vp.Width).Render(s), m.vp.Width
	return l.drawn
}

// View draws the screen: title bar, pane and members, status line, input.
func (m *model) View() string {
	if m.w == 0 {
		return ""
	}
	body := m.vp.View()
	if mw := m.memberWidth(); mw > 0 {
		sep := m.st.sep.Render(strings.TrimSuffix(strings.Repeat("│\n", m.vp.Height), "\n"))
		body = lipgloss.JoinHorizontal(lipgloss.Top,
			m.st.r.NewStyle().Width(m.vp.Width).Height(m.vp.Height).Render(body), sep, m.memberList(mw))
	}
	return lipgloss.JoinVertical(lipgloss.Left, m.titleBar(), body, m.statusBar(), m.in.View())
}

// titleBar shows the conversations (the room first, unread counts) and
// the room's topic.
func (m *model) titleBar() string {
	var parts []string
	for i, cv := range m.convs {
		name := "#" + m.state.Room
		if cv.peer != "" {
			name = "@" + chatclient.Line(cv.peer)
		}
		if cv.unread > 0 {
			name += fmt.Sprintf(" (%d)", cv.unread)
		}
		if i == m.cur {
			parts = append(parts, m.st.tabCur.Render(" "+name+" "))
		} else {
			parts = append(parts, m.st.tab.Render(" "+name+" "))
		}
	}
	s := strings.Join(parts, m.st.tab.Render(" "))
	if m.topic != "" {
		s += m.st.bar.Render(" │ " + chatclient.Line(m.topic))
	}
	return m.st.bar.Width(m.w).MaxHeight(1).Render(s)
}

// memberList draws the room's members, with badges for moderators (◆)
// and admins (★).
func (m *model) memberList(w int) string {
	lines := []string{m.st.dim.Render(fmt.Sprintf("members (%d)", len(m.members)))}
	for _, n := range m.members {
		if len(lines) == m.vp.Height-1 && len(m.members) > m.vp.Height-1 {
			lines = append(lines, m.st.dim.Render(fmt.Sprintf("… %d more", len(m.members)-len(lines)+1)))
			break
		}
		badge := " "
		for _, r := range m.accounts[n].Roles {
			switch r {
			case "admin":
				badge = "★"
			case "moderator", "mod":
				if badge == " " {
					badge = "◆"
				}
			}
		}
		lines = append(lines, badge+m.st.nick(n))
	}
	return m.st.r.NewStyle().Width(w).MaxWidth(w).Height(m.vp.Height).MaxHeight(m.vp.Height).Render(strings.Join(lines, "\n"))
}

// statusBar shows the connection (connected, reconnecting with the resume
// point), sends in flight, who is typing, and the latest note.
func (m *model) statusBar() string {
	st := m.state
	var s string
	switch st.Status {
	case chatclient.Connected:
		s = m.st.ok.Render("● connected") + " as " + m.st.nick(st.Name)
		if st.CatchingUp {
			s += m.st.warn.Render(fmt.Sprintf(" · catching up since=%d", st.Since))
		} else if st.Since > 0 {
			s += m.st.dim.Render(fmt.Sprintf(" · since=%d", st.Since))
		}
	case chatclient.Reconnecting:
		s = m.st.warn.Render(fmt.Sprintf("◌ reconnecting in %v (attempt %d)", st.RetryIn.Round(100*time.Millisecond), st.Attempt))
		if st.Since > 0 {
			s += m.st.warn.Render(fmt.Sprintf(" · will resume since=%d", st.Since))
		}
		if st.Err != nil {
			s += m.st.dim.Render(" · " + chatclient.Line(st.Err.Error()))
		}
	case chatclient.Connecting:
		s = m.st.warn.Render("◌ connecting to " + chatclient.Line(st.URL))
	default:
		s = m.st.err.Render("✕ closed")
		if st.Err != nil {
			s += m.st.err.Render(": " + chatclient.Line(st.Err.Error()))
		}
	}
	if m.sending > 0 {
		s += m.st.dim.Render(fmt.Sprintf(" · sending %d", m.sending))
	}
	var typing []string
	now := time.Now()
	for n, until := range m.typing {
		if now.Before(until) {
			typing = append(typing, n)
		} else {
			delete(m.typing, n)
		}
	}
	if len(typing) > 0 {
		sortStrings(typing)
		s += m.st.dim.Render(" · " + chatclient.Line(strings.Join(typing, ", ")) + " typing…")
	}
	if m.flash != "" {
		s += " · " + m.st.warn.Render(m.flash)
	}
	return m.st.r.NewStyle().Width(m.w).MaxHeight(1).Render(s)
}
