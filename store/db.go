package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/prometheus/client_golang/prometheus"
)

// DB is moonchat's history and KV store. It implements chat.History and
// the Lua layer's key-value interface (scripting.KV, checked where the two
// are wired: cmd/moonchat); all methods are safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	path     string
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	readOnly bool

	// mu orders sends on reqs against Close closing it: senders hold the
	// read lock while they send, Close takes the write lock before closing.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request // to the committer; nil when read-only

	// closing is closed by Close first; long-running maintenance (Prune,
	// DeleteUser) checks it between its small transactions.
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // the committer and pruner goroutines

	commits  atomic.Uint64
	appended atomic.Uint64
	bad      corruption // corrupt records the read paths skipped

	// Replica mode (replica.go): replica is fixed at Open; applied is the
	// log position in the file, stored by the committer after each commit
	// that advanced it; applyMu serialises Apply calls.
	replica bool
	applied atomic.Uint64
	applyMu sync.Mutex
}

// Compile-time checks that DB is what the chat server expects. store does
// not import scripting (the two stand side by side under cmd): the check
// that DB is a scripting.KV lives in cmd/moonchat, which wires them.
var (
	_ chat.History            = (*DB)(nil)
	_ chat.RoomLister         = (*DB)(nil) // GET /api/rooms
	_ chat.NameOwners         = (*DB)(nil) // account names across restarts (names.go)
	_ chat.ModerationStore    = (*DB)(nil) // bans, mutes, room settings, audit log (moderation.go)
	_ chat.IgnoreStore        = (*DB)(nil) // accounts' ignore lists (ignores.go)
	_ chat.ConversationLister = (*DB)(nil) // direct conversations of accounts (direct.go)
	_ prometheus.Collector    = (*DB)(nil) // moonchat_store_* in /metrics (metrics.go)
)

// Options tunes a DB. The zero value keeps every message forever.
type Options struct {
	// MaxPerRoom keeps at most this many messages per room (0 = no limit).
	MaxPerRoom int
	// MaxAge removes messages older than this (0 = keep forever).
	MaxAge time.Duration
	// PruneInterval is how often the background pruner applies MaxPerRoom
	// and MaxAge (0 → 1 minute). The pruner runs only when one of them is
	// set and the DB is writable; a negative interval disables it (call
	// Prune yourself).
	PruneInterval time.Duration
	// LockTimeout is how long Open waits for another process to release
	// the file before failing with ErrLocked (0 → 1 second).
	LockTimeout time.Duration
	// Logger receives the pruner's reports and errors (nil → slog.Default()).
	Logger *slog.Logger
	// ReadOnly opens the file without writing anything (see OpenReadOnly).
	ReadOnly bool
	// NoSync skips fsync: a crash may lose acknowledged messages or corrupt
	// the file. For tests and benchmark fixtures only.
	NoSync bool
	// Now is the clock for retention and for messages appended with a zero
	// Time (nil → time.Now). Tests inject a fake clock here.
	Now func() time.Time
	// Replica opens the file as a replica of the cluster's log (cluster
	// mode; replica.go): Apply stores the log's records with their ids,
	// Append is refused with ErrReplica. A single-node file becomes a
	// replica (format 5), its rooms keeping their ids, and stays one
	// until it is opened with Detach.
	Replica bool
	// Detach opens a replica file writable as a single-node history on
	// purpose, for good (it is format 4 again, its log position
	// forgotten). Without it, a writable Open of a replica file without
	// Replica fails with ErrReplica. Not with Replica.
	Detach bool
}

const (
	defaultPruneInterval = time.Minute
	defaultLockTimeout   = time.Second
	// reqQueue is the committer's queue length. Senders beyond it wait;
	// the committer takes everything queued for its next transaction.
	reqQueue = 1024
	// maxBatchMessages caps one group commit so that a flood cannot make a
	// single transaction (and the latency of everyone in it) unbounded.
	maxBatchMessages = 8192
)

