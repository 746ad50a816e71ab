package chat_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	e, err := chat.Open(ctx, store)
	if err != nil {
		panic(err)
	}
	defer e.Close()

	room, _ := e.CreateRoom(ctx, chat.NewRoom{Name: "support"})
	ada, _ := e.CreateUser(ctx, chat.NewUser{Name: "ada", DisplayName: "Ada"})
	e.Join(ctx, room.ID, ada.ID, chat.JoinOptions{Role: chat.RoleClient})
	e.Send(ctx, room.ID, ada.ID, chat.NewMessage{Text: "Hello?"})

	events, _ := e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 10})
	for _, ev := range events {
		fmt.Println(strings.TrimSpace(fmt.Sprint(ev.Pos, " ", ev.Type, " ", ev.Text)))
	}
	// Output:
	// 1 joined
	// 2 message Hello?
}

func ExampleEngine_Follow() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	e, _ := chat.Open(ctx, store)
	defer e.Close()
	room, _ := e.CreateRoom(ctx, chat.NewRoom{})
	e.Notice(ctx, room.ID, "history")

	f, _ := e.Follow(ctx, room.ID, 1) // from the first position: history, then live
	defer f.Close()
	e.Notice(ctx, room.ID, "live")
	for i := 0; i < 2; i++ {
		ev, _ := f.Next(ctx)
		fmt.Println(ev.Pos, ev.Text)
	}
	// Output:
	// 1 history
	// 2 live
}
