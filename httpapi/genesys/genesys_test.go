package genesys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

var (
	reUserID = regexp.MustCompile(`^[0-9A-F]{16}$`)
	reKey    = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// normalise checks the random identifiers of an answer and replaces them by the spec
// example's, so that the rest compares exactly.
func normalise(t *testing.T, got, spec map[string]any) {
	t.Helper()
	if s, _ := got["userId"].(string); !reUserID.MatchString(s) {
		t.Errorf("userId %q is not 16 hex digits", s)
	}
	if s, _ := got["secureKey"].(string); !reKey.MatchString(s) {
		t.Errorf("secureKey %q is not 32 hex digits (128 bits)", s)
	}
	if id, ok := got["chatId"].(string); ok {
		if _, err := chat.ParseID(id); err != nil || len(id) != 26 {
			t.Errorf("chatId %q is not a ULID", id)
		}
		got["chatId"] = spec["chatId"]
	}
	got["userId"], got["secureKey"] = spec["userId"], spec["secureKey"]
}

// The spec's examples, with the slips the wire notes list corrected: alias is a string, and
// messageType is absent rather than null. Every answer also carries nextPosition (ours).
const (
	specRequestChat = `{"statusCode":0,"alias":"117","userId":"007555677B20000A","secureKey":"4ee15d7e1c343c8e",
		"messages":[{"from":{"nickname":"First Last","participantId":1,"type":"Client"},"index":1,"type":"ParticipantJoined","utcTime":1432845088000}],
		"chatId":"00048aAPEQJ8000U","nextPosition":2}`
	specSend = `{"messages":[{"from":{"nickname":"First Last","participantId":1,"type":"Client"},"index":7,"text":"hello","type":"Message","utcTime":1432845541000}],
		"chatEnded":false,"statusCode":0,"alias":"117","secureKey":"3e2a69d421ae2672","userId":"007555677CB4000D","nextPosition":8}`
	specRefresh = `{"messages":[{"from":{"nickname":"AgentNick","participantId":3,"type":"Agent"},"index":7,"text":"hello","type":"Message","utcTime":1451961875000}],
		"chatEnded":false,"statusCode":0,"alias":"249","secureKey":"45327f306556129f","userId":"00F9568B2DA601BA","tenantName":"Resources","nextPosition":8}`
)

func TestSpecExamples(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		t.Run("requestChat", func(t *testing.T) {
			ev := newEnv(t, mk)
			res := ev.post("/"+service, url.Values{"firstName": {"First"}, "lastName": {"Last"}, "subject": {"Subject to"}})
			got, spec := decode(t, res.body), decode(t, specRequestChat)
			normalise(t, got, spec)
			if diff := cmp.Diff(spec, got); diff != "" || res.status != 200 {
				t.Errorf("status %d (-spec +got):\n%s", res.status, diff)
			}
		})
		t.Run("send", func(t *testing.T) {
			ev := newEnv(t, mk)
			c := ev.requestChat(url.Values{"nickname": {"First Last"}})
			agent := ev.agent(c, "AgentNick")                                                  // 2
			must(ev.e.Send(ctx, c.room(), agent.ID, chat.NewMessage{Text: "how can I help?"})) // 3
			must(ev.e.StartTyping(ctx, c.room(), agent.ID, ""))                                // 4
			must(ev.e.StopTyping(ctx, c.room(), agent.ID))                                     // 5
			c.do("send", "message", "hi")                                                      // 6
			ev.clock.Advance(time.UnixMilli(1432845541000).Sub(ev.clock.Now()))
			res, _ := c.do("send", "message", "hello", "transcriptPosition", "7")
			got, spec := decode(t, res.body), decode(t, specSend)
			normalise(t, got, spec)
			if diff := cmp.Diff(spec, got); diff != "" || res.status != 200 {
				t.Errorf("status %d (-spec +got):\n%s", res.status, diff)
			}
		})
		t.Run("refresh", func(t *testing.T) {
			ev := newEnv(t, mk, func(c *genesys.Config) { c.Alias = "249" })
			c := ev.requestChat(url.Values{"nickname": {"Customer"}}) // 1, participant 1
			bot := must(ev.e.CreateUser(ctx, chat.NewUser{Name: "router"}))
			must(ev.e.Join(ctx, c.room(), bot.ID, chat.JoinOptions{Role: chat.RoleBot})) // 2, participant 2
			agent := ev.agent(c, "AgentNick")                                            // 3, participant 3
			must(ev.e.Leave(ctx, c.room(), bot.ID))                                      // 4
			c.do("send", "message", "anyone?")                                           // 5
			c.do("send", "message", "hello?")                                            // 6
			ev.clock.Advance(time.UnixMilli(1451961875000).Sub(ev.clock.Now()))
			must(ev.e.Send(ctx, c.room(), agent.ID, chat.NewMessage{Text: "hello"})) // 7
			res, _ := c.do("refresh", "transcriptPosition", "7")
			got, spec := decode(t, res.body), decode(t, specRefresh)
			normalise(t, got, spec)
			if diff := cmp.Diff(spec, got); diff != "" || res.status != 200 {
				t.Errorf("status %d (-spec +got):\n%s", res.status, diff)
			}
		})
	})
}

