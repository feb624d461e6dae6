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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
	joinList  bool // the join's own full presence list is still to come

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
	room := strings.TrimPrefix(u.Path, "/chat")
	room = strings.Trim(room, "/")
	if opts.Room != "" {
		room = opts.Room
	}
	if room != "" {
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
		changed:  make(chan struct{}),
		convLast: map[string]uint64{},
		convOld:  map[string]uint64{},
	}
	c.state = State{Status: Connecting, Room: room, Name: name, URL: u.String()}
	return c, nil
}

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

// Run connects and keeps the client connected until ctx ends (nil),
// Close is called (nil), or the server refuses it for good (a
// *ClosedError). Updates is closed when it returns.
func (c *Client) Run(ctx context.Context) (err error) {
	defer func() {
		c.mu.Lock()
		c.state.Status = Closed
		c.state.Err = err
		c.state.RetryIn = 0
		st := c.state
		c.live = false
		c.mu.Unlock()
		c.updates <- Update{State: &st}
		close(c.updates)
		c.mu.Lock()
		close(c.changed) // wake WaitSent for good
		c.changed = nil
		c.mu.Unlock()
	}()
	attempt := 0
	for {
		c.mu.Lock()
		u := c.dialURL()
		closing := c.closing
		c.mu.Unlock()
		if closing || ctx.Err() != nil {
			return nil
		}
		hdr := http.Header{}
		if c.opts.Token != "" {
			hdr.Set("Authorization", "Bearer "+c.opts.Token)
		}
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		conn, resp, derr := ws.Dial(dctx, u, &ws.DialOptions{
			Subprotocols: []string{Subprotocol},
			Compression:  true,
			HTTPHeader:   hdr,
			CloseTimeout: 2 * time.Second,
		})
		cancel()
		var wait time.Duration
		if derr == nil && conn.Subprotocol() != Subprotocol {
			conn.Close(ws.StatusPolicyViolation, "moonchat.v1 required")
			return &ClosedError{Reason: "the server does not speak " + Subprotocol + " (is this a moonchat server?)"}
		}
		if derr != nil {
			if ctx.Err() != nil {
				return nil
			}
			if resp != nil {
				retry, after, cerr := refusal(resp)
				if !retry {
					return cerr
				}
				wait = after
				derr = cerr
			}
		} else {
			derr = c.session(ctx, conn)
			c.mu.Lock()
			closing = c.closing
			welcomed := c.state.Status == Connected
			c.mu.Unlock()
			if closing || ctx.Err() != nil {
				return nil
			}
			var ce *ws.CloseError
			if errors.As(derr, &ce) && fatalClose(ce.Code) {
				return &ClosedError{Code: ce.Code, Reason: ce.Reason}
			}
			if welcomed {
				attempt = 0
			}
		}
		d := backoff(c.opts.MinBackoff, c.opts.MaxBackoff, attempt)
		if wait > d {
			d = wait
		}
		attempt++
		c.mu.Lock()
		ups := c.disconnected(nil)
		c.state.Status = Reconnecting
		c.state.Err = derr
		c.state.Attempt = attempt
		c.state.RetryIn = d
		c.state.Since = c.resume
		st := c.state
		c.mu.Unlock()
		for _, u := range ups {
			c.updates <- u
		}
		c.updates <- Update{State: &st}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.stop:
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// refusal reads a refused handshake: whether to try again (429, 503 and
// other 5xx), after how long the server asked (Retry-After), and the
// error carrying its one-line reason.
func refusal(resp *http.Response) (retry bool, after time.Duration, err error) {
	var body []byte
	if resp.Body != nil {
		body = make([]byte, 1024)
		n, _ := resp.Body.Read(body)
		body = body[:n]
		resp.Body.Close()
	}
	reason := strings.TrimSpace(string(body))
	if len(reason) > 0 && reason[0] == '{' {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			reason = e.Error
		}
	}
	cerr := &ClosedError{Status: resp.StatusCode, Reason: Line(reason)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			after = min(time.Duration(s)*time.Second, time.Minute)
		}
		return true, after, cerr
	}
	return false, 0, cerr
}

// fatalClose reports whether a close code means a reconnect would be
// refused again or unwanted: 1000 (kicked, /quit), 1008 (refused, banned,
// flooding), 1002/1003/1007/1009 (this client is at fault), 4001
// (credentials expired). 1001 (shutdown), 1006 (dropped), 1011 and 1013
// (try again later) reconnect.
func fatalClose(code ws.StatusCode) bool {
	switch code {
	case 1000, 1002, 1003, 1007, 1008, 1009, 4001:
		return true
	}
	return false
}

// backoff is the wait before reconnect attempt n (0 = the first retry).
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	// ±20%, so that the clients of a restarted server spread out.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// session runs one connection until it ends, and returns why.
func (c *Client) session(ctx context.Context, conn *ws.ClientConn) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.conn = conn
	c.outq = c.outq[:0]
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// Owned by session, which waits for it: the writer of this
		// connection, ends with it.
		defer wg.Done()
		c.writer(sctx, conn)
	}()
	defer wg.Wait()
	defer cancel()
	for {
		_, data, err := conn.ReadMessage(ctx)
		if err != nil {
			return err
		}
		var e Event
		if err := json.Unmarshal(data, &e); err != nil {
			continue // not ours to understand: the protocol only adds fields and types
		}
		c.mu.Lock()
		ups := c.handle(&e, nil)
		c.mu.Unlock()
		for _, u := range ups {
			c.updates <- u
		}
	}
}

// writer writes the queued frames of conn in order.
func (c *Client) writer(ctx context.Context, conn *ws.ClientConn) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if c.conn != conn || len(c.outq) == 0 {
				c.mu.Unlock()
				break
			}
			f := c.outq[0]
			c.outq[0] = nil
			c.outq = c.outq[1:]
			c.mu.Unlock()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.WriteMessage(wctx, ws.OpText, f)
			cancel()
			if err != nil {
				// The reader sees the connection end and reconnects.
				conn.Close(ws.StatusGoingAway, "")
				return
			}
		}
	}
}

// queue adds a frame for the current connection's writer. c.mu is held.
func (c *Client) queue(v any) {
	if c.conn == nil {
		return
	}
	b, _ := json.Marshal(v)
	c.outq = append(c.outq, b)
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