// Open opens (creating on first run) the history database at path.
// The directory is created with mode 0700 and the file with 0600. Unless
// opts.ReadOnly is set, Open starts the committer goroutine (and the pruner
// when retention is configured); Close stops them.
//
// Errors name the file and wrap ErrLocked, ErrCorrupt, ErrFormat,
// ErrUnwritable or ErrNotExist (see the package documentation).
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("open history: %w: empty path", ErrInvalid)
	}
	if opts.MaxPerRoom < 0 || opts.MaxAge < 0 {
		return nil, fmt.Errorf("open history %s: %w: negative retention", path, ErrInvalid)
	}
	if opts.Replica && opts.Detach {
		return nil, fmt.Errorf("open history %s: %w: Replica and Detach together", path, ErrInvalid)
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = defaultPruneInterval
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	db := &DB{
		path:     path,
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		readOnly: opts.ReadOnly,
		closing:  make(chan struct{}),
	}
	if db.log == nil {
		db.log = slog.Default()
	}
	if db.now == nil {
		db.now = time.Now
	}

	created, err := db.prepareFile()
	if err != nil {
		return nil, err
	}
	bdb, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	db.bolt = bdb
	if err := db.init(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	if created {
		// Make the new directory entry durable too; without it a power
		// loss could lose the whole file despite every fsync on it.
		syncDir(filepath.Dir(path))
	}

	if !db.readOnly {
		db.reqs = make(chan *request, reqQueue)
		db.wg.Add(1)
		go db.commitLoop()
		if (opts.MaxPerRoom > 0 || opts.MaxAge > 0) && opts.PruneInterval > 0 {
			db.wg.Add(1)
			go db.pruneLoop()
		}
	}
	return db, nil
}

// OpenReadOnly opens an existing database for reading only, as the
// `moonchat history` CLI does. It never creates or changes anything, and
// fails with ErrLocked while a server has the file open for writing, and
// with ErrNotExist when there is no file.
func OpenReadOnly(path string, opts Options) (*DB, error) {
	opts.ReadOnly = true
	return Open(path, opts)
}

// prepareFile creates the directory (writable opens) or checks that the
// file exists (read-only opens). It reports whether the file is new.
func (db *DB) prepareFile() (created bool, err error) {
	info, err := os.Stat(db.path)
	switch {
	case err == nil && info.IsDir():
		return false, fmt.Errorf("open history %s: %w: it is a directory", db.path, ErrInvalid)
	case err == nil:
		if db.readOnly && info.Size() == 0 {
			return false, fmt.Errorf("open history %s: %w: the file is empty", db.path, ErrCorrupt)
		}
		return false, nil
	case db.readOnly && errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("open history %s: %w", db.path, ErrNotExist)
	case db.readOnly || !errors.Is(err, fs.ErrNotExist):
		return false, classifyIOError(db.path, err)
	}
	dir := filepath.Dir(db.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("open history %s: %w: cannot create directory %s: %w", db.path, ErrUnwritable, dir, err)
	}
	return true, nil
}

// openBolt opens the bbolt file and turns its errors (and panics, which
// bbolt raises on some damaged files) into our named errors.
func openBolt(path string, opts Options) (bdb *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			bdb = nil
			err = fmt.Errorf("open history %s: %w: bbolt: %v", path, ErrCorrupt, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	bopts := &bolt.Options{
		Timeout:      opts.LockTimeout,
		ReadOnly:     opts.ReadOnly,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	}
	// No InitialMmapSize: bbolt sizes the file from the mapping while the
	// mapping is at most AllocSize (16 MiB) and preallocates AllocSize
	// beyond what it needs once it is larger, so any initial mapping above
	// 16 MiB made every new history file 16 MiB (sparse, but that is what
	// ls and backups see). Left alone, the mapping starts at 32 KiB and
	// doubles, so a new file is 32 KiB and the mapping is grown (a remap
	// that waits for open read transactions) about log2(size) times in a
	// file's life. BenchmarkAppend and BenchmarkAppendGrowing (a file
	// growing to 32 MiB under concurrent replays) showed no change in
	// commit rates.
	bdb, err = bolt.Open(path, 0o600, bopts)
	if err == nil {
		return bdb, nil
	}
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open history %s: %w (is a moonchat server, or another moonchat command, using this file? stop it first, or use the server's HTTP API)", path, ErrLocked)
	case errors.As(err, &pathErr) || errors.As(err, &errno):
		return nil, classifyIOError(path, err)
	default:
		// bbolt's remaining Open errors are all about the file's content:
		// ErrInvalid, ErrVersionMismatch, ErrChecksum, "file size too small".
		return nil, fmt.Errorf("open history %s: %w: %w", path, ErrCorrupt, err)
	}
}

// classifyIOError wraps an operating-system error from opening path.
func classifyIOError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("open history %s: %w: %w", path, ErrUnwritable, err)
	default:
		return fmt.Errorf("open history %s: %w", path, err)
	}
}

