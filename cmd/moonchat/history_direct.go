package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// `moonchat history -direct ACCOUNT [-with PEER]` (issue 14): the direct
// conversations of accounts, for whoever has access to the data
// directory — and nobody else: they are never served by the network API
// (not even with the [admin] token). With the server stopped they are read
// from the store file (read-only); while it runs (the file is locked),
// through its local socket (localsock.go), which answers the same three
// questions as the file (directSource), so that the same flags print the
// same answer either way.

// directSource is where -direct reads: the store file or the socket.
type directSource interface {
	// names returns every owned name: account id → name.
	names(ctx context.Context) (map[string]string, error)
	// conversations lists account's conversations, newest first.
	conversations(ctx context.Context, account string) ([]chat.ConversationStat, error)
	// query answers q for the one conversation q.Room (its key).
	query(ctx context.Context, q store.Query) ([]chat.Message, bool, error)
}

// fileDirect reads the store file.
type fileDirect struct{ db *store.DB }

func (s fileDirect) names(ctx context.Context) (map[string]string, error) {
	if ctx.Err() != nil {
		return nil, interrupted(ctx)
	}
	return s.db.NameOwners()
}

func (s fileDirect) conversations(ctx context.Context, account string) ([]chat.ConversationStat, error) {
	if ctx.Err() != nil {
		return nil, interrupted(ctx)
	}
	return s.db.Conversations(account)
}

func (s fileDirect) query(ctx context.Context, q store.Query) ([]chat.Message, bool, error) {
	if ctx.Err() != nil {
		return nil, false, interrupted(ctx)
	}
	if !chat.IsConversation(q.Room) {
		return nil, false, fmt.Errorf("%q is not a conversation", q.Room)
	}
	return s.db.Query(q)
}

// The local socket's direct-history routes, and their answers.
const (
	routeDirectNames         = "/direct/names"
	routeDirectConversations = "/direct/conversations" // ?account=ID
	routeDirectMessages      = "/direct/messages"      // ?key=K&limit=N[&before=ID][&since=T][&user=U][&grep=S]
)

type localNames struct {
	Names map[string]string `json:"names"`
}

type localConversation struct {
	Key      string    `json:"key"`
	Peer     string    `json:"peer"`
	Count    int       `json:"count"`
	LastID   uint64    `json:"last_id"`
	LastTime time.Time `json:"last_time"`
}

type localConversations struct {
	Conversations []localConversation `json:"conversations"`
}

// localMessage is a stored message on the socket, time to the nanosecond.
type localMessage struct {
	ID     uint64    `json:"id"`
	Room   string    `json:"room"`
	User   string    `json:"user"`
	Text   string    `json:"text"`
	Time   time.Time `json:"time"`
	Action bool      `json:"action,omitempty"`
	// HasAccount tells a guest (no account) from an account.
	HasAccount bool     `json:"has_account,omitempty"`
	UserID     string   `json:"user_id,omitempty"`
	Roles      []string `json:"roles,omitempty"`
}

type localMessages struct {
	Messages []localMessage `json:"messages"`
	More     bool           `json:"more"`
}

// directRoutes serves the direct-history reads from db on the socket.
// Nothing here is reachable from the network listeners.
func directRoutes(ls *localSocket, db *store.DB) {
	src := fileDirect{db}
	ls.handle("GET "+routeDirectNames, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		names, err := src.names(r.Context())
		if err != nil {
			localFail(w, http.StatusInternalServerError, err)
			return
		}
		writeLocalJSON(w, http.StatusOK, localNames{Names: names})
	}))
	ls.handle("GET "+routeDirectConversations, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs, err := src.conversations(r.Context(), r.URL.Query().Get("account"))
		if err != nil {
			localFail(w, http.StatusInternalServerError, err)
			return
		}
		out := localConversations{Conversations: make([]localConversation, len(cs))}
		for i, c := range cs {
			out.Conversations[i] = localConversation{c.Key, c.Peer, c.Count, c.LastID, c.LastTime}
		}
		writeLocalJSON(w, http.StatusOK, out)
	}))
	ls.handle("GET "+routeDirectMessages, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseLocalQuery(r.URL.Query())
		if err != nil {
			localFail(w, http.StatusBadRequest, err)
			return
		}
		msgs, more, err := src.query(r.Context(), q)
		if err != nil {
			localFail(w, http.StatusInternalServerError, err)
			return
		}
		out := localMessages{Messages: make([]localMessage, len(msgs)), More: more}
		for i, m := range msgs {
			lm := localMessage{ID: m.ID, Room: m.Room, User: m.User, Text: m.Text, Time: m.Time, Action: m.Action}
			if m.Account != nil {
				lm.HasAccount, lm.UserID, lm.Roles = true, m.Account.ID, m.Account.Roles
			}
			out.Messages[i] = lm
		}
		writeLocalJSON(w, http.StatusOK, out)
	}))
}

