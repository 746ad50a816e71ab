package chat

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Typist is a member who is typing now.
type Typist struct {
	// Member is the membership record of the typist.
	Member ID
	// User is the typist.
	User ID
	// Text is the preview of what is being typed, if the surface sends one.
	Text string
	// Until is when the indicator expires unless renewed.
	Until time.Time
}

type typingKey struct{ room, member ID }

type typingEntry struct {
	user  ID
	text  string
	until time.Time
}

// typingTable is who is typing now. It is not stored: typing transitions are events in the
// transcript, and the table only decides when they are due.
type typingTable struct {
	mu sync.Mutex
	m  map[typingKey]typingEntry
	n  atomic.Int64 // len(m), read without the lock by stop, on every message
}

// put and del change m; the caller holds mu.
func (t *typingTable) put(k typingKey, v typingEntry) {
	t.m[k] = v
	t.n.Store(int64(len(t.m)))
}

func (t *typingTable) del(k typingKey) {
	delete(t.m, k)
	t.n.Store(int64(len(t.m)))
}

func (t *typingTable) init() { t.m = make(map[typingKey]typingEntry) }

// stop forgets k and reports whether it was typing.
func (t *typingTable) stop(k typingKey) bool {
	if t.n.Load() == 0 {
		return false // nobody is typing: the common case of a message
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[k]
	t.del(k)
	return ok
}

func (t *typingTable) dropRoom(room ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.m {
		if k.room == room {
			t.del(k)
		}
	}
}

// StartTyping marks a joined member as typing until the typing TTL passes, with an optional
// preview text. It appends EventTypingStarted, and returns it, when the member was not typing
// or the preview changed; otherwise it only renews the indicator and returns the zero Event.
// It returns ErrNotMember, ErrEnded, ErrInvalid for a bad preview.
func (e *Engine) StartTyping(ctx context.Context, roomID, userID ID, preview string) (Event, error) {
	if err := e.checkText("preview", preview, true); err != nil {
		return Event{}, err
	}
	var k typingKey
	var until time.Time
	ev, err := e.update(ctx, func(tx *wtx) error {
		if _, err := tx.openRoom(roomID); err != nil {
			return err
		}
		m, err := tx.joined(roomID, userID)
		if err != nil {
			return err
		}
		k = typingKey{roomID, m.ID}
		until = tx.e.now().Add(tx.e.opts.typingTTL)
		e.typing.mu.Lock()
		cur, typing := e.typing.m[k]
		if typing && cur.text == preview {
			e.typing.put(k, typingEntry{userID, preview, until})
			e.typing.mu.Unlock()
			return nil
		}
		e.typing.mu.Unlock()
		_, err = tx.append(Event{RoomID: roomID, Type: EventTypingStarted, From: m.ID, User: userID, Text: preview})
		return err
	})
	if err != nil {
		return Event{}, err
	}
	e.typing.mu.Lock()
	e.typing.put(k, typingEntry{userID, preview, until})
	e.typing.mu.Unlock()
	e.timers.add(until, timerKey{kind: timerTyping, room: roomID, member: k.member})
	return ev, nil
}

// StopTyping ends a member's typing indicator, appends EventTypingStopped and returns it. It
// does nothing and returns the zero Event if the member was not typing. It returns
// ErrNotMember.
func (e *Engine) StopTyping(ctx context.Context, roomID, userID ID) (Event, error) {
	var m Member
	err := e.view(ctx, func(tx ReadTx) (err error) {
		m, err = tx.MemberByUser(roomID, userID)
		return err
	})
	if err != nil || m.State != Joined {
		if err == nil || isNotFound(err) {
			return Event{}, e.notMember(ctx, roomID, userID)
		}
		return Event{}, err
	}
	return e.endTyping(ctx, typingKey{roomID, m.ID}, time.Time{})
}

func (e *Engine) notMember(ctx context.Context, roomID, userID ID) error {
	_, err := e.update(ctx, func(tx *wtx) error { _, err := tx.joined(roomID, userID); return err })
	return err
}

// endTyping appends EventTypingStopped for k if it is typing and, when due is not zero, its
// indicator expires at or before due.
func (e *Engine) endTyping(ctx context.Context, k typingKey, due time.Time) (Event, error) {
	e.typing.mu.Lock()
	cur, ok := e.typing.m[k]
	if !ok || (!due.IsZero() && cur.until.After(due)) {
		e.typing.mu.Unlock()
		return Event{}, nil
	}
	e.typing.del(k)
	e.typing.mu.Unlock()
	ev, err := e.update(ctx, func(tx *wtx) error {
		m, err := tx.Member(k.room, k.member)
		if err != nil || m.State != Joined {
			return err // gone or left: its leave ended the typing
		}
		_, err = tx.append(Event{RoomID: k.room, Type: EventTypingStopped, From: m.ID, User: m.UserID})
		return err
	})
	if isNotFound(err) {
		return Event{}, nil
	}
	return ev, err
}

// Typing lists who is typing in a room now, in member ID order.
func (e *Engine) Typing(roomID ID) []Typist {
	now := e.now()
	e.typing.mu.Lock()
	var ts []Typist
	for k, v := range e.typing.m {
		if k.room == roomID && v.until.After(now) {
			ts = append(ts, Typist{Member: k.member, User: v.user, Text: v.text, Until: v.until})
		}
	}
	e.typing.mu.Unlock()
	slices.SortFunc(ts, func(a, b Typist) int { return compareID(a.Member, b.Member) })
	return ts
}

func compareID(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
