package bezlimit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// Bad client frames get an error frame (or message_not_added) and the connection goes on;
// nothing is stored.
func TestBadClientFrames(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		vis := v.chatConn("client:1", room)
		watcher := v.chatConn("operator:9", room) // not joined
		ctx := context.Background()
		before, _ := v.e.Room(ctx, room)

		tests := []struct {
			name     string
			c        *client
			frame    string
			wantType string
			wantCode int
		}{
			{"malformed JSON", vis, `{"type":`, frameTypeError, 422},
			{"not an object", vis, `[1,2]`, frameTypeError, 422},
			{"no type", vis, `{"data":{}}`, frameTypeError, 422},
			{"unknown type", vis, `{"type":"drop_tables","data":{}}`, frameTypeError, 422},
			{"data not an object", vis, `{"type":"send_message","data":"hi"}`, frameTypeError, 422},
			{"text not a string", vis, `{"type":"send_message","data":{"text":5}}`, frameTypeError, 422},
			{"bad attachment", vis, `{"type":"send_message","data":{"text":"x","attachments":["nope"]}}`, frameTypeError, 422},
			{"bad message_id", vis, `{"type":"mark_message_read","data":{"message_id":"7"}}`, frameTypeError, 422},
			{"zero message_id", vis, `{"type":"mark_message_read","data":{"message_id":0}}`, frameTypeError, 422},
			{"trailing data", vis, `{"type":"update_typing","data":{}} {}`, frameTypeError, 422},
			{"receipt past the end", vis, `{"type":"mark_message_read","data":{"message_id":99999}}`, frameTypeError, 422},
			{"empty message", vis, `{"type":"send_message","data":{"text":""}}`, evMessageNotAdded, 422},
			{"not in the chat: post", watcher, `{"type":"send_message","data":{"text":"sneaky"}}`, evMessageNotAdded, 403},
			{"not in the chat: typing", watcher, `{"type":"update_typing","data":{"text":"x","stopped":false}}`, frameTypeError, 403},
			{"not in the chat: receipt", watcher, `{"type":"mark_message_read","data":{"message_id":1}}`, frameTypeError, 403},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.c.sendRaw([]byte(tc.frame))
				f, _ := tc.c.until(tc.wantType, nil)
				var d struct {
					Error wireError `json:"error"`
				}
				json.Unmarshal(f.Data, &d)
				if d.Error.Code != tc.wantCode || d.Error.Message == "" {
					t.Errorf("error = %+v, want code %d", d.Error, tc.wantCode)
				}
			})
		}
		after, _ := v.e.Room(ctx, room)
		if after.LastPos != before.LastPos {
			t.Errorf("bad frames stored events: last position %d → %d", before.LastPos, after.LastPos)
		}
		// The connections still work.
		vis.send(evSendMessage, map[string]any{"text": "still here"})
		watcher.untilText("still here")
	})
}

// A frame over the read limit closes the connection with 1009.
func TestOversizedFrame(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.ReadLimit = 1024 }})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	other := v.chatConn("operator:2", room)
	ctx, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	big := `{"type":"send_message","data":{"text":"` + strings.Repeat("a", 2000) + `"}}`
	_ = vis.c.Write(ctx, websocket.MessageText, []byte(big))
	if code, _ := vis.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Errorf("close status %v, want %v", code, websocket.StatusMessageTooBig)
	}
	// The other connection is unaffected, and nothing was stored.
	other.send(evSendMessage, map[string]any{"text": "fine"})
	f, skipped := other.untilText("fine")
	if has(skipped, evMessageAdded, nil) || f.message().Text != "fine" {
		t.Errorf("unexpected frames %+v", skipped)
	}
}

