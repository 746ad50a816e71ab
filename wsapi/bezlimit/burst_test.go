package bezlimit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
)

// 1,000 connections (50 chats of 20 visitors, each joined) send at once: every connection
// receives every message of its chat, once, in position order.
func TestBurst(t *testing.T) {
	chats, per, msgs := 50, 20, 1
	if testing.Short() {
		chats = 10
	}
	// This test is about loss under concurrency, not about slow clients: on a loaded
	// machine (and under -race) a reader may lag, so the limits are generous.
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.SendQueue, c.WriteTimeout = 4096, time.Minute }})
	ctx := context.Background()
	type member struct {
		room  chat.ID
		token string
		conn  *websocket.Conn
	}
	var members []*member
	t0 := time.Now()
	for i := range chats {
		room := v.newChat(0, 0)
		for j := range per {
			id := int64(i*per + j + 1)
			u := User{ID: id, Role: "client", FirstName: fmt.Sprint("v", id)}
			uid, err := v.h.ensureUser(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.e.Join(ctx, room, uid, chat.JoinOptions{Role: chat.RoleClient}); err != nil {
				t.Fatal(err)
			}
			members = append(members, &member{room: room, token: fmt.Sprint("client:", id)})
		}
	}
	t.Logf("setup: %v", time.Since(t0))
	t0 = time.Now()
	// Dial them all, a few at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(members))
	for _, m := range members {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(dctx, v.ws+"/chat?chat="+m.room.UUID()+"&token="+m.token, nil)
			if err != nil {
				errs <- err
				return
			}
			m.conn = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.conn.CloseNow()
		}
	})
	t.Logf("dial: %v", time.Since(t0))
	// Everyone sends at once and reads until it has every message of its chat.
	want := per * msgs
	start := time.Now()
	results := make(chan error, len(members))
	for _, m := range members {
		go func() {
			for k := range msgs {
				b, _ := json.Marshal(map[string]any{"type": evSendMessage, "data": map[string]any{"text": fmt.Sprint(m.token, "#", k)}})
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := m.conn.Write(wctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					results <- err
					return
				}
			}
			seen := map[string]bool{}
			var last uint64
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			for len(seen) < want {
				_, b, err := m.conn.Read(rctx)
				if err != nil {
					results <- fmt.Errorf("%s after %d messages: %w", m.token, len(seen), err)
					return
				}
				var f inFrame
				json.Unmarshal(b, &f)
				if f.Position != 0 {
					if f.Position <= last {
						results <- fmt.Errorf("%s: position %d after %d", m.token, f.Position, last)
						return
					}
					last = f.Position
				}
				switch f.Type {
				case evMessageAdded:
					text := f.message().Text
					if seen[text] {
						results <- fmt.Errorf("%s: %q twice", m.token, text)
						return
					}
					seen[text] = true
				case evMessageNotAdded, frameTypeError:
					results <- fmt.Errorf("%s: %s %s", m.token, f.Type, f.Data)
					return
				}
			}
			results <- nil
		}()
	}
	for range members {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d connections, %d messages each way: every delivery in %v", len(members), want, time.Since(start))
	// The store has every message.
	total := 0
	for i := 0; i < len(members); i += per {
		r, _ := v.e.Room(ctx, members[i].room)
		evs, _ := v.e.Read(ctx, members[i].room, chat.ReadOptions{From: 1, Limit: int(r.LastPos)})
		for _, ev := range evs {
			if ev.Type == chat.EventMessage {
				total++
			}
		}
	}
	if total != len(members)*msgs {
		t.Errorf("stored %d messages, want %d", total, len(members)*msgs)
	}
}