// msg is a compact form of a transcript event for comparisons.
type msg struct {
	Index       uint64
	Type, Text  string
	From        string // nickname/participantId/type
	MessageType string
}

func compact(ms []genesys.Message) []msg {
	out := make([]msg, 0, len(ms))
	for _, m := range ms {
		out = append(out, msg{m.Index, m.Type, m.Text, fmt.Sprintf("%s/%d/%s", m.From.Nickname, m.From.ParticipantID, m.From.Type), m.MessageType})
	}
	return out
}

func TestOperations(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk)
		tests := []struct {
			name  string
			setup func(c *client)
			op    string
			kv    []string
			// want are the answer's messages; next is nextPosition.
			want  []msg
			next  uint64
			ended bool
			check func(t *testing.T, c *client)
		}{
			{name: "send with messageType and transcriptPosition", op: "send",
				kv:   []string{"message", "hi there", "messageType", "text", "transcriptPosition", "1"},
				want: []msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}, {2, "Message", "hi there", "Ann/1/Client", "text"}}, next: 3},
			{name: "send without transcriptPosition", op: "send", kv: []string{"message", "hi"}, want: []msg{}, next: 3,
				check: func(t *testing.T, c *client) {
					m := must(c.ev.e.Message(ctx, c.room(), 2))
					if m.Text != "hi" || len(m.Body) != 0 {
						t.Errorf("stored %+v", m)
					}
				}},
			{name: "startTyping with preview", op: "startTyping", kv: []string{"message", "I need", "transcriptPosition", "2"},
				want: []msg{{2, "TypingStarted", "I need", "Ann/1/Client", ""}}, next: 3},
			{name: "stopTyping", setup: func(c *client) { c.do("startTyping") }, op: "stopTyping", kv: []string{"transcriptPosition", "2"},
				want: []msg{{2, "TypingStarted", "", "Ann/1/Client", ""}, {3, "TypingStopped", "", "Ann/1/Client", ""}}, next: 4},
			{name: "refresh 0", setup: func(c *client) { c.do("send", "message", "x") }, op: "refresh", kv: []string{"transcriptPosition", "0"},
				want: []msg{}, next: 3},
			{name: "refresh 1", setup: func(c *client) { c.do("send", "message", "x") }, op: "refresh", kv: []string{"transcriptPosition", "1"},
				want: []msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}, {2, "Message", "x", "Ann/1/Client", ""}}, next: 3},
			{name: "refresh default is 1", op: "refresh",
				want: []msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}}, next: 2},
			{name: "refresh n", setup: func(c *client) { c.do("send", "message", "x"); c.do("send", "message", "y") }, op: "refresh",
				kv: []string{"transcriptPosition", "3"}, want: []msg{{3, "Message", "y", "Ann/1/Client", ""}}, next: 4},
			{name: "refresh past the end", op: "refresh", kv: []string{"transcriptPosition", "9"}, want: []msg{}, next: 2},
			{name: "refresh with typing preview", op: "refresh", kv: []string{"transcriptPosition", "2", "message", "typed so far"},
				want: []msg{{2, "TypingStarted", "typed so far", "Ann/1/Client", ""}}, next: 3},
			{name: "disconnect", op: "disconnect", kv: []string{"transcriptPosition", "2"},
				want: []msg{{2, "ParticipantLeft", "", "Ann/1/Client", ""}}, next: 3, ended: true,
				check: func(t *testing.T, c *client) {
					if m := must(c.ev.e.MemberByUser(ctx, c.room(), c.user())); m.State != chat.Left {
						t.Errorf("member %v after disconnect", m.State)
					}
					res, r := c.do("refresh")
					if res.status != 200 || r.StatusCode != 2 || !*r.ChatEnded || r.SecureKey != "" {
						t.Errorf("refresh after disconnect: %s", res.body)
					}
				}},
			{name: "pushUrl", op: "pushUrl", kv: []string{"pushUrl", "https://example.com/help?a=1", "transcriptPosition", "2"},
				want: []msg{{2, "PushUrl", "https://example.com/help?a=1", "Ann/1/Client", ""}}, next: 3},
			{name: "updateNickname", op: "updateNickname", kv: []string{"nickname", "Annie", "transcriptPosition", "1"},
				want: []msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}, {2, "NicknameUpdated", "Annie", "Annie/1/Client", ""}}, next: 3},
			{name: "readReceipt", setup: func(c *client) { c.do("send", "message", "x") }, op: "readReceipt", kv: []string{"transcriptPosition", "2"},
				want: []msg{}, next: 4, // the receipt took position 3, which Genesys does not show
				check: func(t *testing.T, c *client) {
					if m := must(c.ev.e.MemberByUser(ctx, c.room(), c.user())); m.Read != 2 {
						t.Errorf("read watermark %d", m.Read)
					}
					_, r := c.do("refresh", "transcriptPosition", "1")
					if diff := cmp.Diff([]msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}, {2, "Message", "x", "Ann/1/Client", ""}}, compact(r.Messages)); diff != "" || r.NextPosition != 4 {
						t.Errorf("next %d, transcript (-want +got):\n%s", r.NextPosition, diff)
					}
					// Receipts never move backwards: an older one is accepted and changes nothing.
					res, r := c.do("readReceipt", "transcriptPosition", "1")
					if res.status != 200 || r.StatusCode != 0 || must(c.ev.e.MemberByUser(ctx, c.room(), c.user())).Read != 2 || r.NextPosition != 4 {
						t.Errorf("older receipt: %s", res.body)
					}
				}},
			{name: "customNotice", op: "customNotice", kv: []string{"message", "customer uploaded a form", "transcriptPosition", "2"},
				want: []msg{{2, "CustomNotice", "customer uploaded a form", "Ann/1/Client", ""}}, next: 3},
			{name: "updateData", op: "updateData", kv: []string{"userData[order]", "42", "userData[TimeZone]", "-480"}, want: []msg{}, next: 2,
				check: func(t *testing.T, c *client) {
					a := must(c.ev.e.Room(ctx, c.room())).Attributes
					if a["genesys.userData.order"] != "42" || a["genesys.userData.TimeZone"] != "-480" || a["genesys.userData.plan"] != "gold" {
						t.Errorf("attributes %v", a)
					}
					c.do("updateData", "userData[plan]", "")
					if _, ok := must(c.ev.e.Room(ctx, c.room())).Attributes["genesys.userData.plan"]; ok {
						t.Error("empty value did not remove the key")
					}
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := ev.requestChat(url.Values{"nickname": {"Ann"}, "userData[plan]": {"gold"}})
				if tt.setup != nil {
					tt.setup(c)
				}
				res, r := c.do(tt.op, tt.kv...)
				if res.status != 200 || r.StatusCode != 0 {
					t.Fatalf("%d %s", res.status, res.body)
				}
				if r.Alias != "117" || r.UserID != c.userID || r.SecureKey != c.key || r.ChatEnded == nil || *r.ChatEnded != tt.ended || r.Errors != nil {
					t.Errorf("answer %s", res.body)
				}
				if diff := cmp.Diff(tt.want, compact(r.Messages)); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
				if r.NextPosition != tt.next {
					t.Errorf("nextPosition %d, want %d", r.NextPosition, tt.next)
				}
				if (tt.op == "refresh") != (r.TenantName == "Resources") {
					t.Errorf("tenantName %q", r.TenantName)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
			})
		}
	})
}

