package defaults

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/scripting/scripttest"
)

// TestScriptTests runs every default and example script's _test.lua
// (what `moonchat script test defaults/scripts defaults/scripts/examples`
// runs), so that make test runs them: one failure fails this test, with
// the runner's own lines.
func TestScriptTests(t *testing.T) {
	var out bytes.Buffer
	res, err := scripttest.Run(context.Background(), []string{"scripts", "scripts/examples"}, scripttest.Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed > 0 || res.Passed == 0 {
		t.Fatalf("script tests: %d passed, %d failed:\n%s", res.Passed, res.Failed, out.String())
	}
	t.Logf("%s", strings.TrimSpace(out.String()))
}

// TestEveryDefaultScriptHasATest: each scripts/NAME.lua (and
// scripts/examples/NAME.lua) ships NAME_test.lua beside it, and no test is
// left without its script.
func TestEveryDefaultScriptHasATest(t *testing.T) {
	for _, fsys := range []fs.FS{Scripts(), Examples()} {
		everyScriptHasATest(t, fsys)
	}
}

func everyScriptHasATest(t *testing.T, fsys fs.FS) {
	t.Helper()
	names, err := fs.Glob(fsys, "*.lua")
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	scripts := 0
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, "_test.lua"); ok {
			if !has[base+".lua"] {
				t.Errorf("%s tests no script (%s.lua does not exist)", n, base)
			}
			continue
		}
		scripts++
		if test := strings.TrimSuffix(n, ".lua") + "_test.lua"; !has[test] {
			t.Errorf("%s has no test: write scripts/%s", n, test)
		}
	}
	if scripts == 0 {
		t.Fatal("no default scripts")
	}
}

// TestBrokenScriptFailsTests: the tests catch real breakage. A copy of
// the default scripts with wordfilter.lua filtering nothing, /who
// forgetting the room's size and nick.lua failing to compile fails the
// runner, on the lines of the tests that see it; the intact copy passes.
func TestBrokenScriptFailsTests(t *testing.T) {
	dir := t.TempDir()
	copyScripts := func(edit map[string][2]string) {
		t.Helper()
		names, _ := fs.Glob(Scripts(), "*.lua")
		for _, n := range names {
			src, err := fs.ReadFile(Scripts(), n)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := edit[n]; ok {
				if !bytes.Contains(src, []byte(e[0])) {
					t.Fatalf("%s has no %q to break", n, e[0])
				}
				src = bytes.Replace(src, []byte(e[0]), []byte(e[1]), 1)
			}
			if err := os.WriteFile(filepath.Join(dir, n), src, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func() (scripttest.Result, string) {
		var out bytes.Buffer
		res, err := scripttest.Run(context.Background(), []string{dir}, scripttest.Options{Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		return res, out.String()
	}

	copyScripts(nil)
	if res, out := run(); res.Failed != 0 {
		t.Fatalf("intact copy: %d failed:\n%s", res.Failed, out)
	}

	copyScripts(map[string][2]string{
		"wordfilter.lua": {`string.rep("*", #word)`, `word`},
		"who.lua":        {`return #names .. " in "`, `return "in "`},
		"nick.lua":       {`local given, err`, `local given, err,`},
	})
	res, out := run()
	if res.Failed == 0 {
		t.Fatalf("broken scripts: every test passed:\n%s", out)
	}
	for _, want := range []string{
		filepath.Join(dir, "wordfilter_test.lua") + ":7: listed words become asterisks, whatever their case: expect_broadcast: no line in lobby \"alice: well **** it, ****\"",
		filepath.Join(dir, "who_test.lua") + ":9: /who lists the room's members in join order: expect_send",
		"nick_test.lua",
		"nick.lua:13",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, " failed\n") || strings.HasSuffix(out, " 0 failed\n") {
		t.Errorf("summary: %q", out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\n')+1:])
	}
}
