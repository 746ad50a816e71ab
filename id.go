package chat

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	cryptorand "crypto/rand"

	"github.com/oklog/ulid/v2"
)

// ID identifies a user, room, member or event. It is a ULID: 128 bits whose first 48 are the
// creation time in milliseconds and whose other 80 are random, fresh for every ID, so that
// knowing one ID tells nothing about another. IDs sort by creation time to the millisecond;
// IDs made in the same millisecond are in no particular order. It prints as a 26-character
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

// idSource makes ULIDs whose 80 random bits are fresh for every ID, so that nobody can derive
// an ID from another: IDs made in the same millisecond are not ordered among themselves (a
// monotonic ULID would be the previous one plus a small increment, which a caller who sees
// one ID could guess its neighbours from). Order within a room comes from positions, never
// from IDs. Randomness is read from crypto/rand in blocks, under a mutex, to keep the cost
// per ID small.
type idSource struct {
	rand io.Reader // crypto/rand's, unless a test sets WithEntropy
	mu   sync.Mutex
	buf  [idBlock * idEntropy]byte
	used int // bytes of buf already handed out
}

const (
	idEntropy = 10 // bytes of randomness per ID
	idBlock   = 64 // IDs per read from crypto/rand
)

func newIDSource(r io.Reader) *idSource {
	if r == nil {
		r = cryptorand.Reader
	}
	return &idSource{rand: r, used: idBlock * idEntropy}
}

func (s *idSource) New(t time.Time) ID {
	var id ID
	ms := ulid.Timestamp(t)
	id[0], id[1], id[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	id[3], id[4], id[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	s.mu.Lock()
	if s.used == len(s.buf) {
		if _, err := io.ReadFull(s.rand, s.buf[:]); err != nil {
			s.mu.Unlock()
			panic("chat: reading randomness for IDs: " + err.Error())
		}
		s.used = 0
	}
	copy(id[6:], s.buf[s.used:s.used+idEntropy])
	clear(s.buf[s.used : s.used+idEntropy]) // handed out: never kept where a later bug could leak it
	s.used += idEntropy
	s.mu.Unlock()
	return id
}

// compareID orders IDs by their bytes.
func compareID(a, b ID) int { return bytes.Compare(a[:], b[:]) }
