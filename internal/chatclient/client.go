// Package chatclient is a moonchat.v1 client (docs/protocol.md): it joins
// a room over core/ws, hands the server's events to its owner in order,
// and keeps the connection up.
//
// What it adds to the bare protocol, so that a user interface need not:
//
//   - Reconnecting: when the connection drops (or the server restarts) it
//     dials again with exponential backoff and resumes with since=ID, ID
//     the last message it delivered, then asks for {"type":"history",
//     "after":…} pages while the server says there are more. Live messages
//     that arrive during that catch-up are held and delivered after it, and
//     every message is delivered once, in id order: nothing is missed or
//     shown twice across a reconnect. Conversations (direct messages) are
//     resumed the same way, with "after" pages per conversation.
//   - Acknowledged sends: a message counts as sent when the server echoes
//     it as our own message event (it is stored by then: the server stores
//     before it delivers). A refusal (an error event) settles it too. A
//     send the scripts drop without a word is found out with a barrier: a
//     {"type":"presence"} request, whose answer the server writes after
//     every event of what was sent before it. A message lost in a drop is
//     looked for in the resume batch and sent again when it is not there.
//   - Paging: Older asks for the page before the oldest message delivered.
//
// The owner reads Updates until Run returns, and calls the other methods
// from any goroutine.
package chatclient

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Subprotocol is the WebSocket subprotocol the client speaks.
const Subprotocol = "moonchat.v1"

// Options configure a Client.
type Options struct {
	// URL is the room's WebSocket address, ws[s]://HOST[:PORT]/chat/ROOM,
	// possibly with name= (and since=, which the client manages itself and
	// drops). http(s):// is taken as ws(s)://.
	URL string
	// Name, when set, is the nick asked for (replaces the URL's name=).
	Name string
	// Room, when set, replaces the URL's room.
	Room string
	// Token, when set, is sent as "Authorization: Bearer TOKEN" (not in
	// the URL, where proxies and logs would keep it).
	Token string
	// MinBackoff and MaxBackoff bound the wait before a reconnect: it
	// starts at MinBackoff (default 250ms) and doubles per failed attempt
	// up to MaxBackoff (default 15s), ±20% so that clients of a restarted
	// server do not all come back at once.
	MinBackoff, MaxBackoff time.Duration
	// PageSize is the number of messages Older asks for (default 50).
	PageSize int
}

// Status is the state of the connection.
type Status int

// The connection's states, in a Client's life: Connecting (the first
// dial), Connected, Reconnecting (after a drop, until the next welcome),
// Closed (Run returned).
const (
	Connecting Status = iota
	Connected
	Reconnecting
	Closed
)

// String is the status as the status line says it.
func (s Status) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	default:
		return "closed"
	}
}

// State describes the connection, sent in an Update at every change.
type State struct {
	Status Status
	Name   string // our name in the room (as of the last welcome or rename)
	Room   string
	URL    string // the address dialled, without credentials
	// Since is the resume point: the id of the last message delivered in
	// order; a reconnect asks for since=Since (0: no id known, the server
	// keeps no history or none was delivered yet).
	Since uint64
	// CatchingUp is true while a resume's missed messages are fetched.
	CatchingUp bool
	// Attempt counts the failed dials since the last connection; RetryIn
	// is the wait before the next one (Reconnecting).
	Attempt int
	RetryIn time.Duration
	// Err says why the last connection ended or dial failed (nil when
	// connected), or why the client stopped (Closed).
	Err error
	// Direct reports whether the server speaks direct messages.
	Direct bool
}

// Update is what the client tells its owner: exactly one field is set.
type Update struct {
	// Event is a server event. History pages and live messages are
	// delivered once each; messages missed during a drop come as
	// history events with reason "since" or "after".
	Event *Event
	// State is the connection's new state.
	State *State
	// Settled is the fate of a send.
	Settled *Settled
}

// Settled tells the fate of one Send or SendDirect.
type Settled struct {
	Text string
	To   string // the recipient of a direct message
	// OK: the server stored and delivered it (a message), or ran it (a
	// command). Otherwise Reason says why not.
	OK     bool
	Reason string
}

// ClosedError ends Run when the server refused the client or closed the
// connection for a reason a reconnect would not mend (kicked, banned,
// refused, credentials expired or refused).
type ClosedError struct {
	Status int           // the HTTP status of a refused handshake, or 0
	Code   ws.StatusCode // the close code, or 0
	Reason string
}

// Error says who ended the connection and why.
func (e *ClosedError) Error() string {
	switch {
	case e.Status != 0 && e.Reason != "":
		return fmt.Sprintf("refused (HTTP %d): %s", e.Status, e.Reason)
	case e.Status != 0:
		return fmt.Sprintf("refused (HTTP %d)", e.Status)
	case e.Reason != "":
		return fmt.Sprintf("closed by the server (%d): %s", e.Code, e.Reason)
	default:
		return fmt.Sprintf("closed by the server (%d)", e.Code)
	}
}

// sendKind is what a pending send is.
type sendKind uint8

