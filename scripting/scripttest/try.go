package scripttest

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
)

// TryConfig says what Try replays through.
type TryConfig struct {
	// Current are the scripts the server loads today (nil: none).
	Current fs.FS
	// Candidates are the scripts to try, by file name: loaded beside
	// Current's, a candidate replacing the current script of its name.
	Candidates map[string][]byte
	// Options are the scripts' settings ([scripts.NAME]).
	Options scripting.ScriptOptions
	// Rules are the room rules ([rooms."PATTERN"]), deciding chat.may
	// as on the server (nil: nobody moderates).
	Rules *chat.RoomRules
	// HookTimeout bounds each call, as on the server (0: 100ms).
	HookTimeout time.Duration
}

// TryChange is one stored message the scripts would now treat
// differently from how it was stored, or that made them do something.
type TryChange struct {
	ID     uint64    `json:"id"`
	Room   string    `json:"room"`
	User   string    `json:"user"`
	Time   time.Time `json:"ts"`
	Text   string    `json:"text"`
	Action bool      `json:"action,omitempty"`
	// Outcome is "dropped", "rewritten", "failed" (a script error: the
	// server would refuse it) or "kept" (delivered as stored, but the
	// scripts did something: Effects).
	Outcome string `json:"outcome"`
	// After is a rewritten message's new text; Reason a dropped one's.
	After  string `json:"after,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Answers are notices to the sender (a command's answer, chat.send).
	Answers []string `json:"answers,omitempty"`
	// Effects are the other things the scripts did, recorded and not
	// done: "broadcast lobby: * text", "kick bob: reason", "kv
	// karma.lua x = 1", …
	Effects []string `json:"effects,omitempty"`
	// Errors are the script failures, each "file:line: message (…)".
	Errors []string `json:"errors,omitempty"`
}

// TryReport is the outcome of Try.
type TryReport struct {
	Scripts    []string    `json:"scripts"`
	Candidates []string    `json:"candidates"`
	Messages   int         `json:"messages"`
	Dropped    int         `json:"dropped"`
	Rewritten  int         `json:"rewritten"`
	Answered   int         `json:"answered"`
	Failed     int         `json:"failed"`
	Changes    []TryChange `json:"changes"`
	// P50 and P99 are the time the message handlers took per message,
	// all scripts together (the server's own cost of a message).
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// Try replays msgs (stored messages, oldest first) through the current
// scripts and the candidates in a fake server: each sender is a member
// of the message's room (with the roles its account gives: "user", or
// "guest"), the clock stands at the message's time, chat.kv starts
// empty, and whatever the scripts do is recorded, never done. Join hooks
// do not run (nobody joins). The report lists the messages whose outcome
// differs from how they were stored, or that made the scripts act.
func Try(ctx context.Context, cfg TryConfig, msgs []chat.Message) (*TryReport, error) {
	files := mapFS{}
	if cfg.Current != nil {
		names, err := fs.Glob(cfg.Current, "*.lua")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if scripting.IsTestScript(n) {
				continue
			}
			b, err := fs.ReadFile(cfg.Current, n)
			if err != nil {
				return nil, err
			}
			files[n] = b
		}
	}
	rep := &TryReport{Messages: len(msgs)}
	for n, b := range cfg.Candidates {
		files[n] = b
		rep.Candidates = append(rep.Candidates, n)
	}
	sort.Strings(rep.Candidates)
	for n := range files {
		rep.Scripts = append(rep.Scripts, n)
	}
	sort.Strings(rep.Scripts)
	timeout := cfg.HookTimeout
	if timeout <= 0 {
		timeout = scripting.DefaultHookTimeout
	}
	s, err := New(ctx, Config{FS: files, Options: cfg.Options, Rules: cfg.Rules, HookTimeout: timeout})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var times []time.Duration
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, d := s.replay(m)
		times = append(times, d)
		if c == nil {
			continue
		}
		switch c.Outcome {
		case "dropped":
			rep.Dropped++
		case "rewritten":
			rep.Rewritten++
		case "failed":
			rep.Failed++
		}
		if len(c.Answers) > 0 {
			rep.Answered++
		}
		rep.Changes = append(rep.Changes, *c)
	}
	rep.P50, rep.P99 = percentile(times, 50), percentile(times, 99)
	return rep, nil
}

// percentile is the p-th percentile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

// replay runs one stored message and describes what happened: nil when
// it went through as stored and the scripts did nothing else. d is the
// time the message hooks took.
func (s *Server) replay(m chat.Message) (*TryChange, time.Duration) {
	s.clock.set(m.Time)
	id := s.replayMember(m)
	s.mu.Lock()
	start := len(s.events)
	s.where = fmt.Sprintf("%s #%d", m.Room, m.ID)
	s.mu.Unlock()
	_, _, _ = s.post(id, m.Text, m.Action, "")
	s.mu.Lock()
	evs := slices.Clone(s.events[start:])
	d := s.hookTime
	s.mu.Unlock()

	c := &TryChange{ID: m.ID, Room: m.Room, User: m.User, Time: m.Time, Text: m.Text, Action: m.Action, Outcome: "kept"}
	self := Line(m)
	// The message's own line in its room (as delivered now) is no effect.
	delivered := ""
	for _, e := range evs {
		if e.Kind == KindStored && e.Session == id {
			delivered = e.Text
		}
	}
	for _, e := range evs {
		switch e.Kind {
		case KindStored:
			if e.Session == id && e.Text != self {
				c.Outcome, c.After = "rewritten", strings.TrimPrefix(e.Text[len(m.User):], ": ")
				if m.Action {
					c.After = strings.TrimPrefix(e.Text, "* "+m.User+" ")
				}
			}
		case KindRefused:
			if e.Session == id && c.Outcome == "kept" {
				c.Outcome, c.Reason = "dropped", e.Text
			}
		case KindDropped:
			if e.Session == id && c.Outcome == "kept" {
				c.Outcome = "dropped"
			}
		case KindError:
			c.Errors = append(c.Errors, e.Text)
		case KindSend:
			if e.Session == id {
				c.Answers = append(c.Answers, e.Text)
			} else {
				c.Effects = append(c.Effects, "send "+e.User+": "+e.Text)
			}
		case KindLine:
			if e.Room == m.Room && e.Text == delivered {
				delivered = "" // once
				continue
			}
			c.Effects = append(c.Effects, "broadcast "+e.Room+": "+e.Text)
		case KindKick:
			c.Effects = append(c.Effects, "kick "+e.User+": "+e.Text)
		case KindRename:
			c.Effects = append(c.Effects, "rename "+e.User+" → "+e.Text)
		case KindDirect:
			c.Effects = append(c.Effects, "direct "+e.User+" → "+e.To+": "+e.Text)
		case KindKV:
			if e.Deleted {
				c.Effects = append(c.Effects, "kv "+e.Script+" delete "+e.Key)
			} else {
				c.Effects = append(c.Effects, "kv "+e.Script+" "+e.Key+" = "+e.Text)
			}
		case KindModerate:
			c.Effects = append(c.Effects, "audit "+e.User+" "+e.Text)
		case KindRedact:
			c.Effects = append(c.Effects, fmt.Sprintf("delete %s #%d", e.Room, e.ID))
		case KindLog:
			c.Effects = append(c.Effects, "log "+e.Script+": "+e.Text)
		}
	}
	if len(c.Errors) > 0 && c.Outcome != "rewritten" {
		c.Outcome = "failed"
	}
	if c.Outcome == "kept" && len(c.Answers) == 0 && len(c.Effects) == 0 && len(c.Errors) == 0 {
		return nil, d
	}
	return c, d
}

// replayMember is the session of m's sender in m's room, made a member
// (silently: no join hooks, no line) the first time. A kicked sender
// comes back for their next message.
func (s *Server) replayMember(m chat.Message) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.members {
		if x.user.Room == m.Room && x.user.Name == m.User {
			return x.user.SessionID
		}
	}
	s.next++
	u := chat.User{Name: m.User, Room: m.Room, SessionID: s.next, Addr: fmt.Sprintf("192.0.2.%d", s.next%250+1), Roles: []string{chat.RoleGuest}}
	if m.Account != nil && m.Account.ID != "" {
		u.ID, u.Roles = m.Account.ID, []string{chat.RoleUser}
	}
	s.members = append(s.members, &member{user: u, limits: defaultLimits})
	return u.SessionID
}

// set moves the clock to t (forward only) without firing timers: a
// replay's clock follows the stored messages.
func (c *Clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}
