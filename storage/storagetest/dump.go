package storagetest

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/parley-chat/chat"
)

// Snapshot is everything a Store holds, read through chat.ReadTx in a deterministic order.
// Two Stores that went through the same operations have equal Snapshots (compare them with
// go-cmp; times compare with time.Time.Equal).
type Snapshot struct {
	// Users in ID order.
	Users []chat.User
	// Rooms in ID order, each with its members, transcript and revisions.
	Rooms []RoomSnapshot
	// Memberships is each user's Memberships, in the order of Users.
	Memberships [][]chat.Member
	// Timers are every timer, earliest first.
	Timers []chat.Timer
}

// RoomSnapshot is one room of a Snapshot.
type RoomSnapshot struct {
	// Room is the room, with LastPos and LastTime.
	Room chat.Room
	// Members are every membership record, in ID order.
	Members []chat.Member
	// Events is the whole transcript, from position 1.
	Events []chat.Event
	// Revisions maps each position that has a revision to it.
	Revisions map[uint64]uint64
}

// Dump reads everything s holds in one View.
func Dump(ctx context.Context, s chat.Store) (Snapshot, error) {
	var snap Snapshot
	err := s.View(ctx, func(tx chat.ReadTx) error {
		var err error
		if snap.Users, err = tx.Users(chat.ListFilter{}); err != nil {
			return err
		}
		for _, u := range snap.Users {
			ms, err := tx.Memberships(u.ID)
			if err != nil {
				return err
			}
			snap.Memberships = append(snap.Memberships, ms)
		}
		if snap.Timers, err = tx.Timers(time.Unix(1<<40, 0), 0); err != nil {
			return err
		}
		rooms, err := tx.Rooms(chat.ListFilter{})
		if err != nil {
			return err
		}
		for _, r := range rooms {
			rs := RoomSnapshot{Room: r}
			if rs.Members, err = tx.Members(r.ID); err != nil {
				return err
			}
			if rs.Events, err = tx.Events(r.ID, 1, int(r.LastPos)+1, false, nil); err != nil {
				return err
			}
			for _, ev := range rs.Events {
				rev, err := tx.Revision(r.ID, ev.Pos)
				if err != nil {
					return err
				}
				if rev != 0 {
					if rs.Revisions == nil {
						rs.Revisions = make(map[uint64]uint64)
					}
					rs.Revisions[ev.Pos] = rev
				}
			}
			snap.Rooms = append(snap.Rooms, rs)
		}
		return nil
	})
	return snap, err
}

// Normalize returns a copy of snap in which every ID is replaced by a canonical one: the
// millisecond time of the original (its first 6 bytes) followed by the order in which the ID
// first appears in a walk of the snapshot. Two stores driven through the same operations by
// engines with the same clock but different random ID entropy give equal normalized
// snapshots, and a mismatch still shows when an ID is used inconsistently (two records that
// share an ID in one store and not in the other).
func (snap Snapshot) Normalize() Snapshot {
	n := normalizer{m: map[chat.ID]chat.ID{}}
	var out Snapshot
	for _, u := range snap.Users {
		u.ID = n.id(u.ID)
		u.Attributes = cloneMap(u.Attributes)
		out.Users = append(out.Users, u)
	}
	for _, r := range snap.Rooms {
		var rs RoomSnapshot
		rs.Room = r.Room
		rs.Room.ID = n.id(r.Room.ID)
		rs.Room.Attributes = cloneMap(r.Room.Attributes)
		for _, m := range r.Members {
			rs.Members = append(rs.Members, n.member(m))
		}
		for _, ev := range r.Events {
			ev.RoomID, ev.ID, ev.From, ev.User, ev.To = n.id(ev.RoomID), n.id(ev.ID), n.id(ev.From), n.id(ev.User), n.id(ev.To)
			rs.Events = append(rs.Events, ev)
		}
		rs.Revisions = r.Revisions
		out.Rooms = append(out.Rooms, rs)
	}
	for _, ms := range snap.Memberships {
		var nms []chat.Member
		for _, m := range ms {
			nms = append(nms, n.member(m))
		}
		out.Memberships = append(out.Memberships, nms)
	}
	for _, tm := range snap.Timers {
		tm.Room, tm.Member = n.id(tm.Room), n.id(tm.Member)
		out.Timers = append(out.Timers, tm)
	}
	return out
}

