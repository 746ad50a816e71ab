package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/postgres"
)

// An engine on PostgreSQL. Every process that opens the same database serves the same
// rooms; each learns what the others commit through the store's Bus, which an Engine opened
// on a chat.BusStore uses by itself.
func Example() {
	ctx := context.Background()
	dsn := os.Getenv("PARLEY_PG") // e.g. "host=/var/run/postgresql dbname=parley"
	store, err := postgres.Open(ctx, dsn, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	e, err := chat.Open(ctx, store)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	room, _ := e.CreateRoom(ctx, chat.NewRoom{Name: "lobby"})
	ann, _ := e.CreateUser(ctx, chat.NewUser{Name: "ann"})
	_, _ = e.Join(ctx, room.ID, ann.ID, chat.JoinOptions{})
	ev, _ := e.Send(ctx, room.ID, ann.ID, chat.NewMessage{Text: "hello"})
	fmt.Println("durable at position", ev.Pos)

	// What other processes commit, as the engine reads it.
	bus := store.Bus()
	wake := bus.Wake()
	_, cursor, _ := bus.Changes(ctx, nil)
	<-wake
	changes, _, _ := bus.Changes(ctx, cursor)
	for _, c := range changes {
		fmt.Printf("room %s: positions %d to %d\n", c.Room, c.From, c.To)
	}
}
