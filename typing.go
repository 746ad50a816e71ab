package chat

import (
	"context"
	"errors"
	"sync"
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

// Typing state lives on the membership record (TypingUntil, TypingText) with a TimerTyping in
// the store for its expiry, so that every process sharing the store sees it, a message sent
// through any of them ends it, and it expires even if the process that started it is gone.

// StartTyping marks a joined member as typing until the typing TTL passes, with an optional
// preview text. It appends EventTypingStarted, and returns it, when the member was not typing
// or the preview changed; otherwise it only renews the indicator and returns the zero Event.
//
// Typing costs no durable write per keystroke: a member's typing events are at most one a
// second (TypingEvery), a preview that changes sooner is shown when the second is up, the
// latest one winning; and a renewal is written to the store only once the stored expiry is
// less than half the TTL away, so an indicator ends between half the TTL and the TTL after
// the last renewal. It returns ErrNotMember, ErrEnded, ErrInvalid for a bad preview.
func (e *Engine) StartTyping(ctx context.Context, roomID, userID ID, preview string) (Event, error) {
	if err := e.checkText("preview", preview, true); err != nil {
		return Event{}, err
	}
	return e.startTyping(ctx, roomID, userID, preview, false)
}

// TypingEvery is the shortest time between two typing events of one member.
const TypingEvery = time.Second

// startTyping is StartTyping; a flush shows a held-back preview, only if the member is still
// typing.
func (e *Engine) startTyping(ctx context.Context, roomID, userID ID, preview string, flush bool) (Event, error) {
	k := typingKey{roomID, userID}
	held := false
	var now time.Time // of the decision (an event's own time may be bumped by the store)
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) error {
		held = false
		if _, err := tx.openRoom(roomID); err != nil {
			return err
		}
		m, err := tx.joined(roomID, userID)
		if err != nil {
			return err
		}
		now = tx.e.now()
		typing := m.TypingUntil.After(now)
		if flush && !typing {
			return nil // it sent or stopped meanwhile
		}
		if typing && (m.TypingText == preview || tx.e.shown.recent(k, now)) {
			held = m.TypingText != preview
			return tx.renewTyping(m, now)
		}
		until := now.Add(tx.e.opts.typingTTL)
		m.TypingUntil, m.TypingText = until, preview
		if err := tx.PutMember(m); err != nil {
			return err
		}
		if err := tx.setTimer(Timer{Kind: TimerTyping, Room: roomID, Member: m.ID, At: until}); err != nil {
			return err
		}
		_, err = tx.append(Event{RoomID: roomID, Type: EventTypingStarted, From: m.ID, User: userID, Text: preview})
		return err
	})
	switch {
	case err != nil:
	case ev.Pos != 0:
		e.shown.note(k, now)
	case held:
		if at, arm := e.shown.hold(k, preview); arm {
			e.timers.arm(Timer{Kind: timerTypingFlush, Room: roomID, Member: userID, At: at})
		}
	case !flush: // the preview shown is the latest again: nothing is held back
		e.shown.take(k)
	}
	return ev, err
}

// renewTyping moves m's typing expiry a TTL ahead if the stored one is less than half a TTL
// away.
func (tx *wtx) renewTyping(m Member, now time.Time) error {
	if m.TypingUntil.Sub(now) >= tx.e.opts.typingTTL/2 {
		return nil // renewed recently enough
	}
	m.TypingUntil = now.Add(tx.e.opts.typingTTL)
	if err := tx.PutMember(m); err != nil {
		return err
	}
	return tx.setTimer(Timer{Kind: TimerTyping, Room: m.RoomID, Member: m.ID, At: m.TypingUntil})
}

// flushTyping shows the preview held back for a member, if it is still typing.
func (e *Engine) flushTyping(roomID, userID ID) {
	preview, ok := e.shown.take(typingKey{roomID, userID})
	if !ok {
		return
	}
	if _, err := e.startTyping(e.ctx, roomID, userID, preview, true); err != nil && !isNotFound(err) &&
		!errors.Is(err, ErrNotMember) && !errors.Is(err, ErrEnded) && !e.closed() {
		e.log.Warn("chat: showing a typing preview", "room", roomID, "err", err)
	}
}

// timerTypingFlush is a timer of this process only (never stored): a held-back preview is due.
const timerTypingFlush TimerKind = "typing-flush"

type typingKey struct{ room, user ID }

