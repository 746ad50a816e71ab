package airy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/stomp"
)

func TestConnectSubscribeReceive(t *testing.T) {
	checkGoroutines(t)
	eachStore(t, testConnectSubscribeReceive)
}

func testConnectSubscribeReceive(t *testing.T, f *fixture) {
	token, conv := f.authenticate(t)
	agent := f.agent(t, conv.Room)
	ctx := context.Background()

	c := f.dial(t)
	if p := c.ws.Subprotocol(); p != "v12.stomp" {
		t.Errorf("subprotocol %q, want v12.stomp (the server's preference)", p)
	}
	connected := c.connect(token)
	want := []stomp.Header{{Key: "version", Value: "1.2"}, {Key: "heart-beat", Value: "0,0"}, {Key: "server", Value: ServerName}, {Key: "user-name", Value: conv.ID}}
	if diff := cmp.Diff(want, connected.Headers); diff != "" {
		t.Errorf("CONNECTED headers (-want +got):\n%s", diff)
	}
	// A message sent between CONNECTED and SUBSCRIBE is not lost.
	between, err := f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: "between"})
	if err != nil {
		t.Fatal(err)
	}
	c.subscribe()
	if fr, p := c.message(); text(p) != "between" || mustPos(t, fr) != between.Pos {
		t.Errorf("first MESSAGE: %q at %s", text(p), fr.Value(HeaderPosition))
	}

	// The contact's own message, sent over REST, comes back.
	var sent httpairy.Message
	f.post(t, "chatplugin.send", token, `{"message":{"text":"hello"}}`, &sent)
	fr, p := c.message()
	if p.ConversationID != conv.ID || p.ChannelID != testChannel || !p.Message.FromContact || text(p) != "hello" {
		t.Errorf("payload = %+v", p)
	}
	if diff := cmp.Diff(sent, p.Message); diff != "" {
		t.Errorf("MESSAGE message differs from the send answer (-send +message):\n%s", diff)
	}
	ev, err := f.e.Event(ctx, conv.Room, mustPos(t, fr))
	if err != nil || ev.ID.UUID() != p.Message.ID {
		t.Errorf("x-parley-position %s does not name the message: %+v %v", fr.Value(HeaderPosition), ev, err)
	}
	for k, v := range map[string]string{"destination": Destination, "subscription": "sub-0", "message-id": p.Message.ID, "content-type": "application/json"} {
		if fr.Value(k) != v {
			t.Errorf("MESSAGE header %s = %q, want %q", k, fr.Value(k), v)
		}
	}

	// Other events are skipped; hidden messages are not delivered; an agent's reply from Go is.
	f.e.StartTyping(ctx, conv.Room, agent, "")
	f.e.Notice(ctx, conv.Room, "notice")
	f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: "agents only", Visibility: chat.RoleAgent})
	reply, err := f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: "hi, how can I help?"})
	if err != nil {
		t.Fatal(err)
	}
	fr, p = c.message()
	if text(p) != "hi, how can I help?" || p.Message.FromContact || p.Message.Sender.ID != agent.UUID() || mustPos(t, fr) != reply.Pos {
		t.Errorf("agent reply: %v %+v", fr.Headers, p)
	}
	// From the program itself.
	f.e.Send(ctx, conv.Room, chat.System(), chat.NewMessage{Text: "system says"})
	if _, p = c.message(); text(p) != "system says" || p.Message.Sender.ID != httpairy.SystemSenderID {
		t.Errorf("system message: %+v", p)
	}

	// DISCONNECT with a receipt.
	c.send(stomp.CmdDisconnect, "receipt", "bye")
	if r := c.expect(stomp.CmdReceipt); r.Value("receipt-id") != "bye" {
		t.Errorf("receipt-id %q", r.Value("receipt-id"))
	}
	if st := c.expectClosed(); st != websocket.StatusNormalClosure {
		t.Errorf("close status %v after DISCONNECT", st)
	}
}

func mustPos(t *testing.T, f stomp.Frame) uint64 {
	t.Helper()
	p, err := strconv.ParseUint(f.Value(HeaderPosition), 10, 64)
	if err != nil {
		t.Fatalf("MESSAGE without %s: %v", HeaderPosition, f.Headers)
	}
	return p
}