// localQueryValues is the query string of routeDirectMessages for q.
func localQueryValues(q store.Query) url.Values {
	v := url.Values{"key": {q.Room}, "limit": {strconv.Itoa(q.Limit)}}
	if q.Before != 0 {
		v.Set("before", strconv.FormatUint(q.Before, 10))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Grep != "" {
		v.Set("grep", q.Grep)
	}
	return v
}

// parseLocalQuery is localQueryValues' inverse; the key must name a
// conversation (the socket reads nothing else).
func parseLocalQuery(v url.Values) (store.Query, error) {
	q := store.Query{Room: v.Get("key"), User: v.Get("user"), Grep: v.Get("grep")}
	if _, _, ok := chat.ParseConversationKey(q.Room); !ok {
		return q, fmt.Errorf("key %q is not a conversation", q.Room)
	}
	var err error
	if q.Limit, err = strconv.Atoi(v.Get("limit")); err != nil || q.Limit < 1 {
		return q, fmt.Errorf("limit %q: want a positive number", v.Get("limit"))
	}
	if s := v.Get("before"); s != "" {
		if q.Before, err = strconv.ParseUint(s, 10, 64); err != nil {
			return q, fmt.Errorf("before %q: want an id", s)
		}
	}
	if s := v.Get("since"); s != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return q, fmt.Errorf("since %q: want RFC 3339", s)
		}
	}
	return q, nil
}

// socketDirect reads through the running server's local socket.
type socketDirect struct{ path string }

func (s socketDirect) names(ctx context.Context) (map[string]string, error) {
	var a localNames
	if err := localGet(ctx, s.path, routeDirectNames, nil, &a); err != nil {
		return nil, err
	}
	return a.Names, nil
}

func (s socketDirect) conversations(ctx context.Context, account string) ([]chat.ConversationStat, error) {
	var a localConversations
	if err := localGet(ctx, s.path, routeDirectConversations, url.Values{"account": {account}}, &a); err != nil {
		return nil, err
	}
	out := make([]chat.ConversationStat, len(a.Conversations))
	for i, c := range a.Conversations {
		out[i] = chat.ConversationStat{Key: c.Key, Peer: c.Peer, Count: c.Count, LastID: c.LastID, LastTime: c.LastTime}
	}
	return out, nil
}

func (s socketDirect) query(ctx context.Context, q store.Query) ([]chat.Message, bool, error) {
	var a localMessages
	if err := localGet(ctx, s.path, routeDirectMessages, localQueryValues(q), &a); err != nil {
		return nil, false, err
	}
	out := make([]chat.Message, len(a.Messages))
	for i, m := range a.Messages {
		out[i] = chat.Message{ID: m.ID, Room: m.Room, User: m.User, Text: m.Text, Time: m.Time, Action: m.Action}
		if m.HasAccount {
			out[i].Account = &chat.Account{ID: m.UserID, Roles: m.Roles}
		}
	}
	return out, a.More, nil
}

// validateDirect refuses flags that do not go with -direct / -with.
func (f *historyFlags) validateDirect() error {
	switch {
	case f.with != "" && f.direct == "":
		return errors.New("-with PEER needs -direct ACCOUNT (whose conversation with PEER to print)")
	case f.direct == "":
		return nil
	case f.rooms || f.room != "" || f.deleteID != 0 || f.deleteUser != "":
		return errors.New("-direct reads direct conversations: it does not go with -rooms, -room, -delete or -delete-user")
	case f.with == "" && (f.before != 0 || f.since != "" || f.user != "" || f.grep != "" || f.ids):
		return errors.New("-before, -since, -user, -grep and -ids select messages of one conversation: add -with PEER")
	}
	return nil
}

// historyDirect is `moonchat history -direct ACCOUNT [-with PEER]`.
func historyDirect(ctx context.Context, cfg *Config, f *historyFlags, stdout, stderr io.Writer) error {
	q, err := f.query(time.Now())
	if err != nil {
		return err
	}
	opts := storeOptions(cfg, nil, true)
	opts.LockTimeout = historyLockWait
	var src directSource
	db, err := store.OpenReadOnly(cfg.Store.Path, opts)
	switch {
	case err == nil:
		defer db.Close()
		src = fileDirect{db}
	case errors.Is(err, store.ErrLocked):
		sock := localSocketPath(cfg)
		fmt.Fprintf(stderr, "history: %s is in use by a running server; reading direct messages through its local socket %s\n", cfg.Store.Path, sock)
		src = socketDirect{sock}
	case errors.Is(err, store.ErrNotExist):
		return fmt.Errorf("%w (no message has been stored yet, or [store] path points elsewhere)", err)
	default:
		return explainStoreError(err)
	}
	err = printDirect(ctx, src, f, q, stdout, stderr)
	if errors.Is(err, errNoLocalSocket) {
		return fmt.Errorf("%w\nthe server may be older than this moonchat, or could not create the socket (its log says why); "+
			"direct messages are never readable over the network API: stop the server and run this again to read the file", err)
	}
	return err
}

