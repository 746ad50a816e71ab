package genesys_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// attrSize is what the engine counts against chat.MaxAttributesBytes.
func attrSize(a map[string]string) int {
	n := 0
	for k, v := range a {
		n += len(k) + len(v)
	}
	return n
}

// TestUpdateDataBounded: 24 updateData calls of large userData (the attack that made a 24 MB
// chat) cannot take a chat past the engine's limits; what would is refused whole with code
// 200 and stores nothing, and the chat goes on working, idle control included.
func TestUpdateDataBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk, func(c *genesys.Config) {
			c.Idle = genesys.IdleConfig{Warn: time.Minute, Close: time.Minute, Interval: -1}
		})
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		accepted := 0
		for i := range 24 {
			kv := []string{}
			switch i % 3 {
			case 0: // many keys of large values: ~40 KB a call
				for j := range 10 {
					kv = append(kv, fmt.Sprintf("userData[k%d_%d]", i, j), strings.Repeat("v", 4000))
				}
			case 1: // one value past the per-value limit
				kv = append(kv, fmt.Sprintf("userData[big%d]", i), strings.Repeat("b", chat.MaxAttributeValueBytes+1))
			case 2: // many small keys
				for j := range 100 {
					kv = append(kv, fmt.Sprintf("userData[s%d_%d]", i, j), "x")
				}
			}
			before := snapshot(t, ev)
			res, r := c.do("updateData", kv...)
			if res.status == 200 && r.StatusCode == 0 {
				accepted++
				continue
			}
			checkErr(t, res, wantErr{400, 0, []int{200}})
			if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
				t.Fatalf("call %d: a refused updateData changed the store:\n%s", i, diff)
			}
		}
		a := must(ev.e.Room(ctx, c.room())).Attributes
		if len(a) > chat.MaxAttributes || attrSize(a) > chat.MaxAttributesBytes {
			t.Fatalf("the chat grew to %d attributes, %d bytes", len(a), attrSize(a))
		}
		if accepted == 0 || accepted == 24 {
			t.Fatalf("%d of 24 calls accepted", accepted)
		}

		// Fill the chat exactly to a limit: idle control must still warn and close it.
		fill := map[string]func(t *testing.T, a map[string]string) []string{
			"bytes": func(t *testing.T, a map[string]string) []string {
				var kv []string
				left := chat.MaxAttributesBytes - attrSize(a)
				for j := 0; left > 0; j++ {
					key := fmt.Sprintf("fill%d", j)
					n := min(left-len("genesys.userData."+key), chat.MaxAttributeValueBytes)
					if n < 1 {
						t.Fatalf("%d bytes left", left)
					}
					kv = append(kv, "userData["+key+"]", strings.Repeat("f", n))
					left -= len("genesys.userData."+key) + n
				}
				return kv
			},
			"count": func(t *testing.T, a map[string]string) []string {
				var kv []string
				for j := len(a); j < chat.MaxAttributes; j++ {
					kv = append(kv, fmt.Sprintf("userData[n%d]", j), "1")
				}
				return kv
			},
		}
		for name, f := range fill {
			t.Run(name, func(t *testing.T) {
				d := ev.requestChat(url.Values{"nickname": {"Dee"}})
				if name == "bytes" { // start from the first chat's attributes
					var kv []string
					for k, v := range a {
						if u, ok := strings.CutPrefix(k, "genesys.userData."); ok {
							kv = append(kv, "userData["+u+"]", v)
						}
					}
					if res, r := d.do("updateData", kv...); r.StatusCode != 0 {
						t.Fatal(res.body)
					}
				}
				if res, r := d.do("updateData", f(t, must(ev.e.Room(ctx, d.room())).Attributes)...); r.StatusCode != 0 {
					t.Fatal(res.body)
				}
				full := must(ev.e.Room(ctx, d.room())).Attributes
				if len(full) != chat.MaxAttributes && attrSize(full) != chat.MaxAttributesBytes {
					t.Fatalf("not full: %d attributes, %d bytes", len(full), attrSize(full))
				}
				res, _ := d.do("updateData", "userData[one]", "more")
				checkErr(t, res, wantErr{400, 0, []int{200}})
				last := must(ev.e.Room(ctx, d.room())).LastPos
				ev.clock.Advance(time.Minute)
				if err := ev.h.CheckIdle(ctx); err != nil {
					t.Fatalf("idle control of a full chat: %v", err)
				}
				ev.clock.Advance(time.Minute)
				if err := ev.h.CheckIdle(ctx); err != nil {
					t.Fatalf("idle control of a full chat: %v", err)
				}
				if r := must(ev.e.Room(ctx, d.room())); !r.Ended() || r.LastPos != last+3 {
					t.Errorf("a full chat was not warned once and closed: ended %v, %d events after %d", r.Ended(), r.LastPos, last)
				}
			})
		}
	})
}

