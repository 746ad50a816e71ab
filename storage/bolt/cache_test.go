package bolt

import (
	"fmt"
	"testing"

	"github.com/parley-chat/chat"
)

// TestCacheRoomReincarnated warms the read cache with a room's events, deletes the room,
// creates it again under the same ID and checks that reads see the new transcript.
func TestCacheRoomReincarnated(t *testing.T) {
	s := openTemp(t, &Options{NoSync: true})
	fill := func(prefix string) {
		putTestRoom(t, s)
		if err := s.Update(ctx, func(tx chat.Tx) error {
			for i := range 3 * blockSize {
				ev := chat.Event{RoomID: testRoom.ID, Type: chat.EventMessage, Text: fmt.Sprint(prefix, i), Body: []byte(`"b"`)}
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []chat.Event {
		var evs []chat.Event
		if err := s.View(ctx, func(tx chat.ReadTx) (err error) {
			evs, err = tx.Events(testRoom.ID, 1, 1000, false, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return evs
	}
	fill("old")
	if evs := read(); len(evs) != 3*blockSize || evs[70].Text != "old70" {
		t.Fatalf("first read: %d events", len(evs))
	}
	if n := len(s.cache.m); n != 3 {
		t.Errorf("%d blocks cached, want 3", n)
	}
	// Callers own the bodies of cached events.
	evs := read()
	evs[5].Body[1] = 'X'
	if evs := read(); string(evs[5].Body) != `"b"` {
		t.Errorf("a cached body changed through a caller's copy: %s", evs[5].Body)
	}
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.DeleteRoom(testRoom.ID) }); err != nil {
		t.Fatal(err)
	}
	fill("new")
	evs = read()
	if len(evs) != 3*blockSize {
		t.Fatalf("read after re-creation: %d events", len(evs))
	}
	for i, ev := range evs {
		if ev.Text != fmt.Sprint("new", i) {
			t.Fatalf("event %d after re-creation reads %q", ev.Pos, ev.Text)
		}
	}
	// Backward reads across cached blocks and the incomplete last block.
	if err := s.Update(ctx, func(tx chat.Tx) error {
		ev := chat.Event{RoomID: testRoom.ID, Type: chat.EventMessage, Text: "tail"}
		return tx.Append(&ev)
	}); err != nil {
		t.Fatal(err)
	}
	var back []chat.Event
	if err := s.View(ctx, func(tx chat.ReadTx) (err error) {
		back, err = tx.Events(testRoom.ID, 1<<40, 3*blockSize+1, true, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, ev := range back {
		if want := uint64(3*blockSize + 1 - i); ev.Pos != want {
			t.Fatalf("backward read: event %d has pos %d, want %d", i, ev.Pos, want)
		}
	}
	if len(back) != 3*blockSize+1 || back[0].Text != "tail" {
		t.Errorf("backward read: %d events, first %q", len(back), back[0].Text)
	}
}
