package storagetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

func testAppend(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	// Every field round-trips; Pos is assigned whatever the caller put there.
	full := chat.Event{RoomID: r.ID, Pos: 42, ID: newID(), Type: chat.EventCustom, Name: "x.custom",
		From: newID(), User: newID(), To: newID(), Text: "héllo ✓", Body: json.RawMessage(`{"a":[1,2,{"b":null}]}`),
		Ref: 7, Visibility: chat.RoleOperator, Time: at(5)}
	zero := chat.Event{RoomID: r.ID, Type: chat.EventNotice, Time: at(6)}
	var got []chat.Event
	update(t, s, func(tx chat.Tx) error {
		got = got[:0]
		for _, ev := range []chat.Event{full, zero} {
			if err := tx.Append(&ev); err != nil {
				return err
			}
			got = append(got, ev)
		}
		return nil
	})
	full.Pos, zero.Pos = 1, 2
	diff(t, "appended events as set by Append", []chat.Event{full, zero}, got)
	view(t, s, func(tx chat.ReadTx) error {
		evs, err := tx.Events(r.ID, 1, 10, false, nil)
		if err != nil {
			t.Error(err)
		}
		diff(t, "stored events", []chat.Event{full, zero}, evs)
		room, err := tx.Room(r.ID)
		if err != nil {
			t.Error(err)
		}
		if room.LastPos != 2 || !room.LastTime.Equal(zero.Time) {
			t.Errorf("Room.LastPos, LastTime = %d, %v; want 2, %v", room.LastPos, room.LastTime, zero.Time)
		}
		return nil
	})
	// Positions continue gaplessly across transactions.
	evs := appendN(t, s, r.ID, 3)
	for i, ev := range evs {
		if ev.Pos != uint64(3+i) {
			t.Errorf("event %d got pos %d, want %d", i, ev.Pos, 3+i)
		}
	}
	// Rooms have independent positions.
	r2 := putRoom(t, s, "r2", 2)
	if evs := appendN(t, s, r2.ID, 1); evs[0].Pos != 1 {
		t.Errorf("first event of another room got pos %d, want 1", evs[0].Pos)
	}
	err := s.Update(ctx, func(tx chat.Tx) error {
		ev := mkEvent(newID(), 0)
		return tx.Append(&ev)
	})
	wantErr(t, "Append(unknown room)", err, chat.ErrNotFound)
}

func testAppendTimes(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	local := time.FixedZone("X", 3600)
	in := []time.Time{
		base.Add(1500 * time.Nanosecond),          // truncated to 1µs
		base.Add(1500 * time.Nanosecond),          // equal: 1µs after the last
		base,                                      // earlier: 1µs after the last
		base.Add(10*time.Microsecond + 999),       // later: kept (truncated)
		base.Add(10 * time.Microsecond).In(local), // equal instant in another zone: bumped
		base.Add(time.Hour).In(local),             // later, another zone
	}
	want := []time.Time{
		base.Add(1 * time.Microsecond),
		base.Add(2 * time.Microsecond),
		base.Add(3 * time.Microsecond),
		base.Add(10 * time.Microsecond),
		base.Add(11 * time.Microsecond),
		base.Add(time.Hour),
	}
	var got []time.Time
	for i, tm := range in {
		update(t, s, func(tx chat.Tx) error {
			ev := chat.Event{RoomID: r.ID, Type: chat.EventMessage, Text: fmt.Sprint(i), Time: tm}
			if err := tx.Append(&ev); err != nil {
				return err
			}
			got = append(got, ev.Time)
			return nil
		})
	}
	diff(t, "times set by Append", want, got)
	view(t, s, func(tx chat.ReadTx) error {
		evs, err := tx.Events(r.ID, 1, 100, false, nil)
		if err != nil {
			t.Error(err)
		}
		var stored []time.Time
		for _, ev := range evs {
			stored = append(stored, ev.Time)
		}
		diff(t, "stored times", want, stored)
		room, _ := tx.Room(r.ID)
		if !room.LastTime.Equal(want[len(want)-1]) {
			t.Errorf("LastTime = %v, want %v", room.LastTime, want[len(want)-1])
		}
		return nil
	})
	// Within one transaction too, and a zero time is bumped after the last.
	update(t, s, func(tx chat.Tx) error {
		for i := range 3 {
			ev := chat.Event{RoomID: r.ID, Type: chat.EventMessage, Text: "same", Time: base.Add(time.Hour)}
			if i == 2 {
				ev.Time = time.Time{}
			}
			if err := tx.Append(&ev); err != nil {
				return err
			}
			if w := base.Add(time.Hour + time.Duration(i+1)*time.Microsecond); !ev.Time.Equal(w) {
				t.Errorf("append %d in one tx: time %v, want %v", i, ev.Time, w)
			}
		}
		return nil
	})
	// A zero time is bumped even after a zero time.
	z := putRoom(t, s, "zero", 2)
	update(t, s, func(tx chat.Tx) error {
		for i := range 2 {
			ev := chat.Event{RoomID: z.ID, Type: chat.EventNotice}
			if err := tx.Append(&ev); err != nil {
				return err
			}
			if w := (time.Time{}).Add(time.Duration(i) * time.Microsecond); !ev.Time.Equal(w) {
				t.Errorf("zero-time append %d: time %v, want %v", i, ev.Time, w)
			}
		}
		return nil
	})
	// Times come back in UTC.
	view(t, s, func(tx chat.ReadTx) error {
		ev, err := tx.Event(r.ID, 6)
		if err != nil {
			t.Fatal(err)
		}
		if _, off := ev.Time.Zone(); off != 0 {
			t.Errorf("stored time %v is not UTC", ev.Time)
		}
		return nil
	})
}

