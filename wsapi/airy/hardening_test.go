package airy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/stomp"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// dialAt opens a STOMP WebSocket at url (the fixture's, with a query of the test's).
func (f *fixture) dialAt(t testing.TB, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"v12.stomp"}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, ws: ws}
}

// reading is a client whose socket a goroutine reads all along, as a browser's does, so that
// it answers the server's pings. Frames and the end of the connection come on channels.
type reading struct {
	*client
	frames chan stomp.Frame
	end    chan error // the error that ended the reading
}

// readAll starts reading c in the background; c.next must not be used any more.
func (c *client) readAll() *reading {
	r := &reading{client: c, frames: make(chan stomp.Frame, 64), end: make(chan error, 1)}
	go func() {
		for {
			_, data, err := c.ws.Read(context.Background())
			if err != nil {
				r.end <- err
				return
			}
			frames, err := stomp.Decode(nil, data, stomp.Limits{MaxFrameSize: 1 << 20})
			if err != nil {
				r.end <- err
				return
			}
			for _, f := range frames {
				r.frames <- f
			}
		}
	}()
	return r
}

func (r *reading) expect(cmd string) stomp.Frame {
	r.t.Helper()
	select {
	case f := <-r.frames:
		if f.Command != cmd {
			r.t.Fatalf("got %s %v %q, want %s", f.Command, f.Headers, f.Body, cmd)
		}
		return f
	case err := <-r.end:
		r.t.Fatalf("waiting for %s: the connection ended: %v", cmd, err)
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no %s in 5s", cmd)
	}
	panic("unreachable")
}

// openConnections waits until the Handler has n connections open, and fails the test if
// that does not happen within d.
func (f *fixture) openConnections(t testing.TB, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); f.h.Connections() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d after %v, want %d", f.h.Connections(), d, n)
		}
	}
}

