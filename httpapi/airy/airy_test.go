package airy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/memory"
)

const (
	testChannel = "09816fe0-7950-40cb-bf60-adfa0d6d0679"
	testSystem  = "system-api-token-for-tests"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type fixture struct {
	e     *chat.Engine
	svc   *Service
	srv   *httptest.Server
	clock *fakeclock.Clock
}

func newFixture(t *testing.T, store chat.Store, mod func(*Config)) *fixture {
	t.Helper()
	t.Cleanup(func() { store.Close() })
	e, err := chat.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	clock := fakeclock.New(time.Now())
	tokens, err := NewTokens(TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Engine: e, Tokens: tokens, Channels: Channels(testChannel), SystemToken: testSystem, MaxBodyBytes: 4096}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return &fixture{e: e, svc: svc, srv: srv, clock: clock}
}

// call POSTs body (a string, or a value to encode) to endpoint with an optional bearer token
// and decodes the JSON answer into out (when not nil). It returns the status.
func (f *fixture) call(t *testing.T, method, endpoint, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.srv.URL+"/"+endpoint, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, endpoint, ct)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Message == "" {
			t.Errorf("%s %s: error body %q is not {\"message\": ...}", method, endpoint, raw)
		}
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v in %q", endpoint, err, raw)
		}
	}
	return resp.StatusCode
}

type authAnswer struct {
	Token    string    `json:"token"`
	Messages []Message `json:"messages"`
}

func (f *fixture) start(t *testing.T) (authAnswer, Conversation) {
	t.Helper()
	var a authAnswer
	if st := f.call(t, "POST", "chatplugin.authenticate", "", map[string]string{"channel_id": testChannel}, &a); st != 200 {
		t.Fatalf("authenticate: %d", st)
	}
	conv, err := f.svc.Authorize(context.Background(), a.Token)
	if err != nil {
		t.Fatalf("Authorize(new token): %v", err)
	}
	return a, conv
}

func (f *fixture) count(t *testing.T) (rooms, users int) {
	t.Helper()
	rs, err := f.e.Rooms(context.Background(), chat.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	us, err := f.e.Users(context.Background(), chat.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(rs), len(us)
}

func eachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, sf := range testkit.Stores {
		t.Run(sf.Name, func(t *testing.T) { fn(t, newFixture(t, sf.Open(t), nil)) })
	}
}

func TestAuthenticateNewConversation(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, conv := f.start(t)
		if a.Messages == nil || len(a.Messages) != 0 {
			t.Errorf("messages = %#v, want []", a.Messages)
		}
		// The token's claims, as the widget decodes them.
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(a.Token, &c); err != nil {
			t.Fatal(err)
		}
		if c["conversation_id"] != conv.ID || c["channel_id"] != testChannel || c["sub"] != conv.ID || c["parley_token_type"] != TokenTypeAuth {
			t.Errorf("claims = %v", c)
		}
		exp, _ := c.GetExpirationTime()
		if d := exp.Sub(f.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("auth token lives %v, want 1h", d)
		}
		room, err := f.e.Room(context.Background(), conv.Room)
		if err != nil {
			t.Fatal(err)
		}
		if room.ID.UUID() != conv.ID || room.Attributes[AttrChannel] != testChannel {
			t.Errorf("room = %+v", room)
		}
		m, err := f.e.MemberByUser(context.Background(), conv.Room, conv.Contact)
		if err != nil || m.State != chat.Joined || m.Role != chat.RoleClient {
			t.Errorf("contact member = %+v, %v", m, err)
		}
		// A second visitor gets a second conversation.
		_, conv2 := f.start(t)
		if conv2.Room == conv.Room || conv2.Contact == conv.Contact {
			t.Error("two visitors share a conversation")
		}
	})
}

func TestAuthenticateErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		_, conv := f.start(t)
		auth, _ := f.svc.Tokens().IssueAuth(conv.ID, testChannel)
		otherChannel, _ := f.svc.Tokens().IssueResume(conv.ID, "another-channel")
		noRoom, _ := f.svc.Tokens().IssueResume(chat.ID{1}.UUID(), testChannel)
		expired, _ := f.svc.Tokens().IssueResume(conv.ID, testChannel)
		f.clock.Advance(DefaultResumeTTL + time.Second)
		rooms, users := f.count(t)
		tests := []struct {
			name   string
			method string
			body   any
			want   int
		}{
			{"both missing", "POST", `{}`, 400},
			{"both empty", "POST", `{"channel_id":"","resume_token":""}`, 400},
			{"empty body", "POST", ``, 400},
			{"bad JSON", "POST", `{"channel_id":`, 400},
			{"not an object", "POST", `[1]`, 400},
			{"trailing garbage", "POST", `{"channel_id":"x"} x`, 400},
			{"wrong type", "POST", `{"channel_id":5}`, 400},
			{"unknown channel", "POST", `{"channel_id":"nope"}`, 404},
			{"bad resume token", "POST", `{"resume_token":"abc"}`, 401},
			{"auth token as resume token", "POST", map[string]string{"resume_token": auth}, 401},
			{"expired resume token", "POST", map[string]string{"resume_token": expired}, 401},
			{"resume token of another channel", "POST", map[string]string{"resume_token": otherChannel}, 401},
			{"resume token of no conversation", "POST", map[string]string{"resume_token": noRoom}, 401},
			{"bad resume token wins over a channel", "POST", map[string]string{"resume_token": "abc", "channel_id": testChannel}, 401},
			{"GET", "GET", nil, 405},
			{"PUT", "PUT", `{"channel_id":"` + testChannel + `"}`, 405},
			{"too large", "POST", `{"channel_id":"` + strings.Repeat("x", 5000) + `"}`, 413},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.call(t, tc.method, "chatplugin.authenticate", "", tc.body, nil); got != tc.want {
					t.Errorf("status %d, want %d", got, tc.want)
				}
			})
		}
		if r, u := f.count(t); r != rooms || u != users {
			t.Errorf("refused requests stored something: %d rooms, %d users; had %d, %d", r, u, rooms, users)
		}
	})
}

func TestMethodNotAllowedHasAllow(t *testing.T) {
	f := newFixture(t, memory.New(), nil)
	for _, ep := range []string{"chatplugin.authenticate", "chatplugin.resumeToken", "chatplugin.send"} {
		resp, err := http.Get(f.srv.URL + "/" + ep)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d, Allow %q", ep, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if st := f.call(t, "POST", "chatplugin.nothing", "", `{}`, nil); st != 404 {
		t.Errorf("unknown endpoint: %d", st)
	}
	// Mounted under a prefix, the endpoints answer on their last path element.
	resp, err := http.Post(f.srv.URL+"/api/v1/chatplugin.authenticate", "application/json", strings.NewReader(`{"channel_id":"`+testChannel+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("under a prefix: %d", resp.StatusCode)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestSend(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, conv := f.start(t)
		var m Message
		if st := f.call(t, "POST", "chatplugin.send", a.Token, `{"message":{"text":"Hello World"}}`, &m); st != 200 {
			t.Fatalf("send: %d", st)
		}
		evs, err := f.e.Read(context.Background(), conv.Room, chat.ReadOptions{From: 0, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		last := evs[len(evs)-1]
		if last.Type != chat.EventMessage || last.Text != "Hello World" || last.Body != nil || last.User != conv.Contact {
			t.Fatalf("stored event = %+v", last)
		}
		want := Message{
			ID: last.ID.UUID(), Content: json.RawMessage(`{"text":"Hello World"}`), DeliveryState: "delivered",
			FromContact: true, SentAt: last.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			Metadata: json.RawMessage(`{}`), Sender: Sender{ID: conv.Contact.UUID()},
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
		if !uuidRE.MatchString(m.ID) || !strings.HasSuffix(m.SentAt, "Z") || len(m.SentAt) != len("2006-01-02T15:04:05.000Z") {
			t.Errorf("id %q / sent_at %q not in wire form", m.ID, m.SentAt)
		}
		if _, err := time.Parse(SentAtLayout, m.SentAt); err != nil {
			t.Error(err)
		}

		// An attachment is kept as it came.
		att := `{"attachment":{"type":"image","payload":{"url":"https://example.com/a.png"}}}`
		if st := f.call(t, "POST", "chatplugin.send", a.Token, `{"message":`+att+`}`, &m); st != 200 {
			t.Fatalf("send attachment: %d", st)
		}
		if !jsonEqual(m.Content, att) {
			t.Errorf("attachment content = %s", m.Content)
		}
	})
}

func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && cmp.Equal(x, y)
}

func TestSendErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, conv := f.start(t)
		resume, _ := f.svc.Tokens().IssueResume(conv.ID, testChannel)
		_, gone := f.start(t)
		goneToken, _ := f.svc.Tokens().IssueAuth(gone.ID, testChannel)
		if err := f.e.DeleteRoom(context.Background(), gone.Room); err != nil {
			t.Fatal(err)
		}
		_, ended := f.start(t)
		endedToken, _ := f.svc.Tokens().IssueAuth(ended.ID, testChannel)
		if _, err := f.e.EndRoom(context.Background(), ended.Room); err != nil {
			t.Fatal(err)
		}
		other, _ := NewTokens(TokenConfig{Secret: bytes.Repeat([]byte("z"), 32)})
		forged, _ := other.IssueAuth(conv.ID, testChannel)
		before, _ := f.e.Room(context.Background(), conv.Room)
		tests := []struct {
			name  string
			token string
			body  string
			want  int
		}{
			{"no token", "", `{"message":{"text":"x"}}`, 401},
			{"garbage token", "abc", `{"message":{"text":"x"}}`, 401},
			{"resume token as auth token", resume, `{"message":{"text":"x"}}`, 401},
			{"forged token", forged, `{"message":{"text":"x"}}`, 401},
			{"deleted conversation", goneToken, `{"message":{"text":"x"}}`, 401},
			{"no message", a.Token, `{}`, 400},
			{"empty text", a.Token, `{"message":{"text":""}}`, 400},
			{"text not a string", a.Token, `{"message":{"text":5}}`, 400},
			{"message not an object", a.Token, `{"message":"hi"}`, 400},
			{"attachment not an object", a.Token, `{"message":{"attachment":"x"}}`, 400},
			{"bad JSON", a.Token, `{"message":`, 400},
			{"invalid UTF-8", a.Token, "{\"message\":{\"text\":\"\xff\"}}", 400},
			{"too large", a.Token, `{"message":{"text":"` + strings.Repeat("x", 5000) + `"}}`, 413},
			{"ended conversation", endedToken, `{"message":{"text":"x"}}`, 409},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.call(t, "POST", "chatplugin.send", tc.token, tc.body, nil); got != tc.want {
					t.Errorf("status %d, want %d", got, tc.want)
				}
			})
		}
		after, _ := f.e.Room(context.Background(), conv.Room)
		if after.LastPos != before.LastPos {
			t.Errorf("refused sends stored events: last position %d → %d", before.LastPos, after.LastPos)
		}
		// An expired auth token.
		f.clock.Advance(DefaultAuthTTL + time.Second)
		if got := f.call(t, "POST", "chatplugin.send", a.Token, `{"message":{"text":"x"}}`, nil); got != 401 {
			t.Errorf("expired token: %d", got)
		}
	})
}

