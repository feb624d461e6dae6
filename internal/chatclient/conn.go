package chatclient

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// The connection's life: dial, read and write, reconnect.

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
	closing := c.closing
	c.mu.Unlock()
	if closing {
		// Close came during the dial.
		conn.Close(ws.StatusNormalClosure, "bye")
	}
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
			// A roles event's "id" is an account id (a string), where
			// the others have a message id.
			var r struct {
				Type, Room, Name, ID string
				Roles                []string
			}
			if json.Unmarshal(data, &r) != nil || r.Type != "roles" {
				continue // not ours to understand: the protocol only adds fields and types
			}
			e = Event{Type: "roles", Room: r.Room, Name: r.Name, UserID: r.ID, Roles: r.Roles}
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
