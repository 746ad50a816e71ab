package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/chat"
)

// readTx implements chat.ReadTx in a read-only transaction.
type readTx struct {
	reader
	s *Store
	// metas holds the last position and incarnation of the rooms this transaction read,
	// so that Events after Room goes straight to the block cache.
	metas map[chat.ID]viewMeta
}

type viewMeta struct {
	last uint64
	inc  int64
}

func (t *readTx) remember(r chat.Room, m roomMeta) {
	if t.metas == nil {
		t.metas = make(map[chat.ID]viewMeta, 1)
	}
	t.metas[r.ID] = viewMeta{r.LastPos, m.inc}
}

func (t *readTx) User(id chat.ID) (chat.User, error)           { return t.user(id) }
func (t *readTx) UserByName(name string) (chat.User, error)    { return t.userByName(name) }
func (t *readTx) Users(f chat.ListFilter) ([]chat.User, error) { return t.users(f) }
func (t *readTx) Rooms(f chat.ListFilter) ([]chat.Room, error) { return t.rooms(f) }

func (t *readTx) Room(id chat.ID) (chat.Room, error) {
	r, m, err := scanRoom(t.q.QueryRow(t.ctx, `SELECT `+roomCols+` FROM parley_rooms WHERE id = $1`, id))
	return t.gotRoom(r, m, err, "room", id)
}

func (t *readTx) gotRoom(r chat.Room, m roomMeta, err error, what string, key any) (chat.Room, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Room{}, notFound(what, key)
	}
	if err != nil {
		return chat.Room{}, fmt.Errorf("postgres store: read room: %w", classify(err))
	}
	t.remember(r, m)
	return r, nil
}

func (t *readTx) RoomByName(name string) (chat.Room, error) {
	if name == "" {
		return chat.Room{}, notFound("room name", name)
	}
	r, m, err := scanRoom(t.q.QueryRow(t.ctx, `SELECT `+roomCols+` FROM parley_rooms WHERE name = $1`, name))
	return t.gotRoom(r, m, err, "room name", name)
}

func (t *readTx) MemberByID(roomID, memberID chat.ID) (chat.Member, error) {
	return t.member(roomID, memberID)
}

func (t *readTx) MemberByUser(roomID, userID chat.ID) (chat.Member, error) {
	return t.memberByUser(roomID, userID)
}

// exists reports whether a room exists.
func (t *readTx) exists(roomID chat.ID) error {
	var ok bool
	if err := t.q.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM parley_rooms WHERE id = $1)`, roomID).Scan(&ok); err != nil {
		return fmt.Errorf("postgres store: read room: %w", classify(err))
	}
	if !ok {
		return notFound("room", roomID)
	}
	return nil
}

func (t *readTx) Members(roomID chat.ID) ([]chat.Member, error) {
	ms, err := t.members(roomID)
	if err == nil && len(ms) == 0 {
		err = t.exists(roomID)
	}
	return ms, err
}

func (t *readTx) Memberships(userID chat.ID) ([]chat.Member, error) { return t.memberships(userID) }

func (t *readTx) Event(roomID chat.ID, pos uint64) (chat.Event, error) { return t.event(roomID, pos) }

// meta returns the last position and incarnation of a room.
func (t *readTx) meta(roomID chat.ID) (viewMeta, error) {
	if m, ok := t.metas[roomID]; ok {
		return m, nil
	}
	var m viewMeta
	err := t.q.QueryRow(t.ctx, `SELECT last_pos, incarnation FROM parley_rooms WHERE id = $1`, roomID).Scan(&m.last, &m.inc)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, notFound("room", roomID)
	}
	if err != nil {
		return m, fmt.Errorf("postgres store: read room: %w", classify(err))
	}
	if t.metas == nil {
		t.metas = make(map[chat.ID]viewMeta, 1)
	}
	t.metas[roomID] = m
	return m, nil
}

func (t *readTx) Events(roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	m, err := t.meta(roomID)
	if err != nil {
		return dst, err
	}
	if limit <= 0 || (backward && from == 0) {
		return dst, nil
	}
	from = max(from, 1)
	lo, hi := from, m.last
	if backward {
		lo, hi = 1, min(from, m.last)
	}
	if t.s.cache != nil {
		return t.s.cache.events(&t.reader, roomID, m.inc, m.last, lo, hi, limit, backward, dst)
	}
	return t.queryEvents(roomID, lo, hi, limit, backward, dst)
}

func (t *readTx) Revision(roomID chat.ID, pos uint64) (uint64, error) {
	var exists bool
	var rev *int64
	if pos > 1<<63-1 {
		return 0, t.exists(roomID)
	}
	err := t.q.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM parley_rooms WHERE id = $1),
	(SELECT rev FROM parley_revisions WHERE room = $1 AND pos = $2)`, roomID, int64(pos)).Scan(&exists, &rev)
	if err != nil {
		return 0, fmt.Errorf("postgres store: read revision: %w", classify(err))
	}
	if !exists {
		return 0, notFound("room", roomID)
	}
	if rev == nil {
		return 0, nil
	}
	return uint64(*rev), nil
}

func (t *readTx) EventByKey(roomID chat.ID, key string) (chat.Event, error) {
	var ev chat.Event
	if key == "" {
		return ev, notFound("event with key", key)
	}
	err := scanEvent(t.q.QueryRow(t.ctx, `SELECT `+eventCols+` FROM parley_events WHERE room = $1 AND key = $2`, roomID, key), &ev)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Event{}, notFound("event with key", key)
	}
	if err != nil {
		return chat.Event{}, fmt.Errorf("postgres store: read event: %w", classify(err))
	}
	return ev, nil
}

func (t *readTx) Timer(kind chat.TimerKind, roomID, memberID chat.ID) (chat.Timer, error) {
	return t.timer(kind, roomID, memberID)
}

func (t *readTx) Timers(until time.Time, limit int) ([]chat.Timer, error) {
	return t.timers(until, limit)
}
