package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
)

func changes(t *testing.T, b chat.Bus, cursor []byte) ([]chat.Change, []byte) {
	t.Helper()
	cs, next, err := b.Changes(ctx, cursor)
	if err != nil {
		t.Fatal(err)
	}
	return cs, next
}

// TestChangesExactlyOnce: a consumer that calls Changes while two stores commit gets every
// append once, each room's in position order, including those of a transaction that began
// before a cursor and committed after it.
func TestChangesExactlyOnce(t *testing.T) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	s1, s2 := open(t, dsn, nil), open(t, dsn, nil)
	const nRooms = 20
	rooms := make([]chat.ID, nRooms)
	err := s1.Update(ctx, func(tx chat.Tx) error {
		for i := range rooms {
			rooms[i] = chat.ID{byte(i), 3}
			if err := tx.PutRoom(chat.Room{ID: rooms[i]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, cursor := changes(t, s2.Bus(), nil)
	if len(cs) != 0 {
		t.Fatalf("nil cursor returned changes: %v", cs)
	}

	// A transaction that writes a change row now and commits after later cursors were made.
	late := connect(t, dsn)
	lateTx, err := late.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lateRoom := chat.ID{0xee}
	if _, err := lateTx.Exec(ctx, `INSERT INTO parley_changes (room, from_pos, to_pos, deleted) VALUES ($1, 1, 1, false)`, lateRoom); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, s := range []*Store{s1, s2} {
		for w := range 8 {
			wg.Go(func() {
				for i := range 60 {
					room := rooms[(w*7+i)%nRooms]
					err := s.Update(ctx, func(tx chat.Tx) error {
						for range 1 + i%3 {
							ev := chat.Event{RoomID: room, Type: chat.EventNotice, Text: "x"}
							if err := tx.Append(&ev); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	got := map[chat.ID][]chat.Change{}
	var consumer sync.WaitGroup
	consumer.Go(func() {
		wake := s2.Bus().Wake()
		committedLate := false
		for {
			cs, next, err := s2.Bus().Changes(ctx, cursor)
			if err != nil {
				t.Error(err)
				return
			}
			cursor = next
			for _, c := range cs {
				got[c.Room] = append(got[c.Room], c)
			}
			if !committedLate && len(got) > 5 {
				// Cursors have been made since the late transaction began: commit it now.
				if err := lateTx.Commit(ctx); err != nil {
					t.Error(err)
				}
				committedLate = true
			}
			select {
			case <-done:
				if !committedLate {
					lateTx.Commit(ctx)
					committedLate = true
					continue
				}
				cs, next, err := s2.Bus().Changes(ctx, cursor)
				if err != nil {
					t.Error(err)
				}
				cursor = next
				for _, c := range cs {
					got[c.Room] = append(got[c.Room], c)
				}
				return
			case <-wake:
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	wg.Wait()
	close(done)
	consumer.Wait()

	if lc := got[lateRoom]; len(lc) != 1 || lc[0].From != 1 || lc[0].To != 1 {
		t.Errorf("the late transaction's change: %v, want one", lc)
	}
	final := transcripts(t, s1, rooms)
	for _, room := range rooms {
		next := uint64(1)
		for _, c := range got[room] {
			if c.Deleted || c.From != next || c.To < c.From {
				t.Fatalf("room %s: change %+v, want one from %d: %v", room, c, next, got[room])
			}
			next = c.To + 1
		}
		if want := uint64(len(final[room])); next-1 != want {
			t.Errorf("room %s: changes up to %d, last position %d", room, next-1, want)
		}
	}
	// Nothing more, and a deletion is a change.
	cs, cursor = changes(t, s1.Bus(), cursor)
	if len(cs) != 0 {
		t.Errorf("changes again: %v", cs)
	}
	if err := s1.Update(ctx, func(tx chat.Tx) error { return tx.DeleteRoom(rooms[0]) }); err != nil {
		t.Fatal(err)
	}
	cs, _ = changes(t, s1.Bus(), cursor)
	if len(cs) != 1 || !cs[0].Deleted || cs[0].Room != rooms[0] {
		t.Errorf("changes after DeleteRoom: %+v", cs)
	}
}

// TestChangesOneCommit: a commit's appends to a room are one change; a room deleted, made
// again and appended to in one commit gives the deletion first.
func TestChangesOneCommit(t *testing.T) {
	s := open(t, pgtest.DB(t, pgtest.Fast()), nil)
	r := chat.Room{ID: chat.ID{1}}
	_, cursor := changes(t, s.Bus(), nil)
	err := s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		for range 3 {
			ev := chat.Event{RoomID: r.ID, Type: chat.EventNotice}
			if err := tx.Append(&ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.DeleteRoom(r.ID); err != nil {
			return err
		}
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		ev := chat.Event{RoomID: r.ID, Type: chat.EventNotice}
		return tx.Append(&ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := changes(t, s.Bus(), cursor)
	want := []chat.Change{{Room: r.ID, From: 1, To: 3}, {Room: r.ID, Deleted: true}, {Room: r.ID, From: 1, To: 1}}
	if fmt.Sprint(cs) != fmt.Sprint(want) {
		t.Errorf("changes %v, want %v", cs, want)
	}
}

// TestChangesLagged: a cursor older than the retention gets ErrLagged and a fresh cursor.
func TestChangesLagged(t *testing.T) {
	s := open(t, pgtest.DB(t, pgtest.Fast()), &Options{ChangesRetention: 300 * time.Millisecond, PruneInterval: 50 * time.Millisecond, slack: time.Millisecond})
	_, cursor := changes(t, s.Bus(), nil)
	time.Sleep(time.Second)
	_, next, err := s.Bus().Changes(ctx, cursor)
	if !errors.Is(err, chat.ErrLagged) || next == nil {
		t.Fatalf("Changes(old cursor) = %v, cursor %v; want ErrLagged and a cursor", err, next)
	}
	if _, _, err := s.Bus().Changes(ctx, next); err != nil {
		t.Errorf("Changes(fresh cursor): %v", err)
	}
	if _, _, err := s.Bus().Changes(ctx, []byte("not a cursor")); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Changes(garbage) = %v, want ErrInvalid", err)
	}
}

// TestPruneLeader: one store of a database prunes; when it closes, another takes over.
func TestPruneLeader(t *testing.T) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	o := &Options{ChangesRetention: time.Minute, PruneInterval: 30 * time.Millisecond}
	a, b := open(t, dsn, o), open(t, dsn, o)
	waitFor(t, "a leader", func() bool { return a.Leader() != b.Leader() })
	leader, other := a, b
	if b.Leader() {
		leader, other = b, a
	}
	leader.Close()
	waitFor(t, "the other store to take over", other.Leader)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWake: a commit in one store wakes another's Bus.
func TestWake(t *testing.T) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	a, b := open(t, dsn, nil), open(t, dsn, nil)
	wake := b.Bus().Wake()
	time.Sleep(100 * time.Millisecond) // the listener is connected, and woke once for that
	select {
	case <-wake:
	default:
	}
	r := chat.Room{ID: chat.ID{5}}
	start := time.Now()
	err := a.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		ev := chat.Event{RoomID: r.ID, Type: chat.EventNotice}
		return tx.Append(&ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Logf("woken %v after the commit began", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("not woken")
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(time.Unix(1, 0), "725:725:"))
	f.Add(encodeCursor(time.Unix(1, 0), "10:20:10,15,19"))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, '1', ':', '2', ':', '0'})
	f.Fuzz(func(t *testing.T, b []byte) {
		at, snap, err := decodeCursor(b)
		if err != nil {
			return
		}
		again := encodeCursor(at, snap)
		if string(again) != string(b) {
			t.Fatalf("decode then encode changed %q to %q", b, again)
		}
	})
}

// TestCursorsFromTheDatabase: cursors the database makes decode.
func TestCursorsFromTheDatabase(t *testing.T) {
	conn := connect(t, pgtest.DB(t, pgtest.Fast()))
	var snap string
	if err := conn.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&snap); err != nil {
		t.Fatal(err)
	}
	if _, got, err := decodeCursor(encodeCursor(time.Now(), snap)); err != nil || got != snap {
		t.Fatalf("decodeCursor(%q) = %q, %v", snap, got, err)
	}
	for _, bad := range []string{"", "1", "1:2", "2:1:", "1:2:3", "1:3:2,2", "01:2:", "1:2:x", "1::", ":1:"} {
		if _, _, err := decodeCursor(encodeCursor(time.Now(), bad)); err == nil {
			t.Errorf("decodeCursor(%q) accepted it", bad)
		}
	}
}
