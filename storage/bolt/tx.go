package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
	bbolterrors "go.etcd.io/bbolt/errors"
)

// readTx implements chat.ReadTx on a bbolt transaction (read-only, or the writer's).
type readTx struct {
	tx *bbolt.Tx
	// last caches each room's last position and time for the writer (nil in read-only
	// transactions): the engine reads the room and then appends, and both would otherwise
	// seek to the end of the transcript.
	last map[chat.ID]lastEvent
	// cache holds decoded transcript blocks; nil in the writer's transaction, whose reads
	// may see uncommitted events.
	cache *blockCache
	// rooms and byUser cache decoded rooms (without LastPos and LastTime) and the results
	// of MemberByUser for the writer (nil in read-only transactions): the engine reads both
	// in every Send.
	//
	// The writer's caches (last, rooms, byUser) outlive its bbolt transactions: the writer
	// is the only goroutine that writes the file, every write it makes goes through writeTx,
	// which keeps them up to date, and so after a successful commit they describe what is
	// committed. Whenever a bbolt transaction is rolled back (a rerun without a failed
	// function) or its commit fails, Store.commit empties them (writeTx.forget), so that
	// nothing a lost transaction wrote is ever read from them. They are emptied too when
	// they grow past writerCacheMax entries.
	rooms  map[chat.ID]chat.Room
	byUser map[[2]chat.ID]chat.Member
	// byMember maps each record in byUser, by room and member ID, to its user, so that a
	// PutMember that gives a record another user also drops the old user's entry. Its
	// entries may outlive theirs in byUser (a miss at worst).
	byMember map[[2]chat.ID]chat.ID
}

// writerCacheMax bounds each of the writer's caches (entries).
const writerCacheMax = 1 << 16

type lastEvent struct {
	pos  uint64
	time time.Time
}

// lastOf returns the position and time of the last event in the transcript b of room id.
func (t *readTx) lastOf(id chat.ID, b *bbolt.Bucket) lastEvent {
	if l, ok := t.last[id]; ok {
		return l
	}
	var l lastEvent
	if k, v := b.Cursor().Last(); k != nil {
		l = lastEvent{binary.BigEndian.Uint64(k), eventTime(v)}
	}
	if t.last != nil {
		t.last[id] = l
	}
	return l
}

func notFound(what string, key any) error {
	return fmt.Errorf("bolt store: %s %v: %w", what, key, chat.ErrNotFound)
}

// roomBucket returns the per-room bucket of the kind, or nil if the room does not exist.
func (t *readTx) roomBucket(kind byte, id chat.ID) *bbolt.Bucket {
	var name [17]byte
	name[0] = kind
	copy(name[1:], id[:])
	return t.tx.Bucket(name[:])
}

func (t *readTx) User(id chat.ID) (chat.User, error) {
	v := t.tx.Bucket(bUsers).Get(id[:])
	if v == nil {
		return chat.User{}, notFound("user", id)
	}
	return decodeUser(id, v)
}

func (t *readTx) UserByName(name string) (chat.User, error) {
	if name == "" {
		return chat.User{}, notFound("user name", name)
	}
	v := t.tx.Bucket(bUserNames).Get([]byte(name))
	if len(v) != len(chat.ID{}) {
		return chat.User{}, notFound("user name", name)
	}
	return t.User(chat.ID(v))
}

