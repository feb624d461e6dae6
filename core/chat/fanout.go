package chat

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Big rooms' broadcasts are written by sweepers: goroutines of the room
// that each own one share of the members and write the room's batches to
// them, while the room goroutine goes on with the next batch's hooks and
// History.Append.
//
// Why: a big room's broadcast costs one write system call per member
// (measured ~6 µs each on loopback, 90% of the server's CPU during a
// 1000-member fan-out). Written by the room goroutine, a message arriving
// during a broadcast waited for all of it, then for its own commit, then
// for its own broadcast. With sweepers the commit overlaps the previous
// broadcast, the writes use every core, and a batch that arrives while
// the previous one is still being written joins it: from the member the
// sweeper is at, both go out in one writev (WritePreparedBatch), and the
// sweeper comes round to the members it had already passed. So a room
// that falls behind catches up with fewer system calls, not more.
//
// Ordering: each sweeper moves a cursor round its share; a pass (one
// batch) starts at the cursor position where it was picked up and is done
// when the cursor has gone once round. At every member the sweeper writes
// all the passes it has in progress, oldest first. A pass picked up later
// starts later, so at any member either the older pass was already written
// on an earlier round or both are written now, in order: every member
// sees the room's order.
//
// Invariants:
//   - the member lists a sweeper's passes refer to do not change while
//     any pass is in flight: the room goroutine waits for every pass
//     (room.drain) before it adds or removes a member, and before it
//     writes to a single member (replays, history pages, notices), which
//     must follow the broadcasts before it;
//   - at most maxPassesInFlight passes are in flight per room, so a room
//     producing faster than its members take bytes is slowed down (its
//     queue, and each sender's MaxPending, then push back);
//   - the sweepers are owned by their room: started at its first big
//     broadcast, stopped by the room goroutine when it exits.

// fanoutMinMembers is the smallest room whose broadcasts go to the
// sweepers; below it the room goroutine writes them itself, the hand-off
// costing more than it saves.
const fanoutMinMembers = 128

// maxPassesInFlight bounds the batches a room has handed to its sweepers
// and not yet seen completed.
const maxPassesInFlight = 16

// pass is one outbox (a room batch) on its way to every member of a big
// room: its encoding per wire format (nil for a format without frames in
// this batch or without members).
type pass struct {
	plain, json *ws.Prepared
	start       time.Time
	end         time.Time   // set by the sweeper that finishes it last
	arrived     []time.Time // arrival of each chat message in it
	sweepers    atomic.Int32
	evictMu     sync.Mutex
	evict       []*member // slow consumers found while writing it
}

// sweepJob is a pass and the share of members it goes to.
type sweepJob struct {
	p           *pass
	plain, json []*member
}

// sweeper writes a room's passes to one share of its members.
type sweeper struct {
	done  chan<- *pass                       // the room's completed passes
	write func(*member, []*ws.Prepared) bool // (*member).writeBatch; tests record

	mu      sync.Mutex
	inbox   []sweepJob
	quit    bool
	pending atomic.Int32 // len(inbox), read without the lock at every member
	wake    chan struct{}

	// Owned by the sweeper goroutine.
	active      []activePass
	plain, json []*member // the share of the active passes
	cursor      int
	batch       []*ws.Prepared
}

// activePass is a pass in progress in one sweeper: left members of the
// share still to write.
type activePass struct {
	p    *pass
	left int
}

// run is the sweeper goroutine; it returns after stop once every pass it
// was given is written.
func (sw *sweeper) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		if len(sw.active) == 0 {
			sw.mu.Lock()
			for len(sw.inbox) == 0 && !sw.quit {
				sw.mu.Unlock()
				<-sw.wake
				sw.mu.Lock()
			}
			if len(sw.inbox) == 0 {
				sw.mu.Unlock()
				return
			}
			sw.takeLocked()
			sw.mu.Unlock()
		} else if sw.pending.Load() > 0 {
			sw.mu.Lock()
			sw.takeLocked()
			sw.mu.Unlock()
		}
		sw.step()
	}
}

// takeLocked moves the inbox to the passes in progress. With none in
// progress the share may be new (the room changed since); with some, it
// is the same (the room waits for its passes before it changes).
func (sw *sweeper) takeLocked() {
	for i, j := range sw.inbox {
		if len(sw.active) == 0 {
			sw.plain, sw.json = j.plain, j.json
			if n := len(sw.plain) + len(sw.json); n > 0 {
				sw.cursor %= n
			} else {
				sw.cursor = 0
			}
		}
		sw.active = append(sw.active, activePass{p: j.p, left: len(sw.plain) + len(sw.json)})
		sw.inbox[i] = sweepJob{}
	}
	sw.inbox = sw.inbox[:0]
	sw.pending.Store(0)
}

