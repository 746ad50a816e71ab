package storagetest

import (
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

func testUsers(t *testing.T, s chat.Store) {
	alice, bob, anon := mkUser("alice", 1), mkUser("bob", 2), mkUser("", 3)
	update(t, s, func(tx chat.Tx) error {
		for _, u := range []chat.User{alice, bob, anon} {
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx chat.ReadTx) error {
		for _, u := range []chat.User{alice, bob, anon} {
			got, err := tx.User(u.ID)
			if err != nil {
				t.Errorf("User(%s): %v", u.Name, err)
			}
			diff(t, "User", u, got)
		}
		got, err := tx.UserByName("bob")
		if err != nil {
			t.Errorf("UserByName(bob): %v", err)
		}
		diff(t, "UserByName", bob, got)
		_, err = tx.UserByName("")
		wantErr(t, `UserByName("")`, err, chat.ErrNotFound)
		_, err = tx.UserByName("carol")
		wantErr(t, "UserByName(carol)", err, chat.ErrNotFound)
		_, err = tx.User(newID())
		wantErr(t, "User(unknown)", err, chat.ErrNotFound)
		all, err := tx.Users(chat.ListFilter{})
		if err != nil {
			t.Error(err)
		}
		diff(t, "Users", []chat.User{alice, bob, anon}, all)
		return nil
	})

	// A name taken by another user conflicts, and the failed transaction changes nothing.
	err := s.Update(ctx, func(tx chat.Tx) error {
		u := bob
		u.Name = "alice"
		return tx.PutUser(u)
	})
	wantErr(t, "PutUser(taken name)", err, chat.ErrConflict)
	err = s.Update(ctx, func(tx chat.Tx) error {
		u := mkUser("alice", 9)
		return tx.PutUser(u)
	})
	wantErr(t, "PutUser(new user, taken name)", err, chat.ErrConflict)

	// Replacing a user with its own name is fine; renaming frees the old name.
	alice.DisplayName = "Alice A."
	update(t, s, func(tx chat.Tx) error { return tx.PutUser(alice) })
	renamed := bob
	renamed.Name, renamed.UpdatedAt = "robert", at(50)
	update(t, s, func(tx chat.Tx) error { return tx.PutUser(renamed) })
	view(t, s, func(tx chat.ReadTx) error {
		_, err := tx.UserByName("bob")
		wantErr(t, "UserByName(old name)", err, chat.ErrNotFound)
		got, err := tx.UserByName("robert")
		if err != nil {
			t.Error(err)
		}
		diff(t, "renamed user", renamed, got)
		got, _ = tx.User(alice.ID)
		diff(t, "replaced user", alice, got)
		return nil
	})
	carol := mkUser("bob", 10) // the freed name
	update(t, s, func(tx chat.Tx) error { return tx.PutUser(carol) })
	// Removing a name frees it too.
	renamed.Name = ""
	update(t, s, func(tx chat.Tx) error { return tx.PutUser(renamed) })
	view(t, s, func(tx chat.ReadTx) error {
		_, err := tx.UserByName("robert")
		wantErr(t, "UserByName(removed name)", err, chat.ErrNotFound)
		got, err := tx.UserByName("bob")
		if err != nil {
			t.Error(err)
		}
		diff(t, "user with reused name", carol, got)
		return nil
	})
}

func testRooms(t *testing.T, s chat.Store) {
	lobby, kitchen, anon := mkRoom("lobby", 1), mkRoom("kitchen", 2), mkRoom("", 3)
	// LastPos and LastTime are the store's: PutRoom ignores them.
	lobby.LastPos, lobby.LastTime = 99, at(99)
	update(t, s, func(tx chat.Tx) error {
		for _, r := range []chat.Room{lobby, kitchen, anon} {
			if err := tx.PutRoom(r); err != nil {
				return err
			}
		}
		return nil
	})
	lobby.LastPos, lobby.LastTime = 0, time.Time{}
	view(t, s, func(tx chat.ReadTx) error {
		for _, r := range []chat.Room{lobby, kitchen, anon} {
			got, err := tx.Room(r.ID)
			if err != nil {
				t.Errorf("Room(%s): %v", r.Name, err)
			}
			diff(t, "Room", r, got)
		}
		got, err := tx.RoomByName("kitchen")
		if err != nil {
			t.Error(err)
		}
		diff(t, "RoomByName", kitchen, got)
		_, err = tx.RoomByName("")
		wantErr(t, `RoomByName("")`, err, chat.ErrNotFound)
		_, err = tx.RoomByName("cellar")
		wantErr(t, "RoomByName(unknown)", err, chat.ErrNotFound)
		_, err = tx.Room(newID())
		wantErr(t, "Room(unknown)", err, chat.ErrNotFound)
		all, err := tx.Rooms(chat.ListFilter{})
		if err != nil {
			t.Error(err)
		}
		diff(t, "Rooms", []chat.Room{lobby, kitchen, anon}, all)
		return nil
	})

	err := s.Update(ctx, func(tx chat.Tx) error {
		r := kitchen
		r.Name = "lobby"
		return tx.PutRoom(r)
	})
	wantErr(t, "PutRoom(taken name)", err, chat.ErrConflict)
	err = s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(mkRoom("lobby", 7)) })
	wantErr(t, "PutRoom(new room, taken name)", err, chat.ErrConflict)

	// Replacing a room keeps its transcript state; renaming frees the old name.
	appendN(t, s, lobby.ID, 3)
	var last time.Time
	view(t, s, func(tx chat.ReadTx) error {
		r, _ := tx.Room(lobby.ID)
		last = r.LastTime
		return nil
	})
	moved := lobby
	moved.Name, moved.DisplayName, moved.EndedAt, moved.Joins = "hall", "Hall", at(77), 5
	moved.LastPos, moved.LastTime = 1, at(1) // ignored
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(moved) })
	moved.LastPos, moved.LastTime = 3, last
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.RoomByName("hall")
		if err != nil {
			t.Error(err)
		}
		diff(t, "replaced room", moved, got)
		_, err = tx.RoomByName("lobby")
		wantErr(t, "RoomByName(old name)", err, chat.ErrNotFound)
		return nil
	})
	reuse := mkRoom("lobby", 8)
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(reuse) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.RoomByName("lobby")
		if err != nil {
			t.Error(err)
		}
		diff(t, "room with reused name", reuse, got)
		return nil
	})
}

