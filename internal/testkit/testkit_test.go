package testkit_test

import (
	"context"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/testkit"
)

func TestStoresWork(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, open func(testing.TB) chat.Store) {
		testkit.CheckLeaks(t)
		e, err := chat.Open(context.Background(), open(t))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		r, err := e.CreateRoom(context.Background(), chat.NewRoom{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := e.RoomByName(context.Background(), "x"); err != nil || got.ID != r.ID {
			t.Fatal(got, err)
		}
	})
}
