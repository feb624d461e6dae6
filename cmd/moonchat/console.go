package main

import (
	"bufio"
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
	"path/filepath"
	"strings"
	"syscall"

	"github.com/chzyer/readline"
	"github.com/moonchat/moonchat/scripting"
	"github.com/yuin/gopher-lua/parse"
)

// `moonchat console` (issue 16): a Lua prompt inside the running server,
// over its local socket (localsock.go; the server side is
// console_server.go). On a terminal it is a line editor with history
// (github.com/chzyer/readline: arrows, Ctrl-R, Ctrl-A/E …; the history in
// a file of the user's, mode 0600, or none); otherwise (a pipe, a
// redirect) each input line is run in turn and its results printed, and
// the exit status is 1 when a line failed, so that
//
//	echo 'return #chat.rooms()' | moonchat console
//
// works in scripts.

// consoleStdin is what the console reads (a variable for tests).
var consoleStdin io.Reader = os.Stdin

// consoleHistoryName is the history file's name in the home directory.
const consoleHistoryName = ".moonchat_console_history"

// consoleHistoryMax is how many lines of history are kept.
const consoleHistoryMax = 1000

// runConsole is "moonchat console".
func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("console", "[-config FILE] [-history FILE]", stderr)
	configPath := fset.String("config", "", "the running server's config file (default: ./config.toml if it exists, else the built-in defaults): where its local socket is")
	defHistory := ""
	if home, err := os.UserHomeDir(); err == nil {
		defHistory = filepath.Join(home, consoleHistoryName)
	}
	history := fset.String("history", defHistory, `the prompt's history file, mode 0600 ("" = no history file)`)
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return newUsageError(fset, fmt.Errorf("unexpected argument %q (lines come from the input)", fset.Arg(0)))
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	sock := localSocketPath(cfg)
	if sock == "" {
		return errors.New("no console: [store] path is empty, and the console is reached through the local socket beside the store file")
	}
	cc := &consoleClient{sock: sock}
	var open consoleOpen
	if err := cc.post(ctx, "/console/open", struct{}{}, &open); err != nil {
		return err
	}
	cc.session = open.Session
	defer func() {
		// The session closes even after a signal: a short context of its own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localTimeout)
		defer cancel()
		_ = cc.post(cctx, "/console/close", consoleRequest{Session: cc.session}, &struct{}{})
	}()
	if isTerminal(consoleStdin) && isTerminal(stdout) {
		return cc.interactive(ctx, consoleStdin.(*os.File), stdout, *history)
	}
	return cc.lines(ctx, consoleStdin, stdout, stderr)
}

// consoleClient talks to one console session on the socket.
type consoleClient struct {
	sock    string
	session string
}

// lines runs each input line in turn (line mode): results on stdout,
// errors on stderr; an error for a line that failed once all have run. A
// line that leaves the Lua unfinished (incompleteLua) is run together
// with the next ones, as one chunk, once it is complete.
func (cc *consoleClient) lines(ctx context.Context, in io.Reader, stdout, stderr io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 2*scripting.MaxConsoleLine)
	failed := 0
	var chunk string
	runChunk := func() error {
		ok, err := cc.run(ctx, chunk, stdout, stderr)
		chunk = ""
		if !ok {
			failed++
		}
		return err
	}
	for sc.Scan() {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		if chunk == "" {
			chunk = sc.Text()
		} else {
			chunk += "\n" + sc.Text()
		}
		if incompleteLua(chunk) && len(chunk) <= scripting.MaxConsoleLine {
			continue
		}
		if err := runChunk(); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}
	if chunk != "" { // unfinished at the end: run, for its syntax error
		if err := runChunk(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d line(s) failed", failed)
	}
	return nil
}

// interactive is the prompt on a terminal.
func (cc *consoleClient) interactive(ctx context.Context, in *os.File, stdout io.Writer, historyPath string) error {
	hist, err := openConsoleHistory(historyPath)
	if err != nil {
		return err
	}
	defer hist.close()
	rl, err := readline.NewEx(&readline.Config{
		Prompt:          "lua> ",
		HistoryLimit:    consoleHistoryMax,
		InterruptPrompt: "^C",
		EOFPrompt:       "",
		Stdin:           io.NopCloser(in),
		Stdout:          stdout,
		Stderr:          stdout,
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer rl.Close()
	for _, line := range hist.lines {
		_ = rl.SaveHistory(line) // in memory only: no HistoryFile is set
	}
	stop := context.AfterFunc(ctx, func() { _ = rl.Close() })
	defer stop()
	fmt.Fprintf(rl.Stdout(), "moonchat console: Lua inside the server (%s). help lists the commands; every line goes to the audit log; Ctrl-D quits.\n", cc.sock)
	var chunk string // lines of Lua not complete yet
	for {
		if chunk == "" {
			rl.SetPrompt("lua> ")
		} else {
			rl.SetPrompt(">>   ")
		}
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			chunk = "" // Ctrl-C drops what is being typed
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return interrupted(ctx)
			}
			return fmt.Errorf("console: %w", err)
		}
		if chunk == "" {
			switch strings.TrimSpace(line) {
			case "":
				continue
			case "exit", "quit":
				return nil
			}
		}
		hist.add(line)
		if chunk != "" {
			line = chunk + "\n" + line
		}
		if incompleteLua(line) && len(line) <= scripting.MaxConsoleLine {
			chunk = line
			continue
		}
		chunk = ""
		if _, err := cc.run(ctx, line, rl.Stdout(), rl.Stderr()); err != nil {
			return err
		}
	}
}

