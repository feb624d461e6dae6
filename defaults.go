// Package moonchat holds the built-in defaults of the moonchat binary: the
// shipped config.toml and the default Lua scripts, embedded so that the
// binary runs anywhere and the files in the repository are the one source
// of truth (there is no second copy of the defaults in Go code).
//
// The server itself lives in the packages below this one (core/ws,
// core/chat, scripting, store) and the binary in cmd/moonchat.
package moonchat

import (
	"embed"
	"io/fs"
)

//go:embed config.toml
var defaultConfig []byte

//go:embed scripts/*.lua
var defaultScripts embed.FS

// DefaultConfig returns the shipped config.toml: every key, documented, with
// its default value. It is what the server runs with when there is no
// config file, and what a config file's missing keys default to. The result
// is a fresh copy that the caller may modify.
func DefaultConfig() []byte {
	return append([]byte(nil), defaultConfig...)
}

// DefaultScripts returns the shipped Lua scripts (scripts/*.lua) as a
// read-only file system with the scripts at its top level ("who.lua", ...).
// The server runs them when the configured scripts directory does not exist.
func DefaultScripts() fs.FS {
	sub, err := fs.Sub(defaultScripts, "scripts")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "scripts" is valid.
		panic("moonchat: embedded scripts: " + err.Error())
	}
	return sub
}
