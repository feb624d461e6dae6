package scripting

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"golang.org/x/crypto/argon2"
)

// chat.password_hash and chat.password_check let a script keep its own
// accounts (issue 12): argon2id (RFC 9106) from golang.org/x/crypto,
// stored in the PHC string format the reference implementation and
// libsodium write:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// (salt and key in unpadded standard base64). New hashes use the OWASP
// Password Storage Cheat Sheet's first argon2id configuration: 19 MiB,
// two passes, one lane. On this project's reference box (2-core AMD EPYC)
// one hash takes about 21 ms, a fifth of the default hook time limit.
const (
	pwMemory  = 19 * 1024 // KiB
	pwTime    = 2
	pwThreads = 1
	pwSaltLen = 16
	pwKeyLen  = 32

	// maxPasswordBytes bounds a password: argon2 hashes any length, but a
	// megabyte "password" is an accident or an attack, not a secret.
	maxPasswordBytes = 1024

	// Bounds on the parameters of a hash being checked. Hashes made with
	// other parameters (older settings, another tool) still verify, but a
	// stored string cannot make the server allocate gigabytes or loop for
	// minutes: 64 MiB covers the RFC 9106 second recommendation and every
	// OWASP configuration.
	maxPwMemory  = 64 * 1024 // KiB
	maxPwTime    = 10
	maxPwThreads = 4
	minPwSalt    = 8
	maxPwSalt    = 64
	minPwKey     = 16
	maxPwKey     = 64
	maxHashLen   = 256
)

// errNotArgon2id is what chat.password_check answers for a string that is
// not an argon2id PHC string this engine can check.
var errNotArgon2id = errors.New("not an argon2id password hash")

// argonParams are the cost parameters of one hash.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// kdfFunc derives a key of keyLen bytes; argonKey in production, a gated
// double in the test that proves a hash never holds the Lua state past
// the time limit.
type kdfFunc func(password, salt []byte, p argonParams, keyLen uint32) []byte

func argonKey(password, salt []byte, p argonParams, keyLen uint32) []byte {
	return argon2.IDKey(password, salt, p.time, p.memory, p.threads, keyLen)
}

// hasher runs password hashes off the Lua state's goroutine, one at a
// time. argon2 cannot be interrupted, and the Lua state serves every
// room: a hash computed inline would hold every room's hooks for as long
// as it ran, past the call's time limit. Instead the calling Lua function
// waits for the hash or for its time limit, whichever comes first; when
// the limit wins, the call fails as any runaway call does and the hash
// finishes on its own goroutine (bounded: at most maxPwTime passes over
// maxPwMemory) and is discarded. The one slot bounds the CPU and memory
// such leftovers can take: a later hash waits for the slot, again no
// longer than its own time limit.
//
// Owner: the shared of an engine (or of Check); Engine.Close and Check
// wait for a leftover hash with wait.
type hasher struct {
	slot chan struct{}
	wg   sync.WaitGroup
	kdf  kdfFunc
}

func newHasher() *hasher {
	return &hasher{slot: make(chan struct{}, 1), kdf: argonKey}
}

// wait returns when no hash is running.
func (h *hasher) wait() { h.wg.Wait() }

// derive computes the key on the hasher's goroutine, raising the time
// limit's error (as the VM does) when the call's time runs out first.
func (h *hasher) derive(L *lua.LState, password, salt []byte, p argonParams, keyLen uint32) []byte {
	select {
	case h.slot <- struct{}{}:
	case <-done(L):
		raiseInterrupted(L)
	}
	res := make(chan []byte, 1) // buffered: an abandoned hash does not block
	kdf := h.kdf
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.slot }()
		res <- kdf(password, salt, p, keyLen)
	}()
	select {
	case key := <-res:
		return key
	case <-done(L):
		raiseInterrupted(L)
		return nil
	}
}

