package chat

// Internals that the external tests (package chat_test) check.

// HubRingLen returns the size of a followed room's ring of recent events, or -1 if the room
// has no hub.
func HubRingLen(e *Engine, room ID) int {
	h := e.hubs.get(room)
	if h == nil {
		return -1
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ring)
}

// FollowerBufCap returns the capacity of a follower's batch buffer.
func FollowerBufCap(f *Follower) int { return cap(f.buf) }

// FollowBatch is how many events a follower takes at a time.
const FollowBatch = followBatch

// NewIDs returns n IDs made by the engine's ID source at the clock's current time.
func NewIDs(e *Engine, n int) []ID {
	now := e.now()
	ids := make([]ID, n)
	for i := range ids {
		ids[i] = e.ids.New(now)
	}
	return ids
}

// SetTimerHook makes every deadline of the engine's scheduler call f(kind) first, until the
// test ends; kind is "typing" or "ttl".
func SetTimerHook(t interface{ Cleanup(func()) }, f func(kind string)) {
	testHookTimer = func(k timerKey) {
		kind := "typing"
		if k.kind == TimerRoomTTL {
			kind = "ttl"
		}
		f(kind)
	}
	t.Cleanup(func() { testHookTimer = nil })
}

// Publish hands events to the engine's followers and feeds as a commit does.
func Publish(e *Engine, evs []Event) { e.publish(evs) }
