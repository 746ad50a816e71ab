package bezlimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
)

func forEachStore(t *testing.T, f func(t *testing.T, o envOpt)) {
	for _, sf := range storeFactories {
		t.Run(sf.Name, func(t *testing.T) { f(t, envOpt{store: sf.Open}) })
	}
}

// A visitor and an operator chat: messages, echo, typing, delivered and read on both sides
// and on /broadcast, presence.
func TestChatVisitorOperator(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		bc := v.mustDial("/broadcast", "operator:2", nil)
		vis := v.chatConn("client:1", room)
		op := v.chatConn("operator:2", room)

		// The visitor sees the operator arrive.
		f, _ := vis.until(evUserConnected, nil)
		var pres struct {
			User User `json:"user"`
			Chat struct {
				UUID string `json:"uuid"`
			} `json:"chat"`
		}
		json.Unmarshal(f.Data, &pres)
		if diff := cmp.Diff(struct {
			ID         int64
			Role, UUID string
		}{2, "operator", room.UUID()},
			struct {
				ID         int64
				Role, UUID string
			}{pres.User.ID, pres.User.Role, pres.Chat.UUID}); diff != "" {
			t.Errorf("user_connected (-want +got):\n%s", diff)
		}

		vis.send(evSendMessage, map[string]any{"text": "hello", "attachments": []string{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}})
		for name, c := range map[string]*client{"visitor": vis, "operator": op, "broadcast": bc} {
			f, _ := c.untilText("hello")
			m := f.message()
			want := wireMessage{ID: f.Position, Type: "standard", TypeRole: "client", Status: "new", Text: "hello",
				SendTime: m.SendTime, MessageIndex: f.Position, Chat: m.Chat,
				User:        &User{ID: 1, Role: "client", FirstName: "client1", LastName: "Test"},
				Attachments: []string{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}}
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("%s: message_added (-want +got):\n%s", name, diff)
			}
			var ch map[string]any
			json.Unmarshal(m.Chat, &ch)
			if ch["uuid"] != room.UUID() || ch["status"] != "active" {
				t.Errorf("%s: chat = %v", name, ch)
			}
		}
		msgPos := func() uint64 {
			evs, _ := v.e.Read(context.Background(), room, chat.ReadOptions{From: 0, Limit: 1, Backward: true})
			for p := evs[0].Pos; p > 0; p-- {
				ev, _ := v.e.Event(context.Background(), room, p)
				if ev.Type == chat.EventMessage && ev.Text == "hello" {
					return p
				}
			}
			t.Fatal("message not stored")
			return 0
		}()

		// Typing: the operator and /broadcast see it, the typist does not.
		vis.send(evUpdateTyping, map[string]any{"text": "draft", "stopped": false})
		f, _ = op.until(evTypingUpdated, nil)
		var typ struct {
			User    User   `json:"user"`
			Text    string `json:"text"`
			Stopped bool   `json:"stopped"`
		}
		json.Unmarshal(f.Data, &typ)
		if typ.User.ID != 1 || typ.Text != "draft" || typ.Stopped {
			t.Errorf("typing_updated = %+v", typ)
		}
		bc.until(evTypingUpdated, nil)
		vis.send(evUpdateTyping, map[string]any{"text": "", "stopped": true})
		f, _ = op.until(evTypingUpdated, nil)
		json.Unmarshal(f.Data, &typ)
		if !typ.Stopped {
			t.Errorf("typing_updated = %+v, want stopped", typ)
		}

		// Delivered, then read, by the operator: both sides and /broadcast see the status.
		for _, step := range []struct{ ev, status string }{{evMarkDelivered, "delivered"}, {evMarkRead, "read"}} {
			op.send(step.ev, map[string]any{"message_id": msgPos})
			for name, c := range map[string]*client{"visitor": vis, "operator": op, "broadcast": bc} {
				f, skipped := c.until(evMessageUpdated, nil)
				if m := f.message(); m.ID != msgPos || m.Status != step.status || m.Text != "hello" {
					t.Errorf("%s after %s: message_updated %+v", name, step.ev, m)
				}
				if name == "visitor" && has(skipped, evTypingUpdated, nil) {
					t.Errorf("visitor got its own typing: %+v", skipped)
				}
			}
		}
		// A repeated receipt changes nothing and sends nothing; the operator's own message
		// is not updated by its own receipt.
		op.send(evMarkRead, map[string]any{"message_id": msgPos})
		op.send(evSendMessage, map[string]any{"text": "marker", "attachments": []string{}})
		for _, c := range []*client{vis, op, bc} {
			_, skipped := c.untilText("marker")
			if has(skipped, evMessageUpdated, nil) {
				t.Errorf("unexpected message_updated: %+v", skipped)
			}
		}

		// The operator leaves: the visitor is told.
		op.c.CloseNow()
		f, _ = vis.until(evUserDisconnected, nil)
		json.Unmarshal(f.Data, &pres)
		if pres.User.ID != 2 {
			t.Errorf("user_disconnected for %+v", pres.User)
		}
	})
}

