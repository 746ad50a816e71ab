package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
)

type world struct {
	e          *chat.Engine
	clock      *fakeclock.Clock
	room       chat.Room
	ada, bob   chat.User
	outsider   chat.User
	adaMember  chat.Member
	lastBefore uint64
}

func newWorld(t *testing.T, newStore func(testing.TB) chat.Store, opts ...chat.Option) *world {
	e, clock := newEngine(t, newStore, opts...)
	w := &world{e: e, clock: clock}
	w.room = must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Name: "lobby"}))
	w.ada = must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{Name: "ada"}))
	w.bob = must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{Name: "bob"}))
	w.outsider = must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{Name: "eve"}))
	w.adaMember = must[chat.Membership](t)(e.Join(ctx, w.room.ID, w.ada.ID, chat.JoinOptions{})).Member
	must[chat.Membership](t)(e.Join(ctx, w.room.ID, w.bob.ID, chat.JoinOptions{}))
	return w
}

func (w *world) last(t *testing.T) uint64 {
	t.Helper()
	return must[chat.Room](t)(w.e.Room(ctx, w.room.ID)).LastPos
}

// TestBadInputStoresNothing: each refusal is a clear sentinel error and the room's transcript
// does not move.
func TestBadInputStoresNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore, chat.WithMaxMessageBytes(100))
		e := w.e
		ghost := chat.ID{1}
		ended := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Name: "ended"}))
		must[chat.Membership](t)(e.Join(ctx, ended.ID, w.ada.ID, chat.JoinOptions{}))
		must[chat.Event](t)(e.EndRoom(ctx, ended.ID))
		msg := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "hi"}))

		cases := []struct {
			name string
			op   func() error
			want error
		}{
			{"empty text", func() error { _, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{}); return err }, chat.ErrInvalid},
			{"oversized text", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: longText(101)})
				return err
			}, chat.ErrInvalid},
			{"invalid UTF-8", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "a\xffb"})
				return err
			}, chat.ErrInvalid},
			{"invalid JSON body", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Body: json.RawMessage("{")})
				return err
			}, chat.ErrInvalid},
			{"unknown room", func() error { _, err := e.Send(ctx, ghost, w.ada.ID, chat.NewMessage{Text: "x"}); return err }, chat.ErrNotFound},
			{"non-member posts", func() error {
				_, err := e.Send(ctx, w.room.ID, w.outsider.ID, chat.NewMessage{Text: "x"})
				return err
			}, chat.ErrNotMember},
			{"unknown user posts", func() error { _, err := e.Send(ctx, w.room.ID, ghost, chat.NewMessage{Text: "x"}); return err }, chat.ErrNotMember},
			{"post to ended room", func() error { _, err := e.Send(ctx, ended.ID, w.ada.ID, chat.NewMessage{Text: "x"}); return err }, chat.ErrEnded},
			{"duplicate room name", func() error { _, err := e.CreateRoom(ctx, chat.NewRoom{Name: "lobby"}); return err }, chat.ErrConflict},
			{"duplicate user name", func() error { _, err := e.CreateUser(ctx, chat.NewUser{Name: "ada"}); return err }, chat.ErrConflict},
			{"rename to taken name", func() error {
				taken := "bob"
				_, err := e.UpdateUser(ctx, w.ada.ID, chat.UserUpdate{Name: &taken})
				return err
			}, chat.ErrConflict},
			{"join twice", func() error { _, err := e.Join(ctx, w.room.ID, w.ada.ID, chat.JoinOptions{}); return err }, chat.ErrConflict},
			{"join unknown user", func() error { _, err := e.Join(ctx, w.room.ID, ghost, chat.JoinOptions{}); return err }, chat.ErrNotFound},
			{"leave as non-member", func() error { _, err := e.Leave(ctx, w.room.ID, w.outsider.ID); return err }, chat.ErrNotMember},
			{"receipt past the end", func() error { _, err := e.MarkRead(ctx, w.room.ID, w.ada.ID, 1000); return err }, chat.ErrInvalid},
			{"receipt at 0", func() error { _, err := e.MarkDelivered(ctx, w.room.ID, w.ada.ID, 0); return err }, chat.ErrInvalid},
			{"edit another's message", func() error {
				_, err := e.Edit(ctx, w.room.ID, w.bob.ID, msg.Pos, chat.NewMessage{Text: "y"})
				return err
			}, chat.ErrForbidden},
			{"edit a non-message", func() error {
				_, err := e.Edit(ctx, w.room.ID, w.ada.ID, 1, chat.NewMessage{Text: "y"})
				return err
			}, chat.ErrNotFound},
			{"typing as non-member", func() error { _, err := e.StartTyping(ctx, w.room.ID, w.outsider.ID, ""); return err }, chat.ErrNotMember},
			{"stop typing as non-member", func() error { _, err := e.StopTyping(ctx, w.room.ID, w.outsider.ID); return err }, chat.ErrNotMember},
			{"read limit 0", func() error {
				_, err := e.Read(ctx, w.room.ID, chat.ReadOptions{From: 1, Limit: 0})
				return err
			}, chat.ErrInvalid},
			{"follow past the end", func() error { _, err := e.Follow(ctx, w.room.ID, 1000); return err }, chat.ErrInvalid},
			{"bad list filter", func() error { _, err := e.Rooms(ctx, chat.ListFilter{Offset: -1}); return err }, chat.ErrInvalid},
			{"custom without name", func() error { _, err := e.Custom(ctx, w.room.ID, w.ada.ID, "", nil); return err }, chat.ErrInvalid},
			{"custom with a bad body", func() error {
				_, err := e.Custom(ctx, w.room.ID, w.ada.ID, "x", json.RawMessage("{"))
				return err
			}, chat.ErrInvalid},
			{"custom from a non-member", func() error {
				_, err := e.Custom(ctx, w.room.ID, w.outsider.ID, "x", nil)
				return err
			}, chat.ErrNotMember},
			{"oversized nickname", func() error {
				_, err := e.Join(ctx, w.room.ID, w.outsider.ID, chat.JoinOptions{Nickname: longText(2000)})
				return err
			}, chat.ErrInvalid},
			{"NUL in text", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "a\x00b"})
				return err
			}, chat.ErrInvalid},
			{"NUL in a JSON body", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Body: json.RawMessage(`{"a":"x\u0000y"}`)})
				return err
			}, chat.ErrInvalid},
			{"invalid UTF-8 in a JSON body", func() error {
				_, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Body: json.RawMessage("{\"a\":\"\xff\"}")})
				return err
			}, chat.ErrInvalid},
			{"custom body nested too deep", func() error {
				_, err := e.Custom(ctx, w.room.ID, w.ada.ID, "x", json.RawMessage(strings.Repeat("[", 65)+strings.Repeat("]", 65)))
				return err
			}, chat.ErrInvalid},
			{"NUL in a typing preview", func() error { _, err := e.StartTyping(ctx, w.room.ID, w.ada.ID, "\x00"); return err }, chat.ErrInvalid},
			{"NUL in a nickname", func() error {
				_, err := e.Join(ctx, w.room.ID, w.outsider.ID, chat.JoinOptions{Nickname: "a\x00"})
				return err
			}, chat.ErrInvalid},
			{"NUL in a custom event name", func() error { _, err := e.Custom(ctx, w.room.ID, w.ada.ID, "a\x00", nil); return err }, chat.ErrInvalid},
			{"NUL in a room attribute", func() error {
				_, err := e.UpdateRoom(ctx, w.room.ID, chat.RoomUpdate{Attributes: map[string]string{"k": "\x00"}})
				return err
			}, chat.ErrInvalid},
			{"invited-only join without an invitation", func() error {
				_, err := e.Join(ctx, w.room.ID, w.outsider.ID, chat.JoinOptions{InvitedOnly: true})
				return err
			}, chat.ErrForbidden},
			{"oversized role", func() error {
				_, err := e.Join(ctx, w.room.ID, w.outsider.ID, chat.JoinOptions{Role: chat.Role(longText(2000))})
				return err
			}, chat.ErrInvalid},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := w.last(t)
				wantErr(t, c.op(), c.want)
				if after := w.last(t); after != before {
					t.Fatalf("transcript moved from %d to %d on a refused operation", before, after)
				}
			})
		}
	})
}

