package chapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/chapi"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
)

// specTime is the timestamp of the spec's GET example, 1594918006814947 µs.
var specTime = time.UnixMicro(1594918006814947).UTC()

type env struct {
	t     testing.TB
	e     *chat.Engine
	h     *chapi.Handler
	clock *fakeclock.Clock
	ada   chat.User // key "ada-key"
	bob   chat.User // key "bob-key"
	// allow holds the rooms Config.MayUse lets every key's user reach by ID.
	allow map[chat.ID]bool
}

func newEnv(t testing.TB, mk storeFactory, mod ...func(*chapi.Config)) *env {
	t.Helper()
	ctx := context.Background()
	clock := fakeclock.New(specTime)
	e, err := chat.Open(ctx, mk(t), chat.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ev := &env{t: t, e: e, clock: clock, allow: map[chat.ID]bool{}}
	ev.ada = must(e.CreateUser(ctx, chat.NewUser{Name: "ada", DisplayName: "Ada Lovelace", Email: "ada@example.com", AvatarURL: "https://example.com/ada.png"}))
	ev.bob = must(e.CreateUser(ctx, chat.NewUser{Name: "bob"}))
	cfg := chapi.Config{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Keys:    map[string]chat.ID{"ada-key": ev.ada.ID, "bob-key": ev.bob.ID},
		Limiter: limit.New(limit.Rates{}), // TestRateLimit tests the limits
		MayUse: func(ctx context.Context, u chat.User, r chat.Room) bool {
			return ev.allow[r.ID]
		},
	}
	for _, f := range mod {
		f(&cfg)
	}
	ev.h, err = chapi.New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type result struct {
	status int
	header http.Header
	body   string
}

func (ev *env) do(method, target, key, contentType, body string) result {
	ev.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if key != "" {
		r.Header.Set("x-api-key", key)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	ev.h.ServeHTTP(w, r)
	return result{w.Code, w.Header(), w.Body.String()}
}

func (ev *env) post(key, body string) result {
	return ev.do("POST", "/api/chat/v1/messages/", key, "application/json", body)
}

// errorMessage returns the message of a Spring-style error body, or fails.
func errorMessage(t *testing.T, res result) string {
	t.Helper()
	var b chapi.ErrorBody
	if err := json.Unmarshal([]byte(res.body), &b); err != nil {
		t.Fatalf("error body %q: %v", res.body, err)
	}
	if b.Status != res.status || b.Error != http.StatusText(res.status) || b.Path == "" || b.Timestamp == "" {
		t.Fatalf("error body %+v does not match status %d", b, res.status)
	}
	return b.Message
}

func forEachStore(t *testing.T, f func(t *testing.T, mk storeFactory)) { testkit.ForEachStore(t, f) }

func TestHealth(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		for _, p := range []string{"/api/chat/v1/health", "/api/chat/v1/health/"} {
			res := ev.do("GET", p, "", "", "")
			if res.status != 200 || res.body != `{"status":"UP"}` || res.header.Get("Content-Type") != "application/json" {
				t.Errorf("GET %s = %d %q", p, res.status, res.body)
			}
		}
		if res := ev.do("POST", "/api/chat/v1/health", "", "", ""); res.status != 405 || res.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST health = %d, Allow %q", res.status, res.header.Get("Allow"))
		}
		ev.e.Close()
		if res := ev.do("GET", "/api/chat/v1/health", "", "", ""); res.status != 503 || res.body != `{"status":"DOWN"}` {
			t.Errorf("health after Close = %d %q", res.status, res.body)
		}
	})
}

