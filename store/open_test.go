package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "moonchat.db")
	db := openAt(t, path, Options{})
	appendText(t, db, "r", "u", "x")
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		info, err := os.Stat(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != tc.mode {
			t.Errorf("%s mode = %v, want %v", tc.name, info.Mode(), tc.mode)
		}
	}
}

// wantOpenError checks err wraps target and names the file.
func wantOpenError(t *testing.T, err, target error, path string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file %s", err, path)
	}
	t.Logf("%v", err)
}

func TestOpenCorrupt(t *testing.T) {
	// A real database with enough messages for many pages, to damage below.
	good := tempPath(t)
	db := openAt(t, good, Options{NoSync: true})
	fill(t, db, "r", "ann", 3000)
	var used int64 // bbolt's high-water mark; the file may be longer (preallocated)
	_ = db.view(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	for _, tc := range []struct {
		name     string
		contents []byte
	}{
		{"garbage", garbage},
		{"short garbage", []byte("this is not a database\n")},
		{"truncated to half", data[:used/2]},
		{"truncated to one page", data[:4096]},
		{"zeroed meta pages", append(make([]byte, 2*4096), data[2*4096:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "moonchat.db")
			if err := os.WriteFile(path, tc.contents, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, open := range []func(string, Options) (*DB, error){Open, OpenReadOnly} {
				db, err := open(path, Options{LockTimeout: 200 * time.Millisecond})
				if err == nil {
					db.Close()
				}
				wantOpenError(t, err, ErrCorrupt, path)
			}
		})
	}
}

func TestOpenForeignAndNewer(t *testing.T) {
	foreign := filepath.Join(t.TempDir(), "other.db")
	bdb, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	bdb.Close()
	_, err = Open(foreign, Options{})
	wantOpenError(t, err, ErrCorrupt, foreign)

	newer := tempPath(t)
	db := openAt(t, newer, Options{})
	db.Close()
	bdb, err = bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatReplica+1)) // the newest format this build reads, + 1
	})
	bdb.Close()
	_, err = OpenReadOnly(newer, Options{})
	wantOpenError(t, err, ErrFormat, newer)
}

func TestOpenLockedInProcess(t *testing.T) {
	path := tempPath(t)
	openAt(t, path, Options{})
	for _, open := range []func(string, Options) (*DB, error){Open, OpenReadOnly} {
		_, err := open(path, Options{LockTimeout: 100 * time.Millisecond})
		wantOpenError(t, err, ErrLocked, path)
		if !strings.Contains(err.Error(), "server") {
			t.Errorf("error %q does not suggest the running server", err)
		}
	}
}

func TestOpenLockedByOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := tempPath(t)
	db := openAt(t, path, Options{})
	appendText(t, db, "r", "ann", "before")
	db.Close()

	// A writer (the server) excludes everyone.
	_, stdin, out, stderr := startHelper(t, "hold", path)
	if line := readLine(t, out, 30*time.Second, stderr); line != "ready" {
		t.Fatalf("child said %q", line)
	}
	for _, open := range []func(string, Options) (*DB, error){Open, OpenReadOnly} {
		_, err := open(path, Options{LockTimeout: 200 * time.Millisecond})
		wantOpenError(t, err, ErrLocked, path)
	}
	stdin.Close()

	// Read-only CLIs share the file with each other, not with a writer.
	_, stdin, out, stderr = startHelper(t, "holdro", path)
	if line := readLine(t, out, 30*time.Second, stderr); line != "ready" {
		t.Fatalf("child said %q", line)
	}
	ro, err := OpenReadOnly(path, Options{LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("OpenReadOnly beside another reader: %v", err)
	}
	if got, err := ro.Recent("r", 5); err != nil || len(got) != 1 {
		t.Errorf("Recent = %v, %v", got, err)
	}
	ro.Close()
	_, err = Open(path, Options{LockTimeout: 200 * time.Millisecond})
	wantOpenError(t, err, ErrLocked, path)
	stdin.Close()
}

func TestOpenUnwritableAndMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	underFile := filepath.Join(file, "data", "moonchat.db")
	_, err := Open(underFile, Options{})
	wantOpenError(t, err, ErrUnwritable, underFile)

	_, err = Open(dir, Options{})
	wantOpenError(t, err, ErrInvalid, dir)

	missing := filepath.Join(dir, "missing", "moonchat.db")
	_, err = OpenReadOnly(missing, Options{})
	wantOpenError(t, err, ErrNotExist, missing)
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", filepath.Dir(missing))
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenReadOnly(empty, Options{})
	wantOpenError(t, err, ErrCorrupt, empty)

	_, err = Open("", Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(\"\") = %v, want ErrInvalid", err)
	}
}