func TestSubprotocols(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, _ := f.authenticate(t)
	for _, offer := range [][]string{{"v11.stomp", "v10.stomp"}, {"v10.stomp"}} {
		c := f.dial(t, offer...)
		if c.ws.Subprotocol() != offer[0] {
			t.Errorf("offer %v: selected %q", offer, c.ws.Subprotocol())
		}
		c.connect(token)
		c.ws.Close(websocket.StatusNormalClosure, "")
	}
	c := f.dial(t, "chat")
	if c.ws.Subprotocol() != "" {
		t.Fatalf("selected %q", c.ws.Subprotocol())
	}
	if st := c.expectClosed(); st != websocket.StatusPolicyViolation {
		t.Errorf("no STOMP subprotocol: close status %v", st)
	}
}

func TestOriginPatterns(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.OriginPatterns = []string{"widget.example.com"} })
	dial := func(origin string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return websocket.Dial(ctx, f.url, &websocket.DialOptions{
			Subprotocols: []string{"v12.stomp"},
			HTTPHeader:   http.Header{"Origin": {origin}},
		})
	}
	ws, _, err := dial("https://widget.example.com")
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	ws.CloseNow()
	if _, resp, err := dial("https://evil.example.net"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: %v %v", resp, err)
	}
}

func TestUnauthorized(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, conv := f.authenticate(t)
	resume, _ := f.svc.Tokens().IssueResume(conv.ID, testChannel)
	_, gone := f.authenticate(t)
	goneToken, _ := f.svc.Tokens().IssueAuth(gone.ID, testChannel)
	f.e.DeleteRoom(context.Background(), gone.Room)
	tests := []struct {
		name    string
		headers []string
	}{
		{"no Authorization", []string{"accept-version", "1.2"}},
		{"empty bearer", []string{"accept-version", "1.2", "Authorization", "Bearer "}},
		{"not a bearer", []string{"accept-version", "1.2", "Authorization", "Basic " + token}},
		{"garbage", []string{"accept-version", "1.2", "Authorization", "Bearer a.b.c"}},
		{"resume token", []string{"accept-version", "1.2", "Authorization", "Bearer " + resume}},
		{"deleted conversation", []string{"accept-version", "1.2", "Authorization", "Bearer " + goneToken}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			c.send(stomp.CmdConnect, tc.headers...)
			c.expectError("401")
		})
	}
	t.Run("expired", func(t *testing.T) {
		f.clock.Advance(httpairy.DefaultAuthTTL + time.Second)
		c := f.dial(t)
		c.send(stomp.CmdStomp, "accept-version", "1.2", "Authorization", "Bearer "+token)
		c.expectError("401")
	})
}

