package scripting

import (
	"context"
	"io/fs"
	"maps"
	"time"
)

// fileStamp is what the watcher compares: a change of size or modification
// time, or a file appearing or disappearing, triggers a reload.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// snapshotOf records the scripts of fsys. Errors (a directory that is
// being replaced, a file removed between listing and stat) give a partial
// snapshot; the next poll sees the settled state.
func snapshotOf(fsys fs.FS) map[string]fileStamp {
	snap := map[string]fileStamp{}
	names, err := scriptNames(fsys)
	if err != nil {
		return snap
	}
	for _, n := range names {
		fi, err := fs.Stat(fsys, n)
		if err != nil {
			continue
		}
		snap[n] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	}
	return snap
}

// watch polls the scripts directory with the standard library (no
// fsnotify: it works the same on every OS and on network file systems)
// and reloads when something changed. A change is acted on once two
// consecutive polls agree, so a file caught half-written (truncated, not
// yet filled) is not loaded; a reload thus follows a save within two poll
// intervals. A failed reload is logged by Reload and retried only after
// the next change.
func (e *Engine) watch(ctx context.Context, last map[string]fileStamp) {
	tick := e.clock.NewTimer(e.poll)
	defer tick.Stop()
	prev := last
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		tick.Reset(e.poll)
		snap := snapshotOf(e.fsys)
		settled := sameSnapshot(snap, prev)
		prev = snap
		if !settled || sameSnapshot(snap, last) {
			continue
		}
		last = snap
		e.sh.log.Info("lua scripts changed; reloading", "dir", e.dir)
		_ = e.Reload("file change") // logged inside
	}
}

func sameSnapshot(a, b map[string]fileStamp) bool {
	return maps.EqualFunc(a, b, func(x, y fileStamp) bool {
		return x.size == y.size && x.modTime.Equal(y.modTime)
	})
}