// TestRequestChatUserDataBounded: requestChat's userData is bounded the same way.
func TestRequestChatUserDataBounded(t *testing.T) {
	ev := newEnv(t, stores[0].Open)
	f := url.Values{"nickname": {"Ann"}}
	for j := range 20 {
		f.Set(fmt.Sprintf("userData[k%d]", j), strings.Repeat("v", 4000))
	}
	before := snapshot(t, ev)
	checkErr(t, ev.post("/"+service, f), wantErr{400, 0, []int{200}})
	if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
		t.Errorf("a refused requestChat changed the store:\n%s", diff)
	}
}

// TestCheckIdleGoesOn: a chat idle control cannot update (one made before its attribute was
// preallocated, filled to the limit) does not stop the sweep of the chats after it.
func TestCheckIdleGoesOn(t *testing.T) {
	ctx := context.Background()
	ev := newEnv(t, stores[0].Open, func(c *genesys.Config) {
		c.Idle = genesys.IdleConfig{Warn: time.Minute, Close: time.Minute, Interval: -1}
	})
	attrs := map[string]string{"genesys.serviceName": service}
	for j := len(attrs); j < chat.MaxAttributes; j++ {
		attrs[fmt.Sprintf("genesys.userData.n%d", j)] = "1"
	}
	stuck := must(ev.e.CreateRoom(ctx, chat.NewRoom{Attributes: attrs}))
	must(ev.e.Notice(ctx, stuck.ID, "hello"))
	ev.clock.Advance(time.Millisecond) // the stuck chat comes first in ID order
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	ev.clock.Advance(time.Minute)
	if err := ev.h.CheckIdle(ctx); err == nil || !strings.Contains(err.Error(), stuck.ID.String()) {
		t.Errorf("CheckIdle: %v", err)
	}
	if last := must(ev.e.Room(ctx, c.room())).LastPos; last != 2 {
		t.Errorf("the chat after the stuck one was not warned: last position %d", last)
	}
}