// TestMemberStateMachine walks the legal transitions and checks each illegal one is refused.
func TestMemberStateMachine(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore)
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Private: true}))
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))

		wantErr(t, func() error { _, err := e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}); return err }(), chat.ErrForbidden)
		inv := must[chat.Membership](t)(e.Invite(ctx, room.ID, u.ID, chat.InviteOptions{Nickname: "guest"}))
		if inv.State != chat.Invited || inv.JoinNumber != 0 {
			t.Fatalf("invited member %+v", inv)
		}
		wantErr(t, func() error { _, err := e.Invite(ctx, room.ID, u.ID, chat.InviteOptions{}); return err }(), chat.ErrConflict)
		j1 := must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{Role: chat.RoleAgent}))
		if j1.ID != inv.ID || j1.State != chat.Joined || j1.JoinNumber != 1 || j1.Nickname != "guest" || j1.Role != chat.RoleAgent {
			t.Fatalf("joined member %+v (invited %+v)", j1, inv)
		}
		l1 := must[chat.Membership](t)(e.Leave(ctx, room.ID, u.ID))
		if l1.ID != j1.ID || l1.State != chat.Left {
			t.Fatalf("left member %+v", l1)
		}
		wantErr(t, func() error { _, err := e.Leave(ctx, room.ID, u.ID); return err }(), chat.ErrNotMember)
		// Rejoining a private room needs a new invitation; it gets a new record and join number.
		wantErr(t, func() error { _, err := e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}); return err }(), chat.ErrForbidden)
		must[chat.Membership](t)(e.Invite(ctx, room.ID, u.ID, chat.InviteOptions{}))
		j2 := must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}))
		if j2.ID == j1.ID || j2.JoinNumber != 2 {
			t.Fatalf("rejoined member %+v, first %+v", j2, j1)
		}
		// Both records are listed (in ID order: made in one millisecond, in no particular one).
		members := must[[]chat.Member](t)(e.Members(ctx, room.ID))
		if len(members) != 2 || !slices.ContainsFunc(members, func(m chat.Member) bool { return m.ID == l1.ID && m.State == chat.Left }) ||
			!slices.ContainsFunc(members, func(m chat.Member) bool { return m.ID == j2.ID && m.State == chat.Joined }) {
			t.Fatalf("members %+v", members)
		}
		ms := must[[]chat.Member](t)(e.Memberships(ctx, u.ID))
		if len(ms) != 1 || ms[0].ID != j2.ID {
			t.Fatalf("memberships %+v", ms)
		}
		evs := must[[]chat.Event](t)(e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 100}))
		var types []chat.EventType
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		want := []chat.EventType{chat.EventInvited, chat.EventJoined, chat.EventLeft, chat.EventInvited, chat.EventJoined}
		if diff := cmp.Diff(want, types); diff != "" {
			t.Fatalf("event types (-want +got):\n%s", diff)
		}
	})
}

