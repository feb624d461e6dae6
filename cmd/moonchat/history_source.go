package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// historySource is where `moonchat history` reads: the store file itself
// (server stopped) or a running server's HTTP API (which holds the file).
// Both answer the same two questions, and readHistory builds every answer
// from them with the same code, so that the same flags give the same
// answer with the server up or down.
type historySource interface {
	// rooms lists every room that has ever stored a message, by name.
	rooms(ctx context.Context) ([]store.RoomInfo, error)
	// query answers q for the one room q.Room: its newest q.Limit
	// matches, oldest first, and whether older matches exist.
	query(ctx context.Context, q store.Query) ([]chat.Message, bool, error)
}

// fileSource reads the store file.
type fileSource struct{ db *store.DB }

// rooms lists the rooms of the file — not the direct conversations,
// which store.DB.Rooms lists with them (for its maintenance) and which
// plain `moonchat history` must never show (only -direct reads them).
func (s fileSource) rooms(ctx context.Context) ([]store.RoomInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, interrupted(ctx)
	}
	all, err := s.db.Rooms()
	return slices.DeleteFunc(all, func(r store.RoomInfo) bool { return chat.IsConversation(r.Name) }), err
}

func (s fileSource) query(ctx context.Context, q store.Query) ([]chat.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, interrupted(ctx)
	}
	return s.db.Query(q)
}

// errNoRoom says that a room has no history, and how to find the rooms.
func errNoRoom(room string) error {
	return fmt.Errorf("no room %q in the history: no message was ever stored there (`moonchat history -rooms` lists the rooms)", room)
}

// interrupted is the error of a command stopped by SIGINT/SIGTERM.
func interrupted(ctx context.Context) error {
	return fmt.Errorf("interrupted (%v)", context.Cause(ctx))
}

// readHistory answers q from src. A room must exist (errNoRoom otherwise).
// Without a room it asks every room for its newest q.Limit matches and
// keeps the newest q.Limit of them all, ordered by time (to the
// millisecond, as printed and as the HTTP API gives it), then room, then
// id; older matches exist when any room had more, or the rooms together
// had more than q.Limit.
func readHistory(ctx context.Context, src historySource, q store.Query) ([]chat.Message, bool, error) {
	// The API gives times to the millisecond: a -since between two
	// milliseconds would cut differently there than in the file.
	q.Since = q.Since.Truncate(time.Millisecond)
	rooms, err := src.rooms(ctx)
	if err != nil {
		return nil, false, err
	}
	if q.Room != "" {
		if !slices.ContainsFunc(rooms, func(r store.RoomInfo) bool { return r.Name == q.Room }) {
			return nil, false, errNoRoom(q.Room)
		}
		return src.query(ctx, q)
	}
	var all []chat.Message
	more := false
	for _, r := range rooms {
		rq := q
		rq.Room = r.Name
		msgs, m, err := src.query(ctx, rq)
		if err != nil {
			return nil, false, err
		}
		all = append(all, msgs...)
		more = more || m
	}
	slices.SortStableFunc(all, func(a, b chat.Message) int {
		return cmp.Or(a.Time.Truncate(time.Millisecond).Compare(b.Time.Truncate(time.Millisecond)),
			cmp.Compare(a.Room, b.Room), cmp.Compare(a.ID, b.ID))
	})
	if len(all) > q.Limit {
		all, more = all[len(all)-q.Limit:], true
	}
	return all, more, nil
}