// wantErr is an expected refusal.
type wantErr struct {
	http, statusCode int
	codes            []int
}

func checkErr(t *testing.T, res result, w wantErr) {
	t.Helper()
	if res.status != w.http {
		t.Fatalf("HTTP %d, want %d: %s", res.status, w.http, res.body)
	}
	var r struct {
		StatusCode *int               `json:"statusCode"`
		ChatEnded  *bool              `json:"chatEnded"`
		SecureKey  string             `json:"secureKey"`
		Errors     []genesys.APIError `json:"errors"`
	}
	if err := json.Unmarshal([]byte(res.body), &r); err != nil {
		t.Fatalf("%v: %s", err, res.body)
	}
	var codes []int
	for _, e := range r.Errors {
		codes = append(codes, e.Code)
		if e.Advice == "" {
			t.Errorf("error %d without advice", e.Code)
		}
	}
	if diff := cmp.Diff(w.codes, codes); diff != "" {
		t.Errorf("codes (-want +got):\n%s\n%s", diff, res.body)
	}
	if w.http == 200 || w.statusCode != 0 {
		if r.StatusCode == nil || *r.StatusCode != w.statusCode || r.SecureKey != "" {
			t.Errorf("answer %s", res.body)
		}
		if w.statusCode == 2 && (r.ChatEnded == nil || !*r.ChatEnded) {
			t.Errorf("statusCode 2 without chatEnded: %s", res.body)
		}
	} else if r.StatusCode != nil {
		t.Errorf("HTTP %d answer with a statusCode: %s", res.status, res.body)
	}
	if (w.http == 429 || w.http == 503) && res.header.Get("Retry-After") == "" {
		t.Errorf("HTTP %d without Retry-After", w.http)
	}
}

func TestErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk, func(c *genesys.Config) { c.MaxBodyBytes = 4096 })
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		other := ev.requestChat(url.Values{"nickname": {"Bob"}})
		ended := ev.requestChat(url.Values{"nickname": {"Cy"}})
		must(ev.e.EndRoom(ctx, ended.room()))
		left := ev.requestChat(url.Values{"nickname": {"Di"}})
		left.do("disconnect")
		path := func(cl *client, op string) string { return fmt.Sprintf("/%s/%s/%s", service, cl.chatID, op) }
		form := func(cl *client, kv ...string) string { return cl.form(kv...).Encode() }
		sc2 := wantErr{200, 2, []int{248}}
		bad := func(codes ...int) wantErr { return wantErr{400, 0, codes} }
		tests := []struct {
			name, method, path, ct, body string
			want                         wantErr
		}{
			{"unknown serviceName", "POST", "/nope", "", "nickname=x", wantErr{404, 0, []int{306}}},
			{"unknown serviceName op", "POST", "/nope/" + c.chatID + "/send", "", form(c, "message", "x"), wantErr{404, 0, []int{306}}},
			{"unknown operation", "POST", path(c, "fly"), "", form(c), wantErr{404, 0, []int{300}}},
			{"requestChat with a trailing slash", "POST", "/" + service + "/", "", "subject=x", bad(161, 102, 103)},
			{"two segments", "POST", "/" + service + "/" + c.chatID, "", form(c), wantErr{404, 0, []int{300}}},
			{"extra path", "POST", path(c, "send") + "/x", "", form(c), wantErr{404, 0, []int{300}}},
			{"GET", "GET", path(c, "refresh"), "", "", wantErr{405, 0, []int{300}}},
			{"requestChat without names", "POST", "/" + service, "", "subject=x", bad(161, 102, 103)},
			{"requestChat first name only", "POST", "/" + service, "", "firstName=A", bad(161, 103)},
			{"requestChat last name only", "POST", "/" + service, "", "lastName=B&nickname=++", bad(161, 102)},
			{"requestChat bad email", "POST", "/" + service, "", "nickname=A&emailAddress=not-an-address", bad(364)},
			{"requestChat huge nickname", "POST", "/" + service, "", "nickname=" + strings.Repeat("n", 2000), bad(300)},
			{"requestChat JSON", "POST", "/" + service, "application/json", `{"nickname":"A"}`, wantErr{415, 0, []int{300}}},
			{"send JSON", "POST", path(c, "send"), "application/json", `{"message":"x"}`, wantErr{415, 0, []int{300}}},
			{"text/plain", "POST", path(c, "send"), "text/plain", `message=x`, wantErr{415, 0, []int{300}}},
			{"too large", "POST", path(c, "send"), "", form(c, "message", strings.Repeat("a", 5000)), wantErr{413, 0, []int{300}}},
			{"missing credentials", "POST", path(c, "send"), "", "message=x", bad(151, 152, 153)},
			{"missing alias", "POST", path(c, "refresh"), "", "userId=" + c.userID + "&secureKey=" + c.key, bad(151)},
			{"missing chatId", "POST", "/" + service + "//send", "", form(c, "message", "x"), bad(154)},
			{"send without message", "POST", path(c, "send"), "", form(c), bad(162)},
			{"send empty message", "POST", path(c, "send"), "", form(c, "message", ""), bad(162)},
			{"pushUrl missing", "POST", path(c, "pushUrl"), "", form(c), bad(163)},
			{"pushUrl relative", "POST", path(c, "pushUrl"), "", form(c, "pushUrl", "/x"), bad(300)},
			{"pushUrl javascript", "POST", path(c, "pushUrl"), "", form(c, "pushUrl", "javascript:alert(1)"), bad(300)},
			{"updateNickname missing", "POST", path(c, "updateNickname"), "", form(c), bad(161)},
			{"updateData missing", "POST", path(c, "updateData"), "", form(c), bad(105)},
			{"readReceipt missing position", "POST", path(c, "readReceipt"), "", form(c), bad(300)},
			{"readReceipt past the end", "POST", path(c, "readReceipt"), "", form(c, "transcriptPosition", "99"), bad(300)},
			{"bad transcriptPosition", "POST", path(c, "refresh"), "", form(c, "transcriptPosition", "-1"), bad(300)},
			{"malformed form", "POST", path(c, "send"), "", "message=%zz&" + form(c), bad(300)},
			{"wrong secureKey", "POST", path(c, "send"), "", url.Values{"alias": {"1"}, "userId": {c.userID}, "secureKey": {wrongKey(c.key)}, "message": {"x"}}.Encode(), sc2},
			{"lower-case userId, wrong key", "POST", path(c, "send"), "", url.Values{"alias": {"1"}, "userId": {strings.ToLower(c.userID)}, "secureKey": {"x"}, "message": {"x"}}.Encode(), sc2},
			{"another chat's key", "POST", path(c, "send"), "", url.Values{"alias": {"1"}, "userId": {c.userID}, "secureKey": {other.key}, "message": {"x"}}.Encode(), sc2},
			{"another chat's user", "POST", path(c, "send"), "", url.Values{"alias": {"1"}, "userId": {other.userID}, "secureKey": {other.key}, "message": {"x"}}.Encode(), sc2},
			{"unknown chatId", "POST", "/" + service + "/" + chat.ID{1}.String() + "/send", "", form(c, "message", "x"), sc2},
			{"malformed chatId", "POST", "/" + service + "/xyz/send", "", form(c, "message", "x"), sc2},
			{"chatId in UUID form", "POST", "/" + service + "/" + c.room().UUID() + "/send", "", form(c, "message", "x"), sc2},
			{"other serviceName", "POST", "/other/" + c.chatID + "/send", "", form(c, "message", "x"), sc2},
			{"unknown userId", "POST", path(c, "send"), "", url.Values{"alias": {"1"}, "userId": {"0000000000000000"}, "secureKey": {c.key}, "message": {"x"}}.Encode(), sc2},
			{"party left", "POST", path(left, "refresh"), "", form(left), sc2},
			{"ended chat send", "POST", path(ended, "send"), "", form(ended, "message", "x"), wantErr{200, 2, []int{249}}},
			{"ended chat typing", "POST", path(ended, "startTyping"), "", form(ended), wantErr{200, 2, []int{249}}},
			{"ended chat pushUrl", "POST", path(ended, "pushUrl"), "", form(ended, "pushUrl", "http://x.y"), wantErr{200, 2, []int{249}}},
			{"ended chat nickname", "POST", path(ended, "updateNickname"), "", form(ended, "nickname", "z"), wantErr{200, 2, []int{249}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ct := tt.ct
				if ct == "" {
					ct = "application/x-www-form-urlencoded"
				}
				before := snapshot(t, ev)
				res := ev.raw(tt.method, tt.path, ct, tt.body)
				checkErr(t, res, tt.want)
				if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
					t.Errorf("a refused request changed the store (-before +after):\n%s", diff)
				}
			})
		}
		// An ended chat can still be read, with chatEnded true and statusCode 0.
		res, r := ended.do("refresh", "transcriptPosition", "1")
		if res.status != 200 || r.StatusCode != 0 || !*r.ChatEnded || len(r.Messages) != 1 || r.NextPosition != 3 {
			t.Errorf("refresh of an ended chat: %s", res.body)
		}
		// statusCode 2 for an authenticated party of an ended chat says where the transcript ends.
		_, r2 := ended.do("send", "message", "x")
		if r2.NextPosition != 3 {
			t.Errorf("ended send: nextPosition %d", r2.NextPosition)
		}
		// The wrong-key answer is the same as the unknown-chat answer.
		a := ev.post(path(c, "send"), url.Values{"alias": {"1"}, "userId": {c.userID}, "secureKey": {"bad"}, "message": {"x"}})
		b := ev.post("/"+service+"/"+chat.ID{1}.String()+"/send", c.form("message", "x"))
		if a.body != b.body {
			t.Errorf("wrong key %s != unknown chat %s", a.body, b.body)
		}
		// A party is not removed from the chat by a wrong key (see decisions.go).
		if _, r := c.do("refresh"); r.StatusCode != 0 {
			t.Error("a wrong key locked the party out")
		}
	})
}