// TestReceiptsAreWatermarks: never backwards, never past the end, read implies delivered, and
// an unchanged watermark appends nothing.
func TestReceiptsAreWatermarks(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		for i := 0; i < 3; i++ {
			must[chat.Event](t)(e.Send(ctx, w.room.ID, w.bob.ID, chat.NewMessage{Text: "m"}))
		}
		last := w.last(t)
		m := must[chat.Membership](t)(e.MarkDelivered(ctx, w.room.ID, w.ada.ID, last-1))
		if m.Delivered != last-1 || m.Read != 0 {
			t.Fatalf("after delivered: %+v", m)
		}
		m = must[chat.Membership](t)(e.MarkRead(ctx, w.room.ID, w.ada.ID, last))
		if m.Delivered != last || m.Read != last {
			t.Fatalf("read must imply delivered: %+v", m)
		}
		after := w.last(t)
		m = must[chat.Membership](t)(e.MarkDelivered(ctx, w.room.ID, w.ada.ID, 2))
		m = must[chat.Membership](t)(e.MarkRead(ctx, w.room.ID, w.ada.ID, 1))
		if m.Delivered != last || m.Read != last {
			t.Fatalf("watermarks moved backwards: %+v", m)
		}
		if w.last(t) != after {
			t.Fatalf("a receipt that moved nothing appended an event")
		}
		ev := must[chat.Event](t)(e.Event(ctx, w.room.ID, after))
		if ev.Type != chat.EventRead || ev.Ref != last || ev.User != w.ada.ID {
			t.Fatalf("receipt event %+v", ev)
		}
	})
}

// TestEditDeleteDeriveMessageState: edits and deletes are new events; Message derives the
// current state.
func TestEditDeleteDeriveMessageState(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		orig := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "helo"}))
		edit := must[chat.Event](t)(e.Edit(ctx, w.room.ID, w.ada.ID, orig.Pos, chat.NewMessage{Text: "hello"}))
		if edit.Type != chat.EventEdit || edit.Ref != orig.Pos || edit.Pos != orig.Pos+1 {
			t.Fatalf("edit event %+v", edit)
		}
		msg := must[chat.Message](t)(e.Message(ctx, w.room.ID, orig.Pos))
		if msg.Text != "hello" || !msg.Edited.Equal(edit.Time) || !msg.Deleted.IsZero() {
			t.Fatalf("edited message %+v", msg)
		}
		if got := must[chat.Event](t)(e.Event(ctx, w.room.ID, orig.Pos)); got.Text != "helo" {
			t.Fatalf("the original event changed: %+v", got)
		}
		del := must[chat.Event](t)(e.Delete(ctx, w.room.ID, chat.System(), orig.Pos))
		msg = must[chat.Message](t)(e.Message(ctx, w.room.ID, orig.Pos))
		if msg.Text != "" || !msg.Deleted.Equal(del.Time) {
			t.Fatalf("deleted message %+v", msg)
		}
		wantErr(t, func() error {
			_, err := e.Edit(ctx, w.room.ID, w.ada.ID, orig.Pos, chat.NewMessage{Text: "again"})
			return err
		}(), chat.ErrConflict)
		wantErr(t, func() error { _, err := e.Delete(ctx, w.room.ID, w.ada.ID, orig.Pos); return err }(), chat.ErrConflict)
	})
}

