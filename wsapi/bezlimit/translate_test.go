package bezlimit

import (
	"context"
	"encoding/json"
	"testing"

	"pgregory.net/rapid"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

// The statuses that message_updated frames carry end where the engine's watermarks say:
// for any sequence of messages and receipts by two members, the last status sent for each
// message is "read" if the other member's read watermark covers it, else "delivered" if its
// delivered watermark does, else "new"; and a message never goes from read back to
// delivered.
func TestReceiptStatusProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		store := memory.New()
		defer store.Close()
		e, err := chat.Open(ctx, store)
		if err != nil {
			rt.Fatal(err)
		}
		defer e.Close()
		h := New(e, Config{})
		defer h.Close()
		room, _ := e.CreateRoom(ctx, chat.NewRoom{})
		var users [2]chat.ID
		for i := range users {
			u, _ := e.CreateUser(ctx, chat.NewUser{DisplayName: "u"})
			users[i] = u.ID
			if _, err := e.Join(ctx, room.ID, u.ID, chat.JoinOptions{Role: chat.RoleClient}); err != nil {
				rt.Fatal(err)
			}
		}
		authors := map[uint64]int{} // message position -> author index
		n := rapid.IntRange(1, 40).Draw(rt, "ops")
		for range n {
			who := rapid.IntRange(0, 1).Draw(rt, "who")
			r, _ := e.Room(ctx, room.ID)
			switch op := rapid.IntRange(0, 2).Draw(rt, "op"); {
			case op == 0 || r.LastPos == 0:
				ev, err := e.Send(ctx, room.ID, users[who], chat.NewMessage{Text: "m"})
				if err != nil {
					rt.Fatal(err)
				}
				authors[ev.Pos] = who
			default:
				pos := rapid.Uint64Range(1, r.LastPos).Draw(rt, "pos")
				if op == 1 {
					_, err = e.MarkDelivered(ctx, room.ID, users[who], pos)
				} else {
					_, err = e.MarkRead(ctx, room.ID, users[who], pos)
				}
				if err != nil {
					rt.Fatal(err)
				}
			}
		}
		// Translate the whole transcript in order, as a hub does.
		tr := newTranslator(h, room.ID)
		r, _ := e.Room(ctx, room.ID)
		evs, _ := e.Read(ctx, room.ID, chat.ReadOptions{From: 1, Limit: int(r.LastPos)})
		last := map[uint64]string{}
		for i := range evs {
			for _, f := range tr.translate(ctx, &evs[i]) {
				var env struct {
					Type string `json:"type"`
					Data struct {
						Message wireMessage `json:"message"`
					} `json:"data"`
				}
				json.Unmarshal(f.data, &env)
				m := env.Data.Message
				if env.Type == evMessageUpdated {
					if last[m.ID] == statusRead && m.Status == statusDelivered {
						rt.Fatalf("message %d went from read back to delivered", m.ID)
					}
				}
				last[m.ID] = m.Status
			}
		}
		var marks [2]chat.Member
		for i, u := range users {
			marks[i], _ = e.MemberByUser(ctx, room.ID, u)
		}
		for pos, author := range authors {
			other := marks[1-author]
			want := statusNew
			switch {
			case other.Read >= pos:
				want = statusRead
			case other.Delivered >= pos:
				want = statusDelivered
			}
			if last[pos] != want {
				rt.Fatalf("message %d by user %d: last status %q, watermarks say %q (other: delivered %d, read %d)",
					pos, author, last[pos], want, other.Delivered, other.Read)
			}
		}
	})
}