func TestProtocolErrors(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.MaxFrameBytes = 1024; c.MaxHeaders = 8; c.MaxHeaderBytes = 512 })
	token, conv := f.authenticate(t)
	connect := "CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer " + token + "\n\n\x00"
	tests := []struct {
		name      string
		connected bool   // send CONNECT first
		raw       string // then this
		want      string // in the ERROR message header
	}{
		{name: "SUBSCRIBE before CONNECT", raw: "SUBSCRIBE\nid:1\ndestination:" + Destination + "\n\n\x00", want: "400"},
		{name: "unknown command", connected: true, raw: "HELLO\n\n\x00", want: "400"},
		{name: "unknown command first", raw: "HELLO\n\n\x00", want: "400"},
		{name: "malformed header", connected: true, raw: "SUBSCRIBE\nnocolon\n\n\x00", want: "400"},
		{name: "bad escape", connected: true, raw: "SUBSCRIBE\nid:\\t\n\n\x00", want: "400"},
		{name: "truncated", connected: true, raw: "SUBSCRIBE\nid:1\n\n", want: "400"},
		{name: "content-length beyond the message", connected: true, raw: "SEND\ncontent-length:500\n\nab\x00", want: "400"},
		{name: "oversized frame", connected: true, raw: "SEND\n\n" + strings.Repeat("x", 1100) + "\x00", want: "413"},
		{name: "too many headers", connected: true, raw: "SUBSCRIBE\n" + strings.Repeat("a:b\n", 9) + "\n\x00", want: "413"},
		{name: "header too long", connected: true, raw: "SUBSCRIBE\nid:" + strings.Repeat("x", 600) + "\n\n\x00", want: "413"},
		{name: "SEND", connected: true, raw: "SEND\ndestination:/app/x\n\nhi\x00", want: "405"},
		{name: "BEGIN", connected: true, raw: "BEGIN\ntransaction:t\n\n\x00", want: "405"},
		{name: "server command", connected: true, raw: "MESSAGE\n\n\x00", want: "400"},
		{name: "CONNECT twice", connected: true, raw: connect, want: "400"},
		{name: "SUBSCRIBE without id", connected: true, raw: "SUBSCRIBE\ndestination:" + Destination + "\n\n\x00", want: "400"},
		{name: "unknown destination", connected: true, raw: "SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\x00", want: "404"},
		{name: "client ack", connected: true, raw: "SUBSCRIBE\nid:1\nack:client\ndestination:" + Destination + "\n\n\x00", want: "400"},
		{name: "bad x-parley-after", connected: true, raw: "SUBSCRIBE\nid:1\nx-parley-after:-3\ndestination:" + Destination + "\n\n\x00", want: "400"},
		{name: "x-parley-after beyond the end", connected: true, raw: "SUBSCRIBE\nid:1\nx-parley-after:999\ndestination:" + Destination + "\n\n\x00", want: "400"},
		{name: "two subscriptions", connected: true, raw: "SUBSCRIBE\nid:1\ndestination:" + Destination + "\n\n\x00SUBSCRIBE\nid:2\ndestination:" + Destination + "\n\n\x00", want: "409"},
		{name: "STOMP 1.0 only", raw: "CONNECT\nAuthorization:Bearer " + token + "\n\n\x00", want: "400"},
		{name: "bad heart-beat", raw: "CONNECT\naccept-version:1.2\nheart-beat:x\nAuthorization:Bearer " + token + "\n\n\x00", want: "400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			if tc.connected {
				c.raw(connect)
				c.expect(stomp.CmdConnected)
			}
			c.raw(tc.raw)
			c.expectError(tc.want)
		})
	}
	t.Run("frames before the bad one are served", func(t *testing.T) {
		c := f.dial(t)
		c.raw(connect + "\nSUBSCRIBE\nid:1\nreceipt:r\ndestination:" + Destination + "\n\n\x00BOGUS\n\n\x00")
		c.expect(stomp.CmdConnected)
		c.expect(stomp.CmdReceipt)
		c.expectError("400")
	})
	t.Run("ERROR carries the receipt-id", func(t *testing.T) {
		c := f.dial(t)
		c.raw(connect)
		c.expect(stomp.CmdConnected)
		c.send(stomp.CmdSend, "destination", "/x", "receipt", "77")
		if e := c.expectError("405"); e.Value("receipt-id") != "77" {
			t.Errorf("ERROR headers %v", e.Headers)
		}
	})
	t.Run("message over the read limit", func(t *testing.T) {
		c := f.dial(t)
		c.raw(connect)
		c.expect(stomp.CmdConnected)
		c.raw("SEND\n\n" + strings.Repeat("x", MessageLimitFactor*1024+10) + "\x00")
		if st := c.expectClosed(); st != websocket.StatusMessageTooBig {
			t.Errorf("close status %v, want 1009", st)
		}
	})
	t.Run("nothing stored", func(t *testing.T) {
		r, _ := f.e.Room(context.Background(), conv.Room)
		if r.LastPos != 1 { // the contact's join
			t.Errorf("refused frames stored events: last position %d", r.LastPos)
		}
	})
}

func TestConnectTimeout(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.ConnectTimeout = 100 * time.Millisecond })
	c := f.dial(t)
	c.expectError("408")
}

func TestSeveralFramesPerMessage(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, conv := f.authenticate(t)
	c := f.dial(t)
	c.raw("\n\nCONNECT\naccept-version:1.1,1.2\nAuthorization:Bearer " + token + "\n\n\x00\r\n" +
		"SUBSCRIBE\nid:s\ndestination:" + Destination + "\nreceipt:1\n\n\x00" +
		"ACK\nid:x\nreceipt:2\n\n\x00\n")
	if cf := c.expect(stomp.CmdConnected); cf.Value("version") != "1.2" {
		v := cf.Value("version")
		t.Errorf("version %q", v)
	}
	c.expect(stomp.CmdReceipt)
	if r := c.expect(stomp.CmdReceipt); r.Value("receipt-id") != "2" {
		t.Errorf("receipt %v", r.Headers)
	}
	f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "x"})
	if fr, _ := c.message(); fr.Value("subscription") != "s" {
		t.Errorf("subscription header %q", fr.Value("subscription"))
	}
	// UNSUBSCRIBE stops the delivery; a new subscription may follow.
	c.send(stomp.CmdUnsubscribe, "id", "s", "receipt", "u")
	c.expect(stomp.CmdReceipt)
	f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "unseen"})
	c.subscribe()
	f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "seen"})
	if _, p := c.message(); text(p) != "seen" {
		t.Errorf("after resubscribing: %q", text(p))
	}
}

