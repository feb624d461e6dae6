package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// runVersion is "moonchat version": the module version and the VCS
// revision the binary was built from, as the Go toolchain recorded them.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("version", "", stderr)
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	info, ok := debug.ReadBuildInfo()
	_, err := io.WriteString(stdout, versionText(info, ok))
	return err
}

// versionText renders build information. Every piece can be missing: a
// binary built without module support has no info at all, `go build` in a
// checkout reports the version "(devel)", and without VCS stamping
// (-buildvcs=false, no git, a source tarball) there is no revision.
func versionText(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "moonchat: no build information (built without Go module support)\n"
	}
	var b strings.Builder
	version := info.Main.Version
	if version == "" {
		version = "(unknown)"
	}
	path := info.Main.Path
	if path == "" {
		path = "moonchat"
	}
	fmt.Fprintf(&b, "%s %s\n", path, version)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		line := "revision: " + rev
		if settings["vcs.modified"] == "true" {
			line += " (with uncommitted changes)"
		}
		if t := settings["vcs.time"]; t != "" {
			line += ", committed " + t
		}
		b.WriteString(line + "\n")
	} else {
		b.WriteString("revision: unknown (built without VCS information, e.g. with -buildvcs=false or outside a git checkout)\n")
	}
	if info.GoVersion != "" {
		fmt.Fprintf(&b, "go: %s\n", info.GoVersion)
	}
	return escapeText(b.String())
}
