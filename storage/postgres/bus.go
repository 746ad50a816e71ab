package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/chat"
)

// channel is the LISTEN/NOTIFY channel of the bus. Notifications carry no payload: they
// only wake listeners, who read parley_changes.
const channel = "parley_changes"

// lagSlack is how long a commit may take between writing its change rows and committing,
// as far as ErrLagged is concerned: see Changes.
const lagSlack = time.Minute

// bus implements chat.Bus for a Store.
type bus struct {
	s      *Store
	mu     sync.Mutex
	wakes  []chan struct{}
	notes  chan struct{} // cap 1: commits with changes since the last NOTIFY
	leader atomic.Bool   // this process holds the prune lock
}

// Bus implements chat.BusStore.
func (s *Store) Bus() chat.Bus { return &s.bus }

func (b *bus) init(s *Store) {
	b.s = s
	b.notes = make(chan struct{}, 1)
	s.bgWG.Add(2)
	go b.listen()
	go b.maintain()
}

// notify asks the maintenance goroutine for a NOTIFY; many commits meanwhile make one.
func (b *bus) notify() {
	select {
	case b.notes <- struct{}{}:
	default:
	}
}

// Wake implements chat.Bus. Each call returns a new channel, woken (without blocking: it
// holds one wake-up) whenever any process that shares the database may have committed
// changes, and after the listening connection was lost and made again. Call it once per
// consumer.
func (b *bus) Wake() <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.wakes = append(b.wakes, ch)
	b.mu.Unlock()
	return ch
}

func (b *bus) wakeAll() {
	b.mu.Lock()
	for _, ch := range b.wakes {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
}

// sleep waits d or until the store closes, and reports whether it is still open.
func (b *bus) sleep(d time.Duration) bool {
	select {
	case <-b.s.bg.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// listen keeps a connection that LISTENs, and wakes consumers on every notification and
// after every reconnection (notifications sent while it was away are lost).
func (b *bus) listen() {
	defer b.s.bgWG.Done()
	ctx := b.s.bg
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, b.s.connCfg.Copy())
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+channel); err == nil {
				backoff = 50 * time.Millisecond
				b.wakeAll()
				for {
					if _, err = conn.WaitForNotification(ctx); err != nil {
						break
					}
					b.wakeAll()
				}
			}
			conn.Close(context.Background())
		}
		if !b.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// maintain sends the NOTIFYs, outside every write transaction (a NOTIFY inside one takes a
// database-wide lock at commit), and prunes old change rows if this process holds the prune
// lock: a session advisory lock, released by the server when the holder's connection ends,
// so that another process takes over at its next try.
func (b *bus) maintain() {
	defer b.s.bgWG.Done()
	ctx := b.s.bg
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	ensure := func() bool {
		if conn != nil && !conn.IsClosed() {
			return true
		}
		b.leader.Store(false)
		c, err := pgx.ConnectConfig(ctx, b.s.connCfg.Copy())
		if err != nil {
			return false
		}
		conn = c
		return true
	}
	tick := time.NewTicker(b.s.opts.PruneInterval)
	defer tick.Stop()
	b.prune(ctx, ensure, &conn)
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.notes:
			if ensure() {
				if _, err := conn.Exec(ctx, "NOTIFY "+channel); err != nil {
					conn.Close(context.Background())
				}
			}
		case <-tick.C:
			b.prune(ctx, ensure, &conn)
		}
	}
}

func (b *bus) prune(ctx context.Context, ensure func() bool, conn **pgx.Conn) {
	if !ensure() {
		return
	}
	c := *conn
	if !b.leader.Load() {
		var got bool
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(lockPrune)).Scan(&got); err != nil {
			c.Close(context.Background())
			return
		}
		if !got {
			return
		}
		b.leader.Store(true)
	}
	_, err := c.Exec(ctx, `WITH d AS (DELETE FROM parley_changes WHERE at < now() - make_interval(secs => $1))
UPDATE parley_bus SET pruned_before = greatest(pruned_before, now() - make_interval(secs => $1))`,
		b.s.opts.ChangesRetention.Seconds())
	if err != nil {
		c.Close(context.Background())
	}
}

// Leader reports whether this Store is the one that prunes the bus's change rows (for
// tests and monitoring).
func (s *Store) Leader() bool { return s.bus.leader.Load() }

// The cursor is a version byte, the database's time when it was made (µs since the Unix
// epoch, big-endian) and the text of the snapshot it stands for (pg_snapshot: xmin:xmax:xip,...).
const cursorVersion = 1

func encodeCursor(at time.Time, snap string) []byte {
	b := make([]byte, 9, 9+len(snap))
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(at.UnixMicro()))
	return append(b, snap...)
}

// errBadCursor is wrapped by Changes' error for a cursor it did not make.
var errBadCursor = errors.New("postgres store: not a cursor of this bus")

