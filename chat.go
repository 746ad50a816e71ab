// Package chat is Parley's chat engine: rooms, members, an append-only transcript per room
// with gapless positions, typing state and read receipts, on a pluggable Store.
//
// A program opens an Engine on a Store (storage/memory or storage/bolt), then creates users
// and rooms, joins users to rooms and sends messages. Every change to a room is an Event at
// the room's next position; Follow delivers a room's events from any position exactly once
// and in order, and Feed delivers the events of every room. The vendor surfaces in httpapi/...
// and wsapi/... translate their wire formats to this API; the engine knows no vendor.
package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the Engine and by Stores, wrapped with context; match them with errors.Is.
var (
	// ErrNotFound: the user, room, member or event does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique name is taken, or the operation conflicts with the current state
	// (an illegal member transition, editing a deleted message).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the user may not do this (join a private room uninvited, edit another's
	// message).
	ErrForbidden = errors.New("forbidden")
	// ErrNotMember: the user is not a joined member of the room.
	ErrNotMember = errors.New("not a member")
	// ErrInvalid: the input is malformed (empty or oversized text, invalid UTF-8, a position
	// past the end).
	ErrInvalid = errors.New("invalid input")
	// ErrEnded: the room has ended and takes no new messages.
	ErrEnded = errors.New("room ended")
	// ErrClosed: the Engine or Store is closed.
	ErrClosed = errors.New("closed")
	// ErrLagged: a Feed consumer fell behind and events were dropped from its buffer; see Feed.
	ErrLagged = errors.New("feed lagged")
	// ErrUnavailable: the store cannot serve the call now (its disk is full, an I/O error, a
	// database out of reach). The call may succeed if tried again later. Stores wrap the
	// cause with it; surfaces answer with their vendor's "try again" form.
	ErrUnavailable = errors.New("store unavailable")
)

// System returns the ID that stands for the embedding program itself where a user is
// expected: the zero ID, which names no user. System may post notices and custom events to any
// room and edit or delete any message without being a member; surfaces pass it only for
// callers they have authenticated as administrators. It is a function, not a variable, so
// that no importer can make another ID the administrator.
func System() ID { return ID{} }

// Clock tells the time and schedules work. Tests pass a fake clock to control typing expiry
// and room TTLs.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stopped first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Option configures an Engine.
type Option func(*options)

type options struct {
	clock        Clock
	typingTTL    time.Duration
	maxMessage   int
	logger       *slog.Logger
	followBuffer int
	feedBuffer   int
	entropy      io.Reader
	bus          Bus
	busSet       bool
	pollEvery    time.Duration
}

// WithClock sets the clock (default: the system clock).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithTypingTTL sets how long a typing indicator lasts without being renewed (default 10s).
func WithTypingTTL(d time.Duration) Option { return func(o *options) { o.typingTTL = d } }

// WithMaxMessageBytes sets the largest message text or body, in bytes (default 64 KiB).
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMessage = n } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithFollowBuffer sets how many recent events a followed room keeps in memory for its
// followers (default 256). A follower further behind reads the store instead.
func WithFollowBuffer(n int) Option { return func(o *options) { o.followBuffer = n } }

// WithFeedBuffer sets how many events a Feed holds for a slow consumer before it reports
// ErrLagged (default 4096).
func WithFeedBuffer(n int) Option { return func(o *options) { o.feedBuffer = n } }

// WithEntropy sets where the random part of IDs comes from (default crypto/rand). It exists
// for tests that drive two engines through the same calls and want the same IDs from both:
// IDs are the only thing that keeps rooms and users from being guessed, so never give an
// Engine that serves callers a predictable reader.
func WithEntropy(r io.Reader) Option { return func(o *options) { o.entropy = r } }

// WithBus sets the Bus through which the Engine learns what other processes sharing its
// Store commit. By default an Engine on a BusStore uses the store's Bus, and one on any other
// Store has none; WithBus(nil) turns it off (only for a process that is alone on the store).
func WithBus(b Bus) Option { return func(o *options) { o.bus, o.busSet = b, true } }

// WithTimerPoll sets how often the Engine loads the timers due soon from the Store (default:
// every second on a shared store, every minute otherwise). A timer another process set, or one
// whose process is gone, is acted on within about this long of its time.
func WithTimerPoll(d time.Duration) Option { return func(o *options) { o.pollEvery = d } }

