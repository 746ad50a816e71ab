package memory_test

import (
	"context"
	"fmt"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

// An engine on the in-memory store: fast, and gone when the process ends.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	e, err := chat.Open(ctx, store)
	if err != nil {
		panic(err)
	}
	defer e.Close()
	room, _ := e.CreateRoom(ctx, chat.NewRoom{Name: "scratch"})
	e.Notice(ctx, room.ID, "kept in memory")
	evs, _ := e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 10})
	fmt.Println(len(evs), evs[0].Text)
	// Output: 1 kept in memory
}
