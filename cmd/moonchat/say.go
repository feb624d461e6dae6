package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// runSay is "moonchat say" (issue 17): post one message to a room through
// the running server's admin API (POST /api/rooms/R/messages), for
// operators and monitoring scripts. The server's address and [admin]
// token come from the config, as for `moonchat history` and `moonchat
// audit` (apiBase; [admin] listen when the API has its own listener). The
// message takes the room's own path (stored, then delivered); a refusal
// exits non-zero with the server's reason.
func runSay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var config, room, as, server string
	fset := newFlagSet("say", "[-config FILE] -room R [-as NAME] TEXT", stderr)
	fset.StringVar(&config, "config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	fset.StringVar(&room, "room", "", "the room to post to (required)")
	fset.StringVar(&as, "as", "", `the name the message is shown under (default "server"; a label: no member needs it)`)
	fset.StringVar(&server, "server", "", "address (host:port) of the running server's admin API (default: [admin] listen if set, else [server] listen)")
	// The text is the arguments after the flags: parse without
	// parseFlags, which refuses arguments, but print errors the same way.
	out, usageFn := fset.Output(), fset.Usage
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	err := fset.Parse(args)
	fset.SetOutput(out)
	fset.Usage = usageFn
	if err != nil {
		return newUsageError(fset, err)
	}
	text := strings.Join(fset.Args(), " ")
	switch {
	case room == "":
		return newUsageError(fset, fmt.Errorf("-room is required"))
	case strings.TrimSpace(text) == "":
		return newUsageError(fset, fmt.Errorf("no text to say"))
	}
	if err := checkRoomName(room); err != nil {
		return fmt.Errorf("-room: %w", err)
	}
	cfg, err := loadConfig(config)
	if err != nil {
		return err
	}
	if cfg.Admin.Token == "" {
		return fmt.Errorf("the admin API is off ([admin] token is empty in the config): set the token and restart the server")
	}
	addr := server
	if addr == "" && cfg.Admin.Listen != "" {
		addr = cfg.Admin.Listen
	}
	base, err := apiBase(cfg, addr)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(struct {
		Text string `json:"text"`
		As   string `json:"as,omitempty"`
	}{text, as})
	u := base + "/api/rooms/" + url.PathEscape(room) + "/messages"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: apiTimeout}).Do(req)
	if err != nil && ctx.Err() != nil {
		return interrupted(ctx)
	}
	if err != nil {
		return fmt.Errorf("post to the running server: %w (is its admin API at %s? give its address with -server HOST:PORT)", err, base)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	var a struct {
		Room  string `json:"room"`
		ID    uint64 `json:"id"`
		Time  string `json:"time"`
		Error string `json:"error"`
	}
	jerr := json.Unmarshal(raw, &a)
	switch {
	case resp.StatusCode == http.StatusCreated && jerr == nil:
		_, err := fmt.Fprintf(stdout, "%s %d %s\n", escapeLine(a.Room), a.ID, escapeLine(a.Time))
		return err
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("refused: %s: the server refused the [admin] token of this config (does it run with another config?)", resp.Status)
	case jerr == nil && a.Error != "":
		return fmt.Errorf("refused: %s: %s", resp.Status, a.Error)
	default:
		return fmt.Errorf("POST %s: %s: not a moonchat answer: %.200q", u, resp.Status, raw)
	}
}
