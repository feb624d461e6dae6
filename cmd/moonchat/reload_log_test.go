package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/moonchat/moonchat/scripting"
)

// A SIGHUP reload logs one line (issue 10.10): the engine's, naming the
// cause, in the same format as at start; serve adds nothing.
func TestSIGHUPReloadLogsOneLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	eng, err := scripting.New(t.Context(), scripting.Options{FS: fstest.MapFS{"a.lua": {}, "b.lua": {}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	buf.Reset()
	s := &server{cfg: &Config{Source: builtinSource}, log: log, lua: eng}
	s.reload()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="lua scripts loaded" cause=SIGHUP scripts=a.lua,b.lua`) {
		t.Fatalf("SIGHUP logged:\n%s", buf.String())
	}
}
