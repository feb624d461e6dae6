package scripting

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

func writeScript(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tagScript answers every message with its tag appended.
func tagScript(tag string) string {
	return `chat.on("message", function(msg) return msg.text .. "` + tag + `" end)`
}

func newDirRig(t *testing.T, files map[string]string) (*rig, string) {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		writeScript(t, dir, name, src)
	}
	// A generous hook timeout: on a loaded machine (and under -race) a
	// trivial handler can be descheduled long enough to hit 100ms, which
	// would look like a missing handler here.
	r := newRigOpts(t, Options{Dir: dir, PollInterval: 20 * time.Millisecond, HookTimeout: 10 * time.Second})
	r.e.Start(t.Context())
	return r, dir
}

func TestWatchReloadsOnSave(t *testing.T) {
	r, dir := newDirRig(t, map[string]string{"a.lua": tagScript("1"), "notes.txt": "not a script"})
	if got := r.say(alice, "x"); got.Text != "x1" {
		t.Fatalf("got %+v", got)
	}
	writeScript(t, dir, "a.lua", tagScript("22")) // size changes too
	eventually(t, "reload after edit", func() bool { return r.say(alice, "x").Text == "x22" })

	writeScript(t, dir, "b.lua", tagScript("b")) // a new file
	eventually(t, "reload after new file", func() bool { return r.say(alice, "x").Text == "x22b" })

	if err := os.Remove(filepath.Join(dir, "a.lua")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reload after removal", func() bool { return r.say(alice, "x").Text == "xb" })
}

func TestBadReloadKeepsOldScripts(t *testing.T) {
	r, dir := newDirRig(t, map[string]string{"a.lua": tagScript("1"), "b.lua": tagScript("b")})
	// A syntax error in one file and a runtime error in another: both are
	// reported, and the old scripts keep running.
	writeScript(t, dir, "a.lua", "chat.on(\"message\", function(msg)\n  return msg.text ..\nend)")
	writeScript(t, dir, "b.lua", "local x = nil\nx.y = 1")
	eventually(t, "failed reload logged", func() bool {
		log := r.log.String()
		return strings.Contains(log, "lua scripts not reloaded") && strings.Contains(log, "a.lua:3:") && strings.Contains(log, "b.lua:2:")
	})
	if got := r.say(alice, "x"); got.Text != "x1b" {
		t.Fatalf("old scripts not kept: %+v", got)
	}
	err := r.e.Reload("test")
	if err == nil || !strings.Contains(err.Error(), "a.lua:3:") {
		t.Fatalf("Reload() = %v", err)
	}
	// Fixing the files brings the new version in.
	writeScript(t, dir, "a.lua", tagScript("2"))
	writeScript(t, dir, "b.lua", "")
	eventually(t, "reload after fix", func() bool { return r.say(alice, "x").Text == "x2" })
}

func TestReloadWithoutWatching(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "a.lua", tagScript("1"))
	// FS without Dir: no watcher (no clock timer is ever made, so time
	// passing can reload nothing), Reload still rereads the FS.
	clk := newFakeClock()
	r := newRigOpts(t, Options{FS: os.DirFS(dir), Clock: clk})
	r.e.Start(t.Context())
	writeScript(t, dir, "a.lua", tagScript("2"))
	clk.Advance(time.Hour)
	if got := r.say(alice, "x"); got.Text != "x1" || clk.Created() != 0 {
		t.Fatalf("reloaded without watching: %+v (%d clock timers)", got, clk.Created())
	}
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if got := r.say(alice, "x"); got.Text != "x2" {
		t.Fatalf("after Reload: %+v", got)
	}
}

// TestReloadWhileMessagesFlow hammers the hooks from several goroutines
// while the files change (watcher) and Reload runs; every result must come
// from one complete set of scripts — both handlers applied, in order —
// and nothing may race (run with -race).
func TestReloadWhileMessagesFlow(t *testing.T) {
	r, dir := newDirRig(t, map[string]string{"a.lua": tagScript("-a0"), "b.lua": tagScript("-b0")})
	complete := regexp.MustCompile(`^m-a[0-9]-b[0-9]$`)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	var calls atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := chat.User{SessionID: uint64(g + 1), Name: "u", Room: "r"}
			for i := 0; !stop.Load() && i < 100000; i++ {
				res := r.e.Message(context.Background(), u, &chat.Message{Room: "r", Text: "m"})
				if !complete.MatchString(res.Text) {
					bad.Store(res.Text)
				}
				r.e.Join(context.Background(), u)
				calls.Add(1)
			}
		}()
	}
	for gen := 1; gen <= 20; gen++ {
		n := string(rune('0' + gen%10))
		// Replace each file atomically, as editors do; the pair may still
		// be seen half-updated (a new, b old), which is a complete set too.
		tmp := t.TempDir()
		writeScript(t, tmp, "a.lua", tagScript("-a"+n))
		writeScript(t, tmp, "b.lua", tagScript("-b"+n))
		for _, f := range []string{"a.lua", "b.lua"} {
			if err := os.Rename(filepath.Join(tmp, f), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		if gen%4 == 0 {
			if err := r.e.Reload("test"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(15 * time.Millisecond)
	}
	eventually(t, "last generation", func() bool { return r.say(alice, "m").Text == "m-a0-b0" })
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("incomplete result %q\nlog:\n%s", v, r.log.String())
	}
	if calls.Load() == 0 {
		t.Fatal("no hook calls made")
	}
}

// One load, one log line, one format (issue 10.10): start and every reload
// log `msg="lua scripts loaded" cause=… scripts=a.lua,b.lua`; a failed
// reload one error line naming its cause.
func TestLoadLogsOneLine(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "a.lua", tagScript("1"))
	writeScript(t, dir, "b.lua", "")
	r := newRigOpts(t, Options{FS: os.DirFS(dir)})
	if err := r.e.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	writeScript(t, dir, "b.lua", "local x = nil\nx.y = 1")
	if err := r.e.Reload("SIGHUP"); err == nil {
		t.Fatal("broken script reloaded")
	}
	lines := strings.Split(strings.TrimSpace(r.log.String()), "\n")
	want := []string{
		`level=INFO msg="lua scripts loaded" cause=start scripts=a.lua,b.lua`,
		`level=INFO msg="lua scripts loaded" cause=SIGHUP scripts=a.lua,b.lua`,
		`level=ERROR msg="lua scripts not reloaded; the previous scripts keep running" cause=SIGHUP error="b.lua:2: `,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), r.log.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s\nwant it to contain %s", i+1, lines[i], w)
		}
	}
}
