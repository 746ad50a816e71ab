package chat_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// TestFollowUnderConcurrentAppends: followers that start before, during and after a burst of
// concurrent appends, one of them deliberately slow, each see every position exactly once and
// in order, with the content the store holds.
func TestFollowUnderConcurrentAppends(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		checkNoLeak(t)
		const writers, each = 8, 300
		e, _ := newEngine(t, newStore, chat.WithFollowBuffer(16))
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		var users []chat.User
		for i := 0; i < writers; i++ {
			u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
			must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}))
			users = append(users, u)
		}
		total := uint64(writers + writers*each)

		type result struct {
			name string
			evs  []chat.Event
			err  error
		}
		results := make(chan result, 3)
		follow := func(name string, from uint64, delay func(i int)) {
			f, err := e.Follow(ctx, room.ID, from)
			if err != nil {
				results <- result{name: name, err: err}
				return
			}
			defer f.Close()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var evs []chat.Event
			for f.Pos() <= total {
				ev, err := f.Next(ctx)
				if err != nil {
					results <- result{name, evs, err}
					return
				}
				evs = append(evs, ev)
				delay(len(evs))
			}
			results <- result{name, evs, nil}
		}
		go follow("fast", 1, func(int) {})
		go follow("slow", 1, func(i int) {
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond) // falls behind the 16-event ring
			}
		})

		var wg sync.WaitGroup
		for _, u := range users {
			wg.Add(1)
			go func(u chat.User) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := e.Send(ctx, room.ID, u.ID, chat.NewMessage{Text: fmt.Sprint(i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}(u)
		}
		time.Sleep(5 * time.Millisecond)
		go follow("late", 3, func(int) {}) // starts mid-burst, from history
		wg.Wait()

		stored := must[[]chat.Event](t)(e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 1000}))
		for len(stored) < int(total) {
			stored = append(stored, must[[]chat.Event](t)(e.Read(ctx, room.ID, chat.ReadOptions{From: uint64(len(stored) + 1), Limit: 1000}))...)
		}
		for i := 0; i < 3; i++ {
			r := <-results
			if r.err != nil {
				t.Fatalf("%s follower: %v after %d events", r.name, r.err, len(r.evs))
			}
			first := r.evs[0].Pos
			for j, ev := range r.evs {
				want := stored[first-1+uint64(j)]
				if ev.Pos != first+uint64(j) || ev.ID != want.ID || ev.Text != want.Text {
					t.Fatalf("%s follower: event %d is %d/%q, store has %d/%q", r.name, j, ev.Pos, ev.Text, want.Pos, want.Text)
				}
			}
			if last := r.evs[len(r.evs)-1].Pos; last != total {
				t.Fatalf("%s follower ended at %d of %d", r.name, last, total)
			}
		}
	})
}

// TestStalledFollowerNeitherBlocksNorGrows: a follower that never reads does not slow writers
// and holds no more than its room's bounded buffer.
func TestStalledFollowerNeitherBlocksNorGrows(t *testing.T) {
	const n = 20000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	run := func(withFollower bool) uint64 {
		before := heap()
		e, _ := newEngine(t, storeFactories[0].Open, chat.WithFollowBuffer(64))
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}))
		var f *chat.Follower
		if withFollower {
			f = must[*chat.Follower](t)(e.Follow(ctx, room.ID, 1))
			defer f.Close()
			must[chat.Event](t)(f.Next(ctx)) // then it stalls
		}
		text := longText(100)
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := e.Send(ctx, room.ID, u.ID, chat.NewMessage{Text: text}); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("%d appends took %v", n, d)
		}
		if f != nil {
			// What a stalled follower keeps: its room's ring and its own batch.
			if got := chat.HubRingLen(e, room.ID); got > 64 {
				t.Fatalf("the room's ring holds %d events, more than its 64", got)
			}
			if got := chat.FollowerBufCap(f); got > chat.FollowBatch {
				t.Fatalf("the follower's buffer holds %d events, more than a batch of %d", got, chat.FollowBatch)
			}
		}
		return heap() - before
	}
	without := run(false)
	with := run(true)
	// Each event is ~250 bytes in the store: 20k of them are ~5 MB. A stalled follower holds
	// its room's ring (64 events) and one batch, ~30 KB; the heap figures are noisy (more so
	// under -race), so this only catches growth with the number of events.
	if with > without && with-without > without/2 {
		t.Fatalf("a stalled follower grew the heap by %d bytes (%d without it)", with-without, without)
	}
}

