package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/chat"
)

type Options struct {
	// MaxBatch is the most transactions one commit holds (default 1024).
	MaxBatch int

	// ReadConns is the most connections reads (View, Bus.Changes) use at once (default 4 or
	// the number of CPUs, whichever is more). The writer, the listener and the maintenance
	// goroutine have a connection each besides.
	ReadConns int32

	// CacheEvents is how many events reads keep in memory, in complete blocks of 64
	// (default DefaultCacheEvents); negative turns the cache off.
	CacheEvents int

	// ChangesRetention is how long the bus's change rows are kept (default 10 minutes): a
	// Bus.Changes cursor older than that gets an error wrapping chat.ErrLagged.
	ChangesRetention time.Duration

	// PruneInterval is how often the elected process deletes old change rows, and how often
	// the others try to be elected (default ChangesRetention/10).
	PruneInterval time.Duration

	// WriteTimeout bounds one batch: its lock waits, statements and commit (default 30s).
	WriteTimeout time.Duration

	// Writers is how many writer goroutines run batches at once, each on a connection of
	// its own (default DefaultWriters). One is group commit as bolt does it; more overlap
	// one batch's round trips with another's commit.
	Writers int

	// noMemberCache turns off the writer's member cache (to measure it).
	noMemberCache bool
	// noGroupCommit commits every transaction on its own (to measure group commit).
	noGroupCommit bool
	// slack overrides lagSlack (tests).
	slack time.Duration
}

const DefaultWriters = 2

const DefaultChangesRetention = 10 * time.Minute

type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig
	opts    Options
	cache   *blockCache // nil if turned off

	mu      sync.Mutex
	cond    sync.Cond
	queue   []*request
	closing bool
	closed  atomic.Bool
	stopped chan struct{} // closed when the writer has exited

	front    []*request // deferred from a batch: they go first in the next (under mu)
	writers  sync.WaitGroup
	rcMu     sync.Mutex
	rc       map[chat.ID]*roomCache // the writers' member caches, by room
	sendMu   sync.Mutex
	lastDone chan struct{} // closed once the last commit sent has been settled (under sendMu)
	stats    stats

	bus    bus
	bg     context.Context // ends at Close, after the writer
	cancel context.CancelFunc
	bgWG   sync.WaitGroup
}

type stats struct {
	commits, txs, reruns, retries, failed, busy atomic.Uint64
}

type Stats struct {
	// Commits is the number of database commits that succeeded; Transactions / Commits is
	// the average batch.
	Commits uint64
	// Transactions is the number of Update transactions those commits held.
	Transactions uint64
	// Reruns counts batches run again without a transaction that failed after writing.
	Reruns uint64
	// Retries counts batches run again after a serialization failure, a deadlock or a lost
	// connection.
	Retries uint64
	// FailedCommits counts batches whose every transaction failed at the commit.
	FailedCommits uint64
	// Busy counts transactions taken out of a batch because they met a room that another
	// process's transaction held (they ran in a later batch).
	Busy uint64
}

func (s *Store) Stats() Stats {
	return Stats{Commits: s.stats.commits.Load(), Transactions: s.stats.txs.Load(), Reruns: s.stats.reruns.Load(),
		Retries: s.stats.retries.Load(), FailedCommits: s.stats.failed.Load(), Busy: s.stats.busy.Load()}
}

type request struct {
	fn        func(chat.Tx) error
	rooms     []chat.ID    // the rooms fn will touch, if the caller said (UpdateRooms)
	state     atomic.Int32 // queued, taken or cancelled
	err       error
	after     []func()
	panic     any
	done      chan struct{}
	ended     bool // the writer has settled it (writer only)
	deferred  bool // taken out of the current batch, for the next (writer only)
	deferrals int  // how many batches took it out (writer only)
}

const (
	queued int32 = iota
	taken
	cancelled
)