// TestOpenReadOnlyDirectory: Open refuses a database whose directory its
// user may not write to, with ErrUnwritable naming the file. Root ignores
// permission bits, and CI runs as root, so as root the same check runs in a
// child process of this test binary with nobody's credentials (uid and gid
// 65534, no supplementary groups) on a directory nobody owns with mode 0500.
func TestOpenReadOnlyDirectory(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	path := filepath.Join(dir, "moonchat.db")
	if os.Geteuid() != 0 {
		_, err := Open(path, Options{})
		wantOpenError(t, err, ErrUnwritable, path)
		return
	}
	uid, result := openAsNobody(t, base, dir, path)
	if uid != nobody {
		t.Fatalf("child ran as uid %d, want %d", uid, nobody)
	}
	if want := "error unwritable: "; !strings.HasPrefix(result, want) || !strings.Contains(result, path) {
		t.Fatalf("Open as nobody: %q, want %q... naming %s", result, want, path)
	}
	t.Logf("as nobody: %s", result)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open as nobody created %s (%v)", path, err)
	}
}

// nobody is the uid and gid of the unprivileged user root's tests run as.
const nobody = 65534

// openAsNobody runs the "open" helper on path as nobody and returns the
// child's effective uid and its result line. The test binary is copied
// into base (the go build cache is private to root), base and its parent
// are opened to others, and dir is given to nobody (its mode unchanged).
func openAsNobody(t *testing.T, base, dir, path string) (uid int, result string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "store.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = base
	cmd.Env = append(os.Environ(), helperEnv+"=open", helperPathEnv+"="+path, "HOME="+base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as nobody: %v (stderr: %s)", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("helper printed %q", out)
	}
	if _, err := fmt.Sscanf(lines[0], "uid %d", &uid); err != nil {
		t.Fatalf("helper printed %q: %v", lines[0], err)
	}
	return uid, lines[1]
}

// openResult is the "open" helper's report of Open's error: "ok", or
// "error KIND: message" with KIND the sentinel the error wraps.
func openResult(err error) string {
	if err == nil {
		return "ok"
	}
	kind := "other"
	for _, k := range []struct {
		name string
		err  error
	}{{"unwritable", ErrUnwritable}, {"locked", ErrLocked}, {"notexist", ErrNotExist}, {"corrupt", ErrCorrupt}, {"invalid", ErrInvalid}} {
		if errors.Is(err, k.err) {
			kind = k.name
			break
		}
	}
	return "error " + kind + ": " + err.Error()
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	appendText(t, db, "r", "ann", "x")
	db.Close()
	ro, err := OpenReadOnly(path, Options{MaxPerRoom: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if !ro.ReadOnly() || ro.Path() != path {
		t.Errorf("ReadOnly() = %v, Path() = %q", ro.ReadOnly(), ro.Path())
	}
	if err := ro.Append(t.Context(), nil); err != nil {
		t.Errorf("Append(nothing) = %v", err)
	}
	if err := ro.Append(t.Context(), msgsOf("r", "x")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Append = %v, want ErrReadOnly", err)
	}
	if _, err := ro.Redact("r", 1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Redact = %v, want ErrReadOnly", err)
	}
	if _, err := ro.DeleteUser("ann"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("DeleteUser = %v, want ErrReadOnly", err)
	}
	if _, err := ro.Prune(time.Now()); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Prune = %v, want ErrReadOnly", err)
	}
	if got, err := ro.Recent("r", 5); err != nil || len(got) != 1 {
		t.Errorf("Recent = %v, %v", got, err)
	}
	if err := ro.Check(); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// TestDamagedPageReported overwrites the bbolt page that holds one stored
// message with garbage. bbolt panics when it meets such a page; reads and
// Check must turn that into ErrCorrupt, not crash or return silently less.
func TestDamagedPageReported(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{NoSync: true})
	msgs := make([]*chat.Message, 3000)
	for i := range msgs {
		msgs[i] = &chat.Message{Room: "r", User: "ann", Text: fmt.Sprintf("msg %d.", i+1)}
	}
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(data, []byte("msg 1500."))
	if off < 0 {
		t.Fatal("message 1500 not found in the file")
	}
	pageSize := os.Getpagesize() // bbolt's page size: the OS's unless set
	for i := off / pageSize * pageSize; i < (off/pageSize+1)*pageSize; i++ {
		data[i] = byte(i * 31)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		wantOpenError(t, err, ErrCorrupt, path) // also acceptable: found at Open
		return
	}
	defer db.Close()
	if got, err := db.Recent("r", 3000); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Recent over the damaged page = %d messages, %v; want ErrCorrupt", len(got), err)
	}
	if err := db.Check(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check = %v, want ErrCorrupt", err)
	}
}