// list walks a bucket of ID → record in ID order (or reverse), keeps the records whose
// creation time passes the filter, and decodes the page asked for.
func list[T any](b *bbolt.Bucket, f chat.ListFilter, decode func(chat.ID, []byte) (T, error)) ([]T, error) {
	var out []T
	skip := f.Offset
	c := b.Cursor()
	k, v := c.First()
	next := c.Next
	if f.Desc {
		k, v = c.Last()
		next = c.Prev
	}
	for ; k != nil; k, v = next() {
		if len(k) != len(chat.ID{}) {
			continue
		}
		if (!f.Since.IsZero() || !f.Until.IsZero()) && !f.Match(createdAt(v)) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		item, err := decode(chat.ID(k), v)
		if err != nil {
			return nil, err
		}
		out = append(out, item)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (t *readTx) Users(f chat.ListFilter) ([]chat.User, error) {
	return list(t.tx.Bucket(bUsers), f, decodeUser)
}

func (t *readTx) Room(id chat.ID) (chat.Room, error) {
	if r, ok := t.rooms[id]; ok {
		r.Attributes = cloneMap(r.Attributes)
		if l, ok := t.last[id]; ok {
			r.LastPos, r.LastTime = l.pos, l.time
		} else if b := t.roomBucket(kindEvents, id); b != nil {
			l := t.lastOf(id, b)
			r.LastPos, r.LastTime = l.pos, l.time
		}
		return r, nil
	}
	v := t.tx.Bucket(bRooms).Get(id[:])
	if v == nil {
		return chat.Room{}, notFound("room", id)
	}
	r, err := t.decodeRoom(id, v)
	if err == nil && t.rooms != nil {
		c := r
		c.Attributes = cloneMap(r.Attributes)
		c.LastPos, c.LastTime = 0, time.Time{}
		t.rooms[id] = c
	}
	return r, err
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

// decodeRoom decodes a room record and adds LastPos and LastTime from its transcript.
func (t *readTx) decodeRoom(id chat.ID, v []byte) (chat.Room, error) {
	r, err := decodeRoom(id, v)
	if err != nil {
		return r, err
	}
	if b := t.roomBucket(kindEvents, id); b != nil {
		l := t.lastOf(id, b)
		r.LastPos, r.LastTime = l.pos, l.time
	}
	return r, nil
}

func (t *readTx) RoomByName(name string) (chat.Room, error) {
	if name == "" {
		return chat.Room{}, notFound("room name", name)
	}
	v := t.tx.Bucket(bRoomNames).Get([]byte(name))
	if len(v) != len(chat.ID{}) {
		return chat.Room{}, notFound("room name", name)
	}
	return t.Room(chat.ID(v))
}

func (t *readTx) Rooms(f chat.ListFilter) ([]chat.Room, error) {
	return list(t.tx.Bucket(bRooms), f, t.decodeRoom)
}

func (t *readTx) members(roomID chat.ID) (*bbolt.Bucket, error) {
	b := t.roomBucket(kindMembers, roomID)
	if b == nil {
		return nil, notFound("room", roomID)
	}
	return b, nil
}

func (t *readTx) MemberByID(roomID, memberID chat.ID) (chat.Member, error) {
	b, err := t.members(roomID)
	if err != nil {
		return chat.Member{}, err
	}
	v := b.Get(memberID[:])
	if v == nil {
		return chat.Member{}, notFound("member", memberID)
	}
	return decodeMember(roomID, memberID, v)
}

func membershipKey(userID, roomID chat.ID) []byte {
	k := make([]byte, 0, 32)
	return append(append(k, userID[:]...), roomID[:]...)
}

func (t *readTx) MemberByUser(roomID, userID chat.ID) (chat.Member, error) {
	key := [2]chat.ID{roomID, userID}
	if m, ok := t.byUser[key]; ok {
		return m, nil
	}
	if _, err := t.members(roomID); err != nil {
		return chat.Member{}, err
	}
	v := t.tx.Bucket(bMemberships).Get(membershipKey(userID, roomID))
	if len(v) != len(chat.ID{}) {
		return chat.Member{}, notFound("member of user", userID)
	}
	m, err := t.MemberByID(roomID, chat.ID(v))
	// Only a record that belongs to the user is kept (the engine never gives a record
	// another user, but PutMember allows it): then each record is in byUser at most once,
	// under the user byMember names, and PutMember drops it whatever user it gives it.
	if err == nil && t.byUser != nil && m.UserID == userID {
		t.byUser[key] = m
		t.byMember[[2]chat.ID{roomID, m.ID}] = userID
	}
	return m, err
}

func (t *readTx) Members(roomID chat.ID) ([]chat.Member, error) {
	b, err := t.members(roomID)
	if err != nil {
		return nil, err
	}
	var out []chat.Member
	err = b.ForEach(func(k, v []byte) error {
		m, err := decodeMember(roomID, chat.ID(k), v)
		out = append(out, m)
		return err
	})
	return out, err
}

func (t *readTx) Memberships(userID chat.ID) ([]chat.Member, error) {
	var out []chat.Member
	c := t.tx.Bucket(bMemberships).Cursor()
	for k, v := c.Seek(userID[:]); k != nil && bytes.HasPrefix(k, userID[:]); k, v = c.Next() {
		if len(k) != 32 || len(v) != 16 {
			return nil, fmt.Errorf("%w: membership index", errCorrupt)
		}
		m, err := t.MemberByID(chat.ID(k[16:]), chat.ID(v))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (t *readTx) events(roomID chat.ID) (*bbolt.Bucket, error) {
	b := t.roomBucket(kindEvents, roomID)
	if b == nil {
		return nil, notFound("room", roomID)
	}
	return b, nil
}

func (t *readTx) Event(roomID chat.ID, pos uint64) (chat.Event, error) {
	b, err := t.events(roomID)
	if err != nil {
		return chat.Event{}, err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], pos)
	v := b.Get(k[:])
	if v == nil {
		return chat.Event{}, notFound("event", pos)
	}
	var ev chat.Event
	err = decodeEvent(&ev, roomID, pos, bytes.Clone(v), true)
	return ev, err
}

func (t *readTx) Events(roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	b, err := t.events(roomID)
	if err != nil {
		return dst, err
	}
	if limit <= 0 || (backward && from == 0) {
		return dst, nil
	}
	from = max(from, 1)
	if t.cache != nil {
		return t.cachedEvents(b, roomID, from, limit, backward, dst)
	}
	return t.decodeEvents(b, roomID, from, limit, backward, dst)
}

// decodeEvents is Events read from the file.
func (t *readTx) decodeEvents(b *bbolt.Bucket, roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], from)
	c := b.Cursor()
	k, v := c.Seek(key[:])
	next := c.Next
	if backward {
		next = c.Prev
		if k == nil {
			k, v = c.Last()
		} else if binary.BigEndian.Uint64(k) > from {
			k, v = c.Prev()
		}
	}
	dst = growEvents(dst, limit)
	var chunk []byte // private copies of the values, which the events' strings point into
	for ; k != nil && limit > 0; k, v = next() {
		if cap(chunk)-len(chunk) < len(v) {
			chunk = make([]byte, 0, max(len(v), min(limit*256, 16<<10)))
		}
		n := len(chunk)
		chunk = append(chunk, v...)
		if len(dst) == cap(dst) {
			dst = growEvents(dst, limit)
		}
		dst = dst[:len(dst)+1] // decodeEvent overwrites the whole slot
		if err := decodeEvent(&dst[len(dst)-1], roomID, binary.BigEndian.Uint64(k), chunk[n:len(chunk):len(chunk)], true); err != nil {
			dst[len(dst)-1] = chat.Event{}
			return dst[:len(dst)-1], err
		}
		limit--
	}
	return dst, nil
}

// growEvents makes room for up to n more events (at most a page's worth at once).
func growEvents(dst []chat.Event, n int) []chat.Event {
	n = min(n, 256)
	if cap(dst)-len(dst) < n {
		grown := make([]chat.Event, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	return dst
}

func (t *readTx) Revision(roomID chat.ID, pos uint64) (uint64, error) {
	b := t.roomBucket(kindRevisions, roomID)
	if b == nil {
		return 0, notFound("room", roomID)
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], pos)
	v := b.Get(k[:])
	if len(v) != 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), nil
}

// writeTx implements chat.Tx for one Update inside the writer's bbolt transaction.
type writeTx struct {
	readTx
	s     *Store
	dirty bool // something was written: a failure needs a rollback
	after []func()
	// evRoom and evBucket remember the transcript bucket last appended to in the current
	// bbolt transaction (evBucket nil: none).
	evRoom   chat.ID
	evBucket *bbolt.Bucket
}

// begin prepares w for the next Update in tx. newTx says tx is a new bbolt transaction.
func (w *writeTx) begin(tx *bbolt.Tx, newTx bool, after []func()) {
	w.tx, w.dirty, w.after = tx, false, after
	if w.last == nil {
		w.last = make(map[chat.ID]lastEvent)
		w.rooms = make(map[chat.ID]chat.Room)
		w.byUser = make(map[[2]chat.ID]chat.Member)
		w.byMember = make(map[[2]chat.ID]chat.ID)
	}
	if newTx {
		w.evBucket = nil
		// byMember has an entry for every entry of byUser.
		if len(w.last) > writerCacheMax || len(w.rooms) > writerCacheMax || len(w.byMember) > writerCacheMax {
			w.forget()
		}
	}
}

// forget empties the writer's caches; Store.commit calls it when a bbolt transaction is
// rolled back or fails to commit.
func (w *writeTx) forget() {
	clear(w.last)
	clear(w.rooms)
	clear(w.byUser)
	clear(w.byMember)
	w.evBucket = nil
}

// eventsBucket is events for the writer, remembering the last bucket.
func (w *writeTx) eventsBucket(roomID chat.ID) (*bbolt.Bucket, error) {
	if w.evBucket != nil && w.evRoom == roomID {
		return w.evBucket, nil
	}
	b, err := w.events(roomID)
	if err != nil {
		return nil, err
	}
	w.evRoom, w.evBucket = roomID, b
	return b, nil
}

func (w *writeTx) AfterCommit(f func()) { w.after = append(w.after, f) }

// put stores key and a copy of value: bbolt needs the value until the transaction ends, and
// copies the key itself.
func (w *writeTx) put(b *bbolt.Bucket, key, value []byte) error {
	w.dirty = true
	return b.Put(key, w.s.arena.copy(value))
}

func (w *writeTx) del(b *bbolt.Bucket, key []byte) error {
	w.dirty = true
	return b.Delete(key)
}

func (w *writeTx) scratch() []byte { return w.s.arena.scratch[:0] }

func (w *writeTx) PutUser(u chat.User) error {
	users, names := w.tx.Bucket(bUsers), w.tx.Bucket(bUserNames)
	if u.Name != "" {
		if owner := names.Get([]byte(u.Name)); owner != nil && !bytes.Equal(owner, u.ID[:]) {
			return fmt.Errorf("bolt store: user name %q: %w", u.Name, chat.ErrConflict)
		}
	}
	oldName := ""
	if old := users.Get(u.ID[:]); old != nil {
		oldName = userName(old)
	}
	w.s.arena.scratch = appendUser(w.scratch(), &u)
	if err := w.put(users, u.ID[:], w.s.arena.scratch); err != nil {
		return err
	}
	return w.rename(names, oldName, u.Name, u.ID)
}

// rename moves a unique name index entry from oldName to name.
func (w *writeTx) rename(names *bbolt.Bucket, oldName, name string, id chat.ID) error {
	if oldName == name {
		return nil
	}
	if oldName != "" {
		if err := w.del(names, []byte(oldName)); err != nil {
			return err
		}
	}
	if name != "" {
		return w.put(names, []byte(name), id[:])
	}
	return nil
}

func (w *writeTx) DeleteUser(id chat.ID) error {
	users := w.tx.Bucket(bUsers)
	old := users.Get(id[:])
	if old == nil {
		return notFound("user", id)
	}
	name := userName(old)
	if err := w.del(users, id[:]); err != nil {
		return err
	}
	if name != "" {
		return w.del(w.tx.Bucket(bUserNames), []byte(name))
	}
	return nil
}

func (w *writeTx) PutRoom(r chat.Room) error {
	rooms, names := w.tx.Bucket(bRooms), w.tx.Bucket(bRoomNames)
	if r.Name != "" {
		if owner := names.Get([]byte(r.Name)); owner != nil && !bytes.Equal(owner, r.ID[:]) {
			return fmt.Errorf("bolt store: room name %q: %w", r.Name, chat.ErrConflict)
		}
	}
	old := rooms.Get(r.ID[:])
	oldName := ""
	if old != nil {
		oldName = roomName(old)
	}
	delete(w.rooms, r.ID)
	w.evBucket = nil
	w.s.arena.scratch = appendRoom(w.scratch(), &r)
	if err := w.put(rooms, r.ID[:], w.s.arena.scratch); err != nil {
		return err
	}
	if old == nil {
		delete(w.last, r.ID)
		var name [17]byte
		copy(name[1:], r.ID[:])
		for _, kind := range []byte{kindEvents, kindMembers, kindRevisions} {
			name[0] = kind
			b, err := w.tx.CreateBucket(w.s.arena.copy(name[:]))
			if err != nil {
				return fmt.Errorf("bolt store: room %s: %w", r.ID, err)
			}
			if kind == kindEvents {
				// The transcript's incarnation, for the read cache.
				inc, err := w.tx.Bucket(bMeta).NextSequence()
				if err != nil {
					return err
				}
				if err := b.SetSequence(inc); err != nil {
					return err
				}
			}
		}
	}
	return w.rename(names, oldName, r.Name, r.ID)
}

func (w *writeTx) DeleteRoom(id chat.ID) error {
	rooms := w.tx.Bucket(bRooms)
	old := rooms.Get(id[:])
	if old == nil {
		return notFound("room", id)
	}
	name := roomName(old)
	w.dirty = true
	delete(w.last, id)
	delete(w.rooms, id)
	clear(w.byUser)
	clear(w.byMember)
	w.evBucket = nil
	// Drop the membership index entries of the room's members.
	idx := w.tx.Bucket(bMemberships)
	if mb := w.roomBucket(kindMembers, id); mb != nil {
		var users []chat.ID
		err := mb.ForEach(func(k, v []byte) error {
			if len(v) < 16 {
				return fmt.Errorf("%w: member %x", errCorrupt, k)
			}
			users = append(users, chat.ID(v[:16]))
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := idx.Delete(membershipKey(u, id)); err != nil {
				return err
			}
		}
	}
	var bname [17]byte
	copy(bname[1:], id[:])
	for _, kind := range []byte{kindEvents, kindMembers, kindRevisions} {
		bname[0] = kind
		if err := w.tx.DeleteBucket(bname[:]); err != nil {
			return fmt.Errorf("bolt store: delete room %s: %w", id, err)
		}
	}
	bname[0] = kindKeys
	if err := w.tx.DeleteBucket(bname[:]); err != nil && !errors.Is(err, bbolterrors.ErrBucketNotFound) {
		return fmt.Errorf("bolt store: delete room %s: %w", id, err)
	}
	if err := w.deleteTimers(id); err != nil {
		return err
	}
	if err := rooms.Delete(id[:]); err != nil {
		return err
	}
	if name != "" {
		return w.tx.Bucket(bRoomNames).Delete([]byte(name))
	}
	return nil
}

func (w *writeTx) PutMember(m chat.Member) error {
	b, err := w.members(m.RoomID)
	if err != nil {
		return err
	}
	delete(w.byUser, [2]chat.ID{m.RoomID, m.UserID})
	if u, ok := w.byMember[[2]chat.ID{m.RoomID, m.ID}]; ok {
		delete(w.byUser, [2]chat.ID{m.RoomID, u})
		delete(w.byMember, [2]chat.ID{m.RoomID, m.ID})
	}
	created := b.Get(m.ID[:]) == nil
	w.s.arena.scratch = appendMember(w.scratch(), &m)
	if err := w.put(b, m.ID[:], w.s.arena.scratch); err != nil {
		return err
	}
	// The user's latest record is the one created last (IDs made in one millisecond are in
	// no order, so they cannot tell).
	idx := w.tx.Bucket(bMemberships)
	key := membershipKey(m.UserID, m.RoomID)
	if created || idx.Get(key) == nil {
		return w.put(idx, key, m.ID[:])
	}
	return nil
}

func (w *writeTx) Append(ev *chat.Event) error {
	b, err := w.eventsBucket(ev.RoomID)
	if err != nil {
		return err
	}
	b.FillPercent = 1.0 // append-only
	last := w.lastOf(ev.RoomID, b)
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	if last.pos > 0 && !ev.Time.After(last.time) {
		ev.Time = last.time.Add(time.Microsecond)
	}
	ev.Pos = last.pos + 1
	if ev.Key != "" {
		if err := w.putKey(ev.RoomID, ev.Key, ev.Pos); err != nil {
			return err
		}
	}
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], ev.Pos)
	w.s.arena.scratch = appendEvent(w.scratch(), ev)
	if err := w.put(b, key[:], w.s.arena.scratch); err != nil {
		delete(w.last, ev.RoomID) // unknown state: read it again
		return err
	}
	w.last[ev.RoomID] = lastEvent{ev.Pos, ev.Time}
	return nil
}

func (w *writeTx) SetRevision(roomID chat.ID, pos, rev uint64) error {
	b := w.roomBucket(kindRevisions, roomID)
	if b == nil {
		return notFound("room", roomID)
	}
	var k, v [8]byte
	binary.BigEndian.PutUint64(k[:], pos)
	binary.BigEndian.PutUint64(v[:], rev)
	return w.put(b, k[:], v[:])
}

func (t *readTx) EventByKey(roomID chat.ID, key string) (chat.Event, error) {
	if _, err := t.events(roomID); err != nil {
		return chat.Event{}, err
	}
	var v []byte
	if b := t.roomBucket(kindKeys, roomID); b != nil && key != "" {
		v = b.Get([]byte(key))
	}
	if len(v) != 8 {
		return chat.Event{}, notFound("event with key", key)
	}
	return t.Event(roomID, binary.BigEndian.Uint64(v))
}

// putKey records that the room's event at pos has the client key.
func (w *writeTx) putKey(roomID chat.ID, key string, pos uint64) error {
	var name [17]byte
	name[0] = kindKeys
	copy(name[1:], roomID[:])
	b := w.tx.Bucket(name[:])
	if b == nil {
		var err error
		if b, err = w.tx.CreateBucket(w.s.arena.copy(name[:])); err != nil {
			return fmt.Errorf("bolt store: room %s: %w", roomID, err)
		}
		w.dirty = true
	}
	if b.Get([]byte(key)) != nil {
		return fmt.Errorf("bolt store: key %q in room %s: %w", key, roomID, chat.ErrConflict)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], pos)
	return w.put(b, []byte(key), v[:])
}