func TestResumeToken(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, conv := f.start(t)
		var r struct {
			ResumeToken string `json:"resume_token"`
		}
		// The contact's own token.
		if st := f.call(t, "POST", "chatplugin.resumeToken", a.Token, nil, &r); st != 200 {
			t.Fatalf("resumeToken: %d", st)
		}
		cid, ch, err := f.svc.Tokens().ParseResume(r.ResumeToken)
		if err != nil || cid != conv.ID || ch != testChannel {
			t.Fatalf("resume token names %q %q, %v", cid, ch, err)
		}
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(r.ResumeToken, &c); err != nil {
			t.Fatal(err)
		}
		if c["resume_conversation_id"] != conv.ID || c["resume_channel_id"] != testChannel || c["parley_token_type"] != TokenTypeResume {
			t.Errorf("claims = %v", c)
		}
		exp, _ := c.GetExpirationTime()
		if d := exp.Sub(f.clock.Now()); d < DefaultResumeTTL-time.Minute || d > DefaultResumeTTL {
			t.Errorf("resume token lives %v, want 7 days", d)
		}
		// The system API token, on behalf of a conversation.
		body := map[string]string{"channel_id": testChannel, "conversation_id": conv.ID}
		if st := f.call(t, "POST", "chatplugin.resumeToken", testSystem, body, &r); st != 200 {
			t.Fatalf("resumeToken with the system token: %d", st)
		}
		if cid, _, err := f.svc.Tokens().ParseResume(r.ResumeToken); err != nil || cid != conv.ID {
			t.Errorf("system resume token: %q, %v", cid, err)
		}
		// The ULID form of the conversation id is accepted too.
		body["conversation_id"] = conv.Room.String()
		if st := f.call(t, "POST", "chatplugin.resumeToken", testSystem, body, &r); st != 200 {
			t.Errorf("ULID conversation id: %d", st)
		}

		tests := []struct {
			name  string
			token string
			body  any
			want  int
		}{
			{"no token", "", nil, 401},
			{"garbage token", "x.y.z", nil, 401},
			{"resume token as bearer", r.ResumeToken, nil, 401},
			{"system token without body", testSystem, nil, 400},
			{"system token missing conversation", testSystem, map[string]string{"channel_id": testChannel}, 400},
			{"system token, unknown conversation", testSystem, map[string]string{"channel_id": testChannel, "conversation_id": chat.ID{9}.UUID()}, 404},
			{"system token, malformed conversation", testSystem, map[string]string{"channel_id": testChannel, "conversation_id": "nope"}, 404},
			{"system token, wrong channel", testSystem, map[string]string{"channel_id": "other", "conversation_id": conv.ID}, 404},
			{"system token prefix", testSystem[:10], map[string]string{"channel_id": testChannel, "conversation_id": conv.ID}, 401},
			{"contact token, bad body", a.Token, `{`, 400},
			{"contact token, too large body", a.Token, `{"x":"` + strings.Repeat("x", 5000) + `"}`, 413},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.call(t, "POST", "chatplugin.resumeToken", tc.token, tc.body, nil); got != tc.want {
					t.Errorf("status %d, want %d", got, tc.want)
				}
			})
		}
	})
}