// Engine is the chat engine. Its methods are safe for concurrent use.
type Engine struct {
	store  Store
	opts   options
	clock  Clock
	log    *slog.Logger
	ids    *idSource
	hubs   hubs
	feeds  feeds
	timers *scheduler
	shown  typingShown
	users  userCache // for RenderContext
	stats  stats
	bus    *busSync // nil unless the store is shared

	// storeDown holds the last write error that wrapped ErrUnavailable, until a write
	// succeeds; Health reports it.
	storeDown atomic.Pointer[error]

	// ctx is cancelled by Close; background work (typing expiry, room TTLs) runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	closeOnce sync.Once
}

// Open returns an Engine on store. The Engine does not own the store: Close it after the
// Engine.
func Open(ctx context.Context, store Store, opt ...Option) (*Engine, error) {
	o := options{
		clock:        realClock{},
		typingTTL:    10 * time.Second,
		maxMessage:   64 << 10,
		logger:       slog.Default(),
		followBuffer: 256,
		feedBuffer:   4096,
	}
	for _, f := range opt {
		f(&o)
	}
	if o.typingTTL <= 0 || o.maxMessage <= 0 || o.followBuffer <= 0 || o.feedBuffer <= 0 || o.pollEvery < 0 {
		return nil, invalidf("option out of range")
	}
	e := &Engine{store: store, opts: o, clock: o.clock, log: o.logger, ids: newIDSource(o.entropy)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.hubs.init(e)
	e.feeds.init(o.feedBuffer)
	bus := o.bus
	if bs, ok := store.(BusStore); ok && !o.busSet {
		bus = bs.Bus()
	}
	pollEvery := o.pollEvery
	if pollEvery == 0 {
		pollEvery = time.Minute // alone on its store, the engine knows every timer it sets
		if bus != nil {
			pollEvery = time.Second // others set timers too
		}
	}
	e.timers = newScheduler(e, pollEvery)
	if bus != nil {
		b, err := startBusSync(ctx, e, bus)
		if err != nil {
			e.cancel()
			return nil, err
		}
		e.bus = b
	}
	e.timers.startPolling()
	return e, nil
}

// Close stops background work, ends every Follower and Feed with ErrClosed, and waits for
// work under way. It does not close the Store.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.cancel()
		e.timers.stop()
		if e.bus != nil {
			e.bus.wait()
		}
		e.bg.Wait()
		e.hubs.closeAll(ErrClosed)
		e.feeds.closeAll()
	})
	return nil
}

func (e *Engine) closed() bool { return e.ctx.Err() != nil }

// Clock returns the engine's clock: surfaces tell the time with it, so that a test's fake
// clock moves them too.
func (e *Engine) Clock() Clock { return e.clock }

// now is the clock's time in UTC to the microsecond: the precision every Store keeps.
func (e *Engine) now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

// update runs fn in a store transaction and, once it is durable, publishes the events it
// appended to followers and feeds, in commit order. It returns the first event appended.
func (e *Engine) update(ctx context.Context, fn func(tx *wtx) error) (Event, error) {
	return e.updateWith(ctx, ID{}, fn, nil)
}

// updateIn is update for an operation on one room, which a RoomUpdater store is told of.
func (e *Engine) updateIn(ctx context.Context, room ID, fn func(tx *wtx) error) (Event, error) {
	return e.updateWith(ctx, room, fn, nil)
}

// updateWith is update with the room the operation is about (zero if it is about none or
// several) and an input event for fn in tx.ev.
func (e *Engine) updateWith(ctx context.Context, room ID, fn func(tx *wtx) error, ev *Event) (Event, error) {
	if e.closed() {
		return Event{}, fmt.Errorf("chat: engine: %w", ErrClosed)
	}
	w := wtxPool.Get().(*wtx)
	w.e, w.fn = e, fn
	if ev != nil {
		w.ev = *ev
	}
	var err error
	if ru, ok := e.store.(RoomUpdater); ok && !room.IsZero() {
		w.room[0] = room
		err = ru.UpdateRooms(ctx, w.room[:], w.run)
	} else {
		err = e.store.Update(ctx, w.run)
	}
	e.noteWrite(err)
	var first Event
	if err == nil {
		switch {
		case len(w.events) > 0:
			first = w.events[0]
		case w.found.Pos != 0:
			first = w.found
		}
		for _, t := range w.armed {
			e.timers.arm(t)
		}
	}
	clear(w.events)
	clear(w.armed)
	w.e, w.fn, w.Tx, w.events, w.armed = nil, nil, nil, w.events[:0], w.armed[:0]
	w.ev, w.scratch, w.found = Event{}, Event{}, Event{}
	wtxPool.Put(w)
	return first, err
}