// Each message type reaches exactly the connections it must.
func TestMessageRouting(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		other := v.newChat(3, 4) // another chat: its members must get nothing of room's
		vis := v.chatConn("client:1", room)
		op := v.chatConn("operator:2", room)
		watcher := v.chatConn("operator:9", room) // an operator watching, not joined
		bc := v.mustDial("/broadcast", "operator:2", nil)
		otherVis := v.chatConn("client:3", other)
		conns := map[string]*client{"visitor": vis, "operator": op, "watcher": watcher, "broadcast": bc}

		tests := []struct {
			name string
			body map[string]any
			want []string
		}{
			{"standard", map[string]any{"type": "standard"}, []string{"visitor", "operator", "watcher", "broadcast"}},
			{"standard from a user", map[string]any{"type": "standard", "user": User{ID: 2, Role: "operator"}}, []string{"visitor", "operator", "watcher", "broadcast"}},
			{"bot", map[string]any{"type": "bot", "user": User{ID: 50, Role: "bot"}}, []string{"visitor", "operator", "watcher", "broadcast"}},
			{"system for clients", map[string]any{"type": "system", "type_role": "client"}, []string{"visitor"}},
			{"system for operators", map[string]any{"type": "system", "type_role": "operator"}, []string{"operator", "watcher"}},
			{"note", map[string]any{"type": "note", "user": User{ID: 2, Role: "operator"}}, []string{"operator", "watcher"}},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				text := fmt.Sprintf("routed %d", i)
				body := tc.body
				body["text"] = text
				body["chat"] = map[string]string{"uuid": room.UUID()}
				if code, out := v.api("POST", "/message", body); code != 201 {
					t.Fatalf("/message: %d %s", code, out)
				}
				marker := fmt.Sprintf("marker %d", i)
				if code, out := v.api("POST", "/message", map[string]any{"text": marker, "chat": map[string]string{"uuid": room.UUID()}}); code != 201 {
					t.Fatalf("/message: %d %s", code, out)
				}
				var got []string
				for _, name := range []string{"visitor", "operator", "watcher", "broadcast"} {
					_, skipped := conns[name].untilText(marker)
					for _, f := range skipped {
						if f.Type == evMessageAdded && f.message().Text == text {
							got = append(got, name)
							if m := f.message(); m.Type != tc.body["type"] {
								t.Errorf("%s: type %q", name, m.Type)
							}
						}
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("receivers (-want +got):\n%s", diff)
				}
			})
		}
		// The other chat's visitor got nothing of it.
		v.api("POST", "/message", map[string]any{"text": "other marker", "chat": map[string]string{"uuid": other.UUID()}})
		_, skipped := otherVis.untilText("other marker")
		if has(skipped, evMessageAdded, nil) {
			t.Errorf("other chat received: %+v", skipped)
		}
	})
}

