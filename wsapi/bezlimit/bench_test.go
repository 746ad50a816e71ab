package bezlimit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
)

// BenchmarkFanout measures publish → every subscriber: a message sent to the engine reaches N
// /chat connections over loopback. Each op is one message, waited for by all N; the
// latency of each delivery (engine Send to the client's Read returning it) is recorded and
// reported as p50/p99/max in ms. Clients run in the same process and share the CPUs.
//
//	go test -run '^$' -bench Fanout -benchtime 200x ./wsapi/bezlimit
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFanout(b, n) })
	}
}

// BenchmarkFanoutRaw is BenchmarkFanout with minimal clients: a hand-made upgrade and a
// frame reader on a bufio.Reader, so that less of the two shared CPUs goes to the clients'
// WebSocket library and more of the figure is the server's.
//
//	go test -run '^$' -bench FanoutRaw -benchtime 200x ./wsapi/bezlimit
func BenchmarkFanoutRaw(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFanoutWith(b, n, true) })
	}
}

func benchFanout(b *testing.B, n int) { benchFanoutWith(b, n, false) }

// rawConn is a minimal WebSocket client: it reads unmasked server frames.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
}

func rawDial(addr, path string) (*rawConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %v %v", resp, err)
	}
	return &rawConn{nc: nc, br: br}, nil
}

// Read returns the next data frame's payload (control frames are skipped).
func (c *rawConn) Read(buf []byte) ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		buf = slices.Grow(buf[:0], n)[:n]
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return nil, err
		}
		if h[0]&0x0f == 0x1 {
			return buf, nil
		}
	}
}

func benchFanoutWith(b *testing.B, n int, raw bool) {
	v := newEnv(b, envOpt{cfg: func(c *Config) { c.SendQueue = 1024 }})
	room := v.newChat(0, 0)
	ctx := context.Background()
	conns := make([]func() ([]byte, error), n)
	closers := make([]func(), n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			path := "/chat?chat=" + room.UUID() + "&token=operator:" + strconv.Itoa(i+1)
			if raw {
				c, err := rawDial(strings.TrimPrefix(v.srv.URL, "http://"), path)
				if err != nil {
					b.Error(err)
					return
				}
				var buf []byte
				conns[i] = func() ([]byte, error) { var err error; buf, err = c.Read(buf); return buf, err }
				closers[i] = func() { c.nc.Close() }
				return
			}
			c, _, err := websocket.Dial(ctx, v.ws+path, nil)
			if err != nil {
				b.Error(err)
				return
			}
			conns[i] = func() ([]byte, error) { _, m, err := c.Read(ctx); return m, err }
			closers[i] = func() { c.CloseNow() }
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	defer closeAll()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n*max(b.N, 1))
	var got sync.WaitGroup
	marker := []byte(`"text":"`)
	for _, read := range conns {
		go func() {
			local := make([]time.Duration, 0, 64)
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for {
				msg, err := read()
				if err != nil {
					return
				}
				now := time.Now()
				i := bytes.Index(msg, marker)
				if i < 0 || !bytes.Contains(msg[:min(len(msg), 40)], []byte(evMessageAdded)) {
					continue // presence frames
				}
				j := bytes.IndexByte(msg[i+len(marker):], '"')
				ns, err := strconv.ParseInt(string(msg[i+len(marker):i+len(marker)+j]), 10, 64)
				if err != nil {
					continue
				}
				local = append(local, now.Sub(time.Unix(0, ns)))
				got.Done()
			}
		}()
	}
	// Let the connections register and the presence frames drain.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		hb.lock()
		k := len(hb.subs)
		hb.unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d registered", k, n)
		}
	}
	time.Sleep(time.Duration(n/50) * time.Millisecond)
	b.ResetTimer()
	for range b.N {
		got.Add(n)
		if _, err := v.e.Send(ctx, room, chat.System(), chat.NewMessage{Text: strconv.FormatInt(time.Now().UnixNano(), 10)}); err != nil {
			b.Fatal(err)
		}
		got.Wait()
	}
	b.StopTimer()
	closeAll()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIdleConnMemory measures the server's memory per idle /chat connection: a child
// process opens the connections (so that client memory is not counted), and the server's
// heap and stacks are compared, after GC, with and without them.
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./wsapi/bezlimit
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	v := newEnv(b, envOpt{})
	room := v.newChat(0, 0)
	// Warm up: one connection (the room's hub, caches), then measure from there.
	warm, _, err := websocket.Dial(context.Background(), v.ws+"/chat?chat="+room.UUID()+"&token=operator:999999", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer warm.CloseNow()
	// The users exist already (in the engine and the handler's caches): what is measured
	// is the connection, not the account.
	for i := range n {
		if _, err := v.h.ensureUser(context.Background(), User{ID: int64(i + 1), Role: "operator", FirstName: fmt.Sprint("operator", i+1), LastName: "Test"}); err != nil {
			b.Fatal(err)
		}
	}
	g0, m0 := serverMem(v, room, 1)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleDialerProcess$")
	cmd.Env = append(os.Environ(), "BEZLIMIT_DIAL="+v.ws+"/chat?chat="+room.UUID(), "BEZLIMIT_DIAL_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
	}
	g1, m1 := serverMem(v, room, n+1)
	if p := os.Getenv("BEZLIMIT_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	b.ReportMetric(float64(m1-m0)/n, "B/conn")
	b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
	b.ReportMetric(0, "ns/op")
}

// serverMem waits until the room has want connections, then returns the goroutine count
// and the heap plus stack memory in use after GC.
func serverMem(v *env, room chat.ID, want int) (int, uint64) {
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		v.h.hubsMu.Lock()
		hb := v.h.hubs[room]
		v.h.hubsMu.Unlock()
		k := 0
		if hb != nil {
			hb.lock()
			k = len(hb.subs)
			hb.unlock()
		}
		if k == want {
			break
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("%d of %d connections", k, want)
		}
	}
	time.Sleep(200 * time.Millisecond) // presence frames written, writers gone
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse + ms.StackInuse
}

// TestIdleDialerProcess is the child process of BenchmarkIdleConnMemory: it opens the
// connections, says "ready", and holds them until its stdin closes.
func TestIdleDialerProcess(t *testing.T) {
	url := os.Getenv("BEZLIMIT_DIAL")
	if url == "" {
		t.Skip("the child process of BenchmarkIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("BEZLIMIT_DIAL_N"))
	var conns []*websocket.Conn
	for i := range n {
		c, _, err := websocket.Dial(context.Background(), url+"&token=operator:"+strconv.Itoa(i+1), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Read (and drop) the presence frames so that the server's writers go idle.
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		conns = append(conns, c)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.CloseNow()
	}
}
