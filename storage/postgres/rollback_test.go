package postgres

import (
	"errors"
	"sync"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
)

// TestFailedWritesLeaveNothing: transactions that fail (or panic) after writing rows with
// statements, batched with others that succeed, leave no row in any table.
func TestFailedWritesLeaveNothing(t *testing.T) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	s := open(t, dsn, nil)
	room := chat.Room{ID: chat.ID{1}}
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(room) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				mode := (w + i) % 3 // 0: succeeds, 1: fails after writing, 2: panics after writing
				err := func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = errors.New("panicked")
						}
					}()
					return s.Update(ctx, func(tx chat.Tx) error {
						ev := chat.Event{RoomID: room.ID, Type: chat.EventNotice, Text: "x"}
						if err := tx.Append(&ev); err != nil {
							return err
						}
						if mode == 0 {
							return nil
						}
						u := chat.User{ID: chat.ID{2, byte(w), byte(i)}, Name: "doomed"}
						if err := tx.PutUser(u); err != nil {
							return err
						}
						if err := tx.PutMember(chat.Member{RoomID: room.ID, ID: chat.ID{3, byte(w), byte(i)}, UserID: u.ID}); err != nil {
							return err
						}
						if err := tx.PutTimer(chat.Timer{Kind: chat.TimerTyping, Room: room.ID, Member: chat.ID{3, byte(w), byte(i)}}); err != nil {
							return err
						}
						if mode == 2 {
							panic("boom")
						}
						return errBoom
					})
				}()
				if (mode == 0) != (err == nil) {
					t.Errorf("mode %d: Update returned %v", mode, err)
				}
			}
		})
	}
	wg.Wait()
	conn := connect(t, dsn)
	var users, members, memberships, timers, events, lastPos int
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM parley_users), (SELECT count(*) FROM parley_members),
	(SELECT count(*) FROM parley_memberships), (SELECT count(*) FROM parley_timers), (SELECT count(*) FROM parley_events),
	(SELECT last_pos FROM parley_rooms)`).Scan(&users, &members, &memberships, &timers, &events, &lastPos)
	if err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for w := range 16 {
		for i := range 20 {
			if (w+i)%3 == 0 {
				succeeded++
			}
		}
	}
	if users+members+memberships+timers != 0 || events != succeeded || lastPos != succeeded {
		t.Errorf("after failed transactions: %d users, %d members, %d memberships, %d timers, %d events, last position %d; want none and %d events",
			users, members, memberships, timers, events, lastPos, succeeded)
	}
	t.Logf("stats %+v", s.Stats())
}