type normalizer struct {
	m    map[chat.ID]chat.ID
	next uint64
}

func (n *normalizer) id(id chat.ID) chat.ID {
	if id.IsZero() {
		return id
	}
	if c, ok := n.m[id]; ok {
		return c
	}
	n.next++
	var c chat.ID
	copy(c[:6], id[:6])
	binary.BigEndian.PutUint64(c[8:], n.next)
	n.m[id] = c
	return c
}

func (n *normalizer) member(m chat.Member) chat.Member {
	m.ID, m.RoomID, m.UserID, m.InvitedBy = n.id(m.ID), n.id(m.RoomID), n.id(m.UserID), n.id(m.InvitedBy)
	return m
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Equal reports whether a and b hold the same data: what go-cmp with cmpopts.EquateEmpty
// would say, much faster on big transcripts (times compare as instants, nil and empty maps
// and bodies alike).
func (snap Snapshot) Equal(other Snapshot) bool {
	return sliceEqual(snap.Users, other.Users, userEqual) &&
		sliceEqual(snap.Timers, other.Timers, timerEqual) &&
		sliceEqual(snap.Rooms, other.Rooms, roomSnapEqual) &&
		len(snap.Memberships) == len(other.Memberships) &&
		func() bool {
			for i := range snap.Memberships {
				if !sliceEqual(snap.Memberships[i], other.Memberships[i], memberEqual) {
					return false
				}
			}
			return true
		}()
}

func sliceEqual[T any](a, b []T, eq func(a, b *T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !eq(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

func mapEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func userEqual(a, b *chat.User) bool {
	return a.ID == b.ID && a.Name == b.Name && a.DisplayName == b.DisplayName && a.Email == b.Email &&
		a.AvatarURL == b.AvatarURL && mapEqual(a.Attributes, b.Attributes) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func roomEqual(a, b *chat.Room) bool {
	return a.ID == b.ID && a.Name == b.Name && a.DisplayName == b.DisplayName && a.ImageURL == b.ImageURL &&
		a.Private == b.Private && mapEqual(a.Attributes, b.Attributes) && a.EmptyTTL == b.EmptyTTL &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && a.EndedAt.Equal(b.EndedAt) &&
		a.Joins == b.Joins && a.LastPos == b.LastPos && a.LastTime.Equal(b.LastTime) && a.Idle == b.Idle
}

func memberEqual(a, b *chat.Member) bool {
	return a.ID == b.ID && a.RoomID == b.RoomID && a.UserID == b.UserID && a.State == b.State &&
		a.Nickname == b.Nickname && a.Role == b.Role && a.JoinNumber == b.JoinNumber &&
		a.Delivered == b.Delivered && a.Read == b.Read && a.InvitedBy == b.InvitedBy &&
		a.InvitedAt.Equal(b.InvitedAt) && a.JoinedAt.Equal(b.JoinedAt) && a.LeftAt.Equal(b.LeftAt) &&
		a.Pos == b.Pos && a.TypingUntil.Equal(b.TypingUntil) && a.TypingText == b.TypingText
}

// comparedFields is how many fields the comparisons above know of each type; a test fails
// when the engine adds one, so that they (and every Store's encoding) are updated.
var comparedFields = map[string]int{"User": 8, "Room": 14, "Member": 16, "Event": 15}

func eventEqual(a, b *chat.Event) bool {
	return a.RoomID == b.RoomID && a.Pos == b.Pos && a.ID == b.ID && a.Type == b.Type && a.Name == b.Name &&
		a.From == b.From && a.User == b.User && a.To == b.To && a.Text == b.Text &&
		string(a.Body) == string(b.Body) && a.Ref == b.Ref && a.Visibility == b.Visibility && a.Time.Equal(b.Time) &&
		a.Key == b.Key && a.Prev == b.Prev
}

func roomSnapEqual(a, b *RoomSnapshot) bool {
	return roomEqual(&a.Room, &b.Room) && sliceEqual(a.Members, b.Members, memberEqual) &&
		sliceEqual(a.Events, b.Events, eventEqual) && mapEqual(a.Revisions, b.Revisions)
}

func timerEqual(a, b *chat.Timer) bool {
	return a.Kind == b.Kind && a.Room == b.Room && a.Member == b.Member && a.At.Equal(b.At)
}
