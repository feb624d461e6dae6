package chat

import (
	"sync"

	"github.com/moonchat/moonchat/core/ws"
)

// fanoutMinMembers is the smallest member list whose broadcast is split
// over the fan-out workers; below it the hand-off costs more than it saves.
const fanoutMinMembers = 128

// fanout spreads the writes of one broadcast over several goroutines. In a
// big room the broadcast's cost is the kernel's send path, one write per
// member (measured: ~1.5-3 µs each on loopback, 97% of the server's CPU
// during a 1000-member fan-out), so on the room goroutine alone a busy
// room uses one core and every message waits behind the previous one's
// fan-out. The room still waits for all of a batch's writes before it
// starts the next batch, so each member sees the room's order.
//
// The workers are owned by the Server: started by New, stopped by Shutdown
// after every room goroutine has returned.
type fanout struct {
	workers int
	jobs    chan *fanoutJob
	wg      sync.WaitGroup
	stopped sync.Once
}

// fanoutJob is one slice of a broadcast: p written to members. Members
// found to be slow consumers are collected in evict for the room to
// remove.
type fanoutJob struct {
	p       *ws.Prepared
	members []*member
	evict   []*member
	done    *sync.WaitGroup
}

// newFanout starts workers goroutines; it returns nil for zero workers
// (every broadcast is then written by the room goroutine).
func newFanout(workers int) *fanout {
	if workers <= 0 {
		return nil
	}
	f := &fanout{workers: workers, jobs: make(chan *fanoutJob, 4*workers)}
	f.wg.Add(workers)
	for range workers {
		go func() {
			defer f.wg.Done()
			for j := range f.jobs {
				j.run()
				j.done.Done()
			}
		}()
	}
	return f
}

// stop ends the workers once no room can submit jobs any more; Shutdown
// may call it more than once.
func (f *fanout) stop() {
	if f == nil {
		return
	}
	f.stopped.Do(func() { close(f.jobs) })
	f.wg.Wait()
}

// run writes the job's message to its members.
func (j *fanoutJob) run() {
	for _, m := range j.members {
		if m.writePrepared(j.p) {
			j.evict = append(j.evict, m)
		}
	}
}

// writeParallel writes p to members, the first share on the calling room
// goroutine and the others on the fan-out workers, and returns when every
// write was made. Slow consumers are appended to r.evict.
func (r *room) writeParallel(f *fanout, p *ws.Prepared, members []*member) {
	n := f.workers + 1
	if len(r.jobs) < n {
		r.jobs = make([]fanoutJob, n)
	}
	share := (len(members) + n - 1) / n
	for i := 1; i < n; i++ {
		lo, hi := min(i*share, len(members)), min((i+1)*share, len(members))
		if lo == hi {
			break
		}
		j := &r.jobs[i]
		*j = fanoutJob{p: p, members: members[lo:hi], evict: j.evict[:0], done: &r.fanWG}
		r.fanWG.Add(1)
		f.jobs <- j
	}
	own := &r.jobs[0]
	*own = fanoutJob{p: p, members: members[:min(share, len(members))], evict: own.evict[:0]}
	own.run()
	r.fanWG.Wait()
	for i := range r.jobs {
		j := &r.jobs[i]
		r.evict = append(r.evict, j.evict...)
		clear(j.evict)
		j.p, j.members, j.evict = nil, nil, j.evict[:0]
	}
}