func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.noGroupCommit {
		o.MaxBatch = 1
	}
	if o.ReadConns <= 0 {
		o.ReadConns = int32(max(4, runtime.NumCPU()))
	}
	if o.ChangesRetention <= 0 {
		o.ChangesRetention = DefaultChangesRetention
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = o.ChangesRetention / 10
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Writers <= 0 {
		o.Writers = DefaultWriters
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	pcfg.MaxConns = o.ReadConns
	s := &Store{connCfg: pcfg.ConnConfig.Copy(), opts: o, stopped: make(chan struct{}), cache: newBlockCache(o.CacheEvents)}
	conn, err := pgx.ConnectConfig(ctx, s.connCfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", classify(err))
	}
	if _, err := migrate(ctx, conn, SchemaVersion); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres store: %w", classify(err))
	}
	s.cond.L = &s.mu
	s.rc = make(map[chat.ID]*roomCache)
	s.lastDone = make(chan struct{})
	close(s.lastDone)
	s.bg, s.cancel = context.WithCancel(context.Background())
	s.bus.init(s)
	for i := range o.Writers {
		w := &writer{s: s, stats: &s.stats}
		if i == 0 {
			w.conn = conn // the migration's connection; the others connect when first used
		}
		s.writers.Add(1)
		go s.writer(w)
	}
	go func() {
		s.writers.Wait()
		close(s.stopped)
	}()
	return s, nil
}

