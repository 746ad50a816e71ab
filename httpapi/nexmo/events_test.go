package nexmo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// chatRoom is a conversation with two joined members, alice and bob.
type chatRoom struct {
	cid, alice, bob, aliceM, bobM string
	room                          chat.ID
}

func (v *env) chatRoom(name string) chatRoom {
	v.t.Helper()
	c := chatRoom{cid: v.conversation(name), alice: v.user(name + "-alice"), bob: v.user(name + "-bob")}
	c.aliceM = v.join(c.cid, c.alice)
	c.bobM = v.join(c.cid, c.bob)
	c.room = engineID(v.t, "CON-", c.cid)
	return c
}

func (v *env) event(c chatRoom, token string, body string) resp {
	v.t.Helper()
	return v.do("POST", "/conversations/"+c.cid+"/events", token, body)
}

func TestEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("ev")
		alice := v.token("ev-alice")
		evHref := func(id int) string { return fmt.Sprintf("%s/conversations/%s/events/%d", testBase, c.cid, id) }

		// text: 201 {id, timestamp, href}; the id is the engine position (2 joins before it).
		r := v.must(201, v.event(c, alice, fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"hello"}}`, c.aliceM)))
		diff(t, jsonOf(t, `{"id":3,"timestamp":%q,"href":%q}`, "2026-03-01T10:00:00.000Z", evHref(3)), r.JSON)

		// retrieve: the spec's event_retrieved.
		r = v.must(200, v.do("GET", "/conversations/"+c.cid+"/events/3", alice, nil))
		diff(t, jsonOf(t, `{"id":3,"type":"text","from":%q,"body":{"text":"hello"},"timestamp":%q,"href":%q}`,
			c.aliceM, "2026-03-01T10:00:00.000Z", evHref(3)), r.JSON)

		// A text sent here is an engine message: every other surface reads it.
		ev, err := v.e.Event(context.Background(), c.room, 3)
		if err != nil || ev.Type != chat.EventMessage || ev.Text != "hello" || ev.User != engineID(t, "USR-", c.alice) {
			t.Fatalf("engine event %+v, %v", ev, err)
		}

		step := func(token, body string, status int, wantID int) {
			t.Helper()
			r := v.event(c, token, body)
			v.must(status, r)
			if status == 201 {
				if r.obj()["id"] != float64(wantID) || r.str("href") != evHref(wantID) {
					t.Fatalf("%s: answer %s, want id %d", body, r.Raw, wantID)
				}
			} else {
				diff(t, map[string]any{}, r.JSON)
			}
		}
		bob := v.token("ev-bob")
		// Receipts: bob has seen 3 → a text:seen event at 4 whose body points to 3; seeing
		// it again moves nothing: 200 {} and no event.
		step(bob, fmt.Sprintf(`{"type":"text:delivered","from":%q,"body":{"event_id":3}}`, c.bobM), 201, 4)
		step(bob, fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":"3"}}`, c.bobM), 201, 5)
		step(bob, fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":3}}`, c.bobM), 200, 0)
		step(bob, fmt.Sprintf(`{"type":"text:delivered","from":%q,"body":{"event_id":2}}`, c.bobM), 200, 0)
		m, _ := v.e.MemberByUser(context.Background(), c.room, engineID(t, "USR-", c.bob))
		if m.Read != 3 || m.Delivered != 3 {
			t.Fatalf("watermarks %d/%d", m.Read, m.Delivered)
		}
		// Typing: on appends, renewing appends nothing (200 {}), off appends, off again nothing.
		step(alice, fmt.Sprintf(`{"type":"text:typing:on","from":%q}`, c.aliceM), 201, 6)
		step(alice, fmt.Sprintf(`{"type":"text:typing:on","from":%q,"body":{}}`, c.aliceM), 200, 0)
		if ts, err := v.e.Typing(context.Background(), c.room); err != nil || len(ts) != 1 {
			t.Fatalf("typing %v", ts)
		}
		step(alice, fmt.Sprintf(`{"type":"text:typing:off","from":%q}`, c.aliceM), 201, 7)
		step(alice, fmt.Sprintf(`{"type":"text:typing:off","from":%q}`, c.aliceM), 200, 0)
		// A preview that changes is a new typing:on event (at most one a second).
		step(alice, fmt.Sprintf(`{"type":"text:typing:on","from":%q,"body":{"text":"hel"}}`, c.aliceM), 201, 8)
		v.clock.Advance(chat.TypingEvery)
		step(alice, fmt.Sprintf(`{"type":"text:typing:on","from":%q,"body":{"text":"hell"}}`, c.aliceM), 201, 9)
		// image, custom, event:delete.
		step(alice, fmt.Sprintf(`{"type":"image","from":%q,"body":{"representations":{"original":{"url":"https://example.com/i.png"}}}}`, c.aliceM), 201, 10)
		step(alice, fmt.Sprintf(`{"type":"custom:poll","from":%q,"body":{"q":"lunch?"}}`, c.aliceM), 201, 11)
		step(alice, fmt.Sprintf(`{"type":"event:delete","from":%q,"body":{"event_id":3}}`, c.aliceM), 201, 12)
		// Admin texts without from come from the program.
		step(v.admin, `{"type":"text","body":{"text":"system says hi"}}`, 201, 13)
		// A private text to bob.
		step(alice, fmt.Sprintf(`{"type":"text","from":%q,"to":%q,"body":{"text":"psst"}}`, c.aliceM, c.bobM), 201, 14)
		// An engine-sent message (any other surface) shows up in the list.
		sent, err := v.e.Send(context.Background(), c.room, engineID(t, "USR-", c.bob), chat.NewMessage{Text: "from another surface"})
		if err != nil || sent.Pos != 15 {
			t.Fatal(sent, err)
		}
		if _, err := v.e.Edit(context.Background(), c.room, engineID(t, "USR-", c.bob), 15, chat.NewMessage{Text: "edited"}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.e.Notice(context.Background(), c.room, "notice"); err != nil {
			t.Fatal(err)
		}

		want := []string{
			fmt.Sprintf(`{"id":1,"type":"member:joined","from":%q,"body":{"user":{"id":%q,"name":"ev-alice"}}}`, c.aliceM, c.alice),
			fmt.Sprintf(`{"id":2,"type":"member:joined","from":%q,"body":{"user":{"id":%q,"name":"ev-bob"}}}`, c.bobM, c.bob),
			fmt.Sprintf(`{"id":3,"type":"text","from":%q,"body":{"text":"hello"}}`, c.aliceM),
			fmt.Sprintf(`{"id":4,"type":"text:delivered","from":%q,"body":{"event_id":3}}`, c.bobM),
			fmt.Sprintf(`{"id":5,"type":"text:seen","from":%q,"body":{"event_id":3}}`, c.bobM),
			fmt.Sprintf(`{"id":6,"type":"text:typing:on","from":%q,"body":{}}`, c.aliceM),
			fmt.Sprintf(`{"id":7,"type":"text:typing:off","from":%q,"body":{}}`, c.aliceM),
			fmt.Sprintf(`{"id":8,"type":"text:typing:on","from":%q,"body":{"text":"hel"}}`, c.aliceM),
			fmt.Sprintf(`{"id":9,"type":"text:typing:on","from":%q,"body":{"text":"hell"}}`, c.aliceM),
			fmt.Sprintf(`{"id":10,"type":"image","from":%q,"body":{"representations":{"original":{"url":"https://example.com/i.png"}}}}`, c.aliceM),
			fmt.Sprintf(`{"id":11,"type":"custom:poll","from":%q,"body":{"q":"lunch?"}}`, c.aliceM),
			fmt.Sprintf(`{"id":12,"type":"event:delete","from":%q,"body":{"event_id":3}}`, c.aliceM),
			`{"id":13,"type":"text","body":{"text":"system says hi"}}`,
			fmt.Sprintf(`{"id":14,"type":"text","from":%q,"to":%q,"body":{"text":"psst"}}`, c.aliceM, c.bobM),
			fmt.Sprintf(`{"id":15,"type":"text","from":%q,"body":{"text":"from another surface"}}`, c.bobM),
			fmt.Sprintf(`{"id":16,"type":"custom:edit","from":%q,"body":{"event_id":15,"text":"edited"}}`, c.bobM),
			`{"id":17,"type":"text","body":{"text":"notice"}}`,
		}
		t1 := "2026-03-01T10:00:01.000Z"
		var wantList []any
		for i, w := range want {
			m := jsonOf(t, "%s", w).(map[string]any)
			m["timestamp"] = t0
			if i+1 >= 9 { // after the clock moved a second for the typing throttle
				m["timestamp"] = t1
			}
			m["href"] = evHref(i + 1)
			wantList = append(wantList, m)
		}
		got := v.must(200, v.do("GET", "/conversations/"+c.cid+"/events", v.admin, nil)).JSON
		diff(t, wantList, got)

		// The image is an engine message whose text is the picture's address.
		img, _ := v.e.Event(context.Background(), c.room, 10)
		if img.Text != "https://example.com/i.png" {
			t.Fatalf("image text %q", img.Text)
		}
		// The delete went through the engine.
		if msg, err := v.e.Message(context.Background(), c.room, 3); err != nil || msg.Deleted.IsZero() {
			t.Fatalf("message 3 not deleted: %+v %v", msg, err)
		}

		// Paging and filters of the list.
		ids := func(q string, token string) []float64 {
			var out []float64
			for _, e := range v.must(200, v.do("GET", "/conversations/"+c.cid+"/events"+q, token, nil)).arr() {
				out = append(out, e.(map[string]any)["id"].(float64))
			}
			return out
		}
		diff(t, []float64{3, 4, 5}, ids("?start_id=3&end_id=5", v.admin))
		diff(t, []float64{17, 16}, ids("?order=desc&page_size=2", v.admin))
		diff(t, []float64{5, 4, 3}, ids("?order=DESC&start_id=3&end_id=5", v.admin))
		diff(t, []float64{6, 8, 9}, ids("?event_type=text:typing:on", v.admin))
		diff(t, []float64(nil), ids("?start_id=100", v.admin))
		// Visibility: the private text to bob is not shown to a third member.
		v.join(c.cid, v.user("ev-carol"))
		carol := v.token("ev-carol")
		if got := ids("?start_id=13&end_id=15", carol); !cmpEq(got, []float64{13, 15}) {
			t.Fatalf("carol sees %v", got)
		}
		if got := ids("?start_id=13&end_id=15", bob); !cmpEq(got, []float64{13, 14, 15}) {
			t.Fatalf("bob sees %v", got)
		}
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events/14", carol, nil), 404, codeEventNotFound, "")

		// DELETE an event: the engine lets only the author delete.
		v.wantError(v.do("DELETE", "/conversations/"+c.cid+"/events/15", alice, nil), 403, codePermission, "")
		diff(t, map[string]any{}, v.must(200, v.do("DELETE", "/conversations/"+c.cid+"/events/15", bob, nil)).JSON)
		v.wantError(v.do("DELETE", "/conversations/"+c.cid+"/events/15", bob, nil), 400, codeEventConflict, "")
		v.wantError(v.do("DELETE", "/conversations/"+c.cid+"/events/1", v.admin, nil), 404, codeEventNotFound, "")
		v.wantError(v.do("DELETE", "/conversations/"+c.cid+"/events/999", v.admin, nil), 404, codeEventNotFound, "")
	})
}

