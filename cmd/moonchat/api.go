package main

import (
	"context"
	"encoding/json"
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

// apiClient reads history from a running server's GET /api/history
// (docs/protocol.md), for `moonchat history` while the store file is
// locked by that server.
//
// The API pages one room backwards by id and has no filters, so the
// user, grep and since filters are applied here while paging; every loop
// is bounded by apiMaxPages and apiTimeout.
type apiClient struct {
	base string // "http://host:port"
	http *http.Client
}

const (
	apiTimeout  = time.Minute // the whole query
	apiMaxPages = 10000       // at api_limit (500) a page: 5M messages scanned
	apiPageSize = maxAPILimit // the server caps it at its [chat] api_limit
)

// apiPage is the body of GET /api/history.
type apiPage struct {
	Room     string        `json:"room"`
	Complete bool          `json:"complete"`
	More     bool          `json:"more"`
	Messages []jsonMessage `json:"messages"`
	Error    string        `json:"error"`
}

// page fetches up to limit messages of room older than before (0 = the newest).
func (c *apiClient) page(ctx context.Context, room string, before uint64, limit int) (*apiPage, error) {
	v := url.Values{"room": {room}, "limit": {strconv.Itoa(limit)}}
	if before != 0 {
		v.Set("before", strconv.FormatUint(before, 10))
	}
	u := c.base + "/api/history?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client().Do(req)
	if err != nil && ctx.Err() != nil {
		return nil, interrupted(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("ask the running server: %w (is it listening at %s? give its address with -server HOST:PORT)", err, c.base)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var p apiPage
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("GET %s: %s: not a moonchat history answer: %.200q", u, resp.Status, body)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, p.Error)
	}
	return &p, nil
}

// client returns the HTTP client, made on first use.
func (c *apiClient) client() *http.Client {
	if c.http == nil {
		c.http = &http.Client{Timeout: apiTimeout}
	}
	return c.http
}

// rooms lists the rooms with stored history (GET /api/rooms).
func (c *apiClient) rooms(ctx context.Context) ([]store.RoomInfo, error) {
	return fetchRooms(ctx, c.client(), c.base)
}

// query answers q by paging backwards through one room: the newest
// q.Limit matches, oldest first, and whether older matches exist.
func (c *apiClient) query(ctx context.Context, q store.Query) ([]chat.Message, bool, error) {
	c.client()
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	filtered := q.User != "" || q.Grep != "" || !q.Since.IsZero()
	size := q.Limit + 1 // one more tells whether there are more
	if filtered {
		size = apiPageSize
	}
	var out []chat.Message // newest first while collecting
	before := q.Before
	for range apiMaxPages {
		p, err := c.page(ctx, q.Room, before, size)
		if err != nil {
			return nil, false, err
		}
		for i := len(p.Messages) - 1; i >= 0; i-- {
			m, err := p.Messages[i].message()
			if err != nil {
				return nil, false, err
			}
			if !q.Since.IsZero() && m.Time.Before(q.Since) {
				return finish(out, q.Limit)
			}
			if (q.User == "" || m.User == q.User) && (q.Grep == "" || strings.Contains(m.Text, q.Grep)) {
				out = append(out, m)
				if len(out) > q.Limit {
					return finish(out, q.Limit)
				}
			}
		}
		if !p.More || len(p.Messages) == 0 {
			return finish(out, q.Limit)
		}
		before = p.Messages[0].ID
	}
	return nil, false, fmt.Errorf("history of %s: gave up after %d pages; narrow the query (-since, -before)", q.Room, apiMaxPages)
}

// finish turns newest-first matches into the oldest-first newest limit.
func finish(newestFirst []chat.Message, limit int) ([]chat.Message, bool, error) {
	more := len(newestFirst) > limit
	if more {
		newestFirst = newestFirst[:limit]
	}
	slices.Reverse(newestFirst)
	return newestFirst, more, nil
}

// message converts a protocol message object.
func (j jsonMessage) message() (chat.Message, error) {
	t, err := time.Parse(time.RFC3339Nano, j.TS)
	if err != nil {
		return chat.Message{}, fmt.Errorf("message %d: bad ts %q", j.ID, j.TS)
	}
	m := chat.Message{ID: j.ID, Room: j.Room, User: j.User, Text: j.Text, Time: t, Action: j.Action}
	if j.UserID != "" || len(j.Roles) > 0 {
		m.Account = &chat.Account{ID: j.UserID, Roles: j.Roles}
	}
	return m, nil
}
