package chat

import (
	"context"
	"time"
)

// Store is the storage an Engine runs on. Adapters live in subpackages (storage/memory,
// storage/bolt, storage/postgres) and must pass the conformance suite in storage/storagetest.
//
// A Store holds no chat logic: the Engine runs its logic inside a transaction and the Store
// makes each transaction atomic and durable. Every engine operation is one Update, so a join
// (a member change and its event) is one commit.
//
// Transaction methods take no context: a transaction works under the context its View or
// Update was given (as a database/sql Tx works under its BeginTx context), and a store that
// commits many Updates together (group commit) runs them under a context of its own that
// bounds the whole batch.
//
// A Store that several processes share (storage/postgres) also implements BusStore, so that
// each Engine learns what the others commit.
type Store interface {
	// View runs fn in a read-only transaction that sees one consistent state. fn must not
	// keep tx after it returns. View returns fn's error, ctx.Err() if ctx ends before the
	// transaction starts, or ErrClosed after Close.
	View(ctx context.Context, fn func(tx ReadTx) error) error

	// Update runs fn in a read-write transaction and commits it if fn returns nil. Update
	// returns only once the commit is durable (as durable as the Store promises to be). If fn
	// returns an error, nothing fn wrote is kept and Update returns that error. If the commit
	// fails, Update returns the error and nothing fn wrote is kept.
	//
	// A Store may run fn more than once (to retry a group commit without a failed
	// transaction), so fn must not have effects outside tx beyond setting its results, and
	// must not block. Update returns ctx.Err() if ctx ends before fn runs; once fn has run
	// the outcome is reported whatever ctx does, so an acknowledged write is never reported
	// as failed. It returns ErrClosed after Close.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// Close waits for transactions under way, fails those still queued with ErrClosed, and
	// releases the storage. Later calls return ErrClosed.
	Close() error
}

// ReadTx reads a consistent state of a Store. Methods return values that the caller owns:
// changing them does not change the store.
type ReadTx interface {
	// User returns the user with id, or ErrNotFound.
	User(id ID) (User, error)
	// UserByName returns the user with the unique name, or ErrNotFound.
	UserByName(name string) (User, error)
	// Users returns users in ID order (creation order to the millisecond) after the filter.
	Users(f ListFilter) ([]User, error)

	// Room returns the room with id, or ErrNotFound. Room.LastPos and Room.LastTime describe
	// its last event.
	Room(id ID) (Room, error)
	// RoomByName returns the room with the unique name, or ErrNotFound.
	RoomByName(name string) (Room, error)
	// Rooms returns rooms in ID order (creation order to the millisecond) after the filter.
	Rooms(f ListFilter) ([]Room, error)

	// MemberByID returns the membership record memberID of room roomID, or ErrNotFound.
	MemberByID(roomID, memberID ID) (Member, error)
	// MemberByUser returns the latest membership record of userID in roomID (the one
	// PutMember created last), or ErrNotFound if the user was never a member.
	MemberByUser(roomID, userID ID) (Member, error)
	// Members returns every membership record of roomID, left ones included, in ID order. It
	// returns ErrNotFound if the room does not exist.
	Members(roomID ID) ([]Member, error)
	// Memberships returns the latest membership record (as MemberByUser) of userID in every
	// room it was ever a member of, in room ID order.
	Memberships(userID ID) ([]Member, error)

	// Event returns the event at pos in roomID, or ErrNotFound.
	Event(roomID ID, pos uint64) (Event, error)
	// Events appends to dst up to limit events of roomID starting at position from and going
	// forwards (or backwards, from from down to 1), and returns the extended slice. A from
	// past the last position yields nothing forwards and starts at the last event backwards.
	// It returns ErrNotFound if the room does not exist.
	Events(roomID ID, from uint64, limit int, backward bool, dst []Event) ([]Event, error)
	// Revision returns the position of the latest edit or delete of the message at pos, or 0
	// if it has none.
	Revision(roomID ID, pos uint64) (uint64, error)
	// EventByKey returns the event of roomID that was appended with the client key key, or
	// ErrNotFound.
	EventByKey(roomID ID, key string) (Event, error)

	// Timer returns the timer of that kind for a room and member (zero for a room's own
	// timers), or ErrNotFound.
	Timer(kind TimerKind, roomID, memberID ID) (Timer, error)
	// Timers returns up to limit timers due at or before until, earliest first (timers due at
	// the same time in kind, room and member order). A limit of 0 means no limit.
	Timers(until time.Time, limit int) ([]Timer, error)
}

