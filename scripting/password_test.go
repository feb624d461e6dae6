package scripting

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"golang.org/x/crypto/argon2"
)

// pwScript answers "/h PASSWORD" with the hash, "/c HASH PASSWORD" with the
// check's results, and "/hash" from a message hook (for the time limit).
const pwScript = `
local function show(...)
  local out = {}
  for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
  return table.concat(out, " ")
end
chat.command("h", function(user, args) return show(chat.password_hash(args)) end)
chat.command("c", function(user, args)
  local hash, pw = args:match("^(%S*) ?(.*)$")
  return show(chat.password_check(hash, pw))
end)
chat.command("raise", function(user, args)
  if args == "hash" then chat.password_hash({}) else chat.password_check("x", nil) end
end)
chat.on("message", function(msg)
  if msg.text == "hash" then chat.password_hash("pw") end
  return msg.text .. "!"
end)
`

// reply runs a command and returns what it told the sender.
func (r *rig) reply(t *testing.T, u chat.User, line string) string {
	t.Helper()
	if got := r.say(u, line); got.Err != nil {
		t.Fatalf("%s: %v", line, got.Err)
	}
	calls := r.host.take()
	if len(calls) != 1 || calls[0].Method != "Send" {
		t.Fatalf("%s: host calls %v", line, calls)
	}
	return calls[0].Text
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestPasswordHashAndCheck(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": pwScript})
	h1 := r.reply(t, alice, "/h correct horse")
	if !phcRE.MatchString(h1) {
		t.Fatalf("hash %q is not argon2id PHC with the default parameters", h1)
	}
	h2 := r.reply(t, alice, "/h correct horse")
	if h1 == h2 {
		t.Fatalf("two hashes of one password are equal (no salt): %q", h1)
	}
	for _, tc := range []struct{ hash, pw, want string }{
		{h1, "correct horse", "true"},
		{h2, "correct horse", "true"},
		{h1, "correct horsE", "false"},
		{h1, "Correct horse", "false"},
		{h1, "", "false"},
	} {
		if got := r.reply(t, alice, "/c "+tc.hash+" "+tc.pw); got != tc.want {
			t.Errorf("check(%q) = %q, want %q", tc.pw, got, tc.want)
		}
	}
}

// A hash made elsewhere, with other parameters, still verifies: the
// argon2id vector of the reference implementation's test.c (m=64 MiB, t=2,
// p=1, salt "somesalt"), and one made here with the OWASP m=7 MiB, t=5
// configuration, a 64-byte key and 4 lanes.
func TestPasswordCheckOtherParameters(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": pwScript})
	ref := "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	salt := make([]byte, 12)
	rand.Read(salt)
	p := argonParams{memory: 7168, time: 5, threads: 4}
	other := encodeArgon2id(p, salt, argon2.IDKey([]byte("s3cret"), salt, p.time, p.memory, p.threads, 64))
	for _, tc := range []struct{ hash, pw, want string }{
		{ref, "password", "true"},
		{ref, "passwore", "false"},
		{other, "s3cret", "true"},
		{other, "s3cre", "false"},
	} {
		if got := r.reply(t, alice, "/c "+tc.hash+" "+tc.pw); got != tc.want {
			t.Errorf("check(%s, %q) = %q, want %q", tc.hash, tc.pw, got, tc.want)
		}
	}
}

// A string that is not an argon2id hash this engine can check is a
// failure of the ordinary course (a corrupt store): nil, err, never true.
func TestPasswordCheckMalformed(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": pwScript})
	good := r.reply(t, alice, "/h pw")
	f := strings.Split(good, "$") // "", argon2id, v=19, m=…,t=…,p=…, salt, key
	join := func(params, salt, key string) string {
		return strings.Join([]string{"", "argon2id", "v=19", params, salt, key}, "$")
	}
	for name, hash := range map[string]string{
		"empty":          "",
		"plain text":     "pw",
		"bcrypt":         "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":        strings.Replace(good, "$argon2id$", "$argon2i$", 1),
		"version 16":     strings.Replace(good, "$v=19$", "$v=16$", 1),
		"no version":     strings.Join(append(f[:2:2], f[3:]...), "$"),
		"extra field":    good + "$x",
		"params order":   join("t=2,m=19456,p=1", f[4], f[5]),
		"params sign":    join("m=+19456,t=2,p=1", f[4], f[5]),
		"params missing": join("m=19456,t=2", f[4], f[5]),
		"t=0":            join("m=19456,t=0,p=1", f[4], f[5]),
		"p=0":            join("m=19456,t=2,p=0", f[4], f[5]),
		"m too small":    join("m=7,t=2,p=1", f[4], f[5]),
		"m too big":      join("m=4194304,t=2,p=1", f[4], f[5]),
		"t too big":      join("m=19456,t=1000,p=1", f[4], f[5]),
		"p too big":      join("m=19456,t=2,p=255", f[4], f[5]),
		"m overflow":     join("m=99999999999999999999,t=2,p=1", f[4], f[5]),
		"salt not b64":   join(f[3], "!!!!"+f[4][4:], f[5]),
		"salt padded":    join(f[3], f[4]+"==", f[5]),
		"salt short":     join(f[3], "c2FsdA", f[5]),
		"key short":      join(f[3], f[4], f[5][:10]),
		"key not b64":    join(f[3], f[4], "*"+f[5][1:]),
		"too long":       good + strings.Repeat("A", 300),
	} {
		got := r.reply(t, alice, "/c "+hash+" pw")
		if !strings.HasPrefix(got, "nil not an argon2id password hash") {
			t.Errorf("%s: check(%q) = %q, want nil and the error", name, hash, got)
		}
	}
	// The well-formed hash itself still verifies (the cases above broke
	// only what they name).
	if got := r.reply(t, alice, "/c "+good+" pw"); got != "true" {
		t.Fatalf("good hash: %q", got)
	}
}

// Passwords over 1 KiB fail (nil, err) for both; wrong argument types
// raise, as for every chat function.
func TestPasswordArguments(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": pwScript})
	long := strings.Repeat("x", maxPasswordBytes+1)
	if got := r.reply(t, alice, "/h "+long); got != "nil password too long (1025 bytes, at most 1024)" {
		t.Errorf("hash of a long password: %q", got)
	}
	good := r.reply(t, alice, "/h "+long[1:])
	if got := r.reply(t, alice, "/c "+good+" "+long[1:]); got != "true" {
		t.Errorf("1024-byte password: %q", got)
	}
	if got := r.reply(t, alice, "/c "+good+" "+long); got != "nil password too long (1025 bytes, at most 1024)" {
		t.Errorf("check of a long password: %q", got)
	}
	for _, arg := range []string{"hash", "check"} {
		got := r.say(alice, "/raise "+arg)
		if !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), "password must be a string") {
			t.Errorf("%s with a bad argument: %+v", arg, got)
		}
	}
}

