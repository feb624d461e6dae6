// Package defaults holds moonchat's built-in defaults: the documented
// config.toml and the default Lua scripts, embedded into the binary.
//
// These files (defaults/config.toml and defaults/scripts/*.lua in the
// source tree) are the one source of the defaults. They are not the files a
// user edits: the server reads the user's config.toml and scripts directory
// (by default ./config.toml and ./scripts, which `moonchat init` creates
// from StarterConfig and Scripts), and a config file only needs the keys it
// changes. Editing, adding or deleting the user's files therefore never
// changes what the binary ships, breaks the build or fails the tests.
package defaults

import (
	"bytes"
	"embed"
	"io/fs"
)

//go:embed config.toml
var config []byte

//go:embed scripts/*.lua
var scripts embed.FS

// tree is the whole scripts directory, examples/ included: embedding the
// directory (not examples/ itself) builds whether or not examples exist.
//
//go:embed scripts
var tree embed.FS

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

// Examples returns the example scripts (defaults/scripts/examples/*.lua,
// such as accounts.lua) as a read-only file system with the scripts at
// its top level. They are not loaded by default: `moonchat init` copies
// them into scripts/examples/, from where a user copies one up to use it.
func Examples() fs.FS {
	sub, err := fs.Sub(tree, "scripts/examples")
	if err != nil {
		// fs.Sub fails only for an invalid path, and this one is valid.
		panic("defaults: embedded examples: " + err.Error())
	}
	return sub
}

// starterHeader replaces the built-in file's first paragraph (which says
// that it is the built-in default) in the file StarterConfig returns.
const starterHeader = `# moonchat configuration, written by ` + "`moonchat init`" + `.
#
# Every key is listed below with its documentation and its built-in default,
# commented out: as written, this file changes nothing. To change a setting,
# uncomment its line (remove the leading "#") and edit the value; keys left
# commented keep the built-in default, also in later moonchat versions.
# ` + "`moonchat check`" + ` validates this file and the Lua scripts.
`

// StarterConfig returns the config.toml that `moonchat init` writes: the
// built-in file with its first paragraph replaced by starterHeader and
// every key line commented out ("#listen = ..."), so that loading it gives
// exactly the built-in defaults until the user uncomments a line. Section
// headers stay, so an uncommented key lands in its section.
func StarterConfig() []byte {
	// The first paragraph is everything up to the first blank line.
	_, rest, found := bytes.Cut(config, []byte("\n\n"))
	if !found {
		rest = config
	}
	var b bytes.Buffer
	b.WriteString(starterHeader)
	b.WriteString("\n")
	for line := range bytes.Lines(rest) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && t[0] != '[' {
			b.WriteByte('#')
		}
		b.Write(line)
	}
	return b.Bytes()
}