// noteWrite remembers whether the store takes writes, for Health.
func (e *Engine) noteWrite(err error) {
	switch {
	case err == nil:
		if e.storeDown.Load() != nil {
			e.storeDown.Store(nil)
		}
	case errors.Is(err, ErrUnavailable):
		down := err // a copy: taking err's own address would move it to the heap on every call
		e.storeDown.Store(&down)
	}
}

// Health reports whether the engine can serve: nil, or an error that wraps ErrUnavailable
// when the store failed the last write (a full disk: reads still work, writes do not) or
// cannot be read now, or ErrClosed. A write that succeeds clears the failure.
func (e *Engine) Health(ctx context.Context) error {
	if e.closed() {
		return fmt.Errorf("chat: engine: %w", ErrClosed)
	}
	if err := e.storeDown.Load(); err != nil {
		return fmt.Errorf("chat: the store failed the last write: %w", *err)
	}
	err := e.store.View(ctx, func(tx ReadTx) error { _, err := tx.Rooms(ListFilter{Limit: 1}); return err })
	if err != nil && !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
		err = fmt.Errorf("chat: reading the store: %w (%w)", ErrUnavailable, err)
	}
	return err
}

// view runs fn in a read transaction.
func (e *Engine) view(ctx context.Context, fn func(tx ReadTx) error) error {
	if e.closed() {
		return fmt.Errorf("chat: engine: %w", ErrClosed)
	}
	return e.store.View(ctx, fn)
}

// wtx is a write transaction with the engine's helpers; it remembers what it appended so
// that it can publish it after the commit. wtxs are pooled: the method values run and publish
// are bound once.
type wtx struct {
	Tx
	e       *Engine
	fn      func(*wtx) error
	events  []Event
	armed   []Timer // to arm in this process once committed
	run     func(Tx) error
	publish func()

	// ev is the input of the hot operations (post), which pass a static fn and keep their
	// argument here rather than in a closure; scratch is what append hands the Store. Both
	// spare an allocation per event.
	ev      Event
	scratch Event
	// room is the one room of an operation, for RoomUpdater.UpdateRooms.
	room [1]ID
	// found is what an operation that appended nothing answers with (a Send retried with its
	// key returns the message it sent before).
	found Event
}

var wtxPool = sync.Pool{New: func() any {
	w := &wtx{events: make([]Event, 0, 1)}
	w.run = w.runTx
	w.publish = w.publishEvents
	return w
}}

func (w *wtx) runTx(tx Tx) error {
	w.Tx = tx
	clear(w.events)
	clear(w.armed)
	w.events, w.armed, w.found = w.events[:0], w.armed[:0], Event{} // a rerun starts afresh
	if err := w.fn(w); err != nil {
		return err
	}
	if len(w.events) > 0 {
		tx.AfterCommit(w.publish)
	}
	return nil
}

func (w *wtx) publishEvents() {
	w.e.stats.appended.Add(uint64(len(w.events)))
	w.e.publish(w.events)
}

// setTimer stores t and arms it in this process once the transaction commits.
func (w *wtx) setTimer(t Timer) error {
	if err := w.PutTimer(t); err != nil {
		return err
	}
	w.armed = append(w.armed, t)
	return nil
}

// append stamps ev with an ID and time, unless its caller did, appends it and returns it as
// stored.
func (w *wtx) append(ev Event) (Event, error) {
	w.scratch = ev
	if w.scratch.ID.IsZero() {
		now := w.e.now()
		w.scratch.ID = w.e.ids.New(now)
		w.scratch.Time = now
	}
	if err := w.Tx.Append(&w.scratch); err != nil {
		return Event{}, err
	}
	w.events = append(w.events, w.scratch)
	return w.scratch, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