func TestAuth(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		var gone chat.User
		ev := newEnv(t, mk, func(c *chapi.Config) {
			c.Lookup = func(ctx context.Context, key string) (chat.ID, error) {
				switch key {
				case "looked-up":
					return c.Keys["bob-key"], nil
				case "gone":
					return gone.ID, nil
				case "broken":
					return chat.ID{}, errors.New("directory down")
				}
				return chat.ID{}, fmt.Errorf("key: %w", chat.ErrNotFound)
			}
		})
		gone = must(ev.e.CreateUser(context.Background(), chat.NewUser{Name: "gone"}))
		if err := ev.e.DeleteUser(context.Background(), gone.ID); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, method, key string
			status            int
		}{
			{"missing key GET", "GET", "", 401},
			{"missing key POST", "POST", "", 401},
			{"unknown key", "GET", "nope", 401},
			{"prefix of a key", "GET", "ada-ke", 401},
			{"deleted user", "GET", "gone", 401},
			{"map key", "GET", "ada-key", 404}, // authenticated: the default room does not exist yet
			{"lookup key", "GET", "looked-up", 404},
			{"lookup error", "GET", "broken", 500},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := ev.do(tt.method, "/api/chat/v1/messages", tt.key, "application/json", `{"messageRaw":"x"}`)
				if res.status != tt.status {
					t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
				}
				if tt.status == 401 && res.body != `{"fault":{"faultstring":"Invalid access token","detail":{"errorcode":"oauth.v2.InvalidAccessToken"}}}` {
					t.Fatalf("401 body %q", res.body)
				}
			})
		}
		// Nothing was stored by the refused POST.
		if rs := must(ev.e.Rooms(context.Background(), chat.ListFilter{})); len(rs) != 0 {
			t.Fatalf("refused requests created rooms: %v", rs)
		}
	})
}

