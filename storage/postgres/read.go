package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/chat"
)

// querier is what reads run on: a read-only transaction from the pool, or the writer's
// connection inside its transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const (
	userCols   = `id, name, display_name, email, avatar_url, attributes, created_at, updated_at`
	roomCols   = `id, name, display_name, image_url, private, attributes, empty_ttl, created_at, updated_at, ended_at, joins, last_pos, last_time, version, incarnation, idle`
	memberCols = `room, id, user_id, state, nickname, role, join_number, delivered, read, invited_by, invited_at, joined_at, left_at, pos, typing_until, typing_text`
	eventCols  = `room, pos, id, type, name, from_member, user_id, to_member, text, body, ref, visibility, time, key, prev`
)

// nullable returns nil for "", so that an empty name or key is stored as NULL.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// attrs returns nil for an empty map, stored as NULL.
func attrs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func utc(ts ...*time.Time) {
	for _, t := range ts {
		*t = t.UTC()
	}
}

func scanUser(row pgx.Row) (chat.User, error) {
	var u chat.User
	var name *string
	err := row.Scan(&u.ID, &name, &u.DisplayName, &u.Email, &u.AvatarURL, &u.Attributes, &u.CreatedAt, &u.UpdatedAt)
	u.Name = str(name)
	utc(&u.CreatedAt, &u.UpdatedAt)
	return u, err
}

// roomMeta is what a room row says beyond chat.Room.
type roomMeta struct {
	version, inc int64
}

func scanRoom(row pgx.Row) (chat.Room, roomMeta, error) {
	var r chat.Room
	var m roomMeta
	var name *string
	var idle *chat.IdleControl
	err := row.Scan(&r.ID, &name, &r.DisplayName, &r.ImageURL, &r.Private, &r.Attributes, &r.EmptyTTL,
		&r.CreatedAt, &r.UpdatedAt, &r.EndedAt, &r.Joins, &r.LastPos, &r.LastTime, &m.version, &m.inc, &idle)
	r.Name = str(name)
	if idle != nil {
		r.Idle = *idle
	}
	utc(&r.CreatedAt, &r.UpdatedAt, &r.EndedAt, &r.LastTime)
	return r, m, err
}

func scanMember(row pgx.Row) (chat.Member, error) {
	var m chat.Member
	err := row.Scan(&m.RoomID, &m.ID, &m.UserID, &m.State, &m.Nickname, &m.Role, &m.JoinNumber, &m.Delivered,
		&m.Read, &m.InvitedBy, &m.InvitedAt, &m.JoinedAt, &m.LeftAt, &m.Pos, &m.TypingUntil, &m.TypingText)
	utc(&m.InvitedAt, &m.JoinedAt, &m.LeftAt, &m.TypingUntil)
	return m, err
}

func scanEvent(row pgx.Row, ev *chat.Event) error {
	var key *string
	var body []byte
	err := row.Scan(&ev.RoomID, &ev.Pos, &ev.ID, &ev.Type, &ev.Name, &ev.From, &ev.User, &ev.To, &ev.Text,
		&body, &ev.Ref, &ev.Visibility, &ev.Time, &key, &ev.Prev)
	ev.Key = str(key)
	if len(body) > 0 {
		ev.Body = body
	} else {
		ev.Body = nil
	}
	ev.Time = ev.Time.UTC()
	return err
}

// one scans the single row of a query, or returns notFound(what, key).
func one[T any](row pgx.Row, scan func(pgx.Row) (T, error), what string, key any) (T, error) {
	v, err := scan(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, notFound(what, key)
	}
	if err != nil {
		return v, fmt.Errorf("postgres store: read %s %v: %w", what, key, classify(err))
	}
	return v, nil
}

// all scans every row of a query.
func all[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("postgres store: query: %w", classify(err))
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: scan: %w", classify(err))
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: query: %w", classify(err))
	}
	return out, nil
}

