package chat

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Big rooms' broadcasts are written by sweepers: goroutines of the room
// that each own a share of the members and write the room's batches to
// them, while the room goroutine goes on with the next batch's hooks and
// History.Append.
//
// Why: a big room's broadcast costs one write system call per member
// (measured ~6 µs each on loopback, 90% of the server's CPU during a
// 1000-member fan-out). Written by the room goroutine, a message arriving
// during a broadcast waited for all of it, then for its own commit, then
// for its own broadcast; so did a join. With sweepers the commit overlaps
// the previous broadcast, the writes use every core, joins and leaves do
// not wait for broadcasts, and a batch that arrives while the previous
// one is still being written joins it: from the member the sweeper is at,
// both go out in one writev (WritePreparedBatch), and the sweeper comes
// round to the members it had already passed. So a room that falls
// behind catches up with fewer system calls, not more.
//
// Ordering: a sweeper takes commands from its inbox in the order the room
// gave them: passes (batches) and membership changes (add, remove). It
// moves a cursor round its members; a pass starts at the cursor position
// where it was picked up and is done when the cursor has gone once round.
// At every member the sweeper writes all the passes it has in progress,
// oldest first. A pass picked up later starts later, so at any member
// either the older pass was already written on an earlier round or both
// are written now, in order: every member sees the room's order. A
// membership change waits in the inbox until the passes in progress are
// done, and the passes behind it wait for the change: a newcomer gets
// exactly the passes given after its add (the earlier ones are in its
// replay, since a batch is stored before it is given to the sweepers).
//
// Invariants:
//   - a member belongs to one sweeper from its add to its remove
//     (member.sweeper, kept by the room goroutine); a sweeper's member
//     lists are its own and change only while it has no pass in progress;
//   - the room goroutine waits for every pass (room.waitForPasses) before it
//     writes to one existing member itself (history pages, notices,
//     kicks), since such a write must follow the broadcasts before it;
//   - at most maxPassesInFlight passes are in flight per room, so a room
//     producing faster than its members take bytes is slowed down (its
//     queue, and each sender's MaxPending, then push back);
//   - the sweepers are owned by their room: started at its first big
//     broadcast (the room then stays in this mode until it ends), stopped
//     by the room goroutine when it exits.

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
	// alt are ignoring members' own encodings of this batch (ignore.go);
	// empty unless someone in the room hides a sender of it.
	alt []altFrame
}

// sweepCmd is one entry of a sweeper's inbox: a pass to write (p), or a
// member to add or remove (m).
type sweepCmd struct {
	p      *pass
	m      *member
	remove bool
}

// sweeper writes a room's passes to its share of the members.
type sweeper struct {
	done  chan<- *pass                       // the room's completed passes
	write func(*member, []*ws.Prepared) bool // (*member).writeBatch; tests record

	mu      sync.Mutex
	inbox   []sweepCmd
	quit    bool
	pending atomic.Int32 // len(inbox), read without the lock at every member
	wake    chan struct{}

	// Owned by the sweeper goroutine.
	plain, json []*member // this sweeper's members, per wire format
	active      []activePass
	cursor      int
	batch       []*ws.Prepared
	// barrier is set while a membership change at the head of the inbox
	// waits for the passes in progress.
	barrier bool
}

// activePass is a pass in progress in one sweeper: left members of the
// share still to write.
type activePass struct {
	p    *pass
	left int
}

// run is the sweeper goroutine; it returns after stop once every command
// it was given is carried out.
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
			if len(sw.active) == 0 {
				continue // only membership changes
			}
		} else if !sw.barrier && sw.pending.Load() > 0 {
			sw.mu.Lock()
			sw.takeLocked()
			sw.mu.Unlock()
		}
		sw.step()
	}
}

// takeLocked carries out the inbox in order: passes join the passes in
// progress; a membership change is applied when none is in progress, else
// it stays at the head of the inbox (with everything behind it) until the
// passes in progress are done.
func (sw *sweeper) takeLocked() {
	i := 0
	for ; i < len(sw.inbox); i++ {
		c := sw.inbox[i]
		if c.p != nil {
			sw.active = append(sw.active, activePass{p: c.p, left: len(sw.plain) + len(sw.json)})
			continue
		}
		if len(sw.active) > 0 {
			break
		}
		sw.apply(c)
	}
	sw.barrier = i < len(sw.inbox)
	clear(sw.inbox[:i])
	sw.inbox = append(sw.inbox[:0], sw.inbox[i:]...)
	sw.pending.Store(int32(len(sw.inbox)))
}