// TestTypingExpiresAndEndsOnSend uses the fake clock: typing lasts the TTL unless renewed, and
// a message ends it without an extra event.
func TestTypingExpiresAndEndsOnSend(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		checkNoLeak(t)
		e, clock := newEngine(t, newStore, chat.WithTypingTTL(5*time.Second))
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		ada := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		am := must[chat.Membership](t)(e.Join(ctx, room.ID, ada.ID, chat.JoinOptions{}))

		if ev, err := e.StartTyping(ctx, room.ID, ada.ID, "he"); err != nil || ev.Type != chat.EventTypingStarted {
			t.Fatal(ev, err)
		}
		clock.Advance(3 * time.Second)
		if ev, err := e.StartTyping(ctx, room.ID, ada.ID, "he"); err != nil || ev.Pos != 0 { // renew: no event
			t.Fatal(ev, err)
		}
		clock.Advance(3 * time.Second) // 6s after start, 3s after renewal
		if ts := must[[]chat.Typist](t)(e.Typing(ctx, room.ID)); len(ts) != 1 || ts[0].Member != am.ID || ts[0].Text != "he" {
			t.Fatalf("typing after renewal: %+v", ts)
		}
		clock.Advance(3 * time.Second)
		if ts := must[[]chat.Typist](t)(e.Typing(ctx, room.ID)); len(ts) != 0 {
			t.Fatalf("typing did not expire: %+v", ts)
		}
		must[chat.Event](t)(e.StartTyping(ctx, room.ID, ada.ID, ""))
		must[chat.Event](t)(e.Send(ctx, room.ID, ada.ID, chat.NewMessage{Text: "hello"}))
		if ts := must[[]chat.Typist](t)(e.Typing(ctx, room.ID)); len(ts) != 0 {
			t.Fatalf("send did not end typing: %+v", ts)
		}
		clock.Advance(time.Minute) // the stale timer entry must do nothing
		evs := must[[]chat.Event](t)(e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 100}))
		var types []chat.EventType
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		want := []chat.EventType{chat.EventJoined, chat.EventTypingStarted, chat.EventTypingStopped, chat.EventTypingStarted, chat.EventMessage}
		if diff := cmp.Diff(want, types); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
	})
}

// TestRoomTTLDeletesEmptyRoom: a room with EmptyTTL goes once it has had no joined member for
// that long, and stays while someone is in it.
func TestRoomTTLDeletesEmptyRoom(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, clock := newEngine(t, newStore)
		busy := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{EmptyTTL: time.Minute}))
		empty := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Name: "temp", EmptyTTL: time.Minute}))
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		must[chat.Membership](t)(e.Join(ctx, busy.ID, u.ID, chat.JoinOptions{}))
		clock.Advance(61 * time.Second)
		wantErr(t, func() error { _, err := e.Room(ctx, empty.ID); return err }(), chat.ErrNotFound)
		must[chat.Room](t)(e.Room(ctx, busy.ID))
		must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Name: "temp"})) // the name is free again
		must[chat.Membership](t)(e.Leave(ctx, busy.ID, u.ID))
		clock.Advance(30 * time.Second)
		must[chat.Room](t)(e.Room(ctx, busy.ID))
		clock.Advance(31 * time.Second)
		wantErr(t, func() error { _, err := e.Room(ctx, busy.ID); return err }(), chat.ErrNotFound)
	})
}

func TestDeleteRoomAndUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		f := must[*chat.Follower](t)(e.Follow(ctx, w.room.ID, 0))
		defer f.Close()
		other := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		must[chat.Membership](t)(e.Join(ctx, other.ID, w.ada.ID, chat.JoinOptions{}))

		if err := e.DeleteUser(ctx, w.ada.ID); err != nil {
			t.Fatal(err)
		}
		for _, room := range []chat.ID{w.room.ID, other.ID} {
			m := must[chat.Member](t)(e.MemberByUser(ctx, room, w.ada.ID))
			if m.State != chat.Left {
				t.Fatalf("deleted user's membership in %s is %s", room, m.State)
			}
		}
		wantErr(t, func() error { _, err := e.User(ctx, w.ada.ID); return err }(), chat.ErrNotFound)
		ev := must[chat.Event](t)(f.Next(ctx))
		if ev.Type != chat.EventLeft || ev.User != w.ada.ID {
			t.Fatalf("follower saw %+v", ev)
		}

		if err := e.DeleteRoom(ctx, w.room.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, func() error { _, err := f.Next(ctx); return err }(), chat.ErrNotFound)
		wantErr(t, func() error {
			_, err := e.Read(ctx, w.room.ID, chat.ReadOptions{From: 1, Limit: 10})
			return err
		}(), chat.ErrNotFound)
		wantErr(t, e.DeleteRoom(ctx, w.room.ID), chat.ErrNotFound)
		must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Name: "lobby"}))
	})
}

