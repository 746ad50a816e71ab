package bolt

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/parley-chat/chat"
)

// Records are encoded with encoding/binary: varints for numbers and times (µs since the Unix
// epoch, so a zero time.Time round-trips as zero), length-prefixed strings, raw 16-byte IDs.
// An event starts with its time as 8 fixed bytes so that a room's LastTime is read without
// decoding the rest. Positions are 8-byte big-endian keys.

// errCorrupt reports a record that does not decode: the file is damaged (bbolt keeps no
// checksum of values, so a damaged record is found only if it no longer decodes).
var errCorrupt = fmt.Errorf("bolt store: a record does not decode (%w)", ErrCorrupt)

func posKey(b []byte, pos uint64) []byte { return binary.BigEndian.AppendUint64(b, pos) }

func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, t.UnixMicro()) }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAttrs(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for k, v := range m {
		b = appendStr(b, k)
		b = appendStr(b, v)
	}
	return b
}

// decoder reads a record; the first error sticks and later reads return zero values.
type decoder struct {
	b   []byte
	err error
	// own says b is a private copy, never written again: strings and bodies point into it
	// instead of being copied one by one.
	own bool
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time { return microTime(d.varint()) }

func microTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	b := d.bytes()
	if d.own && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) id() (id chat.ID) {
	if len(d.b) < len(id) {
		d.fail()
		return id
	}
	copy(id[:], d.b)
	d.b = d.b[len(id):]
	return id
}

func (d *decoder) attrs() map[string]string {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) { // every entry takes at least two bytes
		d.fail()
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// done reports a decoding error, or bytes left over, naming the record with what(); what is
// called only on error, so that decoding allocates nothing for the message.
func (d *decoder) done(what func() string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return fmt.Errorf("%w: %s", d.err, what())
	}
	return nil
}

// User: createdAt first, so that list filters read it alone.
func appendUser(b []byte, u *chat.User) []byte {
	b = appendTime(b, u.CreatedAt)
	b = appendTime(b, u.UpdatedAt)
	b = appendStr(b, u.Name)
	b = appendStr(b, u.DisplayName)
	b = appendStr(b, u.Email)
	b = appendStr(b, u.AvatarURL)
	return appendAttrs(b, u.Attributes)
}

func decodeUser(id chat.ID, v []byte) (chat.User, error) {
	d := decoder{b: v}
	u := chat.User{ID: id, CreatedAt: d.time(), UpdatedAt: d.time(), Name: d.str(), DisplayName: d.str(),
		Email: d.str(), AvatarURL: d.str(), Attributes: d.attrs()}
	return u, d.done(func() string { return "user " + id.String() })
}

// userName reads only the name of an encoded user.
func userName(v []byte) string {
	d := decoder{b: v}
	d.varint()
	d.varint()
	return d.str()
}

// createdAt reads the creation time that starts an encoded user or room.
func createdAt(v []byte) time.Time {
	d := decoder{b: v}
	return d.time()
}

// Room: its own fields; LastPos and LastTime come from its transcript.
func appendRoom(b []byte, r *chat.Room) []byte {
	b = appendTime(b, r.CreatedAt)
	b = appendTime(b, r.UpdatedAt)
	b = appendTime(b, r.EndedAt)
	b = appendStr(b, r.Name)
	b = appendStr(b, r.DisplayName)
	b = appendStr(b, r.ImageURL)
	var private byte
	if r.Private {
		private = 1
	}
	b = append(b, private)
	b = binary.AppendVarint(b, int64(r.EmptyTTL))
	b = binary.AppendUvarint(b, r.Joins)
	b = appendAttrs(b, r.Attributes)
	if r.Idle != (chat.IdleControl{}) { // came later: most rooms have none
		b = binary.AppendVarint(b, int64(r.Idle.Warn))
		b = binary.AppendVarint(b, int64(r.Idle.Close))
		b = appendStr(b, r.Idle.WarnText)
		b = appendStr(b, r.Idle.CloseText)
	}
	return b
}

