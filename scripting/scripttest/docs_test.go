package scripttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// devChapter is docs/lua.md's "Testing a script" section.
func devChapter(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/lua.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n### Testing a script\n")
	j := strings.Index(doc, "\n### Trying a script on history\n")
	if i < 0 || j < i {
		t.Fatal("docs/lua.md has no Testing a script section before Trying a script on history")
	}
	return doc[i:j]
}

// TestDocTestMethods: the section documents every method of a test
// server (t:NAME) and of a user (u:NAME), and nothing else.
func TestDocTestMethods(t *testing.T) {
	doc := devChapter(t)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([tu]):([a-z_]+)[({]").FindAllStringSubmatch(doc, -1) {
		documented[m[1]+":"+m[2]] = true
	}
	lt := &luaTest{}
	want := []string{"u:say", "u:action", "u:direct", "u:leave"}
	for name := range lt.serverMethods() {
		want = append(want, "t:"+name)
	}
	for _, w := range want {
		if !documented[w] {
			t.Errorf("docs/lua.md, Testing a script, does not document `%s(`", w)
		}
	}
	for d := range documented {
		if !slices.Contains(want, d) {
			t.Errorf("docs/lua.md, Testing a script, documents %s, which does not exist", d)
		}
	}
}

// TestDocTestOutput: the section's failing run is what the runner prints
// for the shipped wordfilter_test.lua against a wordfilter.lua whose
// stars are broken.
func TestDocTestOutput(t *testing.T) {
	doc := devChapter(t)
	const cmd = "$ moonchat script test scripts/wordfilter_test.lua\n"
	i := strings.Index(doc, cmd)
	if i < 0 {
		t.Fatal("no example run in docs/lua.md")
	}
	want := doc[i+len(cmd):]
	want = want[:strings.Index(want, "```")]

	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	if err := os.Mkdir(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"wordfilter.lua", "wordfilter_test.lua"} {
		src, err := os.ReadFile(filepath.Join("../../defaults/scripts", n))
		if err != nil {
			t.Fatal(err)
		}
		if n == "wordfilter.lua" {
			src = bytes.Replace(src, []byte(`string.rep("*", #word)`), []byte("word"), 1)
		}
		if err := os.WriteFile(filepath.Join(scripts, n), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	var out bytes.Buffer
	if _, err := Run(context.Background(), []string{"scripts/wordfilter_test.lua"}, Options{Out: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("docs/lua.md shows:\n%s\nthe runner prints:\n%s", want, out.String())
	}
}
