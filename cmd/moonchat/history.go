package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// historyFlags are the flags of "moonchat history".
type historyFlags struct {
	config     string
	room       string
	limit      int
	before     uint64
	since      string
	user       string
	grep       string
	json       bool
	ids        bool
	rooms      bool
	deleteID   uint64
	deleteUser string
	server     string
	verify     bool
	direct     string // -direct ACCOUNT (history_direct.go)
	with       string // -with PEER
}

// runHistory is "moonchat history": print, list or delete stored history.
//
// It reads the store file directly (read-only) when no server runs. While a
// server runs, the file is locked, so reads go through the server's HTTP API
// (GET /api/history, and GET /api/rooms for -rooms) and deletions are
// refused with advice. Direct conversations are never listed nor printed
// by it, except with -direct (history_direct.go), which reads the file or,
// while the server runs, its local socket (localsock.go): never the
// network API.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f historyFlags
	fset := newFlagSet("history", "[flags]", stderr)
	fset.StringVar(&f.config, "config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	fset.StringVar(&f.room, "room", "", "only this room (default: every room; -before and -delete use [chat] default_room)")
	fset.IntVar(&f.limit, "limit", 100, "print at most this many messages (the newest ones)")
	fset.Uint64Var(&f.before, "before", 0, "only messages with an id below this (paging back; needs a room)")
	fset.StringVar(&f.since, "since", "", `only messages from this time on: RFC 3339 ("2026-11-22T10:00:00Z"), a date ("2026-11-22"), or a duration ago ("2h")`)
	fset.StringVar(&f.user, "user", "", "only messages sent by this nickname")
	fset.StringVar(&f.grep, "grep", "", "only messages whose text contains this (case-sensitive)")
	fset.BoolVar(&f.json, "json", false, "print one JSON object per line (as in the moonchat.v1 protocol)")
	fset.BoolVar(&f.ids, "ids", false, "also print each message's id (for -delete)")
	fset.BoolVar(&f.rooms, "rooms", false, "list the rooms with their message counts instead")
	fset.Uint64Var(&f.deleteID, "delete", 0, "delete the message with this id from -room, for good (server must be stopped)")
	fset.StringVar(&f.deleteUser, "delete-user", "", "delete every message of this nickname in every room, for good (server must be stopped)")
	fset.StringVar(&f.server, "server", "", "address (host:port) of the running server's HTTP API (default: [server] listen)")
	fset.BoolVar(&f.verify, "verify", false, "read every stored record and check it (checksums, ids, counts); print each problem and a summary, exit 1 if there is any (server must be stopped)")
	fset.StringVar(&f.direct, "direct", "", "list the direct conversations of this account (an account id, or a name an account owns); with -with, print one")
	fset.StringVar(&f.with, "with", "", "with -direct: print the conversation with this account (id or owned name)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := f.validateDirect(); err != nil {
		return newUsageError(fset, err)
	}
	if err := f.validate(); err != nil {
		return newUsageError(fset, err)
	}
	if f.verify {
		if err := verifyFlagsAlone(fset); err != nil {
			return newUsageError(fset, err)
		}
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if f.direct != "" {
		if cfg.Store.Path == "" {
			return errors.New("[store] path is empty: this configuration keeps no history")
		}
		return historyDirect(ctx, cfg, &f, stdout, stderr)
	}
	if f.room == "" && (f.before != 0 || f.deleteID != 0) {
		f.room = cfg.Chat.DefaultRoom
	}
	if f.room != "" {
		if err := checkRoomName(f.room); err != nil {
			return fmt.Errorf("-room: %w", err)
		}
	}
	if cfg.Store.Path == "" {
		return errors.New("[store] path is empty: this configuration keeps no history")
	}
	if f.verify {
		return historyVerify(ctx, cfg, stdout)
	}
	if f.deleteID != 0 || f.deleteUser != "" {
		return historyDelete(cfg, &f, stdout)
	}
	q, err := f.query(time.Now())
	if err != nil {
		return err
	}

	var src historySource
	opts := storeOptions(cfg, nil, true)
	// A running server holds the file for as long as it runs: waiting
	// the default second for it would only delay asking it instead.
	opts.LockTimeout = historyLockWait
	db, err := store.OpenReadOnly(cfg.Store.Path, opts)
	switch {
	case err == nil:
		defer db.Close()
		src = fileSource{db}
	case errors.Is(err, store.ErrLocked):
		// A server runs with the file: ask it instead. Every answer is
		// built from the same two questions as from the file
		// (readHistory), so it is the same answer.
		base, err := apiBase(cfg, f.server)
		if err != nil {
			return fmt.Errorf("%s is in use by a running server, but %w", cfg.Store.Path, err)
		}
		what := "reading"
		if f.rooms {
			what = "listing rooms"
		}
		fmt.Fprintf(stderr, "history: %s is in use by a running server; %s through its HTTP API at %s\n", cfg.Store.Path, what, base)
		src = &apiClient{base: base}
	case errors.Is(err, store.ErrNotExist):
		return fmt.Errorf("%w (no message has been stored yet, or [store] path points elsewhere)", err)
	default:
		return explainStoreError(err)
	}
	if f.rooms {
		rooms, err := src.rooms(ctx)
		if err != nil {
			return err
		}
		return printRooms(stdout, rooms, f.json)
	}
	msgs, more, err := readHistory(ctx, src, q)
	if err != nil {
		return err
	}
	return printMessages(stdout, stderr, msgs, more, f.json, f.ids)
}

// historyLockWait is how long reading history waits for the store file
// before concluding that a server holds it.
const historyLockWait = 200 * time.Millisecond

// validate refuses contradictory flags.
func (f *historyFlags) validate() error {
	modes := 0
	for _, on := range []bool{f.rooms, f.deleteID != 0, f.deleteUser != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return errors.New("-rooms, -delete and -delete-user are separate actions: give one")
	}
	if f.limit < 1 {
		return fmt.Errorf("-limit %d: must be at least 1", f.limit)
	}
	if modes == 1 && (f.before != 0 || f.since != "" || f.user != "" || f.grep != "") {
		return errors.New("-before, -since, -user and -grep filter printed messages: they do not apply to -rooms or deletions")
	}
	return nil
}

// query turns the filter flags into a store.Query.
func (f *historyFlags) query(now time.Time) (store.Query, error) {
	q := store.Query{Room: f.room, User: f.user, Grep: f.grep, Before: f.before, Limit: f.limit}
	if f.since != "" {
		t, err := parseSince(f.since, now)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	return q, nil
}

// parseSince accepts RFC 3339, a date or date and time (UTC), or a
// duration meaning "that long ago".
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`-since %q: want RFC 3339 ("2026-11-22T10:00:00Z"), a date ("2026-11-22", UTC) or a duration ago ("2h")`, s)
}