// checkPassword reads a password argument: a string or a number, as the
// other text arguments (a wrong type raises).
func checkPassword(L *lua.LState, n int, fname string) (string, error) {
	var s string
	switch v := L.Get(n).(type) {
	case lua.LString:
		s = string(v)
	case lua.LNumber:
		s = v.String()
	default:
		L.RaiseError("%s: password must be a string, got %s", fname, v.Type())
	}
	if len(s) > maxPasswordBytes {
		return "", fmt.Errorf("password too long (%d bytes, at most %d)", len(s), maxPasswordBytes)
	}
	return s, nil
}

// chat.password_hash(password) -> hash | nil, err
func (st *state) apiPasswordHash(L *lua.LState) int {
	pw, err := checkPassword(L, 1, "chat.password_hash")
	if err != nil {
		return failed(L, err)
	}
	salt := make([]byte, pwSaltLen)
	rand.Read(salt) // crypto/rand.Read never fails (it crashes the program instead)
	p := argonParams{memory: pwMemory, time: pwTime, threads: pwThreads}
	st.wd.allow(uint64(p.memory) * 1024) // argon2's memory is the call's, by design
	key := st.sh.pw.derive(L, []byte(pw), salt, p, pwKeyLen)
	L.Push(lua.LString(encodeArgon2id(p, salt, key)))
	return 1
}

// chat.password_check(hash, password) -> true | false | nil, err
func (st *state) apiPasswordCheck(L *lua.LState) int {
	hash := L.CheckString(1)
	pw, err := checkPassword(L, 2, "chat.password_check")
	if err != nil {
		return failed(L, err)
	}
	p, salt, want, err := decodeArgon2id(hash)
	if err != nil {
		return failed(L, err)
	}
	st.wd.allow(uint64(p.memory) * 1024) // argon2's memory is the call's, by design
	got := st.sh.pw.derive(L, []byte(pw), salt, p, uint32(len(want)))
	L.Push(lua.LBool(subtle.ConstantTimeCompare(got, want) == 1))
	return 1
}

var b64 = base64.RawStdEncoding

func encodeArgon2id(p argonParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodeArgon2id parses a PHC string of argon2id, version 19 (0x13, the
// only one x/crypto computes), refusing parameters outside the bounds
// above. Errors say what is wrong but never quote the hash.
func decodeArgon2id(s string) (argonParams, []byte, []byte, error) {
	var p argonParams
	if len(s) > maxHashLen {
		return p, nil, nil, fmt.Errorf("%w (longer than %d bytes)", errNotArgon2id, maxHashLen)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, errNotArgon2id
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w (unsupported version %q)", errNotArgon2id, f[2])
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, fmt.Errorf("%w (bad parameters)", errNotArgon2id)
	}
	m, errM := phcUint(kv[0], "m=", maxPwMemory)
	t, errT := phcUint(kv[1], "t=", maxPwTime)
	th, errP := phcUint(kv[2], "p=", maxPwThreads)
	if err := errors.Join(errM, errT, errP); err != nil {
		return p, nil, nil, fmt.Errorf("%w (%v)", errNotArgon2id, err)
	}
	if t < 1 || th < 1 || m < 8*th {
		return p, nil, nil, fmt.Errorf("%w (parameters too small)", errNotArgon2id)
	}
	p = argonParams{memory: m, time: t, threads: uint8(th)}
	salt, err := b64.Strict().DecodeString(f[4])
	if err != nil || len(salt) < minPwSalt || len(salt) > maxPwSalt {
		return p, nil, nil, fmt.Errorf("%w (bad salt)", errNotArgon2id)
	}
	key, err := b64.Strict().DecodeString(f[5])
	if err != nil || len(key) < minPwKey || len(key) > maxPwKey {
		return p, nil, nil, fmt.Errorf("%w (bad key)", errNotArgon2id)
	}
	return p, salt, key, nil
}

// phcUint parses "m=19456" and the like: decimal digits only, at most max.
func phcUint(s, prefix string, max uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("want %sNUMBER", prefix)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n > uint64(max) {
		return 0, fmt.Errorf("%s%s over %d", prefix, v, max)
	}
	return uint32(n), nil
}