// incompleteLua reports whether src is Lua that is not finished yet, as
// Lua's own prompt decides: it is neither an expression nor a statement,
// and the parser ran out of input (an open function, if, loop, table,
// call or long string), so the next line continues it. Parsed here, in
// the client: nothing reaches the server (nor its audit log) until the
// chunk is complete.
func incompleteLua(src string) bool {
	if strings.TrimSpace(src) == "" {
		return false
	}
	if _, err := parse.Parse(strings.NewReader("return "+src), scripting.ConsoleScript); err == nil {
		return false
	}
	_, err := parse.Parse(strings.NewReader(src), scripting.ConsoleScript)
	var pe *parse.Error
	// Line -1 is gopher-lua's end of input. An unterminated quoted string
	// ends at the end of its line in Lua: an error, not a continuation.
	return errors.As(err, &pe) && pe.Pos.Line < 0 && pe.Message != "unterminated string"
}

// run sends one line and prints what it did: print's output, then the
// values tab-separated on one line, then the error. ok is false when the
// line failed; err when the console cannot go on.
func (cc *consoleClient) run(ctx context.Context, line string, stdout, stderr io.Writer) (ok bool, err error) {
	var res scripting.ConsoleResult
	if err := cc.post(ctx, "/console/eval", consoleRequest{Session: cc.session, Line: line}, &res); err != nil {
		var le *consoleLineError
		if errors.As(err, &le) {
			fmt.Fprintf(stderr, "%s\n", escapeText(le.msg))
			return false, nil
		}
		return false, err
	}
	if res.Reset {
		fmt.Fprintln(stderr, "(the scripts were reloaded: the console's globals start afresh)")
	}
	if res.Output != "" {
		io.WriteString(stdout, escapeText(res.Output))
	}
	if len(res.Values) > 0 {
		fmt.Fprintln(stdout, escapeText(strings.Join(res.Values, "\t")))
	}
	if res.Reloaded {
		fmt.Fprintln(stdout, "scripts reloaded")
	}
	if res.Error != "" {
		fmt.Fprintln(stderr, escapeText(res.Error))
		return false, nil
	}
	return true, nil
}

// consoleLineError is the server refusing one line (too long, the audit
// log failing, the scripts busy): said, and the console goes on.
type consoleLineError struct{ msg string }

func (e *consoleLineError) Error() string { return e.msg }

// post sends body to route on the socket and decodes the JSON answer
// into into. It says plainly when no server runs, when the socket is not
// the user's, or when the server refuses the console.
func (cc *consoleClient) post(ctx context.Context, route string, body, into any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	hc := &http.Client{
		Timeout: localTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", cc.sock)
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://moonchat"+route, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		return explainConsoleDial(cc.sock, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("local socket %s: %w", cc.sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e localError
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return fmt.Errorf("local socket %s: POST %s: %s (an older server, without the console?)", cc.sock, route, resp.Status)
		}
		if route == "/console/eval" && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden {
			return &consoleLineError{msg: e.Error}
		}
		return errors.New(e.Error)
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("local socket %s: POST %s: not a moonchat answer: %w", cc.sock, route, err)
	}
	return nil
}

// explainConsoleDial turns a failed connection to the socket into what
// the user should know.
func explainConsoleDial(sock string, err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return fmt.Errorf("local socket %s: %w", sock, err)
	}
	switch {
	case errors.Is(op.Err, fs.ErrNotExist):
		return fmt.Errorf("no server is running with this config: %s does not exist (the console talks to a running `moonchat serve` through the socket beside its store file)", sock)
	case errors.Is(op.Err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied: the console is for the user the server runs as (the socket is mode 0600)", sock)
	case errors.Is(op.Err, syscall.ECONNREFUSED):
		return fmt.Errorf("the server is not running: nothing answers on %s (left by a server that was killed)", sock)
	}
	return fmt.Errorf("%w at %s: %w", errNoLocalSocket, sock, op.Err)
}

// consoleHistory is the prompt's history file: the last lines loaded at
// start, each new line appended. Mode 0600 (lines typed at the console
// may hold what others should not read); rewritten, keeping the newest
// consoleHistoryMax, when it has grown to twice that.
type consoleHistory struct {
	path  string
	f     *os.File // nil: no history file
	lines []string
}

// openConsoleHistory opens (or creates) the history file at path; "" is
// no file. A file it cannot use is an error: better said than silently
// not kept.
func openConsoleHistory(path string) (*consoleHistory, error) {
	h := &consoleHistory{path: path}
	if path == "" {
		return h, nil
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("history file: %w (-history \"\" for none)", err)
	}
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimRight(line, "\n"); line != "" {
			h.lines = append(h.lines, line)
		}
	}
	if len(h.lines) >= 2*consoleHistoryMax {
		h.lines = h.lines[len(h.lines)-consoleHistoryMax:]
		if err := writeFile0600(path, []byte(strings.Join(h.lines, "\n")+"\n")); err != nil {
			return nil, fmt.Errorf("history file: %w", err)
		}
	}
	if h.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("history file: %w (-history \"\" for none)", err)
	}
	return h, nil
}

// add appends line to the file (a failure is not worth ending the
// console for: the line ran).
func (h *consoleHistory) add(line string) {
	if h.f != nil {
		_, _ = h.f.WriteString(line + "\n")
	}
}

func (h *consoleHistory) close() {
	if h.f != nil {
		_ = h.f.Close()
	}
}

// writeFile0600 replaces path with data through a temporary file (mode
// 0600) and a rename.
func writeFile0600(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".moonchat-history-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
