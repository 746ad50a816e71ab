package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EventType names what an Event records.
type EventType string

// The event types. Custom events carry their own name in Event.Name.
const (
	EventInvited       EventType = "invited"        // To was invited (by From, or by the program)
	EventJoined        EventType = "joined"         // From joined; Text is its nickname
	EventLeft          EventType = "left"           // From left, or declined an invitation
	EventMessage       EventType = "message"        // a message: Text and/or Body
	EventEdit          EventType = "edit"           // the message at Ref now reads Text/Body
	EventDelete        EventType = "delete"         // the message at Ref was deleted
	EventTypingStarted EventType = "typing.started" // From started typing; Text is a preview
	EventTypingStopped EventType = "typing.stopped" // From stopped typing (or its typing expired)
	EventNickname      EventType = "nickname"       // From's nickname is now Text
	EventDelivered     EventType = "delivered"      // From's delivered watermark moved to Ref
	EventRead          EventType = "read"           // From's read watermark moved to Ref
	EventNotice        EventType = "notice"         // a notice from the program: Text
	EventCustom        EventType = "custom"         // a custom event called Name, with Body
	EventEnded         EventType = "ended"          // the room ended
)

// Event is one entry of a room's transcript. Events are never changed once appended: edits,
// deletes and receipts are later events that refer to an earlier position.
type Event struct {
	// RoomID is the room whose transcript holds the event.
	RoomID ID
	// Pos is the event's position: 1 for a room's first event, then gapless.
	Pos uint64
	// ID is the event's ULID.
	ID ID
	// Type says what the event records.
	Type EventType
	// Name is a custom event's name.
	Name string
	// From is the membership record that caused the event; zero for the program (System).
	From ID
	// User is the user behind From; System (zero) for the program.
	User ID
	// To is a membership record the event is addressed to (the invitee of EventInvited, the
	// recipient of a private message); zero for everyone.
	To ID
	// Text is the event's text (message text, typing preview, nickname, notice).
	Text string
	// Body is an optional structured body, as JSON.
	Body json.RawMessage
	// Ref is the earlier position an edit, delete or receipt refers to.
	Ref uint64
	// Visibility, when not empty, restricts the event to members whose Role equals it (a
	// Bezlimit system message for one role, a note for operators).
	Visibility Role
	// Time is when the event was appended, to the microsecond; it strictly increases within
	// a room.
	Time time.Time
	// Key is the client's key of a message (NewMessage.Key): a message sent again with the
	// same key is this event, not a new one.
	Key string
	// Prev is, for a receipt (EventDelivered, EventRead), the watermark it moved from.
	Prev uint64
}

// VisibleTo reports whether a member with the role may see the event.
func (ev *Event) VisibleTo(role Role) bool { return ev.Visibility == "" || ev.Visibility == role }

// VisibleToMember reports whether the member m may see the event: its Visibility admits m's
// role, and an event addressed to one member (To: a private message, its edits and deletion)
// is seen only by that member and by the user who sent it. The To of an EventInvited names
// the invitee and restricts nothing. A zero Member (a reader who is no member) sees what is
// for everyone. Every surface that shows a transcript to a member filters it with this.
func (ev *Event) VisibleToMember(m Member) bool {
	if !ev.VisibleTo(m.Role) {
		return false
	}
	if ev.To.IsZero() || ev.Type == EventInvited {
		return true
	}
	return (!m.ID.IsZero() && ev.To == m.ID) || (ev.User != System() && ev.User == m.UserID)
}

// NewMessage is the input to Send and Edit.
type NewMessage struct {
	// Text is the message text. It may be empty only if Body is set.
	Text string
	// Body is an optional structured body: valid JSON.
	Body json.RawMessage
	// To, when not zero, is the one membership record the message is addressed to.
	To ID
	// Visibility, when not empty, restricts the message to members with that role.
	Visibility Role
	// Key, when not empty, is the client's key for the message (a client message id): Send
	// with a key the room already has from the same user returns that message instead of
	// appending it again, so a client may retry a send whose answer it never got. Keys are
	// kept with the transcript, in every store, across restarts.
	Key string
}