func TestNewConfig(t *testing.T) {
	e, err := chat.Open(context.Background(), stores[0].Open(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	keys := map[string]chat.ID{"k": {}}
	for _, tt := range []struct {
		name string
		cfg  chapi.Config
	}{
		{"no keys", chapi.Config{}},
		{"empty key", chapi.Config{Keys: map[string]chat.ID{"": {}}}},
		{"page size over 1000", chapi.Config{Keys: keys, MaxPageSize: 1001}},
		{"default over max", chapi.Config{Keys: keys, DefaultPageSize: 50, MaxPageSize: 40}},
		{"negative body", chapi.Config{Keys: keys, MaxBodyBytes: -1}},
	} {
		if _, err := chapi.New(e, tt.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", tt.name, tt.cfg)
		}
	}
	if _, err := chapi.New(nil, chapi.Config{Keys: keys}); err == nil {
		t.Error("New accepted a nil engine")
	}
}

func roomNamed(ev *env, name string) chat.Room {
	return must(ev.e.RoomByName(context.Background(), name))
}

func TestSend(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk, func(c *chapi.Config) { c.MaxBodyBytes = 256 })
		private := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "secret", Private: true}))
		must(ev.e.Invite(ctx, private.ID, ev.ada.ID, chat.InviteOptions{}))
		ended := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "over"}))
		must(ev.e.EndRoom(ctx, ended.ID))
		byID := must(ev.e.CreateRoom(ctx, chat.NewRoom{}))
		ev.allow[byID.ID] = true

		tests := []struct {
			name, path, ct, body string
			status               int
			want                 string // body for 200, error message otherwise
			room                 string // room to find the message in
		}{
			{name: "default room, trailing slash", path: "/api/chat/v1/messages/", body: `{"messageRaw":"  Hello World!\n"}`,
				status: 200, want: `{"parsed":"Hello World!"}`, room: "CHAPI sandbox"},
			{name: "no trailing slash", path: "/api/chat/v1/messages", body: `{"messageRaw":"again","room":"CHAPI sandbox"}`,
				status: 200, want: `{"parsed":"again"}`, room: "CHAPI sandbox"},
			{name: "new room", path: "/api/chat/v1/messages/", body: `{"messageRaw":"*bold* _it_","room":"general"}`,
				status: 200, want: `{"parsed":"*bold* _it_"}`, room: "general"},
			{name: "room by ULID", path: "/api/chat/v1/messages/", body: `{"messageRaw":"hi","room":"` + byID.ID.String() + `"}`,
				status: 200, want: `{"parsed":"hi"}`, room: byID.ID.String()},
			{name: "room by UUID", path: "/api/chat/v1/messages/", body: `{"messageRaw":"hi2","room":"` + byID.ID.UUID() + `"}`,
				status: 200, want: `{"parsed":"hi2"}`, room: byID.ID.String()},
			{name: "json charset", path: "/api/chat/v1/messages/", ct: "application/json; charset=utf-8", body: `{"messageRaw":"x"}`,
				status: 200, want: `{"parsed":"x"}`, room: "CHAPI sandbox"},
			{name: "no content type", path: "/api/chat/v1/messages/", ct: "-", body: `{"messageRaw":"y"}`,
				status: 200, want: `{"parsed":"y"}`, room: "CHAPI sandbox"},
			{name: "private room", path: "/api/chat/v1/messages/", body: `{"messageRaw":"x","room":"secret"}`, status: 403},
			{name: "ended room", path: "/api/chat/v1/messages/", body: `{"messageRaw":"x","room":"over"}`, status: 409},
			{name: "empty message", path: "/api/chat/v1/messages/", body: `{"messageRaw":"   ","room":"fresh1"}`, status: 400},
			{name: "missing message", path: "/api/chat/v1/messages/", body: `{"room":"fresh2"}`, status: 400},
			{name: "not JSON", path: "/api/chat/v1/messages/", body: `messageRaw=x`, status: 400},
			{name: "trailing data", path: "/api/chat/v1/messages/", body: `{"messageRaw":"x"}{}`, status: 400},
			{name: "wrong type", path: "/api/chat/v1/messages/", body: `{"messageRaw":1}`, status: 400},
			{name: "form post", path: "/api/chat/v1/messages/", ct: "application/x-www-form-urlencoded", body: `messageRaw=x`, status: 415},
			{name: "multipart", path: "/api/chat/v1/messages/", ct: "multipart/form-data; boundary=x", body: ``, status: 415},
			{name: "too large", path: "/api/chat/v1/messages/", body: `{"messageRaw":"` + strings.Repeat("a", 300) + `","room":"fresh3"}`, status: 413},
			{name: "unknown path", path: "/api/chat/v1/message", body: `{}`, status: 404},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ct := tt.ct
				switch ct {
				case "":
					ct = "application/json"
				case "-":
					ct = ""
				}
				res := ev.do("POST", tt.path, "ada-key", ct, tt.body)
				if res.status != tt.status {
					t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
				}
				if tt.status != 200 {
					errorMessage(t, res)
					return
				}
				if res.body != tt.want {
					t.Fatalf("body %s, want %s", res.body, tt.want)
				}
				var want chapi.SendMessageResponse
				json.Unmarshal([]byte(tt.want), &want)
				room, err := ev.e.RoomByName(ctx, tt.room)
				if err != nil {
					room = must(ev.e.Room(ctx, must(chat.ParseID(tt.room))))
				}
				last := must(ev.e.Read(ctx, room.ID, chat.ReadOptions{From: 0, Limit: 1, Backward: true}))[0]
				if last.Type != chat.EventMessage || last.Text != want.Parsed || last.User != ev.ada.ID {
					t.Fatalf("last event %+v", last)
				}
				if m := must(ev.e.MemberByUser(ctx, room.ID, ev.ada.ID)); m.State != chat.Joined || m.Role != chapi.DefaultRole {
					t.Fatalf("member %+v", m)
				}
			})
		}
		// Refused requests stored nothing.
		for _, name := range []string{"fresh1", "fresh2", "fresh3"} {
			if _, err := ev.e.RoomByName(ctx, name); !errors.Is(err, chat.ErrNotFound) {
				t.Errorf("room %s exists after a refused request: %v", name, err)
			}
		}
		if p := must(ev.e.Room(ctx, private.ID)); p.LastPos != 1 {
			t.Errorf("private room has %d events, want only the invitation", p.LastPos)
		}
		if res := ev.do("PUT", "/api/chat/v1/messages", "ada-key", "", ""); res.status != 405 || res.header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("PUT = %d", res.status)
		}
		// A second post by a joined user does not join again.
		before := roomNamed(ev, "general").LastPos
		ev.post("ada-key", `{"messageRaw":"more","room":"general"}`)
		if after := roomNamed(ev, "general").LastPos; after != before+1 {
			t.Errorf("second post appended %d events", after-before)
		}
	})
}

// TestSendBodyStream checks the limit on a body whose length is not declared.
func TestSendBodyStream(t *testing.T) {
	ev := newEnv(t, stores[0].Open, func(c *chapi.Config) { c.MaxBodyBytes = 64 })
	r := httptest.NewRequest("POST", "/api/chat/v1/messages/", io.MultiReader(strings.NewReader(`{"messageRaw":"`), strings.NewReader(strings.Repeat("a", 100)+`"}`)))
	r.ContentLength = -1
	r.Header.Set("x-api-key", "ada-key")
	w := httptest.NewRecorder()
	ev.h.ServeHTTP(w, r)
	if w.Code != 413 {
		t.Fatalf("status %d", w.Code)
	}
}

