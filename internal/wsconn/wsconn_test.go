package wsconn

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// checkGoroutines fails the test if goroutines started during it still run once its other
// cleanups have run. Call it first.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
				return
			}
		}
	})
}

// echoServer serves a WebSocket that echoes every message, accepted with b.
func echoServer(t *testing.T, b Buffers) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(echoHandler(t, b))
	t.Cleanup(srv.Close)
	return srv
}

// echoHandler accepts a WebSocket with b and echoes every message.
func echoHandler(t *testing.T, b Buffers) http.Handler {
	t.Helper()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, _, err := Accept(w, r, nil, b)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		for {
			typ, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			if err := ws.Write(context.Background(), typ, data); err != nil {
				return
			}
		}
	})
}

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestBufferSizes(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		name        string
		b           Buffers
		read, write int
	}{
		{"defaults", Buffers{}, DefaultBufferSize, DefaultBufferSize},
		{"asked for", Buffers{Read: 512, Write: 2048}, 512, 2048},
		{"raised to the minimum", Buffers{Read: 1, Write: 100}, MinBufferSize, MinBufferSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan [2]int, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rs, ws := tc.b.sizes()
				conn, brw, err := (&hijacker{ResponseWriter: w, readSize: rs, writeSize: ws}).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
				got <- [2]int{brw.Reader.Size(), brw.Writer.Size()}
			}))
			defer srv.Close()
			if resp, err := http.Get(srv.URL); err == nil {
				resp.Body.Close()
			}
			if diff := cmp.Diff([2]int{tc.read, tc.write}, <-got); diff != "" {
				t.Errorf("read, write buffer sizes (-want +got):\n%s", diff)
			}
		})
	}
}

// Messages larger than the buffers go through whole, both ways.
func TestLargeMessages(t *testing.T) {
	checkGoroutines(t)
	srv := echoServer(t, Buffers{Read: MinBufferSize, Write: MinBufferSize})
	c := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range []int{0, 1, 255, 256, 257, 4096, 100 << 10} {
		msg := strings.Repeat("x", n)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Errorf("%d bytes: echoed %d bytes", n, len(got))
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// A client that sends its first frame together with its upgrade request, before the answer,
// has it read: the bytes net/http buffered reach the WebSocket.
func TestFrameWithTheRequest(t *testing.T) {
	checkGoroutines(t)
	srv := echoServer(t, Buffers{Read: MinBufferSize})
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	// Two masked text frames, the second longer than the read buffer.
	var frames []byte
	for _, payload := range []string{"eager", strings.Repeat("y", 300)} {
		mask := []byte{1, 2, 3, 4}
		if len(payload) < 126 {
			frames = append(frames, 0x81, 0x80|byte(len(payload)))
		} else {
			frames = append(frames, 0x81, 0x80|126, byte(len(payload)>>8), byte(len(payload)))
		}
		frames = append(frames, mask...)
		for i := range len(payload) {
			frames = append(frames, payload[i]^mask[i%4])
		}
	}
	if _, err := nc.Write(append([]byte(req), frames...)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, want := range []string{"eager", strings.Repeat("y", 300)} {
		hdr := make([]byte, 2)
		if _, err := readFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		n := int(hdr[1] & 0x7f)
		if n == 126 {
			ext := make([]byte, 2)
			readFull(br, ext)
			n = int(ext[0])<<8 | int(ext[1])
		}
		payload := make([]byte, n)
		if _, err := readFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if string(payload) != want {
			t.Errorf("echo %q, want %q", payload, want)
		}
	}
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The returned net.Conn is the one the WebSocket writes to: a write deadline bounds the
// WebSocket's writes.
func TestWriteDeadline(t *testing.T) {
	checkGoroutines(t)
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, conn, err := Accept(w, r, nil, Buffers{})
		if err != nil {
			result <- err
			return
		}
		defer ws.CloseNow()
		conn.SetWriteDeadline(time.Now().Add(-time.Second))
		result <- ws.Write(context.Background(), websocket.MessageText, []byte("late"))
	}))
	defer srv.Close()
	dial(t, srv)
	if err := <-result; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write after the deadline: %v", err)
	}
}

// A request that is not a WebSocket upgrade is answered as websocket.Accept answers it.
func TestNotAWebSocket(t *testing.T) {
	checkGoroutines(t)
	srv := echoServer(t, Buffers{})
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("status %d, want 426", resp.StatusCode)
	}
	srv.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// A WebSocket outlives the http.Server's ReadTimeout and WriteTimeout: they bound requests,
// and the connection is no longer one once it is upgraded.
func TestServerTimeoutsDoNotCutTheWebSocket(t *testing.T) {
	checkGoroutines(t)
	const timeout = 100 * time.Millisecond
	srv := httptest.NewUnstartedServer(echoHandler(t, Buffers{}))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	c := dial(t, srv)
	time.Sleep(3 * timeout)
	echoOnce(t, c, "after the server's timeouts")
	c.Close(websocket.StatusNormalClosure, "")
}

// Whatever deadlines the server left on the connection it hands over (net/http documents
// that it may leave some; older versions did), Accept clears them.
func TestDeadlinesLeftByTheServerAreCleared(t *testing.T) {
	checkGoroutines(t)
	echo := echoHandler(t, Buffers{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		echo.ServeHTTP(&deadlineHijacker{ResponseWriter: w, deadline: time.Now().Add(100 * time.Millisecond)}, r)
	}))
	t.Cleanup(srv.Close)
	c := dial(t, srv)
	time.Sleep(300 * time.Millisecond)
	echoOnce(t, c, "after the deadlines the server left")
	c.Close(websocket.StatusNormalClosure, "")
}

// deadlineHijacker hijacks as a server that leaves its request deadlines on the connection.
type deadlineHijacker struct {
	http.ResponseWriter
	deadline time.Time
}

func (h *deadlineHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		conn.SetDeadline(h.deadline)
	}
	return conn, brw, err
}

// echoOnce sends msg and expects it back.
func echoOnce(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(got) != msg {
		t.Errorf("echo %q, want %q", got, msg)
	}
}
