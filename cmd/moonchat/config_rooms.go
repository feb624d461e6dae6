package main

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/moonchat/moonchat/core/chat"
)

// Room permission rules: [rooms."PATTERN"] tables (defaults/config.toml,
// core/chat/access.go). Config.Rooms holds them as the decoder gives them,
// like [scripts.NAME], because their names are patterns, not fields; this
// file checks each table's keys and values, fills in what a table leaves
// out from chat.DefaultRoomRule and builds the chat.RoomRules that
// chatConfig hands on (roomRules).

// roomTable lists the keys of a [rooms."PATTERN"] table and their types
// (the schema checkValue and suggest use); values are read from the
// decoded map.
type roomTable struct {
	Read     []string `toml:"read"`
	Post     []string `toml:"post"`
	Moderate []string `toml:"moderate"`
	History  bool     `toml:"history"`
}

// roomKey names a rooms table, or one of its keys, in messages:
// [rooms."team-*"] read. The pattern is always quoted, as it must be in
// the file as soon as it holds a glob character or a dot.
func roomKey(pattern, key string) string {
	name := fmt.Sprintf("[rooms.%q]", pattern)
	if key != "" {
		name += " " + key
	}
	return name
}

// buildRoomRules checks the [rooms."PATTERN"] tables and returns their
// rules (nil when there are none: every room open, as before rules
// existed). Each problem is reported through fail, naming its key; a table
// with a problem is left out of the result, which matters only to a
// caller that ignores fail.
func buildRoomRules(tables map[string]map[string]any, fail func(key, format string, args ...any)) *chat.RoomRules {
	if len(tables) == 0 {
		return nil
	}
	keys := schemaOf(reflect.TypeFor[roomTable]())
	var rules []chat.RoomRule
	for _, pattern := range slices.Sorted(maps.Keys(tables)) {
		table := tables[pattern]
		ok := true
		bad := func(key, format string, args ...any) {
			fail(roomKey(pattern, key), format, args...)
			ok = false
		}
		if err := chat.ValidRoomPattern(pattern); err != nil {
			bad("", "%v", err)
		}
		r := chat.DefaultRoomRule(pattern)
		lists := map[string]*[]string{"read": &r.Read, "post": &r.Post, "moderate": &r.Moderate}
		for _, name := range slices.Sorted(maps.Keys(table)) {
			v := table[name]
			ft, known := keys.field(name)
			if !known {
				if _, isTable := v.(map[string]any); isTable {
					bad("", "unknown key %s: a table inside a rooms table; a pattern with a dot must be quoted: [rooms.%q]", name, pattern+"."+name)
				} else {
					bad("", "unknown key %s%s", name, suggest(name, keys.names))
				}
				continue
			}
			if msg := checkValue(v, ft); msg != "" {
				bad(name, "%s", msg)
				continue
			}
			if name == "history" {
				r.History = v.(bool)
				continue
			}
			var roles []string
			for _, e := range v.([]any) {
				roles = append(roles, e.(string))
			}
			if err := chat.CheckRoles(roles); err != nil {
				bad(name, "%v", err)
				continue
			}
			*lists[name] = roles // [] (nil here) allows nobody
		}
		if ok {
			rules = append(rules, r)
		}
	}
	rr, err := chat.NewRoomRules(rules)
	if err != nil {
		// Every rule was checked above; report whatever slipped through.
		fail("[rooms]", "%v", err)
		return nil
	}
	return rr
}

// roomRules returns the room rules of cfg for chat.Config. The config was
// validated when it was loaded; should a table still be invalid (a Config
// built without loadConfig), the answer is a rule that lets nobody read or
// post anywhere rather than rooms open that the file closes (fail closed).
func roomRules(cfg *Config) *chat.RoomRules {
	failed := false
	rr := buildRoomRules(cfg.Rooms, func(string, string, ...any) { failed = true })
	if !failed {
		return rr
	}
	closed, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "*"}})
	if err != nil {
		panic("a rule of empty lists for \"*\" is valid: " + err.Error())
	}
	return closed
}
