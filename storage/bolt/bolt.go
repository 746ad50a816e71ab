// Package bolt is a durable chat.Store on go.etcd.io/bbolt: one file, one writer, group
// commit.
//
// Every Update is queued for a single writer goroutine. The writer takes everything queued,
// runs each transaction's function in one bbolt read-write transaction, commits it with one
// fsync, then runs the AfterCommit functions in order and acknowledges every waiter. A lone
// writer waits for one commit, never for a timer (bbolt's DB.Batch is not used), and under
// load many transactions share each fsync.
//
// A function that returns an error does not fail the others: if it wrote nothing it is simply
// skipped; otherwise the batch is rolled back and run again without it (the chat.Store
// contract allows functions to run more than once). A failed commit fails every waiter in it;
// positions are read from the file, so none is consumed by a failed commit.
//
// Layout: a bucket per room for its transcript, keyed by 8-byte big-endian positions and
// filled to 100% (it is append-only), so reading from any position is a seek; a bucket per
// room for its membership records and one for its message revisions; buckets for users,
// rooms, unique names and the user → room membership index. Records are encoded with
// encoding/binary (a 200-byte message takes 271 bytes; JSON took 501 and 40 times as long to
// encode and decode); times are kept to the microsecond in UTC.
//
// Reads run in short bbolt read transactions (one per View). Complete blocks of 64 decoded
// events are kept in a small cache (Options.CacheEvents), so that reading recent history
// again does not decode it again.
//
// A second Open of the same file, from this process or another, fails after Options.Timeout
// with an error that says the file is locked. A file that is not a Parley store is checked
// read-only and left untouched.
//
// Damage and failures. Open checks an existing file read-only before it writes anything (see
// Options.SkipCheck) and refuses a damaged one with an error wrapping ErrCorrupt. If damage
// shows while serving (reading the file faults, or bbolt panics), the read or the batch fails,
// the Store logs it once and takes no more writes: every later Update fails with an error
// wrapping ErrCorrupt and chat.ErrUnavailable, reads go on, and the process lives. A failed
// commit (a full disk, an I/O error) fails its waiters with an error wrapping
// chat.ErrUnavailable: the next commit tries again. A panic in a transaction's function fails
// that transaction (its Update panics again); a panic in bbolt's commit, or in the writer
// itself, fails the waiters of that batch, unless the commit was already durable; a panic in
// an AfterCommit function is logged and its commit stands. The writer goes on after each.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// Options configure Open. A nil *Options means the defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another process (or another
	// Store in this one) before it fails. 0 means 1s; a negative value fails at once.
	Timeout time.Duration

	// NoSync skips fsync after each commit: an acknowledged write can be lost if the
	// machine (not just the process) crashes. For benchmarks and tests only.
	NoSync bool

	// Mode is the permission of a file Open creates (default 0600).
	Mode os.FileMode

	// InitialMmapSize is the size in bytes the file is mapped with at first (default: the
	// file's size). A larger map avoids remapping, which waits for readers, as the file grows.
	InitialMmapSize int

	// MaxBatch is the most transactions one commit holds (default 1024).
	MaxBatch int

	// NoFreelistSync stops bbolt writing its free page list at each commit (one page
	// write less per commit); Open then rebuilds the list by scanning the file, which takes
	// longer the bigger the file. Durability is the same.
	NoFreelistSync bool

	// CacheEvents is how many decoded events reads keep in memory, in complete blocks of 64
	// (default DefaultCacheEvents); negative turns the cache off. Cached events share their
	// strings with every reader; each reader still gets its own bodies.
	CacheEvents int

	// SkipCheck skips the check Open makes of an existing file before using it. The check
	// reads the whole file in order (so that what follows finds it in the page cache), then
	// every page in use twice, read-only: once with ReadAt, checking the bounds, types, links
	// and key order of every page and bucket, and the free list (this is what keeps bbolt's
	// own check, and then the Store, from faulting on a damaged file); then with bbolt's
	// Tx.Check. It refuses a damaged file with an error wrapping ErrCorrupt, before anything
	// is written to it.
	//
	// Its cost grows with the file. Measured on a shared, noisy 2-core VM (5 runs each, the
	// range), 200-byte messages in 16 rooms written in commits of 64:
	//
	//	events  file     Open with the check          Open with SkipCheck
	//	                 in page cache  dropped        (either)
	//	100k    48 MiB   50-75 ms       65-110 ms      1-3 ms
	//	1M      337 MiB  0.49-0.79 s    0.43-0.59 s    ~1 ms
	//
	// ("dropped": posix_fadvise DONTNEED on the file first; the VM's host may still cache
	// it, so a real cold disk can take longer: the reading in order runs at the disk's speed.)
	// Measured with:
	//
	//	go test -run '^$' -bench BenchmarkOpenCheck -benchtime 5x -count 5 ./storage/bolt
	//
	// Without the check, a damaged file can end the process: bbolt reads it in goroutines of
	// its own, where a fault cannot be recovered.
	SkipCheck bool

	// Logger receives what the Store reports on its own: damage found while serving, panics
	// it recovered from (with their stacks). Default: slog.Default().
	Logger *slog.Logger

	// bboltLogger, set by tests, is given to bbolt (which calls it inside Tx.Commit).
	bboltLogger bbolt.Logger
}

