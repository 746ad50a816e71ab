// Package memory is an in-memory chat.Store: fast, and gone when the process ends. It is the
// store for tests, demos and programs whose chats need not outlive them; use storage/bolt for
// durable chats.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/chat"
)

// chunkSize is how many events one transcript chunk holds: appending never copies the
// transcript, and reading from any position is an index.
const chunkSize = 1024

// Store is an in-memory chat.Store. The zero value is not usable; call New.
type Store struct {
	mu     sync.RWMutex
	closed bool

	users     map[chat.ID]*chat.User
	userNames map[string]chat.ID
	userOrder []chat.ID // sorted

	rooms     map[chat.ID]*room
	roomNames map[string]chat.ID
	roomOrder []chat.ID // sorted

	memberships map[chat.ID]map[chat.ID]chat.ID // user → room → latest member ID

	timers map[timerKey]chat.Timer

	tx writeTx // the one write transaction; Update holds mu
}

type room struct {
	r         chat.Room
	members   []chat.Member // in ID order
	byUser    map[chat.ID]int
	chunks    [][]chat.Event
	revisions map[uint64]uint64
	keys      map[string]uint64 // client key → position
}

type timerKey struct {
	kind         chat.TimerKind
	room, member chat.ID
}

// New returns an empty Store.
func New() *Store {
	s := &Store{
		users: make(map[chat.ID]*chat.User), userNames: make(map[string]chat.ID),
		rooms: make(map[chat.ID]*room), roomNames: make(map[string]chat.ID),
		memberships: make(map[chat.ID]map[chat.ID]chat.ID),
		timers:      make(map[timerKey]chat.Timer),
	}
	s.tx.s = s
	return s
}

func closedErr() error { return fmt.Errorf("memory store: %w", chat.ErrClosed) }

// View implements chat.Store.
func (s *Store) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return closedErr()
	}
	return fn((*readTx)(s))
}

// Update implements chat.Store. Transactions run one at a time; a failed one is rolled back
// from an undo log.
func (s *Store) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedErr()
	}
	tx := &s.tx
	err := fn(tx)
	if err != nil {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i].revert(s)
		}
	} else {
		for _, f := range tx.after {
			f()
		}
	}
	clear(tx.undo)
	clear(tx.after)
	tx.undo, tx.after = tx.undo[:0], tx.after[:0]
	return err
}

// Close implements chat.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedErr()
	}
	s.closed = true
	return nil
}

type readTx Store

func notFound(what string, key any) error {
	return fmt.Errorf("memory store: %s %v: %w", what, key, chat.ErrNotFound)
}