func testListFilter(t *testing.T, s chat.Store) {
	// Ten users and ten rooms created at at(0), at(10), ... at(90).
	var users []chat.User
	var rooms []chat.Room
	update(t, s, func(tx chat.Tx) error {
		for i := range 10 {
			u := mkUser("", i*10)
			r := mkRoom("", i*10)
			users, rooms = append(users, u), append(rooms, r)
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if err := tx.PutRoom(r); err != nil {
				return err
			}
		}
		return nil
	})
	idx := func(is ...int) []int { return is }
	for _, tc := range []struct {
		name string
		f    chat.ListFilter
		want []int
	}{
		{"all", chat.ListFilter{}, idx(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"desc", chat.ListFilter{Desc: true}, idx(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"limit", chat.ListFilter{Limit: 3}, idx(0, 1, 2)},
		{"offset", chat.ListFilter{Offset: 8}, idx(8, 9)},
		{"offset past end", chat.ListFilter{Offset: 10}, nil},
		{"offset+limit", chat.ListFilter{Offset: 2, Limit: 3}, idx(2, 3, 4)},
		{"desc offset limit", chat.ListFilter{Offset: 1, Limit: 2, Desc: true}, idx(8, 7)},
		{"since inclusive", chat.ListFilter{Since: at(30)}, idx(3, 4, 5, 6, 7, 8, 9)},
		{"since between", chat.ListFilter{Since: at(31)}, idx(4, 5, 6, 7, 8, 9)},
		{"until exclusive", chat.ListFilter{Until: at(30)}, idx(0, 1, 2)},
		{"range", chat.ListFilter{Since: at(20), Until: at(50)}, idx(2, 3, 4)},
		{"range desc", chat.ListFilter{Since: at(20), Until: at(50), Desc: true}, idx(4, 3, 2)},
		{"range offset limit", chat.ListFilter{Since: at(20), Until: at(80), Offset: 1, Limit: 2}, idx(3, 4)},
		{"range desc offset limit", chat.ListFilter{Since: at(20), Until: at(80), Offset: 1, Limit: 2, Desc: true}, idx(6, 5)},
		{"empty range", chat.ListFilter{Since: at(91)}, nil},
		{"limit larger than all", chat.ListFilter{Limit: 100}, idx(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wantU []chat.User
			var wantR []chat.Room
			for _, i := range tc.want {
				wantU, wantR = append(wantU, users[i]), append(wantR, rooms[i])
			}
			view(t, s, func(tx chat.ReadTx) error {
				gotU, err := tx.Users(tc.f)
				if err != nil {
					t.Error(err)
				}
				diff(t, "Users", wantU, gotU)
				gotR, err := tx.Rooms(tc.f)
				if err != nil {
					t.Error(err)
				}
				diff(t, "Rooms", wantR, gotR)
				return nil
			})
		})
	}
}

func testMembers(t *testing.T, s chat.Store) {
	r1, r2 := putRoom(t, s, "r1", 1), putRoom(t, s, "r2", 2)
	u1, u2 := mkUser("u1", 1), mkUser("u2", 2)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u1); err != nil {
			return err
		}
		return tx.PutUser(u2)
	})
	// u1 joins r1, leaves, joins again (a new record); u2 is invited to r1; u1 is in r2.
	first := mkMember(r1.ID, u1.ID, chat.Left, 1)
	inv := mkMember(r1.ID, u2.ID, chat.Invited, 2)
	second := mkMember(r1.ID, u1.ID, chat.Joined, 3)
	other := mkMember(r2.ID, u1.ID, chat.Joined, 4)
	update(t, s, func(tx chat.Tx) error {
		for _, m := range []chat.Member{first, inv, second, other} {
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		return nil
	})
	// Updating the older record again does not make it the latest.
	first.Nickname = "renamed while left"
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(first) })
	// Moving a record through its states replaces it.
	inv.State, inv.JoinedAt, inv.JoinNumber = chat.Joined, at(40), 7
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(inv) })

	view(t, s, func(tx chat.ReadTx) error {
		for _, m := range []chat.Member{first, inv, second, other} {
			got, err := tx.MemberByID(m.RoomID, m.ID)
			if err != nil {
				t.Errorf("Member: %v", err)
			}
			diff(t, "Member", m, got)
		}
		got, err := tx.MemberByUser(r1.ID, u1.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "MemberByUser(latest record)", second, got)
		got, err = tx.MemberByUser(r1.ID, u2.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "MemberByUser", inv, got)
		_, err = tx.MemberByUser(r2.ID, u2.ID)
		wantErr(t, "MemberByUser(never a member)", err, chat.ErrNotFound)
		_, err = tx.MemberByUser(newID(), u1.ID)
		wantErr(t, "MemberByUser(unknown room)", err, chat.ErrNotFound)
		_, err = tx.MemberByID(r1.ID, other.ID)
		wantErr(t, "Member(record of another room)", err, chat.ErrNotFound)
		_, err = tx.MemberByID(newID(), first.ID)
		wantErr(t, "Member(unknown room)", err, chat.ErrNotFound)

		ms, err := tx.Members(r1.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Members", []chat.Member{first, inv, second}, ms)
		ms, err = tx.Members(r2.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Members(r2)", []chat.Member{other}, ms)
		_, err = tx.Members(newID())
		wantErr(t, "Members(unknown room)", err, chat.ErrNotFound)

		ms, err = tx.Memberships(u1.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Memberships(u1)", []chat.Member{second, other}, ms)
		ms, err = tx.Memberships(u2.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Memberships(u2)", []chat.Member{inv}, ms)
		ms, err = tx.Memberships(newID())
		if err != nil || len(ms) != 0 {
			t.Errorf("Memberships(unknown user) = %v, %v; want none, nil", ms, err)
		}
		return nil
	})

	// Memberships are in room ID order whatever the order of joining.
	r0 := putRoom(t, s, "r3", 3) // a newer ID than r1 and r2
	late := mkMember(r0.ID, u2.ID, chat.Joined, 5)
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(late) })
	mid := mkMember(r2.ID, u2.ID, chat.Joined, 6) // joined after late, in an older room
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(mid) })
	view(t, s, func(tx chat.ReadTx) error {
		ms, err := tx.Memberships(u2.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Memberships(u2) in room ID order", []chat.Member{inv, mid, late}, ms)
		return nil
	})

	err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutMember(mkMember(newID(), u1.ID, chat.Joined, 9)) })
	wantErr(t, "PutMember(unknown room)", err, chat.ErrNotFound)
}

