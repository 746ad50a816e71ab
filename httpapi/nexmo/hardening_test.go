package nexmo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/limit"
)

// send serves one request with an explicit Content-Type ("" for none) and client address (""
// for httptest's 192.0.2.1).
func (v *env) send(method, path, token, contentType string, body []byte, remote string) resp {
	v.t.Helper()
	req := httptest.NewRequest(method, "/beta"+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	w := httptest.NewRecorder()
	v.h.ServeHTTP(w, req)
	out := resp{Status: w.Code, Header: w.Header(), Raw: w.Body.Bytes()}
	if err := json.Unmarshal(out.Raw, &out.JSON); err != nil {
		v.t.Fatalf("%s %s: answer is not JSON: %q", method, path, out.Raw)
	}
	return out
}

// snapshot is what an admin reads of a conversation, its events and members, and the users:
// a refused request must leave all of it as it was.
func (v *env) snapshot(cid string) string {
	v.t.Helper()
	var b strings.Builder
	for _, p := range []string{"/conversations/" + cid, "/conversations/" + cid + "/events",
		"/conversations/" + cid + "/members", "/users?page_size=100", "/conversations?page_size=100"} {
		b.Write(v.must(200, v.do("GET", p, v.admin, nil)).Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestNoExistenceOracle: a user probing a conversation it is not in gets, on every route under
// /conversations/{id}, the very bytes a conversation that does not exist gets, whatever the
// body; and nothing is stored.
func TestNoExistenceOracle(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("secret")
		v.must(201, v.event(c, v.admin, `{"type":"text","body":{"text":"private"}}`)) // event 3
		mal := v.user("mallory")
		malT := v.token("mallory")
		// A neighbour of the real id (its last digit changed), one far from it, a malformed one.
		last := c.cid[len(c.cid)-1]
		neighbour := c.cid[:len(c.cid)-1] + map[bool]string{true: "1", false: "0"}[last == '0']
		missing := []string{neighbour, "CON-00000000-0000-0000-0000-000000000001", "CON-nope"}
		app := `"channel":{"type":"app"}`
		before := v.snapshot(c.cid)

		for _, rt := range []struct{ method, path, body string }{ // every route under /conversations/{id}
			{"GET", "", ""},
			{"HEAD", "", ""},
			{"PUT", "", `{"display_name":"pwned"}`},
			{"PUT", "", `{"display_name":`},
			{"DELETE", "", ""},
			{"GET", "/events", ""},
			{"GET", "/events?start_id=1&page_size=5", ""},
			{"POST", "/events", fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.aliceM)},
			{"POST", "/events", `{"type":"member:invited","body":{"user":{"name":"mallory"}}}`},
			{"POST", "/events", `{"type":`},
			{"GET", "/events/3", ""},
			{"GET", "/events/999", ""},
			{"DELETE", "/events/3", ""},
			{"GET", "/members", ""},
			{"POST", "/members", fmt.Sprintf(`{"action":"join","user_id":%q,%s}`, mal, app)},
			{"POST", "/members", `{"action":"join","user_name":"mallory",` + app + `}`},
			{"POST", "/members", `{"user_name":"mallory",` + app + `}`},
			{"POST", "/members", fmt.Sprintf(`{"action":"invite","user_id":%q,%s}`, mal, app)},
			{"POST", "/members", fmt.Sprintf(`{"action":"invite","user_id":%q,"member_id_inviting":%q,%s}`, mal, c.aliceM, app)},
			{"POST", "/members", `{"action":"join","user_name":"nobody",` + app + `}`},
			{"POST", "/members", `not JSON`},
			{"GET", "/members/" + c.aliceM, ""},
			{"GET", "/members/MEM-nope", ""},
			{"PUT", "/members/" + c.aliceM, `{"action":"join"}`},
			{"DELETE", "/members/" + c.aliceM, ""},
		} {
			t.Run(rt.method+rt.path+" "+rt.body, func(t *testing.T) {
				ask := func(cid string) resp {
					var body []byte
					if rt.method == "POST" || rt.method == "PUT" {
						body = []byte(rt.body)
					}
					w := *v
					w.t = t
					return w.send(rt.method, "/conversations/"+cid+rt.path, malT, "application/json", body, "")
				}
				want := ask(missing[0])
				if want.Status != 404 && want.Status != 403 {
					t.Fatalf("a missing conversation answered %d %s", want.Status, want.Raw)
				}
				for _, id := range append([]string{c.cid}, missing[1:]...) {
					got := ask(id)
					diff(t, want.Status, got.Status)
					diff(t, want.Header, got.Header)
					diff(t, string(want.Raw), string(got.Raw))
				}
			})
		}
		diff(t, before, v.snapshot(c.cid))
		if _, err := v.e.MemberByUser(context.Background(), c.room, engineID(t, "USR-", mal)); !isNotFound(err) {
			t.Fatalf("mallory has a membership: %v", err)
		}
	})
}

// TestJoinPolicy: a user joins only a conversation it is invited to, or created here and has
// not been in yet; Config.MayJoin can let it into others. Refusals store nothing.
func TestJoinPolicy(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		var mu sync.Mutex
		allow := map[string]bool{} // user name + " " + conversation id → MayJoin's answer
		var asked []string
		v := newEnv(t, sf, func(c *Config) {
			c.MayJoin = func(ctx context.Context, u chat.User, r chat.Room) bool {
				mu.Lock()
				defer mu.Unlock()
				k := u.Name + " " + conversationID(r.ID)
				asked = append(asked, k)
				return allow[k]
			}
		})
		app := `"channel":{"type":"app"}`
		pub := v.conversation("public")
		priv, err := v.e.CreateRoom(context.Background(), chat.NewRoom{Name: "private", Private: true})
		if err != nil {
			t.Fatal(err)
		}
		privID := conversationID(priv.ID)
		for _, n := range []string{"ann", "ben", "cat", "dan"} {
			v.user(n)
		}
		joinAs := func(name, cid string) resp {
			return v.do("POST", "/conversations/"+cid+"/members", v.token(name), `{"action":"join","user_name":"`+name+`",`+app+`}`)
		}
		members := func(cid string) int {
			ms, _ := v.e.Members(context.Background(), engineID(t, "CON-", cid))
			return len(ms)
		}
		// ann creates a conversation with her own token: she may join it, others may not.
		own := v.must(200, v.do("POST", "/conversations", v.token("ann"), `{"name":"ann's"}`)).str("id")

		steps := []struct {
			name, user, cid string
			allow           bool // MayJoin's answer for this user and conversation
			status          int
			code            string
		}{
			{"stranger, public", "ben", pub, false, 404, codeConvNotFound},
			{"stranger, private", "ben", privID, false, 404, codeConvNotFound},
			{"another's creation", "ben", own, false, 404, codeConvNotFound},
			{"creator", "ann", own, false, 201, ""},
			{"stranger let in by MayJoin", "cat", pub, true, 201, ""},
			{"invited", "dan", pub, false, 201, ""}, // invited below, before the steps run
		}
		v.must(201, v.do("POST", "/conversations/"+pub+"/members", v.admin, `{"action":"invite","user_name":"dan",`+app+`}`))
		for _, s := range steps {
			mu.Lock()
			allow[s.user+" "+s.cid] = s.allow
			mu.Unlock()
			n := members(s.cid)
			r := joinAs(s.user, s.cid)
			if s.status == 201 {
				v.must(201, r)
				if members(s.cid) != n+1 && s.name != "invited" {
					t.Fatalf("%s: no new member", s.name)
				}
				continue
			}
			v.wantError(r, s.status, s.code, "")
			if members(s.cid) != n {
				t.Fatalf("%s: a refused join stored a member", s.name)
			}
		}
		// MayJoin was asked only where the default said no, with the user and the room.
		diff(t, []string{"ben " + pub, "ben " + privID, "ben " + own, "cat " + pub}, asked)

		// Having left, a user (the creator too) needs an invitation or MayJoin to come back; a
		// left member knows the conversation, so it is refused, not told it does not exist.
		for _, u := range []struct{ name, cid string }{{"ann", own}, {"dan", pub}} {
			uid := userID(mustUser(t, v, u.name).ID)
			mid := v.must(200, v.do("GET", "/users/"+uid+"/conversations", v.token(u.name), nil)).arr()
			var left string
			for _, c := range mid {
				if c.(map[string]any)["id"] == u.cid {
					left = c.(map[string]any)["member_id"].(string)
				}
			}
			v.must(200, v.do("DELETE", "/conversations/"+u.cid+"/members/"+left, v.token(u.name), nil))
			n := members(u.cid)
			v.wantError(joinAs(u.name, u.cid), 403, codePermission, "")
			if members(u.cid) != n {
				t.Fatal("a refused rejoin stored a member")
			}
			mu.Lock()
			allow[u.name+" "+u.cid] = true
			mu.Unlock()
			if joined := v.must(201, joinAs(u.name, u.cid)).str("id"); joined == left {
				t.Fatal("a rejoin kept the member id")
			}
		}
		// MayJoin lets a stranger join itself, nothing else.
		mu.Lock()
		allow["ben "+pub] = true
		mu.Unlock()
		v.wantError(v.do("POST", "/conversations/"+pub+"/members", v.token("ben"), `{"action":"invite","user_name":"ben",`+app+`}`), 404, codeConvNotFound, "")
		v.wantError(v.do("GET", "/conversations/"+pub, v.token("ben"), nil), 404, codeConvNotFound, "")
		// The admin joins anyone (to a private room, only the engine's invited: as before).
		v.must(201, v.do("POST", "/conversations/"+pub+"/members", v.admin, `{"action":"join","user_name":"ben",`+app+`}`))
	})
}

