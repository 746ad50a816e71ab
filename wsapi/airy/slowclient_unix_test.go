//go:build unix

package airy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/stomp"
)

// TestSlowClient: a client that stops reading never holds up the engine's writers, and is
// dropped once a write has waited WriteTimeout.
func TestSlowClient(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	token, conv := f.authenticate(t)
	// A client with a small receive buffer, so that the server's writes block soon.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, f.url, &websocket.DialOptions{
		Subprotocols: []string{"v12.stomp"},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	c := &client{t: t, ws: ws}
	c.connect(token)
	c.subscribe()
	// The client reads nothing from now on.
	ctx := context.Background()
	big := strings.Repeat("x", 16<<10)
	const n = 1000 // 16 MB: more than the socket buffers hold
	start := time.Now()
	var slowest time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.e.Send(ctx, conv.Room, chat.System(), chat.NewMessage{Text: big}); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("%d sends in %v, slowest %v", n, time.Since(start), slowest)
	if slowest > 500*time.Millisecond {
		t.Errorf("a send waited %v for a slow client", slowest)
	}
	// The server gives up on the client once a write has waited WriteTimeout.
	deadline := time.Now().Add(20 * time.Second)
	for f.h.Connections() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow client was not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Reading now gets the frames buffered on the way, then the end.
	got := 0
	for {
		fr, err := c.next(5 * time.Second)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the connection stays open on the client's side")
			}
			break
		}
		if fr.Command == stomp.CmdMessage {
			got++
		}
	}
	if got >= n {
		t.Errorf("all %d messages arrived: the client was not slow enough to test anything", got)
	}
	t.Logf("the client got %d of %d messages before it was dropped", got, n)
}
