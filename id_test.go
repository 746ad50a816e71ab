package chat_test

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/parley-chat/chat"
)

func TestParseID(t *testing.T) {
	id := chat.ID{0x01, 0x8f, 0x3a, 0x2b, 0x4c, 0x5d, 0x6e, 0x7f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7}
	cases := []struct {
		in   string
		want chat.ID
		ok   bool
	}{
		{id.String(), id, true},
		{id.UUID(), id, true},
		{strings.ToUpper(id.UUID()), id, true},
		{strings.ToLower(id.String()), id, true},
		{"018f3a2b-4c5d-6e7f-8091-a2b3c4d5e6f7", id, true},
		{"", chat.ID{}, false},
		{"018f3a2b4c5d6e7f8091a2b3c4d5e6f7", chat.ID{}, false},         // UUID without hyphens
		{"018f3a2b-4c5d-6e7f-8091a-2b3c4d5e6f7", chat.ID{}, false},     // hyphen misplaced
		{"018f3a2b-4c5d-6e7f-8091-a2b3c4d5e6fg", chat.ID{}, false},     // not hex
		{"8ZZZZZZZZZZZZZZZZZZZZZZZZZ", chat.ID{}, false},               // ULID overflow
		{"01ARZ3NDEKTSV4RRFFQ69G5FA!", chat.ID{}, false},               // not base32
		{"CON-018f3a2b-4c5d-6e7f-8091-a2b3c4d5e6f7", chat.ID{}, false}, // surface prefixes are the surfaces'
	}
	for _, c := range cases {
		got, err := chat.ParseID(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("ParseID(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if !c.ok {
			wantErr(t, err, chat.ErrInvalid)
		}
	}
	if got := id.UUID(); got != "018f3a2b-4c5d-6e7f-8091-a2b3c4d5e6f7" {
		t.Errorf("UUID() = %s", got)
	}
}

// TestIDRoundTrip: both text forms parse back to the same ID, and IDs sort by creation time.
func TestIDRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var id chat.ID
		copy(id[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "bytes"))
		id[0] &= 0x7f // a ULID's first character is at most 7
		for _, s := range []string{id.String(), id.UUID()} {
			back, err := chat.ParseID(s)
			if err != nil || back != id {
				t.Fatalf("%q parsed to %v, %v; want %v", s, back, err, id)
			}
		}
		var text chat.ID
		if err := text.UnmarshalText([]byte(id.String())); err != nil || text != id {
			t.Fatalf("UnmarshalText: %v %v", text, err)
		}
	})
}

// TestIDsAreMonotonic: IDs the engine makes sort in the order they were made, also within one
// millisecond (the users below are made in far less).
func TestIDsAreMonotonic(t *testing.T) {
	e, _ := newEngine(t, storeFactories[0].Open) // the fake clock stands still: one millisecond
	var prev chat.ID
	for i := 0; i < 1000; i++ {
		u := must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
		if compareIDs(u.ID, prev) <= 0 {
			t.Fatalf("ID %d %s does not sort after %s", i, u.ID, prev)
		}
		if !u.ID.Time().Equal(epoch.Truncate(time.Millisecond)) {
			t.Fatalf("ID time %v, want %v", u.ID.Time(), epoch)
		}
		prev = u.ID
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "018f3a2b-4c5d-6e7f-8091-a2b3c4d5e6f7", "", "--------------------------------", "zzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := chat.ParseID(s)
		if err != nil {
			return
		}
		// Whatever parses renders to a form that parses back to the same ID.
		for _, r := range []string{id.String(), id.UUID()} {
			if back, err := chat.ParseID(r); err != nil || back != id {
				t.Fatalf("%q → %v → %q → %v, %v", s, id, r, back, err)
			}
		}
	})
}
