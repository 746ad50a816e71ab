package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
)

// TestUnavailable: while the database is down, writes, reads and the bus fail with
// ErrUnavailable; when it is back, the store works again by itself and its Bus wakes (it may
// have missed notifications).
func TestUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	testkit.CheckLeaks(t)
	srv := pgtest.Start(t)
	if err := connect(t, srv.DSN("postgres")).QueryRow(ctx, "CREATE DATABASE chat").Scan(); err != nil && err.Error() != "no rows in result set" {
		t.Fatal(err)
	}
	s := open(t, srv.DSN("chat"), &Options{WriteTimeout: 5 * time.Second})
	r := chat.Room{ID: chat.ID{1}}
	appendOne := func(tx chat.Tx) error {
		ev := chat.Event{RoomID: r.ID, Type: chat.EventNotice, Text: "x"}
		return tx.Append(&ev)
	}
	if err := s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		return appendOne(tx)
	}); err != nil {
		t.Fatal(err)
	}
	wake := s.Bus().Wake()

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Update(ctx, appendOne)
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Update with the database down: %v, want ErrUnavailable", err)
	}
	t.Logf("Update failed after %v: %v", time.Since(start), err)
	if err := s.View(ctx, func(tx chat.ReadTx) error { _, err := tx.Room(r.ID); return err }); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("View with the database down: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Bus().Changes(ctx, nil); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Changes with the database down: %v, want ErrUnavailable", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for len(wake) > 0 {
		<-wake
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Update(ctx, appendOne)
		if err == nil {
			break
		}
		if !errors.Is(err, chat.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Update after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = s.View(ctx, func(tx chat.ReadTx) error {
		room, err := tx.Room(r.ID)
		if err == nil && room.LastPos != 2 {
			t.Errorf("LastPos %d after a failed and a good append, want 2", room.LastPos)
		}
		return err
	})
	for err != nil && errors.Is(err, chat.ErrUnavailable) && time.Now().Before(deadline) {
		err = s.View(ctx, func(tx chat.ReadTx) error { _, err := tx.Room(r.ID); return err })
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Error("the Bus did not wake after the database came back")
	}
}