func TestListRoomsPagesAndTimeRange(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, clock := newEngine(t, newStore)
		var rooms []chat.Room
		for i := 0; i < 5; i++ {
			rooms = append(rooms, must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{})))
			clock.Advance(time.Hour)
		}
		ids := func(rs []chat.Room) []chat.ID {
			var out []chat.ID
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		cases := []struct {
			f    chat.ListFilter
			want []chat.Room
		}{
			{chat.ListFilter{}, rooms},
			{chat.ListFilter{Limit: 2}, rooms[:2]},
			{chat.ListFilter{Offset: 3}, rooms[3:]},
			{chat.ListFilter{Offset: 9}, nil},
			{chat.ListFilter{Desc: true, Limit: 2}, []chat.Room{rooms[4], rooms[3]}},
			{chat.ListFilter{Since: epoch.Add(time.Hour), Until: epoch.Add(3 * time.Hour)}, rooms[1:3]},
			{chat.ListFilter{Since: epoch.Add(90 * time.Minute), Desc: true, Offset: 1}, []chat.Room{rooms[3], rooms[2]}},
		}
		for _, c := range cases {
			got := must[[]chat.Room](t)(e.Rooms(ctx, c.f))
			if diff := cmp.Diff(ids(c.want), ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("filter %+v (-want +got):\n%s", c.f, diff)
			}
		}
	})
}

func TestTimesStrictlyIncrease(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore) // the fake clock stands still: every event has the same Now
		for i := 0; i < 20; i++ {
			must[chat.Event](t)(w.e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "tick"}))
		}
		evs := must[[]chat.Event](t)(w.e.Read(ctx, w.room.ID, chat.ReadOptions{From: 1, Limit: 100}))
		for i := 1; i < len(evs); i++ {
			if !evs[i].Time.After(evs[i-1].Time) {
				t.Fatalf("event %d at %v, not after %v", evs[i].Pos, evs[i].Time, evs[i-1].Time)
			}
		}
	})
}

func TestCloseEndsFollowersAndFeeds(t *testing.T) {
	checkNoLeak(t)
	e, _ := newEngine(t, storeFactories[0].Open)
	room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
	f := must[*chat.Follower](t)(e.Follow(ctx, room.ID, 0))
	feed := e.Feed()
	errs := make(chan error, 2)
	go func() { _, err := f.Next(ctx); errs <- err }()
	go func() { _, err := feed.Next(ctx); errs <- err }()
	time.Sleep(10 * time.Millisecond)
	e.Close()
	for i := 0; i < 2; i++ {
		wantErr(t, <-errs, chat.ErrClosed)
	}
	wantErr(t, func() error { _, err := e.CreateRoom(ctx, chat.NewRoom{}); return err }(), chat.ErrClosed)
}

// TestTypingExpiresOnTheRealClock runs the shared timer on the system clock.
func TestTypingExpiresOnTheRealClock(t *testing.T) {
	checkNoLeak(t)
	store := storeFactories[0].Open(t)
	e, err := chat.Open(ctx, store, chat.WithTypingTTL(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	defer e.Close()
	room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
	u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
	must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}))
	f := must[*chat.Follower](t)(e.Follow(ctx, room.ID, 0))
	defer f.Close()
	must[chat.Event](t)(e.StartTyping(ctx, room.ID, u.ID, ""))
	for _, want := range []chat.EventType{chat.EventTypingStarted, chat.EventTypingStopped} {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ev, err := f.Next(c)
		cancel()
		if err != nil || ev.Type != want {
			t.Fatalf("got %v %v, want %s", ev.Type, err, want)
		}
	}
	if ts := must[[]chat.Typist](t)(e.Typing(ctx, room.ID)); len(ts) != 0 {
		t.Fatalf("still typing: %+v", ts)
	}
}

func TestEndedRoomRefusesChanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		msg := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "hi"}))
		must[chat.Event](t)(e.EndRoom(ctx, w.room.ID))
		nick := "new"
		for name, op := range map[string]func() error{
			"send": func() error { _, err := e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "x"}); return err },
			"nickname": func() error {
				_, err := e.UpdateMember(ctx, w.room.ID, w.ada.ID, chat.MemberUpdate{Nickname: &nick})
				return err
			},
			"typing": func() error { _, err := e.StartTyping(ctx, w.room.ID, w.ada.ID, ""); return err },
			"edit": func() error {
				_, err := e.Edit(ctx, w.room.ID, w.ada.ID, msg.Pos, chat.NewMessage{Text: "y"})
				return err
			},
			"join":   func() error { _, err := e.Join(ctx, w.room.ID, w.outsider.ID, chat.JoinOptions{}); return err },
			"end":    func() error { _, err := e.EndRoom(ctx, w.room.ID); return err },
			"notice": func() error { _, err := e.Notice(ctx, w.room.ID, "x"); return err },
		} {
			before := w.last(t)
			if err := op(); !errors.Is(err, chat.ErrEnded) {
				t.Errorf("%s on an ended room: %v, want ErrEnded", name, err)
			}
			if w.last(t) != before {
				t.Errorf("%s on an ended room appended an event", name)
			}
		}
		// Leaving and receipts still work.
		must[chat.Membership](t)(e.MarkRead(ctx, w.room.ID, w.ada.ID, msg.Pos))
		must[chat.Membership](t)(e.Leave(ctx, w.room.ID, w.bob.ID))
	})
}