// Refused upgrades and server-to-server calls answer with an HTTP status and a JSON error.
func TestRefused(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	other := v.newChat(3, 4)
	get := func(path string, hdr http.Header) int {
		req, _ := http.NewRequest("GET", v.srv.URL+path, nil)
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error wireError `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code != resp.StatusCode {
			t.Errorf("%s: body %+v (%v)", path, body, err)
		}
		return resp.StatusCode
	}
	chatQ := func(token, chat string) string {
		return "/chat?" + url.Values{"token": {token}, "chat": {chat}}.Encode()
	}
	tests := []struct {
		name string
		path string
		hdr  http.Header
		want int
	}{
		{"no token", "/chat?chat=" + room.UUID(), nil, 401},
		{"bad token", chatQ("nobody", room.UUID()), nil, 401},
		{"bad bearer", "/chat?chat=" + room.UUID(), http.Header{"Authorization": {"Bearer nobody"}}, 401},
		{"no chat", chatQ("client:1", ""), nil, 422},
		{"bad chat", chatQ("client:1", "not-a-uuid"), nil, 422},
		{"unknown chat", chatQ("client:1", "00000000-0000-0000-0000-000000000001"), nil, 404},
		{"another's chat", chatQ("client:1", other.UUID()), nil, 404}, // as if it did not exist
		{"broadcast for a client", "/broadcast?token=client:1", nil, 403},
		{"no Api-Token", "/online-users", nil, 401},
		{"bad Api-Token", "/online-users", http.Header{"Api-Token": {"wrong"}}, 401},
		{"unknown path", "/nope", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(tc.path, tc.hdr); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	// A Bearer header works where the query token would.
	ctx, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	c, _, err := websocket.Dial(ctx, v.ws+"/chat?chat="+room.UUID(), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer client:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
}

// Server-to-server bad input: nothing stored, a clear status.
func TestServerBadInput(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.MaxBodyBytes = 4096 }})
	room := v.newChat(1, 2)
	ctx := context.Background()
	before, _ := v.e.Room(ctx, room)
	u := room.UUID()
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"not JSON", "POST", "/message", `{`, 400}, // malformed: internal/httpx's ErrMalformed
		{"array for object", "POST", "/message", `[]`, 422},
		{"unknown type", "POST", "/message", `{"type":"shout","text":"x","chat":{"uuid":"` + u + `"}}`, 422},
		{"system without role", "POST", "/message", `{"type":"system","text":"x","chat":{"uuid":"` + u + `"}}`, 422},
		{"no chat", "POST", "/message", `{"text":"x"}`, 422},
		{"unknown chat", "POST", "/message", `{"text":"x","chat":{"uuid":"00000000-0000-0000-0000-000000000001"}}`, 404},
		{"empty text", "POST", "/message", `{"text":"","chat":{"uuid":"` + u + `"}}`, 422},
		{"too large", "POST", "/message", `{"text":"` + strings.Repeat("a", 5000) + `"}`, 413},
		{"GET message", "GET", "/message", ``, 405},
		{"PUT without id", "PUT", "/message", `{"text":"x","chat":{"uuid":"` + u + `"}}`, 422},
		{"PUT to a position that is no message", "PUT", "/message", `{"id":1,"text":"x","chat":{"uuid":"` + u + `"}}`, 404},
		{"PUT elsewhere", "PUT", "/global", `{}`, 405},
		{"operators not array", "POST", "/update/operators", `{"id":1}`, 422},
		{"operator without id", "POST", "/update/operators", `[{"firstname":"x"}]`, 422},
		{"global not object", "POST", "/global", `"x"`, 422},
		{"unknown chat update", "POST", "/update/chat", `{"uuid":"00000000-0000-0000-0000-000000000001"}`, 404},
		{"notification without operator", "POST", "/notifications/chat", `{"chat":{"uuid":"` + v.newChat(5, 0).UUID() + `"},"text":"x"}`, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := v.api(tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Errorf("status %d, want %d: %s", code, tc.want, out)
			}
			var body struct {
				Error wireError `json:"error"`
			}
			if json.Unmarshal(out, &body); body.Error.Code != tc.want {
				t.Errorf("body %s", out)
			}
		})
	}
	after, _ := v.e.Room(ctx, room)
	if after.LastPos != before.LastPos {
		t.Errorf("stored events: %d → %d", before.LastPos, after.LastPos)
	}
}

// The server-to-server pushes reach /broadcast: chat_updated, operator_updated,
// global_updated to every operator, chat_notification to the chat's operator only;
// /online-users lists the broadcast sessions.
func TestServerPushes(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	op2 := v.mustDial("/broadcast", "operator:2", nil)
	op3 := v.mustDial("/broadcast", "operator:3", nil)
	op3b := v.mustDial("/broadcast", "operator:3", nil)

	code, out := v.api("GET", "/online-users", nil)
	var online []onlineUser
	json.Unmarshal(out, &online)
	type row struct {
		ID    int64
		Conns int
	}
	var got []row
	for _, o := range online {
		got = append(got, row{o.User.ID, o.Connections})
	}
	if diff := cmp.Diff([]row{{2, 1}, {3, 2}}, got); code != 200 || diff != "" {
		t.Errorf("/online-users %d (-want +got):\n%s", code, diff)
	}
	if string(online[0].Sources) != `{"widgets":["w1"]}` {
		t.Errorf("sources %s", online[0].Sources)
	}

	if code, out := v.api("POST", "/update/chat", map[string]any{"uuid": room.UUID(), "status": "closed"}); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	for _, c := range []*client{op2, op3, op3b} {
		f, _ := c.until(evChatUpdated, nil)
		var d struct {
			Chat map[string]any `json:"chat"`
		}
		json.Unmarshal(f.Data, &d)
		if d.Chat["uuid"] != room.UUID() || d.Chat["status"] != "closed" {
			t.Errorf("chat_updated %s", f.Data)
		}
	}
	if code, _ := v.api("POST", "/update/operators", []User{{ID: 3, FirstName: "Renamed"}}); code != 200 {
		t.Fatal(code)
	}
	for _, c := range []*client{op2, op3, op3b} {
		c.until(evOperatorUpdated, nil)
	}
	if code, _ := v.api("POST", "/global", map[string]any{"queue": 7}); code != 200 {
		t.Fatal(code)
	}
	for _, c := range []*client{op2, op3, op3b} {
		f, _ := c.until(evGlobalUpdated, nil)
		if string(f.Data) != `{"queue":7}` {
			t.Errorf("global_updated %s", f.Data)
		}
	}
	// The notification goes to operator 2 (the chat's operator) only.
	if code, out := v.api("POST", "/notifications/chat", map[string]any{"chat": map[string]string{"uuid": room.UUID()}, "text": "wake up", "type": "warning"}); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	v.api("POST", "/global", map[string]any{"marker": true})
	_, skipped := op2.until(evGlobalUpdated, nil)
	if !has(skipped, evChatNotification, nil) {
		t.Errorf("operator 2 missed the notification")
	}
	for _, c := range []*client{op3, op3b} {
		if _, skipped := c.until(evGlobalUpdated, nil); has(skipped, evChatNotification, nil) {
			t.Errorf("operator 3 got the notification")
		}
	}
}