func cloneUser(u *chat.User) chat.User {
	c := *u
	c.Attributes = cloneMap(u.Attributes)
	return c
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

func (t *readTx) User(id chat.ID) (chat.User, error) {
	u, ok := t.users[id]
	if !ok {
		return chat.User{}, notFound("user", id)
	}
	return cloneUser(u), nil
}

func (t *readTx) UserByName(name string) (chat.User, error) {
	id, ok := t.userNames[name]
	if !ok || name == "" {
		return chat.User{}, notFound("user name", name)
	}
	return cloneUser(t.users[id]), nil
}

// page walks ids in the filter's order and keeps those that match.
func page[T any](ids []chat.ID, f chat.ListFilter, get func(chat.ID) (T, time.Time)) []T {
	var out []T
	skip := f.Offset
	for i := range ids {
		id := ids[i]
		if f.Desc {
			id = ids[len(ids)-1-i]
		}
		v, created := get(id)
		if !f.Match(created) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		out = append(out, v)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

func (t *readTx) Users(f chat.ListFilter) ([]chat.User, error) {
	return page(t.userOrder, f, func(id chat.ID) (chat.User, time.Time) {
		u := t.users[id]
		return cloneUser(u), u.CreatedAt
	}), nil
}

func (t *readTx) room(id chat.ID) (*room, error) {
	r, ok := t.rooms[id]
	if !ok {
		return nil, notFound("room", id)
	}
	return r, nil
}

func cloneRoom(r *room) chat.Room {
	c := r.r
	c.Attributes = cloneMap(r.r.Attributes)
	return c
}

func (t *readTx) Room(id chat.ID) (chat.Room, error) {
	r, err := t.room(id)
	if err != nil {
		return chat.Room{}, err
	}
	return cloneRoom(r), nil
}

func (t *readTx) RoomByName(name string) (chat.Room, error) {
	id, ok := t.roomNames[name]
	if !ok || name == "" {
		return chat.Room{}, notFound("room name", name)
	}
	return cloneRoom(t.rooms[id]), nil
}

func (t *readTx) Rooms(f chat.ListFilter) ([]chat.Room, error) {
	return page(t.roomOrder, f, func(id chat.ID) (chat.Room, time.Time) {
		r := t.rooms[id]
		return cloneRoom(r), r.r.CreatedAt
	}), nil
}

func (t *readTx) MemberByID(roomID, memberID chat.ID) (chat.Member, error) {
	r, err := t.room(roomID)
	if err != nil {
		return chat.Member{}, err
	}
	if i, ok := r.memberIndex(memberID); ok {
		return r.members[i], nil
	}
	return chat.Member{}, notFound("member", memberID)
}

func (r *room) memberIndex(id chat.ID) (int, bool) {
	return slices.BinarySearchFunc(r.members, id, func(m chat.Member, id chat.ID) int {
		return compareID(m.ID, id)
	})
}

func compareID(a, b chat.ID) int {
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

func (t *readTx) MemberByUser(roomID, userID chat.ID) (chat.Member, error) {
	r, err := t.room(roomID)
	if err != nil {
		return chat.Member{}, err
	}
	if i, ok := r.byUser[userID]; ok {
		return r.members[i], nil
	}
	return chat.Member{}, notFound("member of user", userID)
}

func (t *readTx) Members(roomID chat.ID) ([]chat.Member, error) {
	r, err := t.room(roomID)
	if err != nil {
		return nil, err
	}
	return slices.Clone(r.members), nil
}

func (t *readTx) Memberships(userID chat.ID) ([]chat.Member, error) {
	var out []chat.Member
	for roomID, memberID := range t.memberships[userID] {
		if m, err := t.MemberByID(roomID, memberID); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b chat.Member) int { return compareID(a.RoomID, b.RoomID) })
	return out, nil
}

func (r *room) event(pos uint64) *chat.Event {
	i := pos - 1
	return &r.chunks[i/chunkSize][i%chunkSize]
}

func (t *readTx) Event(roomID chat.ID, pos uint64) (chat.Event, error) {
	r, err := t.room(roomID)
	if err != nil {
		return chat.Event{}, err
	}
	if pos == 0 || pos > r.r.LastPos {
		return chat.Event{}, notFound("event", pos)
	}
	return ownEvent(*r.event(pos)), nil
}

// ownEvent gives the caller its own copy of an event's body, the one part of an Event that
// shares memory.
func ownEvent(ev chat.Event) chat.Event {
	if len(ev.Body) > 0 {
		ev.Body = slices.Clone(ev.Body)
	}
	return ev
}

func (t *readTx) Events(roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	r, err := t.room(roomID)
	if err != nil {
		return dst, err
	}
	last := r.r.LastPos
	if backward {
		if from > last {
			from = last
		}
		for p := from; p >= 1 && limit > 0; p, limit = p-1, limit-1 {
			dst = append(dst, ownEvent(*r.event(p)))
		}
		return dst, nil
	}
	if from == 0 {
		from = 1
	}
	for from <= last && limit > 0 {
		// Copy a run within one chunk at a time.
		i := from - 1
		chunk := r.chunks[i/chunkSize]
		end := min(uint64(len(chunk)), i%chunkSize+uint64(limit), last-(i/chunkSize)*chunkSize)
		run := chunk[i%chunkSize : end]
		n := len(dst)
		dst = append(dst, run...)
		for i := n; i < len(dst); i++ {
			if len(dst[i].Body) > 0 {
				dst[i].Body = slices.Clone(dst[i].Body)
			}
		}
		from += uint64(len(run))
		limit -= len(run)
	}
	return dst, nil
}

func (t *readTx) Revision(roomID chat.ID, pos uint64) (uint64, error) {
	r, err := t.room(roomID)
	if err != nil {
		return 0, err
	}
	return r.revisions[pos], nil
}

func (t *readTx) EventByKey(roomID chat.ID, key string) (chat.Event, error) {
	r, err := t.room(roomID)
	if err != nil {
		return chat.Event{}, err
	}
	pos, ok := r.keys[key]
	if !ok || key == "" {
		return chat.Event{}, notFound("event with key", key)
	}
	return ownEvent(*r.event(pos)), nil
}

func (t *readTx) Timer(kind chat.TimerKind, roomID, memberID chat.ID) (chat.Timer, error) {
	tm, ok := t.timers[timerKey{kind, roomID, memberID}]
	if !ok {
		return chat.Timer{}, notFound("timer", kind)
	}
	return tm, nil
}

func (t *readTx) Timers(until time.Time, limit int) ([]chat.Timer, error) {
	var out []chat.Timer
	for _, tm := range t.timers {
		if !tm.At.After(until) {
			out = append(out, tm)
		}
	}
	slices.SortFunc(out, compareTimers)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// compareTimers orders timers as Timers returns them: by time, then kind, room and member.
func compareTimers(a, b chat.Timer) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if a.Kind != b.Kind {
		if a.Kind < b.Kind {
			return -1
		}
		return 1
	}
	if c := compareID(a.Room, b.Room); c != 0 {
		return c
	}
	return compareID(a.Member, b.Member)
}