func TestCreateRoomWithMembersIsOneCommit(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore)
		ada := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		bob := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{Private: true, Members: []chat.NewMember{
			{User: ada.ID, Nickname: "Ada", Role: chat.RoleClient}, {User: bob.ID, Role: chat.RoleAgent},
		}}))
		if room.Joins != 2 || room.LastPos != 2 {
			t.Fatalf("room %+v", room)
		}
		m := must[chat.Member](t)(e.MemberByUser(ctx, room.ID, ada.ID))
		if m.State != chat.Joined || m.JoinNumber != 1 || m.Nickname != "Ada" || m.Role != chat.RoleClient {
			t.Fatalf("member %+v", m)
		}
		// A bad member fails the whole creation: no room is left behind.
		before := must[[]chat.Room](t)(e.Rooms(ctx, chat.ListFilter{}))
		_, err := e.CreateRoom(ctx, chat.NewRoom{Name: "half", Members: []chat.NewMember{{User: ada.ID}, {User: chat.ID{9}}}})
		wantErr(t, err, chat.ErrNotFound)
		_, err = e.CreateRoom(ctx, chat.NewRoom{Members: []chat.NewMember{{User: ada.ID}, {User: ada.ID}}})
		wantErr(t, err, chat.ErrConflict)
		if after := must[[]chat.Room](t)(e.Rooms(ctx, chat.ListFilter{})); len(after) != len(before) {
			t.Fatalf("a failed creation left a room behind: %d rooms, was %d", len(after), len(before))
		}
		wantErr(t, func() error { _, err := e.RoomByName(ctx, "half"); return err }(), chat.ErrNotFound)
	})
}

func TestPosBefore(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		evs := must[[]chat.Event](t)(w.e.Read(ctx, w.room.ID, chat.ReadOptions{From: 1, Limit: 10}))
		for i := 0; i < 5; i++ {
			evs = append(evs, must[chat.Event](t)(w.e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "m"})))
		}
		if p := must[uint64](t)(w.e.PosBefore(ctx, w.room.ID, evs[0].Time)); p != 0 {
			t.Fatalf("before the first event: %d", p)
		}
		for i, ev := range evs {
			if p := must[uint64](t)(w.e.PosBefore(ctx, w.room.ID, ev.Time.Add(time.Nanosecond))); p != ev.Pos {
				t.Fatalf("just after event %d: %d, want %d", i, p, ev.Pos)
			}
			if p := must[uint64](t)(w.e.PosBefore(ctx, w.room.ID, ev.Time)); p != ev.Pos-1 {
				t.Fatalf("at event %d: %d, want %d", i, p, ev.Pos-1)
			}
		}
		if p := must[uint64](t)(w.e.PosBefore(ctx, w.room.ID, epoch.Add(time.Hour))); p != evs[len(evs)-1].Pos {
			t.Fatalf("after the end: %d", p)
		}
		wantErr(t, func() error { _, err := w.e.PosBefore(ctx, chat.ID{7}, epoch); return err }(), chat.ErrNotFound)
	})
}

// TestDeleteUserEndsTypingAndArmsTTL: deleting a user does what its leaves would.
func TestDeleteUserEndsTypingAndArmsTTL(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, clock := newEngine(t, newStore)
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{EmptyTTL: time.Minute}))
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		must[chat.Membership](t)(e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}))
		clock.Advance(2 * time.Minute) // not empty: the TTL does nothing
		must[chat.Event](t)(e.StartTyping(ctx, room.ID, u.ID, ""))
		if err := e.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if ts := must[[]chat.Typist](t)(e.Typing(ctx, room.ID)); len(ts) != 0 {
			t.Fatalf("a deleted user is still typing: %+v", ts)
		}
		clock.Advance(30 * time.Second)
		must[chat.Room](t)(e.Room(ctx, room.ID))
		clock.Advance(31 * time.Second)
		wantErr(t, func() error { _, err := e.Room(ctx, room.ID); return err }(), chat.ErrNotFound)
	})
}