// /message with an id edits; note and system stay within their audience when updated.
func TestMessageUpdate(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	code, out := v.api("POST", "/message", map[string]any{"type": "note", "text": "n1", "chat": map[string]string{"uuid": room.UUID()}})
	if code != 201 {
		t.Fatalf("%d %s", code, out)
	}
	var created struct{ ID uint64 }
	json.Unmarshal(out, &created)
	code, out = v.api("PUT", "/message", map[string]any{"id": created.ID, "type": "note", "text": "n1 edited", "chat": map[string]string{"uuid": room.UUID()}})
	if code != 200 {
		t.Fatalf("update: %d %s", code, out)
	}
	f, _ := op.until(evMessageUpdated, nil)
	if m := f.message(); m.ID != created.ID || m.Text != "n1 edited" || m.Type != "note" {
		t.Errorf("message_updated = %+v", m)
	}
	v.api("POST", "/message", map[string]any{"text": "marker", "chat": map[string]string{"uuid": room.UUID()}})
	_, skipped := vis.untilText("marker")
	if has(skipped, evMessageAdded, nil) || has(skipped, evMessageUpdated, nil) {
		t.Errorf("visitor saw the note or its update: %+v", skipped)
	}
	// Updating a message that does not exist: 404, nothing stored.
	before, _ := v.e.Room(context.Background(), room)
	if code, _ := v.api("POST", "/message", map[string]any{"id": 999, "text": "x", "chat": map[string]string{"uuid": room.UUID()}}); code != 404 {
		t.Errorf("edit of a missing message: %d, want 404", code)
	}
	after, _ := v.e.Room(context.Background(), room)
	if after.LastPos != before.LastPos {
		t.Errorf("something was stored")
	}
}

// A client that reconnects with after=<last position> gets what it missed exactly once, in
// order, while messages keep coming.
func TestResume(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		ctx := context.Background()
		opUser, _ := v.e.UserByName(ctx, "bezlimit:2")
		send := func(i int) {
			if _, err := v.e.Send(ctx, room, opUser.ID, chat.NewMessage{Text: fmt.Sprint("m", i)}); err != nil {
				t.Error(err)
			}
		}
		vis := v.chatConn("client:1", room, 0)
		const total = 300
		next := 0
		var last uint64
		expect := func(c *client, upTo int) {
			t.Helper()
			for next < upTo {
				f := c.next()
				if f.Position != 0 && f.Position <= last {
					t.Fatalf("position %d after %d: duplicate or out of order", f.Position, last)
				}
				if f.Position != 0 {
					last = f.Position
				}
				if f.Type != evMessageAdded {
					continue
				}
				if got, want := f.message().Text, fmt.Sprint("m", next); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
				next++
			}
		}
		for i := range 10 {
			send(i)
		}
		expect(vis, 10)
		vis.c.CloseNow()
		// Messages while the visitor is away, and while it reconnects.
		for i := 10; i < 100; i++ {
			send(i)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 100; i < total; i++ {
				send(i)
			}
		}()
		vis = v.chatConn("client:1", room, last)
		expect(vis, total)
		<-done
		// Nothing more, nothing twice: the next frame is the next message.
		send(total)
		expect(vis, total+1)
	})
}

func TestResumeBadPosition(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	for _, after := range []string{"x", "-1", "99999", "18446744073709551615", "18446744073709551616"} {
		if _, err := v.dial("/chat", "client:1", url.Values{"chat": {room.UUID()}, "after": {after}}); err == nil {
			t.Errorf("after=%s: connected", after)
		}
	}
}

// A receipt for a later message updates every earlier message of the other side that it
// newly covers, once; the reader's own messages are not updated.
func TestReceiptRange(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		vis := v.chatConn("client:1", room)
		op := v.chatConn("operator:2", room)
		var pos []uint64
		for _, text := range []string{"a", "b", "c"} {
			vis.send(evSendMessage, map[string]any{"text": text})
			f, _ := op.untilText(text)
			pos = append(pos, f.Position)
		}
		op.send(evSendMessage, map[string]any{"text": "mine"})
		f, _ := op.untilText("mine")
		mine := f.Position
		op.send(evMarkRead, map[string]any{"message_id": mine}) // covers a, b, c and its own
		var got []uint64
		for range 3 {
			f, _ := vis.until(evMessageUpdated, nil)
			if m := f.message(); m.Status != "read" {
				t.Errorf("status %q", m.Status)
			} else {
				got = append(got, m.ID)
			}
		}
		if diff := cmp.Diff(pos, got); diff != "" {
			t.Errorf("updated messages (-want +got):\n%s", diff)
		}
		// Read implies delivered: a later delivered receipt for them sends nothing.
		op.send(evMarkDelivered, map[string]any{"message_id": mine})
		vis.send(evSendMessage, map[string]any{"text": "end"})
		if _, skipped := vis.untilText("end"); has(skipped, evMessageUpdated, nil) {
			t.Errorf("unexpected updates: %+v", skipped)
		}
		// A resumed connection replays the same updates from the transcript.
		again := v.chatConn("client:1", room, pos[2])
		got = nil
		for range 3 {
			f, _ := again.until(evMessageUpdated, nil)
			got = append(got, f.message().ID)
		}
		if diff := cmp.Diff(pos, got); diff != "" {
			t.Errorf("replayed updates (-want +got):\n%s", diff)
		}
	})
}