// DefaultTimeout is the file lock timeout when Options.Timeout is 0.
const DefaultTimeout = time.Second

// formatVersion identifies the layout in the meta bucket.
const formatVersion = "parley-bolt 1"

// Root bucket names. Per-room buckets are a kind byte followed by the room ID.
var (
	bMeta         = []byte("meta")
	bUsers        = []byte("users")
	bUserNames    = []byte("user_names")
	bRooms        = []byte("rooms")
	bRoomNames    = []byte("room_names")
	bMemberships  = []byte("memberships")    // user ID + room ID → latest member ID
	bTimers       = []byte("timers")         // see timerKey
	bTimersByTime = []byte("timers_by_time") // see timerTimeKey
	kFormat       = []byte("format")
	// fixedBuckets are made when missing: a file made before a bucket was added gets it at
	// its next Open.
	fixedBuckets = [][]byte{bMeta, bUsers, bUserNames, bRooms, bRoomNames, bMemberships, bTimers, bTimersByTime}
)

const (
	kindEvents    = 'e'
	kindMembers   = 'm'
	kindRevisions = 'v'
	kindKeys      = 'k' // client key → position; made at a room's first keyed event
)

// Store is a chat.Store in a bbolt file. Its methods are safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string
	opts Options

	mu      sync.Mutex
	cond    sync.Cond
	queue   []*request
	closing bool
	closed  atomic.Bool
	stopped chan struct{} // closed when the writer has exited

	// Writer state, used by the writer goroutine only.
	arena arena
	wtx   writeTx

	cur   batch // the batch under way
	stuck bool  // bbolt's writer lock may be held for good (writer only, then Close)

	stats struct{ commits, txs, reruns, failed atomic.Uint64 }
	cache *blockCache // nil if turned off
	log   *slog.Logger

	// down, once set, is the error every Update returns: the Store takes no more writes.
	down atomic.Pointer[error]

	// beforeCommit, when set (by tests), runs before each commit; an error fails the commit
	// as a write error would.
	beforeCommit func() error
	// testHook, when set (by tests), is called by the writer at the points named hook*,
	// outside any transaction's function; tx is the bbolt transaction at hookCommit.
	testHook func(point string, tx *bbolt.Tx)
}

// The writer's test hook points.
const (
	hookBatch     = "batch"     // a batch starts
	hookCommit    = "commit"    // its bbolt transaction is about to commit
	hookCommitted = "committed" // it committed; the AfterCommit functions have not run
)

