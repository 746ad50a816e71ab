package bolt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

var fuzzTime = time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)

// FuzzDecodeEvent feeds arbitrary bytes to the event decoder (a corrupt file must give an
// error, never a panic) and checks that what decodes re-encodes to the same bytes.
func FuzzDecodeEvent(f *testing.F) {
	for _, ev := range []chat.Event{
		{},
		{ID: chat.ID{1}, Type: chat.EventMessage, From: chat.ID{2}, User: chat.ID{3}, Text: "hello", Time: fuzzTime},
		{Type: chat.EventCustom, Name: "x", To: chat.ID{9}, Body: json.RawMessage(`{"a":1}`), Ref: 7, Visibility: chat.RoleAgent, Time: fuzzTime},
		{Type: "free.type", Visibility: "free-role", Text: "é"},
	} {
		f.Add(appendEvent(nil, &ev))
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev chat.Event
		for _, own := range []bool{false, true} {
			if err := decodeEvent(&ev, chat.ID{}, 1, append([]byte(nil), b...), own); err != nil {
				return
			}
		}
		if again := appendEvent(nil, &ev); string(again) != string(b) {
			// Varints have several encodings: compare what they decode to.
			var ev2 chat.Event
			if err := decodeEvent(&ev2, chat.ID{}, 1, again, false); err != nil {
				t.Fatalf("re-encoded event does not decode: %v", err)
			}
			if d := cmp.Diff(ev, ev2, cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("round trip changed the event:\n%s", d)
			}
		}
	})
}

// FuzzDecodeRecords does the same for users, rooms and members.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(appendUser(nil, &chat.User{Name: "ann", Attributes: map[string]string{"k": "v"}, CreatedAt: fuzzTime}))
	f.Add(appendRoom(nil, &chat.Room{Name: "r", Private: true, EmptyTTL: time.Hour, Joins: 3, CreatedAt: fuzzTime}))
	f.Add(appendMember(nil, &chat.Member{UserID: chat.ID{1}, State: chat.Joined, Role: chat.RoleClient, JoinedAt: fuzzTime}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, err := decodeUser(chat.ID{}, b); err == nil {
			u2, err := decodeUser(chat.ID{}, appendUser(nil, &u))
			if err != nil || !cmp.Equal(u, u2, cmpopts.EquateEmpty()) {
				t.Fatalf("user round trip: %+v → %+v, %v", u, u2, err)
			}
		}
		if r, err := decodeRoom(chat.ID{}, b); err == nil {
			r2, err := decodeRoom(chat.ID{}, appendRoom(nil, &r))
			if err != nil || !cmp.Equal(r, r2, cmpopts.EquateEmpty()) {
				t.Fatalf("room round trip: %+v → %+v, %v", r, r2, err)
			}
		}
		if m, err := decodeMember(chat.ID{}, chat.ID{}, b); err == nil {
			m2, err := decodeMember(chat.ID{}, chat.ID{}, appendMember(nil, &m))
			if err != nil || !cmp.Equal(m, m2) {
				t.Fatalf("member round trip: %+v → %+v, %v", m, m2, err)
			}
		}
		_ = userName(b)
		_ = roomName(b)
		_ = createdAt(b)
		_ = eventTime(b)
	})
}

// FuzzWalkPages feeds damaged store files to the page walk that Open runs before anything
// maps the file. It must never panic; and a file it passes must be safe for bbolt: opening
// it, its Tx.Check (which then must find nothing either) and reading every bucket and key
// must not fault or panic (a fault would end the fuzzing process).
func FuzzWalkPages(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	for i, events := range []int{0, 20, 80} { // the last room takes leaf pages of its own
		room := chat.Room{ID: chat.ID{0x06, byte(i)}, Name: fmt.Sprint("r", i)}
		err := s.Update(ctx, func(tx chat.Tx) error {
			if err := tx.PutRoom(room); err != nil {
				return err
			}
			for j := range events {
				ev := chat.Event{RoomID: room.ID, Type: chat.EventMessage, Text: strings.Repeat("x", 50+j)}
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			return tx.PutMember(chat.Member{ID: chat.ID{0x08, byte(i)}, RoomID: room.ID, UserID: chat.ID{0x05, byte(i)}})
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		found, err := walkPages(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil || len(found) > 0 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bbolt.Open(p, 0, &bbolt.Options{ReadOnly: true})
		if err != nil {
			return
		}
		defer db.Close()
		err = db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				return fmt.Errorf("the walk passed the file, bbolt's check did not: %w", err)
			}
			var walk func(b *bbolt.Bucket) error
			walk = func(b *bbolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						return walk(b.Bucket(k))
					}
					return nil
				})
			}
			return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walk(b) })
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
