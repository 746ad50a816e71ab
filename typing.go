package chat

import (
	"context"
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
// A renewal is written to the store only once the stored expiry is less than half the TTL
// away, so an indicator ends between half the TTL and the TTL after the last renewal.
// It returns ErrNotMember, ErrEnded, ErrInvalid for a bad preview.
func (e *Engine) StartTyping(ctx context.Context, roomID, userID ID, preview string) (Event, error) {
	if err := e.checkText("preview", preview, true); err != nil {
		return Event{}, err
	}
	return e.update(ctx, func(tx *wtx) error {
		if _, err := tx.openRoom(roomID); err != nil {
			return err
		}
		m, err := tx.joined(roomID, userID)
		if err != nil {
			return err
		}
		now := tx.e.now()
		until := now.Add(tx.e.opts.typingTTL)
		if m.TypingUntil.After(now) && m.TypingText == preview {
			if m.TypingUntil.Sub(now) >= tx.e.opts.typingTTL/2 {
				return nil // renewed recently enough
			}
			m.TypingUntil = until
			if err := tx.PutMember(m); err != nil {
				return err
			}
			return tx.setTimer(Timer{Kind: TimerTyping, Room: roomID, Member: m.ID, At: until})
		}
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
}

// StopTyping ends a member's typing indicator, appends EventTypingStopped and returns it. It
// does nothing and returns the zero Event if the member was not typing. It returns
// ErrNotMember.
func (e *Engine) StopTyping(ctx context.Context, roomID, userID ID) (Event, error) {
	return e.update(ctx, func(tx *wtx) error {
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
	m, err := tx.Member(t.Room, t.Member)
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
