package chatclient

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// LineTime is the time format of line mode: UTC, to the second.
const LineTime = "2006-01-02T15:04:05Z"

// RunLines is the client for pipes and scripts ("line mode"): every line
// of in is sent as a message (a /command as a command), and every chat
// line is written to out as "TIME ROOM NICK: TEXT" (an action "TIME ROOM *
// NICK TEXT", a notice "TIME ROOM * TEXT", a direct message "TIME @PEER
// NICK: TEXT", PEER the other user), without colours, each on one line
// (Line). Refusals, connection trouble and reconnects are reported on
// errw. At the end of in it waits until every send is settled, closes the
// connection and returns: nil when every send was acknowledged, an error
// naming the refused ones otherwise, or Run's error when the server ended
// the connection for good.
//
// The goroutine reading in is owned by RunLines but not waited for when
// the connection ends first: a read from a terminal or pipe cannot be
// interrupted, and it ends with the process.
func RunLines(ctx context.Context, c *Client, in io.Reader, out, errw io.Writer) error {
	runDone := make(chan error, 1)
	runEnded := make(chan struct{})
	go func() {
		// Owned by RunLines, which waits for it (it closes Updates).
		defer close(runEnded)
		runDone <- c.Run(ctx)
	}()
	var sent, failed int
	inDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if strings.TrimSpace(line) == "" {
				continue
			}
			c.Send(line)
		}
		inDone <- sc.Err()
	}()
	w := bufio.NewWriter(out)
	var inErr error
	updates := c.Updates()
	reconnected := false
	for updates != nil || inDone != nil {
		select {
		case err := <-inDone:
			inDone = nil
			inErr = err
			go func() {
				// Owned by RunLines: ends when every send is settled or
				// Run returns; Close then ends Run. It waits for the join
				// first, so that even without input the replay is printed.
				select {
				case <-c.Ready():
				case <-runEnded:
				case <-ctx.Done():
				}
				_ = c.WaitSent(ctx)
				c.Close()
			}()
		case u, ok := <-updates:
			if !ok {
				updates = nil
				if inDone != nil {
					// The connection ended for good before the input did.
					inDone = nil
				}
				continue
			}
			switch {
			case u.Event != nil:
				printEvent(w, errw, u.Event, c)
			case u.Settled != nil:
				sent++
				if !u.Settled.OK {
					failed++
					fmt.Fprintf(errw, "moonchat client: not sent: %s: %s\n", Line(u.Settled.Text), Line(u.Settled.Reason))
				}
			case u.State != nil:
				switch u.State.Status {
				case Reconnecting:
					reconnected = true
					since := ""
					if u.State.Since > 0 {
						since = fmt.Sprintf(", resuming since=%d", u.State.Since)
					}
					fmt.Fprintf(errw, "moonchat client: disconnected (%v); reconnecting in %v%s\n", u.State.Err, u.State.RetryIn.Round(time.Millisecond), since)
				case Connected:
					if reconnected {
						fmt.Fprintf(errw, "moonchat client: reconnected to %s as %s\n", Line(u.State.Room), Line(u.State.Name))
						reconnected = false
					}
				}
			}
			if len(updates) == 0 {
				w.Flush()
			}
		}
	}
	w.Flush()
	runErr := <-runDone
	switch {
	case runErr != nil:
		return runErr
	case inErr != nil:
		return fmt.Errorf("reading the input: %w", inErr)
	case c.Pending() > 0 && ctx.Err() == nil:
		return fmt.Errorf("%d messages not acknowledged before the connection ended", c.Pending())
	case failed > 0:
		return fmt.Errorf("%d of %d sends refused", failed, sent)
	}
	return nil
}

// printEvent writes the chat lines of e.
func printEvent(w io.Writer, errw io.Writer, e *Event, c *Client) {
	switch e.Type {
	case "message":
		printMessage(w, e, e.Room)
	case "direct":
		printMessage(w, e, "@"+e.With)
	case "history":
		for i := range e.Messages {
			m := &e.Messages[i]
			if e.With != "" {
				printMessage(w, m, "@"+e.With)
			} else {
				printMessage(w, m, cmpOr(m.Room, e.Room))
			}
		}
	case "system":
		fmt.Fprintf(w, "%s %s * %s\n", stamp(e), Line(cmpOr(e.Room, c.Room())), Line(e.Text))
	case "gap":
		fmt.Fprintf(errw, "moonchat client: messages %d to %d of %s were pruned by the server and cannot be shown\n", e.After+1, e.First-1, Line(e.Room))
	case "error":
		if !answersSend(e) { // refusals are reported with the send they refused
			fmt.Fprintf(errw, "moonchat client: %s: %s\n", Line(e.Code), Line(e.Text))
		}
	}
}

// printMessage writes one chat or direct message under room ("@PEER" for
// a conversation).
func printMessage(w io.Writer, m *Event, room string) {
	user := m.User
	if user == "" {
		user = m.From
	}
	if m.Action {
		fmt.Fprintf(w, "%s %s * %s %s\n", stamp(m), Line(room), Line(user), Line(m.Text))
		return
	}
	fmt.Fprintf(w, "%s %s %s: %s\n", stamp(m), Line(room), Line(user), Line(m.Text))
}

// stamp is an event's time in line mode (now when it has none).
func stamp(e *Event) string {
	t := e.Time()
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(LineTime)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
