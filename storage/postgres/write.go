package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/chat"
)

// roomState is a room as the writer's current database transaction sees it: locked (or
// found missing), with the appends and revisions buffered for the commit.
type roomState struct {
	id      chat.ID
	exists  bool
	room    chat.Room // LastPos and LastTime include the buffered appends
	version int64     // as stored (PutRoom changes it at once)
	inc     int64
	bump    bool   // a member changed: the commit writes version+1
	dbLast  uint64 // the last position in parley_events; pending holds dbLast+1...
	pending []chat.Event
	revs    map[uint64]uint64
	keys    map[string]uint64 // keys of pending events
	noKeys  map[string]bool   // keys known to be absent from parley_events
	cache   *roomCache        // member lookups; valid while version and inc are
	logIdx  int               // index in writer.log of the room's last change, -1 for none
	flushed bool              // in writer.order
	// detached: the transaction changed the room's members or fields, so its cache is out
	// of Store.rc (another lane must not see uncommitted changes) until the commit.
	detached bool
}

// roomCache is what the writer keeps of a room between its transactions: the results of
// MemberByUser. It is valid while the room's incarnation and version are those it was made
// at: every change to the room's members, by any process, changes the version (under the
// room's lock, which the writer holds whenever it reads the version).
type roomCache struct {
	inc, version int64
	byUser       map[chat.ID]chat.Member
	byMember     map[chat.ID]chat.ID // member ID → the user it is cached under
}

// change is one row of parley_changes.
type change struct {
	room     chat.ID
	from, to uint64
	deleted  bool
}

// undoKind says what an undo entry reverts.
type undoKind uint8

const (
	undoAppend undoKind = iota
	undoRevision
)

// undo reverts one buffered write of the current function, so that a function that fails
// having only buffered writes leaves the batch as it found it without a rollback.
type undo struct {
	kind     undoKind
	st       *roomState
	pos      uint64 // undoRevision: the position; undoAppend: the previous LastPos
	prev     uint64 // undoRevision: the previous revision (0: none)
	had      bool
	time     time.Time
	newEntry bool // undoAppend: the append started a new change entry
	logIdx   int
}

// writer is one writer goroutine's state: its connection and its current database
// transaction. It implements chat.Tx for the function it runs.
type writer struct {
	s    *Store
	conn *pgx.Conn
	ctx  context.Context
	rd   reader

	begun  bool  // BEGIN was sent
	wrote  bool  // a statement changed something: room locks stop waiting
	solo   bool  // the batch is one transaction deferred again and again: its locks may wait
	broken error // a statement failed: the database transaction is aborted

	rooms map[chat.ID]*roomState
	order []*roomState // rooms locked or created, in order, for the commit
	log   []change
	locks int // room rows locked

	// The function being run.
	dirty bool // it ran a statement that changed something: a failure needs a rollback
	busy  bool // it met a room locked by another transaction
	undo  []undo
	after []func()

	cols  eventColumns
	nstmt int  // statements in the pipeline send sent
	ok    bool // the last commit succeeded

	stats *stats
}

// writerCacheMax bounds how many rooms the writer keeps member lookups for.
const writerCacheMax = 1 << 15

// reset prepares the writer for a new database transaction.
func (w *writer) reset(ctx context.Context, solo bool) {
	w.ctx, w.solo = ctx, solo
	w.begun, w.wrote, w.broken = false, false, nil
	if w.rooms == nil {
		w.rooms = make(map[chat.ID]*roomState)
	}
	clear(w.rooms)
	clear(w.order)
	w.order = w.order[:0]
	w.log = w.log[:0]
	w.locks = 0
	w.rd = reader{ctx: ctx, q: w}
	w.s.rcMu.Lock()
	if len(w.s.rc) > writerCacheMax {
		clear(w.s.rc)
	}
	w.s.rcMu.Unlock()
}

// beginFn prepares the writer to run one function.
func (w *writer) beginFn(after []func()) {
	w.dirty, w.busy = false, false
	w.undo = w.undo[:0]
	w.after = after
}

// undoFn reverts the buffered writes of a function that wrote nothing else.
func (w *writer) undoFn() {
	for i := len(w.undo) - 1; i >= 0; i-- {
		u := &w.undo[i]
		st := u.st
		switch u.kind {
		case undoAppend:
			ev := &st.pending[len(st.pending)-1]
			if ev.Key != "" {
				delete(st.keys, ev.Key)
			}
			*ev = chat.Event{}
			st.pending = st.pending[:len(st.pending)-1]
			st.room.LastPos, st.room.LastTime = u.pos, u.time
			if u.newEntry {
				w.log = w.log[:len(w.log)-1]
				st.logIdx = u.logIdx
			} else {
				w.log[st.logIdx].to--
			}
		case undoRevision:
			if u.had {
				st.revs[u.pos] = u.prev
			} else {
				delete(st.revs, u.pos)
			}
		}
		*u = undo{}
	}
	w.undo = w.undo[:0]
}