// validateMessage checks text and body against the engine's size limit.
func (e *Engine) validateMessage(m NewMessage) error {
	if err := e.checkText("text", m.Text, len(m.Body) > 0); err != nil {
		return err
	}
	if err := e.checkBody(m.Body); err != nil {
		return err
	}
	if err := checkField("key", m.Key); err != nil {
		return err
	}
	return checkField("visibility", string(m.Visibility))
}

// Send appends a message from a joined member and ends its typing. With a Key the room has
// seen from the same user, it appends nothing and returns that message as stored. It returns
// ErrInvalid for empty, oversized or non-UTF-8 text, ErrNotFound, ErrNotMember for a user who
// is not joined (System may send too), ErrEnded, ErrConflict for a Key another user's message
// has.
func (e *Engine) Send(ctx context.Context, roomID, userID ID, m NewMessage) (Event, error) {
	if err := e.validateMessage(m); err != nil {
		return Event{}, err
	}
	ev := Event{RoomID: roomID, Type: EventMessage, User: userID, To: m.To, Text: m.Text,
		Body: cloneBytes(m.Body), Visibility: m.Visibility, Key: m.Key}
	return e.post(ctx, ev)
}

// Notice appends a notice from the program (EventNotice); the room need not have members.
func (e *Engine) Notice(ctx context.Context, roomID ID, text string) (Event, error) {
	if err := e.checkText("text", text, false); err != nil {
		return Event{}, err
	}
	return e.post(ctx, Event{RoomID: roomID, Type: EventNotice, Text: text})
}

// Custom appends a custom event with a type name and a JSON body, from a joined member or
// from System.
func (e *Engine) Custom(ctx context.Context, roomID, userID ID, name string, body json.RawMessage) (Event, error) {
	if name == "" {
		return Event{}, invalid("custom event name", "empty")
	}
	if err := checkField("custom event name", name); err != nil {
		return Event{}, err
	}
	if err := e.checkBody(body); err != nil {
		return Event{}, err
	}
	return e.post(ctx, Event{RoomID: roomID, Type: EventCustom, Name: name, User: userID, Body: cloneBytes(body)})
}

// post appends ev from ev.User (a joined member, or System) to an open room; a message ends
// its sender's typing.
func (e *Engine) post(ctx context.Context, ev Event) (Event, error) {
	// Stamped here rather than in the transaction, which on a group-committing store runs on
	// its one writer goroutine; the store still makes times increase within the room.
	ev.Time = e.now()
	ev.ID = e.ids.New(ev.Time)
	return e.updateWith(ctx, ev.RoomID, postTx, &ev)
}

func postTx(tx *wtx) error {
	ev := tx.ev
	if ev.Key != "" {
		sent, err := tx.EventByKey(ev.RoomID, ev.Key)
		switch {
		case err == nil && sent.User == ev.User:
			tx.found = sent // a retry: the message is there already
			return nil
		case err == nil:
			return fmt.Errorf("chat: key %q of room %s is another user's: %w", ev.Key, ev.RoomID, ErrConflict)
		case !isNotFound(err):
			return err
		}
	}
	if _, err := tx.openRoom(ev.RoomID); err != nil {
		return err
	}
	if ev.User != System() {
		m, err := tx.joined(ev.RoomID, ev.User)
		if err != nil {
			return err
		}
		ev.From = m.ID
		if ev.Type == EventMessage && !m.TypingUntil.IsZero() {
			if err := tx.clearTyping(&m); err != nil {
				return err
			}
		}
	}
	if ev.To != (ID{}) {
		if _, err := tx.MemberByID(ev.RoomID, ev.To); err != nil {
			return fmt.Errorf("chat: recipient %s: %w", ev.To, err)
		}
	}
	_, err := tx.append(ev)
	return err
}

// Edit appends EventEdit: the message at pos now reads m. Only the message's author (or
// System) may edit it. It returns ErrNotFound for no message at pos, ErrForbidden for another's
// message, ErrConflict for a deleted message, ErrEnded.
func (e *Engine) Edit(ctx context.Context, roomID, userID ID, pos uint64, m NewMessage) (Event, error) {
	if err := e.validateMessage(m); err != nil {
		return Event{}, err
	}
	return e.revise(ctx, Event{RoomID: roomID, Type: EventEdit, User: userID, Ref: pos,
		Text: m.Text, Body: cloneBytes(m.Body)})
}