// Tx is a read-write transaction. Its reads see its own writes.
type Tx interface {
	ReadTx

	// PutUser creates or replaces a user. It returns ErrConflict if u.Name is not empty and
	// belongs to another user.
	PutUser(u User) error
	// DeleteUser removes a user (its membership records stay, as history). ErrNotFound if
	// there is none.
	DeleteUser(id ID) error

	// PutRoom creates or replaces a room's own fields; LastPos and LastTime are the store's
	// and are ignored. It returns ErrConflict if r.Name is not empty and belongs to another
	// room.
	PutRoom(r Room) error
	// DeleteRoom removes a room with its members, transcript and timers. ErrNotFound if there
	// is none.
	DeleteRoom(id ID) error

	// PutMember creates or replaces a membership record (keyed by RoomID and ID). It returns
	// ErrNotFound if the room does not exist.
	PutMember(m Member) error

	// Append adds ev to the end of the transcript of ev.RoomID. It sets ev.Pos to the room's
	// last position + 1 and ev.Time to ev.Time truncated to the microsecond, or to 1µs after
	// the room's last event if that is later, so that times strictly increase in a room. An
	// event with a Key is found by EventByKey from then on. It returns ErrNotFound if the room
	// does not exist, ErrConflict if ev.Key is not empty and another event of the room has it.
	Append(ev *Event) error

	// SetRevision records rev as the latest edit or delete of the message at pos.
	SetRevision(roomID ID, pos, rev uint64) error

	// PutTimer creates or replaces the timer of t's kind, room and member. It returns
	// ErrNotFound if the room does not exist.
	PutTimer(t Timer) error
	// DeleteTimer removes a timer if there is one.
	DeleteTimer(kind TimerKind, roomID, memberID ID) error

	// AfterCommit registers f to run once the transaction is durable, before Update returns.
	// The functions run one at a time. A store that commits one transaction after another
	// (memory, bolt) runs them in commit order, so that the Engine publishes each room's
	// events in position order; a store with several writers (postgres) may run two
	// transactions' functions in either order, and the Engine copes with a room's events
	// arriving out of order. f must be quick and must not block or call the Store. If the
	// transaction fails or fn is run again, f is dropped.
	AfterCommit(f func())
}

// TimerKind names what a Timer does when it is due.
type TimerKind string

// The kinds of timers the Engine keeps.
const (
	// TimerTyping ends a member's typing indicator.
	TimerTyping TimerKind = "typing"
	// TimerRoomTTL deletes a room that has been empty for its EmptyTTL.
	TimerRoomTTL TimerKind = "room-ttl"
	// TimerIdle checks a room's idle control.
	TimerIdle TimerKind = "idle"
)

// Timer is a deadline the Engine keeps in the Store, so that it outlives the process that set
// it: whichever process sharing the Store sees it due acts on it, and acting on it twice does
// nothing more than acting once.
type Timer struct {
	// Kind says what the timer does.
	Kind TimerKind
	// Room is the room it is about.
	Room ID
	// Member is the membership record it is about; zero for a room's own timers.
	Member ID
	// At is when it is due, to the microsecond.
	At time.Time
}

// RoomUpdater is a Store that works better when told in advance which rooms a transaction
// will touch (storage/postgres locks the rooms of a whole batch in one round trip). The
// Engine uses UpdateRooms for its operations on one room. The rooms are a hint: fn may touch
// others, or fewer; UpdateRooms otherwise behaves as Update.
type RoomUpdater interface {
	Store
	UpdateRooms(ctx context.Context, rooms []ID, fn func(Tx) error) error
}

// BusStore is a Store that several processes share. Its Bus tells each Engine what the
// others commit; an Engine opened on a BusStore uses it unless WithBus says otherwise.
type BusStore interface {
	Store
	// Bus returns the store's Bus.
	Bus() Bus
}

// Bus tells an Engine what other processes that share its Store have committed, so that its
// followers, feeds and timers stay in step with theirs. It carries hints about positions
// only: the events themselves are always read from the Store.
type Bus interface {
	// Changes returns what commits made after cursor did to rooms' transcripts, each room's
	// changes in commit order, and the cursor to pass next time. Commits of this process are
	// included. A nil cursor returns no changes and a cursor that stands for now. A cursor
	// too old for the Bus to answer from gives an error wrapping ErrLagged: the Engine then
	// compares the last positions of the rooms it follows with the Store's.
	Changes(ctx context.Context, cursor []byte) ([]Change, []byte, error)
	// Wake returns a channel that receives when Changes may have something new; each Engine
	// calls it once. The Engine also calls Changes now and then without being woken, so a
	// lost wake-up only delays.
	Wake() <-chan struct{}
}

// Change says that one commit appended positions From to To of a room's transcript, or (with
// Deleted) deleted the room.
type Change struct {
	// Room is the room.
	Room ID
	// From and To are the first and last positions the commit appended.
	From, To uint64
	// Deleted says the room was deleted.
	Deleted bool
}

// ListFilter selects a page of a list ordered by ID, which is creation order to the millisecond
// (items made in the same millisecond are in a stable but arbitrary order).
type ListFilter struct {
	// Since and Until, when not zero, keep items created in [Since, Until).
	Since, Until time.Time
	// Offset skips that many matching items.
	Offset int
	// Limit is the most items returned; 0 means no limit.
	Limit int
	// Desc lists newest first.
	Desc bool
}

// Validate reports a negative offset or limit, or an empty time range.
func (f ListFilter) Validate() error {
	if f.Offset < 0 || f.Limit < 0 {
		return invalidf("negative offset or limit")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return invalidf("time range ends before it starts")
	}
	return nil
}

// Match reports whether an item created at t passes the filter's time range. Stores use it.
func (f ListFilter) Match(t time.Time) bool {
	if !f.Since.IsZero() && t.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !t.Before(f.Until) {
		return false
	}
	return true
}