func TestHeartBeats(t *testing.T) {
	checkGoroutines(t)
	const hb = 100 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.HeartBeat = hb })
	token, _ := f.authenticate(t)

	t.Run("negotiation", func(t *testing.T) {
		for _, tc := range []struct{ offer, want string }{
			{"4000,4000", "100,100"}, {"0,0", "0,0"}, {"50,0", "0,100"}, {"0,50", "100,0"}, {"", "0,0"},
		} {
			c := f.dial(t)
			hs := []string{"accept-version", "1.2", "Authorization", "Bearer " + token}
			if tc.offer != "" {
				hs = append(hs, "heart-beat", tc.offer)
			}
			c.send(stomp.CmdConnect, hs...)
			cf := c.expect(stomp.CmdConnected)
			if got := cf.Value("heart-beat"); got != tc.want {
				t.Errorf("client %q: CONNECTED heart-beat %q, want %q", tc.offer, got, tc.want)
			}
			c.ws.CloseNow()
		}
	})

	t.Run("sent at the negotiated interval", func(t *testing.T) {
		c := f.dial(t)
		c.connect(token, "heart-beat", "0,50") // the server sends every max(100, 50) ms
		if _, err := c.next(550 * time.Millisecond); err == nil {
			t.Fatal("a frame came")
		}
		if c.beats < 2 || c.beats > 6 { // 5 on time; 2 if the machine stalls
			t.Errorf("%d heart-beats in 550ms at 100ms", c.beats)
		}
	})

	// Liveness, with a longer interval so that a loaded machine's scheduling does not
	// look like a dead client: the grace is 2 × 200ms.
	const live = 200 * time.Millisecond
	f2 := newFixture(t, func(c *Config) { c.HeartBeat = live })
	token2, _ := f2.authenticate(t)

	t.Run("a client that beats stays", func(t *testing.T) {
		c := f2.dial(t)
		c.send(stomp.CmdConnect, "accept-version", "1.2", "heart-beat", "50,0", "Authorization", "Bearer "+token2)
		c.expect(stomp.CmdConnected)
		for i := 0; i < 20; i++ { // 20 × 40ms, twice the grace
			time.Sleep(40 * time.Millisecond)
			c.raw("\n")
		}
		c.subscribe() // still connected
	})

	// Both directions at once: the one timer sends the server's beats and checks the
	// client's.
	t.Run("both ways", func(t *testing.T) {
		c := f2.dial(t)
		c.send(stomp.CmdConnect, "accept-version", "1.2", "heart-beat", "50,50", "Authorization", "Bearer "+token2)
		if cf := c.expect(stomp.CmdConnected); cf.Value("heart-beat") != "200,200" {
			t.Fatalf("CONNECTED heart-beat %q", cf.Value("heart-beat"))
		}
		start := time.Now()
		got := make(chan int, 1)
		go func() { // reads the beats until the RECEIPT of the SUBSCRIBE below
			if f, err := c.next(5 * time.Second); err != nil || f.Command != stomp.CmdReceipt {
				t.Errorf("after the beats: %v %v", f.Command, err)
			}
			got <- c.beats
		}()
		for range 25 { // 25 × 40ms: more than twice the grace
			time.Sleep(40 * time.Millisecond)
			c.raw("\n")
		}
		// Still connected: the SUBSCRIBE is answered.
		c.send(stomp.CmdSubscribe, "id", "s", "destination", Destination, "receipt", "r")
		// 5 on time; 2 if the machine stalls; more if its sleeps stretch the second.
		if n, most := <-got, int(time.Since(start)/live)+1; n < 2 || n > most {
			t.Errorf("%d heart-beats in %v at 200ms", n, time.Since(start))
		}
	})

	t.Run("a silent client is dropped", func(t *testing.T) {
		c := f2.dial(t)
		c.send(stomp.CmdConnect, "accept-version", "1.2", "heart-beat", "50,0", "Authorization", "Bearer "+token2)
		c.expect(stomp.CmdConnected)
		start := time.Now()
		c.expectClosed()
		if d := time.Since(start); d < HeartBeatGrace*live*9/10 || d > 3*time.Second {
			t.Errorf("dropped after %v; the grace is %v", d, HeartBeatGrace*live)
		}
	})
}