// TestFeedRepairsItsOwnLag: a Feed consumer that falls far behind its buffer loses nothing:
// every event comes once, each room's in order, while more keep coming.
func TestFeedRepairsItsOwnLag(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore, chat.WithFeedBuffer(8))
		feed := e.Feed()
		defer feed.Close()
		var rooms []chat.Room
		for range 3 {
			rooms = append(rooms, must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{})))
		}
		send := func(n int) {
			for i := range n {
				must[chat.Event](t)(e.Notice(ctx, rooms[i%3].ID, "n"))
			}
		}
		send(30) // 30 events through an 8-event buffer, none taken yet
		seen := map[chat.ID]uint64{}
		take := func(n int) {
			for range n {
				ev, err := feed.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if last := seen[ev.RoomID]; ev.Pos != last+1 {
					t.Fatalf("room %s: %d after %d", ev.RoomID, ev.Pos, last)
				}
				seen[ev.RoomID] = ev.Pos
			}
		}
		take(10)
		send(30) // more while it catches up
		take(50)
		for _, r := range rooms {
			if seen[r.ID] != 20 {
				t.Fatalf("room %s at %d of 20", r.ID, seen[r.ID])
			}
		}
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if ev, err := feed.Next(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("an extra event: %+v %v", ev, err)
		}
		// The feed goes on live.
		must[chat.Event](t)(e.Notice(ctx, rooms[0].ID, "after"))
		if ev := must[chat.Event](t)(feed.Next(ctx)); ev.Text != "after" {
			t.Fatalf("then %+v", ev)
		}
		// All ranges over it.
		must[chat.Event](t)(e.Notice(ctx, rooms[1].ID, "ranged"))
		for ev, err := range feed.All(ctx) {
			if err != nil || ev.Text != "ranged" {
				t.Fatalf("All: %+v %v", ev, err)
			}
			break
		}
	})
}

func TestFollowFromNowAndClose(t *testing.T) {
	checkNoLeak(t)
	w := newWorld(t, storeFactories[0].Open)
	f := must[*chat.Follower](t)(w.e.Follow(ctx, w.room.ID, 0))
	if f.Pos() != w.last(t)+1 {
		t.Fatalf("follow from now starts at %d", f.Pos())
	}
	done := make(chan error)
	go func() { _, err := f.Next(ctx); done <- err }()
	time.Sleep(10 * time.Millisecond)
	f.Close()
	select {
	case err := <-done:
		wantErr(t, err, chat.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end a waiting Next")
	}
}

// TestTryNextAndReady follows a room from a select loop, without a goroutine per follower.
func TestTryNextAndReady(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore, chat.WithFollowBuffer(4))
		f := must[*chat.Follower](t)(w.e.Follow(ctx, w.room.ID, 1))
		defer f.Close()
		const n = 50
		go func() {
			for i := 0; i < n; i++ {
				w.e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: fmt.Sprint(i)})
			}
		}()
		want := uint64(1)
		timeout := time.After(10 * time.Second)
		for want <= n+2 { // two joins, then the messages
			ev, ok, err := f.TryNext(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if ev.Pos != want {
					t.Fatalf("got position %d, want %d", ev.Pos, want)
				}
				want++
				continue
			}
			select {
			case <-f.Ready():
			case <-timeout:
				t.Fatalf("stuck at position %d", want)
			}
		}
		if _, ok, err := f.TryNext(ctx); ok || err != nil {
			t.Fatalf("an event past the end: %v %v", ok, err)
		}
		f.Close()
		select {
		case <-f.Ready():
		case <-time.After(time.Second):
			t.Fatal("Ready is not closed after Close")
		}
		wantErr(t, func() error { _, _, err := f.TryNext(ctx); return err }(), chat.ErrClosed)
	})
}

// TestHubFillsOutOfOrderPublishes: a store with several writers may publish a room's events
// out of order; the hub reads what it lacks from the store and followers still get every
// event once, in order.
func TestHubFillsOutOfOrderPublishes(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		checkNoLeak(t)
		quiet := &quietStore{}
		e, _ := newEngine(t, func(tb testing.TB) chat.Store { quiet.Store = newStore(tb); return quiet })
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		f := must[*chat.Follower](t)(e.Follow(ctx, room.ID, 0))
		defer f.Close()
		// Append three notices while the store publishes nothing, then publish the third
		// alone and the first after it.
		quiet.on.Store(true)
		var evs []chat.Event
		for i := range 3 {
			evs = append(evs, must[chat.Event](t)(e.Notice(ctx, room.ID, fmt.Sprint(i))))
		}
		chat.Publish(e, evs[2:3])
		chat.Publish(e, evs[0:1])
		deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, want := range evs {
			got, err := f.Next(deadline)
			if err != nil || got.Pos != want.Pos || got.Text != want.Text {
				t.Fatalf("got %d %q, %v; want %d %q", got.Pos, got.Text, err, want.Pos, want.Text)
			}
		}
		if ev, ok, err := f.TryNext(ctx); ok || err != nil {
			t.Fatalf("an extra event: %+v %v", ev, err)
		}
	})
}

// quietStore runs no AfterCommit function while on is set, so that a test publishes itself.
type quietStore struct {
	chat.Store
	on atomic.Bool
}

func (s *quietStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	return s.Store.Update(ctx, func(tx chat.Tx) error {
		if s.on.Load() {
			return fn(quietTx{tx})
		}
		return fn(tx)
	})
}

type quietTx struct{ chat.Tx }

func (quietTx) AfterCommit(func()) {}