const (
	kindMessage sendKind = iota // a chat message: acknowledged by our message event
	kindAction                  // a /me action: acknowledged by our action (posted by a script)
	kindCommand                 // any other /command: answered by notices, if at all
	kindDirect                  // a direct message: acknowledged by our direct event
)

// pending is a send not settled yet.
type pending struct {
	kind      sendKind
	text, to  string
	sent      bool   // written (or queued) on the current connection
	uncertain bool   // sent on a connection that dropped before it was settled
	as        string // our name when it was written (a reconnect may give us another)
	barrier   uint64 // the barrier request it waits for (0: none yet)
	left      int    // barrier answers still needed before it counts as settled
}

// Client is a moonchat.v1 client. Make it with New, run it with Run.
type Client struct {
	opts    Options
	base    *url.URL
	updates chan Update

	mu      sync.Mutex
	name    string // asked for, then given by the server
	room    string
	conn    *ws.ClientConn // nil while disconnected
	live    bool           // connected, welcomed and caught up: sends go out
	outq    [][]byte       // frames for the current connection's writer
	wake    chan struct{}  // tells the writer outq has frames
	closing bool           // Close was called
	stop    chan struct{}  // closed by Close
	ready   chan struct{}  // closed when the first join's replay was delivered
	isReady bool
	once    sync.Once
	state   State

	pend        []*pending
	changed     chan struct{} // closed (and replaced) when pend shrinks
	barrierSent uint64
	barrierDone uint64
	// unclaimed are recent message events from names that were not ours
	// when they came: a /nick renames us before its rename event is
	// written, so our next messages may come under the new name first.
	unclaimed []Event
	// errs are the refusals (error events) not yet matched to a send.
	errs     []Event
	joinList bool // the join's own full presence list is still to come

	resume     uint64  // last room message id delivered in order
	catchingUp bool    // a since/after catch-up is under way
	held       []Event // live messages held during the catch-up
	oldest     uint64  // the oldest message id delivered (0: none)
	olderMore  bool    // the server said older messages exist
	loadingOld bool    // a before page is asked for

	direct   int8              // 1: the server speaks DMs, -1: it does not, 0: not known yet
	convLast map[string]uint64 // per peer: the last direct message id delivered
	convOld  map[string]uint64 // per peer: the oldest delivered
	// convResumed: this connection asked for the conversations missed.
	convResumed bool
	// convHeld: the conversations catching up (an "after" page asked
	// for), with the live direct messages held until it is done.
	convHeld map[string][]Event
}

// New checks opts and makes a Client.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("client URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("client URL %q: want ws://HOST/chat/ROOM (or wss://)", opts.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client URL %q: no host", opts.URL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("client URL: user info is not supported: give a token with -token")
	}
	q := u.Query()
	name := q.Get("name")
	if opts.Name != "" {
		name = opts.Name
	}
	if q.Get("token") != "" && opts.Token == "" {
		opts.Token = q.Get("token")
	}
	q.Del("since")
	q.Del("name")
	q.Del("token")
	u.RawQuery = q.Encode()
	// The room is the server's to say (welcome); until then, the one the
	// path names. A path that is not a chat path is left as it is, for
	// the server to answer.
	room, _ := strings.CutPrefix(u.Path, "/chat/")
	if room == u.Path {
		room = ""
	}
	if opts.Room != "" {
		room = opts.Room
		u.Path = "/chat/" + room
	}
	u.Fragment = ""
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(15*time.Second, opts.MinBackoff)
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	c := &Client{
		opts:     opts,
		base:     u,
		updates:  make(chan Update, 4096),
		name:     name,
		room:     room,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		ready:    make(chan struct{}),
		changed:  make(chan struct{}),
		convLast: map[string]uint64{},
		convOld:  map[string]uint64{},
		convHeld: map[string][]Event{},
	}
	c.state = State{Status: Connecting, Room: room, Name: name, URL: u.String()}
	return c, nil
}

// Ready is closed once the client has joined and delivered the room's
// replay (or resume) for the first time.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Updates is the stream of events, state changes and settled sends, in
// order. It is closed when Run returns. The owner must keep reading it:
// the client stops reading the server while it is full.
func (c *Client) Updates() <-chan Update { return c.updates }

// Name is our current name (as asked for until the server gives one).
func (c *Client) Name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name
}

// Room is the room joined.
func (c *Client) Room() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room
}

// dialURL is the address of the next connection: the base URL with our
// name and the resume point.
func (c *Client) dialURL() string {
	u := *c.base
	q := u.Query()
	if c.name != "" {
		q.Set("name", c.name)
	}
	if c.resume > 0 {
		q.Set("since", strconv.FormatUint(c.resume, 10))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Close ends the connection with a close frame (1000) and makes Run
// return nil.
func (c *Client) Close() {
	c.mu.Lock()
	c.closing = true
	conn := c.conn
	c.mu.Unlock()
	c.once.Do(func() { close(c.stop) })
	if conn != nil {
		conn.Close(ws.StatusNormalClosure, "bye")
	}
}
