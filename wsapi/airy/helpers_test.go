package airy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/stomp"
	"github.com/parley-chat/chat/internal/testkit"
)

const testChannel = "web-channel"

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// checkGoroutines fails the test if goroutines started during it are still running once its
// other cleanups have run. Call it first in a test.
func checkGoroutines(t testing.TB) { testkit.CheckLeaks(t) }

type fixture struct {
	e     *chat.Engine
	svc   *httpairy.Service
	h     *Handler
	srv   *httptest.Server
	clock *fakeclock.Clock
	url   string // ws://.../ws.chatplugin
}

// eachStore runs fn on a fixture of each store.
func eachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, s := range testkit.Stores {
		t.Run(s.Name, func(t *testing.T) { fn(t, newFixtureOn(t, s.Open(t), nil)) })
	}
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	return newFixtureOn(t, testkit.Stores[0].Open(t), mod)
}

func newFixtureOn(t testing.TB, store chat.Store, mod func(*Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureOptions{store: store, handler: mod})
}

// fixtureOptions change what newFixtureWith builds; zero fields take the defaults.
type fixtureOptions struct {
	store   chat.Store             // default: testkit.Stores[0]
	service func(*httpairy.Config) // changes the REST Service's Config
	handler func(*Config)          // changes the Handler's Config
}

func newFixtureWith(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	store := o.store
	if store == nil {
		store = testkit.Stores[0].Open(t)
	}
	t.Cleanup(func() { store.Close() })
	e, err := chat.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	clock := fakeclock.New(time.Now())
	tokens, err := httpairy.NewTokens(httpairy.TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	scfg := httpairy.Config{Engine: e, Tokens: tokens, Channels: httpairy.Channels(testChannel)}
	if o.service != nil {
		o.service(&scfg)
	}
	svc, err := httpairy.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Service: svc, HeartBeat: -1, ConnectTimeout: 5 * time.Second} // generous: a loaded machine is slow to CONNECT
	if o.handler != nil {
		o.handler(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws.chatplugin", h)
	mux.Handle("/", svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &fixture{e: e, svc: svc, h: h, srv: srv, clock: clock, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws.chatplugin"}
}

// post calls a REST endpoint and decodes the answer.
func (f *fixture) post(t testing.TB, endpoint, token, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/"+endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json") // as the widget sends it
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", endpoint, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// authenticate starts a conversation and returns its auth token and the conversation.
func (f *fixture) authenticate(t testing.TB) (string, httpairy.Conversation) {
	t.Helper()
	var a struct {
		Token string `json:"token"`
	}
	f.post(t, "chatplugin.authenticate", "", `{"channel_id":"`+testChannel+`"}`, &a)
	conv, err := f.svc.Authorize(context.Background(), a.Token)
	if err != nil {
		t.Fatal(err)
	}
	return a.Token, conv
}

// agent joins an agent to the conversation's room.
func (f *fixture) agent(t testing.TB, room chat.ID) chat.ID {
	t.Helper()
	u, err := f.e.CreateUser(context.Background(), chat.NewUser{DisplayName: "Agent"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Join(context.Background(), room, u.ID, chat.JoinOptions{Role: chat.RoleAgent}); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// client is a minimal STOMP client over coder/websocket.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	pending []stomp.Frame
	beats   int // heart-beats received
}

func (f *fixture) dial(t testing.TB, subprotocols ...string) *client {
	t.Helper()
	if subprotocols == nil {
		subprotocols = []string{"v10.stomp", "v11.stomp", "v12.stomp"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, ws: ws}
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *client) raw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(cmd string, kv ...string) {
	c.t.Helper()
	f := stomp.Frame{Command: cmd}
	for i := 0; i < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	b, err := stomp.AppendFrame(nil, &f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.raw(string(b))
}

// next returns the next frame, skipping heart-beats; an error if the connection ends or
// nothing comes within d.
func (c *client) next(d time.Duration) (stomp.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for len(c.pending) == 0 {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return stomp.Frame{}, err
		}
		if stomp.IsHeartBeat(data) {
			c.beats++
			continue
		}
		frames, err := stomp.Decode(nil, data, stomp.Limits{MaxFrameSize: 1 << 20})
		if err != nil {
			return stomp.Frame{}, err
		}
		c.pending = append(c.pending, frames...)
	}
	f := c.pending[0]
	c.pending = c.pending[1:]
	return f, nil
}

func (c *client) expect(cmd string) stomp.Frame {
	c.t.Helper()
	f, err := c.next(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", cmd, err)
	}
	if f.Command != cmd {
		c.t.Fatalf("got %s %v %q, want %s", f.Command, f.Headers, f.Body, cmd)
	}
	return f
}

// expectError waits for an ERROR frame whose message header contains want, then for the
// connection to close.
func (c *client) expectError(want string) stomp.Frame {
	c.t.Helper()
	f := c.expect(stomp.CmdError)
	if m := f.Value("message"); !strings.Contains(m, want) {
		c.t.Errorf("ERROR message %q does not contain %q (body %q)", m, want, f.Body)
	}
	c.expectClosed()
	return f
}

// expectClosed waits for the connection to end and returns its close status.
func (c *client) expectClosed() websocket.StatusCode {
	c.t.Helper()
	for {
		f, err := c.next(5 * time.Second)
		if err == nil {
			c.t.Fatalf("frame %s %v after the end", f.Command, f.Headers)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			c.t.Fatal("the connection stays open")
		}
		return websocket.CloseStatus(err)
	}
}

func (c *client) connect(token string, kv ...string) stomp.Frame {
	c.t.Helper()
	// kv first: when a header repeats, the first one counts.
	c.send(stomp.CmdConnect, append(kv, "accept-version", "1.2,1.1,1.0", "heart-beat", "0,0", "Authorization", "Bearer "+token)...)
	return c.expect(stomp.CmdConnected)
}

func (c *client) subscribe(kv ...string) {
	c.t.Helper()
	c.send(stomp.CmdSubscribe, append([]string{"id", "sub-0", "destination", Destination, "receipt", "sub-receipt"}, kv...)...)
	if r := c.expect(stomp.CmdReceipt); r.Value("receipt-id") != "sub-receipt" {
		c.t.Fatalf("receipt-id %q", r.Value("receipt-id"))
	}
}

// message reads a MESSAGE frame and decodes its body.
func (c *client) message() (stomp.Frame, payload) {
	c.t.Helper()
	f := c.expect(stomp.CmdMessage)
	var p payload
	if err := json.Unmarshal(f.Body, &p); err != nil {
		c.t.Fatalf("MESSAGE body %q: %v", f.Body, err)
	}
	return f, p
}

func text(p payload) string {
	var c struct {
		Text string `json:"text"`
	}
	json.Unmarshal(p.Message.Content, &c)
	return c.Text
}

func jsonCompact(b []byte) string {
	var buf bytes.Buffer
	json.Compact(&buf, b)
	return buf.String()
}