// TestSendRateLimited: every STOMP SEND costs a write token of the Service's Limiter, the
// bucket POST /chatplugin.send draws on too; a client without one gets an ERROR frame saying
// 429, with retry-after, and the connection closes with 1013. Nothing is stored.
func TestSendRateLimited(t *testing.T) {
	checkGoroutines(t)
	lim := limit.New(limit.Rates{Write: limit.Rate{PerSecond: 1e-9, Burst: 2}})
	f := newFixtureWith(t, fixtureOptions{service: func(c *httpairy.Config) { c.Limiter = lim }})
	token, conv := f.authenticate(t)
	f.post(t, "chatplugin.send", token, `{"message":{"text":"one"}}`, nil) // the first token
	before, _ := f.e.Room(context.Background(), conv.Room)

	c := f.dial(t)
	c.connect(token)
	c.send(stomp.CmdSend, "destination", "/app/x", "receipt", "s1")
	c.expectError("405") // the second token: not served, but counted

	c = f.dial(t)
	c.connect(token)
	c.send(stomp.CmdSend, "destination", "/app/x", "receipt", "s2")
	e := c.expect(stomp.CmdError)
	if m := e.Value("message"); !strings.HasPrefix(m, "429") {
		t.Errorf("ERROR message %q, want 429", m)
	}
	if s, err := strconv.Atoi(e.Value(HeaderRetryAfter)); err != nil || s < 1 {
		t.Errorf("ERROR %s %q", HeaderRetryAfter, e.Value(HeaderRetryAfter))
	}
	if e.Value("receipt-id") != "s2" {
		t.Errorf("ERROR headers %v", e.Headers)
	}
	if st := c.expectClosed(); st != websocket.StatusTryAgainLater {
		t.Errorf("close status %v, want 1013", st)
	}
	// The same bucket: REST is refused too.
	req, _ := http.NewRequest("POST", f.srv.URL+"/chatplugin.send", strings.NewReader(`{"message":{"text":"two"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("REST send after the socket's SENDs: %d", resp.StatusCode)
	}
	after, _ := f.e.Room(context.Background(), conv.Room)
	if after.LastPos != before.LastPos {
		t.Errorf("refused SENDs stored events: last position %d → %d", before.LastPos, after.LastPos)
	}
}

// TestBadFramesRefused: frames holding what could not be stored or echoed as sent (invalid
// UTF-8, NULs, in headers or in a SEND's body) are refused with an ERROR frame saying 400,
// and nothing is stored.
func TestBadFramesRefused(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, conv := f.authenticate(t)
	connect := "CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer " + token + "\n\n\x00"
	tests := []struct {
		name      string
		connected bool
		raw       string
	}{
		{"SEND body not UTF-8", true, "SEND\ndestination:/app/x\n\ncaf\xe9\x00"},
		{"SEND body with a NUL", true, "SEND\ndestination:/app/x\ncontent-length:3\n\na\x00b\x00"},
		{"SEND body with a NUL and a receipt", true, "SEND\nreceipt:r\ncontent-length:1\n\n\x00\x00"},
		{"SUBSCRIBE id not UTF-8", true, "SUBSCRIBE\nid:\xff\ndestination:" + Destination + "\n\n\x00"},
		{"SUBSCRIBE receipt with a NUL", true, "SUBSCRIBE\nid:1\nreceipt:a\x00b\ndestination:" + Destination + "\n\n\x00"},
		{"header name not UTF-8", true, "SUBSCRIBE\nid:1\n\xc3:x\ndestination:" + Destination + "\n\n\x00"},
		{"CONNECT header with a NUL", false, "CONNECT\naccept-version:1.2\nhost:a\x00\nAuthorization:Bearer " + token + "\n\n\x00"},
		{"CONNECT header not UTF-8", false, "CONNECT\naccept-version:1.2\nlogin:\xed\xa0\x80\nAuthorization:Bearer " + token + "\n\n\x00"},
	}
	before, _ := f.e.Room(context.Background(), conv.Room)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			if tc.connected {
				c.raw(connect)
				c.expect(stomp.CmdConnected)
			}
			c.raw(tc.raw)
			c.expectError("400")
		})
	}
	after, _ := f.e.Room(context.Background(), conv.Room)
	if after.LastPos != before.LastPos {
		t.Errorf("refused frames stored events: last position %d → %d", before.LastPos, after.LastPos)
	}
}

// TestTokenExpiryClosesTheSocket: a connection lives as long as the auth token it connected
// with, not longer and not shorter: at the token's expiry it gets an ERROR frame saying 401,
// on which the widget authenticates again, and is closed; whatever heart-beats it
// negotiated.
func TestTokenExpiryClosesTheSocket(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.HeartBeat = 100 * time.Millisecond })
	for _, heartBeat := range []string{"0,0", "0,100"} {
		t.Run("heart-beat "+heartBeat, func(t *testing.T) {
			token, _ := f.authenticate(t)
			var claims jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
				t.Fatal(err)
			}
			// Move the tokens' clock to 1.5 s before the token expires.
			const life = 1500 * time.Millisecond
			f.clock.Advance(claims.ExpiresAt.Sub(f.clock.Now()) - life)

			start := time.Now()
			c := f.dial(t)
			c.connect(token, "heart-beat", heartBeat)
			// Still served shortly before the expiry.
			time.Sleep(time.Until(start.Add(life - 600*time.Millisecond)))
			c.subscribe()
			e := c.expect(stomp.CmdError)
			took := time.Since(start)
			if m := e.Value("message"); !strings.Contains(m, "401") {
				t.Errorf("ERROR message %q, want 401 (body %q)", m, e.Body)
			}
			if st := c.expectClosed(); st != websocket.StatusPolicyViolation {
				t.Errorf("close status %v, want 1008", st)
			}
			if took < life || took > life+2*time.Second {
				t.Errorf("closed %v after CONNECT; the token had %v left", took, life)
			}
		})
	}
}

// TestPings: a client that negotiated no heart-beats and stops answering WebSocket pings is
// closed within PingInterval + PingTimeout of its last sign of life; one that answers stays.
func TestPings(t *testing.T) {
	checkGoroutines(t)
	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.PingInterval, c.PingTimeout = interval, timeout })
	token, conv := f.authenticate(t)

	healthy := f.dial(t)
	healthy.connect(token) // heart-beat 0,0
	healthy.subscribe()
	h := healthy.readAll() // answers pings from now on

	dead := f.dial(t)
	dead.connect(token)
	dead.subscribe()
	last := time.Now() // the dead client's last sign of life; it reads nothing from now on
	f.openConnections(t, 2, time.Second)
	f.openConnections(t, 1, interval+timeout+2*time.Second)
	if took := time.Since(last); took < interval+timeout*9/10 {
		t.Errorf("the silent client was closed %v after its last frame, before PingInterval + PingTimeout (%v)", took, interval+timeout)
	} else {
		t.Logf("the silent client was closed %v after its last frame (PingInterval + PingTimeout = %v)", took, interval+timeout)
	}
	// The healthy client, idle all the while, has been pinged many times and is served.
	time.Sleep(3 * (interval + timeout))
	if _, err := f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "still there?"}); err != nil {
		t.Fatal(err)
	}
	h.expect(stomp.CmdMessage)
	if n := f.h.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}
	// The dead client's side: the connection is gone.
	if _, err := dead.next(5 * time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the silent client's connection: %v", err)
	}
}

// TestConnectDeadline: a connection that sends no CONNECT is closed after ConnectTimeout,
// even if it sends heart-beats meanwhile.
func TestConnectDeadline(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.ConnectTimeout = 200 * time.Millisecond })
	c := f.dial(t)
	start := time.Now()
	for range 4 {
		c.raw("\n")
		time.Sleep(50 * time.Millisecond)
	}
	c.expectError("408")
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("closed after %v", took)
	}
}

// TestPanicContained: a panic on any of a connection's goroutines (its reader, its own, a
// turn of its work, its ping) is logged with its stack and closes that connection alone; the
// Handler serves the others and new ones.
func TestPanicContained(t *testing.T) {
	for _, point := range []string{"read", "run", "turn", "ping"} {
		t.Run(point, func(t *testing.T) {
			checkGoroutines(t)
			var logs lockedBuffer
			var fired atomic.Int32
			f := newFixture(t, func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				c.PingInterval, c.PingTimeout = 100*time.Millisecond, 5*time.Second
				c.testHook = func(r *http.Request) func(string) {
					if r.URL.Query().Get("panic") != point {
						return nil
					}
					return func(p string) {
						if p == point {
							fired.Add(1)
							panic("injected panic at " + p)
						}
					}
				}
			})
			token, conv := f.authenticate(t)
			other := f.dial(t)
			other.connect(token)
			other.subscribe()
			o := other.readAll()

			victim := f.dialAt(t, f.url+"?panic="+point)
			if point == "ping" {
				victim.connect(token)
				victim.readAll() // answers pings, but the server's ping panics first
			} else {
				victim.send(stomp.CmdConnect, "accept-version", "1.2", "Authorization", "Bearer "+token)
				if fr, err := victim.next(5 * time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("the victim: %s %v, %v", fr.Command, fr.Headers, err)
				}
			}
			f.openConnections(t, 1, 5*time.Second)
			if fired.Load() == 0 {
				t.Fatal("the hook never fired")
			}
			log := logs.String()
			for _, want := range []string{"panic", "injected panic at " + point, "goroutine ", "wsapi/airy"} {
				if !strings.Contains(log, want) {
					t.Errorf("the log does not mention %q:\n%s", want, log)
				}
			}
			// The other connection and new ones are served.
			if _, err := f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "after the panic"}); err != nil {
				t.Fatal(err)
			}
			if _, p := decodeMessage(t, o.expect(stomp.CmdMessage)); text(p) != "after the panic" {
				t.Errorf("the other connection got %q", text(p))
			}
			c := f.dial(t)
			c.connect(token)
			c.subscribe()
			f.openConnections(t, 2, time.Second)
		})
	}
}

func decodeMessage(t *testing.T, f stomp.Frame) (stomp.Frame, payload) {
	t.Helper()
	c := &client{t: t, pending: []stomp.Frame{f}}
	return c.message()
}

// unavailableStore fails reads while down is set, as a failing device does.
type unavailableStore struct {
	chat.Store
	down atomic.Bool
}

func (s *unavailableStore) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if s.down.Load() {
		return fmt.Errorf("test store: input/output error: %w", chat.ErrUnavailable)
	}
	return s.Store.View(ctx, fn)
}

// TestStoreUnavailable: a store that cannot serve now gets an ERROR frame saying 503 and to
// try again (with retry-after), not an internal error, and the connection closes with 1013.
func TestStoreUnavailable(t *testing.T) {
	checkGoroutines(t)
	store := &unavailableStore{Store: memory.New()}
	var logs lockedBuffer
	f := newFixtureWith(t, fixtureOptions{store: store, handler: func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }})
	token, _ := f.authenticate(t)
	check := func(c *client) {
		t.Helper()
		e := c.expect(stomp.CmdError)
		store.down.Store(false)
		got := []string{e.Value("message"), string(e.Body)}
		if diff := cmp.Diff([]string{"503 Service Unavailable", httpairy.MessageUnavailable}, got); diff != "" {
			t.Errorf("ERROR (-want +got):\n%s", diff)
		}
		if s, err := strconv.Atoi(e.Value(HeaderRetryAfter)); err != nil || s < 1 {
			t.Errorf("ERROR %s %q", HeaderRetryAfter, e.Value(HeaderRetryAfter))
		}
		if st := c.expectClosed(); st != websocket.StatusTryAgainLater {
			t.Errorf("close status %v, want 1013", st)
		}
	}
	t.Run("CONNECT", func(t *testing.T) {
		c := f.dial(t)
		store.down.Store(true)
		c.send(stomp.CmdConnect, "accept-version", "1.2", "Authorization", "Bearer "+token)
		check(c)
	})
	t.Run("SUBSCRIBE", func(t *testing.T) {
		c := f.dial(t)
		c.connect(token)
		store.down.Store(true)
		c.send(stomp.CmdSubscribe, "id", "0", "destination", Destination)
		check(c)
	})
	if n := strings.Count(logs.String(), `msg="airy: STOMP connection: store unavailable"`); n != 2 {
		t.Errorf("%d of 2 store failures logged:\n%s", n, logs.String())
	}
}