func (t *readTx) Timer(kind chat.TimerKind, roomID, memberID chat.ID) (chat.Timer, error) {
	v := t.tx.Bucket(bTimers).Get(timerKey(kind, roomID, memberID))
	if len(v) != 8 {
		return chat.Timer{}, notFound("timer", kind)
	}
	return chat.Timer{Kind: kind, Room: roomID, Member: memberID, At: microTime(int64(binary.BigEndian.Uint64(v)))}, nil
}

func (t *readTx) Timers(until time.Time, limit int) ([]chat.Timer, error) {
	var out []chat.Timer
	end := uint64(until.UnixMicro())
	c := t.tx.Bucket(bTimersByTime).Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		if len(k) >= 8 && binary.BigEndian.Uint64(k) > end {
			break
		}
		tm, err := decodeTimerTimeKey(k)
		if err != nil {
			return nil, err
		}
		out = append(out, tm)
	}
	return out, nil
}

func (w *writeTx) PutTimer(tm chat.Timer) error {
	if _, err := w.events(tm.Room); err != nil {
		return err
	}
	tm.At = tm.At.UTC().Truncate(time.Microsecond)
	if err := w.DeleteTimer(tm.Kind, tm.Room, tm.Member); err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(tm.At.UnixMicro()))
	if err := w.put(w.tx.Bucket(bTimers), timerKey(tm.Kind, tm.Room, tm.Member), v[:]); err != nil {
		return err
	}
	return w.put(w.tx.Bucket(bTimersByTime), timerTimeKey(tm), nil)
}

