package storagetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// fill sets every field of the struct v points to a distinct non-zero value, by reflection,
// so that a field the engine adds and a Store forgets to keep shows up in testRoundTrip.
func fill(v any, n *int) {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		*n++
		switch x := f.Addr().Interface().(type) {
		case *chat.ID:
			*x = newID()
		case *time.Time:
			*x = at(*n * 1000)
		case *time.Duration:
			*x = time.Duration(*n) * time.Second
		case *json.RawMessage:
			*x = json.RawMessage(fmt.Sprintf(`{"f":%d}`, *n))
		case *map[string]string:
			*x = map[string]string{fmt.Sprint("k", *n): fmt.Sprint("v", *n)}
		case *chat.IdleControl:
			fill(x, n)
		default:
			switch f.Kind() {
			case reflect.String:
				f.SetString(fmt.Sprintf("%s-%d", rv.Type().Field(i).Name, *n))
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(uint64(*n%200 + 1))
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(*n))
			case reflect.Bool:
				f.SetBool(true)
			default:
				panic(fmt.Sprintf("storagetest: fill: field %s of type %s", rv.Type().Field(i).Name, f.Type()))
			}
		}
	}
}

// testRoundTrip stores records with every field set and reads them back.
func testRoundTrip(t *testing.T, s chat.Store) {
	n := 0
	var u chat.User
	fill(&u, &n)
	var r chat.Room
	fill(&r, &n)
	var m chat.Member
	fill(&m, &n)
	m.RoomID = r.ID
	var ev chat.Event
	fill(&ev, &n)
	ev.RoomID = r.ID
	update(t, s, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		e := ev
		return tx.Append(&e)
	})
	// The store keeps a room's LastPos and LastTime, and an event's Pos.
	r.LastPos, r.LastTime = 1, ev.Time
	ev.Pos = 1
	view(t, s, func(tx chat.ReadTx) error {
		gu, err := tx.User(u.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "user with every field set", u, gu)
		gr, err := tx.Room(r.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "room with every field set", r, gr)
		gm, err := tx.MemberByID(r.ID, m.ID)
		if err != nil {
			t.Error(err)
		}
		diff(t, "member with every field set", m, gm)
		gev, err := tx.Event(r.ID, 1)
		if err != nil {
			t.Error(err)
		}
		diff(t, "event with every field set", ev, gev)
		return nil
	})
}
