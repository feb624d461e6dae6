// Package moonchat holds the built-in defaults of the moonchat binary: the
// shipped config.toml and the default Lua scripts, embedded so that the
// binary runs anywhere and the files in the repository are the one source
// of truth (there is no second copy of the defaults in Go code).
//
// The server itself lives in the packages below this one (core/ws,
// core/chat, scripting, store) and the binary in cmd/moonchat.
package moonchat

import (
	_ "embed"
)

//go:embed config.toml
var defaultConfig []byte

// DefaultConfig returns the shipped config.toml: every key, documented, with
// its default value. The result is a fresh copy that the caller may modify.
func DefaultConfig() []byte {
	return append([]byte(nil), defaultConfig...)
}
