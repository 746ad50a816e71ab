// Command embed is the smallest program that embeds Parley: it opens an engine, creates a
// room, lets two users talk, follows the room and reads it back.
//
//	go run ./examples/embed            # in memory
//	go run ./examples/embed chat.db    # durable, on a bbolt file (storage/bolt)
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/memory"
)

func main() {
	var store chat.Store = memory.New()
	if len(os.Args) > 1 {
		// The durable choice: every acknowledged event is on disk, across restarts.
		s, err := bolt.Open(os.Args[1], nil)
		if err != nil {
			log.Fatal(err)
		}
		store = s
	}
	defer store.Close()
	if err := run(context.Background(), store); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, store chat.Store) error {
	engine, err := chat.Open(ctx, store)
	if err != nil {
		return err
	}
	defer engine.Close()

	room, err := engine.CreateRoom(ctx, chat.NewRoom{DisplayName: "Lobby"})
	if err != nil {
		return err
	}
	ada, err := userNamed(ctx, engine, "ada", "Ada")
	if err != nil {
		return err
	}
	bob, err := userNamed(ctx, engine, "bob", "Bob")
	if err != nil {
		return err
	}

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

	page, err := engine.Read(ctx, room.ID, chat.ReadOptions{Limit: 2, Backward: true}) // the last two events, newest first
	if err != nil {
		return err
	}
	for _, ev := range page {
		fmt.Printf("read %d %s\n", ev.Pos, ev.Type)
	}
	return nil
}

// userNamed returns the user with a unique name, creating it the first time (on a durable
// store it is there on the next run).
func userNamed(ctx context.Context, e *chat.Engine, name, display string) (chat.User, error) {
	u, _, err := e.UpsertUser(ctx, chat.NewUser{Name: name, DisplayName: display})
	return u, err
}
