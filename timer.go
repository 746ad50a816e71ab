package chat

import (
	"container/heap"
	"runtime/debug"
	"sync"
	"time"
)

// Timers (typing expiry, room TTLs) are kept in the Store, so that they outlive the process
// that set them. Each Engine arms the ones it sets, and loads the ones due soon from the Store
// now and then (the poll), which brings it those set before it opened and those other
// processes set. Acting on a timer is a transaction that reads it again and does nothing if
// it is gone or no longer due, so two processes acting on one timer do no more than one.

type timerKey struct {
	kind   TimerKind
	room   ID
	member ID
}

type timerItem struct {
	at  time.Time
	key timerKey
}

type timerHeap []timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].key.less(h[j].key) // deadlines that tie act in one order, whatever the heap did
}

func (a timerKey) less(b timerKey) bool {
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if c := compareID(a.room, b.room); c != 0 {
		return c < 0
	}
	return compareID(a.member, b.member) < 0
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// scheduler is the engine's one clock timer: a heap of deadlines and a single clock timer
// armed for the earliest. Entries are checked in the Store when they fire, so a moved or
// cancelled deadline leaves a stale entry behind that does nothing.
type scheduler struct {
	e       *Engine
	mu      sync.Mutex
	h       timerHeap
	armedAt time.Time
	cancel  func() bool
	stopped bool

	pollEvery  time.Duration
	pollCancel func() bool
}

// pollBatch is the most timers one poll loads.
const pollBatch = 1000

func newScheduler(e *Engine, pollEvery time.Duration) *scheduler {
	return &scheduler{e: e, pollEvery: pollEvery}
}

// arm schedules t in this process.
func (s *scheduler) arm(t Timer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	heap.Push(&s.h, timerItem{t.At, timerKey{t.Kind, t.Room, t.Member}})
	s.armLocked()
}

// armLocked makes sure the clock timer fires at the earliest deadline.
func (s *scheduler) armLocked() {
	if len(s.h) == 0 {
		return
	}
	at := s.h[0].at
	if s.cancel != nil && !s.armedAt.After(at) {
		return
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.armedAt = at
	s.cancel = s.e.clock.AfterFunc(at.Sub(s.e.clock.Now()), s.fire)
}

func (s *scheduler) fire() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.cancel = nil
	now := s.e.now()
	var due []timerItem
	seen := make(map[timerKey]bool)
	for len(s.h) > 0 && !s.h[0].at.After(now) {
		it := heap.Pop(&s.h).(timerItem)
		if !seen[it.key] { // a timer armed twice (set here, then loaded by a poll) acts once
			seen[it.key] = true
			due = append(due, it)
		}
	}
	s.e.bg.Add(1)
	s.mu.Unlock()
	defer s.e.bg.Done()

	for _, it := range due {
		s.run(it, now)
	}

	s.mu.Lock()
	if !s.stopped {
		s.armLocked()
	}
	s.mu.Unlock()
}

// run does the work of one deadline. A panic in it is logged with its stack and contained:
// the timer goroutine is not net/http's, and one bad deadline must not take the process down.
func (s *scheduler) run(it timerItem, now time.Time) {
	k := it.key
	defer func() {
		if p := recover(); p != nil {
			s.e.log.Error("chat: panic in a timer", "kind", k.kind, "room", k.room, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if testHookTimer != nil {
		testHookTimer(k)
	}
	s.e.fireTimer(it, now)
}

// testHookTimer, when set by a test, runs before each deadline's work.
var testHookTimer func(timerKey)

// startPolling loads the timers due soon now and then every pollEvery.
func (s *scheduler) startPolling() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.pollCancel = s.e.clock.AfterFunc(0, s.poll)
}

// poll arms the timers due within two poll intervals.
func (s *scheduler) poll() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.e.bg.Add(1)
	s.mu.Unlock()
	defer s.e.bg.Done()

	var due []Timer
	err := s.e.store.View(s.e.ctx, func(tx ReadTx) (err error) {
		due, err = tx.Timers(s.e.now().Add(2*s.pollEvery), pollBatch)
		return err
	})
	if err != nil && !s.e.closed() {
		s.e.log.Warn("chat: loading timers", "err", err)
	}
	for _, t := range due {
		if t.Kind == TimerTyping || t.Kind == TimerRoomTTL || t.Kind == TimerIdle { // a newer engine's kinds are its own
			s.arm(t)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.pollCancel = s.e.clock.AfterFunc(s.pollEvery, s.poll)
	}
}

func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, c := range []func() bool{s.cancel, s.pollCancel} {
		if c != nil {
			c()
		}
	}
	s.cancel, s.pollCancel = nil, nil
}

// fireTimer acts on the timer armed for it.at, due at or before now, if the Store still has it
// due then. One the Store has moved later is armed again for its time, even if that has come
// too, so that deadlines act in the order of their times.
func (e *Engine) fireTimer(it timerItem, now time.Time) {
	k := it.key
	if k.kind == timerTypingFlush {
		e.flushTyping(k.room, k.member)
		return
	}
	deleted, ended := false, false
	_, err := e.updateIn(e.ctx, k.room, func(tx *wtx) error {
		deleted, ended = false, false
		t, err := tx.Timer(k.kind, k.room, k.member)
		if isNotFound(err) {
			return nil // done already (by another process, perhaps), or cancelled
		}
		if err != nil {
			return err
		}
		if t.At.After(it.at) {
			tx.armed = append(tx.armed, t) // moved later
			return nil
		}
		switch t.Kind {
		case TimerTyping:
			return tx.expireTyping(t, now)
		case TimerRoomTTL:
			deleted, err = tx.expireRoom(t, now)
			return err
		case TimerIdle:
			ended, err = tx.expireIdle(t, now)
			return err
		}
		return nil
	})
	if err != nil {
		if !e.closed() {
			e.log.Warn("chat: timer", "kind", k.kind, "room", k.room, "err", err)
		}
		return
	}
	if deleted {
		e.hubs.deleted(k.room)
	}
	if ended {
		e.hubs.roomChanged(k.room)
	}
}