// batch is the writer's state for the batch under way, where endBatch finds it after a panic.
type batch struct {
	live      []*request
	tx        *bbolt.Tx // the open bbolt transaction, if any
	txid      int       // its ID: the meta page's once it has committed
	committed bool      // tx committed: every live request not ended is acknowledged
	hooked    int       // live[:hooked] have had their AfterCommit functions run
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Commits is the number of bbolt commits that succeeded (each with one fsync unless
	// NoSync).
	Commits uint64
	// Transactions is the number of Update transactions those commits held: Transactions /
	// Commits is the average group size.
	Transactions uint64
	// Reruns counts batches run again without a transaction that failed after writing.
	Reruns uint64
	// FailedCommits counts commits that failed (every transaction in them failed too).
	FailedCommits uint64
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.stats.commits.Load(), Transactions: s.stats.txs.Load(),
		Reruns: s.stats.reruns.Load(), FailedCommits: s.stats.failed.Load()}
}

// request is one Update waiting for the writer.
type request struct {
	fn    func(chat.Tx) error
	state atomic.Int32 // queued, taken or cancelled
	err   error
	after []func()
	panic any // fn panicked with this; Update panics with it again
	done  chan struct{}
	ended bool // the writer has settled it (writer only)
}

const (
	queued int32 = iota
	taken
	cancelled
)

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// Open opens or creates the store at path. An existing file is checked first, read-only (see
// Options.SkipCheck): a damaged one is refused with an error wrapping ErrCorrupt; one that is
// not a bbolt database, or a bbolt database that is not a Parley store, is refused with an
// error saying so; none of them is written to. A file locked by another process makes Open
// fail after opts.Timeout.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case o.Timeout == 0:
		o.Timeout = DefaultTimeout
	case o.Timeout < 0:
		o.Timeout = time.Nanosecond
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	existing := false
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		empty, err := checkFile(path, o)
		if err != nil {
			return nil, err
		}
		existing = !empty
	}
	return open(path, o, existing)
}

// open opens the file for writing; existing says it holds a Parley store, which must not be
// laid out again.
func open(path string, o Options, existing bool) (s *Store, err error) {
	// The file was found sound, but reading its map can still fault (it may have changed
	// since): make that a panic, and the panic an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bbolt.DB
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			}
			s, err = nil, corruptErr(path, []string{fmt.Sprintf("opening it panicked: %v", p)})
		}
	}()
	db, err = bbolt.Open(path, o.Mode, &bbolt.Options{
		Timeout:         o.Timeout,
		NoSync:          o.NoSync,
		NoFreelistSync:  o.NoFreelistSync,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: o.InitialMmapSize,
		// bbolt's DB.Stats is never read: without it each transaction (each View too)
		// takes no extra lock and makes no atomic additions when it ends.
		NoStatistics: true,
		Logger:       o.bboltLogger,
	})
	if err != nil {
		return nil, openErr(path, o, err)
	}
	if existing {
		// checkFile found every bucket; a file that changed since is not written to.
		err = db.View(func(tx *bbolt.Tx) error {
			for _, name := range fixedBuckets {
				if tx.Bucket(name) == nil {
					return corruptErr(path, []string{fmt.Sprintf("bucket %q is missing", name)})
				}
			}
			return nil
		})
	} else { // a new file: lay it out
		err = db.Update(func(tx *bbolt.Tx) error {
			for _, name := range fixedBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bMeta).Put(kFormat, []byte(formatVersion))
		})
		if err != nil {
			err = fmt.Errorf("bolt store: initialise %s: %w", path, err)
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s = &Store{db: db, path: path, opts: o, stopped: make(chan struct{}), cache: newBlockCache(o.CacheEvents), log: o.Logger}
	s.cond.L = &s.mu
	s.wtx.s = s
	go s.writer()
	return s, nil
}

func openErr(path string, o Options, err error) error {
	switch {
	case errors.Is(err, bberrors.ErrTimeout):
		return fmt.Errorf("bolt store: %s is locked by another process (waited %v): %w", path, o.Timeout, err)
	case errors.Is(err, bberrors.ErrChecksum):
		// Both meta pages have bbolt's magic number and version but fail their checksums.
		return fmt.Errorf("bolt store: %s is not a valid bbolt database: %w: both meta pages fail their checksums (%w)", path, ErrCorrupt, err)
	case errors.Is(err, bberrors.ErrInvalid), errors.Is(err, bberrors.ErrVersionMismatch):
		return fmt.Errorf("bolt store: %s is not a valid bbolt database: %w", path, err)
	}
	return fmt.Errorf("bolt store: open %s: %w", path, err)
}