// A hash cannot hold the Lua state — every room's hooks — past the call's
// time limit: argon2 cannot be interrupted, so the hash runs aside and the
// call fails at its limit while the hash is still running; other hooks run
// at once; a second hash while the first still runs waits for it no longer
// than its own limit. The KDF here blocks until the test lets it go, so
// the order of events is fixed, not timed.
func TestPasswordHashTimeLimit(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: 100 * time.Millisecond, FS: scriptFS(map[string]string{"a.lua": pwScript})})
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	// Safety net: an implementation that hashes inline would wait here
	// forever; it gets its hash after 10s and then fails the check below.
	safety := time.AfterFunc(10*time.Second, open)
	defer safety.Stop()
	var started, finished atomic.Int32
	r.e.sh.pw.kdf = func(pw, salt []byte, p argonParams, n uint32) []byte {
		started.Add(1)
		<-gate
		finished.Add(1)
		return argonKey(pw, salt, p, n)
	}

	got := r.say(alice, "hash")
	if !isHookErr(got.Err, chat.HookFailTimeout) {
		t.Fatalf("hook hashing past its limit: %+v", got)
	}
	if finished.Load() != 0 {
		t.Fatal("the hook returned only after the hash had finished")
	}
	if got := r.say(bob, "hi"); got.Err != nil || got.Text != "hi!" {
		t.Fatalf("another hook while the hash runs: %+v", got)
	}
	got = r.say(carol, "hash") // waits for the slot, then stops at its limit
	if !isHookErr(got.Err, chat.HookFailTimeout) || started.Load() != 1 {
		t.Fatalf("second hash while the first runs: %+v, %d started", got, started.Load())
	}

	open()
	r.e.sh.pw.wait() // the abandoned hash ends; Engine.Close waits the same way
	if finished.Load() != 1 {
		t.Fatalf("%d hashes finished, want the one abandoned", finished.Load())
	}
	// The slot is free again: a hash and a check go through. The key
	// derivation is a cheap stand-in from here on, so that the 100ms limit
	// this test needs is not a race against argon2 under -race on a busy
	// machine (real argon2 is what TestPasswordHashAndCheck runs).
	r.e.sh.pw.kdf = func(pw, salt []byte, _ argonParams, n uint32) []byte {
		sum := sha256.Sum256(append(append([]byte(nil), salt...), pw...))
		return bytes.Repeat(sum[:], int(n)/len(sum)+1)[:n]
	}
	h := r.reply(t, alice, "/h pw")
	if !phcRE.MatchString(h) || r.reply(t, alice, "/c "+h+" pw") != "true" {
		t.Fatalf("after the abandoned hash: %q", h)
	}
}

// BenchmarkPasswordHash is the cost of one chat.password_hash or
// chat.password_check with the default parameters (docs/lua.md quotes it).
func BenchmarkPasswordHash(b *testing.B) {
	salt := make([]byte, pwSaltLen)
	p := argonParams{memory: pwMemory, time: pwTime, threads: pwThreads}
	for b.Loop() {
		argonKey([]byte("correct horse battery staple"), salt, p, pwKeyLen)
	}
}