// filterArgs turns a ListFilter into the arguments of listSQL's placeholders $1 to $4.
func filterArgs(f chat.ListFilter) []any {
	var since, until, limit any
	if !f.Since.IsZero() {
		since = f.Since
	}
	if !f.Until.IsZero() {
		until = f.Until
	}
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	return []any{since, until, int64(f.Offset), limit}
}

func listSQL(cols, table string, desc bool) string {
	order := "id"
	if desc {
		order = "id DESC"
	}
	return `SELECT ` + cols + ` FROM ` + table + ` WHERE ($1::timestamptz IS NULL OR created_at >= $1)
AND ($2::timestamptz IS NULL OR created_at < $2) ORDER BY ` + order + ` OFFSET $3 LIMIT $4`
}

// reader holds the queries every transaction runs the same way, on q.
type reader struct {
	ctx context.Context
	q   querier
}

func (t *reader) user(id chat.ID) (chat.User, error) {
	return one(t.q.QueryRow(t.ctx, `SELECT `+userCols+` FROM parley_users WHERE id = $1`, id), scanUser, "user", id)
}

func (t *reader) userByName(name string) (chat.User, error) {
	if name == "" {
		return chat.User{}, notFound("user name", name)
	}
	return one(t.q.QueryRow(t.ctx, `SELECT `+userCols+` FROM parley_users WHERE name = $1`, name), scanUser, "user name", name)
}

func (t *reader) users(f chat.ListFilter) ([]chat.User, error) {
	rows, err := t.q.Query(t.ctx, listSQL(userCols, "parley_users", f.Desc), filterArgs(f)...)
	return all(rows, err, scanUser)
}

func scanRoomOnly(row pgx.Row) (chat.Room, error) {
	r, _, err := scanRoom(row)
	return r, err
}

func (t *reader) rooms(f chat.ListFilter) ([]chat.Room, error) {
	rows, err := t.q.Query(t.ctx, listSQL(roomCols, "parley_rooms", f.Desc), filterArgs(f)...)
	return all(rows, err, scanRoomOnly)
}

func (t *reader) member(roomID, memberID chat.ID) (chat.Member, error) {
	return one(t.q.QueryRow(t.ctx, `SELECT `+memberCols+` FROM parley_members WHERE room = $1 AND id = $2`, roomID, memberID),
		scanMember, "member", memberID)
}

func (t *reader) memberByUser(roomID, userID chat.ID) (chat.Member, error) {
	return one(t.q.QueryRow(t.ctx, `SELECT m.`+prefixed("m.", memberCols)+` FROM parley_memberships x
JOIN parley_members m ON m.room = x.room AND m.id = x.member WHERE x.user_id = $1 AND x.room = $2`, userID, roomID),
		scanMember, "member of user", userID)
}

func (t *reader) members(roomID chat.ID) ([]chat.Member, error) {
	rows, err := t.q.Query(t.ctx, `SELECT `+memberCols+` FROM parley_members WHERE room = $1 ORDER BY id`, roomID)
	return all(rows, err, scanMember)
}

func (t *reader) memberships(userID chat.ID) ([]chat.Member, error) {
	rows, err := t.q.Query(t.ctx, `SELECT m.`+prefixed("m.", memberCols)+` FROM parley_memberships x
JOIN parley_members m ON m.room = x.room AND m.id = x.member WHERE x.user_id = $1 ORDER BY x.room`, userID)
	return all(rows, err, scanMember)
}

// prefixed puts p before every column of a list but the first (which the caller prefixes).
func prefixed(p, cols string) string {
	out := make([]byte, 0, len(cols)+len(cols)/4)
	for i := 0; i < len(cols); i++ {
		out = append(out, cols[i])
		if cols[i] == ' ' && i > 0 && cols[i-1] == ',' {
			out = append(out, p...)
		}
	}
	return string(out)
}