func cmpEq(a, b []float64) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestEventErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("ee")
		alice := v.token("ee-alice")
		events := func() uint64 {
			r, _ := v.e.Room(context.Background(), c.room)
			return r.LastPos
		}
		other := v.chatRoom("other")
		for _, tc := range []struct {
			name, token, path, body string
			status                  int
			code, field             string
		}{
			{"no type", alice, "", fmt.Sprintf(`{"from":%q}`, c.aliceM), 400, codeValidation, "type"},
			{"type not a string", alice, "", `{"type":1}`, 400, codeValidation, "type"},
			{"unknown type", alice, "", fmt.Sprintf(`{"type":"sms","from":%q}`, c.aliceM), 400, codeValidation, "type"},
			{"member:media", alice, "", fmt.Sprintf(`{"type":"member:media","from":%q,"body":{}}`, c.aliceM), 400, codeValidation, "type"},
			{"custom without a name", alice, "", fmt.Sprintf(`{"type":"custom:","from":%q}`, c.aliceM), 400, codeValidation, "type"},
			{"text without body", alice, "", fmt.Sprintf(`{"type":"text","from":%q}`, c.aliceM), 400, codeValidation, "body.text"},
			{"text without text", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":{}}`, c.aliceM), 400, codeValidation, "body.text"},
			{"text not a string", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":5}}`, c.aliceM), 400, codeValidation, "body.text"},
			{"empty text", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":""}}`, c.aliceM), 400, codeValidation, "body.text"},
			{"body not an object", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":"hi"}`, c.aliceM), 400, codeValidation, "body"},
			{"image without body", alice, "", fmt.Sprintf(`{"type":"image","from":%q}`, c.aliceM), 400, codeValidation, "body"},
			{"seen without event_id", alice, "", fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{}}`, c.aliceM), 400, codeValidation, "body.event_id"},
			{"seen event_id 0", alice, "", fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":0}}`, c.aliceM), 400, codeValidation, "body.event_id"},
			{"seen event_id word", alice, "", fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":"x"}}`, c.aliceM), 400, codeValidation, "body.event_id"},
			{"seen past the end", alice, "", fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":99}}`, c.aliceM), 400, codeValidation, "body.event_id"},
			{"seen without from (admin)", "", "", `{"type":"text:seen","body":{"event_id":1}}`, 400, codeValidation, "from"},
			{"typing without from (admin)", "", "", `{"type":"text:typing:on"}`, 400, codeValidation, "from"},
			{"user without from", alice, "", `{"type":"text","body":{"text":"x"}}`, 400, codeValidation, "from"},
			{"user as another member", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.bobM), 403, codePermission, ""},
			{"unknown from", "", "", `{"type":"text","from":"MEM-00000000-0000-0000-0000-000000000001","body":{"text":"x"}}`, 404, codeMemberNotFound, ""},
			{"from of another conversation", "", "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, other.aliceM), 404, codeMemberNotFound, ""},
			{"unknown to", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"to":"MEM-x","body":{"text":"x"}}`, c.aliceM), 404, codeMemberNotFound, ""},
			{"delete a non-message", alice, "", fmt.Sprintf(`{"type":"event:delete","from":%q,"body":{"event_id":1}}`, c.aliceM), 404, codeEventNotFound, ""},
			{"user in another conversation", v.token("other-alice"), "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.aliceM), 404, codeConvNotFound, ""},
			{"unknown conversation", alice, "/conversations/CON-00000000-0000-0000-0000-000000000001/events", `{"type":"text"}`, 404, codeConvNotFound, ""},
			{"malformed JSON", alice, "", `{"type":`, 400, codeValidation, "body"},
			{"empty body", alice, "", ``, 400, codeValidation, "body"},
			{"text too long", alice, "", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":%q}}`, c.aliceM, strings.Repeat("x", 70000)), 400, codeValidation, "body.text"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok := tc.token
				if tok == "" {
					tok = v.admin
				}
				path := tc.path
				if path == "" {
					path = "/conversations/" + c.cid + "/events"
				}
				n := events()
				v.wantError(v.do("POST", path, tok, tc.body), tc.status, tc.code, tc.field)
				if events() != n {
					t.Fatal("a refused event was stored")
				}
			})
		}
		// A left member can neither post nor type.
		v.must(200, v.do("DELETE", "/conversations/"+c.cid+"/members/"+c.bobM, v.admin, nil))
		v.wantError(v.event(c, v.admin, fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.bobM)), 403, codePermission, "")
		v.wantError(v.event(c, v.admin, fmt.Sprintf(`{"type":"text:typing:on","from":%q}`, c.bobM)), 403, codePermission, "")
		// After a rejoin, the old member id does not speak for the new membership.
		newBob := v.join(c.cid, c.bob)
		v.wantError(v.event(c, v.token("ee-bob"), fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.bobM)), 403, codePermission, "")
		v.wantError(v.event(c, v.token("ee-bob"), fmt.Sprintf(`{"type":"text:seen","from":%q,"body":{"event_id":1}}`, c.bobM)), 403, codePermission, "")
		r := v.must(201, v.event(c, v.token("ee-bob"), fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"back"}}`, newBob)))
		if ev, _ := v.e.Event(context.Background(), c.room, uint64(r.obj()["id"].(float64))); memberID(ev.From) != newBob {
			t.Fatalf("text from %s, want the new member %s", memberID(ev.From), newBob)
		}
		// Retrieval errors.
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events/0", v.admin, nil), 404, codeEventNotFound, "")
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events/abc", v.admin, nil), 404, codeEventNotFound, "")
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events/999", v.admin, nil), 404, codeEventNotFound, "")
		v.wantError(v.do("PUT", "/conversations/"+c.cid+"/events/1", v.admin, nil), 405, codeMethod, "")
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events?page_size=0", v.admin, nil), 400, codeValidation, "page_size")
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events?start_id=5&end_id=4", v.admin, nil), 400, codeValidation, "end_id")
		v.wantError(v.do("GET", "/conversations/"+c.cid+"/events?order=sideways", v.admin, nil), 400, codeValidation, "order")
		// An ended conversation takes no text.
		if _, err := v.e.EndRoom(context.Background(), c.room); err != nil {
			t.Fatal(err)
		}
		v.wantError(v.event(c, alice, fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.aliceM)), 400, codeEnded, "")
		conv := v.must(200, v.do("GET", "/conversations/"+c.cid, v.admin, nil)).obj()
		if conv["timestamp"].(map[string]any)["destroyed"] != t0 {
			t.Fatalf("ended conversation timestamps %v", conv["timestamp"])
		}
	})
}

func TestTypingExpires(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("ty")
		v.must(201, v.event(c, v.admin, fmt.Sprintf(`{"type":"text:typing:on","from":%q}`, c.aliceM)))
		v.clock.Advance(11 * time.Second) // the engine's default typing TTL is 10 s
		evs := v.must(200, v.do("GET", "/conversations/"+c.cid+"/events?order=desc&page_size=1", v.admin, nil)).arr()
		if len(evs) != 1 || evs[0].(map[string]any)["type"] != "text:typing:off" {
			t.Fatalf("last event %v", evs)
		}
	})
}
