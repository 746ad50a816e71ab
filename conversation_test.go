package chat_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
)

// TestCreateConversationWithANewUser: a room, a user made for it and its join are one commit;
// a refused member leaves neither room nor user behind.
func TestCreateConversationWithANewUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore)
		agent := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{Name: "agent"}))
		c := must[chat.Conversation](t)(e.CreateConversation(ctx, chat.NewRoom{
			Attributes: map[string]string{"k": "v"},
			Members: []chat.NewMember{
				{NewUser: &chat.NewUser{DisplayName: "Visitor"}, Nickname: "vis", Role: chat.RoleClient},
				{User: agent.ID, Role: chat.RoleAgent},
			},
		}))
		if len(c.Members) != 2 || c.Room.LastPos != 2 || c.Members[1].UserID != agent.ID {
			t.Fatalf("conversation %+v", c)
		}
		vis := must[chat.User](t)(e.User(ctx, c.Members[0].UserID))
		if vis.DisplayName != "Visitor" || c.Members[0].Nickname != "vis" || c.Members[0].State != chat.Joined {
			t.Fatalf("visitor %+v, member %+v", vis, c.Members[0])
		}
		// The second member's user does not exist: nothing at all is stored.
		users := len(must[[]chat.User](t)(e.Users(ctx, chat.ListFilter{})))
		rooms := len(must[[]chat.Room](t)(e.Rooms(ctx, chat.ListFilter{})))
		_, err := e.CreateConversation(ctx, chat.NewRoom{Members: []chat.NewMember{
			{NewUser: &chat.NewUser{Name: "new-visitor"}}, {User: chat.ID{9}},
		}})
		wantErr(t, err, chat.ErrNotFound)
		if n := len(must[[]chat.User](t)(e.Users(ctx, chat.ListFilter{}))); n != users {
			t.Fatalf("%d users after a refused conversation, want %d", n, users)
		}
		if n := len(must[[]chat.Room](t)(e.Rooms(ctx, chat.ListFilter{}))); n != rooms {
			t.Fatalf("%d rooms after a refused conversation, want %d", n, rooms)
		}
		_, err = e.CreateConversation(ctx, chat.NewRoom{Members: []chat.NewMember{{NewUser: &chat.NewUser{Name: "agent"}}}})
		wantErr(t, err, chat.ErrConflict)
	})
}

// TestEnsureRoomAndUpsertUser: racing callers of EnsureRoom get one room, of UpsertUser one
// user, with no ErrConflict; UpsertUser updates what differs.
func TestEnsureRoomAndUpsertUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore)
		const n = 8
		var wg sync.WaitGroup
		rooms, users := make([]chat.ID, n), make([]chat.ID, n)
		created := make([]bool, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, c, err := e.EnsureRoom(ctx, chat.NewRoom{Name: "lobby"})
				if err != nil {
					t.Error(err)
					return
				}
				rooms[i], created[i] = r.ID, c
				u, _, err := e.UpsertUser(ctx, chat.NewUser{Name: "bot", DisplayName: "Bot"})
				if err != nil {
					t.Error(err)
					return
				}
				users[i] = u.ID
			}()
		}
		wg.Wait()
		made := 0
		for i := range n {
			if rooms[i] != rooms[0] || users[i] != users[0] {
				t.Fatalf("different rooms or users: %v %v", rooms, users)
			}
			if created[i] {
				made++
			}
		}
		if made != 1 {
			t.Fatalf("%d callers created the room", made)
		}
		u, c, err := e.UpsertUser(ctx, chat.NewUser{Name: "bot", DisplayName: "Bot 2", Attributes: map[string]string{"a": "1"}})
		if err != nil || c || u.DisplayName != "Bot 2" || u.Attributes["a"] != "1" {
			t.Fatalf("update: %+v %v %v", u, c, err)
		}
		_, _, err = e.EnsureRoom(ctx, chat.NewRoom{})
		wantErr(t, err, chat.ErrInvalid)
	})
}

// TestKeepJoined: a join that may be repeated returns the membership as it is.
func TestKeepJoined(t *testing.T) {
	w := newWorld(t, storeFactories[0].Open)
	last := w.last(t)
	m := must[chat.Membership](t)(w.e.Join(ctx, w.room.ID, w.ada.ID, chat.JoinOptions{KeepJoined: true}))
	if m.ID != w.adaMember.ID || w.last(t) != last {
		t.Fatalf("repeated join: %+v, transcript at %d from %d", m, w.last(t), last)
	}
}

