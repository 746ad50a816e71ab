package chapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/chat"
)

// BenchmarkList lists a page of 30 messages, ts-paged into the middle of a room of 1,000.
func BenchmarkList(b *testing.B) {
	for _, s := range stores {
		b.Run(s.Name, func(b *testing.B) {
			ev := newEnv(b, s.Open)
			ctx := context.Background()
			room := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "r"}))
			must(ev.e.Join(ctx, room.ID, ev.ada.ID, chat.JoinOptions{}))
			var mid chat.Event
			for i := range 1000 {
				m := must(ev.e.Send(ctx, room.ID, ev.ada.ID, chat.NewMessage{Text: fmt.Sprint("message ", i)}))
				if i == 500 {
					mid = m
				}
			}
			target := fmt.Sprintf("/api/chat/v1/messages?room=r&ts=%d", mid.Time.UnixMicro())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if res := ev.do("GET", target, "ada-key", "", ""); res.status != 200 {
					b.Fatal(res.body)
				}
			}
		})
	}
}
