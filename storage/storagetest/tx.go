package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/chat"
)

func testReadYourWrites(t *testing.T, s chat.Store) {
	update(t, s, func(tx chat.Tx) error {
		u := mkUser("me", 1)
		r := mkRoom("here", 1)
		m := mkMember(r.ID, u.ID, chat.Joined, 1)
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if got, err := tx.UserByName("me"); err != nil || got.ID != u.ID {
			t.Errorf("UserByName in tx = %v, %v", got.ID, err)
		}
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		if got, err := tx.RoomByName("here"); err != nil || got.ID != r.ID {
			t.Errorf("RoomByName in tx = %v, %v", got.ID, err)
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		if got, err := tx.MemberByUser(r.ID, u.ID); err != nil || got.ID != m.ID {
			t.Errorf("MemberByUser in tx = %v, %v", got.ID, err)
		}
		if ms, err := tx.Memberships(u.ID); err != nil || len(ms) != 1 {
			t.Errorf("Memberships in tx = %v, %v", ms, err)
		}
		for i := range 3 {
			ev := mkEvent(r.ID, i)
			if err := tx.Append(&ev); err != nil {
				return err
			}
			room, err := tx.Room(r.ID)
			if err != nil || room.LastPos != ev.Pos || !room.LastTime.Equal(ev.Time) {
				t.Errorf("Room in tx after append %d: LastPos %d LastTime %v, %v", i, room.LastPos, room.LastTime, err)
			}
			got, err := tx.Event(r.ID, ev.Pos)
			if err != nil || got.Text != ev.Text {
				t.Errorf("Event in tx = %+v, %v", got, err)
			}
		}
		if err := tx.SetRevision(r.ID, 1, 2); err != nil {
			return err
		}
		if rev, err := tx.Revision(r.ID, 1); err != nil || rev != 2 {
			t.Errorf("Revision in tx = %d, %v", rev, err)
		}
		if evs, err := tx.Events(r.ID, 0, 10, true, nil); err != nil || len(evs) != 0 {
			t.Errorf("Events(from 0, backward) in tx = %d events, %v", len(evs), err)
		}
		if evs, err := tx.Events(r.ID, 10, 10, true, nil); err != nil || len(evs) != 3 || evs[0].Pos != 3 {
			t.Errorf("Events(backward) in tx = %v, %v", evs, err)
		}
		if err := tx.DeleteRoom(r.ID); err != nil {
			return err
		}
		if _, err := tx.Room(r.ID); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Room in tx after DeleteRoom: %v", err)
		}
		if err := tx.DeleteUser(u.ID); err != nil {
			return err
		}
		if _, err := tx.User(u.ID); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("User in tx after DeleteUser: %v", err)
		}
		return nil
	})
}

// state captures what testAtomicity's failing transactions must leave unchanged.
func testAtomicity(t *testing.T, s chat.Store) {
	u := mkUser("owner", 1)
	r := putRoom(t, s, "room", 1)
	m := mkMember(r.ID, u.ID, chat.Joined, 1)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutMember(m)
	})
	appendN(t, s, r.ID, 1030) // the failed appends cross a chunk boundary
	update(t, s, func(tx chat.Tx) error { return tx.SetRevision(r.ID, 1, 2) })
	before, err := Dump(ctx, s)
	if err != nil {
		t.Fatal(err)
	}

	fails := []struct {
		name string
		fn   func(tx chat.Tx) error
	}{
		{"everything", func(tx chat.Tx) error {
			if err := tx.PutUser(mkUser("newuser", 5)); err != nil {
				return err
			}
			nr := mkRoom("newroom", 5)
			if err := tx.PutRoom(nr); err != nil {
				return err
			}
			if err := tx.PutMember(mkMember(nr.ID, u.ID, chat.Joined, 5)); err != nil {
				return err
			}
			for i := range 30 {
				ev := mkEvent(r.ID, i)
				if err := tx.Append(&ev); err != nil {
					return err
				}
				ev = mkEvent(nr.ID, i)
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			if err := tx.SetRevision(r.ID, 1, 1031); err != nil {
				return err
			}
			if err := tx.SetRevision(r.ID, 3, 1032); err != nil {
				return err
			}
			return errBoom
		}},
		{"replace and rename", func(tx chat.Tx) error {
			u2 := u
			u2.Name, u2.DisplayName, u2.Attributes = "renamed", "X", map[string]string{"x": "y"}
			if err := tx.PutUser(u2); err != nil {
				return err
			}
			r2 := r
			r2.Name, r2.Joins, r2.Attributes = "renamed", 99, nil
			if err := tx.PutRoom(r2); err != nil {
				return err
			}
			m2 := m
			m2.State, m2.Read = chat.Left, 1000
			if err := tx.PutMember(m2); err != nil {
				return err
			}
			// A newer record of the same user in the same room.
			if err := tx.PutMember(mkMember(r.ID, u.ID, chat.Invited, 6)); err != nil {
				return err
			}
			ev := mkEvent(r.ID, 1)
			if err := tx.Append(&ev); err != nil {
				return err
			}
			return fmt.Errorf("wrapped: %w", errBoom)
		}},
		{"delete room", func(tx chat.Tx) error {
			if err := tx.DeleteRoom(r.ID); err != nil {
				return err
			}
			// Its name is free inside the transaction.
			if err := tx.PutRoom(mkRoom("room", 9)); err != nil {
				return err
			}
			return errBoom
		}},
		{"delete user", func(tx chat.Tx) error {
			if err := tx.DeleteUser(u.ID); err != nil {
				return err
			}
			if err := tx.PutUser(mkUser("owner", 9)); err != nil {
				return err
			}
			return errBoom
		}},
		{"failed write then error", func(tx chat.Tx) error {
			ev := mkEvent(r.ID, 1)
			if err := tx.Append(&ev); err != nil {
				return err
			}
			err := tx.PutUser(mkUser("owner", 9)) // conflict
			if !errors.Is(err, chat.ErrConflict) {
				t.Errorf("PutUser(taken) in tx: %v", err)
			}
			return err
		}},
		{"no writes", func(tx chat.Tx) error { return errBoom }},
	}
	for _, f := range fails {
		t.Run(f.name, func(t *testing.T) {
			err := s.Update(ctx, f.fn)
			if err == nil {
				t.Fatal("Update returned nil for a failing fn")
			}
			after, err := Dump(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "store after a failed Update", before, after)
		})
	}
	// Names are free and positions unconsumed: the next writes get them.
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(mkUser("newuser", 7)); err != nil {
			return err
		}
		if err := tx.PutRoom(mkRoom("newroom", 7)); err != nil {
			return err
		}
		ev := mkEvent(r.ID, 0)
		if err := tx.Append(&ev); err != nil {
			return err
		}
		if ev.Pos != 1031 {
			t.Errorf("append after failed Updates got pos %d, want 1031", ev.Pos)
		}
		return nil
	})
}