func decodeRoom(id chat.ID, v []byte) (chat.Room, error) {
	d := decoder{b: v}
	r := chat.Room{ID: id, CreatedAt: d.time(), UpdatedAt: d.time(), EndedAt: d.time(), Name: d.str(),
		DisplayName: d.str(), ImageURL: d.str(), Private: d.byte() == 1, EmptyTTL: time.Duration(d.varint()),
		Joins: d.uvarint(), Attributes: d.attrs()}
	if len(d.b) > 0 && d.err == nil {
		r.Idle = chat.IdleControl{Warn: time.Duration(d.varint()), Close: time.Duration(d.varint()),
			WarnText: d.str(), CloseText: d.str()}
	}
	return r, d.done(func() string { return "room " + id.String() })
}

func roomName(v []byte) string {
	d := decoder{b: v}
	d.varint()
	d.varint()
	d.varint()
	return d.str()
}

// Member: keyed by its ID in its room's member bucket.
func appendMember(b []byte, m *chat.Member) []byte {
	b = append(b, m.UserID[:]...)
	b = append(b, byte(m.State))
	b = appendStr(b, m.Nickname)
	b = appendStr(b, string(m.Role))
	b = binary.AppendUvarint(b, m.JoinNumber)
	b = binary.AppendUvarint(b, m.Delivered)
	b = binary.AppendUvarint(b, m.Read)
	b = append(b, m.InvitedBy[:]...)
	b = appendTime(b, m.InvitedAt)
	b = appendTime(b, m.JoinedAt)
	b = appendTime(b, m.LeftAt)
	b = binary.AppendUvarint(b, m.Pos)
	b = appendTime(b, m.TypingUntil)
	return appendStr(b, m.TypingText)
}

func decodeMember(roomID, id chat.ID, v []byte) (chat.Member, error) {
	d := decoder{b: v}
	m := chat.Member{ID: id, RoomID: roomID, UserID: d.id(), State: chat.MemberState(d.byte()),
		Nickname: d.str(), Role: role(d.bytes()), JoinNumber: d.uvarint(), Delivered: d.uvarint(),
		Read: d.uvarint(), InvitedBy: d.id(), InvitedAt: d.time(), JoinedAt: d.time(), LeftAt: d.time()}
	if len(d.b) > 0 && d.err == nil { // Pos came later: older records end before it
		m.Pos = d.uvarint()
	}
	if len(d.b) > 0 && d.err == nil { // and typing later still
		m.TypingUntil = d.time()
		m.TypingText = d.str()
	}
	return m, d.done(func() string { return "member " + id.String() })
}

// Event flags say which optional IDs follow.
const (
	hasFrom = 1 << iota
	hasUser
	hasTo
)

func appendEvent(b []byte, ev *chat.Event) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixMicro()))
	b = append(b, ev.ID[:]...)
	var flags byte
	if !ev.From.IsZero() {
		flags |= hasFrom
	}
	if !ev.User.IsZero() {
		flags |= hasUser
	}
	if !ev.To.IsZero() {
		flags |= hasTo
	}
	b = append(b, flags)
	if flags&hasFrom != 0 {
		b = append(b, ev.From[:]...)
	}
	if flags&hasUser != 0 {
		b = append(b, ev.User[:]...)
	}
	if flags&hasTo != 0 {
		b = append(b, ev.To[:]...)
	}
	b = appendStr(b, string(ev.Type))
	b = appendStr(b, ev.Name)
	b = appendStr(b, ev.Text)
	b = binary.AppendUvarint(b, uint64(len(ev.Body)))
	b = append(b, ev.Body...)
	b = binary.AppendUvarint(b, ev.Ref)
	b = appendStr(b, string(ev.Visibility))
	if ev.Key != "" || ev.Prev != 0 { // came later: most events have neither
		b = appendStr(b, ev.Key)
		b = binary.AppendUvarint(b, ev.Prev)
	}
	return b
}

// eventTime reads the time that starts an encoded event.
func eventTime(v []byte) time.Time {
	if len(v) < 8 {
		return time.Time{}
	}
	return microTime(int64(binary.BigEndian.Uint64(v)))
}

