package bolt

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/chat"
)

// The writer keeps rooms, members and each room's last position across commits
// (writeTx.forget): a transaction that is rolled back, or a commit that fails, must leave
// nothing of what it wrote in them, even after it read its own writes (which fills them).
func TestWriterCacheForgetsLostWrites(t *testing.T) {
	errDirty := errors.New("dirty")
	errDisk := errors.New("no space left on device (injected)")
	member := chat.Member{ID: chat.ID{0x02, 1}, RoomID: testRoom.ID, UserID: chat.ID{0x03, 1},
		State: chat.Joined, Nickname: "kept", Role: chat.RoleAgent}

	// lose writes a changed member, room and event, reads them back (filling the caches)
	// and returns errDirty.
	lose := func(tx chat.Tx) error {
		changed := member
		changed.State, changed.Nickname = chat.Left, "lost"
		if err := tx.PutMember(changed); err != nil {
			return err
		}
		r := testRoom
		r.DisplayName = "lost"
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		if _, err := appendText(tx, "lost"); err != nil {
			return err
		}
		if m, err := tx.MemberByUser(testRoom.ID, member.UserID); err != nil || m.Nickname != "lost" {
			t.Errorf("in the lost transaction: MemberByUser = %+v, %v", m, err)
		}
		if r, err := tx.Room(testRoom.ID); err != nil || r.DisplayName != "lost" || r.LastPos != 3 {
			t.Errorf("in the lost transaction: Room = %+v, %v", r, err)
		}
		return errDirty
	}

	type seen struct {
		Member  chat.Member
		Display string
		LastPos uint64
		Pos     uint64 // of an event appended after
	}
	// look reads what the next transaction sees, and appends.
	look := func(got *seen) func(tx chat.Tx) error {
		return func(tx chat.Tx) (err error) {
			if got.Member, err = tx.MemberByUser(testRoom.ID, member.UserID); err != nil {
				return err
			}
			r, err := tx.Room(testRoom.ID)
			if err != nil {
				return err
			}
			got.Display, got.LastPos = r.DisplayName, r.LastPos
			ev, err := appendText(tx, "after")
			got.Pos = ev.Pos
			return err
		}
	}
	want := seen{Member: member, LastPos: 2, Pos: 3}

	tests := []struct {
		name string
		run  func(t *testing.T, s *Store, got *seen)
	}{
		{"rolled back in a batch", func(t *testing.T, s *Store, got *seen) {
			release := make(chan struct{})
			wait := hold(t, s, release) // appends "held": position 2
			var wg sync.WaitGroup
			var errLost, errLook error
			wg.Go(func() { errLost = s.Update(ctx, lose) })
			waitQueued(t, s, 1)
			wg.Go(func() { errLook = s.Update(ctx, look(got)) })
			waitQueued(t, s, 2)
			close(release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !errors.Is(errLost, errDirty) || errLook != nil {
				t.Fatalf("lost: %v, look: %v", errLost, errLook)
			}
		}},
		{"failed commit", func(t *testing.T, s *Store, got *seen) {
			if err := s.Update(ctx, func(tx chat.Tx) error { _, err := appendText(tx, "two"); return err }); err != nil {
				t.Fatal(err)
			}
			failing := true
			countCommits(s, func() error {
				if failing {
					return errDisk
				}
				return nil
			})
			err := s.Update(ctx, func(tx chat.Tx) error {
				if err := lose(tx); !errors.Is(err, errDirty) {
					return err
				}
				return nil // commit what lose wrote: the commit fails
			})
			if !errors.Is(err, errDisk) {
				t.Fatalf("Update in a failed commit: %v", err)
			}
			failing = false // the writer runs the next commit after this write
			if err := s.Update(ctx, look(got)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t, nil)
			putTestRoom(t, s)
			err := s.Update(ctx, func(tx chat.Tx) error {
				if err := tx.PutMember(member); err != nil {
					return err
				}
				_, err := appendText(tx, "one")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// Fill the caches with the committed state.
			if err := s.Update(ctx, func(tx chat.Tx) error {
				_, err := tx.MemberByUser(testRoom.ID, member.UserID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var got seen
			tt.run(t, s, &got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after the lost writes (-want +got):\n%s", diff)
			}
		})
	}
}

// The writer's MemberByUser, served from its cache across commits, answers what a read-only
// transaction (no cache) reads from the file, also after PutMember gives a record another
// user.
func TestWriterCacheMatchesFile(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	userA, userB := chat.ID{0x03, 0xa}, chat.ID{0x03, 0xb}
	m := chat.Member{ID: chat.ID{0x02, 7}, RoomID: testRoom.ID, UserID: userA, State: chat.Joined}
	type answer struct {
		Member chat.Member
		Err    string
	}
	ask := func(tx chat.ReadTx, user chat.ID) answer {
		m, err := tx.MemberByUser(testRoom.ID, user)
		a := answer{Member: m}
		if err != nil {
			a.Err = errors.Unwrap(err).Error()
		}
		return a
	}
	steps := []struct {
		name   string
		change func(tx chat.Tx) error
	}{
		{"joined", func(tx chat.Tx) error { return tx.PutMember(m) }},
		{"nickname", func(tx chat.Tx) error { c := m; c.Nickname = "n"; return tx.PutMember(c) }},
		{"other user", func(tx chat.Tx) error { c := m; c.UserID = userB; return tx.PutMember(c) }},
		{"left", func(tx chat.Tx) error { c := m; c.UserID, c.State = userB, chat.Left; return tx.PutMember(c) }},
	}
	for _, st := range steps {
		if err := s.Update(ctx, st.change); err != nil {
			t.Fatal(st.name, err)
		}
		for _, user := range []chat.ID{userA, userB} {
			var writer, reader answer
			// Twice in the writer: the second answer comes from its cache.
			for range 2 {
				if err := s.Update(ctx, func(tx chat.Tx) error { writer = ask(tx, user); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.View(ctx, func(tx chat.ReadTx) error { reader = ask(tx, user); return nil }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(reader, writer); diff != "" {
				t.Errorf("after %s, MemberByUser(%x): writer differs from the file (-file +writer):\n%s", st.name, user[:2], diff)
			}
		}
	}
}