// Delete appends EventDelete for the message at pos. Only the author (or System) may delete
// it. It returns ErrNotFound, ErrForbidden, ErrConflict if it is deleted already, ErrEnded.
func (e *Engine) Delete(ctx context.Context, roomID, userID ID, pos uint64) (Event, error) {
	return e.revise(ctx, Event{RoomID: roomID, Type: EventDelete, User: userID, Ref: pos})
}

func (e *Engine) revise(ctx context.Context, ev Event) (Event, error) {
	ev, err := e.updateIn(ctx, ev.RoomID, func(tx *wtx) error {
		if _, err := tx.openRoom(ev.RoomID); err != nil {
			return err
		}
		orig, err := tx.Event(ev.RoomID, ev.Ref)
		if err != nil {
			return err
		}
		if orig.Type != EventMessage {
			return fmt.Errorf("chat: event %d of room %s is not a message: %w", ev.Ref, ev.RoomID, ErrNotFound)
		}
		// An edit or delete reaches whom the message reached, and no one else.
		ev.To, ev.Visibility = orig.To, orig.Visibility
		ev.From = ID{}
		if ev.User != System() {
			m, err := tx.joined(ev.RoomID, ev.User)
			if err != nil {
				return err
			}
			if orig.User != ev.User {
				return fmt.Errorf("chat: message %d of room %s is another user's: %w", ev.Ref, ev.RoomID, ErrForbidden)
			}
			ev.From = m.ID
		}
		if rev, err := tx.Revision(ev.RoomID, ev.Ref); err != nil {
			return err
		} else if rev != 0 {
			last, err := tx.Event(ev.RoomID, rev)
			if err != nil {
				return err
			}
			if last.Type == EventDelete {
				return fmt.Errorf("chat: message %d of room %s is deleted: %w", ev.Ref, ev.RoomID, ErrConflict)
			}
		}
		appended, err := tx.append(ev)
		if err != nil {
			return err
		}
		return tx.SetRevision(ev.RoomID, ev.Ref, appended.Pos)
	})
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// Message is the current state of a message, after its edits and deletion.
type Message struct {
	// Event is the original EventMessage.
	Event
	// Edited is when it was last edited; zero if never.
	Edited time.Time
	// Deleted is when it was deleted; zero if it was not. A deleted message has no Text or
	// Body.
	Deleted time.Time
}

// Message returns the current state of the message at pos, or ErrNotFound if there is no
// message there.
func (e *Engine) Message(ctx context.Context, roomID ID, pos uint64) (Message, error) {
	var msg Message
	err := e.view(ctx, func(tx ReadTx) error {
		ev, err := tx.Event(roomID, pos)
		if err != nil {
			return err
		}
		if ev.Type != EventMessage {
			return fmt.Errorf("chat: event %d of room %s is not a message: %w", pos, roomID, ErrNotFound)
		}
		msg, err = currentState(tx, ev)
		return err
	})
	return msg, err
}

// Event returns the event at pos of a room, or ErrNotFound.
func (e *Engine) Event(ctx context.Context, roomID ID, pos uint64) (ev Event, err error) {
	err = e.view(ctx, func(tx ReadTx) error { ev, err = tx.Event(roomID, pos); return err })
	return ev, err
}

// ReadOptions selects a page of a transcript.
type ReadOptions struct {
	// From is the first position to read: 0 means the first event forwards and the last one
	// backwards.
	From uint64
	// Limit is the most events returned, 1..1000.
	Limit int
	// Backward reads from From down towards position 1.
	Backward bool
}

// Validate reports a limit outside 1..1000.
func (o ReadOptions) Validate() error {
	if o.Limit < 1 || o.Limit > 1000 {
		return invalid("limit", "%d outside 1..1000", o.Limit)
	}
	return nil
}

// Read returns a page of a room's events as o says. It returns ErrNotFound for an unknown room
// and ErrInvalid for a limit outside 1..1000.
func (e *Engine) Read(ctx context.Context, roomID ID, o ReadOptions) ([]Event, error) {
	return e.ReadAppend(ctx, nil, roomID, o)
}

// ReadAppend is Read appending to dst, for callers that reuse a buffer.
func (e *Engine) ReadAppend(ctx context.Context, dst []Event, roomID ID, o ReadOptions) ([]Event, error) {
	if err := o.Validate(); err != nil {
		return dst, err
	}
	from := o.From
	if from == 0 {
		if o.Backward {
			from = ^uint64(0)
		} else {
			from = 1
		}
	}
	err := e.view(ctx, func(tx ReadTx) (err error) {
		dst, err = tx.Events(roomID, from, o.Limit, o.Backward, dst)
		return err
	})
	return dst, err
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// PosBefore returns the position of a room's last event whose time is before t, or 0 if
// there is none. Times strictly increase within a room, so a client that pages backwards by
// time (Chapi's ts) never skips or repeats an event: read backwards from the result.
func (e *Engine) PosBefore(ctx context.Context, roomID ID, t time.Time) (uint64, error) {
	var pos uint64
	err := e.view(ctx, func(tx ReadTx) error {
		r, err := tx.Room(roomID)
		if err != nil {
			return err
		}
		if r.LastPos == 0 || r.LastTime.Before(t) {
			pos = r.LastPos
			return nil
		}
		// Binary search for the first event at or after t, in one read transaction.
		lo, hi := uint64(1), r.LastPos
		for lo < hi {
			mid := lo + (hi-lo)/2
			ev, err := tx.Event(roomID, mid)
			if err != nil {
				return err
			}
			if ev.Time.Before(t) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		pos = lo - 1
		return nil
	})
	return pos, err
}

// Messages returns a page of a room's messages in their current state (edits applied; a
// deleted message has Deleted set and no text or body), as viewer may see them: each passes
// Event.VisibleToMember of viewer's latest membership record (System sees all). It reads from
// o.From in o's direction until it has o.Limit messages, has gone through 10×o.Limit events,
// or is at the end, and returns the position the next page starts from, 0 at the end. It
// returns ErrNotFound for an unknown room, ErrInvalid for a bad limit.
func (e *Engine) Messages(ctx context.Context, roomID, viewer ID, o ReadOptions) ([]Message, uint64, error) {
	if err := o.Validate(); err != nil {
		return nil, 0, err
	}
	var msgs []Message
	var next uint64
	err := e.view(ctx, func(tx ReadTx) error {
		msgs, next = msgs[:0], 0
		r, err := tx.Room(roomID)
		if err != nil {
			return err
		}
		var m Member
		if !viewer.IsZero() {
			if m, err = tx.MemberByUser(roomID, viewer); isNotFound(err) {
				m, err = Member{UserID: viewer}, nil
			}
			if err != nil {
				return err
			}
		}
		pos := o.From
		switch {
		case pos == 0 && o.Backward, pos > r.LastPos && o.Backward:
			pos = r.LastPos
		case pos == 0:
			pos = 1
		}
		budget := 10 * o.Limit
		var buf []Event
		for len(msgs) < o.Limit && budget > 0 && pos >= 1 && pos <= r.LastPos {
			buf, err = tx.Events(roomID, pos, min(followBatch, budget), o.Backward, buf[:0])
			if err != nil {
				return err
			}
			if len(buf) == 0 {
				break
			}
			for i := range buf {
				ev := &buf[i]
				budget--
				if o.Backward {
					pos = ev.Pos - 1
				} else {
					pos = ev.Pos + 1
				}
				if ev.Type != EventMessage || (!viewer.IsZero() && !ev.VisibleToMember(m)) {
					continue
				}
				msg, err := currentState(tx, *ev)
				if err != nil {
					return err
				}
				msgs = append(msgs, msg)
				if len(msgs) == o.Limit {
					break
				}
			}
		}
		if pos >= 1 && pos <= r.LastPos {
			next = pos
		}
		return nil
	})
	return msgs, next, err
}

// currentState applies a message's latest edit or its deletion.
func currentState(tx ReadTx, ev Event) (Message, error) {
	msg := Message{Event: ev}
	rev, err := tx.Revision(ev.RoomID, ev.Pos)
	if err != nil || rev == 0 {
		return msg, err
	}
	last, err := tx.Event(ev.RoomID, rev)
	if err != nil {
		return msg, err
	}
	if last.Type == EventDelete {
		msg.Deleted, msg.Text, msg.Body = last.Time, "", nil
		return msg, nil
	}
	msg.Edited, msg.Text, msg.Body = last.Time, last.Text, last.Body
	return msg, nil
}