// TestIdleControl: a quiet room is warned, then ended; activity puts it off; two engines on one
// store warn once.
func TestIdleControl(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, clock := newEngine(t, newStore)
		idle := chat.IdleControl{Warn: 255 * time.Second, Close: 45 * time.Second, WarnText: "still there?", CloseText: "bye"}
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		c := must[chat.Conversation](t)(e.CreateConversation(ctx, chat.NewRoom{Idle: idle, Members: []chat.NewMember{{User: u.ID}}}))
		room := c.Room.ID
		texts := func() (out []string) {
			for _, ev := range must[[]chat.Event](t)(e.Read(ctx, room, chat.ReadOptions{From: 1, Limit: 100})) {
				out = append(out, string(ev.Type)+":"+ev.Text)
			}
			return out
		}
		clock.Advance(200 * time.Second)
		must[chat.Event](t)(e.Send(ctx, room, u.ID, chat.NewMessage{Text: "hi"})) // activity
		clock.Advance(200 * time.Second)                                          // 200 s since: quiet, not long enough
		if diff := cmp.Diff([]string{"joined:", "message:hi"}, texts()); diff != "" {
			t.Fatalf("before the warning (-want +got):\n%s", diff)
		}
		clock.Advance(60 * time.Second) // 260 s since the message
		if diff := cmp.Diff([]string{"joined:", "message:hi", "notice:still there?"}, texts()); diff != "" {
			t.Fatalf("warned (-want +got):\n%s", diff)
		}
		clock.Advance(46 * time.Second)
		if diff := cmp.Diff([]string{"joined:", "message:hi", "notice:still there?", "notice:bye", "ended:"}, texts()); diff != "" {
			t.Fatalf("ended (-want +got):\n%s", diff)
		}
		if r := must[chat.Room](t)(e.Room(ctx, room)); !r.Ended() {
			t.Fatal("not ended")
		}
		_, err := e.UpdateRoom(ctx, room, chat.RoomUpdate{Idle: &chat.IdleControl{Warn: -1}})
		wantErr(t, err, chat.ErrInvalid)
	})
}

// TestIdleControlOnASharedStore: two engines whose clocks fire at once warn a room once.
func TestIdleControlOnASharedStore(t *testing.T) {
	s := newSharedStore()
	clock := fakeclock.New(epoch)
	var engines []*chat.Engine
	for range 2 {
		engines = append(engines, openShared(t, s, chat.WithClock(clock), chat.WithTimerPoll(time.Second)))
	}
	idle := chat.IdleControl{Warn: time.Minute, Close: time.Minute, WarnText: "w", CloseText: "c"}
	c := must[chat.Conversation](t)(engines[0].CreateConversation(ctx, chat.NewRoom{Idle: idle}))
	clock.Advance(61 * time.Second)
	clock.Advance(61 * time.Second)
	evs := must[[]chat.Event](t)(engines[1].Read(ctx, c.Room.ID, chat.ReadOptions{From: 1, Limit: 100}))
	var types []string
	for _, ev := range evs {
		types = append(types, string(ev.Type)+":"+ev.Text)
	}
	if diff := cmp.Diff([]string{"notice:w", "notice:c", "ended:"}, types); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if _, err := engines[0].EndRoom(ctx, c.Room.ID); !errors.Is(err, chat.ErrEnded) {
		t.Fatal(err)
	}
}

// TestMessagesPage: pages of messages in their current state, as a viewer sees them, both
// ways, with the position the next page starts from.
func TestMessagesPage(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		bobM := must[chat.Member](t)(e.MemberByUser(ctx, w.room.ID, w.bob.ID))
		send := func(text string, to chat.ID) chat.Event {
			return must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: text, To: to}))
		}
		a := send("a", chat.ID{})                               // 3
		send("b", chat.ID{})                                    // 4
		must[chat.Event](t)(e.Notice(ctx, w.room.ID, "notice")) // 5
		send("private", bobM.ID)                                // 6
		d := send("d", chat.ID{})                               // 7
		must[chat.Event](t)(e.Edit(ctx, w.room.ID, w.ada.ID, a.Pos, chat.NewMessage{Text: "a2"}))
		must[chat.Event](t)(e.Delete(ctx, w.room.ID, w.ada.ID, d.Pos))
		texts := func(ms []chat.Message) (out []string) {
			for _, m := range ms {
				s := m.Text
				if !m.Deleted.IsZero() {
					s = "(deleted)"
				}
				out = append(out, s)
			}
			return out
		}
		page := func(viewer chat.ID, o chat.ReadOptions) ([]string, uint64) {
			ms, next, err := e.Messages(ctx, w.room.ID, viewer, o)
			if err != nil {
				t.Fatal(err)
			}
			return texts(ms), next
		}
		cases := []struct {
			name   string
			viewer chat.ID
			o      chat.ReadOptions
			want   []string
			next   uint64
		}{
			{"bob, all", w.bob.ID, chat.ReadOptions{Limit: 10}, []string{"a2", "b", "private", "(deleted)"}, 0},
			{"outsider", w.outsider.ID, chat.ReadOptions{Limit: 10}, []string{"a2", "b", "(deleted)"}, 0},
			{"system", chat.System(), chat.ReadOptions{Limit: 10}, []string{"a2", "b", "private", "(deleted)"}, 0},
			{"newest two", w.bob.ID, chat.ReadOptions{Limit: 2, Backward: true}, []string{"(deleted)", "private"}, 5},
			{"the page after", w.bob.ID, chat.ReadOptions{From: 5, Limit: 2, Backward: true}, []string{"b", "a2"}, 2},
			{"forwards from 4", w.outsider.ID, chat.ReadOptions{From: 4, Limit: 1}, []string{"b"}, 5},
		}
		for _, c := range cases {
			got, next := page(c.viewer, c.o)
			if diff := cmp.Diff(c.want, got); diff != "" || next != c.next {
				t.Errorf("%s: next %d, want %d; (-want +got):\n%s", c.name, next, c.next, diff)
			}
		}
	})
}
