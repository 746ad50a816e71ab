package memory

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/parley-chat/chat"
)

// writeTx is the Store's write transaction. Writes apply at once; each records how to undo
// itself, so that a failed transaction leaves nothing behind.
type writeTx struct {
	s     *Store
	undo  []undo
	after []func()
}

// undo reverts one write: appended (the hot path) pops a room's last event without a closure;
// fn reverts anything else.
type undo struct {
	appended *room
	lastTime time.Time
	fn       func()
}

func (u undo) revert(s *Store) {
	if r := u.appended; r != nil {
		i := r.r.LastPos - 1
		r.chunks[i/chunkSize][i%chunkSize] = chat.Event{}
		r.chunks[i/chunkSize] = r.chunks[i/chunkSize][:i%chunkSize]
		if i%chunkSize == 0 {
			r.chunks = r.chunks[:len(r.chunks)-1]
		}
		r.r.LastPos--
		r.r.LastTime = u.lastTime
		return
	}
	u.fn()
}

func (tx *writeTx) read() *readTx { return (*readTx)(tx.s) }

func (tx *writeTx) onUndo(fn func()) { tx.undo = append(tx.undo, undo{fn: fn}) }

func (tx *writeTx) User(id chat.ID) (chat.User, error)           { return tx.read().User(id) }
func (tx *writeTx) UserByName(n string) (chat.User, error)       { return tx.read().UserByName(n) }
func (tx *writeTx) Users(f chat.ListFilter) ([]chat.User, error) { return tx.read().Users(f) }
func (tx *writeTx) Room(id chat.ID) (chat.Room, error)           { return tx.read().Room(id) }
func (tx *writeTx) RoomByName(n string) (chat.Room, error)       { return tx.read().RoomByName(n) }
func (tx *writeTx) Rooms(f chat.ListFilter) ([]chat.Room, error) { return tx.read().Rooms(f) }
func (tx *writeTx) MemberByID(r, m chat.ID) (chat.Member, error) { return tx.read().MemberByID(r, m) }
func (tx *writeTx) MemberByUser(r, u chat.ID) (chat.Member, error) {
	return tx.read().MemberByUser(r, u)
}
func (tx *writeTx) Members(r chat.ID) ([]chat.Member, error)      { return tx.read().Members(r) }
func (tx *writeTx) Memberships(u chat.ID) ([]chat.Member, error)  { return tx.read().Memberships(u) }
func (tx *writeTx) Event(r chat.ID, p uint64) (chat.Event, error) { return tx.read().Event(r, p) }
func (tx *writeTx) Events(r chat.ID, from uint64, limit int, back bool, dst []chat.Event) ([]chat.Event, error) {
	return tx.read().Events(r, from, limit, back, dst)
}
func (tx *writeTx) Revision(r chat.ID, p uint64) (uint64, error) { return tx.read().Revision(r, p) }
func (tx *writeTx) EventByKey(r chat.ID, key string) (chat.Event, error) {
	return tx.read().EventByKey(r, key)
}
func (tx *writeTx) Timer(k chat.TimerKind, r, m chat.ID) (chat.Timer, error) {
	return tx.read().Timer(k, r, m)
}
func (tx *writeTx) Timers(until time.Time, limit int) ([]chat.Timer, error) {
	return tx.read().Timers(until, limit)
}

func (tx *writeTx) AfterCommit(f func()) { tx.after = append(tx.after, f) }

// insertID adds id to a sorted slice and returns a function that removes it again.
func insertID(ids *[]chat.ID, id chat.ID) {
	i, found := slices.BinarySearchFunc(*ids, id, compareID)
	if !found {
		*ids = slices.Insert(*ids, i, id)
	}
}

func removeID(ids *[]chat.ID, id chat.ID) {
	if i, found := slices.BinarySearchFunc(*ids, id, compareID); found {
		*ids = slices.Delete(*ids, i, i+1)
	}
}

func (tx *writeTx) PutUser(u chat.User) error {
	s := tx.s
	if u.Name != "" {
		if owner, ok := s.userNames[u.Name]; ok && owner != u.ID {
			return fmt.Errorf("memory store: user name %q: %w", u.Name, chat.ErrConflict)
		}
	}
	old, existed := s.users[u.ID]
	nu := cloneUser(&u)
	s.users[u.ID] = &nu
	if existed && old.Name != "" && old.Name != u.Name {
		delete(s.userNames, old.Name)
	}
	if u.Name != "" {
		s.userNames[u.Name] = u.ID
	}
	if !existed {
		insertID(&s.userOrder, u.ID)
	}
	tx.onUndo(func() {
		if u.Name != "" {
			delete(s.userNames, u.Name)
		}
		if existed {
			s.users[u.ID] = old
			if old.Name != "" {
				s.userNames[old.Name] = u.ID
			}
		} else {
			delete(s.users, u.ID)
			removeID(&s.userOrder, u.ID)
		}
	})
	return nil
}

