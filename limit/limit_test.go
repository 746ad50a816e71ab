package limit

import (
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAllow(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := newLimiter(Rates{Create: Rate{PerSecond: 1, Burst: 3}, Write: Rate{PerSecond: 10, Burst: 1}}, c.now)
	steps := []struct {
		advance time.Duration
		key     string
		class   Class
		want    bool
	}{
		{0, "a", Create, true},
		{0, "a", Create, true},
		{0, "a", Create, true},
		{0, "a", Create, false},                    // burst spent
		{0, "b", Create, true},                     // another client has its own bucket
		{0, "a", Write, true},                      // another class too
		{0, "a", Write, false},                     // burst of 1
		{100 * time.Millisecond, "a", Write, true}, // refilled at 10/s
		{900 * time.Millisecond, "a", Create, true},
		{0, "a", Create, false},
	}
	for i, s := range steps {
		c.t = c.t.Add(s.advance)
		if got := l.Allow(s.key, s.class); got != s.want {
			t.Fatalf("step %d: Allow(%q, %v) = %v, want %v", i, s.key, s.class, got, s.want)
		}
	}
	if got := l.RetryAfter("a", Create); got != time.Second {
		t.Errorf("RetryAfter(a, Create) = %v, want 1s", got)
	}
	if got := l.RetryAfter("b", Create); got != 0 {
		t.Errorf("RetryAfter(b, Create) = %v, want 0", got)
	}
	if got := l.RetryAfter("nobody", Write); got != 0 {
		t.Errorf("RetryAfter(nobody) = %v", got)
	}
	if got := l.Refused(Create); got != 2 {
		t.Errorf("Refused(Create) = %d, want 2", got)
	}
	if got := l.Refused(Write); got != 1 {
		t.Errorf("Refused(Write) = %d, want 1", got)
	}
}

func TestZeroRatesAndNilLimitNothing(t *testing.T) {
	var nilL *Limiter
	zero := New(Rates{})
	for i := 0; i < 1000; i++ {
		if !nilL.Allow("a", Create) || !zero.Allow("a", Write) {
			t.Fatal("refused")
		}
	}
	if len(zero.clients) != 0 {
		t.Fatal("an unlimited class keeps state")
	}
}

// TestMemoryIsBounded: clients whose buckets have refilled are forgotten, and a Limiter full of
// clients that are not refuses new ones rather than growing.
func TestMemoryIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := newLimiter(Rates{Create: Rate{PerSecond: 1, Burst: 2}}, c.now)
	for i := 0; i < maxClients; i++ {
		l.Allow(fmt.Sprint(i), Create)
	}
	if l.Allow("new", Create) {
		t.Fatal("a full limiter took a new client")
	}
	c.t = c.t.Add(2 * time.Second) // every bucket has refilled
	if !l.Allow("new", Create) {
		t.Fatal("refused after the others refilled")
	}
	if len(l.clients) != 1 {
		t.Fatalf("%d clients kept, want 1", len(l.clients))
	}
	c.t = c.t.Add(2 * time.Second)
	l.Sweep()
	if len(l.clients) != 0 {
		t.Fatalf("%d clients kept after Sweep", len(l.clients))
	}
}

func TestAddrKey(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1:1234":            "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:80": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:81": "2001:db8:1:2::/64", // the same /64
		"[::ffff:192.0.2.1]:5":      "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"not an address":            "not an address",
		"[fe80::1%eth0]:5":          "fe80::/64",
		"pipe":                      "pipe",
	}
	for in, want := range cases {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "198.51.100.7:9"
	r.Header.Set("X-Forwarded-For", "203.0.113.1")
	if got := ClientKey(r); got != "198.51.100.7" {
		t.Errorf("ClientKey = %q: forwarding headers must not be trusted", got)
	}
}

// TestListenerCaps: connections over a cap are closed at once; closing one makes room.
func TestListenerCaps(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener(inner, Conns{PerClient: 2, Total: 3})
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || (err != nil && !isTimeout(err))
	}
	c1, c2 := dial(), dial()
	s1, s2 := <-accepted, <-accepted
	c3 := dial() // a third from the same address: over PerClient
	if !closedByServer(c3) {
		t.Fatal("a third connection from one client stayed open")
	}
	if ln.Refused() != 1 || ln.Open() != 2 {
		t.Fatalf("refused %d, open %d", ln.Refused(), ln.Open())
	}
	s1.Close()
	s1.Close() // twice: counted once
	c4 := dial()
	s4 := <-accepted
	if ln.Open() != 2 {
		t.Fatalf("open %d after one closed and one came", ln.Open())
	}
	_, _, _, _ = c1, c2, s2, c4
	s4.Close()
	s2.Close()
	if ln.Open() != 0 {
		t.Fatalf("open %d after all closed", ln.Open())
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