func testDeleteUser(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	u := mkUser("gone", 1)
	m := mkMember(r.ID, u.ID, chat.Joined, 1)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutMember(m)
	})
	update(t, s, func(tx chat.Tx) error { return tx.DeleteUser(u.ID) })
	view(t, s, func(tx chat.ReadTx) error {
		_, err := tx.User(u.ID)
		wantErr(t, "User(deleted)", err, chat.ErrNotFound)
		_, err = tx.UserByName("gone")
		wantErr(t, "UserByName(deleted)", err, chat.ErrNotFound)
		us, _ := tx.Users(chat.ListFilter{})
		if len(us) != 0 {
			t.Errorf("Users after delete: %v", us)
		}
		// Membership records stay, as history.
		got, err := tx.MemberByUser(r.ID, u.ID)
		if err != nil {
			t.Errorf("MemberByUser(deleted user): %v", err)
		}
		diff(t, "member of deleted user", m, got)
		return nil
	})
	err := s.Update(ctx, func(tx chat.Tx) error { return tx.DeleteUser(u.ID) })
	wantErr(t, "DeleteUser(deleted)", err, chat.ErrNotFound)
	// The name is free again.
	update(t, s, func(tx chat.Tx) error { return tx.PutUser(mkUser("gone", 2)) })
}