// historyDelete removes messages for good. It needs the store file to
// itself: a running server holds it, and deleting under its feet would
// also leave its clients showing the message.
func historyDelete(cfg *Config, f *historyFlags, stdout io.Writer) error {
	// store.Open would create a missing file: there is nothing to delete.
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no history at %s: nothing to delete", cfg.Store.Path)
	}
	db, err := store.Open(cfg.Store.Path, storeOptions(cfg, nil, false))
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running server: deleting needs the server stopped "+
			"(stop it, run this again, start it), or delete live from a Lua script with chat.redact(room, id), "+
			"which also hides the message in open pages", cfg.Store.Path)
	}
	if err != nil {
		return explainStoreError(err)
	}
	defer db.Close()
	if f.deleteUser != "" {
		n, err := db.DeleteUser(f.deleteUser)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %d message(s) of %s\n", n, escapeLine(f.deleteUser))
		return db.Close()
	}
	found, err := db.Redact(f.room, f.deleteID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no message %d in room %s", f.deleteID, f.room)
	}
	fmt.Fprintf(stdout, "deleted message %d from %s\n", f.deleteID, f.room)
	return db.Close()
}

// timeLayout is how times are printed: the protocol's RFC 3339 with
// milliseconds, in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// jsonMessage is a message as printed by -json: the moonchat.v1 "message"
// object without "type", "action" included (true only for a /me action,
// as on the wire), and "user_id" and "roles" for a sender with an account.
type jsonMessage struct {
	ID     uint64   `json:"id"`
	Room   string   `json:"room"`
	User   string   `json:"user"`
	Text   string   `json:"text"`
	TS     string   `json:"ts"`
	Action bool     `json:"action,omitempty"`
	UserID string   `json:"user_id,omitempty"`
	Roles  []string `json:"roles,omitempty"`
}