func testEvent(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	evs := appendN(t, s, r.ID, 1100)
	view(t, s, func(tx chat.ReadTx) error {
		for _, p := range []uint64{1, 2, 1024, 1025, 1100} {
			got, err := tx.Event(r.ID, p)
			if err != nil {
				t.Errorf("Event(%d): %v", p, err)
			}
			diff(t, fmt.Sprintf("Event(%d)", p), evs[p-1], got)
		}
		for _, p := range []uint64{0, 1101, 1 << 40} {
			_, err := tx.Event(r.ID, p)
			wantErr(t, fmt.Sprintf("Event(%d)", p), err, chat.ErrNotFound)
		}
		_, err := tx.Event(newID(), 1)
		wantErr(t, "Event(unknown room)", err, chat.ErrNotFound)
		return nil
	})
}

func testEvents(t *testing.T, s chat.Store) {
	const n = 2100 // more than two 1024-event chunks
	r := putRoom(t, s, "r", 1)
	empty := putRoom(t, s, "empty", 2)
	evs := appendN(t, s, r.ID, n)
	span := func(from, to uint64) []uint64 { // inclusive, either direction
		var ps []uint64
		for p := from; ; {
			ps = append(ps, p)
			if p == to {
				return ps
			}
			if from < to {
				p++
			} else {
				p--
			}
		}
	}
	for _, tc := range []struct {
		name     string
		from     uint64
		limit    int
		backward bool
		want     []uint64
	}{
		{"first", 1, 1, false, span(1, 1)},
		{"from 0 is from 1", 0, 3, false, span(1, 3)},
		{"first 50", 1, 50, false, span(1, 50)},
		{"across 1024", 1000, 50, false, span(1000, 1049)},
		{"exactly one chunk", 1, 1024, false, span(1, 1024)},
		{"chunk start", 1025, 10, false, span(1025, 1034)},
		{"chunk end", 1015, 10, false, span(1015, 1024)},
		{"across two boundaries", 1000, 1100, false, span(1000, 2099)},
		{"everything", 1, n + 10, false, span(1, n)},
		{"tail clipped", n - 2, 50, false, span(n-2, n)},
		{"last", n, 5, false, span(n, n)},
		{"past the end", n + 1, 5, false, nil},
		{"far past the end", 1 << 62, 5, false, nil},
		{"zero limit", 1, 0, false, nil},
		{"negative limit", 1, -1, false, nil},
		{"back from last", n, 3, true, span(n, n-2)},
		{"back from past the end", n + 100, 3, true, span(n, n-2)},
		{"back from max", ^uint64(0), 2, true, span(n, n-1)},
		{"back across 2048", 2050, 5, true, span(2050, 2046)},
		{"back across 1024", 1030, 20, true, span(1030, 1011)},
		{"back to 1", 3, 10, true, span(3, 1)},
		{"back from 1", 1, 10, true, span(1, 1)},
		{"back from 0", 0, 10, true, nil},
		{"back everything", n, n + 5, true, span(n, 1)},
		{"back zero limit", n, 0, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []chat.Event
			for _, p := range tc.want {
				want = append(want, evs[p-1])
			}
			view(t, s, func(tx chat.ReadTx) error {
				got, err := tx.Events(r.ID, tc.from, tc.limit, tc.backward, nil)
				if err != nil {
					t.Error(err)
				}
				diff(t, "Events", want, got)
				// dst is appended to, not overwritten.
				prefix := []chat.Event{{Text: "keep"}}
				got, err = tx.Events(r.ID, tc.from, tc.limit, tc.backward, prefix)
				if err != nil {
					t.Error(err)
				}
				diff(t, "Events appended to dst", append([]chat.Event{{Text: "keep"}}, want...), got)
				return nil
			})
		})
	}
	view(t, s, func(tx chat.ReadTx) error {
		for _, back := range []bool{false, true} {
			got, err := tx.Events(empty.ID, 1, 10, back, nil)
			if err != nil || len(got) != 0 {
				t.Errorf("Events(empty room, backward=%v) = %v, %v", back, got, err)
			}
			_, err = tx.Events(newID(), 1, 10, back, nil)
			wantErr(t, "Events(unknown room)", err, chat.ErrNotFound)
		}
		return nil
	})
}

func testRevisions(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	appendN(t, s, r.ID, 5)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.SetRevision(r.ID, 1, 3); err != nil {
			return err
		}
		return tx.SetRevision(r.ID, 2, 4)
	})
	update(t, s, func(tx chat.Tx) error { return tx.SetRevision(r.ID, 1, 5) })
	view(t, s, func(tx chat.ReadTx) error {
		for _, tc := range []struct{ pos, want uint64 }{{1, 5}, {2, 4}, {3, 0}, {99, 0}} {
			got, err := tx.Revision(r.ID, tc.pos)
			if err != nil || got != tc.want {
				t.Errorf("Revision(%d) = %d, %v; want %d", tc.pos, got, err, tc.want)
			}
		}
		_, err := tx.Revision(newID(), 1)
		wantErr(t, "Revision(unknown room)", err, chat.ErrNotFound)
		return nil
	})
	err := s.Update(ctx, func(tx chat.Tx) error { return tx.SetRevision(newID(), 1, 2) })
	wantErr(t, "SetRevision(unknown room)", err, chat.ErrNotFound)
}