// init checks an existing file — before writing anything, so that a
// damaged file is reported, not "repaired" — and creates the top-level
// buckets of a new one. The check covers the format version, the file size
// against bbolt's high-water mark, and each room's meta and first and last
// record: O(rooms) pages, not the whole file (Check does that). A corrupt
// first or last record is reported and skipped like any read's, not fatal.
// A writable Open upgrades a format 1 to 3 marker to format 4 and creates
// the buckets the file lacks ("names", and the moderation buckets; see
// formatVersion), then removes expired restrictions (pruneExpired).
func (db *DB) init() error {
	var format uint32
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		if format, err = db.verify(tx, db.skip); err != nil {
			return err
		}
		applied, err := readApplied(tx, format)
		db.applied.Store(applied)
		return err
	})
	if err == nil && (db.readOnly || (format == formatReplica && !db.opts.Replica && !db.opts.Detach)) {
		// Read-only: notes whether the file is a replica. A replica opened
		// as a single node: refused before anything is written.
		err = db.initReplica(format)
	}
	if err != nil || db.readOnly {
		return db.openError(err)
	}
	switch format {
	case formatVersion, formatReplica:
	case formatV1, formatV2, formatV3:
		err = db.update(func(tx *bolt.Tx) error {
			for _, name := range append([][]byte{bucketNames}, moderationBuckets...) {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion))
		})
	default: // a new file
		err = db.update(func(tx *bolt.Tx) error {
			mb, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := mb.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
				return err
			}
			for _, name := range append([][]byte{bucketRooms, bucketRoomMeta, bucketKV, bucketNames}, moderationBuckets...) {
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		err = db.ensureIgnores()
	}
	if err == nil {
		err = db.initReplica(format)
	}
	if err != nil {
		return db.openError(err)
	}
	n, err := db.pruneExpired(db.now())
	if n > 0 {
		db.log.Info("removed expired bans and mutes", "path", db.path, "removed", n)
	}
	return db.openError(err)
}

func (db *DB) openError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("open history %s: %w", db.path, err)
}

