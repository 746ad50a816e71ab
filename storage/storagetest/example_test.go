package storagetest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
	"github.com/parley-chat/chat/storage/storagetest"
)

// An adapter's test calls Run with a factory:
//
//	func TestStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) chat.Store { return memory.New() })
//	}
//
// Dump reads a whole store into a Snapshot, which compares across stores.
func ExampleDump() {
	ctx := context.Background()
	s := memory.New()
	defer s.Close()
	room := chat.Room{ID: chat.ID{1}, Name: "lobby", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_ = s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutRoom(room); err != nil {
			return err
		}
		for _, text := range []string{"hello", "world"} {
			ev := chat.Event{RoomID: room.ID, Type: chat.EventMessage, Text: text, Time: room.CreatedAt}
			if err := tx.Append(&ev); err != nil {
				return err
			}
		}
		return nil
	})
	snap, err := storagetest.Dump(ctx, s)
	if err != nil {
		panic(err)
	}
	for _, r := range snap.Rooms {
		fmt.Println(r.Room.Name, r.Room.LastPos)
		for _, ev := range r.Events {
			fmt.Println(ev.Pos, ev.Text, ev.Time.Format(time.RFC3339Nano))
		}
	}
	fmt.Println(snap.Equal(snap.Normalize()))
	// Output:
	// lobby 2
	// 1 hello 2026-01-01T00:00:00Z
	// 2 world 2026-01-01T00:00:00.000001Z
	// false
}