// snapshot is what a refused request must not change: every room and its members.
func snapshot(t *testing.T, ev *env) any {
	ctx := context.Background()
	type roomState struct {
		Room    chat.Room
		Members []chat.Member
	}
	var out []roomState
	for _, r := range must(ev.e.Rooms(ctx, chat.ListFilter{})) {
		out = append(out, roomState{r, must(ev.e.Members(ctx, r.ID))})
	}
	return struct {
		Rooms []roomState
		Users int
	}{out, len(must(ev.e.Users(ctx, chat.ListFilter{})))}
}

func TestNewConfig(t *testing.T) {
	e := must(chat.Open(context.Background(), stores[0].Open(t)))
	defer e.Close()
	for _, cfg := range []genesys.Config{
		{}, {ServiceNames: []string{""}}, {ServiceNames: []string{"a/b"}},
		{ServiceNames: []string{"a"}, MaxEvents: -1}, {ServiceNames: []string{"a"}, Idle: genesys.IdleConfig{Warn: -1}},
	} {
		if h, err := genesys.New(e, cfg); err == nil {
			h.Close()
			t.Errorf("New accepted %+v", cfg)
		}
	}
	if _, err := genesys.New(nil, genesys.Config{ServiceNames: []string{"a"}}); err == nil {
		t.Error("New accepted a nil engine")
	}
}

