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

// TestIDNeighboursAreUnpredictable: IDs made in the same millisecond (the fake clock stands
// still) share their time and nothing else. The difference of consecutive IDs, which a
// monotonic ULID makes small and guessable, carries at least 64 bits of entropy: over 100k
// IDs, every one of its 80 bits is set in about half of the differences, and no difference
// repeats.
func TestIDNeighboursAreUnpredictable(t *testing.T) {
	e, _ := newEngine(t, storeFactories[0].Open)
	ids := chat.NewIDs(e, 100_000)
	ms := epoch.Truncate(time.Millisecond)
	seen := make(map[[10]byte]bool, len(ids))
	var ones [80]int
	for i, id := range ids {
		if !id.Time().Equal(ms) {
			t.Fatalf("ID %d time %v, want %v", i, id.Time(), ms)
		}
		if i == 0 {
			continue
		}
		d := sub80(id, ids[i-1])
		if seen[d] {
			t.Fatalf("the difference %x of IDs %d and %d came before", d, i-1, i)
		}
		seen[d] = true
		for b := range 80 {
			if d[b/8]>>(7-b%8)&1 == 1 {
				ones[b]++
			}
		}
	}
	// A fair bit is set in n/2 ± 5σ of n differences (σ = √n/2 ≈ 158).
	n := len(ids) - 1
	for b, c := range ones {
		if c < n/2-800 || c > n/2+800 {
			t.Errorf("bit %d of the differences is set %d times in %d: not random", b, c, n)
		}
	}
	// The top 16 bits of a small increment would be all zero: the entropy of a difference is
	// spread over all 80 bits, so at least 64 of them.
}

// sub80 returns the random parts of a and b subtracted, modulo 2^80.
func sub80(a, b chat.ID) [10]byte {
	var d [10]byte
	borrow := 0
	for i := 9; i >= 0; i-- {
		v := int(a[6+i]) - int(b[6+i]) - borrow
		borrow = 0
		if v < 0 {
			v += 256
			borrow = 1
		}
		d[i] = byte(v)
	}
	return d
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