// TestResume: a client that reconnects with x-parley-after gets what it missed exactly
// once, in order, then new messages.
func TestResume(t *testing.T) {
	checkGoroutines(t)
	eachStore(t, testResume)
}

func testResume(t *testing.T, f *fixture) {
	token, conv := f.authenticate(t)
	agent := f.agent(t, conv.Room)
	ctx := context.Background()

	c := f.dial(t)
	c.connect(token)
	c.subscribe()
	var got []string
	var last uint64
	for i := 0; i < 3; i++ {
		f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: fmt.Sprint("live ", i)})
		fr, p := c.message()
		got = append(got, text(p))
		last = mustPos(t, fr)
	}
	c.ws.CloseNow() // the network drops
	var want []string
	for i := 0; i < 300; i++ { // more than the engine's follow buffer: some come from the store
		f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: fmt.Sprint("missed ", i)})
		f.e.StartTyping(ctx, conv.Room, agent, "")
		want = append(want, fmt.Sprint("missed ", i))
	}
	c = f.dial(t)
	c.connect(token)
	c.subscribe(HeaderAfter, strconv.FormatUint(last, 10))
	go f.e.Send(ctx, conv.Room, agent, chat.NewMessage{Text: "new"})
	want = append(want, "new")
	var resumed []string
	prev := last
	for range want {
		fr, p := c.message()
		if pos := mustPos(t, fr); pos <= prev {
			t.Fatalf("position %d after %d", pos, prev)
		} else {
			prev = pos
		}
		resumed = append(resumed, text(p))
	}
	if diff := cmp.Diff(want, resumed); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
	if fr, err := c.next(100 * time.Millisecond); err == nil {
		t.Errorf("an extra frame: %s %v", fr.Command, fr.Headers)
	}

	// x-parley-after:0 replays the whole conversation.
	c2 := f.dial(t)
	c2.connect(token)
	c2.subscribe(HeaderAfter, "0")
	var all []string
	for i := 0; i < len(got)+len(want); i++ {
		_, p := c2.message()
		all = append(all, text(p))
	}
	if diff := cmp.Diff(append(got, want...), all); diff != "" {
		t.Errorf("x-parley-after:0 (-want +got):\n%s", diff)
	}
}

func TestConversationDeleted(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, conv := f.authenticate(t)
	c := f.dial(t)
	c.connect(token)
	c.subscribe()
	if err := f.e.DeleteRoom(context.Background(), conv.Room); err != nil {
		t.Fatal(err)
	}
	c.expectError("404")
}

func TestHandlerClose(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, _ := f.authenticate(t)
	c := f.dial(t)
	c.connect(token)
	c.subscribe()
	idle := f.dial(t) // not even connected
	// The clients read while the handler closes, so that they answer its close handshake.
	statuses := make(chan websocket.StatusCode, 2)
	for _, cl := range []*client{c, idle} {
		go func() {
			_, _, err := cl.ws.Read(context.Background())
			statuses <- websocket.CloseStatus(err)
		}()
	}
	start := time.Now()
	for deadline := time.Now().Add(2 * time.Second); f.h.Connections() != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d, want 2", f.h.Connections())
		}
		time.Sleep(time.Millisecond)
	}
	f.h.Close()
	if n := f.h.Connections(); n != 0 {
		t.Errorf("after Close: Connections() = %d", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	for range 2 {
		if st := <-statuses; st != websocket.StatusGoingAway {
			t.Errorf("close status %v, want 1001", st)
		}
	}
	resp, err := http.Get("http" + strings.TrimPrefix(f.url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d", resp.StatusCode)
	}
}

func TestNewNeedsService(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New(Config{}) succeeded")
	}
}