// TestMultipart: requestChat may be multipart/form-data (the GMS docs allow it); files are
// refused.
func TestMultipart(t *testing.T) {
	ev := newEnv(t, stores[0].Open)
	body := "--X\r\nContent-Disposition: form-data; name=\"nickname\"\r\n\r\nMo\r\n--X\r\nContent-Disposition: form-data; name=\"userData[k]\"\r\n\r\nv\r\n--X--\r\n"
	res := ev.raw("POST", "/"+service, "multipart/form-data; boundary=X", body)
	r := decodeResp(t, res.body)
	if res.status != 200 || r.StatusCode != 0 || r.Messages[0].From.Nickname != "Mo" {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if a := must(ev.e.Room(context.Background(), must(chat.ParseID(r.ChatID)))).Attributes; a["genesys.userData.k"] != "v" || a["genesys.serviceName"] != service {
		t.Errorf("attributes %v", a)
	}
	file := "--X\r\nContent-Disposition: form-data; name=\"nickname\"\r\n\r\nMo\r\n--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\ndata\r\n--X--\r\n"
	checkErr(t, ev.raw("POST", "/"+service, "multipart/form-data; boundary=X", file), wantErr{400, 0, []int{300}})
}

type slowDown time.Duration

func (s slowDown) Error() string             { return "slow down" }
func (s slowDown) RetryAfter() time.Duration { return time.Duration(s) }

func TestGate(t *testing.T) {
	var calls []string
	refuse := map[string]error{}
	ev := newEnv(t, stores[0].Open, func(c *genesys.Config) {
		c.Gate = func(r *http.Request, op string) error {
			calls = append(calls, op)
			return refuse[op]
		}
	})
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	c.do("send", "message", "x")
	c.refresh()
	if diff := cmp.Diff([]string{"requestChat", "send", "refresh"}, calls); diff != "" {
		t.Errorf("Gate calls (-want +got):\n%s", diff)
	}
	refuse["requestChat"] = errors.New("no captcha")
	before := snapshot(t, ev)
	checkErr(t, ev.post("/"+service, url.Values{"nickname": {"Bob"}}), wantErr{403, 0, []int{300}})
	refuse["send"] = slowDown(1500 * time.Millisecond)
	res, _ := c.do("send", "message", "y")
	checkErr(t, res, wantErr{429, 1, []int{200}})
	if res.header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
	}
	if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
		t.Errorf("refused requests changed the store:\n%s", diff)
	}
}

// wrongKey returns a key that differs from key in its first digit.
func wrongKey(key string) string {
	if key[0] == '0' {
		return "1" + key[1:]
	}
	return "0" + key[1:]
}