// checkFile checks an existing file read-only, before Open maps it for writing: that it is a
// bbolt database without damage (walkPages, then bbolt's Tx.Check; unless o.SkipCheck), and a
// Parley store. empty says it is a bbolt database holding nothing at all (a store whose
// creation was cut short), which Open may lay out.
func checkFile(path string, o Options) (empty bool, err error) {
	// Reading a damaged map can fault: make that a panic, and the panic an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			empty, err = false, corruptErr(path, []string{fmt.Sprintf("reading it panicked: %v", p)})
		}
	}()
	// Under bbolt's shared lock: a file another process is writing is reported locked.
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: o.Timeout})
	if err != nil {
		return false, openErr(path, o, err)
	}
	defer db.Close()
	if !o.SkipCheck {
		if err := checkPages(path); err != nil {
			return false, err
		}
	}
	err = db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Cursor().First(); k == nil {
			empty = true
			return nil
		}
		present := 0
		for _, name := range fixedBuckets {
			if tx.Bucket(name) != nil {
				present++
			}
		}
		m := tx.Bucket(bMeta)
		switch {
		case m == nil && present == 0:
			return fmt.Errorf("bolt store: %s is a bbolt database but not a Parley store (no %q bucket)", path, bMeta)
		case m != nil:
			if v := m.Get(kFormat); string(v) != formatVersion {
				return fmt.Errorf("bolt store: %s has format %q, want %q", path, v, formatVersion)
			}
		}
		for _, name := range fixedBuckets {
			if tx.Bucket(name) == nil {
				return corruptErr(path, []string{fmt.Sprintf("bucket %q is missing", name)})
			}
		}
		if o.SkipCheck {
			return nil
		}
		var found []string
		n := 0
		for err := range tx.Check() {
			if n++; len(found) < maxFindings {
				found = append(found, "bbolt: "+err.Error())
			}
		}
		if n > len(found) {
			found = append(found, fmt.Sprintf("and %d more", n-len(found)))
		}
		if len(found) > 0 {
			return corruptErr(path, found)
		}
		return nil
	})
	return empty, err
}

// Path returns the file the store is in.
func (s *Store) Path() string { return s.path }

func closedErr() error { return fmt.Errorf("bolt store: %w", chat.ErrClosed) }

var readTxPool = sync.Pool{New: func() any { return new(readTx) }}