// decodeEvent decodes an event; if own is set, v is a private copy that the event's strings
// and body may point into.
func decodeEvent(dst *chat.Event, roomID chat.ID, pos uint64, v []byte, own bool) error {
	if len(v) < 8 {
		return fmt.Errorf("%w: event %d", errCorrupt, pos)
	}
	// Decode into a local and store it once: one bulk write barrier instead of one per field.
	d := decoder{b: v[8:], own: own}
	ev := chat.Event{RoomID: roomID, Pos: pos, Time: eventTime(v), ID: d.id()}
	flags := d.byte()
	if flags&hasFrom != 0 {
		ev.From = d.id()
	}
	if flags&hasUser != 0 {
		ev.User = d.id()
	}
	if flags&hasTo != 0 {
		ev.To = d.id()
	}
	ev.Type = eventType(d.bytes())
	ev.Name = d.str()
	ev.Text = d.str()
	if body := d.bytes(); len(body) > 0 {
		if !own {
			body = append([]byte(nil), body...)
		}
		ev.Body = body
	}
	ev.Ref = d.uvarint()
	ev.Visibility = role(d.bytes())
	if len(d.b) > 0 && d.err == nil {
		ev.Key = d.str()
		ev.Prev = d.uvarint()
	}
	if d.err != nil || len(d.b) != 0 {
		return d.done(func() string { return fmt.Sprintf("event %d of room %s", pos, roomID) })
	}
	*dst = ev
	return nil
}

// eventType and role return the engine's constants for the common values without allocating.
func eventType(b []byte) chat.EventType {
	switch chat.EventType(b) {
	case chat.EventMessage:
		return chat.EventMessage
	case chat.EventJoined:
		return chat.EventJoined
	case chat.EventLeft:
		return chat.EventLeft
	case chat.EventInvited:
		return chat.EventInvited
	case chat.EventEdit:
		return chat.EventEdit
	case chat.EventDelete:
		return chat.EventDelete
	case chat.EventTypingStarted:
		return chat.EventTypingStarted
	case chat.EventTypingStopped:
		return chat.EventTypingStopped
	case chat.EventNickname:
		return chat.EventNickname
	case chat.EventDelivered:
		return chat.EventDelivered
	case chat.EventRead:
		return chat.EventRead
	case chat.EventNotice:
		return chat.EventNotice
	case chat.EventCustom:
		return chat.EventCustom
	case chat.EventEnded:
		return chat.EventEnded
	}
	return chat.EventType(b)
}

func role(b []byte) chat.Role {
	switch chat.Role(b) {
	case "":
		return ""
	case chat.RoleClient:
		return chat.RoleClient
	case chat.RoleAgent:
		return chat.RoleAgent
	case chat.RoleOperator:
		return chat.RoleOperator
	case chat.RoleBot:
		return chat.RoleBot
	case chat.RoleSystem:
		return chat.RoleSystem
	}
	return chat.Role(b)
}

// Timers: bTimers maps room ID + kind + 0 + member ID to the time (8 bytes, µs since the
// epoch, big-endian); bTimersByTime maps time + kind + 0 + room ID + member ID to nothing, in
// the order Timers lists them.
func timerKey(kind chat.TimerKind, room, member chat.ID) []byte {
	b := make([]byte, 0, 16+len(kind)+1+16)
	b = append(b, room[:]...)
	b = append(b, kind...)
	b = append(b, 0)
	return append(b, member[:]...)
}

func timerTimeKey(t chat.Timer) []byte {
	b := make([]byte, 0, 8+len(t.Kind)+1+32)
	b = binary.BigEndian.AppendUint64(b, uint64(t.At.UnixMicro()))
	b = append(b, t.Kind...)
	b = append(b, 0)
	b = append(b, t.Room[:]...)
	return append(b, t.Member[:]...)
}

func decodeTimerTimeKey(k []byte) (chat.Timer, error) {
	if len(k) < 8+1+32 {
		return chat.Timer{}, fmt.Errorf("%w: timer key %x", errCorrupt, k)
	}
	kindEnd := len(k) - 32 - 1
	if k[kindEnd] != 0 {
		return chat.Timer{}, fmt.Errorf("%w: timer key %x", errCorrupt, k)
	}
	return chat.Timer{
		At:     microTime(int64(binary.BigEndian.Uint64(k))),
		Kind:   chat.TimerKind(k[8:kindEnd]),
		Room:   chat.ID(k[kindEnd+1 : kindEnd+17]),
		Member: chat.ID(k[kindEnd+17:]),
	}, nil
}