// Origins: a browser on another site is refused unless its host matches OriginPatterns.
func TestOriginPatterns(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.OriginPatterns = []string{"*.shop.example"} }})
	room := v.newChat(1, 2)
	dial := func(origin string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, v.ws+"/chat?chat="+room.UUID()+"&token=client:1",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			c.CloseNow()
		}
		return err
	}
	if err := dial("https://widget.shop.example"); err != nil {
		t.Errorf("allowed origin refused: %v", err)
	}
	if err := dial("https://evil.example"); err == nil {
		t.Error("foreign origin accepted")
	}
}

// A typing indicator that is not renewed expires (the engine's TTL): the others get
// typing_updated with stopped=true; sending a message ends typing without another frame.
func TestTypingExpires(t *testing.T) {
	v := newEnv(t, envOpt{engine: []chat.Option{chat.WithTypingTTL(100 * time.Millisecond)}})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	vis.send(evUpdateTyping, map[string]any{"text": "hm", "stopped": false})
	f, _ := op.until(evTypingUpdated, nil)
	var d struct {
		Stopped bool `json:"stopped"`
	}
	json.Unmarshal(f.Data, &d)
	if d.Stopped {
		t.Fatal("first typing_updated is stopped")
	}
	f, _ = op.until(evTypingUpdated, nil)
	json.Unmarshal(f.Data, &d)
	if !d.Stopped {
		t.Fatal("typing did not expire")
	}
	vis.send(evUpdateTyping, map[string]any{"text": "again", "stopped": false})
	op.until(evTypingUpdated, nil)
	vis.send(evSendMessage, map[string]any{"text": "sent"})
	if _, skipped := op.untilText("sent"); has(skipped, evTypingUpdated, nil) {
		t.Errorf("extra typing frame: %+v", skipped)
	}
}

// Config.MayView limits what an operator sees on /broadcast and which chats it may watch.
func TestMayView(t *testing.T) {
	var allowed chat.ID
	v := newEnv(t, envOpt{cfg: func(c *Config) {
		c.MayView = func(op User, room chat.Room) bool { return op.ID == 2 || room.ID == allowed }
	}})
	secret := v.newChat(1, 2)
	allowed = v.newChat(3, 0)
	bc2 := v.mustDial("/broadcast", "operator:2", nil)
	bc9 := v.mustDial("/broadcast", "operator:9", nil)
	if _, err := v.dial("/chat", "operator:9", url.Values{"chat": {secret.UUID()}}); err == nil {
		t.Error("operator 9 opened a chat it may not see")
	}
	v.chatConn("operator:9", allowed).c.CloseNow()
	v.api("POST", "/message", map[string]any{"text": "secret", "chat": map[string]string{"uuid": secret.UUID()}})
	v.api("POST", "/message", map[string]any{"text": "open", "chat": map[string]string{"uuid": allowed.UUID()}})
	if _, skipped := bc2.untilText("open"); !has(skipped, evMessageAdded, nil) {
		t.Error("operator 2 missed the secret chat's message")
	}
	if _, skipped := bc9.untilText("open"); has(skipped, evMessageAdded, nil) {
		t.Errorf("operator 9 saw the secret chat: %+v", skipped)
	}
}
