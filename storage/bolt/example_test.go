package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
)

// A durable engine: messages survive a restart.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "parley-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "chat.db")

	store, err := bolt.Open(path, nil)
	if err != nil {
		panic(err)
	}
	e, _ := chat.Open(ctx, store)
	room, _ := e.CreateRoom(ctx, chat.NewRoom{Name: "lobby"})
	ann, _ := e.CreateUser(ctx, chat.NewUser{Name: "ann"})
	_, _ = e.Join(ctx, room.ID, ann.ID, chat.JoinOptions{})
	ev, _ := e.Send(ctx, room.ID, ann.ID, chat.NewMessage{Text: "hello"})
	fmt.Println("sent at position", ev.Pos) // durable: Send returned after the fsync
	e.Close()
	store.Close()

	store, err = bolt.Open(path, nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	e, _ = chat.Open(ctx, store)
	defer e.Close()
	r, _ := e.RoomByName(ctx, "lobby")
	evs, _ := e.Read(ctx, r.ID, chat.ReadOptions{From: 1, Limit: 10})
	for _, ev := range evs {
		fmt.Printf("%d %s %q\n", ev.Pos, ev.Type, ev.Text)
	}
	// Output:
	// sent at position 2
	// 1 joined ""
	// 2 message "hello"
}