func (tx *writeTx) DeleteUser(id chat.ID) error {
	s := tx.s
	old, ok := s.users[id]
	if !ok {
		return notFound("user", id)
	}
	delete(s.users, id)
	if old.Name != "" {
		delete(s.userNames, old.Name)
	}
	removeID(&s.userOrder, id)
	tx.onUndo(func() {
		s.users[id] = old
		if old.Name != "" {
			s.userNames[old.Name] = id
		}
		insertID(&s.userOrder, id)
	})
	return nil
}

func (tx *writeTx) PutRoom(nr chat.Room) error {
	s := tx.s
	if nr.Name != "" {
		if owner, ok := s.roomNames[nr.Name]; ok && owner != nr.ID {
			return fmt.Errorf("memory store: room name %q: %w", nr.Name, chat.ErrConflict)
		}
	}
	nr.Attributes = cloneMap(nr.Attributes)
	r, existed := s.rooms[nr.ID]
	if !existed {
		nr.LastPos, nr.LastTime = 0, time.Time{}
		r = &room{r: nr}
		s.rooms[nr.ID] = r
		insertID(&s.roomOrder, nr.ID)
		if nr.Name != "" {
			s.roomNames[nr.Name] = nr.ID
		}
		tx.onUndo(func() {
			delete(s.rooms, nr.ID)
			removeID(&s.roomOrder, nr.ID)
			if nr.Name != "" {
				delete(s.roomNames, nr.Name)
			}
		})
		return nil
	}
	old := r.r
	nr.LastPos, nr.LastTime = old.LastPos, old.LastTime
	r.r = nr
	if old.Name != nr.Name {
		if old.Name != "" {
			delete(s.roomNames, old.Name)
		}
		if nr.Name != "" {
			s.roomNames[nr.Name] = nr.ID
		}
	}
	tx.onUndo(func() {
		cur := r.r
		old.LastPos, old.LastTime = cur.LastPos, cur.LastTime
		r.r = old
		if old.Name != cur.Name {
			if cur.Name != "" {
				delete(s.roomNames, cur.Name)
			}
			if old.Name != "" {
				s.roomNames[old.Name] = old.ID
			}
		}
	})
	return nil
}

func (tx *writeTx) DeleteRoom(id chat.ID) error {
	s := tx.s
	r, ok := s.rooms[id]
	if !ok {
		return notFound("room", id)
	}
	delete(s.rooms, id)
	removeID(&s.roomOrder, id)
	if r.r.Name != "" {
		delete(s.roomNames, r.r.Name)
	}
	timers := map[timerKey]chat.Timer{}
	for k, tm := range s.timers {
		if k.room == id {
			timers[k] = tm
			delete(s.timers, k)
		}
	}
	removed := map[chat.ID]chat.ID{}
	for userID := range r.byUser {
		if rooms := s.memberships[userID]; rooms != nil {
			removed[userID] = rooms[id]
			delete(rooms, id)
			if len(rooms) == 0 {
				delete(s.memberships, userID)
			}
		}
	}
	tx.onUndo(func() {
		maps.Copy(s.timers, timers)
		s.rooms[id] = r
		insertID(&s.roomOrder, id)
		if r.r.Name != "" {
			s.roomNames[r.r.Name] = id
		}
		for userID, memberID := range removed {
			if s.memberships[userID] == nil {
				s.memberships[userID] = map[chat.ID]chat.ID{}
			}
			s.memberships[userID][id] = memberID
		}
	})
	return nil
}