// verify is the cheap consistency check run by Open. It returns the
// file's format version (0 for a brand-new file without buckets). A
// corrupt first or last record of a room goes to onRecord (which may
// report it and return nil to go on).
func (db *DB) verify(tx *bolt.Tx, onRecord func(error) error) (uint32, error) {
	if info, err := os.Stat(db.path); err == nil && tx.Size() > info.Size() {
		return 0, fmt.Errorf("%w: file is truncated: %d bytes, bbolt expects %d", ErrCorrupt, info.Size(), tx.Size())
	}
	mb := tx.Bucket(bucketMeta)
	if mb == nil {
		if c := tx.Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
			return 0, fmt.Errorf("%w: a bbolt file but not a moonchat history database (no %q bucket)", ErrCorrupt, bucketMeta)
		}
		return 0, nil // a brand-new file opened read-only before any server wrote to it
	}
	v := mb.Get(keyFormat)
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: bad format marker", ErrCorrupt)
	}
	f := binary.BigEndian.Uint32(v)
	if f != formatV1 && f != formatV2 && f != formatV3 && f != formatVersion && f != formatReplica {
		return 0, fmt.Errorf("%w: format %d, this moonchat reads formats %d to %d (upgrade moonchat)", ErrFormat, f, formatV1, formatReplica)
	}
	rooms, metas := tx.Bucket(bucketRooms), tx.Bucket(bucketRoomMeta)
	if rooms == nil || metas == nil || tx.Bucket(bucketKV) == nil || (f >= formatV3 && tx.Bucket(bucketNames) == nil) {
		return 0, fmt.Errorf("%w: missing top-level buckets", ErrCorrupt)
	}
	if f >= formatVersion {
		for _, name := range moderationBuckets {
			if tx.Bucket(name) == nil {
				return 0, fmt.Errorf("%w: missing top-level bucket %q", ErrCorrupt, name)
			}
		}
	}
	if _, err := readApplied(tx, f); err != nil {
		return 0, err
	}
	return f, metas.ForEach(func(name, v []byte) error {
		meta, err := decodeMeta(v)
		if err != nil {
			return fmt.Errorf("room %q: %w", name, err)
		}
		b := rooms.Bucket(name)
		if b == nil {
			return fmt.Errorf("%w: room %q has meta but no bucket", ErrCorrupt, name)
		}
		c := b.Cursor()
		for _, kv := range [][2][]byte{pair(c.First()), pair(c.Last())} {
			if kv[0] == nil {
				continue
			}
			err := checkRecord(string(name), meta, kv[0], kv[1])
			if isCorruptRecord(err) {
				err = onRecord(err)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func pair(k, v []byte) [2][]byte { return [2][]byte{k, v} }

// checkRecord verifies invariant 2 for one record. It returns a
// *CorruptRecord when the record itself is bad (checksum, decoding, its ID
// or room), and a plain ErrCorrupt error when its key lies outside the
// room's ID range: then the room's meta or the tree is damaged, and new
// IDs could overwrite stored messages.
func checkRecord(room string, meta roomMeta, k, v []byte) error {
	if id, ok := keyID(k); ok && (id <= meta.Pruned || id > meta.LastID) {
		return fmt.Errorf("%w: room %q: key %d lies outside the room's ids (pruned %d, last %d)",
			ErrCorrupt, room, id, meta.Pruned, meta.LastID)
	}
	_, err := decodeAt(room, k, v)
	return err
}

// view runs a read transaction. bbolt panics (or faults on the mapping) on
// some damaged pages; that becomes ErrCorrupt instead of a crash.
func (db *DB) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = db.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// update runs a write transaction (one fsync unless NoSync), with the same
// panic protection as view.
func (db *DB) update(fn func(*bolt.Tx) error) (err error) {
	if db.readOnly {
		return ErrReadOnly
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = db.bolt.Update(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// syncDir fsyncs a directory so that a new entry in it is durable. Errors
// are ignored: some file systems cannot sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Path returns the file name the DB was opened with.
func (db *DB) Path() string { return db.path }

// ReadOnly reports whether the DB was opened read-only.
func (db *DB) ReadOnly() bool { return db.readOnly }

// Stats counts the work of the group committer since Open.
type Stats struct {
	// Commits is the number of write transactions (each one fsync) the
	// committer ran: for Append, Apply, Set, Delete and the other durable
	// writes.
	Commits uint64
	// Appended is the number of messages acknowledged by Append.
	Appended uint64
}

// Stats returns the committer's counters.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.commits.Load(), Appended: db.appended.Load()}
}

// Close flushes pending appends, stops the committer and the pruner, waits
// for them and closes the file. Methods called afterwards return ErrClosed.
// Close is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.closing)
		db.mu.Lock()
		db.closed = true
		if db.reqs != nil {
			close(db.reqs) // no sender is inside send: they hold mu.RLock
		}
		db.mu.Unlock()
		db.wg.Wait()
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("close history %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// isClosing reports whether Close has begun.
func (db *DB) isClosing() bool {
	select {
	case <-db.closing:
		return true
	default:
		return false
	}
}
