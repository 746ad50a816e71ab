package chat

import (
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	cryptorand "crypto/rand"

	"github.com/oklog/ulid/v2"
)

// ID identifies a user, room, member or event. It is a ULID: 128 bits whose first 48 are the
// creation time in milliseconds, so IDs sort by creation time. It prints as a 26-character
// ULID and can also be rendered and parsed in UUID form for surfaces whose wire uses UUIDs.
type ID [16]byte

// String returns the canonical 26-character ULID form of id.
func (id ID) String() string { return ulid.ULID(id).String() }

// UUID returns id in the 8-4-4-4-12 hexadecimal UUID form.
func (id ID) UUID() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// IsZero reports whether id is the zero ID, which names nothing.
func (id ID) IsZero() bool { return id == ID{} }

// Time returns the creation time encoded in id, to the millisecond.
func (id ID) Time() time.Time { return ulid.Time(ulid.ULID(id).Time()) }

// MarshalText encodes id in its ULID form.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses a ULID or UUID form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses the ULID form (26 characters) or the UUID form (36 characters, hyphenated,
// either case) of an ID. It returns an error wrapping ErrInvalid otherwise.
func ParseID(s string) (ID, error) {
	switch len(s) {
	case ulid.EncodedSize:
		u, err := ulid.ParseStrict(s)
		if err != nil {
			return ID{}, fmt.Errorf("chat: id %q: %w", s, ErrInvalid)
		}
		return ID(u), nil
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			break
		}
		var id ID
		var h [32]byte
		copy(h[0:8], s[0:8])
		copy(h[8:12], s[9:13])
		copy(h[12:16], s[14:18])
		copy(h[16:20], s[19:23])
		copy(h[20:], s[24:])
		if _, err := hex.Decode(id[:], h[:]); err != nil {
			break
		}
		return id, nil
	}
	return ID{}, fmt.Errorf("chat: id %q: %w", s, ErrInvalid)
}

// idSource makes monotonic ULIDs: IDs made in the same millisecond still sort in the order
// they were made, as with ulid.Monotonic, without allocating.
type idSource struct {
	mu      sync.Mutex
	lastMS  uint64
	entropy [10]byte // the 80 random bits of the last ID
}

func newIDSource() *idSource { return &idSource{} }

func (s *idSource) New(t time.Time) ID {
	ms := ulid.Timestamp(t)
	s.mu.Lock()
	if ms > s.lastMS || !s.increment() {
		// A new millisecond (or the clock went back, or 2^80 IDs in one): fresh randomness.
		if ms > s.lastMS {
			s.lastMS = ms
		}
		if _, err := io.ReadFull(cryptorand.Reader, s.entropy[:]); err != nil {
			panic("chat: crypto/rand failed: " + err.Error())
		}
	}
	var id ID
	ts := s.lastMS
	id[0], id[1], id[2] = byte(ts>>40), byte(ts>>32), byte(ts>>24)
	id[3], id[4], id[5] = byte(ts>>16), byte(ts>>8), byte(ts)
	copy(id[6:], s.entropy[:])
	s.mu.Unlock()
	return id
}

// increment adds one to the entropy, reporting false on overflow.
func (s *idSource) increment() bool {
	for i := len(s.entropy) - 1; i >= 0; i-- {
		s.entropy[i]++
		if s.entropy[i] != 0 {
			return true
		}
	}
	return false
}
