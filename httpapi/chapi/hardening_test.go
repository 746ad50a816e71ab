package chapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/chapi"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// state is what a refused request must not change: every room (with its last position and
// attributes), its members, and the number of users.
func state(t *testing.T, e *chat.Engine) any {
	t.Helper()
	ctx := context.Background()
	type roomState struct {
		Room    chat.Room
		Members []chat.Member
	}
	var rooms []roomState
	for _, r := range must(e.Rooms(ctx, chat.ListFilter{})) {
		rooms = append(rooms, roomState{r, must(e.Members(ctx, r.ID))})
	}
	return struct {
		Rooms []roomState
		Users int
	}{rooms, len(must(e.Users(ctx, chat.ListFilter{})))}
}

// sameAnswer reports how two error answers differ, ignoring the time in the body.
func sameAnswer(t *testing.T, a, b result) string {
	t.Helper()
	strip := func(res result) any {
		var body map[string]any
		if err := json.Unmarshal([]byte(res.body), &body); err != nil {
			t.Fatalf("%v: %s", err, res.body)
		}
		delete(body, "timestamp")
		return struct {
			Status int
			Header http.Header
			Body   map[string]any
		}{res.status, res.header, body}
	}
	return cmp.Diff(strip(a), strip(b))
}

// TestJoinPolicy: a key's user reaches by ID only the rooms Chapi made, the rooms it is a
// member of and the rooms Config.MayUse allows; any other room is answered as a room that
// does not exist, and is left untouched.
func TestJoinPolicy(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		var asked []string // "user room" pairs MayUse was asked about
		ev := newEnv(t, mk, func(c *chapi.Config) {
			prev := c.MayUse
			c.MayUse = func(ctx context.Context, u chat.User, r chat.Room) bool {
				asked = append(asked, u.Name+" "+r.DisplayName)
				return prev(ctx, u, r)
			}
		})
		// Rooms other surfaces made: an unnamed chat (Genesys, Bezlimit, Airy), a private
		// one, one the program invited ada to, a public named one (Nexmo).
		other := func(nr chat.NewRoom) chat.Room {
			agent := must(ev.e.CreateUser(ctx, chat.NewUser{}))
			nr.Members = []chat.NewMember{{User: agent.ID, Role: chat.RoleAgent}}
			r := must(ev.e.CreateRoom(ctx, nr))
			must(ev.e.Send(ctx, r.ID, agent.ID, chat.NewMessage{Text: "private words of " + nr.DisplayName}))
			ev.clock.Advance(1)
			return must(ev.e.Room(ctx, r.ID))
		}
		chatRoom := other(chat.NewRoom{DisplayName: "chat", Attributes: map[string]string{"genesys.serviceName": "x"}})
		secret := other(chat.NewRoom{DisplayName: "secret", Private: true})
		invited := other(chat.NewRoom{DisplayName: "invited"})
		must(ev.e.Invite(ctx, invited.ID, ev.ada.ID, chat.InviteOptions{}))
		named := other(chat.NewRoom{Name: "sales", DisplayName: "sales"})
		allowed := other(chat.NewRoom{DisplayName: "allowed"})
		ev.allow[allowed.ID] = true
		allowedSecret := other(chat.NewRoom{DisplayName: "allowed secret", Private: true})
		ev.allow[allowedSecret.ID] = true
		// A room Chapi made, reached later by its ID.
		if res := ev.post("ada-key", `{"messageRaw":"mine","room":"made by chapi"}`); res.status != 200 {
			t.Fatal(res.body)
		}
		mine := roomNamed(ev, "made by chapi")
		if mine.Attributes["chapi.created"] == "" {
			t.Errorf("the room Chapi made is not marked: %v", mine.Attributes)
		}
		missing := chat.ID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}

		get := func(room string) result {
			return ev.do("GET", "/api/chat/v1/messages?room="+url.QueryEscape(room), "ada-key", "", "")
		}
		tests := []struct {
			name   string
			room   string
			status int // of GET
		}{
			{"other surface's chat by ULID", chatRoom.ID.String(), 404},
			{"other surface's chat by UUID", chatRoom.ID.UUID(), 404},
			{"private room by ID: 404, not 403", secret.ID.String(), 404},
			{"invited", invited.ID.String(), 200},
			{"MayUse allows", allowed.ID.String(), 200},
			{"MayUse allows a private room: the vendor's 403", allowedSecret.ID.String(), 403},
			{"made by Chapi, by ID", mine.ID.String(), 200},
			{"public named room by name", "sales", 200},
			{"public named room by ID", named.ID.String(), 404},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := get(tt.room)
				if res.status != tt.status {
					t.Fatalf("GET %d, want %d: %s", res.status, tt.status, res.body)
				}
				if tt.status == 404 {
					if diff := sameAnswer(t, get(missing.String()), res); diff != "" {
						t.Errorf("answer differs from a missing room's (-missing +got):\n%s", diff)
					}
				}
				if tt.status == 200 && strings.Contains(res.body, "private words of") != (tt.room != mine.ID.String()) {
					t.Errorf("body %s", res.body)
				}
			})
		}
		// MayUse is asked about rooms of others only, for the key's user.
		seen := map[string]bool{}
		for _, a := range asked {
			seen[a] = true
		}
		if !seen["ada allowed"] || !seen["ada chat"] || seen["ada invited"] || seen["ada made by chapi"] {
			t.Errorf("MayUse asked about %q", asked)
		}

		// POST to a room the user may not reach by ID is a POST to a new room of that name:
		// the chat itself is untouched and nobody joined it.
		for _, r := range []chat.Room{chatRoom, secret, named} {
			if res := ev.post("ada-key", fmt.Sprintf(`{"messageRaw":"hi","room":%q}`, r.ID.String())); res.status != 200 {
				t.Fatalf("POST by the ID of %s: %d %s", r.DisplayName, res.status, res.body)
			}
			if after := must(ev.e.Room(ctx, r.ID)); after.LastPos != r.LastPos {
				t.Errorf("%s: %d events after a POST by its ID, want %d", r.DisplayName, after.LastPos, r.LastPos)
			}
			if _, err := ev.e.MemberByUser(ctx, r.ID, ev.ada.ID); err == nil {
				t.Errorf("%s: ada joined it", r.DisplayName)
			}
			if n := roomNamed(ev, r.ID.String()); n.Attributes["chapi.created"] == "" || n.LastPos != 2 {
				t.Errorf("no new room named %s: %+v", r.ID, n)
			}
		}
		// A room named after a chat's ID does not shadow the chat for a user who may use it.
		ev.allow[chatRoom.ID] = true
		res := ev.do("GET", "/api/chat/v1/messages?room="+chatRoom.ID.String(), "bob-key", "", "")
		if res.status != 200 || !strings.Contains(res.body, "private words of chat") {
			t.Errorf("allowed user by ID: %d %s", res.status, res.body)
		}
		if res := ev.post("bob-key", fmt.Sprintf(`{"messageRaw":"joined","room":%q}`, chatRoom.ID.UUID())); res.status != 200 {
			t.Fatal(res.body)
		}
		if m := must(ev.e.MemberByUser(ctx, chatRoom.ID, ev.bob.ID)); m.State != chat.Joined {
			t.Errorf("bob %v", m.State)
		}
		// POST to a private room the user may reach is the vendor's 403.
		if res := ev.post("ada-key", fmt.Sprintf(`{"messageRaw":"x","room":%q}`, allowedSecret.ID)); res.status != 403 {
			t.Errorf("POST to an allowed private room: %d %s", res.status, res.body)
		}
	})
}

