package scripttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moonchat/moonchat/scripting"
	lua "github.com/yuin/gopher-lua"
)

// Failure is one failed expectation, or a test that stopped with an
// error, at the test file's line.
type Failure struct {
	File string // the test file, as given to Run
	Line int    // 0 when unknown
	Test string // the test's name
	Msg  string
}

// String is the one line `moonchat script test` prints for it:
// "FILE:LINE: TEST: MESSAGE".
func (f Failure) String() string {
	pos := f.File
	if f.Line > 0 {
		pos = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return pos + ": " + f.Test + ": " + f.Msg
}

// Result is the outcome of Run: tests counted, every failure in order.
type Result struct {
	Passed, Failed int
	Failures       []Failure
}

// Options tune Run.
type Options struct {
	// Out receives the report: a line per failure, with -v a line per
	// passed test, and the summary. nil: nothing is printed.
	Out io.Writer
	// Verbose prints "ok FILE: TEST" for each passed test.
	Verbose bool
	// TestTimeout bounds one test (0: 30s): a test that loops for ever
	// fails instead of hanging the run.
	TestTimeout time.Duration
}

// ErrNoTests is returned by Run when the paths hold no test file.
var ErrNoTests = errors.New("no *_test.lua files found")

// Files lists the test files of paths: a directory gives its
// *_test.lua files (not its subdirectories'), a test file itself, and a
// script NAME.lua its NAME_test.lua.
func Files(paths []string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		switch {
		case fi.IsDir():
			m, err := filepath.Glob(filepath.Join(p, "*_test.lua"))
			if err != nil {
				return nil, err
			}
			sort.Strings(m)
			out = append(out, m...)
		case strings.HasSuffix(p, "_test.lua"):
			out = append(out, p)
		case strings.HasSuffix(p, ".lua"):
			t := strings.TrimSuffix(p, ".lua") + "_test.lua"
			if _, err := os.Stat(t); err != nil {
				return nil, fmt.Errorf("%s has no test: %s not found", p, t)
			}
			out = append(out, t)
		default:
			return nil, fmt.Errorf("%s: not a directory or a .lua file", p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoTests, strings.Join(paths, " "))
	}
	return out, nil
}

// Run runs the test files of paths (see Files) and prints, in the style
// of go test, one line per failure (Failure.String), then
// "N passed, N failed". The error is for what kept tests from running
// (no files, ctx cancelled), not for failures: Result says those.
func Run(ctx context.Context, paths []string, o Options) (Result, error) {
	var res Result
	files, err := Files(paths)
	if err != nil {
		return res, err
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		RunFile(ctx, f, o, &res)
	}
	fmt.Fprintf(out, "%d passed, %d failed\n", res.Passed, res.Failed)
	return res, nil
}

// RunFile runs one test file into res, printing as Run does (without the
// summary). A file that calls test(name, fn) has one test per call; one
// that does not is one test, its top level, named after the file.
func RunFile(ctx context.Context, path string, o Options, res *Result) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	timeout := o.TestTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	name := filepath.Base(path)
	lt := &luaTest{ctx: ctx, fsys: os.DirFS(filepath.Dir(path)), file: name}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, g := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module"} {
		L.SetGlobal(g, lua.LNil)
	}
	lt.install(L)
	type test struct {
		name string
		fn   *lua.LFunction
		at   string
	}
	var tests []test
	L.SetGlobal("test", L.NewFunction(func(L *lua.LState) int {
		tests = append(tests, test{L.CheckString(1), L.CheckFunction(2), where(L)})
		return 0
	}))

	report := func(testName string, fails []Failure) {
		if len(fails) == 0 {
			res.Passed++
			if o.Verbose {
				fmt.Fprintf(out, "ok   %s: %s\n", path, testName)
			}
			return
		}
		res.Failed++
		for _, f := range fails {
			f.File = fixFile(f.File, path)
			res.Failures = append(res.Failures, f)
			fmt.Fprintf(out, "FAIL %s\n", f)
		}
	}
	// run calls fn under the time limit, then checks for script errors
	// nobody expected and closes the test's servers.
	run := func(testName string, fn func() error) []Failure {
		lt.name, lt.fails = testName, nil
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		L.SetContext(tctx)
		err := fn()
		L.RemoveContext()
		if err != nil {
			lt.failAt(errorWhere(err, name), "%s", errorText(err, tctx))
		}
		lt.unmatchedErrors()
		lt.closeServers()
		return lt.fails
	}

	src, err := os.ReadFile(path)
	if err != nil {
		report(name, []Failure{{File: path, Test: name, Msg: err.Error()}})
		return
	}
	// As the engine compiles scripts: a tail-call loop in a test fails at
	// once (stack overflow) instead of running to the test's time limit
	// and leaving gopher-lua a traceback line per tail call to build
	// (measured: 0.9 GB for a 1 s limit; the default is 30 s).
	chunk, err := scripting.Compile(L, strings.NewReader(string(src)), name)
	if err != nil {
		report(name, []Failure{{File: path, Test: name, Msg: "does not compile: " + err.Error()}})
		return
	}
	fails := run(name, func() error {
		L.Push(chunk)
		return L.PCall(0, 0, nil)
	})
	if len(tests) == 0 || len(fails) > 0 {
		// No test() calls: the top level is the test. A top level that
		// failed is reported as itself either way.
		report(name, fails)
		if len(fails) > 0 {
			return
		}
	}
	for _, t := range tests {
		if ctx.Err() != nil {
			return
		}
		fails := run(t.name, func() error {
			L.Push(t.fn)
			return L.PCall(0, 0, nil)
		})
		report(t.name, fails)
	}
}

// fixFile names failures by the path the user gave (Lua knows the file
// by its base name).
func fixFile(file, path string) string {
	if file == filepath.Base(path) || file == "" {
		return path
	}
	return file
}

// errorWhere is the file:line of a Lua error in the test file: the
// innermost frame of the test file in the traceback.
func errorWhere(err error, file string) string {
	var ae *lua.ApiError
	msg := err.Error()
	if errors.As(err, &ae) {
		if ae.Object != nil {
			msg = ae.Object.String()
		}
		if at, _, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(at, file+":") {
			return at
		}
		for _, line := range strings.Split(ae.StackTrace, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, file+":") {
				at, _, _ := strings.Cut(line, ": ")
				return at
			}
		}
	}
	if at, _, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(at, file+":") {
		return at
	}
	return file
}

// errorText is a Lua error's message without its position.
func errorText(err error, ctx context.Context) string {
	if ctx.Err() != nil {
		return "test stopped: " + context.Cause(ctx).Error()
	}
	var ae *lua.ApiError
	msg := err.Error()
	if errors.As(err, &ae) && ae.Object != nil {
		msg = ae.Object.String()
	}
	if at, rest, ok := strings.Cut(msg, ": "); ok && strings.Contains(at, ".lua:") {
		msg = rest
	}
	return "error: " + msg
}