func (w *writeTx) DeleteTimer(kind chat.TimerKind, roomID, memberID chat.ID) error {
	old, err := w.Timer(kind, roomID, memberID)
	if errors.Is(err, chat.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := w.del(w.tx.Bucket(bTimers), timerKey(kind, roomID, memberID)); err != nil {
		return err
	}
	return w.del(w.tx.Bucket(bTimersByTime), timerTimeKey(old))
}

// deleteTimers removes every timer of a room.
func (w *writeTx) deleteTimers(roomID chat.ID) error {
	var doomed []chat.Timer
	c := w.tx.Bucket(bTimers).Cursor()
	for k, v := c.Seek(roomID[:]); k != nil && bytes.HasPrefix(k, roomID[:]); k, v = c.Next() {
		if len(k) < 16+1+16 || len(v) != 8 || k[len(k)-17] != 0 {
			return fmt.Errorf("%w: timer key %x", errCorrupt, k)
		}
		doomed = append(doomed, chat.Timer{Room: roomID, Kind: chat.TimerKind(k[16 : len(k)-17]), Member: chat.ID(k[len(k)-16:])})
	}
	for _, tm := range doomed {
		if err := w.DeleteTimer(tm.Kind, tm.Room, tm.Member); err != nil {
			return err
		}
	}
	return nil
}