// TestRateLimit: every POST costs a Write token of the client's address; refusals are 429 in
// Apigee's fault format with Retry-After, and store nothing. GET is not limited.
func TestRateLimit(t *testing.T) {
	ev := newEnv(t, stores[0].Open, func(c *chapi.Config) {
		c.Limiter = limit.New(limit.Rates{Write: limit.Rate{PerSecond: 1e-9, Burst: 2}})
	})
	for i := range 2 {
		if res := ev.post("ada-key", fmt.Sprintf(`{"messageRaw":"m%d","room":"r"}`, i)); res.status != 200 {
			t.Fatalf("POST %d: %d %s", i, res.status, res.body)
		}
	}
	before := state(t, ev.e)
	for _, key := range []string{"ada-key", "bob-key", "no-such-key"} {
		res := ev.post(key, `{"messageRaw":"one too many","room":"r2"}`)
		if res.status != 429 || res.body != chapi.TooManyRequestsBody || res.header.Get("Retry-After") != "1" ||
			res.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %v %s", key, res.status, res.header, res.body)
		}
	}
	if diff := cmp.Diff(before, state(t, ev.e)); diff != "" {
		t.Errorf("refused requests changed the store:\n%s", diff)
	}
	if res := ev.do("GET", "/api/chat/v1/messages?room=r", "ada-key", "", ""); res.status != 200 {
		t.Errorf("GET: %d %s", res.status, res.body)
	}
	// Another client address has its own bucket.
	r := httptest.NewRequest("POST", "/api/chat/v1/messages", strings.NewReader(`{"messageRaw":"x","room":"r"}`))
	r.Header.Set("x-api-key", "ada-key")
	r.RemoteAddr = "198.51.100.7:4000"
	w := httptest.NewRecorder()
	ev.h.ServeHTTP(w, r)
	if res := (result{w.Code, w.Header(), w.Body.String()}); res.status != 200 {
		t.Errorf("another client: %d %s", res.status, res.body)
	}

	// A nil Limiter is limit.DefaultRates: a burst of 50 writes, then 429.
	ev = newEnv(t, stores[0].Open, func(c *chapi.Config) { c.Limiter = nil })
	refused := 0
	for range 120 {
		if res := ev.post("", `{}`); res.status == 429 {
			refused++
		}
	}
	if refused == 0 {
		t.Error("the default Limiter refused none of 120 POSTs")
	}
}