func mustUser(t *testing.T, v *env, name string) chat.User {
	t.Helper()
	u, err := v.e.UserByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestBadInput: what cannot be stored as sent is refused in the vendor's format, naming the
// field, and nothing changes.
func TestBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("bad")
		kim := v.user("kim")
		ev := "/conversations/" + c.cid + "/events"
		text := func(s string) string { return `{"type":"text","from":"` + c.aliceM + `","body":{"text":"` + s + `"}}` }
		deep := `{"type":"custom:deep","from":"` + c.aliceM + `","body":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5001)
		long := strings.Repeat("n", chat.MaxFieldBytes+1)
		const js = "application/json"
		for _, tc := range []struct {
			name, method, path, ct, body string
			status                       int
			code, field                  string
		}{
			{"invalid UTF-8 in a user name", "POST", "/users", js, "{\"name\":\"\xff\"}", 400, codeValidation, "name"},
			{"invalid UTF-8 in a display name", "PUT", "/users/" + kim, js, "{\"display_name\":\"caf\xe9\"}", 400, codeValidation, "display_name"},
			{"invalid UTF-8 in a conversation", "POST", "/conversations", js, "{\"name\":\"x\",\"display_name\":\"\xc3\"}", 400, codeValidation, "display_name"},
			{"invalid UTF-8 in a text", "POST", ev, js, text("caf\xe9"), 400, codeValidation, "body"},
			{"invalid UTF-8 in a key", "POST", "/users", js, "{\"na\xffme\":\"x\",\"name\":\"y\"}", 400, codeValidation, "body"},
			{"NUL escape in a user name", "POST", "/users", js, `{"name":"a\u0000b"}`, 400, codeValidation, "name"},
			{"NUL byte in a user name (not JSON)", "POST", "/users", js, "{\"name\":\"a\x00b\"}", 400, codeValidation, "body"},
			{"NUL in a text", "POST", ev, js, text(`a\u0000`), 400, codeValidation, "body"},
			{"NUL in a custom event body", "POST", ev, js, `{"type":"custom:x","from":"` + c.aliceM + `","body":{"a":["\u0000"]}}`, 400, codeValidation, "body"},
			{"NUL in a custom event name", "POST", ev, js, `{"type":"custom:x\u0000","from":"` + c.aliceM + `","body":{}}`, 400, codeValidation, "type"},
			{"NUL in properties", "PUT", "/conversations/" + c.cid, js, `{"properties":{"k":"\u0000"}}`, 400, codeValidation, "properties"},
			{"NUL in a member's user name", "POST", "/conversations/" + c.cid + "/members", js, `{"action":"invite","user_name":"k\u0000im","channel":{"type":"app"}}`, 400, codeValidation, "user_name"},
			{"custom event nested 5,000 deep", "POST", ev, js, deep, 400, codeValidation, "body"},
			{"name past the engine's limit", "POST", "/users", js, `{"name":"` + long + `"}`, 400, codeValidation, "name"},
			{"conversation name past the limit", "PUT", "/conversations/" + c.cid, js, `{"name":"` + long + `"}`, 400, codeValidation, "name"},
			{"image_url past the limit", "PUT", "/users/" + kim, js, `{"image_url":"` + long + `"}`, 400, codeValidation, "image_url"},
			{"text/plain", "POST", ev, "text/plain", text("x"), 415, codeMediaType, ""},
			{"form-encoded", "POST", "/users", "application/x-www-form-urlencoded", `{"name":"zed"}`, 415, codeMediaType, ""},
			{"no Content-Type", "POST", "/conversations", "", `{"name":"zed"}`, 415, codeMediaType, ""},
			{"no Content-Type on a PUT", "PUT", "/users/" + kim, "", `{"display_name":"zed"}`, 415, codeMediaType, ""},
			{"malformed Content-Type", "POST", "/users", "application/", `{"name":"zed"}`, 415, codeMediaType, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := *v // its helpers report to this subtest
				w.t = t
				before := w.snapshot(c.cid)
				w.wantError(w.send(tc.method, tc.path, w.admin, tc.ct, []byte(tc.body), ""), tc.status, tc.code, tc.field)
				diff(t, before, w.snapshot(c.cid))
			})
		}
		// What clients send is taken: a charset parameter, a +json type, and no Content-Type on
		// a request without a body.
		v.must(201, v.send("POST", ev, v.admin, "application/json; charset=utf-8", []byte(text("ok")), ""))
		v.must(200, v.send("POST", "/users", v.admin, "application/vnd.nexmo+json", []byte(`{"name":"zed"}`), ""))
		v.must(200, v.send("POST", "/conversations", v.admin, "", nil, ""))
		v.must(200, v.send("DELETE", "/users/"+kim, v.admin, "", nil, ""))
	})
}

// TestRateLimit: writes past a client's rate are answered 429 in the vendor's format with
// Retry-After, before the token is looked at; reads and other clients go on.
func TestRateLimit(t *testing.T) {
	v := newEnv(t, stores[0], func(c *Config) {
		c.Limiter = limit.New(limit.Rates{Write: limit.Rate{PerSecond: 1e-6, Burst: 3}})
	})
	users := func() int {
		us, _ := v.e.Users(context.Background(), chat.ListFilter{})
		return len(us)
	}
	for i := range 3 {
		v.must(200, v.do("POST", "/users", v.admin, fmt.Sprintf(`{"name":"u%d"}`, i)))
	}
	for _, r := range []resp{
		v.do("POST", "/users", v.admin, `{"name":"u3"}`),
		v.do("DELETE", "/legs/x", v.admin, nil),
		v.do("PUT", "/users/USR-00000000-0000-0000-0000-000000000001", "", `{}`), // no token: still counted
	} {
		v.wantError(r, 429, codeTooManyRequests, "")
		if r.Header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
	}
	if users() != 3 {
		t.Fatal("a refused write stored a user")
	}
	v.must(200, v.do("GET", "/users", v.admin, nil))
	v.must(200, v.send("POST", "/users", v.admin, "application/json", []byte(`{"name":"other"}`), "198.51.100.7:4000"))

	// Without a Limiter, New makes one at limit.DefaultRates: a burst of writes is cut.
	d := newEnv(t, stores[0], func(c *Config) { c.Limiter = nil })
	refused := 0
	for range 200 {
		if r := d.do("DELETE", "/legs/x", d.admin, nil); r.Status == 429 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("200 writes at once passed the default limit")
	}
}

// unavailableStore fails every write with chat.ErrUnavailable while full is set, as a full
// disk does.
type unavailableStore struct {
	chat.Store
	full atomic.Bool
}

func (s *unavailableStore) Update(ctx context.Context, fn func(tx chat.Tx) error) error {
	if s.full.Load() {
		return fmt.Errorf("test store: no space left on device: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

// TestStoreUnavailable: a store that cannot write is "try again": 503 with Retry-After in the
// vendor's format, not a 500; nothing is stored, and writes work again once it can.
func TestStoreUnavailable(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		us := &unavailableStore{}
		v := newEnv(t, storeFactory{Name: sf.Name, Open: func(t testing.TB) chat.Store {
			us.Store = sf.Open(t)
			return us
		}})
		c := v.chatRoom("full")
		dan := v.user("dan")
		before := v.snapshot(c.cid)
		us.full.Store(true)
		for _, w := range []struct{ method, path, body string }{
			{"POST", "/conversations/" + c.cid + "/events", `{"type":"text","from":"` + c.aliceM + `","body":{"text":"x"}}`},
			{"POST", "/conversations", `{"name":"more"}`},
			{"PUT", "/conversations/" + c.cid, `{"display_name":"x"}`},
			{"POST", "/users", `{"name":"eve"}`},
			{"POST", "/conversations/" + c.cid + "/members", `{"action":"invite","user_id":"` + dan + `","channel":{"type":"app"}}`},
			{"DELETE", "/conversations/" + c.cid + "/members/" + c.bobM, ""},
		} {
			var body any
			if w.body != "" {
				body = w.body
			}
			r := v.do(w.method, w.path, v.admin, body)
			v.wantError(r, 503, codeUnavailable, "")
			if r.Header.Get("Retry-After") != "5" {
				t.Fatalf("%s %s: Retry-After %q", w.method, w.path, r.Header.Get("Retry-After"))
			}
		}
		diff(t, before, v.snapshot(c.cid)) // reads still work
		us.full.Store(false)
		v.must(201, v.event(c, v.admin, `{"type":"text","from":"`+c.aliceM+`","body":{"text":"x"}}`))
	})
}

// TestRefusalFormat: a refused body is answered in the vendor's JSON error format
// with the codes it documents.
func TestRefusalFormat(t *testing.T) {
	v := newEnv(t, stores[0])
	r := v.send("POST", "/users", v.admin, "text/plain", []byte(`x`), "")
	diff(t, jsonOf(t, `{"code":%q,"description":"Content-Type \"text/plain\" is not supported: send application/json"}`, codeMediaType), r.JSON)
	if r.Status != http.StatusUnsupportedMediaType || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", r.Status, r.Header)
	}
}