// TestRateLimit: requestChat costs a Create token and every write a Write token of the
// client's address; polling is free. Refusals are 429 with Retry-After and statusCode 1,
// and store nothing.
func TestRateLimit(t *testing.T) {
	ev := newEnv(t, stores[0].Open, func(c *genesys.Config) {
		c.Limiter = limit.New(limit.Rates{Create: limit.Rate{PerSecond: 1e-9, Burst: 2}, Write: limit.Rate{PerSecond: 1e-9, Burst: 3}})
	})
	a := ev.requestChat(url.Values{"nickname": {"Ann"}})
	b := ev.requestChat(url.Values{"nickname": {"Bob"}})
	limited := wantErr{429, 1, []int{200}}
	before := snapshot(t, ev)
	res := ev.post("/"+service, url.Values{"nickname": {"Cy"}})
	checkErr(t, res, limited)
	if res.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
	}
	if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
		t.Errorf("a refused requestChat changed the store:\n%s", diff)
	}
	// Three writes, whichever chat, then refusals; refresh without a preview is never limited.
	for _, op := range []struct {
		c  *client
		kv []string
	}{{a, []string{"message", "1"}}, {b, []string{"message", "2"}}, {a, nil}} {
		name := "send"
		if op.kv == nil {
			name = "startTyping"
		}
		if res, r := op.c.do(name, op.kv...); r.StatusCode != 0 {
			t.Fatalf("%s: %s", name, res.body)
		}
	}
	before = snapshot(t, ev)
	for _, tt := range []struct {
		op string
		kv []string
	}{
		{"send", []string{"message", "x"}}, {"startTyping", nil}, {"stopTyping", nil},
		{"updateNickname", []string{"nickname", "z"}}, {"pushUrl", []string{"pushUrl", "http://a.b"}},
		{"readReceipt", []string{"transcriptPosition", "1"}}, {"customNotice", []string{"message", "n"}},
		{"updateData", []string{"userData[k]", "v"}}, {"disconnect", nil},
		{"refresh", []string{"message", "typing preview"}},
	} {
		res, _ := a.do(tt.op, tt.kv...)
		checkErr(t, res, limited)
	}
	// Wrong credentials cost a token too (the Limiter runs first): same answer.
	res = ev.post(fmt.Sprintf("/%s/%s/send", service, a.chatID), url.Values{"alias": {"1"}, "userId": {a.userID}, "secureKey": {"bad"}, "message": {"x"}})
	checkErr(t, res, limited)
	if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
		t.Errorf("refused writes changed the store:\n%s", diff)
	}
	for range 5 {
		a.refresh()
	}

	// A nil Limiter is limit.DefaultRates: 20 chats at once, then 429.
	ev = newEnv(t, stores[0].Open, func(c *genesys.Config) { c.Limiter = nil })
	refused := 0
	for range 25 {
		if res := ev.post("/"+service, url.Values{"nickname": {"x"}}); res.status == 429 {
			refused++
		}
	}
	if refused != 5 {
		t.Errorf("the default Limiter refused %d of 25 requestChats, want 5", refused)
	}
}

