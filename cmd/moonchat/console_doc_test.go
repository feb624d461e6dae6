package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleDoc: the console sessions docs/lua.md shows ("The console")
// are what the console prints: each "lua> LINE" of the transcript is run
// against a running server with alice in lobby (she said "morning all"),
// and what follows it up to the next prompt must be its output, stdout
// and stderr as the terminal shows them; the piped example too.
func TestConsoleDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/lua.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	m := regexp.MustCompile("(?s)```\n\\$ moonchat console\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/lua.md has no console transcript (a block starting with \"$ moonchat console\")")
	}
	dir := t.TempDir()
	srv := startInProcess(t, testConfig(t, dir, nil))
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.send("morning all")
	alice.waitFor("her message", func(e event) bool { return e.Type == "message" && e.Text == "morning all" })
	cc := openConsole(t, filepath.Join(dir, "moonchat.sock"))

	var line string
	var want []string
	check := func() {
		if line == "" {
			return
		}
		var out bytes.Buffer
		if _, err := cc.run(context.Background(), line, &out, &out); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := strings.Join(want, ""); out.String() != got {
			t.Errorf("docs/lua.md: lua> %s\nprints %q\nthe console prints %q", line, got, out.String())
		}
	}
	lines := strings.SplitAfter(m[1], "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "moonchat console: Lua inside the server (") {
		t.Errorf("the transcript's banner: %q", lines[0])
	}
	for _, l := range lines[1:] {
		if rest, ok := strings.CutPrefix(l, ">>   "); ok && want == nil {
			line += "\n" + strings.TrimSuffix(rest, "\n") // a chunk goes on
			continue
		}
		if rest, ok := strings.CutPrefix(l, "lua> "); ok {
			check()
			line, want = strings.TrimSuffix(rest, "\n"), nil
			continue
		}
		want = append(want, l)
	}
	check()

	pm := regexp.MustCompile("(?s)\\$ echo '([^']*)' \\| moonchat console\n(.*?)\n *```").FindStringSubmatch(doc)
	if pm == nil {
		t.Fatal("docs/lua.md has no piped console example")
	}
	var out, errb bytes.Buffer
	if err := cc.lines(context.Background(), strings.NewReader(pm[1]+"\n"), &out, &errb); err != nil || strings.TrimSpace(out.String()) != strings.TrimSpace(pm[2]) {
		t.Errorf("piped example: %q prints %q (%v %q), docs/lua.md says %q", pm[1], out.String(), err, errb.String(), pm[2])
	}
}