// specExample is the spec's GET messages example item, with messageParsed renamed to parsed
// (the wire notes: the schema and real answers say parsed).
const specExample = `{
	"authorUser": {
		"avatarUrl": "https://roombot.s3.us-west-1.amazonaws.com/chapi.png",
		"email": "developer@8x8.com",
		"id": "94y4Kq619DeqY30EiGVkdxlU2CpNYJ0E4aAguR46mvc",
		"name": "Chapi"
	},
	"parsed": "Hello world",
	"id": "RqQ_b5wiFutWmGlzZCrsSdsmQhdZV6iPu_P5CrPSoDs",
	"timestamp": 1594918006814947
}`

// shape replaces every JSON leaf by its type name, keeping object keys.
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, x := range v {
			m[k] = shape(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = shape(x)
		}
		return s
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

func TestListShape(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		ctx := context.Background()
		room := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "CHAPI sandbox"}))
		must(ev.e.Join(ctx, room.ID, ev.ada.ID, chat.JoinOptions{}))                          // pos 1, specTime
		msg := must(ev.e.Send(ctx, room.ID, ev.ada.ID, chat.NewMessage{Text: "Hello world"})) // pos 2, +1µs
		res := ev.do("GET", "/api/chat/v1/messages", "bob-key", "", "")
		if res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		got := decode(t, res.body)
		want := []any{decode(t, specExample)}
		if diff := cmp.Diff(shape(want), shape(got)); diff != "" {
			t.Errorf("JSON shape differs from the spec's example (-spec +got):\n%s", diff)
		}
		wantExact := fmt.Sprintf(`[{"id":%q,"parsed":"Hello world","timestamp":%d,"authorUser":{"id":%q,"name":"Ada Lovelace","email":"ada@example.com","avatarUrl":"https://example.com/ada.png"}}]`,
			msg.ID.String(), specTime.UnixMicro()+1, ev.ada.ID.String())
		if diff := cmp.Diff(decode(t, wantExact), got); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
		if msg.Time.UnixMicro() != 1594918006814948 {
			t.Errorf("timestamp unit: event time %d µs", msg.Time.UnixMicro())
		}
	})
}

func TestList(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		ctx := context.Background()
		room := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "CHAPI sandbox"}))
		must(ev.e.Join(ctx, room.ID, ev.ada.ID, chat.JoinOptions{}))
		must(ev.e.Join(ctx, room.ID, ev.bob.ID, chat.JoinOptions{Role: chat.RoleAgent}))
		var sent []chat.Event
		for i := range 40 {
			from := ev.ada.ID
			if i%3 == 0 {
				from = ev.bob.ID
			}
			if i%5 == 0 { // non-message events are skipped
				ev.e.StartTyping(ctx, room.ID, from, "")
			}
			ev.clock.Advance(time.Millisecond)
			sent = append(sent, must(ev.e.Send(ctx, room.ID, from, chat.NewMessage{Text: fmt.Sprintf("m%02d", i)})))
		}
		must(ev.e.Edit(ctx, room.ID, ev.ada.ID, sent[38].Pos, chat.NewMessage{Text: "m38 edited"}))
		must(ev.e.Delete(ctx, room.ID, ev.ada.ID, sent[37].Pos))
		must(ev.e.Send(ctx, room.ID, ev.bob.ID, chat.NewMessage{Text: "agents only", Visibility: chat.RoleAgent}))
		must(ev.e.Notice(ctx, room.ID, "a notice"))

		texts := func(body string) []string {
			var ms []chapi.Message
			if err := json.Unmarshal([]byte(body), &ms); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			var s []string
			for i, m := range ms {
				if i > 0 && m.Timestamp >= ms[i-1].Timestamp {
					t.Errorf("not newest first: %d after %d", m.Timestamp, ms[i-1].Timestamp)
				}
				s = append(s, m.Parsed)
			}
			return s
		}
		want := func(from, to int) []string { // newest first, indexes into sent, 37 deleted
			var s []string
			for i := from; i >= to; i-- {
				switch i {
				case 37:
					continue
				case 38:
					s = append(s, "m38 edited")
				default:
					s = append(s, fmt.Sprintf("m%02d", i))
				}
			}
			return s
		}
		tests := []struct {
			name, key, query string
			want             []string
		}{
			{"default page of 30", "ada-key", "", want(39, 9)},
			{"page size", "ada-key", "?pageSize=3", want(39, 36)},
			{"ts pages backwards", "ada-key", fmt.Sprintf("?pageSize=5&ts=%d", sent[10].Time.UnixMicro()), want(9, 5)},
			{"ts just after", "ada-key", fmt.Sprintf("?pageSize=1&ts=%d", sent[10].Time.UnixMicro()+1), want(10, 10)},
			{"ts before everything", "ada-key", "?ts=1", nil},
			{"last page", "ada-key", fmt.Sprintf("?ts=%d", sent[3].Time.UnixMicro()), want(2, 0)},
			{"named room", "ada-key", "?room=CHAPI+sandbox&pageSize=2", want(39, 38)},
			{"room by id", "ada-key", "?pageSize=2&room=" + room.ID.UUID(), want(39, 38)},
			{"agent sees agents-only", "bob-key", "?pageSize=2", append([]string{"agents only"}, want(39, 39)...)},
			{"clamped page size", "ada-key", "?pageSize=100000", want(39, 0)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := ev.do("GET", "/api/chat/v1/messages"+tt.query, tt.key, "", "")
				if res.status != 200 {
					t.Fatalf("%d %s", res.status, res.body)
				}
				if diff := cmp.Diff(tt.want, texts(res.body)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
		// Paging by the last timestamp seen walks the whole room exactly once.
		var all []string
		ts := int64(0)
		for {
			res := ev.do("GET", fmt.Sprintf("/api/chat/v1/messages/?pageSize=7&ts=%d", ts), "ada-key", "", "")
			var ms []chapi.Message
			json.Unmarshal([]byte(res.body), &ms)
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				all = append(all, m.Parsed)
			}
			ts = ms[len(ms)-1].Timestamp
		}
		if diff := cmp.Diff(want(39, 0), all); diff != "" {
			t.Errorf("paging (-want +got):\n%s", diff)
		}
	})
}

func TestListErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		ctx := context.Background()
		secret := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "secret", Private: true}))
		must(ev.e.Invite(ctx, secret.ID, ev.ada.ID, chat.InviteOptions{}))
		must(ev.e.Join(ctx, secret.ID, ev.ada.ID, chat.JoinOptions{}))
		must(ev.e.Send(ctx, secret.ID, ev.ada.ID, chat.NewMessage{Text: "psst"}))
		left := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "left", Private: true}))
		must(ev.e.Invite(ctx, left.ID, ev.bob.ID, chat.InviteOptions{}))
		must(ev.e.Leave(ctx, left.ID, ev.bob.ID))
		public := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "pub"}))
		must(ev.e.Join(ctx, public.ID, ev.ada.ID, chat.JoinOptions{}))
		must(ev.e.Send(ctx, public.ID, ev.ada.ID, chat.NewMessage{Text: "for bob", To: must(ev.e.MemberByUser(ctx, public.ID, ev.ada.ID)).ID}))

		tests := []struct {
			name, key, query string
			status           int
			body             string
		}{
			{"invited reads private", "ada-key", "?room=secret", 200, ""},
			{"uninvited private", "bob-key", "?room=secret", 403, ""},
			{"left private", "bob-key", "?room=left", 403, ""},
			{"unknown room not created", "ada-key", "?room=nowhere", 404, ""},
			{"private message hidden from others", "bob-key", "?room=pub", 200, "[]"},
			{"bad pageSize", "ada-key", "?pageSize=abc", 400, ""},
			{"zero pageSize", "ada-key", "?pageSize=0", 400, ""},
			{"negative ts", "ada-key", "?ts=-1", 400, ""},
			{"bad ts", "ada-key", "?ts=1e6", 400, ""},
			{"bad query", "ada-key", "?room=%zz", 400, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := ev.do("GET", "/api/chat/v1/messages"+tt.query, tt.key, "", "")
				if res.status != tt.status {
					t.Fatalf("%d %s", res.status, res.body)
				}
				if tt.status != 200 {
					errorMessage(t, res)
				} else if tt.body != "" && res.body != tt.body {
					t.Fatalf("body %s, want %s", res.body, tt.body)
				}
			})
		}
		if _, err := ev.e.RoomByName(ctx, "nowhere"); !errors.Is(err, chat.ErrNotFound) {
			t.Error("GET created a room")
		}
	})
}
