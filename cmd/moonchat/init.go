package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moonchat/moonchat/defaults"
	"github.com/moonchat/moonchat/scripting"
)

// runInit is "moonchat init": write a starter config.toml (every key of
// the built-in defaults, commented out) and a scripts directory holding
// copies of the built-in scripts (and, in scripts/examples/, of the
// example scripts, which do not run from there) into -dir, so that a user has files to
// edit that are theirs and not the binary's defaults.
//
// It never overwrites: when config.toml or the scripts directory already
// exists, it writes nothing and says which is in the way. (An existing
// scripts directory is not merged into either: it already replaces the
// built-in scripts, and adding files to it would change what runs.)
func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("init", "[-dir DIR]", stderr)
	dir := fset.String("dir", ".", "directory to write config.toml and scripts/ into (created if missing)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	cfgPath := filepath.Join(*dir, defaultConfigFile)
	scriptsDir := filepath.Join(*dir, "scripts")
	var inTheWay []string
	for _, p := range []string{cfgPath, scriptsDir} {
		if _, err := os.Lstat(p); err == nil {
			inTheWay = append(inTheWay, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if len(inTheWay) > 0 {
		return fmt.Errorf("%s already exist(s): init never overwrites, so it wrote nothing "+
			"(move them away, or write elsewhere with -dir DIR)", strings.Join(inTheWay, " and "))
	}

	names, err := fs.Glob(defaults.Scripts(), "*.lua")
	if err != nil {
		return fmt.Errorf("built-in scripts: %w", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// Create both with O_EXCL / Mkdir, which fail if something appeared
	// since the check above; on any failure remove what this run created.
	var created []string
	undo := func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i])
		}
	}
	// 0600: once edited, config.toml may hold [auth] jwt_secret and
	// [admin] token, which mint tokens and run the admin API.
	if err := writeNew(cfgPath, defaults.StarterConfig(), 0o600); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	created = append(created, cfgPath)
	if err := os.Mkdir(scriptsDir, 0o755); err != nil {
		undo()
		return fmt.Errorf("init: %w", err)
	}
	created = append(created, scriptsDir)
	for _, name := range names {
		src, err := fs.ReadFile(defaults.Scripts(), name)
		if err == nil {
			err = writeNew(filepath.Join(scriptsDir, name), src, 0o644)
		}
		if err != nil {
			undo()
			return fmt.Errorf("init: script %s: %w", name, err)
		}
		created = append(created, filepath.Join(scriptsDir, name))
	}
	// The example scripts go one level down, where they do not run.
	examples, err := fs.Glob(defaults.Examples(), "*.lua")
	if err != nil {
		undo()
		return fmt.Errorf("built-in examples: %w", err)
	}
	examplesDir := filepath.Join(scriptsDir, "examples")
	if len(examples) > 0 {
		if err := os.Mkdir(examplesDir, 0o755); err != nil {
			undo()
			return fmt.Errorf("init: %w", err)
		}
		created = append(created, examplesDir)
	}
	for _, name := range examples {
		src, err := fs.ReadFile(defaults.Examples(), name)
		if err == nil {
			err = writeNew(filepath.Join(examplesDir, name), src, 0o644)
		}
		if err != nil {
			undo()
			return fmt.Errorf("init: example %s: %w", name, err)
		}
		created = append(created, filepath.Join(examplesDir, name))
	}

	fmt.Fprintf(stdout, "wrote %s: every setting commented out, so the built-in defaults apply until you uncomment a line\n", cfgPath)
	// The scripts' tests (NAME_test.lua) are copied with them, and said
	// apart: the server never loads them, `moonchat script test` runs them.
	scripts := slices.DeleteFunc(slices.Clone(names), scripting.IsTestScript)
	fmt.Fprintf(stdout, "wrote %s/: %d scripts (%s); this directory now replaces the built-in scripts: edit, add or delete freely\n",
		scriptsDir, len(scripts), strings.Join(scripts, ", "))
	if tests := len(names) - len(scripts); tests > 0 {
		fmt.Fprintf(stdout, "wrote %s/: their %d tests (NAME_test.lua), never loaded by the server: `moonchat script test %s` runs them\n",
			scriptsDir, tests, scriptsDir)
	}
	if len(examples) > 0 {
		// With their tests (NAME_test.lua), which go up with them.
		shown := slices.DeleteFunc(slices.Clone(examples), scripting.IsTestScript)
		withTests := ""
		if n := len(examples) - len(shown); n > 0 {
			withTests = fmt.Sprintf(" and their %d tests", n)
		}
		fmt.Fprintf(stdout, "wrote %s/: %d example scripts (%s)%s, not loaded: copy one up into %s/ to use it\n",
			examplesDir, len(shown), strings.Join(shown, ", "), withTests, scriptsDir)
	}
	if *dir == "." {
		fmt.Fprintln(stdout, "run `moonchat check` to validate them, `moonchat` to serve with them")
	} else {
		fmt.Fprintf(stdout, "run `moonchat check -config %s` to validate them, `moonchat serve -config %s` to serve with them\n", cfgPath, cfgPath)
	}
	return nil
}

// writeNew creates path with data and mode (less the umask); it fails if
// path exists.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
