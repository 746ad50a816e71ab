package genesys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
)

// specTime is the utcTime of the spec's requestChat example, 1432845088000 ms.
var specTime = time.UnixMilli(1432845088000).UTC()

const service = "customer-support"

type env struct {
	t     testing.TB
	e     *chat.Engine
	h     *genesys.Handler
	clock *fakeclock.Clock
	cfg   genesys.Config
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// unlimited is a Limiter that limits nothing.
var unlimited = limit.New(limit.Rates{})

func newEnv(t testing.TB, mk storeFactory, mod ...func(*genesys.Config)) *env {
	t.Helper()
	clock := fakeclock.New(specTime)
	e, err := chat.Open(context.Background(), mk(t), chat.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	cfg := genesys.Config{ServiceNames: []string{service, "other"}, Alias: "117", Now: clock.Now, Logger: quiet,
		Limiter: unlimited} // TestRateLimit tests the limits
	for _, f := range mod {
		f(&cfg)
	}
	h, err := genesys.New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &env{t: t, e: e, h: h, clock: clock, cfg: cfg}
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

// raw sends a request with a body and content type to the handler.
func (ev *env) raw(method, path, contentType, body string) result {
	ev.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	ev.h.ServeHTTP(w, r)
	return result{w.Code, w.Header(), w.Body.String()}
}

// post sends a form.
func (ev *env) post(path string, form url.Values) result {
	ev.t.Helper()
	return ev.raw("POST", path, "application/x-www-form-urlencoded", form.Encode())
}

func decodeResp(t testing.TB, body string) genesys.Response {
	t.Helper()
	var r genesys.Response
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return r
}

// client is a Genesys web client of the tests.
type client struct {
	ev                  *env
	chatID, userID, key string
	alias               string
	next                uint64
	seen                []genesys.Message
}

// requestChat starts a chat as the customer.
func (ev *env) requestChat(form url.Values) *client {
	ev.t.Helper()
	res := ev.post("/"+service, form)
	if res.status != 200 {
		ev.t.Fatalf("requestChat: %d %s", res.status, res.body)
	}
	r := decodeResp(ev.t, res.body)
	if r.StatusCode != 0 {
		ev.t.Fatalf("requestChat: %s", res.body)
	}
	c := &client{ev: ev, chatID: r.ChatID, userID: r.UserID, key: r.SecureKey, alias: r.Alias, next: r.NextPosition}
	c.seen = append(c.seen, r.Messages...)
	return c
}

func (c *client) form(kv ...string) url.Values {
	f := url.Values{"alias": {c.alias}, "userId": {c.userID}, "secureKey": {c.key}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

func (c *client) do(op string, kv ...string) (result, genesys.Response) {
	c.ev.t.Helper()
	res := c.ev.post(fmt.Sprintf("/%s/%s/%s", service, c.chatID, op), c.form(kv...))
	if res.status != 200 {
		return res, genesys.Response{}
	}
	return res, decodeResp(c.ev.t, res.body)
}

// refresh polls once from c.next and records what it sees.
func (c *client) refresh() genesys.Response {
	c.ev.t.Helper()
	res, r := c.do("refresh", "transcriptPosition", fmt.Sprint(c.next))
	if res.status != 200 || r.StatusCode != 0 {
		c.ev.t.Fatalf("refresh: %d %s", res.status, res.body)
	}
	c.seen = append(c.seen, r.Messages...)
	c.next = r.NextPosition
	return r
}

func (c *client) room() chat.ID { return must(chat.ParseID(c.chatID)) }

// member returns the engine user of the client.
func (c *client) user() chat.ID {
	ms := must(c.ev.e.Members(context.Background(), c.room()))
	for _, m := range ms {
		if m.Role == chat.RoleClient {
			return m.UserID
		}
	}
	c.ev.t.Fatal("no client member")
	return chat.ID{}
}

// agent creates an engine user that joins the chat as an agent.
func (ev *env) agent(c *client, nick string) chat.User {
	ev.t.Helper()
	ctx := context.Background()
	u := must(ev.e.CreateUser(ctx, chat.NewUser{DisplayName: nick + " (user)"}))
	must(ev.e.Join(ctx, c.room(), u.ID, chat.JoinOptions{Nickname: nick, Role: chat.RoleAgent}))
	return u
}

func forEachStore(t *testing.T, f func(t *testing.T, mk storeFactory)) { testkit.ForEachStore(t, f) }