// apply adds or removes a member; no pass is in progress.
func (sw *sweeper) apply(c sweepCmd) {
	list := &sw.plain
	if c.m.format == formatJSON {
		list = &sw.json
	}
	if c.remove {
		*list = removeMember(*list, c.m)
	} else {
		*list = append(*list, c.m)
	}
	if n := len(sw.plain) + len(sw.json); n > 0 {
		sw.cursor %= n
	} else {
		sw.cursor = 0
	}
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
				f := a.p.plain
				if len(a.p.alt) > 0 && f != nil {
					f = altFor(a.p.alt, m, f)
				}
				if f != nil {
					batch = append(batch, f)
				}
			}
		} else {
			m = sw.json[sw.cursor-len(sw.plain)]
			for _, a := range sw.active {
				f := a.p.json
				if len(a.p.alt) > 0 && f != nil {
					f = altFor(a.p.alt, m, f)
				}
				if f != nil {
					batch = append(batch, f)
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

// give queues a command for the sweeper.
func (sw *sweeper) give(c sweepCmd) {
	sw.mu.Lock()
	sw.inbox = append(sw.inbox, c)
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

// fanout is a room's side of its sweepers.
//
// Invariants: owned by the room goroutine; sweepers is nil until the
// room's first big broadcast and then stays set until the room ends;
// load[i] is the number of members given to sweepers[i]; inflight passes
// have been handed over and not yet taken back from passDone (at most
// maxPassesInFlight); freePasses are completed passes kept for reuse.
type fanout struct {
	sweepers   []*sweeper
	load       []int
	wg         sync.WaitGroup
	passDone   chan *pass // completed passes, from the sweepers; nil while small
	inflight   int
	freePasses []*pass
}

// bigRoom reports whether the room's broadcasts go to its sweepers.
func (r *room) bigRoom() bool {
	threshold := fanoutMinMembers
	if r.srv.cfg.fanoutMin > 0 {
		threshold = r.srv.cfg.fanoutMin
	}
	return r.fan.sweepers != nil || (r.srv.sweepers > 0 && len(r.roster.plain)+len(r.roster.json) >= threshold)
}

// submit hands an outbox's encodings to the sweepers and returns without
// waiting for the writes.
func (r *room) submit(plain, json *ws.Prepared, start time.Time, alts []altFrame) {
	for r.fan.inflight >= maxPassesInFlight {
		r.finishPass(<-r.fan.passDone)
	}
	if r.fan.sweepers == nil {
		r.startSweepers()
	}
	var p *pass
	if k := len(r.fan.freePasses); k > 0 {
		p, r.fan.freePasses = r.fan.freePasses[k-1], r.fan.freePasses[:k-1]
	} else {
		p = new(pass)
	}
	p.plain, p.json, p.start = plain, json, start
	p.alt = alts
	p.arrived = append(p.arrived[:0], r.out.arrived...)
	p.sweepers.Store(int32(len(r.fan.sweepers)))
	r.fan.inflight++
	for _, sw := range r.fan.sweepers {
		sw.give(sweepCmd{p: p})
	}
}

// assign gives a member of a big room to the sweeper with the fewest.
func (r *room) assign(m *member) {
	k := 0
	for i, n := range r.fan.load {
		if n < r.fan.load[k] {
			k = i
		}
	}
	m.sweeper = k
	r.fan.load[k]++
	r.fan.sweepers[k].give(sweepCmd{m: m})
}

// unassign takes a member of a big room from its sweeper.
func (r *room) unassign(m *member) {
	r.fan.load[m.sweeper]--
	r.fan.sweepers[m.sweeper].give(sweepCmd{m: m, remove: true})
}

// finishPass takes back a pass every sweeper has finished: its metrics,
// the slow consumers it found (left in r.evict for flush), and the pass
// itself for reuse.
func (r *room) finishPass(p *pass) {
	r.fan.inflight--
	m := &r.srv.metrics
	m.broadcastTime.observe(p.end.Sub(p.start).Seconds())
	for _, t := range p.arrived {
		m.messageDelay.observe(p.end.Sub(t).Seconds())
	}
	r.evict = append(r.evict, p.evict...)
	clear(p.evict)
	p.evict = p.evict[:0]
	p.arrived = p.arrived[:0]
	p.plain, p.json, p.alt = nil, nil, nil
	r.fan.freePasses = append(r.fan.freePasses, p)
}

// collectPasses takes back the passes completed so far, without waiting.
func (r *room) collectPasses() {
	for r.fan.inflight > 0 {
		select {
		case p := <-r.fan.passDone:
			r.finishPass(p)
		default:
			return
		}
	}
}

// waitForPasses waits until every pass in flight is written to every
// member, taking each back (finishPass).
func (r *room) waitForPasses() {
	for r.fan.inflight > 0 {
		r.finishPass(<-r.fan.passDone)
	}
}

// startSweepers switches the room to sweepers, sharing out its members.
func (r *room) startSweepers() {
	n := r.srv.sweepers
	r.fan.passDone = make(chan *pass, maxPassesInFlight)
	r.fan.sweepers = make([]*sweeper, n)
	r.fan.load = make([]int, n)
	r.fan.wg.Add(n)
	for i := range r.fan.sweepers {
		r.fan.sweepers[i] = &sweeper{done: r.fan.passDone, write: (*member).writeBatch, wake: make(chan struct{}, 1)}
	}
	for _, m := range r.roster.plain {
		r.assign(m)
	}
	for _, m := range r.roster.json {
		r.assign(m)
	}
	for _, sw := range r.fan.sweepers {
		go sw.run(&r.fan.wg)
	}
}

// stopSweepers ends the sweepers once their passes are written; the room
// goroutine calls it as it exits.
func (r *room) stopSweepers() {
	r.waitForPasses()
	for _, sw := range r.fan.sweepers {
		sw.stop()
	}
	r.fan.wg.Wait()
	r.fan.sweepers = nil
}