func (s *Store) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return closedErr()
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		if s.closed.Load() {
			return closedErr()
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("postgres store: begin: %w", classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rt := &readTx{reader: reader{ctx: ctx, q: tx}, s: s}
	return fn(rt)
}

func (s *Store) Update(ctx context.Context, fn func(chat.Tx) error) error {
	return s.UpdateRooms(ctx, nil, fn)
}

// UpdateRooms is Update for a transaction that says which rooms it will touch: the writer
// locks the rooms of all such transactions of a batch in one round trip (FOR UPDATE SKIP
// LOCKED) before it runs them, instead of one round trip per room when each is first
// touched. The rooms are a hint: fn may touch others, or fewer.
func (s *Store) UpdateRooms(ctx context.Context, rooms []chat.ID, fn func(chat.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{fn: fn, rooms: rooms, done: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return closedErr()
	}
	s.queue = append(s.queue, r)
	if len(s.queue) == 1 {
		s.cond.Signal()
	}
	s.mu.Unlock()

	if done := ctx.Done(); done == nil {
		<-r.done
	} else {
		select {
		case <-r.done:
		case <-done:
			if r.state.CompareAndSwap(queued, cancelled) {
				return ctx.Err() // the writer skips it
			}
			<-r.done // fn has run: report its outcome whatever ctx does
		}
	}
	err, p := r.err, r.panic
	if p != nil {
		panic(p)
	}
	return err
}

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
	s.cancel()
	s.bgWG.Wait()
	s.pool.Close()
	return nil
}

const maxYields = 16

const soloAfter = 3

func (s *Store) writer(w *writer) {
	defer s.writers.Done()
	var batch []*request
	last := 0
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && len(s.front) == 0 && !s.closing {
			s.cond.Wait()
		}
		if s.closing {
			q, f := s.queue, s.front
			s.queue, s.front = nil, nil
			s.cond.Broadcast() // the other writers
			s.mu.Unlock()
			for _, r := range q {
				if r.state.CompareAndSwap(queued, taken) {
					r.err = closedErr()
					r.done <- struct{}{}
				}
			}
			for _, r := range f {
				settle(r, closedErr())
			}
			if w.conn != nil {
				w.conn.Close(context.Background())
			}
			return
		}
		if q := len(s.queue); q < last && len(s.front) == 0 {
			// The waiters of the last batch are being woken and most will queue again at
			// once: give them a moment (a few yields, no timer). A lone writer never gets
			// here.
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
		batch = batch[:0]
		solo := false
		if len(s.front) > 0 && s.front[0].deferrals >= soloAfter {
			// Taken out again and again: alone, every lock waits.
			batch = append(batch, s.front[0])
			s.front = append(s.front[:0], s.front[1:]...)
			solo = true
		} else {
			batch = append(batch, s.front...)
			clear(s.front)
			s.front = s.front[:0]
			n := min(len(s.queue), max(0, s.opts.MaxBatch-len(batch)))
			batch = append(batch, s.queue[:n]...)
			rest := copy(s.queue, s.queue[n:])
			clear(s.queue[rest:])
			s.queue = s.queue[:rest]
		}
		if len(s.queue) > 0 || len(s.front) > 0 {
			s.cond.Signal() // more for another writer
		}
		last = len(batch)
		s.mu.Unlock()

		s.commit(w, batch, solo)
		clear(batch)
	}
}

func settle(r *request, err error) {
	r.err = err
	r.ended = true
	clear(r.after)
	r.after = r.after[:0]
	r.done <- struct{}{}
}

const maxRetries = 8

const maxConnRetries = 3

func (s *Store) commit(w *writer, batch []*request, solo bool) {
	live := batch[:0]
	for _, r := range batch {
		if r.deferred || r.state.CompareAndSwap(queued, taken) {
			r.ended, r.deferred = false, false
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.bg, s.opts.WriteTimeout)
	retries := 0
	failAll := func(err error) {
		for _, r := range live {
			if !r.ended && !r.deferred {
				settle(r, err)
			}
		}
		s.requeue(live)
		cancel()
	}
	// retry reports whether the batch may run again after err, and waits a little if so.
	retry := func(err error) bool {
		if retries >= maxRetries || ctx.Err() != nil {
			return false
		}
		if !retryable(err) && (!errors.Is(classify(err), chat.ErrUnavailable) || retries >= maxConnRetries) {
			return false
		}
		retries++
		s.stats.retries.Add(1)
		if !retryable(err) { // a connection problem: give the database a moment
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(retries*retries) * 20 * time.Millisecond):
			}
		}
		return true
	}
attempt:
	for {
		if w.conn == nil || w.conn.IsClosed() {
			conn, err := pgx.ConnectConfig(ctx, s.connCfg.Copy())
			if err != nil {
				if retry(err) {
					continue attempt
				}
				failAll(fmt.Errorf("connect: %w", classify(err)))
				return
			}
			w.conn = conn
		}
		w.reset(ctx, solo)
		if !solo {
			w.prefetch(live)
		}
		for _, r := range live {
			if r.ended || r.deferred {
				continue
			}
			w.beginFn(r.after[:0])
			err := s.run(w, r)
			r.after = w.after
			switch {
			case w.broken != nil:
				// A statement failed: the database transaction is aborted.
				broken := w.broken
				w.rollback()
				if retryable(broken) || errors.Is(classify(broken), chat.ErrUnavailable) {
					if retry(broken) {
						continue attempt
					}
					failAll(fmt.Errorf("postgres store: %w", classify(broken)))
					return
				}
				// The statement of this transaction failed (a value the database refuses, a
				// name taken by a transaction that committed meanwhile): fail it alone.
				settle(r, fmt.Errorf("postgres store: %w", classify(broken)))
				s.stats.reruns.Add(1)
				continue attempt
			case w.busy:
				r.deferred, r.panic = true, nil
				if w.dirty {
					w.rollback()
					continue attempt
				}
				w.undoFn()
			case err != nil || r.panic != nil:
				if !w.dirty && r.panic == nil {
					w.undoFn()
					settle(r, err) // it wrote nothing: the others go on
					continue
				}
				w.rollback()
				settle(r, err)
				s.stats.reruns.Add(1)
				continue attempt
			}
		}
		acks := make([]*request, 0, len(live))
		for _, r := range live {
			if !r.ended && !r.deferred {
				acks = append(acks, r)
			}
		}
		s.requeue(live)
		// Commits are settled in the order they were sent: a room's commits are sent in
		// its commit order (a writer locks the room only once the last commit that held
		// it is done), so its AfterCommit functions run in position order.
		done := make(chan struct{})
		s.sendMu.Lock()
		br := w.send()
		prev := s.lastDone
		s.lastDone = done
		s.sendMu.Unlock()
		s.complete(w, br, acks, prev, done, cancel)
		if w.ok {
			w.committed()
		} else {
			w.forgetTouched()
		}
		return
	}
}

func (s *Store) requeue(live []*request) {
	for _, r := range live {
		if r.deferred {
			r.deferrals++
			s.mu.Lock()
			s.front = append(s.front, r)
			s.cond.Signal()
			s.mu.Unlock()
		}
	}
}

func (s *Store) complete(w *writer, br pgx.BatchResults, acks []*request, prev, done chan struct{}, cancel context.CancelFunc) {
	defer close(done)
	err := w.finish(br)
	cancel()
	<-prev
	w.ok = err == nil
	if err != nil {
		s.stats.failed.Add(1)
		err = fmt.Errorf("postgres store: commit: %w", classify(err))
		for _, r := range acks {
			settle(r, err)
		}
		return
	}
	if br != nil {
		s.stats.commits.Add(1)
		if len(w.log) > 0 {
			s.bus.notify()
		}
	}
	for _, r := range acks {
		for _, f := range r.after {
			f()
		}
	}
	s.stats.txs.Add(uint64(len(acks)))
	for _, r := range acks {
		settle(r, nil)
	}
}

func (s *Store) run(w *writer, r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panic = p
			err = fmt.Errorf("postgres store: transaction panicked: %v", p)
		}
	}()
	return r.fn(w)
}
