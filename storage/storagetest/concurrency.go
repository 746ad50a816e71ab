package storagetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-chat/chat"
)

func testConcurrentAppends(t *testing.T, s chat.Store) {
	const rooms, writers, each = 3, 24, 30
	var rs []chat.Room
	for i := range rooms {
		rs = append(rs, putRoom(t, s, fmt.Sprint("r", i), i))
	}
	type ack struct {
		room chat.ID
		pos  uint64
		text string
	}
	acks := make(chan ack, writers*each*2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Half the writers share room 0; the others spread over all rooms. Every
				// fifth transaction appends two events; every seventh fails after writing.
				room := rs[0].ID
				if w%2 == 1 {
					room = rs[(w+i)%rooms].ID
				}
				fail := i%7 == 3
				var got []ack
				err := s.Update(ctx, func(tx chat.Tx) error {
					got = got[:0]
					n := 1
					if i%5 == 0 {
						n = 2
					}
					for k := range n {
						ev := chat.Event{RoomID: room, Type: chat.EventMessage, Text: fmt.Sprintf("w%d-%d-%d", w, i, k), Time: at(i)}
						if err := tx.Append(&ev); err != nil {
							return err
						}
						got = append(got, ack{room, ev.Pos, ev.Text})
					}
					if fail {
						return errBoom
					}
					return nil
				})
				switch {
				case fail && err == nil:
					t.Errorf("failing Update returned nil")
				case !fail && err != nil:
					t.Errorf("Update: %v", err)
				case err == nil:
					for _, a := range got {
						acks <- a
					}
				}
			}
		})
	}
	wg.Wait()
	close(acks)
	want := map[chat.ID]map[uint64]string{}
	for a := range acks {
		if want[a.room] == nil {
			want[a.room] = map[uint64]string{}
		}
		if prev, dup := want[a.room][a.pos]; dup {
			t.Errorf("position %d acknowledged twice: %q and %q", a.pos, prev, a.text)
		}
		want[a.room][a.pos] = a.text
	}
	view(t, s, func(tx chat.ReadTx) error {
		for _, r := range rs {
			room, err := tx.Room(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if int(room.LastPos) != len(want[r.ID]) {
				t.Errorf("room %s: LastPos %d, %d acknowledged events", r.Name, room.LastPos, len(want[r.ID]))
			}
			evs, err := tx.Events(r.ID, 1, int(room.LastPos)+1, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range evs {
				if ev.Pos != uint64(i+1) {
					t.Fatalf("room %s: event %d has pos %d: gap", r.Name, i, ev.Pos)
				}
				if i > 0 && !ev.Time.After(evs[i-1].Time) {
					t.Errorf("room %s: time at pos %d does not increase", r.Name, ev.Pos)
				}
				if w, ok := want[r.ID][ev.Pos]; !ok || w != ev.Text {
					t.Errorf("room %s pos %d: text %q, acknowledged %q (%v)", r.Name, ev.Pos, ev.Text, w, ok)
				}
			}
		}
		return nil
	})
}

func testConcurrentViews(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	const writers, each, readers = 4, 50, 4
	done := make(chan struct{})
	var wg, rwg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(ctx, func(tx chat.Tx) error {
					ev := mkEvent(r.ID, i)
					return tx.Append(&ev)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range readers {
		rwg.Go(func() {
			var last uint64
			var buf []chat.Event
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.View(ctx, func(tx chat.ReadTx) error {
					room, err := tx.Room(r.ID)
					if err != nil {
						return err
					}
					if room.LastPos < last {
						return fmt.Errorf("LastPos went back from %d to %d", last, room.LastPos)
					}
					last = room.LastPos
					// Everything up to LastPos is readable in the same transaction.
					buf, err = tx.Events(r.ID, 1, int(room.LastPos)+1, false, buf[:0])
					if err != nil {
						return err
					}
					if uint64(len(buf)) != room.LastPos {
						return fmt.Errorf("read %d events, LastPos %d", len(buf), room.LastPos)
					}
					if room.LastPos > 0 && !buf[len(buf)-1].Time.Equal(room.LastTime) {
						return fmt.Errorf("LastTime %v, last event at %v", room.LastTime, buf[len(buf)-1].Time)
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
	wg.Wait()
	close(done)
	rwg.Wait()
}
