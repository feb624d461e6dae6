package main

import (
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/moonchat/moonchat", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/moonchat/moonchat", Version: "(devel)"}}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"stamped", stamped, true, "github.com/moonchat/moonchat v1.2.3\n" +
			"revision: 0123456789abcdef0123456789abcdef01234567 (with uncommitted changes), committed 2026-11-30T12:00:00Z\n" +
			"go: go1.26.8\n"},
		{"-buildvcs=false", bare, true, "github.com/moonchat/moonchat (devel)\n" +
			"revision: unknown (built without VCS information, e.g. with -buildvcs=false or outside a git checkout)\n" +
			"go: go1.26.8\n"},
		{"no build info", nil, false, "moonchat: no build information (built without Go module support)\n"},
	} {
		if got := versionText(tc.info, tc.ok); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionCommand: the built binary names its module and says what it
// knows about its revision (GOFLAGS=-buildvcs=false builds have none).
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(moonchatBinary(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		lines := strings.Split(string(out), "\n")
		if !strings.HasPrefix(lines[0], "github.com/moonchat/moonchat ") || len(lines) < 3 || !strings.HasPrefix(lines[1], "revision: ") {
			t.Errorf("%v:\n%s", args, out)
		}
	}
	code, _, stderr := runCmd(t, "version", "extra")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("version extra: code %d stderr %q", code, stderr)
	}
}
