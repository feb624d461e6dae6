// Package defaults holds moonchat's built-in defaults: the documented
// config.toml and the default Lua scripts, embedded into the binary.
//
// These files are the one source of the defaults. They are not the files a
// user edits: the server reads the user's config.toml and scripts directory
// (by default ./config.toml and ./scripts, which `moonchat init` creates),
// and a config file only needs the keys it changes. Editing, adding or
// deleting the user's files therefore never changes what the binary ships.
package defaults

import (
	"embed"
	"io/fs"
)

//go:embed config.toml
var config []byte

//go:embed scripts/*.lua
var scripts embed.FS

// Config returns the built-in config.toml: every key, documented, with its
// default value. The result is a fresh copy that the caller may modify.
func Config() []byte {
	return append([]byte(nil), config...)
}

// Scripts returns the built-in Lua scripts as a read-only file system with
// the scripts at its top level ("who.lua", ...).
func Scripts() fs.FS {
	sub, err := fs.Sub(scripts, "scripts")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "scripts" is valid.
		panic("defaults: embedded scripts: " + err.Error())
	}
	return sub
}