// printMessages prints msgs one per line ("TIME ROOM [#ID] NICK: TEXT", or
// "TIME ROOM [#ID] * NICK TEXT" for a /me action, as chat clients show it;
// NICK is followed by " [ACCOUNT-ID]" when the sender had an account), or
// as JSON lines. Room, name and text come from chat users: escapeLine
// and escapeJSON keep every
// character a terminal would act on (ESC, BEL, NUL, bidi overrides, …)
// visible and inert, and each message on its own line.
func printMessages(stdout, stderr io.Writer, msgs []chat.Message, more, asJSON, ids bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, m := range msgs {
		ts := m.Time.UTC().Format(timeLayout)
		if asJSON {
			buf.Reset()
			j := jsonMessage{ID: m.ID, Room: m.Room, User: m.User, Text: m.Text, TS: ts, Action: m.Action}
			if m.Account != nil {
				j.UserID, j.Roles = m.Account.ID, m.Account.Roles
			}
			if err := enc.Encode(j); err != nil {
				return err
			}
			if _, err := stdout.Write(escapeJSON(buf.Bytes())); err != nil {
				return err
			}
			continue
		}
		line := ts + " " + escapeLine(m.Room)
		if ids {
			line += fmt.Sprintf(" #%d", m.ID)
		}
		nick := escapeLine(m.User)
		if m.Account != nil && m.Account.ID != "" {
			nick += " [" + escapeLine(m.Account.ID) + "]"
		}
		if m.Action {
			line += " * " + nick + " " + escapeLine(m.Text)
		} else {
			line += " " + nick + ": " + escapeLine(m.Text)
		}
		if _, err := io.WriteString(stdout, line+"\n"); err != nil {
			return err
		}
	}
	if more {
		fmt.Fprintln(stderr, "history: older matches exist; raise -limit or page back with -before")
	}
	return nil
}

// jsonRoom is a room as printed by -rooms -json.
type jsonRoom struct {
	Room    string `json:"room"`
	Count   int    `json:"count"`
	FirstID uint64 `json:"first_id"`
	LastID  uint64 `json:"last_id"`
}

func printRooms(stdout io.Writer, rooms []store.RoomInfo, asJSON bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range rooms {
		var err error
		if asJSON {
			buf.Reset()
			if err = enc.Encode(jsonRoom{r.Name, r.Count, r.FirstID, r.LastID}); err == nil {
				_, err = stdout.Write(escapeJSON(buf.Bytes()))
			}
		} else {
			_, err = fmt.Fprintf(stdout, "%s %d\n", escapeLine(r.Name), r.Count)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// apiBase returns the base URL of the running server's HTTP API: the
// -server flag, else [server] listen with a wildcard host made loopback.
func apiBase(cfg *Config, override string) (string, error) {
	addr := override
	if addr == "" {
		addr = cfg.Server.Listen
	}
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	addr = strings.TrimSuffix(addr, "/")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("server address %q: want host:port", addr)
	}
	if port == "0" {
		return "", fmt.Errorf("[server] listen %q has port 0, so the running server's port is unknown: give it with -server HOST:PORT", cfg.Server.Listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// apiRoomList is the body of GET /api/rooms (docs/protocol.md).
type apiRoomList struct {
	Rooms []struct {
		Room    string `json:"room"`
		Count   int    `json:"count"`
		FirstID uint64 `json:"first_id"`
		LastID  uint64 `json:"last_id"`
		Members int    `json:"members"`
	} `json:"rooms"`
	Error string `json:"error"`
}

// fetchRooms lists the stored rooms through a running server's
// GET /api/rooms. The answer also holds rooms that have members but have
// never stored a message (last_id 0); they are left out, so that the
// listing is what the store file itself would give.
func fetchRooms(ctx context.Context, hc *http.Client, base string) ([]store.RoomInfo, error) {
	u := base + "/api/rooms"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the running server: %w (is it listening at %s? give its address with -server HOST:PORT)", err, base)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var l apiRoomList
	if err := json.Unmarshal(body, &l); err != nil {
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("GET %s: %s: this server has no room list endpoint (an older moonchat?): stop it to list rooms from the file, or show one room with -room ROOM", u, resp.Status)
		}
		return nil, fmt.Errorf("GET %s: %s: not a moonchat room list: %.200q", u, resp.Status, body)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, l.Error)
	}
	rooms := make([]store.RoomInfo, 0, len(l.Rooms))
	for _, r := range l.Rooms {
		if r.LastID == 0 {
			continue
		}
		rooms = append(rooms, store.RoomInfo{Name: r.Room, Count: r.Count, FirstID: r.FirstID, LastID: r.LastID})
	}
	return rooms, nil
}
