package nexmo

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// TestUserPermissions walks the permission table of decisions.go with a user token.
func TestUserPermissions(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		own := v.chatRoom("own") // own-alice, own-bob joined
		other := v.chatRoom("oth")
		alice := v.token("own-alice")
		// An invited member sees the conversation but may not update it.
		zoe := v.user("zoe")
		v.must(201, v.do("POST", "/conversations/"+own.cid+"/members", v.admin,
			map[string]any{"action": "invite", "user_id": zoe, "channel": map[string]any{"type": "app"}}))
		zoeT := v.token("zoe")

		for _, tc := range []struct {
			name, token, method, path, body string
			status                          int
		}{
			{"create a conversation", alice, "POST", "/conversations", `{"name":"mine"}`, 200},
			{"list all conversations", alice, "GET", "/conversations", ``, 403},
			{"retrieve own", alice, "GET", "/conversations/" + own.cid, ``, 200},
			{"retrieve another", alice, "GET", "/conversations/" + other.cid, ``, 404},
			{"retrieve as invited", zoeT, "GET", "/conversations/" + own.cid, ``, 200},
			{"update own", alice, "PUT", "/conversations/" + own.cid, `{"display_name":"x"}`, 200},
			{"update as invited", zoeT, "PUT", "/conversations/" + own.cid, `{"display_name":"y"}`, 403},
			{"update another", alice, "PUT", "/conversations/" + other.cid, `{"display_name":"x"}`, 404},
			{"delete own", alice, "DELETE", "/conversations/" + own.cid, ``, 403},
			{"events of own", alice, "GET", "/conversations/" + own.cid + "/events", ``, 200},
			{"events of another", alice, "GET", "/conversations/" + other.cid + "/events", ``, 404},
			{"event of another", alice, "GET", "/conversations/" + other.cid + "/events/1", ``, 404},
			{"delete event of another", alice, "DELETE", "/conversations/" + other.cid + "/events/1", ``, 404},
			{"members of another", alice, "GET", "/conversations/" + other.cid + "/members", ``, 404},
			{"leave another's member", alice, "DELETE", "/conversations/" + own.cid + "/members/" + own.bobM, ``, 403},
			{"list users", alice, "GET", "/users", ``, 200},
			{"retrieve a user", alice, "GET", "/users/" + own.bob, ``, 200},
			{"conversations of another user", alice, "GET", "/users/" + own.bob + "/conversations", ``, 403},
			{"own conversations", alice, "GET", "/users/" + own.alice + "/conversations", ``, 200},
			{"delete a leg", alice, "DELETE", "/legs/x", ``, 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body any
				if tc.body != "" {
					body = tc.body
				}
				r := v.do(tc.method, tc.path, tc.token, body)
				switch tc.status {
				case 403:
					v.wantError(r, 403, codePermission, "")
				case 404: // another's conversation is answered as one that does not exist
					v.wantError(r, 404, codeConvNotFound, "")
				default:
					v.must(tc.status, r)
				}
			})
		}
		// The conversation a user creates is not its own until it joins.
		mine := v.must(200, v.do("GET", "/users/"+own.alice+"/conversations", alice, nil)).arr()
		if len(mine) != 1 {
			t.Fatalf("alice's conversations: %v", mine)
		}
	})
}

// TestCrossSurface: what is sent here reaches the engine's followers (every other surface
// reads rooms that way), and what another surface sends through the engine is listed here.
func TestCrossSurface(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("xs")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f, err := v.e.Follow(ctx, c.room, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		v.must(201, v.event(c, v.token("xs-alice"), fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"to everyone"}}`, c.aliceM)))
		ev, err := f.Next(ctx)
		if err != nil || ev.Type != chat.EventMessage || ev.Text != "to everyone" || memberID(ev.From) != c.aliceM {
			t.Fatalf("follower got %+v, %v", ev, err)
		}
		// A room made by another surface (no name) is a conversation here too.
		room, err := v.e.CreateRoom(ctx, chat.NewRoom{DisplayName: "from genesys", Attributes: map[string]string{"genesys.serviceName": "request-chat"}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := v.e.UserByName(ctx, "xs-bob")
		if _, err := v.e.Join(ctx, room.ID, u.ID, chat.JoinOptions{Nickname: "Bob", Role: chat.RoleClient}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.e.Send(ctx, room.ID, u.ID, chat.NewMessage{Text: "sent over genesys"}); err != nil {
			t.Fatal(err)
		}
		evs := v.must(200, v.do("GET", "/conversations/"+conversationID(room.ID)+"/events", v.token("xs-bob"), nil)).arr()
		if len(evs) != 2 || evs[1].(map[string]any)["body"].(map[string]any)["text"] != "sent over genesys" {
			t.Fatalf("events %v", evs)
		}
		conv := v.must(200, v.do("GET", "/conversations/"+conversationID(room.ID), v.admin, nil)).obj()
		if conv["display_name"] != "from genesys" || conv["sequence_number"] != 2.0 {
			t.Fatalf("conversation %v", conv)
		}
	})
}

// TestConcurrentTexts: texts sent at once get distinct, gapless ids.
func TestConcurrentTexts(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("cc")
		alice, bob := v.token("cc-alice"), v.token("cc-bob")
		var mu sync.Mutex
		var ids []int
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, from := alice, c.aliceM
				if i%2 == 1 {
					tok, from = bob, c.bobM
				}
				w := *v
				r := w.do("POST", "/conversations/"+c.cid+"/events", tok, fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"m%d"}}`, from, i))
				if r.Status != 201 {
					t.Errorf("status %d: %s", r.Status, r.Raw)
					return
				}
				mu.Lock()
				ids = append(ids, int(r.obj()["id"].(float64)))
				mu.Unlock()
			}()
		}
		wg.Wait()
		sort.Ints(ids)
		for i, id := range ids {
			if id != i+3 {
				t.Fatalf("ids %v", ids)
			}
		}
	})
}