// printDirect resolves the accounts and prints the listing or the
// conversation from src.
func printDirect(ctx context.Context, src directSource, f *historyFlags, q store.Query, stdout, stderr io.Writer) error {
	names, err := src.names(ctx)
	if err != nil {
		return err
	}
	account, err := resolveAccount(f.direct, names, func(id string) (bool, error) {
		cs, err := src.conversations(ctx, id)
		return len(cs) > 0, err
	})
	if err != nil {
		return fmt.Errorf("-direct: %w", err)
	}
	convs, err := src.conversations(ctx, account)
	if err != nil {
		return err
	}
	if f.with == "" {
		return printConversations(stdout, convs, names, f.json)
	}
	peer, err := resolveAccount(f.with, names, func(id string) (bool, error) {
		key := chat.ConversationKey(account, id)
		return slices.ContainsFunc(convs, func(c chat.ConversationStat) bool { return c.Key == key }), nil
	})
	if err != nil {
		return fmt.Errorf("-with: %w", err)
	}
	key := chat.ConversationKey(account, peer)
	if !slices.ContainsFunc(convs, func(c chat.ConversationStat) bool { return c.Key == key }) {
		return fmt.Errorf("no direct conversation between %q and %q in the history (`moonchat history -direct %s` lists %s's)", account, peer, shellWord(f.direct), shellWord(f.direct))
	}
	q.Room = key
	msgs, more, err := src.query(ctx, q)
	if err != nil {
		return err
	}
	return printMessages(stdout, stderr, msgs, more, f.json, f.ids)
}

// shellWord quotes s for a command line shown in a message when it needs
// it (escaped either way: it came from the command line, but may be pasted).
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '@' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
	}) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// resolveAccount turns ACCOUNT or PEER into an account id: arg itself when
// it is a known account id (it owns a name, or known says it has the
// conversations asked about), else the account owning the name arg
// (exactly, else ignoring case when only one does).
func resolveAccount(arg string, names map[string]string, known func(id string) (bool, error)) (string, error) {
	if _, ok := names[arg]; ok {
		return arg, nil
	}
	ok, err := known(arg)
	if err != nil {
		return "", err
	}
	if ok {
		return arg, nil
	}
	var ids []string
	for id, n := range names {
		if n == arg {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		for id, n := range names {
			if strings.EqualFold(n, arg) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", fmt.Errorf("%q is neither an account id with direct messages nor a name an account owns", arg)
	default:
		return "", fmt.Errorf("%q: the name of several accounts (ids %q): give the account id", arg, ids)
	}
}

// jsonConversation is a conversation as printed by -direct -json: the
// moonchat.v1 "conversations" entry (docs/protocol.md), seen from ACCOUNT.
type jsonConversation struct {
	WithID string `json:"with_id"`
	With   string `json:"with,omitempty"`
	Count  int    `json:"count"`
	LastID uint64 `json:"last_id"`
	LastTS string `json:"last_ts,omitempty"`
}

// printConversations prints one line per conversation, newest first:
// "PEER-ID NAME COUNT LAST-TIME" ("-" for a peer without an owned name,
// or a conversation with no message left), or JSON lines. Ids and names
// come from users: escaped like every printed field.
func printConversations(stdout io.Writer, convs []chat.ConversationStat, names map[string]string, asJSON bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, c := range convs {
		j := jsonConversation{WithID: c.Peer, With: names[c.Peer], Count: c.Count, LastID: c.LastID}
		if !c.LastTime.IsZero() {
			j.LastTS = c.LastTime.UTC().Format(timeLayout)
		}
		var err error
		if asJSON {
			buf.Reset()
			if err = enc.Encode(j); err == nil {
				_, err = stdout.Write(escapeJSON(buf.Bytes()))
			}
		} else {
			_, err = fmt.Fprintf(stdout, "%s %s %d %s\n", escapeLine(j.WithID), escapeLine(cmp.Or(j.With, "-")), j.Count, cmp.Or(j.LastTS, "-"))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