// decodeCursor parses a cursor, checking that its snapshot reads as xmin:xmax:xip,... with
// xmin <= each xip < xmax.
func decodeCursor(b []byte) (time.Time, string, error) {
	if len(b) < 9 || b[0] != cursorVersion {
		return time.Time{}, "", errBadCursor
	}
	at := time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()
	snap := string(b[9:])
	var nums [3][]uint64
	field := 0
	var cur uint64
	digits := 0
	for i := 0; i <= len(snap); i++ {
		if i < len(snap) && snap[i] >= '0' && snap[i] <= '9' {
			d := uint64(snap[i] - '0')
			if cur > (1<<63-1-d)/10 || (digits == 0 && d == 0 && i+1 < len(snap) && snap[i+1] >= '0' && snap[i+1] <= '9') {
				return time.Time{}, "", errBadCursor // too big, or a leading zero
			}
			cur = cur*10 + d
			digits++
			continue
		}
		if digits == 0 {
			if field == 2 && i == len(snap) && len(nums[2]) == 0 && snap[i-1] == ':' {
				break // no xip
			}
			return time.Time{}, "", errBadCursor
		}
		nums[field] = append(nums[field], cur)
		cur, digits = 0, 0
		if i == len(snap) {
			break
		}
		switch {
		case snap[i] == ':' && field < 2:
			field++
		case snap[i] == ',' && field == 2:
		default:
			return time.Time{}, "", errBadCursor
		}
	}
	if field != 2 || len(nums[0]) != 1 || len(nums[1]) != 1 {
		return time.Time{}, "", errBadCursor
	}
	xmin, xmax := nums[0][0], nums[1][0]
	if xmin == 0 || xmin > xmax {
		return time.Time{}, "", errBadCursor
	}
	prev := uint64(0)
	for _, x := range nums[2] {
		if x < xmin || x >= xmax || x <= prev {
			return time.Time{}, "", errBadCursor
		}
		prev = x
	}
	return at, snap, nil
}

const changesSQL = `WITH s AS (
	-- Never pruned is -infinity, which time.Time cannot hold: the epoch says as much.
	SELECT pg_current_snapshot() AS snap, statement_timestamp() AS now,
		(SELECT greatest(pruned_before, 'epoch') FROM parley_bus) AS pruned
)
SELECT s.snap::text, s.now, s.pruned, c.room, c.from_pos, c.to_pos, c.deleted
FROM s LEFT JOIN LATERAL (
	SELECT seq, room, from_pos, to_pos, deleted FROM parley_changes
	WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot)
) c ON true
ORDER BY c.seq`

// Changes implements chat.Bus. A cursor is a snapshot of the database: the changes returned
// are the rows of commits that the cursor's snapshot does not see and the current one does,
// each room's in commit order, so that a commit that started before the cursor and committed
// after it is returned once, by the next call. A nil cursor returns no changes and the current
// snapshot. A cursor made before the change rows it would need were pruned (older than
// Options.ChangesRetention, less a minute of slack for slow commits) gives an error wrapping
// chat.ErrLagged, with a cursor for now.
func (b *bus) Changes(ctx context.Context, cursor []byte) ([]chat.Change, []byte, error) {
	if b.s.closed.Load() {
		return nil, nil, closedErr()
	}
	if cursor == nil {
		var snap string
		var now time.Time
		if err := b.s.pool.QueryRow(ctx, `SELECT pg_current_snapshot()::text, statement_timestamp()`).Scan(&snap, &now); err != nil {
			return nil, nil, fmt.Errorf("postgres store: bus: %w", classify(err))
		}
		return nil, encodeCursor(now, snap), nil
	}
	at, prev, err := decodeCursor(cursor)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, chat.ErrInvalid)
	}
	rows, err := b.s.pool.Query(ctx, changesSQL, prev)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres store: bus: %w", classify(err))
	}
	defer rows.Close()
	var out []chat.Change
	var snap string
	var now, pruned time.Time
	for rows.Next() {
		var room *chat.ID
		var from, to *int64
		var deleted *bool
		if err := rows.Scan(&snap, &now, &pruned, &room, &from, &to, &deleted); err != nil {
			return nil, nil, fmt.Errorf("postgres store: bus: %w", classify(err))
		}
		if room != nil {
			out = append(out, chat.Change{Room: *room, From: uint64(*from), To: uint64(*to), Deleted: *deleted})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("postgres store: bus: %w", classify(err))
	}
	next := encodeCursor(now, snap)
	slack := lagSlack
	if b.s.opts.slack > 0 {
		slack = b.s.opts.slack
	}
	if at.Add(-slack).Before(pruned) {
		return nil, next, fmt.Errorf("postgres store: bus: cursor of %v is older than the change rows kept (pruned before %v): %w",
			at, pruned.UTC(), chat.ErrLagged)
	}
	return out, next, nil
}
