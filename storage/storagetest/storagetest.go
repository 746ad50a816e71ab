// Package storagetest is the conformance suite for chat.Store implementations, in the spirit
// of testing/fstest.TestFS: an adapter's tests call Run with a factory and get one subtest
// per behaviour of the Store contract (every method of chat.Store, chat.ReadTx and chat.Tx,
// their documented errors, atomicity, AfterCommit ordering, transcript semantics, ownership
// of returned values and concurrency).
//
// Dump and Snapshot.Normalize read a whole store into a comparable value, so that tests can
// check that two stores driven through the same operations hold the same data.
package storagetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parley-chat/chat"
)

// Run runs the conformance suite against stores made by newStore, one subtest per behaviour.
// newStore must return a new, empty, open Store each time it is called; Run closes every
// store it gets (a factory may also close it in t.Cleanup and ignore the ErrClosed it then
// gets). Stores must keep times to the microsecond; the suite uses UTC times at µs precision
// for every record. The suite takes a few seconds and calls Update some thousands of times: a
// durable store may want to turn fsync off for it and test durability separately.
func Run(t *testing.T, newStore func(t *testing.T) chat.Store) {
	t.Helper()
	open := func(t *testing.T) chat.Store {
		t.Helper()
		s := newStore(t)
		if s == nil {
			t.Fatal("newStore returned nil")
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		snap, err := Dump(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Users)+len(snap.Rooms) != 0 {
			t.Fatalf("new store is not empty: %d users, %d rooms", len(snap.Users), len(snap.Rooms))
		}
	})
}

var tests = []struct {
	name string
	fn   func(t *testing.T, s chat.Store)
}{
	{"RoundTrip", testRoundTrip},
	{"Users", testUsers},
	{"Rooms", testRooms},
	{"ListFilter", testListFilter},
	{"Members", testMembers},
	{"LatestMember", testLatestMember},
	{"Append", testAppend},
	{"AppendTimes", testAppendTimes},
	{"Event", testEvent},
	{"Events", testEvents},
	{"Revisions", testRevisions},
	{"EventByKey", testEventByKey},
	{"Timers", testTimers},
	{"DeleteRoom", testDeleteRoom},
	{"DeleteUser", testDeleteUser},
	{"ReadYourWrites", testReadYourWrites},
	{"Atomicity", testAtomicity},
	{"AtomicDeletes", testAtomicDeletes},
	{"AfterCommit", testAfterCommit},
	{"ErrorsPassThrough", testErrorsPassThrough},
	{"Context", testContext},
	{"Closed", testClosed},
	{"Ownership", testOwnership},
	{"LargeValues", testLargeValues},
	{"ConcurrentAppends", testConcurrentAppends},
	{"ConcurrentViews", testConcurrentViews},
}

// ---- fixtures ----

var idCounter atomic.Uint64

// base is the time the suite's IDs and records start at.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newID returns a fresh ID greater than every ID made before it (its time part is base + n ms).
func newID() chat.ID {
	n := idCounter.Add(1)
	var id chat.ID
	ms := uint64(base.UnixMilli()) + n
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// at returns base + n µs.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Microsecond) }

var ctx = context.Background()

var errBoom = errors.New("storagetest: boom")

func update(t *testing.T, s chat.Store, fn func(tx chat.Tx) error) {
	t.Helper()
	if err := s.Update(ctx, fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s chat.Store, fn func(tx chat.ReadTx) error) {
	t.Helper()
	if err := s.View(ctx, fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func mkUser(name string, n int) chat.User {
	return chat.User{ID: newID(), Name: name, DisplayName: "User " + name, Email: name + "@example.com",
		AvatarURL: "https://example.com/" + name, Attributes: map[string]string{"k": name},
		CreatedAt: at(n), UpdatedAt: at(n + 1)}
}

func mkRoom(name string, n int) chat.Room {
	return chat.Room{ID: newID(), Name: name, DisplayName: "Room " + name, ImageURL: "https://example.com/r/" + name,
		Private: n%2 == 1, Attributes: map[string]string{"a": "b", "name": name}, EmptyTTL: time.Duration(n) * time.Second,
		CreatedAt: at(n), UpdatedAt: at(n + 1), Joins: uint64(n)}
}

func mkMember(room, user chat.ID, state chat.MemberState, n int) chat.Member {
	m := chat.Member{ID: newID(), RoomID: room, UserID: user, State: state, Nickname: fmt.Sprintf("nick%d", n),
		Role: chat.RoleAgent, JoinNumber: uint64(n), Delivered: uint64(n + 1), Read: uint64(n), InvitedBy: newID(),
		InvitedAt: at(n), JoinedAt: at(n + 1)}
	if state == chat.Left {
		m.LeftAt = at(n + 2)
	}
	return m
}

func mkEvent(room chat.ID, n int) chat.Event {
	return chat.Event{RoomID: room, ID: newID(), Type: chat.EventMessage, From: newID(), User: newID(),
		Text: fmt.Sprintf("message %d", n), Time: at(1000 + n)}
}

// putRoom stores a new room and returns it.
func putRoom(t *testing.T, s chat.Store, name string, n int) chat.Room {
	t.Helper()
	r := mkRoom(name, n)
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(r) })
	return r
}

// appendN appends n messages to room and returns them as stored.
func appendN(t *testing.T, s chat.Store, room chat.ID, n int) []chat.Event {
	t.Helper()
	var out []chat.Event
	const perTx = 500
	for done := 0; done < n; {
		k := min(perTx, n-done)
		var batch []chat.Event
		update(t, s, func(tx chat.Tx) error {
			batch = batch[:0]
			for i := range k {
				ev := mkEvent(room, done+i)
				if err := tx.Append(&ev); err != nil {
					return err
				}
				batch = append(batch, ev)
			}
			return nil
		})
		out = append(out, batch...)
		done += k
	}
	return out
}

// cmpOpts compare store values: times by instant, empty and nil maps and bodies alike.
var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	// go-cmp is slow on long transcripts (more so under -race): check the big values with
	// the hand-written comparisons first and let go-cmp explain a difference.
	switch w := want.(type) {
	case []chat.Event:
		if g, ok := got.([]chat.Event); ok && sliceEqual(w, g, eventEqual) {
			return
		}
	case Snapshot:
		if g, ok := got.(Snapshot); ok && w.Equal(g) {
			return
		}
	}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}