func TestVisibleToMember(t *testing.T) {
	ada := chat.Member{ID: chat.ID{1}, UserID: chat.ID{11}, Role: chat.RoleClient}
	bob := chat.Member{ID: chat.ID{2}, UserID: chat.ID{12}, Role: chat.RoleOperator}
	adaAgain := chat.Member{ID: chat.ID{3}, UserID: ada.UserID, Role: chat.RoleClient} // rejoined
	nobody := chat.Member{}
	cases := []struct {
		name string
		ev   chat.Event
		want map[string]bool
	}{
		{"for everyone", chat.Event{User: ada.UserID}, map[string]bool{"ada": true, "bob": true, "adaAgain": true, "nobody": true}},
		{"from the program", chat.Event{}, map[string]bool{"ada": true, "bob": true, "adaAgain": true, "nobody": true}},
		{"operators only", chat.Event{User: ada.UserID, Visibility: chat.RoleOperator}, map[string]bool{"bob": true}},
		{"ada to bob", chat.Event{User: ada.UserID, From: ada.ID, To: bob.ID}, map[string]bool{"ada": true, "bob": true, "adaAgain": true}},
		{"program to ada", chat.Event{To: ada.ID}, map[string]bool{"ada": true}},
		{"bob to ada, clients only", chat.Event{User: bob.UserID, To: ada.ID, Visibility: chat.RoleClient}, map[string]bool{"ada": true}},
		{"bob invites ada", chat.Event{Type: chat.EventInvited, User: bob.UserID, To: ada.ID}, map[string]bool{"ada": true, "bob": true, "adaAgain": true, "nobody": true}},
	}
	members := map[string]chat.Member{"ada": ada, "bob": bob, "adaAgain": adaAgain, "nobody": nobody}
	for _, c := range cases {
		for name, m := range members {
			if got := c.ev.VisibleToMember(m); got != c.want[name] {
				t.Errorf("%s: visible to %s = %v, want %v", c.name, name, got, c.want[name])
			}
		}
	}
}

// TestEditOfPrivateMessageStaysPrivate: an edit or delete reaches whom the message reached.
func TestEditOfPrivateMessageStaysPrivate(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		bobM := must[chat.Member](t)(w.e.MemberByUser(ctx, w.room.ID, w.bob.ID))
		private := must[chat.Event](t)(w.e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "psst", To: bobM.ID, Visibility: chat.RoleClient}))
		edit := must[chat.Event](t)(w.e.Edit(ctx, w.room.ID, w.ada.ID, private.Pos, chat.NewMessage{Text: "secret"}))
		del := must[chat.Event](t)(w.e.Delete(ctx, w.room.ID, w.ada.ID, private.Pos))
		for _, ev := range []chat.Event{edit, del} {
			if ev.To != private.To || ev.Visibility != private.Visibility {
				t.Fatalf("%s reaches To=%s Visibility=%q, the message To=%s Visibility=%q", ev.Type, ev.To, ev.Visibility, private.To, private.Visibility)
			}
		}
		outsider := chat.Member{ID: chat.ID{9}, UserID: w.outsider.ID, Role: chat.RoleClient}
		if edit.VisibleToMember(outsider) {
			t.Fatal("the edit of a private message is visible to a third member")
		}
	})
}

// TestPanicInATimerIsContained: a panic in the work of one deadline is logged and the
// scheduler goes on with the next ones.
func TestPanicInATimerIsContained(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
	e, clock := newEngine(t, storeFactories[0].Open, chat.WithTypingTTL(time.Second), chat.WithLogger(log))
	room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
	ada := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
	bob := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
	must[chat.Membership](t)(e.Join(ctx, room.ID, ada.ID, chat.JoinOptions{}))
	must[chat.Membership](t)(e.Join(ctx, room.ID, bob.ID, chat.JoinOptions{}))
	must[chat.Event](t)(e.StartTyping(ctx, room.ID, ada.ID, ""))
	clock.Advance(100 * time.Millisecond)
	must[chat.Event](t)(e.StartTyping(ctx, room.ID, bob.ID, ""))
	first := true
	chat.SetTimerHook(t, func(string) {
		if first {
			first = false
			panic("injected")
		}
	})
	clock.Advance(2 * time.Second) // ada's expiry panics; bob's still runs
	stopped := func() (users []chat.ID) {
		for _, ev := range must[[]chat.Event](t)(e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: 100})) {
			if ev.Type == chat.EventTypingStopped {
				users = append(users, ev.User)
			}
		}
		return users
	}
	if got := stopped(); len(got) != 1 || got[0] != bob.ID {
		t.Fatalf("typing stopped for %v, want bob alone (ada's expiry panicked)", got)
	}
	if !strings.Contains(logged.String(), "injected") || !strings.Contains(logged.String(), "stack") {
		t.Fatalf("the panic was not logged with its stack: %s", logged.String())
	}
	// The engine goes on: typing again expires as it should.
	must[chat.Event](t)(e.StartTyping(ctx, room.ID, bob.ID, "x"))
	clock.Advance(2 * time.Second)
	if got := stopped(); len(got) != 2 {
		t.Fatalf("typing stopped for %v after bob typed again", got)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// TestSendWithKeyIsIdempotent: a send retried with its key returns the message it sent and
// appends nothing; the key is the sender's, and it is kept by the store (so across restarts
// of a durable one).
func TestSendWithKeyIsIdempotent(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e := w.e
		first := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "once", Key: "k1"}))
		if first.Key != "k1" {
			t.Fatalf("sent %+v", first)
		}
		last := w.last(t)
		again := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "once", Key: "k1"}))
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("the retry answered another event (-first +retry):\n%s", diff)
		}
		if w.last(t) != last {
			t.Fatal("the retry appended")
		}
		// Another user's key collides rather than answering with ada's message.
		_, err := e.Send(ctx, w.room.ID, w.bob.ID, chat.NewMessage{Text: "x", Key: "k1"})
		wantErr(t, err, chat.ErrConflict)
		// The same key in another room is another message.
		other := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		must[chat.Membership](t)(e.Join(ctx, other.ID, w.ada.ID, chat.JoinOptions{}))
		if ev := must[chat.Event](t)(e.Send(ctx, other.ID, w.ada.ID, chat.NewMessage{Text: "once", Key: "k1"})); ev.RoomID != other.ID || ev.Pos != 2 {
			t.Fatalf("in another room: %+v", ev)
		}
		// Even after the sender left (the answer was lost, the client retries later).
		must[chat.Membership](t)(e.Leave(ctx, w.room.ID, w.ada.ID))
		if ev := must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "once", Key: "k1"})); ev.Pos != first.Pos {
			t.Fatalf("retry after leaving: %+v", ev)
		}
	})
}

