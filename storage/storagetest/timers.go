package storagetest

import (
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// testEventByKey: an event appended with a key is found by it; a second event with the same
// key in the same room is refused, in another room it is not.
func testEventByKey(t *testing.T, s chat.Store) {
	r1, r2 := putRoom(t, s, "r1", 1), putRoom(t, s, "r2", 2)
	keyed := mkEvent(r1.ID, 1)
	keyed.Key = "client-1"
	update(t, s, func(tx chat.Tx) error {
		e := mkEvent(r1.ID, 0)
		if err := tx.Append(&e); err != nil {
			return err
		}
		return tx.Append(&keyed)
	})
	again := mkEvent(r1.ID, 2)
	again.Key = keyed.Key
	err := s.Update(ctx, func(tx chat.Tx) error { return tx.Append(&again) })
	wantErr(t, "Append(taken key)", err, chat.ErrConflict)
	other := mkEvent(r2.ID, 3)
	other.Key = keyed.Key
	update(t, s, func(tx chat.Tx) error { return tx.Append(&other) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.EventByKey(r1.ID, keyed.Key)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "EventByKey", keyed, got)
		if got.Pos != 2 {
			t.Errorf("EventByKey pos %d, want 2", got.Pos)
		}
		got, err = tx.EventByKey(r2.ID, keyed.Key)
		if err != nil || got.Pos != 1 {
			t.Errorf("EventByKey(other room) = %d, %v", got.Pos, err)
		}
		_, err = tx.EventByKey(r1.ID, "no such key")
		wantErr(t, "EventByKey(unknown key)", err, chat.ErrNotFound)
		_, err = tx.EventByKey(r1.ID, "")
		wantErr(t, "EventByKey(empty key)", err, chat.ErrNotFound)
		_, err = tx.EventByKey(newID(), keyed.Key)
		wantErr(t, "EventByKey(unknown room)", err, chat.ErrNotFound)
		r, err := tx.Room(r1.ID)
		if err != nil || r.LastPos != 2 {
			t.Errorf("the refused append moved the room to %d (%v)", r.LastPos, err)
		}
		return nil
	})
	// A key appended in a transaction that fails is not kept.
	lost := mkEvent(r1.ID, 4)
	lost.Key = "lost"
	_ = s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.Append(&lost); err != nil {
			return err
		}
		return errBoom
	})
	view(t, s, func(tx chat.ReadTx) error {
		_, err := tx.EventByKey(r1.ID, "lost")
		wantErr(t, "EventByKey(rolled back)", err, chat.ErrNotFound)
		return nil
	})
	// Deleting the room forgets its keys: a room put again with the same ID starts afresh.
	update(t, s, func(tx chat.Tx) error { return tx.DeleteRoom(r1.ID) })
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(r1) })
	fresh := mkEvent(r1.ID, 5)
	fresh.Key = keyed.Key
	update(t, s, func(tx chat.Tx) error { return tx.Append(&fresh) })
}

// testTimers: put, replace, list due ones in order, delete; a room's timers go with it.
func testTimers(t *testing.T, s chat.Store) {
	r1, r2 := putRoom(t, s, "r1", 1), putRoom(t, s, "r2", 2)
	m1, m2 := newID(), newID()
	tm := func(kind chat.TimerKind, room, member chat.ID, n int) chat.Timer {
		return chat.Timer{Kind: kind, Room: room, Member: member, At: at(n)}
	}
	typing1 := tm(chat.TimerTyping, r1.ID, m1, 30)
	typing2 := tm(chat.TimerTyping, r1.ID, m2, 10)
	ttl1 := tm(chat.TimerRoomTTL, r1.ID, chat.ID{}, 20)
	ttl2 := tm(chat.TimerRoomTTL, r2.ID, chat.ID{}, 20)
	update(t, s, func(tx chat.Tx) error {
		for _, x := range []chat.Timer{typing1, typing2, ttl1, ttl2} {
			if err := tx.PutTimer(x); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutTimer(tm(chat.TimerTyping, newID(), m1, 1)) })
	wantErr(t, "PutTimer(unknown room)", err, chat.ErrNotFound)

	// Replacing moves it.
	typing1.At = at(5)
	update(t, s, func(tx chat.Tx) error { return tx.PutTimer(typing1) })
	// Same time: kind, then room, then member order.
	wantOrder := []chat.Timer{typing1, typing2, ttl1, ttl2}
	if compareID(ttl2.Room, ttl1.Room) < 0 {
		wantOrder[2], wantOrder[3] = ttl2, ttl1
	}
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.Timers(at(100), 0)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "Timers(all)", wantOrder, got)
		got, err = tx.Timers(at(10), 0)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "Timers(until, inclusive)", wantOrder[:2], got)
		got, err = tx.Timers(at(100), 3)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "Timers(limit)", wantOrder[:3], got)
		got1, err := tx.Timer(chat.TimerTyping, r1.ID, m1)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "Timer", typing1, got1)
		_, err = tx.Timer(chat.TimerRoomTTL, r1.ID, m1)
		wantErr(t, "Timer(other kind)", err, chat.ErrNotFound)
		return nil
	})
	update(t, s, func(tx chat.Tx) error {
		if err := tx.DeleteTimer(chat.TimerTyping, r1.ID, m2); err != nil {
			return err
		}
		return tx.DeleteTimer(chat.TimerTyping, r1.ID, newID()) // absent: no error
	})
	// A failed transaction keeps nothing it did to timers.
	_ = s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.DeleteTimer(chat.TimerTyping, r1.ID, m1); err != nil {
			return err
		}
		if err := tx.PutTimer(tm(chat.TimerTyping, r2.ID, m2, 1)); err != nil {
			return err
		}
		return errBoom
	})
	update(t, s, func(tx chat.Tx) error { return tx.DeleteRoom(r2.ID) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.Timers(at(1000), 0)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "Timers after deletes", []chat.Timer{typing1, ttl1}, got)
		return nil
	})
	// Times are kept to the microsecond.
	fine := tm(chat.TimerRoomTTL, r1.ID, chat.ID{}, 0)
	fine.At = base.Add(1500 * time.Nanosecond)
	update(t, s, func(tx chat.Tx) error { return tx.PutTimer(fine) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.Timer(chat.TimerRoomTTL, r1.ID, chat.ID{})
		if err != nil || !got.At.Equal(base.Add(time.Microsecond)) {
			t.Errorf("Timer at %v, %v; want %v", got.At, err, base.Add(time.Microsecond))
		}
		return nil
	})
}

func compareID(a, b chat.ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
