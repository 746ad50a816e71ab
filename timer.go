package chat

import (
	"container/heap"
	"runtime/debug"
	"sync"
	"time"
)

type timerKind uint8

const (
	timerTyping timerKind = iota + 1
	timerRoomTTL
)

type timerKey struct {
	kind   timerKind
	room   ID
	member ID
}

type timerItem struct {
	at  time.Time
	key timerKey
}

type timerHeap []timerItem

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// scheduler is the engine's one timer: a heap of deadlines (typing expiry, room TTLs) and a
// single clock timer armed for the earliest. Entries are checked when they fire, so a renewed
// deadline simply leaves a stale entry behind that does nothing.
type scheduler struct {
	e       *Engine
	mu      sync.Mutex
	h       timerHeap
	armedAt time.Time
	cancel  func() bool
	stopped bool
}

func newScheduler(e *Engine) *scheduler { return &scheduler{e: e} }

func (s *scheduler) add(at time.Time, k timerKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	heap.Push(&s.h, timerItem{at, k})
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
	now := s.e.clock.Now()
	var due []timerKey
	for len(s.h) > 0 && !s.h[0].at.After(now) {
		due = append(due, heap.Pop(&s.h).(timerItem).key)
	}
	s.e.bg.Add(1)
	s.mu.Unlock()
	defer s.e.bg.Done()

	for _, k := range due {
		s.run(k, now)
	}

	s.mu.Lock()
	if !s.stopped {
		s.armLocked()
	}
	s.mu.Unlock()
}

// run does the work of one deadline. A panic in it is logged with its stack and contained:
// the timer goroutine is not net/http's, and one bad deadline must not take the process down.
func (s *scheduler) run(k timerKey, now time.Time) {
	defer func() {
		if p := recover(); p != nil {
			s.e.log.Error("chat: panic in a timer", "kind", k.kind, "room", k.room, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if testHookTimer != nil {
		testHookTimer(k)
	}
	switch k.kind {
	case timerTyping:
		if _, err := s.e.endTyping(s.e.ctx, typingKey{k.room, k.member}, now); err != nil && !s.e.closed() {
			s.e.log.Warn("chat: typing expiry", "room", k.room, "err", err)
		}
	case timerRoomTTL:
		s.e.expireRoom(k.room)
	}
}

// testHookTimer, when set by a test, runs before each deadline's work.
var testHookTimer func(timerKey)

func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
}