func testDeleteRoom(t *testing.T, s chat.Store) {
	keep, doomed := putRoom(t, s, "keep", 1), putRoom(t, s, "doomed", 2)
	u := mkUser("u", 1)
	mk, md := mkMember(keep.ID, u.ID, chat.Joined, 1), mkMember(doomed.ID, u.ID, chat.Joined, 2)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutMember(mk); err != nil {
			return err
		}
		return tx.PutMember(md)
	})
	appendN(t, s, keep.ID, 5)
	appendN(t, s, doomed.ID, 1500)
	update(t, s, func(tx chat.Tx) error {
		if err := tx.SetRevision(doomed.ID, 1, 2); err != nil {
			return err
		}
		return tx.SetRevision(keep.ID, 1, 2)
	})
	update(t, s, func(tx chat.Tx) error { return tx.DeleteRoom(doomed.ID) })
	view(t, s, func(tx chat.ReadTx) error {
		_, err := tx.Room(doomed.ID)
		wantErr(t, "Room(deleted)", err, chat.ErrNotFound)
		_, err = tx.RoomByName("doomed")
		wantErr(t, "RoomByName(deleted)", err, chat.ErrNotFound)
		_, err = tx.Event(doomed.ID, 1)
		wantErr(t, "Event(deleted room)", err, chat.ErrNotFound)
		_, err = tx.Events(doomed.ID, 1, 10, false, nil)
		wantErr(t, "Events(deleted room)", err, chat.ErrNotFound)
		_, err = tx.Members(doomed.ID)
		wantErr(t, "Members(deleted room)", err, chat.ErrNotFound)
		_, err = tx.MemberByID(doomed.ID, md.ID)
		wantErr(t, "Member(deleted room)", err, chat.ErrNotFound)
		_, err = tx.MemberByUser(doomed.ID, u.ID)
		wantErr(t, "MemberByUser(deleted room)", err, chat.ErrNotFound)
		_, err = tx.Revision(doomed.ID, 1)
		wantErr(t, "Revision(deleted room)", err, chat.ErrNotFound)
		ms, err := tx.Memberships(u.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Memberships after DeleteRoom", []chat.Member{mk}, ms)
		rs, _ := tx.Rooms(chat.ListFilter{})
		if len(rs) != 1 || rs[0].ID != keep.ID {
			t.Errorf("Rooms after DeleteRoom: %v", rs)
		}
		// The other room is untouched.
		r, err := tx.Room(keep.ID)
		if err != nil || r.LastPos != 5 {
			t.Errorf("kept room: %+v, %v", r, err)
		}
		if rev, _ := tx.Revision(keep.ID, 1); rev != 2 {
			t.Errorf("kept room revision = %d, want 2", rev)
		}
		return nil
	})
	err := s.Update(ctx, func(tx chat.Tx) error { return tx.DeleteRoom(doomed.ID) })
	wantErr(t, "DeleteRoom(deleted)", err, chat.ErrNotFound)

	// The name is free, and a room put again under the same ID starts empty.
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(mkRoom("doomed", 3)) })
	again := doomed
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(mkRoom("", 4)) })
	again.Name = ""
	update(t, s, func(tx chat.Tx) error { return tx.PutRoom(again) })
	view(t, s, func(tx chat.ReadTx) error {
		r, err := tx.Room(again.ID)
		if err != nil || r.LastPos != 0 || !r.LastTime.IsZero() {
			t.Errorf("room put again after delete: %+v, %v; want empty transcript", r, err)
		}
		ms, err := tx.Members(again.ID)
		if err != nil || len(ms) != 0 {
			t.Errorf("Members of room put again: %v, %v", ms, err)
		}
		if rev, err := tx.Revision(again.ID, 1); err != nil || rev != 0 {
			t.Errorf("Revision of room put again = %d, %v; want 0", rev, err)
		}
		_, err = tx.MemberByUser(again.ID, u.ID)
		wantErr(t, "MemberByUser(room put again)", err, chat.ErrNotFound)
		return nil
	})
	evs := appendN(t, s, again.ID, 1)
	if evs[0].Pos != 1 {
		t.Errorf("first append to a room put again got pos %d, want 1", evs[0].Pos)
	}
}

// testLatestMember: a user's latest record is the one created last, whatever the order of
// IDs (IDs made in the same millisecond are in no order).
func testLatestMember(t *testing.T, s chat.Store) {
	r := putRoom(t, s, "r", 1)
	u := mkUser("u", 1)
	first := mkMember(r.ID, u.ID, chat.Left, 1)
	second := mkMember(r.ID, u.ID, chat.Joined, 2)
	first.ID, second.ID = second.ID, first.ID // the later record has the smaller ID
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutMember(first)
	})
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(second) })
	first.Nickname = "renamed while left" // changing the older record does not make it the latest
	update(t, s, func(tx chat.Tx) error { return tx.PutMember(first) })
	view(t, s, func(tx chat.ReadTx) error {
		got, err := tx.MemberByUser(r.ID, u.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "MemberByUser", second, got)
		ms, err := tx.Memberships(u.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Memberships", []chat.Member{second}, ms)
		ms, err = tx.Members(r.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "Members (ID order)", []chat.Member{second, first}, ms)
		return nil
	})
}
