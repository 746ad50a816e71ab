// Command embed is the smallest program that embeds Parley: it opens an engine on the
// in-memory store, creates a room, lets two users talk, follows the room and reads it back.
package main

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	store := memory.New()
	defer store.Close()
	engine, err := chat.Open(ctx, store)
	if err != nil {
		return err
	}
	defer engine.Close()

	room, err := engine.CreateRoom(ctx, chat.NewRoom{Name: "lobby", DisplayName: "Lobby"})
	if err != nil {
		return err
	}
	ada, _ := engine.CreateUser(ctx, chat.NewUser{Name: "ada", DisplayName: "Ada"})
	bob, _ := engine.CreateUser(ctx, chat.NewUser{Name: "bob", DisplayName: "Bob"})

	// Follow the room from its first position: history first, then live events.
	follower, err := engine.Follow(ctx, room.ID, 1)
	if err != nil {
		return err
	}
	defer follower.Close()

	for _, u := range []chat.User{ada, bob} {
		if _, err := engine.Join(ctx, room.ID, u.ID, chat.JoinOptions{Role: chat.RoleClient}); err != nil {
			return err
		}
	}
	if _, err := engine.Send(ctx, room.ID, ada.ID, chat.NewMessage{Text: "Hello, Bob."}); err != nil {
		return err
	}
	last, err := engine.Send(ctx, room.ID, bob.ID, chat.NewMessage{Text: "Hi, Ada!"})
	if err != nil {
		return err
	}
	if _, err := engine.MarkRead(ctx, room.ID, ada.ID, last.Pos); err != nil {
		return err
	}

	names := map[chat.ID]string{ada.ID: "Ada", bob.ID: "Bob"}
	for follower.Pos() <= last.Pos+1 {
		ev, err := follower.Next(ctx)
		if err != nil {
			return err
		}
		fmt.Println(strings.TrimSpace(fmt.Sprintf("followed %d %s %s %s", ev.Pos, ev.Type, names[ev.User], ev.Text)))
	}

	page, err := engine.Read(ctx, room.ID, 0, 2, true) // the last two events, newest first
	if err != nil {
		return err
	}
	for _, ev := range page {
		fmt.Printf("read %d %s\n", ev.Pos, ev.Type)
	}
	return nil
}
