package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"

	"github.com/moonchat/moonchat/core/ws"
	"github.com/moonchat/moonchat/internal/chatclient"
	"github.com/moonchat/moonchat/internal/tui"
)

// defaultClientURL is the room `moonchat client` joins without a URL: the
// lobby of a server with the default config on this machine.
const defaultClientURL = "ws://127.0.0.1:8080/chat/lobby"

// clientStdin is the client's input (a variable for the in-process tests).
var clientStdin io.Reader = os.Stdin

// runClient is "moonchat client [URL]" (issue 17): a moonchat.v1 chat
// client. On a terminal (stdin and stdout both) it is the full-screen
// client of internal/tui; otherwise it is line mode
// (chatclient.RunLines): each input line is sent, each chat line printed
// as "TIME ROOM NICK: TEXT", and it exits at the end of the input once
// every send is acknowledged.
func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, token, room string
	fset := newFlagSet("client", "[-name NICK] [-token JWT] [-room ROOM] [URL]", stderr)
	fset.StringVar(&name, "name", "", "the nickname to ask for (default: the URL's name=, else the server picks guest-N)")
	fset.StringVar(&token, "token", "", "credentials (a JWT, see [auth]); default $MOONCHAT_TOKEN. Sent as an Authorization header")
	fset.StringVar(&room, "room", "", "the room to join (replaces the URL's)")
	// Flags may also follow the URL ("moonchat client URL -name bob"):
	// the flag package stops at the first argument, so parse the rest
	// again after it.
	out, usageFn := fset.Output(), fset.Usage
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	var positional []string
	err := fset.Parse(args)
	for err == nil && fset.NArg() > 0 {
		positional = append(positional, fset.Arg(0))
		err = fset.Parse(fset.Args()[1:])
	}
	fset.SetOutput(out)
	fset.Usage = usageFn
	if err != nil {
		return newUsageError(fset, err)
	}
	u := defaultClientURL
	switch len(positional) {
	case 0:
	case 1:
		u = positional[0]
	default:
		return newUsageError(fset, fmt.Errorf("unexpected argument %q", positional[1]))
	}
	if token == "" {
		token = os.Getenv("MOONCHAT_TOKEN")
	}
	if room != "" {
		if err := checkRoomName(room); err != nil {
			return newUsageError(fset, fmt.Errorf("-room: %w", err))
		}
	}
	c, err := chatclient.New(chatclient.Options{URL: u, Name: name, Token: token, Room: room})
	if err != nil {
		return newUsageError(fset, err)
	}
	if isTerminal(clientStdin) && isTerminal(stdout) {
		err = tui.Run(ctx, c, clientStdin.(*os.File), stdout.(*os.File))
	} else {
		err = chatclient.RunLines(ctx, c, clientStdin, stdout, stderr)
	}
	// A close with 1000 is the server ending the session on purpose
	// (quit, /quit, a kick): said, but not a failure of the client.
	var ce *chatclient.ClosedError
	if errors.As(err, &ce) && ce.Code == ws.StatusNormalClosure {
		fmt.Fprintf(stderr, "moonchat client: %s\n", escapeText(ce.Error()))
		return nil
	}
	return err
}

// isTerminal reports whether v is a file open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