// TestReceiptsCarryTheirPreviousWatermark: a receipt event says where the watermark moved from.
func TestReceiptsCarryTheirPreviousWatermark(t *testing.T) {
	w := newWorld(t, storeFactories[0].Open)
	for i := range 4 {
		must[chat.Event](t)(w.e.Send(ctx, w.room.ID, w.bob.ID, chat.NewMessage{Text: fmt.Sprint(i)}))
	}
	var prevs []uint64
	for _, mark := range []struct {
		read bool
		pos  uint64
	}{{false, 3}, {true, 4}, {false, 6}, {true, 6}} {
		mark := mark
		var m chat.Member
		if mark.read {
			m = must[chat.Membership](t)(w.e.MarkRead(ctx, w.room.ID, w.ada.ID, mark.pos)).Member
		} else {
			m = must[chat.Membership](t)(w.e.MarkDelivered(ctx, w.room.ID, w.ada.ID, mark.pos)).Member
		}
		ev := must[chat.Event](t)(w.e.Event(ctx, w.room.ID, m.Pos))
		prevs = append(prevs, ev.Prev)
	}
	if diff := cmp.Diff([]uint64{0, 0, 4, 4}, prevs); diff != "" {
		t.Fatalf("Prev of the receipts (-want +got):\n%s", diff)
	}
}

// TestTypingIsThrottled: previews changing faster than TypingEvery make one typing event a
// second, the latest preview winning; a message in between drops the held-back preview.
func TestTypingIsThrottled(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		w := newWorld(t, newStore)
		e, clock := w.e, w.clock
		typed := func() (texts []string) {
			for _, ev := range must[[]chat.Event](t)(e.Read(ctx, w.room.ID, chat.ReadOptions{From: 1, Limit: 1000})) {
				if ev.Type == chat.EventTypingStarted {
					texts = append(texts, ev.Text)
				}
			}
			return texts
		}
		for _, p := range []string{"h", "he", "hel", "hell"} { // within one second
			must[chat.Event](t)(e.StartTyping(ctx, w.room.ID, w.ada.ID, p))
			clock.Advance(200 * time.Millisecond)
		}
		if diff := cmp.Diff([]string{"h"}, typed()); diff != "" {
			t.Fatalf("typing events within the second (-want +got):\n%s", diff)
		}
		clock.Advance(300 * time.Millisecond) // the second is up: the latest preview shows
		if diff := cmp.Diff([]string{"h", "hell"}, typed()); diff != "" {
			t.Fatalf("typing events after the second (-want +got):\n%s", diff)
		}
		if ts := must[[]chat.Typist](t)(e.Typing(ctx, w.room.ID)); len(ts) != 1 || ts[0].Text != "hell" {
			t.Fatalf("typists: %+v", ts)
		}
		must[chat.Event](t)(e.StartTyping(ctx, w.room.ID, w.ada.ID, "hello")) // held again
		must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "hello"}))
		clock.Advance(2 * time.Second)
		if diff := cmp.Diff([]string{"h", "hell"}, typed()); diff != "" {
			t.Fatalf("a held preview showed after the message (-want +got):\n%s", diff)
		}
	})
}
