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
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
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

	stats struct{ commits, txs, reruns, failed atomic.Uint64 }
	cache *blockCache // nil if turned off

	// beforeCommit, when set (by tests), runs before each commit; an error fails the commit
	// as a write error would.
	beforeCommit func() error
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

// Open opens or creates the store at path. A file that is not a bbolt database, or a bbolt
// database that is not a Parley store, is left untouched and Open returns an error saying so;
// a file locked by another process makes Open fail after opts.Timeout.
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
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		// Check an existing file read-only first, so that a foreign file is never written.
		if err := probe(path, o); err != nil {
			return nil, err
		}
	}
	db, err := bbolt.Open(path, o.Mode, &bbolt.Options{
		Timeout:         o.Timeout,
		NoSync:          o.NoSync,
		NoFreelistSync:  o.NoFreelistSync,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: o.InitialMmapSize,
		// bbolt's DB.Stats is never read: without it each transaction (each View too)
		// takes no extra lock and makes no atomic additions when it ends.
		NoStatistics: true,
	})
	if err != nil {
		return nil, openErr(path, o, err)
	}
	ready := db.View(func(tx *bbolt.Tx) error {
		for _, name := range fixedBuckets {
			if tx.Bucket(name) == nil {
				return errors.New("missing bucket")
			}
		}
		return nil
	}) == nil
	if !ready { // a new file: lay it out
		err = db.Update(func(tx *bbolt.Tx) error {
			if m := tx.Bucket(bMeta); m != nil {
				if v := m.Get(kFormat); string(v) != formatVersion {
					return fmt.Errorf("bolt store: %s has format %q, want %q", path, v, formatVersion)
				}
			}
			for _, name := range fixedBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bMeta).Put(kFormat, []byte(formatVersion))
		})
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt store: initialise %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: o, stopped: make(chan struct{}), cache: newBlockCache(o.CacheEvents)}
	s.cond.L = &s.mu
	s.wtx.s = s
	go s.writer()
	return s, nil
}

func openErr(path string, o Options, err error) error {
	switch {
	case errors.Is(err, bberrors.ErrTimeout):
		return fmt.Errorf("bolt store: %s is locked by another process (waited %v): %w", path, o.Timeout, err)
	case errors.Is(err, bberrors.ErrInvalid), errors.Is(err, bberrors.ErrVersionMismatch), errors.Is(err, bberrors.ErrChecksum):
		return fmt.Errorf("bolt store: %s is not a valid bbolt database: %w", path, err)
	}
	return fmt.Errorf("bolt store: open %s: %w", path, err)
}

// probe opens an existing file read-only and checks that it is a Parley store.
func probe(path string, o Options) (err error) {
	// A page past the end of a truncated file faults when read: make that a panic too.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		// bbolt panics on some corrupt pages; report that as a bad file.
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt store: %s is a corrupt bbolt database: %v", path, p)
		}
	}()
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: o.Timeout})
	if err != nil {
		return openErr(path, o, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return fmt.Errorf("bolt store: %s is a bbolt database but not a Parley store (no %q bucket)", path, bMeta)
		}
		if v := m.Get(kFormat); string(v) != formatVersion {
			return fmt.Errorf("bolt store: %s has format %q, want %q", path, v, formatVersion)
		}
		return nil
	})
}

// Path returns the file the store is in.
func (s *Store) Path() string { return s.path }

func closedErr() error { return fmt.Errorf("bolt store: %w", chat.ErrClosed) }

var readTxPool = sync.Pool{New: func() any { return new(readTx) }}

// View implements chat.Store. The bbolt read transaction lasts as long as fn.
func (s *Store) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return closedErr()
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		if errors.Is(err, bberrors.ErrDatabaseNotOpen) {
			return closedErr()
		}
		return fmt.Errorf("bolt store: begin: %w", err)
	}
	rt := readTxPool.Get().(*readTx)
	rt.tx, rt.cache = tx, s.cache
	defer func() {
		_ = tx.Rollback()
		rt.tx = nil
		readTxPool.Put(rt)
	}()
	return fn(rt)
}

// Update implements chat.Store: fn joins the next group commit and Update returns once that
// commit is durable (unless Options.NoSync).
func (s *Store) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
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
func (s *Store) commit(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(queued, taken) {
			r.ended = false
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	defer s.arena.reset()
attempt:
	for {
		tx, err := s.db.Begin(true)
		if err != nil {
			s.wtx.forget()
			err = fmt.Errorf("bolt store: begin: %w", err)
			for _, r := range live {
				if !r.ended {
					settle(r, err)
				}
			}
			return
		}
		newTx := true
		for _, r := range live {
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
			_ = tx.Rollback()
			s.wtx.forget()
			s.arena.reset()
			settle(r, err)
			s.stats.reruns.Add(1)
			continue attempt
		}
		if s.beforeCommit != nil {
			if err = s.beforeCommit(); err != nil {
				_ = tx.Rollback()
			}
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			s.wtx.forget() // they may hold what the lost transaction wrote
			s.stats.failed.Add(1)
			err = fmt.Errorf("bolt store: commit: %w", err)
			for _, r := range live {
				if !r.ended {
					settle(r, err)
				}
			}
			return
		}
		s.stats.commits.Add(1)
		n := 0
		for _, r := range live {
			if !r.ended {
				n++
				for _, f := range r.after {
					f()
				}
			}
		}
		s.stats.txs.Add(uint64(n))
		for _, r := range live {
			if !r.ended {
				settle(r, nil)
			}
		}
		return
	}
}

// run calls r.fn, turning a panic into an error (the waiter panics again).
func (s *Store) run(w *writeTx, r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
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