func testAtomicDeletes(t *testing.T, s chat.Store) {
	// A room deleted and recreated under the same ID in one failed transaction comes back
	// whole.
	r := putRoom(t, s, "r", 1)
	u := mkUser("u", 1)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutMember(mkMember(r.ID, u.ID, chat.Joined, 1))
	})
	appendN(t, s, r.ID, 10)
	before, _ := Dump(ctx, s)
	err := s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.DeleteRoom(r.ID); err != nil {
			return err
		}
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		ev := mkEvent(r.ID, 0)
		if err := tx.Append(&ev); err != nil {
			return err
		}
		if ev.Pos != 1 {
			t.Errorf("append to a room recreated in the tx got pos %d, want 1", ev.Pos)
		}
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	after, _ := Dump(ctx, s)
	diff(t, "store after failed delete+recreate", before, after)
}

func testAfterCommit(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	var mu sync.Mutex
	var log []string
	record := func(s string) func() {
		return func() { mu.Lock(); log = append(log, s); mu.Unlock() }
	}
	// Runs after commit, before Update returns, in registration order.
	update(t, s, func(tx chat.Tx) error {
		tx.AfterCommit(record("a1"))
		tx.AfterCommit(record("a2"))
		return nil
	})
	update(t, s, func(tx chat.Tx) error {
		tx.AfterCommit(record("b"))
		return nil
	})
	// Dropped when fn fails, whether or not it wrote.
	_ = s.Update(ctx, func(tx chat.Tx) error {
		tx.AfterCommit(record("failed"))
		return errBoom
	})
	_ = s.Update(ctx, func(tx chat.Tx) error {
		tx.AfterCommit(record("failed after write"))
		ev := mkEvent(r.ID, 0)
		_ = tx.Append(&ev)
		return errBoom
	})
	mu.Lock()
	diff(t, "AfterCommit log", []string{"a1", "a2", "b"}, log)
	mu.Unlock()

	// The hook sees the committed state: a View from another goroutine started by the hook
	// would deadlock on some stores, so check after Update instead that it ran after commit
	// by reading what the transaction wrote.
	var ran bool
	update(t, s, func(tx chat.Tx) error {
		ev := mkEvent(r.ID, 0)
		if err := tx.Append(&ev); err != nil {
			return err
		}
		tx.AfterCommit(func() { ran = true })
		return nil
	})
	if !ran {
		t.Error("AfterCommit did not run before Update returned")
	}

	// Under concurrency hooks run one at a time, in commit order: the positions they report
	// for a room increase.
	const writers, each = 8, 40
	var order []uint64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				err := s.Update(ctx, func(tx chat.Tx) error {
					ev := mkEvent(r.ID, 0)
					if err := tx.Append(&ev); err != nil {
						return err
					}
					tx.AfterCommit(func() { order = append(order, ev.Pos) }) // unsynchronised: hooks must not overlap
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(order) != writers*each {
		t.Fatalf("%d hooks ran, want %d", len(order), writers*each)
	}
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1]+1 {
			t.Fatalf("hooks ran out of commit order: position %d after %d", order[i], order[i-1])
		}
	}
}