// eventsSQL reads events of a room from a position, forwards or backwards.
const (
	eventsForwardSQL  = `SELECT ` + eventCols + ` FROM parley_events WHERE room = $1 AND pos >= $2 AND pos <= $3 ORDER BY pos LIMIT $4`
	eventsBackwardSQL = `SELECT ` + eventCols + ` FROM parley_events WHERE room = $1 AND pos <= $2 AND pos >= $3 ORDER BY pos DESC LIMIT $4`
)

// queryEvents appends to dst up to limit events of a room with positions in [lo, hi],
// from lo up (or from hi down).
func (t *reader) queryEvents(roomID chat.ID, lo, hi uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	if lo > hi || limit <= 0 {
		return dst, nil
	}
	var rows pgx.Rows
	var err error
	if backward {
		rows, err = t.q.Query(t.ctx, eventsBackwardSQL, roomID, int64(hi), int64(lo), int64(limit))
	} else {
		rows, err = t.q.Query(t.ctx, eventsForwardSQL, roomID, int64(lo), int64(hi), int64(limit))
	}
	if err != nil {
		return dst, fmt.Errorf("postgres store: read events: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		dst = append(dst, chat.Event{})
		if err := scanEvent(rows, &dst[len(dst)-1]); err != nil {
			return dst[:len(dst)-1], fmt.Errorf("postgres store: read events: %w", classify(err))
		}
	}
	if err := rows.Err(); err != nil {
		return dst, fmt.Errorf("postgres store: read events: %w", classify(err))
	}
	return dst, nil
}

func (t *reader) event(roomID chat.ID, pos uint64) (chat.Event, error) {
	var ev chat.Event
	if pos == 0 || pos > 1<<63-1 {
		return ev, notFound("event", pos)
	}
	err := scanEvent(t.q.QueryRow(t.ctx, `SELECT `+eventCols+` FROM parley_events WHERE room = $1 AND pos = $2`, roomID, int64(pos)), &ev)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Event{}, notFound("event", pos)
	}
	if err != nil {
		return chat.Event{}, fmt.Errorf("postgres store: read event: %w", classify(err))
	}
	return ev, nil
}

// revision returns the revision of pos in a room whose existence the caller checked.
func (t *reader) revision(roomID chat.ID, pos uint64) (uint64, error) {
	if pos > 1<<63-1 {
		return 0, nil
	}
	var rev uint64
	err := t.q.QueryRow(t.ctx, `SELECT rev FROM parley_revisions WHERE room = $1 AND pos = $2`, roomID, int64(pos)).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres store: read revision: %w", classify(err))
	}
	return rev, nil
}

// keyPos returns the position of the event of a room with the key, or 0.
func (t *reader) keyPos(roomID chat.ID, key string) (uint64, error) {
	var pos uint64
	err := t.q.QueryRow(t.ctx, `SELECT pos FROM parley_events WHERE room = $1 AND key = $2`, roomID, key).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres store: read key: %w", classify(err))
	}
	return pos, nil
}

func scanTimer(row pgx.Row) (chat.Timer, error) {
	var tm chat.Timer
	err := row.Scan(&tm.Kind, &tm.Room, &tm.Member, &tm.At)
	tm.At = tm.At.UTC()
	return tm, err
}

func (t *reader) timer(kind chat.TimerKind, roomID, memberID chat.ID) (chat.Timer, error) {
	return one(t.q.QueryRow(t.ctx, `SELECT kind, room, member, at FROM parley_timers WHERE room = $1 AND kind = $2 AND member = $3`,
		roomID, string(kind), memberID), scanTimer, "timer", kind)
}

func (t *reader) timers(until time.Time, limit int) ([]chat.Timer, error) {
	var lim any
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := t.q.Query(t.ctx, `SELECT kind, room, member, at FROM parley_timers WHERE at <= $1 ORDER BY at, kind, room, member LIMIT $2`, until, lim)
	return all(rows, err, scanTimer)
}