// View implements chat.Store. The bbolt read transaction lasts as long as fn. A read that
// faults or makes bbolt panic (the file was damaged since Open) returns an error wrapping
// ErrCorrupt and chat.ErrUnavailable, and the Store takes no more writes; a panic of fn's own
// goes on up.
func (s *Store) View(ctx context.Context, fn func(chat.ReadTx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return closedErr()
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var tx *bbolt.Tx
	var rt *readTx
	returned := false
	defer func() {
		if !returned && storagePanic() {
			p := recover()
			err = s.corrupted(fmt.Sprintf("a read panicked: %v", p), debug.Stack())
		}
		if tx != nil {
			_ = tx.Rollback()
		}
		if rt != nil {
			rt.tx = nil
			readTxPool.Put(rt)
		}
	}()
	tx, err = s.db.Begin(false)
	if err != nil {
		returned = true
		if errors.Is(err, bberrors.ErrDatabaseNotOpen) {
			return closedErr()
		}
		return fmt.Errorf("bolt store: begin: %w", err)
	}
	rt = readTxPool.Get().(*readTx)
	rt.tx, rt.cache = tx, s.cache
	err = fn(rt)
	returned = true
	return err
}

// storagePanic reports whether the panic under way comes from the file; a deferred function
// calls it. It does if it is a memory fault at an address (which SetPanicOnFault makes a panic:
// the map of a damaged or shrunk file), or was raised in bbolt's code, which panics only when
// what it reads breaks its invariants. A panic raised elsewhere (in a transaction's function,
// an AfterCommit function, the writer's own code) does not.
func storagePanic() bool {
	var pcs [64]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case !panicking:
			panicking = f.Function == "runtime.gopanic"
		case f.Function == "runtime.panicmemAddr":
			return true
		case strings.HasPrefix(f.Function, "runtime."):
			// between gopanic and the code that panicked (sigpanic, panicBounds...)
		default:
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// corrupted stops the Store taking writes because the file was found damaged while serving,
// and returns the error for what found it.
func (s *Store) corrupted(cause string, stack []byte) error {
	err := fmt.Errorf("bolt store: %s: %w, no more writes: %s (%w)", s.path, ErrCorrupt, cause, chat.ErrUnavailable)
	s.halt(err, stack)
	return err
}

// halt makes every later Update fail with err, and logs the first time.
func (s *Store) halt(err error, stack []byte) {
	if s.down.CompareAndSwap(nil, &err) {
		s.log.Error("bolt store: writes stopped", "path", s.path, "err", err, "stack", string(stack))
	}
}

func (s *Store) downErr() error {
	if p := s.down.Load(); p != nil {
		return *p
	}
	return nil
}

// Update implements chat.Store: fn joins the next group commit and Update returns once that
// commit is durable (unless Options.NoSync).
func (s *Store) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p := s.down.Load(); p != nil && !s.closed.Load() {
		return *p
	}
	r := requestPool.Get().(*request)
	r.fn = fn
	r.state.Store(queued)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		r.fn = nil
		requestPool.Put(r)
		return closedErr()
	}
	s.queue = append(s.queue, r)
	if len(s.queue) == 1 {
		s.cond.Signal()
	}
	s.mu.Unlock()

	if done := ctx.Done(); done == nil {
		<-r.done // a context that never ends: a receive is cheaper than a select
	} else {
		select {
		case <-r.done:
		case <-done:
			if r.state.CompareAndSwap(queued, cancelled) {
				// The writer skips it; it may still hold a pointer, so r is not reused.
				return ctx.Err()
			}
			<-r.done // fn has run: report its outcome whatever ctx does
		}
	}
	err, p := r.err, r.panic
	r.fn, r.err, r.panic = nil, nil, nil
	requestPool.Put(r)
	if p != nil {
		panic(p)
	}
	return err
}

// Close implements chat.Store: the commit under way finishes, transactions still queued fail
// with chat.ErrClosed, and the file is closed once every View has ended.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return closedErr()
	}
	s.closing = true
	s.closed.Store(true)
	s.cond.Signal()
	s.mu.Unlock()
	<-s.stopped
	if s.stuck {
		// Closing would wait for bbolt's writer lock, which a panic left held.
		return fmt.Errorf("bolt store: close: %s stays open until the process ends: %w", s.path, s.downErr())
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt store: close: %w", err)
	}
	return nil
}

// maxYields bounds how often the writer yields waiting for the last batch's waiters to queue
// again.
const maxYields = 16