func testErrorsPassThrough(t *testing.T, s chat.Store) {
	for _, want := range []error{errBoom, chat.ErrForbidden, fmt.Errorf("ctx: %w", chat.ErrNotMember)} {
		err := s.Update(ctx, func(tx chat.Tx) error { return want })
		wantErr(t, "Update", err, want)
		err = s.View(ctx, func(tx chat.ReadTx) error { return want })
		wantErr(t, "View", err, want)
	}
}

func testContext(t *testing.T, s chat.Store) {
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.View(cctx, func(tx chat.ReadTx) error { called = true; return nil })
	wantErr(t, "View(cancelled ctx)", err, context.Canceled)
	err = s.Update(cctx, func(tx chat.Tx) error { called = true; return nil })
	wantErr(t, "Update(cancelled ctx)", err, context.Canceled)
	if called {
		t.Error("fn ran under a cancelled context")
	}
	// A store works normally afterwards.
	putRoom(t, s, "r", 1)
}

func testClosed(t *testing.T, s chat.Store) {
	putRoom(t, s, "r", 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	called := false
	err := s.View(ctx, func(tx chat.ReadTx) error { called = true; return nil })
	wantErr(t, "View after Close", err, chat.ErrClosed)
	err = s.Update(ctx, func(tx chat.Tx) error { called = true; return nil })
	wantErr(t, "Update after Close", err, chat.ErrClosed)
	if called {
		t.Error("fn ran after Close")
	}
	wantErr(t, "second Close", s.Close(), chat.ErrClosed)
}

func testOwnership(t *testing.T, s chat.Store) {
	u, r := mkUser("u", 1), mkRoom("r", 1)
	body := []byte(`{"k":"v"}`)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		ev := mkEvent(r.ID, 0)
		ev.Body = body
		return tx.Append(&ev)
	})
	// The store keeps no reference to its inputs.
	u.Attributes["k"] = "changed input"
	r.Attributes["a"] = "changed input"
	copy(body, `{"k":"X"}`)
	mutate := func(tx chat.ReadTx) {
		if got, err := tx.User(u.ID); err == nil {
			got.Attributes["k"] = "changed output"
		}
		if got, err := tx.UserByName("u"); err == nil {
			got.Attributes["k"] = "changed output"
		}
		if us, err := tx.Users(chat.ListFilter{}); err == nil {
			us[0].Attributes["k"] = "changed output"
		}
		if got, err := tx.Room(r.ID); err == nil {
			got.Attributes["a"] = "changed output"
		}
		if got, err := tx.RoomByName("r"); err == nil {
			got.Attributes["a"] = "changed output"
		}
		if rs, err := tx.Rooms(chat.ListFilter{}); err == nil {
			rs[0].Attributes["a"] = "changed output"
		}
		if ev, err := tx.Event(r.ID, 1); err == nil && len(ev.Body) > 2 {
			ev.Body[2] = 'Z'
		}
		if evs, err := tx.Events(r.ID, 1, 1, false, nil); err == nil && len(evs[0].Body) > 3 {
			evs[0].Body[3] = 'Z'
		}
	}
	view(t, s, func(tx chat.ReadTx) error { mutate(tx); return nil })
	update(t, s, func(tx chat.Tx) error { mutate(tx); return nil })
	view(t, s, func(tx chat.ReadTx) error {
		got, _ := tx.User(u.ID)
		if got.Attributes["k"] != "u" {
			t.Errorf("user attributes changed through a returned or input map: %v", got.Attributes)
		}
		room, _ := tx.Room(r.ID)
		if room.Attributes["a"] != "b" {
			t.Errorf("room attributes changed through a returned or input map: %v", room.Attributes)
		}
		ev, _ := tx.Event(r.ID, 1)
		if string(ev.Body) != `{"k":"v"}` {
			t.Errorf("event body changed through a returned or input slice: %s", ev.Body)
		}
		return nil
	})
}

func testLargeValues(t *testing.T, s chat.Store) {
	r := mkRoom(strings.Repeat("n", 1024), 1)
	r.Attributes = map[string]string{}
	for i := range 256 {
		r.Attributes[fmt.Sprintf("key%03d", i)] = strings.Repeat("v", 100)
	}
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(r) })
	ev := mkEvent(r.ID, 0)
	ev.Text = strings.Repeat("é", 32<<10) // 64 KiB
	ev.Body = []byte(`"` + strings.Repeat("b", 64<<10) + `"`)
	update(t, s, func(tx chat.Tx) error { return tx.Append(&ev) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.RoomByName(r.Name)
		if err != nil {
			t.Error(err)
		}
		diff(t, "large room", r.Attributes, got.Attributes)
		gev, err := tx.Event(r.ID, 1)
		if err != nil {
			t.Error(err)
		}
		diff(t, "large event", ev, gev)
		return nil
	})
}
