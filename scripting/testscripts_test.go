package scripting

import (
	"context"
	"testing"
	"testing/fstest"
)

// TestTestScriptsNotLoaded: a script's test (NAME_test.lua) beside it is
// never loaded — not by New, nor by Check — so that its chat.testing
// calls and handlers never reach the server.
func TestTestScriptsNotLoaded(t *testing.T) {
	fsys := fstest.MapFS{
		"who.lua":      {Data: []byte(`chat.command("who", function() return "x" end)`)},
		"who_test.lua": {Data: []byte(`chat.command("hidden", function() end); error("loaded a test")`)},
	}
	e, err := New(context.Background(), Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if cmds := e.Commands(); len(cmds) != 1 || cmds[0].Name != "who" {
		t.Errorf("commands %v, want who alone", cmds)
	}
	if err := Check(context.Background(), fsys, nil, nil); err != nil {
		t.Errorf("Check: %v", err)
	}
	if !IsTestScript("who_test.lua") || IsTestScript("who.lua") || IsTestScript("latest.lua") {
		t.Error("IsTestScript")
	}
}