// writer is the one goroutine that writes.
func (s *Store) writer() {
	defer close(s.stopped)
	// Reading a damaged map faults: make that a panic, which commit recovers. The setting
	// belongs to this goroutine and ends with it.
	debug.SetPanicOnFault(true)
	var batch []*request
	last := 0 // size of the last batch
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closing {
			s.cond.Wait()
		}
		if s.closing {
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, r := range q {
				if r.state.CompareAndSwap(queued, taken) {
					r.err = closedErr()
					r.done <- struct{}{}
				}
			}
			return
		}
		if q := len(s.queue); q < last && !s.closing {
			// The waiters of the last batch are being woken and most will queue again at
			// once: give them a moment (a few yields, no timer) so that batches do not
			// alternate between big and small. A lone writer never gets here.
			idle := 0
			for range maxYields {
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
				if len(s.queue) >= last {
					break
				}
				if len(s.queue) == q {
					if idle++; idle == 2 {
						break
					}
				} else {
					idle = 0
				}
				q = len(s.queue)
			}
		}
		n := min(len(s.queue), s.opts.MaxBatch)
		last = n
		batch = append(batch[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()

		s.commit(batch)
		clear(batch)
	}
}

// settle reports r's outcome to its waiter. The writer must not touch r afterwards.
func settle(r *request, err error) {
	r.err = err
	r.ended = true
	clear(r.after) // keep no closures alive in the pool
	r.after = r.after[:0]
	r.done <- struct{}{}
}

// commit runs a batch of transactions in one bbolt transaction and one commit.
func (s *Store) commit(requests []*request) {
	b := &s.cur
	b.live = requests[:0]
	for _, r := range requests {
		if r.state.CompareAndSwap(queued, taken) {
			r.ended = false
			b.live = append(b.live, r)
		}
	}
	if len(b.live) == 0 {
		return
	}
	defer s.endBatch()
	s.hook(hookBatch, nil)
attempt:
	for {
		if err := s.downErr(); err != nil {
			s.failLive(err)
			return
		}
		tx, err := s.db.Begin(true)
		if err != nil {
			s.wtx.forget()
			s.failLive(fmt.Errorf("bolt store: begin: %w: %w", chat.ErrUnavailable, err))
			return
		}
		b.tx, b.txid = tx, tx.ID()
		newTx := true
		for _, r := range b.live {
			if r.ended {
				continue
			}
			w := &s.wtx
			w.begin(tx, newTx, r.after[:0])
			newTx = false
			err := s.run(w, r)
			r.after = w.after
			if err == nil {
				continue
			}
			if !w.dirty && r.panic == nil {
				settle(r, err) // it wrote nothing: the others go on
				continue
			}
			// It wrote something: start again without it.
			s.rollback()
			s.arena.reset()
			settle(r, err)
			s.stats.reruns.Add(1)
			continue attempt
		}
		if err = s.downErr(); err == nil && s.beforeCommit != nil {
			err = s.beforeCommit()
		}
		if err != nil { // damage found by a read meanwhile, or a test's write error
			s.rollback()
		} else {
			s.hook(hookCommit, tx)
			err = tx.Commit()
			b.tx = nil
		}
		if err != nil {
			s.wtx.forget() // they may hold what the lost transaction wrote
			s.stats.failed.Add(1)
			if s.downErr() == nil {
				// A full disk, an I/O error: the next commit may succeed.
				err = fmt.Errorf("bolt store: commit: %w: %w", chat.ErrUnavailable, err)
			}
			s.failLive(err)
			return
		}
		b.committed = true
		s.stats.commits.Add(1)
		s.hook(hookCommitted, nil)
		s.acknowledge()
		return
	}
}

func (s *Store) hook(point string, tx *bbolt.Tx) {
	if s.testHook != nil {
		s.testHook(point, tx)
	}
}

// rollback rolls back the batch's bbolt transaction and empties the writer's caches.
func (s *Store) rollback() {
	if tx := s.cur.tx; tx != nil {
		s.cur.tx = nil
		_ = tx.Rollback()
	}
	s.wtx.forget()
}

// failLive fails every transaction of the batch not yet settled.
func (s *Store) failLive(err error) {
	for _, r := range s.cur.live {
		if !r.ended {
			settle(r, err)
		}
	}
}

// acknowledge runs the AfterCommit functions of the committed batch, in order, and then
// acknowledges its waiters.
func (s *Store) acknowledge() {
	b := &s.cur
	for ; b.hooked < len(b.live); b.hooked++ {
		if r := b.live[b.hooked]; !r.ended {
			for _, f := range r.after {
				s.afterCommit(f)
			}
		}
	}
	n := 0
	for _, r := range b.live {
		if !r.ended {
			n++
			settle(r, nil)
		}
	}
	s.stats.txs.Add(uint64(n))
}

// afterCommit runs an AfterCommit function: a panic in it is logged, and its commit stands.
func (s *Store) afterCommit(f func()) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("bolt store: an AfterCommit function panicked (its transaction is committed)",
				"panic", p, "stack", string(debug.Stack()))
		}
	}()
	f()
}

// corruption carries a panic from the file out of run: the whole batch fails.
type corruption struct {
	cause any
	stack []byte
}