// step writes every pass in progress to the member at the cursor, moves
// the cursor on, and reports the passes that are now done.
func (sw *sweeper) step() {
	n := len(sw.plain) + len(sw.json)
	if n > 0 {
		var m *member
		batch := sw.batch[:0]
		if sw.cursor < len(sw.plain) {
			m = sw.plain[sw.cursor]
			for _, a := range sw.active {
				if a.p.plain != nil {
					batch = append(batch, a.p.plain)
				}
			}
		} else {
			m = sw.json[sw.cursor-len(sw.plain)]
			for _, a := range sw.active {
				if a.p.json != nil {
					batch = append(batch, a.p.json)
				}
			}
		}
		if len(batch) > 0 && sw.write(m, batch) {
			p := sw.active[0].p
			p.evictMu.Lock()
			p.evict = append(p.evict, m)
			p.evictMu.Unlock()
		}
		clear(batch)
		sw.batch = batch[:0]
		sw.cursor = (sw.cursor + 1) % n
	}
	// Passes were picked up in order, so the oldest has the fewest
	// members left: finished passes are at the front.
	done := 0
	for i := range sw.active {
		if sw.active[i].left > 0 {
			sw.active[i].left--
		}
		if sw.active[i].left == 0 && done == i {
			done++
		}
	}
	for _, a := range sw.active[:done] {
		if a.p.sweepers.Add(-1) == 0 {
			a.p.end = time.Now()
			sw.done <- a.p // never blocks: capacity maxPassesInFlight
		}
	}
	clear(sw.active[:done])
	sw.active = append(sw.active[:0], sw.active[done:]...)
}

// give queues a pass for the sweeper.
func (sw *sweeper) give(j sweepJob) {
	sw.mu.Lock()
	sw.inbox = append(sw.inbox, j)
	sw.pending.Store(int32(len(sw.inbox)))
	sw.mu.Unlock()
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// stop makes run return once its passes are written.
func (sw *sweeper) stop() {
	sw.mu.Lock()
	sw.quit = true
	sw.mu.Unlock()
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// bigRoom reports whether the room's broadcasts go to its sweepers.
func (r *room) bigRoom() bool {
	return r.srv.sweepers > 0 && len(r.plain)+len(r.json) >= fanoutMinMembers
}

// submit hands an outbox's encodings to the sweepers, each with its share
// of the members, and returns without waiting for the writes.
func (r *room) submit(plain, json *ws.Prepared, start time.Time) {
	for r.inflight >= maxPassesInFlight {
		r.completed(<-r.passDone)
	}
	if r.sweepers == nil {
		r.startSweepers()
	}
	var p *pass
	if k := len(r.freePasses); k > 0 {
		p, r.freePasses = r.freePasses[k-1], r.freePasses[:k-1]
	} else {
		p = new(pass)
	}
	p.plain, p.json, p.start = plain, json, start
	p.arrived = append(p.arrived[:0], r.outArrived...)
	w := len(r.sweepers)
	p.sweepers.Store(int32(w))
	r.inflight++
	sharePlain := (len(r.plain) + w - 1) / w
	shareJSON := (len(r.json) + w - 1) / w
	for i, sw := range r.sweepers {
		sw.give(sweepJob{
			p:     p,
			plain: share(r.plain, i, sharePlain),
			json:  share(r.json, i, shareJSON),
		})
	}
}

// share returns the i-th slice of size n of list (possibly empty).
func share(list []*member, i, n int) []*member {
	lo, hi := min(i*n, len(list)), min((i+1)*n, len(list))
	return list[lo:hi:hi]
}

// completed accounts for a pass every sweeper has finished.
func (r *room) completed(p *pass) {
	r.inflight--
	m := &r.srv.metrics
	m.broadcastTime.observe(durationBuckets, p.end.Sub(p.start).Seconds())
	for _, t := range p.arrived {
		m.messageDelay.observe(durationBuckets, p.end.Sub(t).Seconds())
	}
	r.evict = append(r.evict, p.evict...)
	clear(p.evict)
	p.evict = p.evict[:0]
	p.arrived = p.arrived[:0]
	p.plain, p.json = nil, nil
	r.freePasses = append(r.freePasses, p)
}

// reap accounts for the passes completed so far without waiting.
func (r *room) reap() {
	for r.inflight > 0 {
		select {
		case p := <-r.passDone:
			r.completed(p)
		default:
			return
		}
	}
}

// drain waits until every pass in flight is written.
func (r *room) drain() {
	for r.inflight > 0 {
		r.completed(<-r.passDone)
	}
}

func (r *room) startSweepers() {
	n := r.srv.sweepers
	r.passDone = make(chan *pass, maxPassesInFlight)
	r.sweepers = make([]*sweeper, n)
	r.sweepWG.Add(n)
	for i := range r.sweepers {
		sw := &sweeper{done: r.passDone, write: (*member).writeBatch, wake: make(chan struct{}, 1)}
		r.sweepers[i] = sw
		go sw.run(&r.sweepWG)
	}
}

// stopSweepers ends the sweepers once their passes are written; the room
// goroutine calls it as it exits.
func (r *room) stopSweepers() {
	r.drain()
	for _, sw := range r.sweepers {
		sw.stop()
	}
	r.sweepWG.Wait()
	r.sweepers = nil
}
