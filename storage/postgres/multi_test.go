package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
)

// ack is an acknowledged append.
type ack struct {
	room chat.ID
	pos  uint64
	text string
}

// transcripts reads every room's whole transcript through s.
func transcripts(t *testing.T, s *Store, rooms []chat.ID) map[chat.ID][]chat.Event {
	t.Helper()
	out := map[chat.ID][]chat.Event{}
	err := s.View(ctx, func(tx chat.ReadTx) error {
		for _, id := range rooms {
			r, err := tx.Room(id)
			if err != nil {
				return err
			}
			evs, err := tx.Events(id, 1, int(r.LastPos)+1, false, nil)
			if err != nil {
				return err
			}
			if uint64(len(evs)) != r.LastPos {
				return fmt.Errorf("room %s: LastPos %d, %d events", id, r.LastPos, len(evs))
			}
			out[id] = evs
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAcks checks that transcripts are gapless and hold exactly the acknowledged appends.
func checkAcks(t *testing.T, got map[chat.ID][]chat.Event, acks []ack) {
	t.Helper()
	want := map[chat.ID]map[uint64]string{}
	for _, a := range acks {
		if want[a.room] == nil {
			want[a.room] = map[uint64]string{}
		}
		if prev, dup := want[a.room][a.pos]; dup {
			t.Fatalf("room %s position %d acknowledged twice: %q and %q", a.room, a.pos, prev, a.text)
		}
		want[a.room][a.pos] = a.text
	}
	total := 0
	for room, evs := range got {
		total += len(evs)
		if len(evs) != len(want[room]) {
			t.Errorf("room %s: %d events, %d acknowledged", room, len(evs), len(want[room]))
		}
		for i, ev := range evs {
			if ev.Pos != uint64(i+1) {
				t.Fatalf("room %s: event %d at position %d: a gap", room, i, ev.Pos)
			}
			if w, ok := want[room][ev.Pos]; !ok || w != ev.Text {
				t.Errorf("room %s position %d: %q, acknowledged %q (%v)", room, ev.Pos, ev.Text, w, ok)
			}
		}
	}
	if total != len(acks) {
		t.Errorf("%d events stored, %d acknowledged", total, len(acks))
	}
}

// crosswise runs writers on two stores of one database. Each transaction appends to one or
// two rooms (two in the opposite order on each store, so that batches of the two stores hold
// rooms the other wants) and every ninth fails after writing.
func crosswise(t *testing.T, nRooms, writers, each int, hint bool) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	stores := []*Store{open(t, dsn, nil), open(t, dsn, nil)}
	rooms := make([]chat.ID, nRooms)
	err := stores[0].Update(ctx, func(tx chat.Tx) error {
		for i := range rooms {
			rooms[i] = chat.ID{byte(i >> 8), byte(i), 7}
			if err := tx.PutRoom(chat.Room{ID: rooms[i]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	start := time.Now()
	for si, s := range stores {
		for w := range writers {
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(si), uint64(w)))
				for i := range each {
					a := rooms[rnd.IntN(nRooms)]
					targets := []chat.ID{a}
					if i%3 == 0 && nRooms > 1 {
						b := rooms[rnd.IntN(nRooms)]
						if b != a {
							targets = []chat.ID{a, b}
							if si == 1 {
								targets = []chat.ID{b, a}
							}
						}
					}
					// Some fail having only buffered appends (undone in memory), some having
					// written a timer (rolled back, the batch run again without them).
					fail, dirty := i%9 == 4, i%11 == 5
					fail = fail || dirty
					var got []ack
					update := s.Update
					if hint && i%2 == 0 { // half with the rooms said beforehand
						update = func(ctx context.Context, fn func(chat.Tx) error) error { return s.UpdateRooms(ctx, targets, fn) }
					}
					err := update(ctx, func(tx chat.Tx) error {
						got = got[:0]
						for k, room := range targets {
							if _, err := tx.Room(room); err != nil {
								return err
							}
							ev := chat.Event{RoomID: room, Type: chat.EventMessage, Text: fmt.Sprintf("s%d-w%d-%d-%d", si, w, i, k)}
							if err := tx.Append(&ev); err != nil {
								return err
							}
							got = append(got, ack{room, ev.Pos, ev.Text})
						}
						if dirty {
							if err := tx.PutTimer(chat.Timer{Kind: chat.TimerRoomTTL, Room: targets[0], At: time.Now()}); err != nil {
								return err
							}
						}
						if fail {
							return errBoom
						}
						return nil
					})
					switch {
					case fail && !errors.Is(err, errBoom):
						t.Errorf("failing Update: %v", err)
					case !fail && err != nil:
						t.Errorf("Update: %v", err)
					case err == nil:
						mu.Lock()
						acks = append(acks, got...)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d acknowledged appends in %v; store stats %+v, %+v", len(acks), elapsed, stores[0].Stats(), stores[1].Stats())
	err = stores[0].View(ctx, func(tx chat.ReadTx) error {
		if ts, err := tx.Timers(time.Now().Add(time.Hour), 0); err != nil || len(ts) != 0 {
			t.Errorf("timers of failed transactions were kept: %v, %v", ts, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := transcripts(t, stores[0], rooms), transcripts(t, stores[1], rooms)
	checkAcks(t, a, acks)
	// One order for every reader: both stores read the same transcripts.
	for _, room := range rooms {
		if len(a[room]) != len(b[room]) {
			t.Fatalf("room %s: %d events through one store, %d through the other", room, len(a[room]), len(b[room]))
		}
		for i := range a[room] {
			if a[room][i].Text != b[room][i].Text || !a[room][i].Time.Equal(b[room][i].Time) {
				t.Fatalf("room %s position %d: %q through one store, %q through the other", room, i+1, a[room][i].Text, b[room][i].Text)
			}
		}
	}
}

var errBoom = errors.New("boom")

// TestCrosswiseHotRoom: two stores write into one room (and, crosswise, into a second).
func TestCrosswiseHotRoom(t *testing.T) { crosswise(t, 2, 16, 40, false) }

// TestCrosswiseHinted: the same, half the transactions through UpdateRooms.
func TestCrosswiseHinted(t *testing.T) {
	t.Run("hot", func(t *testing.T) { crosswise(t, 2, 16, 40, true) })
	t.Run("rooms", func(t *testing.T) { crosswise(t, 1000, 32, 40, true) })
}

// TestCrosswiseRooms: two stores write into 1,000 rooms, some transactions into two.
func TestCrosswiseRooms(t *testing.T) { crosswise(t, 1000, 32, 40, false) }