// typingShown remembers, in this process, when each member's last typing event was and the
// preview held back since. Another process does not know it, so a member whose typing moves
// between processes may get one more event a second: harmless.
type typingShown struct {
	mu sync.Mutex
	m  map[typingKey]*shownEntry
}

type shownEntry struct {
	at      time.Time // of the last typing event
	pending string
	held    bool
}

// recent reports whether k's last typing event was less than TypingEvery before now.
func (s *typingShown) recent(k typingKey, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	en := s.m[k]
	return en != nil && now.Sub(en.at) < TypingEvery
}

func (s *typingShown) note(k typingKey, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[typingKey]*shownEntry)
	}
	if len(s.m) >= 1024 { // forget what no longer throttles anything
		for k, en := range s.m {
			if !en.held && at.Sub(en.at) >= TypingEvery {
				delete(s.m, k)
			}
		}
	}
	s.m[k] = &shownEntry{at: at}
}

// hold keeps preview to show at the returned time; arm says no flush is armed for k yet.
func (s *typingShown) hold(k typingKey, preview string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	en := s.m[k]
	if en == nil {
		return time.Time{}, false
	}
	arm := !en.held
	en.pending, en.held = preview, true
	return en.at.Add(TypingEvery), arm
}

// take returns and forgets the preview held for k.
func (s *typingShown) take(k typingKey) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	en := s.m[k]
	if en == nil || !en.held {
		return "", false
	}
	en.held = false
	return en.pending, true
}

// StopTyping ends a member's typing indicator, appends EventTypingStopped and returns it. It
// does nothing and returns the zero Event if the member was not typing. It returns
// ErrNotMember.
func (e *Engine) StopTyping(ctx context.Context, roomID, userID ID) (Event, error) {
	return e.updateIn(ctx, roomID, func(tx *wtx) error {
		m, err := tx.joined(roomID, userID)
		if err != nil {
			return err
		}
		return tx.stopTyping(m, time.Time{})
	})
}

// stopTyping ends m's typing with an EventTypingStopped if it is typing and, when due is not
// zero, its indicator expires at or before due.
func (tx *wtx) stopTyping(m Member, due time.Time) error {
	if m.TypingUntil.IsZero() || (!due.IsZero() && m.TypingUntil.After(due)) {
		return nil
	}
	if err := tx.clearTyping(&m); err != nil {
		return err
	}
	_, err := tx.append(Event{RoomID: m.RoomID, Type: EventTypingStopped, From: m.ID, User: m.UserID})
	return err
}

// clearTyping forgets m's typing without an event (a message or a leave ends it) and stores m.
func (tx *wtx) clearTyping(m *Member) error {
	if m.TypingUntil.IsZero() && m.TypingText == "" {
		return nil
	}
	m.TypingUntil, m.TypingText = time.Time{}, ""
	if err := tx.PutMember(*m); err != nil {
		return err
	}
	return tx.DeleteTimer(TimerTyping, m.RoomID, m.ID)
}

// expireTyping acts on a due TimerTyping.
func (tx *wtx) expireTyping(t Timer, now time.Time) error {
	m, err := tx.MemberByID(t.Room, t.Member)
	if isNotFound(err) {
		return tx.DeleteTimer(t.Kind, t.Room, t.Member)
	}
	if err != nil {
		return err
	}
	if m.State != Joined || m.TypingUntil.IsZero() {
		return tx.DeleteTimer(t.Kind, t.Room, t.Member)
	}
	if m.TypingUntil.After(now) { // renewed: expire later
		return tx.setTimer(Timer{Kind: TimerTyping, Room: t.Room, Member: t.Member, At: m.TypingUntil})
	}
	return tx.stopTyping(m, now)
}

// Typing lists who is typing in a room now, in member ID order. It returns ErrNotFound for an
// unknown room.
func (e *Engine) Typing(ctx context.Context, roomID ID) ([]Typist, error) {
	now := e.now()
	var ts []Typist
	err := e.view(ctx, func(tx ReadTx) error {
		ms, err := tx.Members(roomID)
		ts = ts[:0]
		for _, m := range ms {
			if m.State == Joined && m.TypingUntil.After(now) {
				ts = append(ts, Typist{Member: m.ID, User: m.UserID, Text: m.TypingText, Until: m.TypingUntil})
			}
		}
		return err
	})
	return ts, err
}