// endBatch ends the batch; after a panic in it (outside the transactions' functions, or one
// from the file inside them) it settles every waiter not yet settled, and the writer goes on.
func (s *Store) endBatch() {
	if p := recover(); p != nil {
		s.recoverBatch(p)
	}
	s.arena.reset()
	s.cur = batch{}
}

func (s *Store) recoverBatch(p any) {
	b := &s.cur
	var stack []byte
	fromFile := false
	if c, ok := p.(*corruption); ok {
		p, stack, fromFile = c.cause, c.stack, true
	} else {
		stack, fromFile = debug.Stack(), storagePanic()
	}
	committed := b.committed
	if tx := b.tx; tx != nil {
		b.tx = nil
		landed := s.landed(b.txid)
		switch {
		case tx.DB() == nil && landed:
			// bbolt closed the transaction after writing and syncing the meta page: the
			// panic came later (a commit handler), and the commit is durable.
			committed = true
		case tx.DB() == nil:
			// bbolt rolled it back itself.
		case landed:
			// The meta page is written but bbolt did not finish: its state cannot be trusted.
			s.stuck = !abort(tx)
			s.halt(fmt.Errorf("bolt store: %s: a commit panicked after writing its meta page: %v; no more writes until the file is opened again (%w)", s.path, p, chat.ErrUnavailable), stack)
		case !abort(tx):
			s.stuck = true
			s.halt(fmt.Errorf("bolt store: %s: bbolt could not roll back after a panic (%v): no more writes (%w)", s.path, p, chat.ErrUnavailable), stack)
		}
	}
	s.wtx.forget()
	if committed {
		if !b.committed {
			s.stats.commits.Add(1)
		}
		s.log.Error("bolt store: the writer panicked after a durable commit; its transactions are acknowledged",
			"panic", p, "stack", string(stack))
		s.acknowledge()
		return
	}
	var err error
	if fromFile {
		err = s.corrupted(fmt.Sprintf("the writer panicked: %v", p), stack)
	} else {
		err = fmt.Errorf("bolt store: the writer panicked: %v (%w)", p, chat.ErrUnavailable)
		s.log.Error("bolt store: the writer panicked; the transactions of its batch failed", "panic", p, "stack", string(stack))
	}
	if e := s.downErr(); e != nil && !fromFile {
		err = e
	}
	s.failLive(err)
}

// landed reports whether the meta page in use is that of transaction txid: it committed.
func (s *Store) landed(txid int) (yes bool) {
	defer func() {
		if recover() != nil {
			yes = false
		}
	}()
	tx, err := s.db.Begin(false)
	if err != nil {
		return false
	}
	defer tx.Rollback()
	return tx.ID() == txid
}

// abort rolls back a bbolt write transaction after a panic; it reports whether bbolt's writer
// lock is free again.
func abort(tx *bbolt.Tx) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	err := tx.Rollback()
	return err == nil || errors.Is(err, bberrors.ErrTxClosed)
}

// run calls r.fn, turning a panic into an error (the waiter panics again); a panic from the
// file goes on up to endBatch.
func (s *Store) run(w *writeTx, r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if storagePanic() {
				panic(&corruption{p, debug.Stack()})
			}
			r.panic = p
			err = fmt.Errorf("bolt store: transaction panicked: %v", p)
		}
	}()
	err = r.fn(w)
	w.tx = nil // fn must not keep tx
	return err
}

// arena holds the keys and values of one bbolt write transaction, which bbolt needs until
// the transaction ends: they are copied into large blocks instead of allocated one by one.
type arena struct {
	block   []byte
	scratch []byte // where records are encoded before they are copied in
}

const arenaBlock = 64 << 10

// copy returns a copy of b that stays valid until reset.
func (a *arena) copy(b []byte) []byte {
	if cap(a.block)-len(a.block) < len(b) {
		if len(b) > arenaBlock/4 {
			return append([]byte(nil), b...)
		}
		a.block = make([]byte, 0, arenaBlock)
	}
	n := len(a.block)
	a.block = append(a.block, b...)
	return a.block[n:len(a.block):len(a.block)]
}

// reset reuses the current block; call it only once the transaction has ended.
func (a *arena) reset() { a.block = a.block[:0] }