// forgetTouched drops the caches of the rooms of a transaction that was rolled back: they
// may hold what it wrote.
func (w *writer) forgetTouched() {
	w.s.rcMu.Lock()
	for _, st := range w.rooms {
		delete(w.s.rc, st.id)
	}
	w.s.rcMu.Unlock()
}

// The querier the reader runs on: the writer's connection, in its transaction, begun on
// first use.

func (w *writer) begin() error {
	if w.broken != nil {
		return w.broken
	}
	if !w.begun {
		if _, err := w.conn.Exec(w.ctx, "BEGIN"); err != nil {
			w.broken = err
			return err
		}
		w.begun = true
	}
	return nil
}

func (w *writer) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := w.begin(); err != nil {
		return nil, err
	}
	rows, err := w.conn.Query(ctx, sql, args...)
	if err != nil {
		w.broken = err
	}
	return rows, err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (w *writer) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if w.broken != nil {
		return errRow{w.broken}
	}
	if !w.begun {
		// BEGIN goes in the same round trip as the transaction's first statement.
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(sql, args...)
		br := w.conn.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			w.broken = err
			return errRow{err}
		}
		w.begun = true
		return checkedRow{w, br.QueryRow(), br}
	}
	return checkedRow{w, w.conn.QueryRow(ctx, sql, args...), nil}
}

// checkedRow notes a failed statement, and closes the pipeline the row came in, if any.
type checkedRow struct {
	w   *writer
	row pgx.Row
	br  pgx.BatchResults
}

func (r checkedRow) Scan(dst ...any) error {
	err := r.row.Scan(dst...)
	if r.br != nil {
		if cerr := r.br.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && r.w.broken == nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) || classify(err) != err { // a database or connection error, not a scan error
			r.w.broken = err
		}
	}
	return err
}

func (w *writer) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := w.begin(); err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := w.conn.Exec(ctx, sql, args...)
	if err != nil {
		w.broken = err
	}
	return tag, err
}

// check is called on every error a transaction method is about to return: an error of the
// database (rather than one of ours) has aborted the database transaction.
func (w *writer) check(err error) error {
	if err != nil && !ours(err) && w.broken == nil {
		w.broken = err
	}
	return err
}

// usable returns the error a method returns before doing anything, if any.
func (w *writer) usable() error {
	if w.busy {
		return errRoomBusy
	}
	if w.broken != nil {
		return fmt.Errorf("postgres store: an earlier statement failed: %w", classify(w.broken))
	}
	return nil
}

const (
	lockSQL     = `SELECT ` + roomCols + ` FROM parley_rooms WHERE id = $1 FOR UPDATE`
	lockSkipSQL = `SELECT ` + roomCols + ` FROM parley_rooms WHERE id = $1 FOR UPDATE SKIP LOCKED`
)

