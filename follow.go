package chat

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"
)

// publish hands committed events to the followers of their rooms and to every Feed. It runs
// after each commit (Tx.AfterCommit); each room's events arrive in position order from a store
// with one writer, and a hub copes when they do not.
func (e *Engine) publish(evs []Event) {
	for i := range evs {
		if h := e.hubs.get(evs[i].RoomID); h != nil {
			h.publish(&evs[i])
		}
	}
	if e.bus != nil {
		e.bus.poke() // feeds of a shared store take every room's events from the Bus, in order
		return
	}
	e.feeds.publish(evs)
}

// hubs holds a hub per room that has followers.
type hubs struct {
	e  *Engine
	mu sync.RWMutex
	m  map[ID]*hub
}

func (hs *hubs) init(e *Engine) { hs.e, hs.m = e, make(map[ID]*hub) }

func (hs *hubs) get(room ID) *hub {
	hs.mu.RLock()
	h := hs.m[room]
	hs.mu.RUnlock()
	return h
}

func (hs *hubs) acquire(room ID) *hub {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.m[room]
	if h == nil {
		h = &hub{e: hs.e, room: room, max: hs.e.opts.followBuffer, wake: make(chan struct{})}
		hs.m[room] = h
	}
	h.refs++
	return h
}

func (hs *hubs) release(h *hub) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.refs--
	if h.refs == 0 && hs.m[h.room] == h {
		delete(hs.m, h.room)
	}
}

func (hs *hubs) deleted(room ID) {
	if h := hs.get(room); h != nil {
		h.fail(fmt.Errorf("chat: room %s was deleted: %w", room, ErrNotFound))
	}
}

// rooms returns the IDs of the followed rooms.
func (hs *hubs) rooms() []ID {
	hs.mu.RLock()
	defer hs.mu.RUnlock()
	ids := make([]ID, 0, len(hs.m))
	for id := range hs.m {
		ids = append(ids, id)
	}
	return ids
}

func (hs *hubs) closeAll(err error) {
	hs.mu.RLock()
	defer hs.mu.RUnlock()
	for _, h := range hs.m {
		h.fail(fmt.Errorf("chat: engine: %w", err))
	}
}

// hub keeps a followed room's recent events in a ring and wakes its followers. Positions
// low..high are in the ring, and everything up to known is durable in the store. When known
// passes high (another process appended, or this process's commits arrived out of order), one
// reader, the hub's fill, brings the ring up to known from the store, for all its followers.
type hub struct {
	e    *Engine
	room ID
	max  int // the ring's largest size
	refs int // guarded by hubs.mu

	mu      sync.Mutex
	ready   bool   // high is known
	high    uint64 // last position in the ring
	low     uint64 // first position in the ring
	known   uint64 // last position known to be committed
	filling bool   // a fill goroutine is running
	ring    []Event
	wake    chan struct{}
	err     error

	// The shared outbound path (subscribe.go): frames rendered once per event and format,
	// kept beside the ring, for every Subscription of the room.
	frames    []slotFrames // frames[p%len] belongs to ring[p%len]
	rendered  uint64       // positions up to here have been rendered for every format
	rendering bool         // a render goroutine is running
	subs      map[*Subscription]struct{}
	formats   map[*Format]int // the subscribers' formats, counted
	present   map[ID]int      // users present (Presence subscriptions), counted
	snap      *Room           // the room as last read, for RenderContext; nil to read again
	roomRead  atomic.Int64    // when snap was read (UnixNano)
}

// start sets the hub's position from the store the first time a follower arrives; what was
// published meanwhile is read from the store.
func (h *hub) start(last uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ready {
		h.advanceLocked(last)
		return
	}
	h.ready, h.high, h.low = true, last, last+1
	h.advanceLocked(last)
}

func (h *hub) publish(ev *Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.err != nil:
	case !h.ready:
		h.known = max(h.known, ev.Pos) // start reads it
	case ev.Pos == h.high+1:
		h.put(ev)
		h.known = max(h.known, h.high)
		h.notify()
	case ev.Pos > h.high+1:
		h.advanceLocked(ev.Pos)
	}
}

// advance tells the hub that positions up to pos are committed.
func (h *hub) advance(pos uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advanceLocked(pos)
}

func (h *hub) advanceLocked(pos uint64) {
	h.known = max(h.known, pos)
	if h.ready && h.err == nil && h.known > h.high && !h.filling {
		h.filling = true
		h.e.bg.Add(1)
		go h.fill()
	}
}

