//go:build unix

package bezlimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
)

// A client that stops reading neither blocks the others nor grows the server's memory: its
// queue overflows, it is closed with 1008 "too slow", and it resumes without loss.
func TestSlowClient(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.SendQueue = 16 }})
	room := v.newChat(1, 2)
	ctx := context.Background()
	fast := v.chatConn("operator:2", room)
	// The slow client: a raw connection that nobody reads for now.
	// Its receive buffer is small so that the server's queue fills soon.
	raw, _, err := websocket.Dial(ctx, v.ws+"/chat?chat="+room.UUID()+"&after=0&token=client:1", &websocket.DialOptions{HTTPClient: smallWindow()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	raw.SetReadLimit(1 << 20)

	opUser, _ := v.e.UserByName(ctx, "bezlimit:2")
	text := strings.Repeat("x", 16<<10)
	open := func() int { // connections of the room not closed
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		hb.lock()
		defer hb.unlock()
		n := 0
		for c := range hb.subs {
			if !c.isClosed() {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); open() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow client never registered")
		}
	}
	const batch = 8
	sent := 0
	start := time.Now()
	for open() == 2 { // until the slow one is dropped
		if sent >= 4000 {
			t.Fatal("the slow connection was never closed")
		}
		for range batch {
			if _, err := v.e.Send(ctx, room, opUser.ID, chat.NewMessage{Text: fmt.Sprint(sent, text)}); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		// The fast client keeps up: it is never held up by the slow one.
		for range batch {
			fast.until(evMessageAdded, nil)
		}
	}
	t.Logf("slow client dropped after %d messages of 16 KiB, %v", sent, time.Since(start))
	for range 10 { // and the room goes on
		v.e.Send(ctx, room, opUser.ID, chat.NewMessage{Text: fmt.Sprint(sent, "after")})
		sent++
	}
	for range 10 {
		fast.until(evMessageAdded, nil)
	}

	// The slow client now reads what reached it, then the close.
	var last uint64
	got := 0
	rctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	for {
		_, b, err := raw.Read(rctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != closeTooSlow || !strings.Contains(ce.Reason, "too slow") {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("after %d messages (last position %d): closed with %v, want 1008 too slow\n%s", got, last, err, buf)
			}
			break
		}
		var f inFrame
		json.Unmarshal(b, &f)
		if f.Type == evMessageAdded {
			if want := fmt.Sprint(got); !strings.HasPrefix(f.message().Text, want) {
				t.Fatalf("message %d: got %.10q", got, f.message().Text)
			}
			got++
		}
		if f.Position != 0 {
			last = f.Position
		}
	}
	if got >= sent {
		t.Fatalf("the slow client got everything (%d) before its close", got)
	}
	// It resumes from its last position: the rest, once each, in order.
	again := v.chatConn("client:1", room, last)
	for got < sent {
		f, _ := again.until(evMessageAdded, nil)
		var want string
		if got < sent-10 {
			want = fmt.Sprint(got, text)
		} else {
			want = fmt.Sprint(got, "after")
		}
		if f.message().Text != want {
			t.Fatalf("resumed message %d: got %.12q", got, f.message().Text)
		}
		got++
	}
}

// smallWindow is an HTTP client whose connections have a 4 KiB receive buffer, set before
// connecting so that the TCP window starts small: a peer that stops reading blocks the
// server's writes soon.
func smallWindow() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			return errors.Join(err, serr)
		}}
		return d.DialContext(ctx, network, addr)
	}}}
}

// A write that takes longer than WriteTimeout (the peer stopped reading and the send queue
// is large enough not to overflow first) closes the connection.
func TestWriteTimeout(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.SendQueue, c.WriteTimeout = 100000, 200*time.Millisecond }})
	room := v.newChat(1, 2)
	ctx := context.Background()
	raw, _, err := websocket.Dial(ctx, v.ws+"/chat?chat="+room.UUID()+"&token=client:1", &websocket.DialOptions{HTTPClient: smallWindow()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	opUser, _ := v.e.UserByName(ctx, "bezlimit:2")
	text := strings.Repeat("y", 16<<10)
	closed := func() bool { // closed, or already gone
		v.h.connsMu.Lock()
		defer v.h.connsMu.Unlock()
		for c := range v.h.conns {
			if !c.isClosed() {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); closed(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection never opened")
		}
	}
	start := time.Now()
	for i := 0; !closed(); i++ {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the stuck connection was not closed")
		}
		if i < 2000 {
			v.e.Send(ctx, room, opUser.ID, chat.NewMessage{Text: text})
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("closed after %v", time.Since(start))
}
