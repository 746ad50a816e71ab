package storagetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/chat"
)

// TestComparedFields fails when the engine adds a field that Snapshot.Equal does not compare.
func TestComparedFields(t *testing.T) {
	for _, v := range []any{chat.User{}, chat.Room{}, chat.Member{}, chat.Event{}} {
		typ := reflect.TypeOf(v)
		if n := typ.NumField(); n != comparedFields[typ.Name()] {
			t.Errorf("chat.%s has %d fields, Snapshot.Equal compares %d: update dump.go (and check every Store keeps the new field)",
				typ.Name(), n, comparedFields[typ.Name()])
		}
	}
}

// TestSnapshotEqual checks the fast comparison the suite relies on against go-cmp.
func TestSnapshotEqual(t *testing.T) {
	mk := func() Snapshot {
		r := mkRoom("r", 1)
		r.LastPos, r.LastTime = 2, at(9)
		u := mkUser("u", 1)
		m := mkMember(r.ID, u.ID, chat.Joined, 1)
		return Snapshot{
			Users: []chat.User{u},
			Rooms: []RoomSnapshot{{Room: r, Members: []chat.Member{m},
				Events:    []chat.Event{mkEvent(r.ID, 1), mkEvent(r.ID, 2)},
				Revisions: map[uint64]uint64{1: 2}}},
			Memberships: [][]chat.Member{{m}},
		}
	}
	base := mk()
	// Same data in another zone, nil vs empty: equal.
	same := base.cloneWith(func(s *Snapshot) {
		s.Users[0].CreatedAt = s.Users[0].CreatedAt.In(time.FixedZone("Y", -7200))
		s.Rooms[0].Events[0].Body = []byte{}
	})
	if !base.Equal(same) || !cmp.Equal(base, same, cmpOpts) {
		t.Errorf("equal snapshots compare unequal")
	}
	for _, tc := range []struct {
		name string
		mut  func(s *Snapshot)
	}{
		{"user name", func(s *Snapshot) { s.Users[0].Name = "x" }},
		{"user attribute", func(s *Snapshot) { s.Users[0].Attributes["k"] = "x" }},
		{"user updated", func(s *Snapshot) { s.Users[0].UpdatedAt = at(99) }},
		{"extra user", func(s *Snapshot) { s.Users = append(s.Users, s.Users[0]) }},
		{"room joins", func(s *Snapshot) { s.Rooms[0].Room.Joins++ }},
		{"room last time", func(s *Snapshot) { s.Rooms[0].Room.LastTime = at(10) }},
		{"room ended", func(s *Snapshot) { s.Rooms[0].Room.EndedAt = at(10) }},
		{"room ttl", func(s *Snapshot) { s.Rooms[0].Room.EmptyTTL++ }},
		{"member read", func(s *Snapshot) { s.Rooms[0].Members[0].Read++ }},
		{"member left", func(s *Snapshot) { s.Rooms[0].Members[0].LeftAt = at(50) }},
		{"member pos", func(s *Snapshot) { s.Rooms[0].Members[0].Pos++ }},
		{"event text", func(s *Snapshot) { s.Rooms[0].Events[1].Text = "x" }},
		{"event body", func(s *Snapshot) { s.Rooms[0].Events[1].Body = []byte("{}") }},
		{"event to", func(s *Snapshot) { s.Rooms[0].Events[1].To = chat.ID{1} }},
		{"event visibility", func(s *Snapshot) { s.Rooms[0].Events[1].Visibility = chat.RoleAgent }},
		{"revision", func(s *Snapshot) { s.Rooms[0].Revisions[1] = 3 }},
		{"membership", func(s *Snapshot) { s.Memberships[0][0].Role = "x" }},
		{"no memberships", func(s *Snapshot) { s.Memberships = nil }},
	} {
		s := base.cloneWith(tc.mut)
		if base.Equal(s) {
			t.Errorf("%s: a changed snapshot compares equal", tc.name)
		}
		if cmp.Equal(base, s, cmpOpts) {
			t.Errorf("%s: go-cmp says equal: the test mutation is wrong", tc.name)
		}
	}
}

// cloneWith returns a deep copy of snap changed by mut.
func (snap Snapshot) cloneWith(mut func(*Snapshot)) Snapshot {
	var c Snapshot
	for _, u := range snap.Users {
		u.Attributes = cloneMap(u.Attributes)
		c.Users = append(c.Users, u)
	}
	for _, r := range snap.Rooms {
		r.Room.Attributes = cloneMap(r.Room.Attributes)
		r.Members = append([]chat.Member(nil), r.Members...)
		r.Events = append([]chat.Event(nil), r.Events...)
		revs := map[uint64]uint64{}
		for k, v := range r.Revisions {
			revs[k] = v
		}
		r.Revisions = revs
		c.Rooms = append(c.Rooms, r)
	}
	for _, ms := range snap.Memberships {
		c.Memberships = append(c.Memberships, append([]chat.Member(nil), ms...))
	}
	mut(&c)
	return c
}