func (h *hub) notify() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// fill reads the store into the ring until it holds everything known to be committed.
func (h *hub) fill() {
	defer h.e.bg.Done()
	var buf []Event
	backoff := 10 * time.Millisecond
	for {
		h.mu.Lock()
		if h.err != nil || h.high >= h.known || h.e.closed() {
			h.filling = false
			h.mu.Unlock()
			return
		}
		from := h.high + 1
		h.mu.Unlock()
		var err error
		buf, err = h.e.readEvents(h.e.ctx, h.room, from, followBatch, buf[:0])
		if isNotFound(err) {
			h.fail(fmt.Errorf("chat: room %s was deleted: %w", h.room, ErrNotFound))
			continue
		}
		if err != nil || len(buf) == 0 {
			if err != nil && !h.e.closed() {
				h.e.log.Warn("chat: reading a followed room", "room", h.room, "err", err)
			}
			select { // the store is down or behind what we were told: try again soon
			case <-time.After(backoff):
			case <-h.e.ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		h.mu.Lock()
		for i := range buf {
			if buf[i].Pos == h.high+1 {
				h.put(&buf[i])
			}
		}
		h.known = max(h.known, h.high)
		h.notify()
		h.mu.Unlock()
		clear(buf)
	}
}

// readEvents reads up to limit events of a room from position from on.
func (e *Engine) readEvents(ctx context.Context, room ID, from uint64, limit int, dst []Event) ([]Event, error) {
	err := e.store.View(ctx, func(tx ReadTx) (err error) {
		dst, err = tx.Events(room, from, limit, false, dst)
		return err
	})
	return dst, err
}

// put adds the next event to the ring, growing it up to max and then overwriting the oldest,
// and has it rendered for the room's subscribers.
func (h *hub) put(ev *Event) {
	n := uint64(len(h.ring))
	if h.high+1-h.low >= n && len(h.ring) < h.max {
		size := uint64(min(max(2*len(h.ring), 8), h.max))
		grown := make([]Event, size)
		var frames []slotFrames
		if h.frames != nil {
			frames = make([]slotFrames, size)
		}
		for p := h.low; p <= h.high; p++ {
			grown[p%size] = h.ring[p%n]
			if frames != nil {
				frames[p%size] = h.frames[p%n]
			}
		}
		h.ring, h.frames, n = grown, frames, size
	}
	h.high++
	h.ring[h.high%n] = *ev
	if h.frames != nil {
		h.frames[h.high%n] = nil
	}
	if h.high-h.low >= n {
		h.low = h.high - n + 1
	}
	if len(h.subs) > 0 {
		h.renderLocked()
	}
}

func (h *hub) fail(err error) {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return
	}
	h.err = err
	close(h.wake)
	var notify []func()
	for s := range h.subs {
		if s.o.Notify != nil {
			s.waiting = false
			notify = append(notify, s.o.Notify)
		}
	}
	h.mu.Unlock()
	for _, f := range notify {
		f()
	}
}

// followBatch is how many events a follower takes at a time, from the ring or the store.
const followBatch = 64

// Follower delivers a room's events in position order, each exactly once, from a starting
// position on: first what is stored, then live events as they are committed. A follower that
// falls behind the room's in-memory buffer reads the store, so it never holds up writers and
// its memory stays bounded. A Follower is used by one goroutine at a time.
type Follower struct {
	e    *Engine
	h    *hub
	next uint64
	buf  []Event
	off  int
	done atomic.Bool
	stop chan struct{}
}

// Follow returns a Follower of a room whose first event is the one at position from; a from
// of 0 means the next event to be appended. It returns ErrNotFound for an unknown room and
// ErrInvalid for a from beyond the next position.
func (e *Engine) Follow(ctx context.Context, roomID ID, from uint64) (*Follower, error) {
	if e.closed() {
		return nil, fmt.Errorf("chat: engine: %w", ErrClosed)
	}
	h := e.hubs.acquire(roomID)
	var r Room
	err := e.store.View(ctx, func(tx ReadTx) (err error) { r, err = tx.Room(roomID); return err })
	if err == nil && from > r.LastPos+1 {
		err = invalidf("follow from position %d of room %s, whose next is %d", from, roomID, r.LastPos+1)
	}
	if err != nil {
		e.hubs.release(h)
		return nil, err
	}
	h.start(r.LastPos)
	if from == 0 {
		from = r.LastPos + 1
	}
	return &Follower{e: e, h: h, next: from, stop: make(chan struct{})}, nil
}

// Next returns the next event, waiting for it if need be. It returns ctx.Err() when ctx ends,
// ErrNotFound if the room is deleted, ErrClosed once the Follower or the Engine is closed.
func (f *Follower) Next(ctx context.Context) (Event, error) {
	for {
		ev, ok, wake, err := f.next1(ctx)
		if ok || err != nil {
			return ev, err
		}
		select {
		case <-wake:
		case <-f.stop:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// TryNext returns the next event if one is ready, without waiting: ok is false when there is
// none yet. With Ready, it lets a goroutine that waits on other things too (a socket, a timer)
// follow a room without a goroutine of its own. Its errors are Next's.
func (f *Follower) TryNext(ctx context.Context) (ev Event, ok bool, err error) {
	ev, ok, _, err = f.next1(ctx)
	return ev, ok, err
}

// Ready returns a channel that is closed when TryNext may have an event or an error to
// return. Take a new channel after each wait.
func (f *Follower) Ready() <-chan struct{} {
	if f.off < len(f.buf) || f.done.Load() {
		return closedChan
	}
	h := f.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil || f.next <= h.high {
		return closedChan
	}
	return h.wake
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// next1 returns the next event if it is ready; otherwise the channel to wait on.
func (f *Follower) next1(ctx context.Context) (Event, bool, <-chan struct{}, error) {
	for {
		if f.off < len(f.buf) {
			ev := f.buf[f.off]
			f.buf[f.off] = Event{}
			f.off++
			f.next = ev.Pos + 1
			return ev, true, nil, nil
		}
		if f.done.Load() {
			return Event{}, false, nil, fmt.Errorf("chat: follower: %w", ErrClosed)
		}
		f.buf, f.off = f.buf[:0], 0
		h := f.h
		h.mu.Lock()
		if h.err != nil {
			err := h.err
			h.mu.Unlock()
			return Event{}, false, nil, err
		}
		if f.next <= h.high && f.next >= h.low {
			n := uint64(len(h.ring))
			for p := f.next; p <= h.high && len(f.buf) < followBatch; p++ {
				f.buf = append(f.buf, h.ring[p%n])
			}
			h.mu.Unlock()
			continue
		}
		if f.next <= h.high {
			// Behind the ring: everything up to high is in the store.
			h.mu.Unlock()
			if err := f.readStore(ctx); err != nil {
				return Event{}, false, nil, err
			}
			continue
		}
		wake := h.wake
		h.mu.Unlock()
		return Event{}, false, wake, nil
	}
}

func (f *Follower) readStore(ctx context.Context) error {
	err := f.e.store.View(ctx, func(tx ReadTx) (err error) {
		f.buf, err = tx.Events(f.h.room, f.next, followBatch, false, f.buf[:0])
		return err
	})
	if err == nil && (len(f.buf) == 0 || f.buf[0].Pos != f.next) {
		err = fmt.Errorf("chat: room %s: position %d missing from the store: %w", f.h.room, f.next, ErrNotFound)
	}
	return err
}

// Pos returns the position of the next event Next will return.
func (f *Follower) Pos() uint64 { return f.next }

// All returns an iterator over the Follower's events, for range loops: it yields each event
// with a nil error, or the error that ends it (ctx's, ErrNotFound, ErrClosed), and stops there.
func (f *Follower) All(ctx context.Context) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := f.Next(ctx)
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the Follower; a Next under way returns soon after with ErrClosed or ctx's error.
func (f *Follower) Close() error {
	if f.done.CompareAndSwap(false, true) {
		close(f.stop)
		f.e.hubs.release(f.h)
	}
	return nil
}

// feeds holds the Feeds.
type feeds struct {
	size int
	n    atomic.Int32
	mu   sync.RWMutex
	all  map[*Feed]struct{}
}

func (fs *feeds) init(size int) { fs.size, fs.all = size, make(map[*Feed]struct{}) }

func (fs *feeds) publish(evs []Event) {
	if fs.n.Load() == 0 {
		return
	}
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	for f := range fs.all {
		f.push(evs)
	}
}

// lagged tells every Feed that events were lost, as if each had fallen behind.
func (fs *feeds) lagged() {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	for f := range fs.all {
		f.mu.Lock()
		f.lagged = true
		f.mu.Unlock()
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (fs *feeds) remove(f *Feed) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := fs.all[f]; ok {
		delete(fs.all, f)
		fs.n.Add(-1)
	}
}

func (fs *feeds) closeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for f := range fs.all {
		f.shut()
		delete(fs.all, f)
		fs.n.Add(-1)
	}
}

// Feed delivers the events of every room as they are committed, each room's in position
// order, each exactly once. On a store of one process that is commit order across rooms as
// well; on a shared store (a Bus) events reach the Feed a room at a time, so only each room's
// order holds.
//
// A Feed holds a bounded queue, which grows only as far as the consumer falls behind. A
// consumer that falls further loses nothing: for each room whose events no longer fit, the
// Feed remembers the first position it did not queue, and once the consumer has drained the
// queue it reads those rooms' events from the store, then goes on with live ones. Only when
// the engine itself lost track of other processes' commits (a Bus cursor past its retention)
// does Next return ErrLagged, after everything queued before; the consumer then compares the
// rooms it cares about with the store.
//
// A Feed starts with the events committed after it is made (on a shared store, some
// committed just before may come too). A consumer that also wants the state before makes the
// Feed first, then reads the rooms: an event from the Feed at or below a room's LastPos as
// read then is one it already has.
type Feed struct {
	e      *Engine
	fs     *feeds
	max    int
	mu     sync.Mutex
	q      []Event // q[head:] are queued
	head   int
	behind map[ID]feedGap // rooms whose events from gap.from on are read from the store
	lagged bool           // the engine lost events; told once q is drained
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
	buf    []Event
}

// feedGap is a room's events a Feed did not queue: from the first to the last known.
type feedGap struct{ from, to uint64 }

// Feed returns a new Feed of every room's events from now on.
func (e *Engine) Feed() *Feed {
	f := &Feed{e: e, fs: &e.feeds, max: e.opts.feedBuffer, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	e.feeds.mu.Lock()
	defer e.feeds.mu.Unlock()
	if e.closed() {
		f.shut()
		return f
	}
	e.feeds.all[f] = struct{}{}
	e.feeds.n.Add(1)
	return f
}

func (f *Feed) push(evs []Event) {
	f.mu.Lock()
	for i := range evs {
		ev := &evs[i]
		if g, ok := f.behind[ev.RoomID]; ok { // read from the store, after what is queued
			g.to = max(g.to, ev.Pos)
			f.behind[ev.RoomID] = g
			continue
		}
		if len(f.q)-f.head >= f.max {
			if f.behind == nil {
				f.behind = make(map[ID]feedGap)
			}
			f.behind[ev.RoomID] = feedGap{ev.Pos, ev.Pos}
			continue
		}
		if f.head > 0 && f.head == len(f.q) {
			f.q, f.head = f.q[:0], 0
		}
		f.q = append(f.q, *ev)
	}
	f.mu.Unlock()
	f.signal()
}

func (f *Feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Next returns the next event. It returns ctx.Err() when ctx ends, ErrClosed after Close or
// the Engine's Close, ErrLagged once after the engine lost track of other processes' commits
// (see Feed), and a store's error when it could not read a room the Feed had to catch up on
// (Next may be called again).
func (f *Feed) Next(ctx context.Context) (Event, error) {
	for {
		f.mu.Lock()
		if f.head < len(f.q) {
			ev := f.q[f.head]
			f.q[f.head] = Event{}
			f.head++
			if f.head > 64 && f.head*2 > len(f.q) { // keep the queue from creeping along
				n := copy(f.q, f.q[f.head:])
				clear(f.q[n:])
				f.q, f.head = f.q[:n], 0
			}
			f.mu.Unlock()
			return ev, nil
		}
		if cap(f.q) > 2*minFeedCap { // drained: give back what a burst grew
			f.q, f.head = nil, 0
		}
		if len(f.behind) > 0 {
			var room ID
			var g feedGap
			for room, g = range f.behind {
				break
			}
			f.mu.Unlock()
			if err := f.catchUp(ctx, room, g); err != nil {
				return Event{}, err
			}
			continue
		}
		lagged := f.lagged
		f.lagged = false
		f.mu.Unlock()
		if lagged {
			return Event{}, fmt.Errorf("chat: feed: %w", ErrLagged)
		}
		select {
		case <-f.wake:
		case <-f.closed:
			return Event{}, fmt.Errorf("chat: feed: %w", ErrClosed)
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// catchUp queues the next batch of a room's events the Feed did not queue live.
func (f *Feed) catchUp(ctx context.Context, room ID, g feedGap) error {
	var err error
	f.buf, err = f.e.readEvents(ctx, room, g.from, int(min(g.to-g.from+1, followBatch)), f.buf[:0])
	if err != nil && !isNotFound(err) {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.behind[room]
	if isNotFound(err) || len(f.buf) == 0 { // deleted since
		delete(f.behind, room)
		return nil
	}
	f.q = append(f.q, f.buf...)
	cur.from = f.buf[len(f.buf)-1].Pos + 1
	if cur.from > cur.to {
		delete(f.behind, room) // caught up: live events go to the queue again
	} else {
		f.behind[room] = cur
	}
	clear(f.buf)
	return nil
}

// All returns an iterator over the Feed's events, for range loops: it yields each event with
// a nil error, or the error that ends it (ctx's, ErrClosed...), and stops there. An ErrLagged
// is yielded without ending it.
func (f *Feed) All(ctx context.Context) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := f.Next(ctx)
			if !yield(ev, err) || (err != nil && !errors.Is(err, ErrLagged)) {
				return
			}
		}
	}
}

// minFeedCap is the queue capacity a drained Feed keeps.
const minFeedCap = 64

// Close ends the Feed; a Next under way returns ErrClosed.
func (f *Feed) Close() error {
	f.fs.remove(f)
	f.shut()
	return nil
}

func (f *Feed) shut() { f.once.Do(func() { close(f.closed) }) }