// TestBadInput: bodies and queries that cannot be stored as sent get 400 naming the field,
// and store nothing.
func TestBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		if res := ev.post("ada-key", `{"messageRaw":"hello","room":"r"}`); res.status != 200 {
			t.Fatal(res.body)
		}
		deep := strings.Repeat("[", chat.MaxJSONDepth+1) + strings.Repeat("]", chat.MaxJSONDepth+1)
		tests := []struct {
			name, method, query, body string
			field                     string // the message must name it
		}{
			{"invalid UTF-8 in messageRaw", "POST", "", "{\"messageRaw\":\"caf\xe9\",\"room\":\"r\"}", "messageRaw"},
			{"invalid UTF-8 in room", "POST", "", "{\"messageRaw\":\"x\",\"room\":\"r\xff\"}", "room"},
			{"NUL escape in messageRaw", "POST", "", `{"messageRaw":"a\u0000b","room":"r"}`, "messageRaw"},
			{"NUL escape in room", "POST", "", `{"messageRaw":"x","room":"r\u0000"}`, "room"},
			{"raw NUL in messageRaw", "POST", "", "{\"messageRaw\":\"a\x00b\",\"room\":\"r\"}", "messageRaw"},
			{"invalid UTF-8 in another field", "POST", "", "{\"messageRaw\":\"x\",\"room\":\"r\",\"other\":\"\xff\"}", "body"},
			{"invalid UTF-8 in a key", "POST", "", "{\"messageRaw\":\"x\",\"room\":\"r\",\"\xff\":1}", "body"},
			{"too deep", "POST", "", `{"messageRaw":"x","room":"r","other":` + deep + `}`, "body"},
			{"NUL in the room of a query", "GET", "?room=r%00", "", "room"},
			{"invalid UTF-8 in the room of a query", "GET", "?room=r%FF", "", "room"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := state(t, ev.e)
				res := ev.do(tt.method, "/api/chat/v1/messages/"+tt.query, "ada-key", "application/json", tt.body)
				if res.status != 400 {
					t.Fatalf("%d %s", res.status, res.body)
				}
				if msg := errorMessage(t, res); !strings.Contains(msg, tt.field) {
					t.Errorf("message %q does not name %s", msg, tt.field)
				}
				if diff := cmp.Diff(before, state(t, ev.e)); diff != "" {
					t.Errorf("a refused request changed the store:\n%s", diff)
				}
			})
		}
	})
}

// failingStore fails every write with chat.ErrUnavailable while full is set, as a full disk
// does.
type failingStore struct {
	chat.Store
	full atomic.Bool
}

func (s *failingStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if s.full.Load() {
		return fmt.Errorf("test store: no space left on device: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

// TestStoreUnavailable: a store that cannot take writes is "try again": 503 with Retry-After
// in the Spring body, and health DOWN until a write succeeds.
func TestStoreUnavailable(t *testing.T) {
	store := &failingStore{Store: memory.New()}
	t.Cleanup(func() { store.Store.Close() })
	ev := newEnv(t, func(testing.TB) chat.Store { return store })
	if res := ev.post("ada-key", `{"messageRaw":"before","room":"r"}`); res.status != 200 {
		t.Fatal(res.body)
	}
	store.full.Store(true)
	for _, room := range []string{"r", "new room"} {
		res := ev.post("ada-key", fmt.Sprintf(`{"messageRaw":"during","room":%q}`, room))
		if res.status != 503 || res.header.Get("Retry-After") != "5" {
			t.Errorf("%s: %d Retry-After %q: %s", room, res.status, res.header.Get("Retry-After"), res.body)
		}
		errorMessage(t, res)
	}
	if res := ev.do("GET", "/api/chat/v1/health", "", "", ""); res.status != 503 || res.body != `{"status":"DOWN"}` {
		t.Errorf("health while the store fails: %d %s", res.status, res.body)
	}
	if res := ev.do("GET", "/api/chat/v1/messages?room=r", "ada-key", "", ""); res.status != 200 {
		t.Errorf("reads go on: %d %s", res.status, res.body)
	}
	store.full.Store(false)
	if res := ev.post("ada-key", `{"messageRaw":"after","room":"r"}`); res.status != 200 {
		t.Fatal(res.body)
	}
	if res := ev.do("GET", "/api/chat/v1/health", "", "", ""); res.status != 200 {
		t.Errorf("health after a good write: %d %s", res.status, res.body)
	}
}
