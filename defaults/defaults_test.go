package defaults

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
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
