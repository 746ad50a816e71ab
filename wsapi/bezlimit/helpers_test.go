package bezlimit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/testkit"
)

const testAPIToken = "s3cret-api-token"

// storeFactories are the stores the handler tests run on: memory and bolt.
var storeFactories = testkit.Stores

// env is one handler on one engine behind an httptest.Server.
type env struct {
	t   testing.TB
	e   *chat.Engine
	h   *Handler
	srv *httptest.Server
	ws  string // ws://host
}

type envOpt struct {
	cfg    func(*Config)
	engine []chat.Option
	store  func(testing.TB) chat.Store
	// setup runs on the Handler before it serves (test hooks).
	setup func(*Handler)
	// noLeakCheck: fuzzing, whose engine starts goroutines of its own (os/signal) meanwhile.
	noLeakCheck bool
}

// testAuth accepts tokens "client:<id>" and "operator:<id>".
func testAuth(_ context.Context, token string) (Identity, error) {
	role, id, ok := strings.Cut(token, ":")
	if !ok || (role != "client" && role != "operator") {
		return Identity{}, errors.New("bad token")
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return Identity{}, errors.New("bad token")
	}
	return Identity{User: User{ID: n, Role: role, FirstName: role + id, LastName: "Test"},
		Sources: json.RawMessage(`{"widgets":["w1"]}`)}, nil
}

func newEnv(t testing.TB, o envOpt) *env {
	t.Helper()
	if !o.noLeakCheck {
		leakCheck(t)
	}
	open := o.store
	if open == nil {
		open = storeFactories[0].Open
	}
	store := open(t)
	e, err := chat.Open(context.Background(), store, o.engine...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Authenticate: testAuth, APIToken: testAPIToken}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	h := New(e, cfg)
	if o.setup != nil {
		o.setup(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
		e.Close()
	})
	return &env{t: t, e: e, h: h, srv: srv, ws: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// leakCheck fails the test if goroutines started during it are still running shortly after
// its cleanups.
func leakCheck(t testing.TB) { testkit.CheckLeaks(t) }

// api calls a server-to-server endpoint.
func (v *env) api(method, path string, body any) (int, []byte) {
	v.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, v.srv.URL+path, r)
	req.Header.Set(apiTokenHeader, testAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// newChat creates a chat with a client owner and an operator through /update/chat.
func (v *env) newChat(owner, operator int64) chat.ID {
	v.t.Helper()
	body := map[string]any{"status": "active", "widget": map[string]string{"source": "site"}}
	if owner != 0 {
		body["owner_user"] = User{ID: owner, Role: "client", FirstName: fmt.Sprint("client", owner)}
	}
	if operator != 0 {
		body["operator_user"] = User{ID: operator, Role: "operator", FirstName: fmt.Sprint("operator", operator)}
	}
	code, out := v.api("POST", "/update/chat", body)
	if code != 200 {
		v.t.Fatalf("/update/chat: %d %s", code, out)
	}
	var resp struct {
		Chat struct {
			UUID string `json:"uuid"`
		} `json:"chat"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		v.t.Fatal(err)
	}
	id, err := chat.ParseID(resp.Chat.UUID)
	if err != nil {
		v.t.Fatal(err)
	}
	return id
}

// client is a test WebSocket client.
type client struct {
	t  testing.TB
	c  *websocket.Conn
	ch chan inFrame
}

// inFrame is a received server frame.
type inFrame struct {
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Position uint64          `json:"position"`
	err      error
}

func (f inFrame) message() wireMessage {
	var d struct {
		Message wireMessage `json:"message"`
	}
	_ = json.Unmarshal(f.Data, &d)
	return d.Message
}

// dial opens a WebSocket to path with a token and query parameters.
func (v *env) dial(path, token string, q url.Values) (*client, error) {
	v.t.Helper()
	if q == nil {
		q = url.Values{}
	}
	if token != "" {
		q.Set("token", token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, v.ws+path+"?"+q.Encode(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: v.t, c: c, ch: make(chan inFrame, 1024)}
	v.t.Cleanup(func() { c.CloseNow() })
	go cl.pump()
	return cl, nil
}

func (v *env) mustDial(path, token string, q url.Values) *client {
	v.t.Helper()
	c, err := v.dial(path, token, q)
	if err != nil {
		v.t.Fatal(err)
	}
	return c
}

func (v *env) chatConn(token string, room chat.ID, after ...uint64) *client {
	v.t.Helper()
	q := url.Values{"chat": {room.UUID()}}
	if len(after) > 0 {
		q.Set("after", strconv.FormatUint(after[0], 10))
	}
	return v.mustDial("/chat", token, q)
}

func (c *client) pump() {
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.ch <- inFrame{err: err}
			close(c.ch)
			return
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			f.err = fmt.Errorf("bad server frame %q: %w", b, err)
		}
		c.ch <- f
	}
}

// next returns the next frame, failing after a timeout.
func (c *client) next() inFrame {
	c.t.Helper()
	select {
	case f, ok := <-c.ch:
		if !ok {
			c.t.Fatal("connection closed")
		}
		if f.err != nil {
			c.t.Fatalf("read: %v", f.err)
		}
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("timed out waiting for a frame")
	}
	return inFrame{}
}

// until reads frames until one of type typ satisfying ok (nil: any) arrives; it returns it
// and the frames skipped on the way.
func (c *client) until(typ string, ok func(inFrame) bool) (inFrame, []inFrame) {
	c.t.Helper()
	var skipped []inFrame
	for {
		f := c.next()
		if f.Type == typ && (ok == nil || ok(f)) {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

// untilText reads until the message_added of a message with that text.
func (c *client) untilText(text string) (inFrame, []inFrame) {
	c.t.Helper()
	return c.until(evMessageAdded, func(f inFrame) bool { return f.message().Text == text })
}

// send writes a client frame.
func (c *client) send(typ string, data any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": typ, "data": data})
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

// closeStatus waits for the connection to end and returns its close status.
func (c *client) closeStatus() (websocket.StatusCode, string) {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-c.ch:
			if !ok {
				c.t.Fatal("closed without a status")
			}
			if f.err != nil {
				var ce websocket.CloseError
				if errors.As(f.err, &ce) {
					return ce.Code, ce.Reason
				}
				return websocket.CloseStatus(f.err), f.err.Error()
			}
		case <-timeout:
			c.t.Fatal("timed out waiting for the close")
		}
	}
}

func has(fs []inFrame, typ string, ok func(inFrame) bool) bool {
	for _, f := range fs {
		if f.Type == typ && (ok == nil || ok(f)) {
			return true
		}
	}
	return false
}
