//go:build unix

package bezlimit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
)

// encodeFrame's WebSocket header: each payload length form of RFC 6455 section 5.2 reads
// back as the payload, by a frame reader and by framePayload.
func TestWsTextFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 0xffff, 0x10000, 200000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			p := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
			w := wsTextFrame(p)
			if w[0] != 0x81 {
				t.Fatalf("first byte %#x, want 0x81 (FIN, text)", w[0])
			}
			if w[1]&0x80 != 0 {
				t.Fatal("a server frame must not be masked")
			}
			rc := &rawConn{br: bufio.NewReader(bytes.NewReader(w))}
			got, err := rc.Read(nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(p, got, cmpBytes); diff != "" {
				t.Fatalf("read back (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(p, framePayload(w), cmpBytes); diff != "" {
				t.Fatalf("framePayload (-want +got):\n%s", diff)
			}
			if rest, _ := rc.br.Peek(1); len(rest) != 0 {
				t.Fatalf("%d bytes after the frame", rc.br.Buffered())
			}
		})
	}
}

// cmpBytes compares byte slices by length and content (nil and empty alike).
var cmpBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

// A room large enough to be fanned out by several goroutines: every connection receives
// every message once, in position order, while messages are sent without waiting.
func TestFanOutOrder(t *testing.T) {
	const n, msgs = 3 * fanOutChunk, 40
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.SendQueue, c.WriteTimeout = 4096, time.Minute }})
	room := v.newChat(0, 0)
	ctx := context.Background()
	addr := strings.TrimPrefix(v.srv.URL, "http://")
	conns := make([]*rawConn, n)
	for i := range conns {
		c, err := rawDial(addr, "/chat?chat="+room.UUID()+"&token=operator:"+strconv.Itoa(i+1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		conns[i] = c
	}
	waitSubs(t, v, room, n)
	var want []uint64
	for i := range msgs {
		ev, err := v.e.Send(ctx, room, chat.System, chat.NewMessage{Text: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.Pos)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			var got []uint64
			var buf []byte
			for len(got) < msgs {
				var err error
				if buf, err = c.Read(buf); err != nil {
					errs <- fmt.Errorf("conn %d after %v: %w", i, got, err)
					return
				}
				var fr struct {
					Type string `json:"type"`
					Pos  uint64 `json:"position"`
				}
				if err := json.Unmarshal(buf, &fr); err != nil {
					errs <- fmt.Errorf("conn %d: %v in %q", i, err, buf)
					return
				}
				if fr.Type == evMessageAdded {
					got = append(got, fr.Pos)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				errs <- fmt.Errorf("conn %d positions (-want +got):\n%s", i, diff)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A frame that the socket takes only in part is finished by a writer goroutine before
// anything else goes out: the frames that follow it, and the library's pong to a ping sent
// meanwhile, arrive whole and in order.
func TestPartialWrite(t *testing.T) {
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.WriteTimeout = time.Minute }})
	room := v.newChat(0, 0)
	ctx := context.Background()
	addr := strings.TrimPrefix(v.srv.URL, "http://")
	c, err := rawDialSmall(addr, "/chat?chat="+room.UUID()+"&token=operator:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	waitSubs(t, v, room, 1)
	var texts []string
	for i := 0; ; i++ {
		if i == 64 {
			t.Fatal("no frame was written in part")
		}
		// Each message is sent once the previous ones have left the queue, so that enqueue
		// writes it itself, until one does not fit.
		text := strings.Repeat(string(rune('a'+i%26)), 60<<10)
		if _, err := v.e.Send(ctx, room, chat.System, chat.NewMessage{Text: text}); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
		waitDispatched(t, v, room)
		if v.h.partialWrites.Load() != 0 {
			break
		}
		waitIdle(t, v, room)
	}
	// A ping while the frame is half written; then a small message after it.
	if _, err := c.nc.Write([]byte{0x89, 0x84, 0, 0, 0, 0, 'p', 'i', 'n', 'g'}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.Send(ctx, room, chat.System, chat.NewMessage{Text: "last"}); err != nil {
		t.Fatal(err)
	}
	texts = append(texts, "last")
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []string
	pong := false
	for len(got) < len(texts) || !pong {
		op, p, err := c.readFrame()
		if err != nil {
			t.Fatalf("after %d messages (pong %v): %v", len(got), pong, err)
		}
		switch op {
		case 0xA:
			if string(p) != "ping" {
				t.Fatalf("pong %q", p)
			}
			pong = true
		case 0x1:
			var fr struct {
				Type string `json:"type"`
				Data struct {
					Message wireMessage `json:"message"`
				} `json:"data"`
			}
			if err := json.Unmarshal(p, &fr); err != nil {
				t.Fatalf("frame %d: %v", len(got), err)
			}
			if fr.Type == evMessageAdded {
				got = append(got, fr.Data.Message.Text)
			}
		default:
			t.Fatalf("opcode %#x", op)
		}
	}
	if diff := cmp.Diff(texts, got); diff != "" {
		t.Fatalf("messages (-want +got):\n%s", diff)
	}
}

// rawDialSmall is rawDial with a 4 KiB receive buffer, so that the server's writes fill up.
func rawDialSmall(addr, path string) (*rawConn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return rawUpgrade(nc, path)
}

// readFrame reads one frame, control frames included.
func (c *rawConn) readFrame() (op byte, p []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	var l [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, l[:2]); err != nil {
			return 0, nil, err
		}
		n = uint64(l[0])<<8 | uint64(l[1])
	case 127:
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, b := range l {
			n = n<<8 | uint64(b)
		}
	}
	p = make([]byte, n)
	_, err = io.ReadFull(c.br, p)
	return h[0] & 0x0f, p, err
}

// waitSubs waits until the room's hub has n connections.
func waitSubs(t *testing.T, v *env, room chat.ID, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		k := 0
		if hb != nil {
			hb.lock()
			k = len(hb.subs)
			hb.unlock()
		}
		if k == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections", k, n)
		}
	}
}

// waitDispatched waits until the room's hub has dispatched every event.
func waitDispatched(t *testing.T, v *env, room chat.ID) {
	t.Helper()
	r, err := v.e.Room(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		hb.lock()
		done := hb.next > r.LastPos
		hb.unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub never dispatched the events")
		}
	}
}

// waitIdle waits until no connection of the room has a writer or queued frames, and the
// hub has dispatched every event.
func waitIdle(t *testing.T, v *env, room chat.ID) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		r, err := v.e.Room(context.Background(), room)
		if err != nil {
			t.Fatal(err)
		}
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		hb.lock()
		idle := hb.next == r.LastPos+1
		for c := range hb.subs {
			c.mu.Lock()
			idle = idle && !c.writing
			c.mu.Unlock()
		}
		hb.unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the connections never went idle")
		}
	}
}
