package scripting

import (
	"errors"
	"fmt"
	"runtime/metrics"
	"strings"
	"time"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Memory limits (issue 13). gopher-lua allocates its values on the Go heap
// like everything else and has no allocator hook, so a script's memory
// cannot be capped exactly. What is bounded, and how (docs/lua.md, Limits):
//
//   - per call: the watchdog's timer (watchdog.go) samples the process's
//     cumulative heap allocations (runtime/metrics, about 200 ns a read)
//     every memTick of a running call; a call that has allocated more than
//     Options.MaxMemory since its first sample is stopped like one that ran
//     past its time limit, with ErrMemoryLimit. No cost for calls shorter
//     than memTick (almost all hook calls), nothing in the VM's loop.
//   - what the scripts keep: sizeOfState walks everything reachable from
//     the scripts (their globals, the functions they registered and the
//     upvalues of those) and estimates its size; over MaxMemory, the state
//     is marked over its limit, every later call on it fails at once with
//     ErrMemoryLimit, and the engine loads the scripts again into a fresh
//     state (Engine.release). The walk runs after a call stopped by the
//     memory limit, and otherwise when the Go heap grew by a quarter of
//     MaxMemory since the last walk (no sooner than walkSpacing times the
//     last walk's duration) or walkEvery has passed, looked at after
//     every call longer than memTick and every checkEvery calls.
//   - single allocations: string builders are capped at maxStringBytes
//     (strlib.go), and gopher-lua's array part is capped at maxArrayIndex
//     entries (t[n] = v for a large n would otherwise fill the array up to
//     n with nils: a gigabyte in one instruction, which no sampling could
//     stop before it is spent).
const (
	// DefaultMaxMemory is Options.MaxMemory when zero: 64 MiB.
	DefaultMaxMemory = 64 << 20
	// MinMaxMemory is the smallest Options.MaxMemory accepted; smaller
	// values are raised to it (the scripts' own code and tables need a
	// few hundred KiB).
	MinMaxMemory = 1 << 20

	memTick    = time.Millisecond // sampling period of a running call
	checkEvery = 16               // calls between two looks at the heap
	walkEvery  = 10 * time.Second // longest time between two walks
	// walkSpacing: a walk the heap's growth asks for waits at least this
	// many times the last walk's duration after it.
	walkSpacing = 20
	// maxArrayIndex bounds gopher-lua's array part (lua.MaxArrayIndex,
	// 67108864 by default): integer keys from it on live in the hash
	// part, so t[n] = v allocates at most maxArrayIndex slots (64 MiB)
	// however large n is. The # operator counts the array part only, so
	// #t of a sequence longer than this is maxArrayIndex-1.
	maxArrayIndex = 1 << 22
	// maxTimers and maxHandlers bound what a script's top level can
	// register: each handler runs for every event, each timer on every
	// tick, so a loop registering millions would hold the Lua state for
	// good.
	maxTimers   = 64
	maxHandlers = 64 // per event
)

func init() {
	// gopher-lua reads this package variable; nothing else in moonchat
	// uses gopher-lua, and it is set before any Lua state exists.
	lua.MaxArrayIndex = maxArrayIndex
}

// ErrMemoryLimit is the error a script call is stopped with when it
// allocates more than Options.MaxMemory, or when the scripts' data has
// grown past it (then every call fails with it until the scripts are
// loaded again).
var ErrMemoryLimit = errors.New("script memory limit exceeded")

// isMemoryLimit reports whether a Lua error message is the memory limit's.
func isMemoryLimit(msg string) bool { return strings.Contains(msg, ErrMemoryLimit.Error()) }

// Runtime metrics the limits read. allocsMetric is cumulative (it never
// decreases), so a difference is what was allocated in between; heapMetric
// is the heap's objects, live or not yet swept: it grows at once with
// what a script keeps (the live heap is only known after a GC cycle,
// which a large heap may not run for a long while).
const (
	allocsMetric = "/gc/heap/allocs:bytes"
	heapMetric   = "/memory/classes/heap/objects:bytes"
)

// readMetric reads one uint64 runtime metric into s (reused: no
// allocation).
func readMetric(s []metrics.Sample) uint64 {
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// memGuard is a state's bookkeeping of what its scripts keep. Used only by
// the goroutine holding the state, as the state itself.
type memGuard struct {
	max      int64
	calls    uint
	heap     []metrics.Sample
	heapLow  uint64        // lowest heap seen since the last walk
	lastWalk time.Time     // time of the last walk
	walkCost time.Duration // how long the last walk took
	over     error         // set once the scripts' data is over the limit
	stopped  bool          // a call was stopped by the memory limit (Engine.release)
	held     int64         // the last walk's estimate, for tests and logs
}

func newMemGuard(max int64) memGuard {
	g := memGuard{max: max, heap: []metrics.Sample{{Name: heapMetric}}}
	g.heapLow = readMetric(g.heap)
	g.lastWalk = time.Now()
	return g
}

// afterCall runs after every call on the state: it walks the scripts' data
// when the call was stopped by the memory limit, or when the heap has
// grown by a quarter of the limit over the lowest it was since the last
// walk (the scripts may keep what they allocated), or walkEvery has
// passed. The heap is looked at after every long call (one that lasted
// memTick: only those can allocate much) and every checkEvery calls;
// reading it costs about 200 ns.
func (st *state) afterCall(err error, long bool) {
	g := &st.mem
	if g.over != nil {
		return
	}
	g.calls++
	if err != nil && isMemoryLimit(err.Error()) {
		g.stopped = true
		st.checkRetained("a call exceeded the memory limit")
		return
	}
	if !long && g.calls%checkEvery != 0 {
		return
	}
	heap := readMetric(g.heap)
	g.heapLow = min(g.heapLow, heap)
	since := time.Since(g.lastWalk)
	// The heap grows with garbage too, on a busy server often: walks for
	// that reason are spaced so that they take at most a twentieth of the
	// time (a walk over a large state can take milliseconds).
	if heap-g.heapLow > uint64(g.max/4) && since >= walkSpacing*g.walkCost {
		st.checkRetained("heap grew")
	} else if since > walkEvery {
		st.checkRetained("periodic")
	}
}

// checkRetained walks the scripts' data and marks the state over its
// limit when it holds more than MaxMemory.
func (st *state) checkRetained(why string) {
	g := &st.mem
	start := time.Now()
	size, ok := st.sizeOfState(g.max)
	g.held = size
	g.heapLow = readMetric(g.heap)
	g.lastWalk = time.Now()
	g.walkCost = g.lastWalk.Sub(start)
	if ok {
		return
	}
	g.over = fmt.Errorf("%w: the scripts' data holds more than %d bytes", ErrMemoryLimit, g.max)
	st.sh.log.Error("lua scripts over their memory limit: every call fails until they are loaded again",
		"max_memory", g.max, "checked_because", why)
}

// Estimated costs of gopher-lua values on the Go heap, in bytes. Only
// estimates: the point is to tell megabytes from gigabytes, not to
// account for every byte.
const (
	costString   = 16 // the boxed string header; plus its bytes
	costNumber   = 8  // a boxed float64
	costTable    = 96 // LTable and its slices' headers
	costSlot     = 16 // one array slot (an interface value)
	costHashItem = 80 // one hash item: map entry, keys slice, key index
	costFunction = 64 // LFunction; plus 16 per upvalue
	costUpvalue  = 48
	// Strings at least this long are counted once however many times
	// they are referenced (the walk remembers their data pointers).
	bigString = 256
)

// sizer estimates the size of a graph of Lua values, stopping as soon as
// it passes limit.
type sizer struct {
	limit int64
	total int64
	seen  map[unsafe.Pointer]struct{} // tables, functions, big strings
	stack []lua.LValue
}

// sizeOfState estimates the bytes held by the scripts of st: everything
// reachable from their environments, the functions they registered (hooks,
// commands, timers) and the state's registry. It stops early, reporting
// false, once the estimate passes limit.
func (st *state) sizeOfState(limit int64) (int64, bool) {
	z := &sizer{limit: limit, seen: map[unsafe.Pointer]struct{}{}}
	for _, env := range st.envs {
		z.push(env)
	}
	for _, hs := range st.handlers {
		for _, h := range hs {
			z.push(h.fn)
		}
	}
	for _, c := range st.commands {
		z.push(c.fn)
	}
	for _, t := range st.timers {
		z.push(t.fn)
	}
	z.push(st.L.G.Registry)
	z.push(st.L.G.Global)
	return z.run()
}

func (z *sizer) push(v lua.LValue) {
	if v == nil || v == lua.LNil {
		return
	}
	z.stack = append(z.stack, v)
}

// mark reports whether p is new to the walk, remembering it.
func (z *sizer) mark(p unsafe.Pointer) bool {
	if _, ok := z.seen[p]; ok {
		return false
	}
	z.seen[p] = struct{}{}
	return true
}

// run walks the pushed values. It returns the estimate and whether it
// stayed within the limit.
func (z *sizer) run() (int64, bool) {
	for len(z.stack) > 0 {
		if z.total > z.limit {
			return z.total, false
		}
		v := z.stack[len(z.stack)-1]
		z.stack = z.stack[:len(z.stack)-1]
		switch x := v.(type) {
		case lua.LString:
			z.total += costString
			if len(x) >= bigString && !z.mark(unsafe.Pointer(unsafe.StringData(string(x)))) {
				continue
			}
			z.total += int64(len(x))
		case lua.LNumber:
			z.total += costNumber
		case *lua.LTable:
			if z.mark(unsafe.Pointer(x)) {
				z.table(x)
			}
		case *lua.LFunction:
			if z.mark(unsafe.Pointer(x)) {
				z.total += costFunction + costUpvalue*int64(len(x.Upvalues))
				if x.Env != nil {
					z.push(x.Env)
				}
				for _, uv := range x.Upvalues {
					if uv != nil {
						z.push(uv.Value())
					}
				}
			}
		case *lua.LUserData:
			if z.mark(unsafe.Pointer(x)) {
				z.total += costTable
				z.push(x.Metatable)
			}
		}
	}
	return z.total, z.total <= z.limit
}

// table adds t's own cost and pushes its keys, values and metatable. The
// array part is read by index and the hash part with Next from its first
// key on, so that no index is boxed (ForEach boxes each one). Integer
// keys below lua.MaxArrayIndex always live in the array part, so Next
// never restarts from a hash key.
func (z *sizer) table(t *lua.LTable) {
	z.total += costTable
	z.push(t.Metatable)
	n := t.Len()
	z.total += costSlot * int64(n)
	for i := 1; i <= n; i++ {
		if z.total > z.limit {
			return
		}
		if v := t.RawGetInt(i); v != lua.LNil {
			z.push(v)
		}
	}
	var k lua.LValue = lua.LNil
	if n > 0 {
		k = lua.LNumber(n)
	}
	for {
		if z.total > z.limit {
			return
		}
		next, v := t.Next(k)
		if next == lua.LNil {
			return
		}
		z.total += costHashItem
		z.push(next)
		z.push(v)
		k = next
	}
}
