package genesys_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
)

// TestHiddenEvents: events Genesys has no type for, or that are not for the client, leave gaps
// in the indexes, and nextPosition steps over them.
func TestHiddenEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk)
		c := ev.requestChat(url.Values{"nickname": {"Ann"}}) // 1
		room := c.room()
		agent := ev.agent(c, "Ag") // 2
		sup := must(ev.e.CreateUser(ctx, chat.NewUser{DisplayName: "Sup"}))
		must(ev.e.Invite(ctx, room, sup.ID, chat.InviteOptions{By: agent.ID, Role: chat.RoleOperator})) // 3 invited: hidden
		supM := must(ev.e.Join(ctx, room, sup.ID, chat.JoinOptions{}))                                  // 4
		clientM := must(ev.e.MemberByUser(ctx, room, c.user()))
		must(ev.e.Send(ctx, room, agent.ID, chat.NewMessage{Text: "note", Visibility: chat.RoleAgent})) // 5 hidden
		must(ev.e.Send(ctx, room, agent.ID, chat.NewMessage{Text: "to sup", To: supM.ID}))              // 6 hidden
		must(ev.e.Send(ctx, room, agent.ID, chat.NewMessage{Text: "to you", To: clientM.ID}))           // 7
		must(ev.e.Edit(ctx, room, agent.ID, 7, chat.NewMessage{Text: "to you!"}))                       // 8 hidden
		must(ev.e.Custom(ctx, room, agent.ID, "nexmo:custom", []byte(`{"a":1}`)))                       // 9 hidden
		must(ev.e.MarkDelivered(ctx, room, agent.ID, 7))                                                // 10 hidden
		must(ev.e.Notice(ctx, room, "transferring"))                                                    // 11
		must(ev.e.Delete(ctx, room, agent.ID, 7))                                                       // 12 hidden
		must(ev.e.Send(ctx, room, chat.System(), chat.NewMessage{Text: "from the program"}))            // 13
		must(ev.e.EndRoom(ctx, room))                                                                   // 14 hidden
		_, r := c.do("refresh", "transcriptPosition", "2")
		want := []msg{
			{2, "ParticipantJoined", "", "Ag/2/Agent", ""},
			{4, "ParticipantJoined", "", "Sup/3/Agent", ""},
			{7, "Message", "to you", "Ag/2/Agent", ""},
			{11, "Notice", "transferring", "system/0/External", ""},
			{13, "Message", "from the program", "system/0/External", ""},
		}
		if diff := cmp.Diff(want, compact(r.Messages)); diff != "" || r.NextPosition != 15 || !*r.ChatEnded {
			t.Errorf("next %d, ended %v, (-want +got):\n%s", r.NextPosition, *r.ChatEnded, diff)
		}
		// The agent's own view (Transcript) includes what is meant for agents.
		ms, _, err := ev.h.Transcript(ctx, room, agent.ID, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got := compact(ms); len(got) < 2 || got[0].Text != "note" || got[1].Text != "to sup" {
			t.Errorf("agent view %v", got)
		}
	})
}

// TestMaxEvents: a client far behind gets MaxEvents positions per answer and catches up by
// following nextPosition.
func TestMaxEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk, func(c *genesys.Config) { c.MaxEvents = 4 })
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		agent := ev.agent(c, "Ag")
		for i := range 10 {
			m := must(ev.e.Send(ctx, c.room(), agent.ID, chat.NewMessage{Text: fmt.Sprint(i)}))
			must(ev.e.MarkRead(ctx, c.room(), agent.ID, m.Pos)) // hidden positions count too
		}
		last := must(ev.e.Room(ctx, c.room())).LastPos // 22
		c.next = 1
		var nexts []uint64
		for c.next <= last {
			r := c.refresh()
			if len(r.Messages) > 4 {
				t.Fatalf("%d messages in one answer", len(r.Messages))
			}
			nexts = append(nexts, r.NextPosition)
		}
		if diff := cmp.Diff([]uint64{5, 9, 13, 17, 21, 23}, nexts); diff != "" {
			t.Errorf("nextPositions (-want +got):\n%s", diff)
		}
		if len(c.seen) != 1+12 { // requestChat's join, then agent join + 10 messages (+ the client join again from position 1)
			t.Errorf("seen %d events: %v", len(c.seen), compact(c.seen))
		}
	})
}

func BenchmarkRefresh(b *testing.B) {
	for _, s := range stores {
		b.Run(s.Name, func(b *testing.B) {
			ev := newEnv(b, s.Open)
			ctx := context.Background()
			c := ev.requestChat(url.Values{"nickname": {"Ann"}})
			agent := ev.agent(c, "Ag")
			for i := range 50 {
				must(ev.e.Send(ctx, c.room(), agent.ID, chat.NewMessage{Text: fmt.Sprint("message ", i)}))
			}
			form := c.form("transcriptPosition", "3")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res := ev.post("/"+service+"/"+c.chatID+"/refresh", form)
				if res.status != 200 {
					b.Fatal(res.body)
				}
			}
		})
	}
}
