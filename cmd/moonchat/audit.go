package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// auditFlags are the flags of "moonchat audit".
type auditFlags struct {
	config string
	room   string
	since  string
	limit  int
	json   bool
	server string
}

// runAudit is "moonchat audit": print the moderation audit log (issue 14).
//
// Like `moonchat history`, it reads the store file (read-only) when no
// server runs, and asks a running server's GET /api/audit (with the
// [admin] token) when one holds the file. A cluster node's config reads
// the cluster's audit log through the running node's local socket
// (auditFromCluster; -server: its admin API). All answer the same question
// (the newest -limit entries at or after -since, oldest first), so the
// same flags print the same lines either way.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f auditFlags
	fset := newFlagSet("audit", "[flags]", stderr)
	fset.StringVar(&f.config, "config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	fset.StringVar(&f.room, "room", "", "only this room's entries (default: every room, and actions on every room)")
	fset.StringVar(&f.since, "since", "", `only entries from this time on: RFC 3339 ("2026-11-22T10:00:00Z"), a date ("2026-11-22"), or a duration ago ("2h")`)
	fset.IntVar(&f.limit, "limit", 100, "print at most this many entries (the newest ones; at most [chat] api_limit)")
	fset.BoolVar(&f.json, "json", false, "print one JSON object per line (as GET /api/audit gives them)")
	fset.StringVar(&f.server, "server", "", "address (host:port) of the running server's admin API (default: [admin] listen if set, else [server] listen)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if f.limit < 1 {
		return newUsageError(fset, fmt.Errorf("-limit %d: must be at least 1", f.limit))
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if f.room != "" {
		if err := checkRoomName(f.room); err != nil {
			return fmt.Errorf("-room: %w", err)
		}
	}
	var since time.Time
	if f.since != "" {
		if since, err = parseSince(f.since, time.Now()); err != nil {
			return err
		}
	}
	// A running server answers at most its api_limit entries: the file
	// is read with the same bound, so that both give the same answer.
	limit := f.limit
	if limit > cfg.Chat.APILimit {
		limit = cfg.Chat.APILimit
		fmt.Fprintf(stderr, "audit: -limit %d is above [chat] api_limit; printing at most %d entries\n", f.limit, limit)
	}

	var entries []chat.AuditEntry
	if cfg.Cluster.enabled() && f.server == "" {
		// The cluster's log is in NATS, not in this node's store file
		// (a replica of the rooms' messages only): the running node
		// reads it (cluster_shared.go).
		entries, err = auditFromCluster(ctx, cfg, &f, since, limit)
	} else if cfg.Store.Path == "" {
		// No store: a running server keeps the log in its memory.
		entries, err = auditFromServer(ctx, cfg, &f, since, limit, stderr, "[store] path is empty, so the audit log lives in the running server's memory")
	} else {
		opts := storeOptions(cfg, nil, true)
		opts.LockTimeout = historyLockWait
		db, oerr := store.OpenReadOnly(cfg.Store.Path, opts)
		switch {
		case oerr == nil:
			entries, err = db.Audit(f.room, since, limit)
			if cerr := db.Close(); err == nil && cerr != nil {
				err = cerr
			}
		case errors.Is(oerr, store.ErrLocked):
			entries, err = auditFromServer(ctx, cfg, &f, since, limit, stderr, cfg.Store.Path+" is in use by a running server")
		case errors.Is(oerr, store.ErrNotExist):
			return fmt.Errorf("%w (nothing has been stored yet, or [store] path points elsewhere)", oerr)
		default:
			return explainStoreError(oerr)
		}
	}
	if err != nil {
		return err
	}
	if err := printAudit(stdout, entries, f.json); err != nil {
		return err
	}
	if len(entries) == limit {
		fmt.Fprintf(stderr, "audit: %d entries printed; older ones may exist (narrow with -since, or raise -limit)\n", limit)
	}
	return nil
}

// auditFromCluster reads a cluster's audit log through the running
// node's local socket (GET /cluster/audit): the same trust as reading a
// single node's store file, no admin token needed.
func auditFromCluster(ctx context.Context, cfg *Config, f *auditFlags, since time.Time, limit int) ([]chat.AuditEntry, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if f.room != "" {
		q.Set("room", f.room)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	var a apiAudit
	if err := localGet(ctx, localSocketPath(cfg), "/cluster/audit", q, &a); err != nil {
		if errors.Is(err, errNoLocalSocket) {
			return nil, fmt.Errorf("%w\n%s is a cluster node: the cluster's audit log is kept in NATS (stream %s_audit), and `moonchat audit` reads it through this node's running server; "+
				"start it, run `moonchat audit` with the config of a running node, or give a node's admin API with -server HOST:PORT", err, cfg.Source, cfg.Cluster.Stream)
		}
		return nil, err
	}
	out := make([]chat.AuditEntry, len(a.Entries))
	for i, e := range a.Entries {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return nil, fmt.Errorf("local socket: audit entry %d: time %q: %w", i, e.Time, err)
		}
		out[i] = chat.AuditEntry{Time: t, Room: e.Room, By: e.By, Action: e.Action, Target: e.Target, Reason: e.Reason}
	}
	return out, nil
}

// auditFromServer asks the running server's GET /api/audit, saying on
// stderr why and where.
func auditFromServer(ctx context.Context, cfg *Config, f *auditFlags, since time.Time, limit int, stderr io.Writer, why string) ([]chat.AuditEntry, error) {
	if cfg.Admin.Token == "" {
		return nil, fmt.Errorf("%s, and its audit log is read through the admin API, which is off ([admin] token is empty): set the token and restart it, or stop it to read the file", why)
	}
	addr := f.server
	if addr == "" && cfg.Admin.Listen != "" {
		addr = cfg.Admin.Listen
	}
	base, err := apiBase(cfg, addr)
	if err != nil {
		return nil, fmt.Errorf("%s, but %w", why, err)
	}
	fmt.Fprintf(stderr, "audit: %s; reading through its admin API at %s\n", why, base)
	return fetchAudit(ctx, &http.Client{Timeout: apiTimeout}, base, cfg.Admin.Token, f.room, since, limit)
}

// apiAudit is the body of GET /api/audit (docs/protocol.md).
type apiAudit struct {
	Entries []jsonAudit `json:"entries"`
	Error   string      `json:"error"`
}

// jsonAudit is one audit entry as GET /api/audit gives it and -json
// prints it.
type jsonAudit struct {
	Time   string `json:"time"`
	Room   string `json:"room"`
	By     string `json:"by"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// fetchAudit reads up to limit entries of room at or after since from a
// running server's GET /api/audit.
func fetchAudit(ctx context.Context, hc *http.Client, base, token, room string, since time.Time, limit int) ([]chat.AuditEntry, error) {
	v := url.Values{"limit": {strconv.Itoa(limit)}}
	if room != "" {
		v.Set("room", room)
	}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	u := base + "/api/audit?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil && ctx.Err() != nil {
		return nil, interrupted(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("ask the running server: %w (is its admin API at %s? give its address with -server HOST:PORT)", err, base)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var a apiAudit
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("GET %s: %s: not a moonchat audit log: %.200q", u, resp.Status, body)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("GET %s: %s: the server refused the [admin] token of this config (does it run with another config?)", u, resp.Status)
	default:
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, a.Error)
	}
	out := make([]chat.AuditEntry, len(a.Entries))
	for i, e := range a.Entries {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return nil, fmt.Errorf("GET %s: entry %d: time %q: %w", u, i, e.Time, err)
		}
		out[i] = chat.AuditEntry{Time: t, Room: e.Room, By: e.By, Action: e.Action, Target: e.Target, Reason: e.Reason}
	}
	return out, nil
}

// printAudit prints entries one per line, "TIME ROOM BY ACTION TARGET:
// REASON" (ROOM "*" for an action on every room, TARGET "-" when there is
// none, ": REASON" only when there is one), or as JSON lines. Every field
// but the time comes from users or moderators: escapeLine and escapeJSON
// keep terminal controls visible and inert, and each entry on one line.
func printAudit(stdout io.Writer, entries []chat.AuditEntry, asJSON bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		ts := e.Time.UTC().Format(timeLayout)
		if asJSON {
			buf.Reset()
			if err := enc.Encode(jsonAudit{Time: ts, Room: e.Room, By: e.By, Action: e.Action, Target: e.Target, Reason: e.Reason}); err != nil {
				return err
			}
			if _, err := stdout.Write(escapeJSON(buf.Bytes())); err != nil {
				return err
			}
			continue
		}
		room, target := escapeLine(e.Room), escapeLine(e.Target)
		if room == "" {
			room = "*"
		}
		if target == "" {
			target = "-"
		}
		line := ts + " " + room + " " + escapeLine(e.By) + " " + escapeLine(e.Action) + " " + target
		if e.Reason != "" {
			line += ": " + escapeLine(e.Reason)
		}
		if _, err := io.WriteString(stdout, line+"\n"); err != nil {
			return err
		}
	}
	return nil
}