// TestBadInput: a NUL byte or invalid UTF-8 in any form field, name or value, used by the
// operation or not, urlencoded or multipart, is HTTP 400 with code 300 naming the field, and
// stores nothing.
func TestBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		type tc struct {
			name, op, field string
			kv              []string
		}
		var tests []tc
		bad := map[string]string{"NUL": "a\x00b", "invalid UTF-8": "caf\xe9"}
		for what, v := range bad {
			for _, f := range []struct{ op, field string }{
				{"", "nickname"}, {"", "firstName"}, {"", "subject"}, {"", "emailAddress"}, {"", "userData[k]"}, {"", "unused"},
				{"send", "message"}, {"send", "messageType"}, {"send", "alias"}, {"send", "userId"}, {"send", "secureKey"},
				{"startTyping", "message"}, {"refresh", "message"}, {"refresh", "transcriptPosition"},
				{"updateNickname", "nickname"}, {"pushUrl", "pushUrl"}, {"customNotice", "message"},
				{"updateData", "userData[k]"}, {"disconnect", "unused"},
			} {
				tests = append(tests, tc{what + " in " + f.op + " " + f.field, f.op, f.field, []string{f.field, v}})
			}
			tests = append(tests, tc{what + " in a field name", "updateData", "a field name", []string{"userData[" + v + "]", "1"}})
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var form url.Values
				path := "/" + service
				if tt.op == "" {
					form = url.Values{"nickname": {"Ann"}, "firstName": {"A"}, "lastName": {"B"}}
				} else {
					form = c.form("message", "m", "nickname", "n", "pushUrl", "http://a.b", "userData[x]", "y", "transcriptPosition", "1")
					path = fmt.Sprintf("/%s/%s/%s", service, c.chatID, tt.op)
				}
				form.Set(tt.kv[0], tt.kv[1])
				for _, multipart := range []bool{false, true} {
					before := snapshot(t, ev)
					var res result
					if multipart {
						var b bytes.Buffer
						for k, vs := range form {
							fmt.Fprintf(&b, "--X\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", k, vs[0])
						}
						b.WriteString("--X--\r\n")
						res = ev.raw("POST", path, "multipart/form-data; boundary=X", b.String())
					} else {
						res = ev.post(path, form)
					}
					checkErr(t, res, wantErr{400, 0, []int{300}})
					// A NUL in a multipart part's header is already a malformed MIME header.
					mimeHeader := multipart && tt.field == "a field name" && strings.Contains(tt.name, "NUL")
					if !strings.Contains(res.body, `"advice":"`+tt.field) && !(mimeHeader && strings.Contains(res.body, "malformed MIME header")) {
						t.Errorf("multipart %v: advice does not name %s: %s", multipart, tt.field, res.body)
					}
					if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
						t.Errorf("multipart %v: a refused request changed the store:\n%s", multipart, diff)
					}
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

// TestStoreUnavailable: a store that cannot take writes is statusCode 1 (keep trying) with
// HTTP 503 and Retry-After, never a generic failure; reads go on, and so do writes once the
// store takes them again.
func TestStoreUnavailable(t *testing.T) {
	store := &failingStore{Store: memory.New()}
	t.Cleanup(func() { store.Store.Close() })
	ev := newEnv(t, func(testing.TB) chat.Store { return store })
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	store.full.Store(true)
	try := wantErr{503, 1, []int{240}}
	res := ev.post("/"+service, url.Values{"nickname": {"Bob"}})
	checkErr(t, res, try)
	for _, op := range []struct {
		op string
		kv []string
	}{{"send", []string{"message", "x"}}, {"startTyping", nil}, {"updateData", []string{"userData[k]", "v"}}, {"disconnect", nil}} {
		res, _ := c.do(op.op, op.kv...)
		checkErr(t, res, try)
		if res.header.Get("Retry-After") != "5" {
			t.Errorf("%s: Retry-After %q", op.op, res.header.Get("Retry-After"))
		}
	}
	c.refresh()
	store.full.Store(false)
	if res, r := c.do("send", "message", "back"); r.StatusCode != 0 {
		t.Fatal(res.body)
	}
	if n := len(must(ev.e.Users(context.Background(), chat.ListFilter{}))); n != 1 {
		t.Errorf("%d users: the refused requestChat stored one", n)
	}
}

// TestIdleStoreUnavailable: idle control that cannot write does not stop a party's read.
func TestIdleStoreUnavailable(t *testing.T) {
	store := &failingStore{Store: memory.New()}
	t.Cleanup(func() { store.Store.Close() })
	ev := newEnv(t, func(testing.TB) chat.Store { return store }, func(c *genesys.Config) {
		c.Idle = genesys.IdleConfig{Warn: time.Minute, Close: time.Minute, Interval: -1}
	})
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	ev.clock.Advance(time.Hour)
	store.full.Store(true)
	c.refresh()
	res, _ := c.do("send", "message", "x")
	checkErr(t, res, wantErr{503, 1, []int{240}})
	store.full.Store(false)
	if r := c.refresh(); len(r.Messages) != 1 || r.Messages[0].Type != "Notice" {
		t.Errorf("idle control after the store came back: %+v", r)
	}
}

// syncBuffer is a log sink the sweeper and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSweeperPanic: a panic in the idle sweeper is logged with its stack, and the sweeper
// goes on to close the idle chat; Close still stops it without leaks.
func TestSweeperPanic(t *testing.T) {
	testkit.CheckLeaks(t)
	ctx := context.Background()
	e := must(chat.Open(ctx, stores[0].Open(t)))
	defer e.Close()
	var logs syncBuffer
	h := must(genesys.New(e, genesys.Config{ServiceNames: []string{service}, Limiter: unlimited,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Idle:   genesys.IdleConfig{Warn: 20 * time.Millisecond, Close: 20 * time.Millisecond, Interval: 5 * time.Millisecond}}))
	defer h.Close()
	var sweeps atomic.Int32
	genesys.SetSweepHook(h, func() {
		if sweeps.Add(1) <= 3 {
			panic("injected")
		}
	})
	ev := &env{t: t, e: e, h: h}
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	deadline := time.Now().Add(5 * time.Second)
	for !must(e.Room(ctx, c.room())).Ended() {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never closed the idle chat after its panics")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Close()
	out := logs.String()
	if n := strings.Count(out, "idle sweep panicked"); n != 3 || !strings.Contains(out, "panic=injected") ||
		!strings.Contains(out, "hardening_test.go") || !strings.Contains(out, "goroutine") {
		t.Errorf("%d panics logged, without the stack:\n%s", n, out)
	}
}

// TestNoOracle: an unknown chatId, a wrong secureKey and another chat's userId get the same
// answer, byte for byte, for every operation, and none of them changes anything, even when
// the chat is due for idle control.
func TestNoOracle(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk, func(c *genesys.Config) {
			c.Idle = genesys.IdleConfig{Warn: time.Minute, Close: time.Minute, Interval: -1}
		})
		a := ev.requestChat(url.Values{"nickname": {"Ann"}})
		b := ev.requestChat(url.Values{"nickname": {"Bob"}})
		ended := ev.requestChat(url.Values{"nickname": {"Cy"}})
		must(ev.e.EndRoom(context.Background(), ended.room()))
		ev.clock.Advance(time.Hour) // every chat is due for a warning
		unknown := chat.ID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}.String()
		for _, op := range []string{"send", "refresh", "startTyping", "stopTyping", "disconnect", "pushUrl", "updateNickname", "readReceipt", "customNotice", "updateData"} {
			t.Run(op, func(t *testing.T) {
				fields := []string{"message", "x", "pushUrl", "http://a.b", "nickname", "n", "transcriptPosition", "1", "userData[k]", "v"}
				creds := func(chatID, userID, key string) result {
					f := url.Values{"alias": {"117"}, "userId": {userID}, "secureKey": {key}}
					for i := 0; i < len(fields); i += 2 {
						f.Set(fields[i], fields[i+1])
					}
					return ev.post(fmt.Sprintf("/%s/%s/%s", service, chatID, op), f)
				}
				before := snapshot(t, ev)
				want := creds(unknown, a.userID, a.key)
				checkErr(t, want, wantErr{200, 2, []int{248}})
				for name, res := range map[string]result{
					"wrong secureKey":          creds(a.chatID, a.userID, wrongKey(a.key)),
					"another chat's userId":    creds(a.chatID, b.userID, b.key),
					"another chat's key":       creds(a.chatID, a.userID, b.key),
					"wrong key of ended chat":  creds(ended.chatID, ended.userID, wrongKey(ended.key)),
					"lower-case userId, wrong": creds(a.chatID, strings.ToLower(a.userID), "x"),
				} {
					if diff := cmp.Diff([]any{want.status, want.header, want.body}, []any{res.status, res.header, res.body}); diff != "" {
						t.Errorf("%s: answer differs from an unknown chat's (-unknown +got):\n%s", name, diff)
					}
				}
				if diff := cmp.Diff(before, snapshot(t, ev)); diff != "" {
					t.Errorf("unauthenticated requests changed the store:\n%s", diff)
				}
			})
		}
		// The party itself still gets idle control on its next request.
		if r := a.refresh(); len(r.Messages) != 1 || r.Messages[0].Type != "Notice" {
			t.Errorf("refresh of an idle chat: %+v", r)
		}
	})
}
