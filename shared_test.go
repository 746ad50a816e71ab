package chat_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/memory"
	"github.com/parley-chat/chat/storage/postgres"
)

// sharedStore is one memory store shared by several engines in one process, with a Bus made
// from a log of what its commits appended: the engine's side of a store that several
// processes share (storage/postgres), without a database. drop makes it lose wake-ups.
type sharedStore struct {
	*memory.Store
	mu      sync.Mutex
	log     []chat.Change
	wake    chan struct{}
	dropAll bool
}

func newSharedStore() *sharedStore {
	return &sharedStore{Store: memory.New(), wake: make(chan struct{}, 1)}
}

func (s *sharedStore) Bus() chat.Bus { return s }

func (s *sharedStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	return s.Store.Update(ctx, func(tx chat.Tx) error {
		rec := &recordingTx{Tx: tx}
		if err := fn(rec); err != nil {
			return err
		}
		tx.AfterCommit(func() {
			s.mu.Lock()
			s.log = append(s.log, rec.changes...)
			drop := s.dropAll
			s.mu.Unlock()
			if !drop {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		})
		return nil
	})
}

func (s *sharedStore) Changes(_ context.Context, cursor []byte) ([]chat.Change, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(len(s.log))
	next := binary.BigEndian.AppendUint64(nil, n)
	if cursor == nil {
		return nil, next, nil
	}
	from := binary.BigEndian.Uint64(cursor)
	return append([]chat.Change(nil), s.log[from:]...), next, nil
}

func (s *sharedStore) Wake() <-chan struct{} { return s.wake }

// recordingTx notes the positions a transaction appends and the rooms it deletes.
type recordingTx struct {
	chat.Tx
	changes []chat.Change
}

func (t *recordingTx) Append(ev *chat.Event) error {
	if err := t.Tx.Append(ev); err != nil {
		return err
	}
	if n := len(t.changes); n > 0 && t.changes[n-1].Room == ev.RoomID && t.changes[n-1].To == ev.Pos-1 {
		t.changes[n-1].To = ev.Pos
	} else {
		t.changes = append(t.changes, chat.Change{Room: ev.RoomID, From: ev.Pos, To: ev.Pos})
	}
	return nil
}

func (t *recordingTx) DeleteRoom(id chat.ID) error {
	if err := t.Tx.DeleteRoom(id); err != nil {
		return err
	}
	t.changes = append(t.changes, chat.Change{Room: id, Deleted: true})
	return nil
}

func openShared(t *testing.T, s chat.Store, opts ...chat.Option) *chat.Engine {
	t.Helper()
	e, err := chat.Open(ctx, s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestTwoEnginesShareAStore: what one engine commits reaches the other's followers and feeds
// exactly once and in order, through the Bus and the store; typing and receipts are seen from
// both; a lost wake-up only delays.
func TestTwoEnginesShareAStore(t *testing.T) {
	testkit.CheckLeaks(t)
	s := newSharedStore()
	testTwoEngines(t, s, s, func() {
		s.mu.Lock()
		s.dropAll = true
		s.mu.Unlock()
	})
}

// TestTwoEnginesOnPostgres is TestTwoEnginesShareAStore on one PostgreSQL database, each
// engine with a store of its own, as two processes would have.
func TestTwoEnginesOnPostgres(t *testing.T) {
	testkit.CheckLeaks(t)
	dsn := pgtest.DB(t, pgtest.Fast())
	var stores [2]chat.Store
	for i := range stores {
		s, err := postgres.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	testTwoEngines(t, stores[0], stores[1], nil)
}

// testTwoEngines runs two engines on sa and sb, which share their data. loseWakeUps, if not
// nil, makes the bus lose every later wake-up.
func testTwoEngines(t *testing.T, sa, sb chat.Store, loseWakeUps func()) {
	a, b := openShared(t, sa), openShared(t, sb)
	room := must[chat.Room](t)(a.CreateRoom(ctx, chat.NewRoom{Name: "shared"}))
	ada := must[chat.User](t)(a.CreateUser(ctx, chat.NewUser{Name: "ada"}))
	bob := must[chat.User](t)(b.CreateUser(ctx, chat.NewUser{Name: "bob"}))
	must[chat.Membership](t)(a.Join(ctx, room.ID, ada.ID, chat.JoinOptions{}))
	must[chat.Membership](t)(b.Join(ctx, room.ID, bob.ID, chat.JoinOptions{}))

	fb := must[*chat.Follower](t)(b.Follow(ctx, room.ID, 1))
	defer fb.Close()
	feed := b.Feed()
	defer feed.Close()

	// Both engines send, from several goroutines each.
	const perSender = 50
	var wg sync.WaitGroup
	for i, e := range []*chat.Engine{a, b, a, b} {
		user := []chat.ID{ada.ID, bob.ID}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perSender {
				if _, err := e.Send(ctx, room.ID, user, chat.NewMessage{Text: fmt.Sprintf("%d-%d", i, j)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := must[chat.Room](t)(a.Room(ctx, room.ID)).LastPos
	if last != 2+4*perSender {
		t.Fatalf("last position %d", last)
	}

	// The follower in b has every event from 1, once, in order.
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for p := uint64(1); p <= last; p++ {
		ev, err := fb.Next(deadline)
		if err != nil || ev.Pos != p {
			t.Fatalf("follower in b: %v at %d, %v", ev.Pos, p, err)
		}
	}
	// The feed in b has every message from both, once, in position order.
	var fed []uint64
	for len(fed) < 4*perSender {
		ev, err := feed.Next(deadline)
		if err != nil {
			t.Fatalf("feed in b after %d: %v", len(fed), err)
		}
		if ev.Type == chat.EventMessage {
			fed = append(fed, ev.Pos)
		}
	}
	for i := 1; i < len(fed); i++ {
		if fed[i] != fed[i-1]+1 {
			t.Fatalf("feed order: %v", fed)
		}
	}

	// Typing started in a shows in b; a message sent through b ends it.
	must[chat.Event](t)(a.StartTyping(ctx, room.ID, ada.ID, "hel"))
	typing := must[[]chat.Typist](t)(b.Typing(ctx, room.ID))
	if len(typing) != 1 || typing[0].User != ada.ID || typing[0].Text != "hel" {
		t.Fatalf("typing seen from b: %+v", typing)
	}
	must[chat.Event](t)(b.Send(ctx, room.ID, ada.ID, chat.NewMessage{Text: "hello"}))
	if typing := must[[]chat.Typist](t)(a.Typing(ctx, room.ID)); len(typing) != 0 {
		t.Fatalf("typing after a message through b: %+v", typing)
	}
	// A receipt made in a is b's to read.
	must[chat.Membership](t)(a.MarkRead(ctx, room.ID, bob.ID, 3))
	if m := must[chat.Member](t)(b.MemberByUser(ctx, room.ID, bob.ID)); m.Read != 3 {
		t.Fatalf("bob's read mark seen from b: %d", m.Read)
	}

	// Wake-ups lost: b's follower still gets a's next event, from the periodic look.
	if loseWakeUps != nil {
		loseWakeUps()
	}
	sent := must[chat.Event](t)(a.Send(ctx, room.ID, ada.ID, chat.NewMessage{Text: "after a lost wake-up"}))
	for {
		ev, err := fb.Next(deadline)
		if err != nil {
			t.Fatalf("follower after a lost wake-up: %v", err)
		}
		if ev.Pos == sent.Pos {
			if ev.Text != sent.Text {
				t.Fatalf("got %+v", ev)
			}
			break
		}
	}

	// Deleting the room in a ends b's follower.
	must[chat.Event](t)(a.Notice(ctx, room.ID, "bye")) // keep the follower busy to the end
	if err := a.DeleteRoom(ctx, room.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := fb.Next(deadline)
		if err != nil {
			wantErr(t, err, chat.ErrNotFound)
			break
		}
	}
}

// TestTimersOutliveTheirEngine: a typing indicator and a room TTL set by an engine that goes
// away are acted on by another engine on the same store.
func TestTimersOutliveTheirEngine(t *testing.T) {
	s := newSharedStore()
	testTimersOutliveTheirEngine(t, s, s)
}

// TestTimersOutliveTheirEngineOnPostgres is TestTimersOutliveTheirEngine with each engine on a
// store of its own on one PostgreSQL database.
func TestTimersOutliveTheirEngineOnPostgres(t *testing.T) {
	dsn := pgtest.DB(t, pgtest.Fast())
	var stores [2]chat.Store
	for i := range stores {
		s, err := postgres.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	testTimersOutliveTheirEngine(t, stores[0], stores[1])
}

func testTimersOutliveTheirEngine(t *testing.T, sa, sb chat.Store) {
	clock := fakeclock.New(epoch)
	opts := []chat.Option{chat.WithClock(clock), chat.WithTypingTTL(5 * time.Second), chat.WithTimerPoll(time.Second)}
	a, err := chat.Open(ctx, sa, opts...)
	if err != nil {
		t.Fatal(err)
	}
	room := must[chat.Room](t)(a.CreateRoom(ctx, chat.NewRoom{}))
	temp := must[chat.Room](t)(a.CreateRoom(ctx, chat.NewRoom{EmptyTTL: time.Minute}))
	ada := must[chat.User](t)(a.CreateUser(ctx, chat.NewUser{}))
	must[chat.Membership](t)(a.Join(ctx, room.ID, ada.ID, chat.JoinOptions{}))
	must[chat.Event](t)(a.StartTyping(ctx, room.ID, ada.ID, ""))
	a.Close() // a goes away with its timers armed

	b := openShared(t, sb, opts...)
	clock.Advance(6 * time.Second)
	evs := must[[]chat.Event](t)(b.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 10}))
	var types []chat.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if diff := cmp.Diff([]chat.EventType{chat.EventJoined, chat.EventTypingStarted, chat.EventTypingStopped}, types); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	clock.Advance(time.Minute)
	_, err = b.Room(ctx, temp.ID)
	wantErr(t, err, chat.ErrNotFound)
}