func TestResumeTokenSystemDisabled(t *testing.T) {
	f := newFixture(t, memory.New(), func(c *Config) { c.SystemToken = "" })
	_, conv := f.start(t)
	if st := f.call(t, "POST", "chatplugin.resumeToken", "", map[string]string{"channel_id": testChannel, "conversation_id": conv.ID}, nil); st != 401 {
		t.Errorf("no system token configured, no bearer: %d", st)
	}
}

// TestResumeHistory: authenticate with a resume token returns the conversation's messages
// ordered by position, in their current state, as the contact may see them; messages sent in
// the same millisecond are all there.
func TestResumeHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		a, conv := f.start(t)
		agent, err := f.e.CreateUser(ctx, chat.NewUser{DisplayName: "Agent"})
		if err != nil {
			t.Fatal(err)
		}
		agentMember, err := f.e.Join(ctx, conv.Room, agent.ID, chat.JoinOptions{Role: chat.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := 0; i < 5; i++ {
			text := fmt.Sprintf("contact %d", i)
			if st := f.call(t, "POST", "chatplugin.send", a.Token, map[string]any{"message": map[string]string{"text": text}}, nil); st != 200 {
				t.Fatal(st)
			}
			want = append(want, text)
			text = fmt.Sprintf("agent %d", i)
			if _, err := f.e.Send(ctx, conv.Room, agent.ID, chat.NewMessage{Text: text}); err != nil {
				t.Fatal(err)
			}
			want = append(want, text)
		}
		edited, _ := f.e.Send(ctx, conv.Room, agent.ID, chat.NewMessage{Text: "typo"})
		if _, err := f.e.Edit(ctx, conv.Room, agent.ID, edited.Pos, chat.NewMessage{Text: "fixed"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "fixed")
		deleted, _ := f.e.Send(ctx, conv.Room, agent.ID, chat.NewMessage{Text: "oops"})
		if _, err := f.e.Delete(ctx, conv.Room, agent.ID, deleted.Pos); err != nil {
			t.Fatal(err)
		}
		// Hidden from the contact: an agents-only note and a message to the agent alone.
		f.e.Send(ctx, conv.Room, agent.ID, chat.NewMessage{Text: "note", Visibility: chat.RoleAgent})
		f.e.Send(ctx, conv.Room, chat.System(), chat.NewMessage{Text: "private", To: agentMember.ID})
		// Not messages.
		f.e.Notice(ctx, conv.Room, "a notice")
		if _, err := f.e.Send(ctx, conv.Room, chat.System(), chat.NewMessage{Text: "from the program"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "from the program")

		var r struct {
			ResumeToken string `json:"resume_token"`
		}
		if st := f.call(t, "POST", "chatplugin.resumeToken", a.Token, nil, &r); st != 200 {
			t.Fatal(st)
		}
		var got authAnswer
		if st := f.call(t, "POST", "chatplugin.authenticate", "", map[string]string{"resume_token": r.ResumeToken, "channel_id": "ignored"}, &got); st != 200 {
			t.Fatalf("authenticate with resume token: %d", st)
		}
		if c2, err := f.svc.Authorize(ctx, got.Token); err != nil || c2.Room != conv.Room {
			t.Fatalf("new auth token: %+v, %v", c2, err)
		}
		var texts []string
		for i, m := range got.Messages {
			var c struct {
				Text string `json:"text"`
			}
			json.Unmarshal(m.Content, &c)
			texts = append(texts, c.Text)
			if i > 0 && m.SentAt < got.Messages[i-1].SentAt {
				t.Errorf("message %d sent before the previous one", i)
			}
			fromContact := strings.HasPrefix(c.Text, "contact")
			if m.FromContact != fromContact {
				t.Errorf("%q: from_contact %v", c.Text, m.FromContact)
			}
			switch {
			case fromContact && m.Sender.ID != conv.Contact.UUID(),
				strings.HasPrefix(c.Text, "agent") && m.Sender.ID != agent.ID.UUID(),
				c.Text == "from the program" && m.Sender.ID != SystemSenderID:
				t.Errorf("%q: sender %q", c.Text, m.Sender.ID)
			}
		}
		if diff := cmp.Diff(want, texts); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
		// MaxHistory keeps the latest ones.
		f.svc.cfg.MaxHistory = 3
		if st := f.call(t, "POST", "chatplugin.authenticate", "", map[string]string{"resume_token": r.ResumeToken}, &got); st != 200 {
			t.Fatal(st)
		}
		if len(got.Messages) != 3 || !strings.Contains(string(got.Messages[2].Content), "from the program") {
			t.Errorf("capped history = %v", got.Messages)
		}
	})
}

func TestTokens(t *testing.T) {
	if _, err := NewTokens(TokenConfig{Secret: []byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := NewTokens(TokenConfig{Secret: testSecret, AuthTTL: -time.Second}); err == nil {
		t.Error("a negative lifetime was accepted")
	}
	clock := fakeclock.New(time.Now())
	tok, err := NewTokens(TokenConfig{Secret: testSecret, AuthTTL: time.Minute, ResumeTTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := tok.IssueAuth("conv", "chan")
	resume, _ := tok.IssueResume("conv", "chan")
	if c, ch, err := tok.ParseAuth(auth); err != nil || c != "conv" || ch != "chan" {
		t.Errorf("ParseAuth = %q %q %v", c, ch, err)
	}
	if _, _, err := tok.ParseResume(auth); err == nil {
		t.Error("an auth token was accepted as a resume token")
	}
	if _, _, err := tok.ParseAuth(resume); err == nil {
		t.Error("a resume token was accepted as an auth token")
	}
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := clock.Now().Add(time.Minute).Unix()
	good := jwt.MapClaims{"parley_token_type": TokenTypeAuth, "conversation_id": "c", "channel_id": "ch", "sub": "c", "exp": exp}
	if _, _, err := tok.ParseAuth(sign(jwt.SigningMethodHS256, testSecret, good)); err != nil {
		t.Errorf("hand-made HS256 token refused: %v", err)
	}
	bad := map[string]string{
		"HS512":          sign(jwt.SigningMethodHS512, testSecret, good),
		"none":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
		"no exp":         sign(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"parley_token_type": TokenTypeAuth, "conversation_id": "c", "channel_id": "ch", "sub": "c"}),
		"no type":        sign(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"conversation_id": "c", "channel_id": "ch", "sub": "c", "exp": exp}),
		"no channel":     sign(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"parley_token_type": TokenTypeAuth, "conversation_id": "c", "sub": "c", "exp": exp}),
		"sub mismatch":   sign(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"parley_token_type": TokenTypeAuth, "conversation_id": "c", "channel_id": "ch", "sub": "d", "exp": exp}),
		"another secret": sign(jwt.SigningMethodHS256, []byte("another secret of thirty-two by"), good),
	}
	for name, s := range bad {
		if _, _, err := tok.ParseAuth(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	clock.Advance(time.Minute + time.Second)
	if _, _, err := tok.ParseAuth(auth); err == nil {
		t.Error("an expired auth token was accepted (AuthTTL 1m)")
	}
	if _, _, err := tok.ParseResume(resume); err != nil {
		t.Errorf("resume token (ResumeTTL 1h) refused after a minute: %v", err)
	}
}

func TestNewNeedsConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New(Config{}) succeeded")
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t, memory.New(), func(c *Config) { c.AllowedOrigins = []string{"https://shop.example.com"} })
	do := func(method, origin string, preflight bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+"/chatplugin.authenticate", strings.NewReader(`{"channel_id":"`+testChannel+`"}`))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type,authorization")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("OPTIONS", "https://shop.example.com", true)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") || resp.Header.Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("POST", "https://shop.example.com", false); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" {
		t.Errorf("POST from an allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("OPTIONS", "https://evil.example.net", true); resp.StatusCode != 405 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("POST", "https://evil.example.net", false); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST from another origin got CORS headers: %v", resp.Header)
	}
}
