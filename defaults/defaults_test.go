package defaults

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefaultConfigIsShippedFile(t *testing.T) {
	onDisk, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	got := Config()
	if !bytes.Equal(got, onDisk) {
		t.Fatal("DefaultConfig differs from config.toml")
	}
	got[0] ^= 0xff // callers may modify their copy...
	if !bytes.Equal(Config(), onDisk) {
		t.Fatal("...without changing the embedded defaults")
	}
}

func TestDefaultScriptsAreShippedFiles(t *testing.T) {
	onDisk, err := filepath.Glob("scripts/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(Scripts(), "*.lua")
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk) == 0 || len(embedded) != len(onDisk) {
		t.Fatalf("embedded %v, on disk %v", embedded, onDisk)
	}
	for _, p := range onDisk {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(Scripts(), filepath.Base(p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: embedded copy differs (%v)", p, err)
		}
	}
}

// TestStarterConfig: the starter file keeps every section and every
// comment of the built-in file (after its first paragraph), comments out
// every key line, and uncommenting all of them gives back the built-in
// file's keys and values, line for line.
func TestStarterConfig(t *testing.T) {
	starter := string(StarterConfig())
	if !strings.HasPrefix(starter, starterHeader+"\n") {
		t.Fatalf("starter does not begin with its own header:\n%.300s", starter)
	}
	if strings.Contains(starter, "it is not the file you edit") {
		t.Error("starter keeps the built-in file's first paragraph")
	}
	body := strings.TrimPrefix(starter, starterHeader+"\n")
	_, builtinRest, _ := strings.Cut(string(Config()), "\n\n")
	keys := 0
	var uncommented strings.Builder
	for line := range strings.Lines(body) {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "# ") && trimmed != "#":
			keys++ // "#key = value"
			line = strings.TrimPrefix(line, "#")
		case trimmed != "" && !strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "["):
			t.Errorf("active key line %q: the starter would change a setting", line)
		}
		uncommented.WriteString(line)
	}
	if keys < 20 {
		t.Fatalf("only %d commented key lines", keys)
	}
	if uncommented.String() != builtinRest {
		t.Errorf("uncommenting every key line does not give the built-in file back:\n%s", uncommented.String())
	}
}

// TestUserFilesAreIgnored: a user's ./config.toml and ./scripts at the
// repository root (where `go run ./cmd/moonchat` reads them) are theirs,
// not defaults: git must not pick them up as part of the source.
func TestUserFilesAreIgnored(t *testing.T) {
	ignore, err := os.ReadFile("../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/config.toml", "/scripts/"} {
		if !slices.Contains(strings.Split(string(ignore), "\n"), want) {
			t.Errorf(".gitignore does not list %s", want)
		}
	}
}