func (tx *writeTx) PutMember(m chat.Member) error {
	s := tx.s
	r, err := tx.read().room(m.RoomID)
	if err != nil {
		return err
	}
	i, found := r.memberIndex(m.ID)
	var old chat.Member
	if found {
		old = r.members[i]
		r.members[i] = m
	} else {
		r.members = slices.Insert(r.members, i, m)
		// Indexes after i moved up by one.
		for u, j := range r.byUser {
			if j >= i {
				r.byUser[u] = j + 1
			}
		}
	}
	if r.byUser == nil {
		r.byUser = make(map[chat.ID]int)
	}
	prevIdx, hadUser := r.byUser[m.UserID]
	// The user's latest record is the one created last (IDs made in one millisecond are in
	// no order, so they cannot tell).
	latest := !found || !hadUser
	if latest {
		r.byUser[m.UserID] = i
	}
	rooms := s.memberships[m.UserID]
	if rooms == nil {
		rooms = make(map[chat.ID]chat.ID)
		s.memberships[m.UserID] = rooms
	}
	prevMember, hadRoom := rooms[m.RoomID]
	if latest {
		rooms[m.RoomID] = m.ID
	}
	tx.onUndo(func() {
		if found {
			r.members[i] = old
		} else {
			r.members = slices.Delete(r.members, i, i+1)
			for u, j := range r.byUser {
				if j > i {
					r.byUser[u] = j - 1
				}
			}
		}
		if hadUser {
			if !found && prevIdx > i {
				prevIdx-- // read after the insert shifted it
			}
			r.byUser[m.UserID] = prevIdx
		} else {
			delete(r.byUser, m.UserID)
		}
		if hadRoom {
			rooms[m.RoomID] = prevMember
		} else {
			delete(rooms, m.RoomID)
			if len(rooms) == 0 {
				delete(s.memberships, m.UserID)
			}
		}
	})
	return nil
}

func (tx *writeTx) Append(ev *chat.Event) error {
	r, err := tx.read().room(ev.RoomID)
	if err != nil {
		return err
	}
	if ev.Key != "" {
		if _, taken := r.keys[ev.Key]; taken {
			return fmt.Errorf("memory store: key %q in room %s: %w", ev.Key, ev.RoomID, chat.ErrConflict)
		}
	}
	prevTime := r.r.LastTime
	ev.Pos = r.r.LastPos + 1
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	if !ev.Time.After(prevTime) && r.r.LastPos > 0 {
		ev.Time = prevTime.Add(time.Microsecond)
	}
	if len(ev.Body) > 0 {
		ev.Body = slices.Clone(ev.Body)
	}
	i := ev.Pos - 1
	if i%chunkSize == 0 {
		// The first chunk grows by append, so that a room with few events stays small; a room
		// that filled it gets whole chunks, which are never copied.
		var c []chat.Event
		if i > 0 {
			c = make([]chat.Event, 0, chunkSize)
		}
		r.chunks = append(r.chunks, c)
	}
	c := &r.chunks[i/chunkSize]
	*c = append(*c, *ev)
	r.r.LastPos, r.r.LastTime = ev.Pos, ev.Time
	tx.undo = append(tx.undo, undo{appended: r, lastTime: prevTime})
	if ev.Key != "" {
		if r.keys == nil {
			r.keys = make(map[string]uint64)
		}
		r.keys[ev.Key] = ev.Pos
		key := ev.Key
		tx.onUndo(func() { delete(r.keys, key) })
	}
	return nil
}

func (tx *writeTx) PutTimer(t chat.Timer) error {
	if _, err := tx.read().room(t.Room); err != nil {
		return err
	}
	s := tx.s
	k := timerKey{t.Kind, t.Room, t.Member}
	old, had := s.timers[k]
	t.At = t.At.UTC().Truncate(time.Microsecond)
	s.timers[k] = t
	tx.onUndo(func() {
		if had {
			s.timers[k] = old
		} else {
			delete(s.timers, k)
		}
	})
	return nil
}

func (tx *writeTx) DeleteTimer(kind chat.TimerKind, roomID, memberID chat.ID) error {
	s := tx.s
	k := timerKey{kind, roomID, memberID}
	old, had := s.timers[k]
	if !had {
		return nil
	}
	delete(s.timers, k)
	tx.onUndo(func() { s.timers[k] = old })
	return nil
}

func (tx *writeTx) SetRevision(roomID chat.ID, pos, rev uint64) error {
	r, err := tx.read().room(roomID)
	if err != nil {
		return err
	}
	if r.revisions == nil {
		r.revisions = make(map[uint64]uint64)
	}
	old, had := r.revisions[pos]
	r.revisions[pos] = rev
	tx.onUndo(func() {
		if had {
			r.revisions[pos] = old
		} else {
			delete(r.revisions, pos)
		}
	})
	return nil
}