// lock locks a room's row for the rest of the database transaction, on the first access to
// the room, and returns its state. Only a transaction that holds no room lock and has written
// nothing yet waits for the lock (or every lock, in solo mode); later locks skip a row that
// another transaction holds, and then the function is marked busy: see the package comment.
func (w *writer) lock(id chat.ID) (*roomState, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	if st, ok := w.rooms[id]; ok {
		return st, nil
	}
	wait := w.solo || (w.locks == 0 && !w.wrote)
	q := lockSkipSQL
	if wait {
		q = lockSQL
	}
	r, meta, err := scanRoom(w.QueryRow(w.ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		if !wait {
			var exists bool
			if err := w.QueryRow(w.ctx, `SELECT EXISTS (SELECT 1 FROM parley_rooms WHERE id = $1)`, id).Scan(&exists); err != nil {
				return nil, w.check(fmt.Errorf("postgres store: lock room: %w", classify(err)))
			}
			if exists {
				w.busy = true
				w.stats.busy.Add(1)
				return nil, errRoomBusy
			}
		}
		st := &roomState{id: id, logIdx: -1}
		w.rooms[id] = st
		return st, nil
	}
	if err != nil {
		return nil, w.check(fmt.Errorf("postgres store: lock room: %w", classify(err)))
	}
	return w.locked(r, meta), nil
}

// detach takes a room's cache out of Store.rc before the transaction changes what it holds.
func (w *writer) detach(st *roomState) {
	if !st.detached {
		st.detached = true
		w.s.rcMu.Lock()
		if w.s.rc[st.id] == st.cache {
			delete(w.s.rc, st.id)
		}
		w.s.rcMu.Unlock()
	}
}

// prefetch locks, in one round trip that also begins the transaction, the rooms the batch's
// transactions said they would touch, skipping those locked elsewhere (they are locked, or
// found busy, when first touched, as without a hint).
func (w *writer) prefetch(live []*request) {
	var ids []chat.ID
	for _, r := range live {
		if !r.ended && !r.deferred {
			ids = append(ids, r.rooms...)
		}
	}
	if len(ids) == 0 || w.begun || w.broken != nil {
		return
	}
	slices.SortFunc(ids, func(a, b chat.ID) int { return bytesCompare(a[:], b[:]) })
	ids = slices.Compact(ids)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(`SELECT `+roomCols+` FROM parley_rooms WHERE id = ANY($1) FOR UPDATE SKIP LOCKED`, ids)
	br := w.conn.SendBatch(w.ctx, b)
	defer func() {
		if err := br.Close(); err != nil && w.broken == nil {
			w.broken = err
		}
	}()
	if _, err := br.Exec(); err != nil {
		w.broken = err
		return
	}
	w.begun = true
	rows, err := br.Query()
	if err != nil {
		w.broken = err
		return
	}
	defer rows.Close()
	for rows.Next() {
		r, meta, err := scanRoom(rows)
		if err != nil {
			w.broken = err
			return
		}
		w.locked(r, meta)
	}
	if err := rows.Err(); err != nil {
		w.broken = err
	}
}

func bytesCompare(a, b []byte) int {
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

// locked records a room row the transaction has locked.
func (w *writer) locked(r chat.Room, meta roomMeta) *roomState {
	id := r.ID
	st := &roomState{id: id, exists: true, room: r, version: meta.version, inc: meta.inc, dbLast: r.LastPos, logIdx: -1}
	w.s.rcMu.Lock()
	if c := w.s.rc[id]; c != nil && c.inc == meta.inc && c.version == meta.version {
		st.cache = c
	} else {
		st.cache = newRoomCache(meta)
		w.s.rc[id] = st.cache
	}
	w.s.rcMu.Unlock()
	w.rooms[id] = st
	w.locks++
	w.addOrder(st)
	return st
}

func newRoomCache(m roomMeta) *roomCache {
	return &roomCache{inc: m.inc, version: m.version, byUser: map[chat.ID]chat.Member{}, byMember: map[chat.ID]chat.ID{}}
}

func (w *writer) addOrder(st *roomState) {
	if !st.flushed {
		st.flushed = true
		w.order = append(w.order, st)
	}
}

// room returns the state of an existing room, or ErrNotFound.
func (w *writer) room(id chat.ID) (*roomState, error) {
	st, err := w.lock(id)
	if err != nil {
		return nil, err
	}
	if !st.exists {
		return nil, notFound("room", id)
	}
	return st, nil
}

func cloneRoom(r chat.Room) chat.Room {
	r.Attributes = maps.Clone(r.Attributes)
	return r
}

// ---- chat.ReadTx ----

func (w *writer) User(id chat.ID) (chat.User, error) {
	if err := w.usable(); err != nil {
		return chat.User{}, err
	}
	u, err := w.rd.user(id)
	return u, w.check(err)
}

func (w *writer) UserByName(name string) (chat.User, error) {
	if err := w.usable(); err != nil {
		return chat.User{}, err
	}
	u, err := w.rd.userByName(name)
	return u, w.check(err)
}

func (w *writer) Users(f chat.ListFilter) ([]chat.User, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	us, err := w.rd.users(f)
	return us, w.check(err)
}

func (w *writer) Room(id chat.ID) (chat.Room, error) {
	st, err := w.room(id)
	if err != nil {
		return chat.Room{}, err
	}
	return cloneRoom(st.room), nil
}

func (w *writer) RoomByName(name string) (chat.Room, error) {
	if err := w.usable(); err != nil {
		return chat.Room{}, err
	}
	if name == "" {
		return chat.Room{}, notFound("room name", name)
	}
	var id chat.ID
	err := w.QueryRow(w.ctx, `SELECT id FROM parley_rooms WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Room{}, notFound("room name", name)
	}
	if err != nil {
		return chat.Room{}, w.check(fmt.Errorf("postgres store: read room name: %w", classify(err)))
	}
	st, err := w.lock(id)
	if err != nil {
		return chat.Room{}, err
	}
	if !st.exists || st.room.Name != name { // renamed or deleted while this waited for the lock
		return chat.Room{}, notFound("room name", name)
	}
	return cloneRoom(st.room), nil
}

func (w *writer) Rooms(f chat.ListFilter) ([]chat.Room, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	rs, err := w.rd.rooms(f)
	for i := range rs {
		if st := w.rooms[rs[i].ID]; st != nil && st.exists {
			rs[i].LastPos, rs[i].LastTime = st.room.LastPos, st.room.LastTime
		}
	}
	return rs, w.check(err)
}

func (w *writer) MemberByID(roomID, memberID chat.ID) (chat.Member, error) {
	if _, err := w.room(roomID); err != nil {
		return chat.Member{}, err
	}
	m, err := w.rd.member(roomID, memberID)
	return m, w.check(err)
}

func (w *writer) MemberByUser(roomID, userID chat.ID) (chat.Member, error) {
	st, err := w.room(roomID)
	if err != nil {
		return chat.Member{}, err
	}
	if m, ok := st.cache.byUser[userID]; ok && !w.s.opts.noMemberCache {
		return m, nil
	}
	m, err := w.rd.memberByUser(roomID, userID)
	if err != nil {
		return m, w.check(err)
	}
	// Only a record of the user is kept (PutMember may give a record another user), so
	// that each record is cached under one user, the one byMember names.
	if m.UserID == userID {
		st.cache.byUser[userID] = m
		st.cache.byMember[m.ID] = userID
	}
	return m, nil
}

func (w *writer) Members(roomID chat.ID) ([]chat.Member, error) {
	if _, err := w.room(roomID); err != nil {
		return nil, err
	}
	ms, err := w.rd.members(roomID)
	return ms, w.check(err)
}

func (w *writer) Memberships(userID chat.ID) ([]chat.Member, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	ms, err := w.rd.memberships(userID)
	return ms, w.check(err)
}

// pendingEvent returns the buffered event at pos, or nil.
func (st *roomState) pendingEvent(pos uint64) *chat.Event {
	if pos > st.dbLast && pos <= st.dbLast+uint64(len(st.pending)) {
		return &st.pending[pos-st.dbLast-1]
	}
	return nil
}

func (w *writer) Event(roomID chat.ID, pos uint64) (chat.Event, error) {
	st, err := w.room(roomID)
	if err != nil {
		return chat.Event{}, err
	}
	if ev := st.pendingEvent(pos); ev != nil {
		return ownEvent(*ev), nil
	}
	if pos == 0 || pos > st.dbLast {
		return chat.Event{}, notFound("event", pos)
	}
	ev, err := w.rd.event(roomID, pos)
	return ev, w.check(err)
}

func ownEvent(ev chat.Event) chat.Event {
	ev.Body = slices.Clone(ev.Body)
	return ev
}

func (w *writer) Events(roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	st, err := w.room(roomID)
	if err != nil {
		return dst, err
	}
	if limit <= 0 || (backward && from == 0) {
		return dst, nil
	}
	last := st.room.LastPos
	from = max(from, 1)
	if backward {
		from = min(from, last)
		// The buffered tail first, then the table.
		for ; from > st.dbLast && limit > 0; from, limit = from-1, limit-1 {
			dst = append(dst, ownEvent(*st.pendingEvent(from)))
		}
		dst, err = w.committedEvents(st, 1, from, limit, true, dst)
		return dst, w.check(err)
	}
	if from > last {
		return dst, nil
	}
	if from <= st.dbLast {
		n := len(dst)
		dst, err = w.committedEvents(st, from, st.dbLast, limit, false, dst)
		if err != nil {
			return dst, w.check(err)
		}
		limit -= len(dst) - n
		from = st.dbLast + 1
	}
	for ; from <= last && limit > 0; from, limit = from+1, limit-1 {
		dst = append(dst, ownEvent(*st.pendingEvent(from)))
	}
	return dst, nil
}

// committedEvents reads events in [lo, hi] of a locked room, all committed: through the
// block cache if it is on.
func (w *writer) committedEvents(st *roomState, lo, hi uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	if lo > hi || limit <= 0 {
		return dst, nil
	}
	if c := w.s.cache; c != nil {
		return c.events(&w.rd, st.id, st.inc, hi, lo, hi, limit, backward, dst)
	}
	return w.rd.queryEvents(st.id, lo, hi, limit, backward, dst)
}

func (w *writer) Revision(roomID chat.ID, pos uint64) (uint64, error) {
	st, err := w.room(roomID)
	if err != nil {
		return 0, err
	}
	if rev, ok := st.revs[pos]; ok {
		return rev, nil
	}
	rev, err := w.rd.revision(roomID, pos)
	return rev, w.check(err)
}

func (w *writer) EventByKey(roomID chat.ID, key string) (chat.Event, error) {
	st, err := w.room(roomID)
	if err != nil {
		return chat.Event{}, err
	}
	if key == "" {
		return chat.Event{}, notFound("event with key", key)
	}
	if pos, ok := st.keys[key]; ok {
		return ownEvent(*st.pendingEvent(pos)), nil
	}
	if st.noKeys[key] {
		return chat.Event{}, notFound("event with key", key)
	}
	pos, err := w.rd.keyPos(roomID, key)
	if err != nil {
		return chat.Event{}, w.check(err)
	}
	if pos == 0 {
		if st.noKeys == nil {
			st.noKeys = make(map[string]bool)
		}
		st.noKeys[key] = true
		return chat.Event{}, notFound("event with key", key)
	}
	return w.Event(roomID, pos)
}

func (w *writer) Timer(kind chat.TimerKind, roomID, memberID chat.ID) (chat.Timer, error) {
	st, err := w.lock(roomID)
	if err != nil {
		return chat.Timer{}, err
	}
	if !st.exists {
		return chat.Timer{}, notFound("timer", kind)
	}
	tm, err := w.rd.timer(kind, roomID, memberID)
	return tm, w.check(err)
}

func (w *writer) Timers(until time.Time, limit int) ([]chat.Timer, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	ts, err := w.rd.timers(until, limit)
	return ts, w.check(err)
}

// ---- chat.Tx ----

func (w *writer) AfterCommit(f func()) { w.after = append(w.after, f) }

// exec runs a write statement and notes whether it changed anything.
func (w *writer) exec(what, sql string, args ...any) (int64, error) {
	tag, err := w.Exec(w.ctx, sql, args...)
	if err != nil {
		return 0, w.check(fmt.Errorf("postgres store: %s: %w", what, classify(err)))
	}
	if n := tag.RowsAffected(); n > 0 {
		w.dirty, w.wrote = true, true
		return n, nil
	}
	return 0, nil
}

const putUserSQL = `WITH upd AS (
	UPDATE parley_users SET name = $2, display_name = $3, email = $4, avatar_url = $5, attributes = $6,
		created_at = $7, updated_at = $8
	WHERE id = $1 AND ($2::text IS NULL OR NOT EXISTS (SELECT 1 FROM parley_users o WHERE o.name = $2 AND o.id <> $1))
	RETURNING 1
), ins AS (
	INSERT INTO parley_users (` + userCols + `)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM parley_users WHERE id = $1)
	ON CONFLICT DO NOTHING
	RETURNING 1
)
SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)`

func (w *writer) PutUser(u chat.User) error {
	if err := w.usable(); err != nil {
		return err
	}
	var n int
	err := w.QueryRow(w.ctx, putUserSQL, u.ID, nullable(u.Name), u.DisplayName, u.Email, u.AvatarURL,
		attrs(u.Attributes), u.CreatedAt, u.UpdatedAt).Scan(&n)
	if err != nil {
		return w.check(fmt.Errorf("postgres store: put user: %w", classify(err)))
	}
	if n == 0 {
		return conflict("user name %q", u.Name)
	}
	w.dirty, w.wrote = true, true
	return nil
}

func (w *writer) DeleteUser(id chat.ID) error {
	if err := w.usable(); err != nil {
		return err
	}
	n, err := w.exec("delete user", `DELETE FROM parley_users WHERE id = $1`, id)
	if err == nil && n == 0 {
		return notFound("user", id)
	}
	return err
}

const (
	updateRoomSQL = `UPDATE parley_rooms SET name = $2, display_name = $3, image_url = $4, private = $5,
	attributes = $6, empty_ttl = $7, created_at = $8, updated_at = $9, ended_at = $10, joins = $11, idle = $12,
	version = version + 1
WHERE id = $1 AND ($2::text IS NULL OR NOT EXISTS (SELECT 1 FROM parley_rooms o WHERE o.name = $2 AND o.id <> $1))`
	insertRoomSQL = `INSERT INTO parley_rooms (id, name, display_name, image_url, private, attributes, empty_ttl,
	created_at, updated_at, ended_at, joins, idle)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING incarnation`
)

func (w *writer) PutRoom(r chat.Room) error {
	st, err := w.lock(r.ID)
	if err != nil {
		return err
	}
	args := []any{r.ID, nullable(r.Name), r.DisplayName, r.ImageURL, r.Private, attrs(r.Attributes), int64(r.EmptyTTL),
		r.CreatedAt, r.UpdatedAt, r.EndedAt, int64(r.Joins), idleArg(r.Idle)}
	if st.exists {
		n, err := w.exec("update room", updateRoomSQL, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("room name %q", r.Name)
		}
		w.detach(st)
		st.version++
		r.LastPos, r.LastTime = st.room.LastPos, st.room.LastTime
		st.room = cloneRoom(r)
		return nil
	}
	var inc int64
	err = w.QueryRow(w.ctx, insertRoomSQL, args...).Scan(&inc)
	if errors.Is(err, pgx.ErrNoRows) {
		return conflict("room name %q", r.Name)
	}
	if err != nil {
		return w.check(fmt.Errorf("postgres store: insert room: %w", classify(err)))
	}
	w.dirty, w.wrote = true, true
	r.LastPos, r.LastTime = 0, time.Time{}
	*st = roomState{id: r.ID, exists: true, room: cloneRoom(r), inc: inc, logIdx: st.logIdx, flushed: st.flushed,
		cache: newRoomCache(roomMeta{inc: inc}), detached: true}
	w.locks++
	w.addOrder(st)
	return nil
}

const deleteRoomSQL = `WITH m AS (DELETE FROM parley_members WHERE room = $1),
x AS (DELETE FROM parley_memberships WHERE room = $1),
e AS (DELETE FROM parley_events WHERE room = $1),
v AS (DELETE FROM parley_revisions WHERE room = $1),
t AS (DELETE FROM parley_timers WHERE room = $1)
DELETE FROM parley_rooms WHERE id = $1`

func (w *writer) DeleteRoom(id chat.ID) error {
	st, err := w.room(id)
	if err != nil {
		return err
	}
	if _, err := w.exec("delete room", deleteRoomSQL, id); err != nil {
		return err
	}
	w.dirty, w.wrote = true, true
	// What was buffered for the room goes with it.
	*st = roomState{id: id, logIdx: -1, flushed: st.flushed}
	w.s.rcMu.Lock()
	delete(w.s.rc, id)
	w.s.rcMu.Unlock()
	w.log = append(w.log, change{room: id, deleted: true})
	return nil
}

const putMemberSQL = `WITH up AS (
	INSERT INTO parley_members (` + memberCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	ON CONFLICT (room, id) DO UPDATE SET user_id = EXCLUDED.user_id, state = EXCLUDED.state,
		nickname = EXCLUDED.nickname, role = EXCLUDED.role, join_number = EXCLUDED.join_number,
		delivered = EXCLUDED.delivered, read = EXCLUDED.read, invited_by = EXCLUDED.invited_by,
		invited_at = EXCLUDED.invited_at, joined_at = EXCLUDED.joined_at, left_at = EXCLUDED.left_at,
		pos = EXCLUDED.pos, typing_until = EXCLUDED.typing_until, typing_text = EXCLUDED.typing_text
	RETURNING (xmax = 0) AS created
), latest AS (
	INSERT INTO parley_memberships (user_id, room, member) SELECT $3, $1, $2 FROM up WHERE up.created
	ON CONFLICT (user_id, room) DO UPDATE SET member = EXCLUDED.member
), first AS (
	INSERT INTO parley_memberships (user_id, room, member) SELECT $3, $1, $2 FROM up WHERE NOT up.created
	ON CONFLICT (user_id, room) DO NOTHING
)
SELECT created FROM up`

func (w *writer) PutMember(m chat.Member) error {
	st, err := w.room(m.RoomID)
	if err != nil {
		return err
	}
	var created bool
	err = w.QueryRow(w.ctx, putMemberSQL, m.RoomID, m.ID, m.UserID, int16(m.State), m.Nickname, string(m.Role),
		int64(m.JoinNumber), int64(m.Delivered), int64(m.Read), m.InvitedBy, m.InvitedAt, m.JoinedAt, m.LeftAt,
		int64(m.Pos), m.TypingUntil, m.TypingText).Scan(&created)
	if err != nil {
		return w.check(fmt.Errorf("postgres store: put member: %w", classify(err)))
	}
	w.dirty, w.wrote = true, true
	st.bump = true
	w.detach(st)
	c := st.cache
	if u, ok := c.byMember[m.ID]; ok { // the record's cached entry, under whatever user
		delete(c.byUser, u)
		delete(c.byMember, m.ID)
	}
	if created { // the user's latest record now
		if old, ok := c.byUser[m.UserID]; ok {
			delete(c.byMember, old.ID)
		}
		c.byUser[m.UserID] = m
		c.byMember[m.ID] = m.UserID
	} else if _, ok := c.byUser[m.UserID]; !ok {
		// Not cached: the next MemberByUser reads it.
	} else if c.byUser[m.UserID].ID == m.ID {
		c.byUser[m.UserID] = m
		c.byMember[m.ID] = m.UserID
	}
	return nil
}

func (w *writer) Append(ev *chat.Event) error {
	st, err := w.room(ev.RoomID)
	if err != nil {
		return err
	}
	if ev.Key != "" {
		if _, ok := st.keys[ev.Key]; ok {
			return conflict("key %q in room %s", ev.Key, ev.RoomID)
		}
		if !st.noKeys[ev.Key] {
			pos, err := w.rd.keyPos(ev.RoomID, ev.Key)
			if err != nil {
				return w.check(err)
			}
			if pos != 0 {
				return conflict("key %q in room %s", ev.Key, ev.RoomID)
			}
		}
	}
	prevPos, prevTime := st.room.LastPos, st.room.LastTime
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	if prevPos > 0 && !ev.Time.After(prevTime) {
		ev.Time = prevTime.Add(time.Microsecond)
	}
	ev.Pos = prevPos + 1
	stored := *ev
	stored.Body = slices.Clone(ev.Body)
	st.pending = append(st.pending, stored)
	st.room.LastPos, st.room.LastTime = ev.Pos, ev.Time
	if ev.Key != "" {
		if st.keys == nil {
			st.keys = make(map[string]uint64)
		}
		st.keys[ev.Key] = ev.Pos
	}
	u := undo{kind: undoAppend, st: st, pos: prevPos, time: prevTime, logIdx: st.logIdx}
	if st.logIdx >= 0 && !w.log[st.logIdx].deleted {
		w.log[st.logIdx].to = ev.Pos
	} else {
		u.newEntry = true
		st.logIdx = len(w.log)
		w.log = append(w.log, change{room: st.id, from: ev.Pos, to: ev.Pos})
	}
	w.undo = append(w.undo, u)
	return nil
}

func (w *writer) SetRevision(roomID chat.ID, pos, rev uint64) error {
	st, err := w.room(roomID)
	if err != nil {
		return err
	}
	if st.revs == nil {
		st.revs = make(map[uint64]uint64)
	}
	prev, had := st.revs[pos]
	st.revs[pos] = rev
	w.undo = append(w.undo, undo{kind: undoRevision, st: st, pos: pos, prev: prev, had: had})
	return nil
}

func (w *writer) PutTimer(t chat.Timer) error {
	if _, err := w.room(t.Room); err != nil {
		return err
	}
	_, err := w.exec("put timer", `INSERT INTO parley_timers (kind, room, member, at) VALUES ($1, $2, $3, $4)
ON CONFLICT (room, kind, member) DO UPDATE SET at = EXCLUDED.at`, string(t.Kind), t.Room, t.Member, t.At.UTC().Truncate(time.Microsecond))
	return err
}

func (w *writer) DeleteTimer(kind chat.TimerKind, roomID, memberID chat.ID) error {
	st, err := w.lock(roomID)
	if err != nil || !st.exists {
		return err
	}
	_, err = w.exec("delete timer", `DELETE FROM parley_timers WHERE room = $1 AND kind = $2 AND member = $3`, roomID, string(kind), memberID)
	return err
}

// ---- the commit ----

const (
	insertEventsSQL = `INSERT INTO parley_events (` + eventCols + `)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[],
	$9::text[], $10::bytea[], $11::bigint[], $12::text[], $13::timestamptz[], $14::text[], $15::bigint[])`
	upsertRevisionsSQL = `INSERT INTO parley_revisions (room, pos, rev)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[])
ON CONFLICT (room, pos) DO UPDATE SET rev = EXCLUDED.rev`
	updateRoomsSQL = `UPDATE parley_rooms r SET last_pos = u.last_pos, last_time = u.last_time, version = u.version
FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::bigint[]) AS u(id, last_pos, last_time, version)
WHERE r.id = u.id`
	insertChangesSQL = `INSERT INTO parley_changes (room, from_pos, to_pos, deleted)
SELECT room, from_pos, to_pos, deleted
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::boolean[]) WITH ORDINALITY AS c(room, from_pos, to_pos, deleted, n)
ORDER BY n`
)

// eventColumns holds a batch's appends column by column, for insertEventsSQL.
type eventColumns struct {
	room, id, from, user, to []chat.ID
	pos, ref, prev           []int64
	typ, name, text, vis     []string
	body                     [][]byte
	time                     []time.Time
	key                      []*string
}

func (c *eventColumns) reset() {
	*c = eventColumns{room: c.room[:0], id: c.id[:0], from: c.from[:0], user: c.user[:0], to: c.to[:0],
		pos: c.pos[:0], ref: c.ref[:0], prev: c.prev[:0], typ: c.typ[:0], name: c.name[:0], text: c.text[:0],
		vis: c.vis[:0], body: c.body[:0], time: c.time[:0], key: c.key[:0]}
}

func (c *eventColumns) add(ev *chat.Event) {
	c.room = append(c.room, ev.RoomID)
	c.pos = append(c.pos, int64(ev.Pos))
	c.id = append(c.id, ev.ID)
	c.typ = append(c.typ, string(ev.Type))
	c.name = append(c.name, ev.Name)
	c.from = append(c.from, ev.From)
	c.user = append(c.user, ev.User)
	c.to = append(c.to, ev.To)
	c.text = append(c.text, ev.Text)
	c.body = append(c.body, ev.Body)
	c.ref = append(c.ref, int64(ev.Ref))
	c.vis = append(c.vis, string(ev.Visibility))
	c.time = append(c.time, ev.Time)
	c.key = append(c.key, nullable(ev.Key))
	c.prev = append(c.prev, int64(ev.Prev))
}

// send writes what the transaction buffered and COMMIT, in one pipeline; finish reads the
// results. It returns nil if no transaction was begun.
func (w *writer) send() pgx.BatchResults {
	if !w.begun {
		return nil
	}
	cols := &w.cols
	b := &pgx.Batch{}
	cols.reset()
	var revRoom []chat.ID
	var revPos, revRev []int64
	var rRoom []chat.ID
	var rPos, rVer []int64
	var rTime []time.Time
	for _, st := range w.order {
		if !st.exists {
			continue
		}
		for i := range st.pending {
			cols.add(&st.pending[i])
		}
		for pos, rev := range st.revs {
			revRoom, revPos, revRev = append(revRoom, st.id), append(revPos, int64(pos)), append(revRev, int64(rev))
		}
		if len(st.pending) > 0 || st.bump {
			v := st.version
			if st.bump {
				v++
			}
			rRoom, rPos, rTime, rVer = append(rRoom, st.id), append(rPos, int64(st.room.LastPos)), append(rTime, st.room.LastTime), append(rVer, v)
		}
	}
	if len(cols.room) > 0 {
		b.Queue(insertEventsSQL, cols.room, cols.pos, cols.id, cols.typ, cols.name, cols.from, cols.user, cols.to,
			cols.text, cols.body, cols.ref, cols.vis, cols.time, cols.key, cols.prev)
	}
	if len(revRoom) > 0 {
		b.Queue(upsertRevisionsSQL, revRoom, revPos, revRev)
	}
	if len(rRoom) > 0 {
		b.Queue(updateRoomsSQL, rRoom, rPos, rTime, rVer)
	}
	if len(w.log) > 0 {
		cr, cf, ct, cd := make([]chat.ID, len(w.log)), make([]int64, len(w.log)), make([]int64, len(w.log)), make([]bool, len(w.log))
		for i, c := range w.log {
			cr[i], cf[i], ct[i], cd[i] = c.room, int64(c.from), int64(c.to), c.deleted
		}
		b.Queue(insertChangesSQL, cr, cf, ct, cd)
	}
	b.Queue("COMMIT")
	w.begun = false
	w.nstmt = b.Len()
	return w.conn.SendBatch(w.ctx, b)
}

// finish reads the results of send's pipeline. It returns an error wrapping
// errUnknownOutcome if the connection failed before the commit's result arrived.
func (w *writer) finish(br pgx.BatchResults) error {
	if br == nil {
		return nil
	}
	var err error
	for i := range w.nstmt {
		tag, e := br.Exec()
		if e != nil {
			err = e
			break
		}
		if i == w.nstmt-1 && tag.String() != "COMMIT" {
			err = fmt.Errorf("postgres store: COMMIT answered %s", tag)
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// The database refused a statement or the commit: nothing is committed.
		if !w.conn.IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, rerr := w.conn.Exec(ctx, "ROLLBACK"); rerr != nil {
				w.conn.Close(ctx)
			}
			cancel()
		}
		return err
	}
	w.conn.Close(context.Background())
	return fmt.Errorf("postgres store: %w: %w (%w)", chat.ErrUnavailable, errUnknownOutcome, err)
}

// rollback ends the database transaction without keeping anything.
func (w *writer) rollback() {
	w.forgetTouched()
	if w.begun && w.conn != nil && !w.conn.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := w.conn.Exec(ctx, "ROLLBACK"); err != nil {
			w.conn.Close(ctx)
		}
		cancel()
	}
	w.begun = false
}

// committed updates the caches after a commit: detached ones go back in, at the version
// the commit wrote, unless another lane put a newer one there meanwhile.
func (w *writer) committed() {
	w.s.rcMu.Lock()
	defer w.s.rcMu.Unlock()
	for _, st := range w.order {
		if !st.exists {
			delete(w.s.rc, st.id)
			continue
		}
		if st.detached && st.cache != nil {
			st.cache.inc, st.cache.version = st.inc, st.version
			if st.bump {
				st.cache.version++
			}
			if _, ok := w.s.rc[st.id]; !ok {
				w.s.rc[st.id] = st.cache
			}
		}
	}
}

// idleArg is a room's idle control as its column holds it: NULL for none.
func idleArg(c chat.IdleControl) any {
	if c == (chat.IdleControl{}) {
		return nil
	}
	return c
}
