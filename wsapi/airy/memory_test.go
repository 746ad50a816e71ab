package airy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// rawConn is a WebSocket client made of a bare TCP connection, so that measuring the server's
// memory per connection does not count a client library's buffers.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	req := "GET /ws.chatplugin HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c
}

// writeText writes one masked text frame.
func writeText(t *testing.T, c net.Conn, payload string) {
	t.Helper()
	var b []byte
	b = append(b, 0x81)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i := 0; i < len(payload); i++ {
		b = append(b, payload[i]^mask[i%4])
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func heapAndStacks() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// readUntil reads from c until it has seen want, with a small reused buffer.
func readUntil(t *testing.T, c net.Conn, buf []byte, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen []byte
	for !strings.Contains(string(seen), want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, seen)
		}
		seen = append(seen, buf[:n]...)
	}
	c.SetReadDeadline(time.Time{})
}

// TestIdleConnectionMemory measures what an idle, subscribed connection costs the server
// (heap and stacks, client side excluded but for its in-process sockets) and holds it to a
// ceiling, first right after SUBSCRIBE, then once every connection has delivered a message
// (the stacks that did the work must not stay). DESIGN.md's target is 10 KB, which this
// handler does not meet: about 14 KB, of which 6 KB are the two goroutines' stacks (see the
// package comment); it was 36 KB with a third goroutine per subscription and net/http's
// buffers. Set AIRY_HEAP_PROFILE=file to write a heap profile of the connections.
//
//	go test -run TestIdleConnectionMemory -v ./wsapi/airy
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	if os.Getenv("AIRY_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	checkGoroutines(t)
	f := newFixture(t, nil)
	token, conv := f.authenticate(t)
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	const n = 400
	buf := make([]byte, 512)
	conns := make([]net.Conn, 0, n)
	heap0, stacks0 := heapAndStacks()
	g0 := runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		c := rawConn(t, addr)
		conns = append(conns, c)
		writeText(t, c, "CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer "+token+"\n\n\x00")
		writeText(t, c, "SUBSCRIBE\nid:0\nreceipt:r\ndestination:"+Destination+"\n\n\x00")
		readUntil(t, c, buf, "RECEIPT")
	}
	check := func(when string) {
		t.Helper()
		heap1, stacks1 := heapAndStacks()
		per := (int64(heap1+stacks1) - int64(heap0+stacks0)) / n
		goroutines := float64(runtime.NumGoroutine()-g0) / n
		t.Logf("idle subscribed connection on the server, %s: %d bytes (heap %d, stacks %d), %.1f goroutines", when,
			per, (int64(heap1)-int64(heap0))/n, (int64(stacks1)-int64(stacks0))/n, goroutines)
		// A regression guard with some margin for the runtime's caches, not the target:
		// measured 13.6-14.4 KB on go1.26 linux/amd64 (the race detector's stacks are
		// larger).
		if !raceEnabled && per > 18<<10 {
			t.Errorf("%s: %d bytes per idle connection", when, per)
		}
		if goroutines > 2.05 { // the reader and the connection's own
			t.Errorf("%s: %.2f goroutines per idle connection", when, goroutines)
		}
	}
	check("after SUBSCRIBE")
	if p := os.Getenv("AIRY_HEAP_PROFILE"); p != "" {
		if fh, err := os.Create(p); err == nil {
			pprof.Lookup("heap").WriteTo(fh, 0)
			fh.Close()
		}
	}
	// They all still work, and stay as small once they have delivered a message.
	if _, err := f.e.Send(context.Background(), conv.Room, chat.System(), chat.NewMessage{Text: "ping"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		readUntil(t, c, buf, "ping")
	}
	check("after a message")
	for _, c := range conns {
		c.Close()
	}
}
