package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The tests here run the server binary as an attacker on loopback would meet it, with short
// limits from its flags. Another loopback address (127.0.0.2) is another client.

// slack is how late a limit may act on a shared, busy test machine.
const slack = 2 * time.Second

// rawConn is a client connection that writes requests by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialFrom connects to s from the loopback address from (127.0.0.1, 127.0.0.2, ...).
func dialFrom(t *testing.T, s *server, from string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// send writes a request for path without waiting for the answer.
func (c *rawConn) send(path string, headers ...string) error {
	req := "GET " + path + " HTTP/1.1\r\nHost: parley\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	_, err := io.WriteString(c, req+"\r\n")
	return err
}

// answer reads the answer to a request sent, with its body, by deadline.
func (c *rawConn) answer(deadline time.Time) (status int, body string, err error) {
	c.SetReadDeadline(deadline)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// get asks for path and returns the answer's status.
func (c *rawConn) get(path string, headers ...string) (int, error) {
	if err := c.send(path, headers...); err != nil {
		return 0, err
	}
	status, _, err := c.answer(time.Now().Add(5 * time.Second))
	return status, err
}

// waitClosed waits until the server closes c, reading and dropping whatever it sends, and
// returns how long that took; it fails the test if c is still open at the deadline.
func (c *rawConn) waitClosed(t *testing.T, deadline time.Time) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c.br)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection is still open after %v", time.Since(start).Round(time.Millisecond))
	}
	return time.Since(start)
}

// TestIdleKeepAliveConnectionIsClosed: a keep-alive connection that sends no next request
// is closed once -idle-timeout has passed.
func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := startServer(t, buildServer(t), t.TempDir(), "-idle-timeout", idle.String())
	c := dialFrom(t, s, "127.0.0.1")
	if status, err := c.get("/healthz"); err != nil || status != http.StatusOK {
		t.Fatalf("GET /healthz: %d %v", status, err)
	}
	if took := c.waitClosed(t, time.Now().Add(idle+slack)); took < idle/2 {
		t.Errorf("closed after %v, before the idle timeout of %v", took, idle)
	}
	s.stop(t)
}

// TestSlowRequestBodyIsCut: a client that trickles its request body is cut off once
// -read-timeout has passed since its request began.
func TestSlowRequestBodyIsCut(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	s := startServer(t, buildServer(t), t.TempDir(), "-read-timeout", readTimeout.String())
	c := dialFrom(t, s, "127.0.0.1")
	start := time.Now()
	_, err := io.WriteString(c, "POST /airy/chatplugin.authenticate HTTP/1.1\r\nHost: parley\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() { // one byte every 50 ms: the body would take 50 s
		defer close(trickled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	c.waitClosed(t, start.Add(readTimeout+slack))
	if took := time.Since(start); took < readTimeout/2 {
		t.Errorf("cut after %v, before the read timeout of %v", took, readTimeout)
	}
	s.stop(t)
}

// TestHeadersOverMaxHeaderBytes: headers larger than -max-header-bytes (64 KiB by default)
// are refused with 431.
func TestHeadersOverMaxHeaderBytes(t *testing.T) {
	s := startServer(t, buildServer(t), t.TempDir())
	for _, tc := range []struct {
		size int
		want int
	}{
		{size: 32 << 10, want: http.StatusOK},
		{size: 100 << 10, want: http.StatusRequestHeaderFieldsTooLarge},
	} {
		c := dialFrom(t, s, "127.0.0.1")
		// The server closes the connection after a 431: reading its body may fail.
		status, err := c.get("/healthz", "X-Padding: "+strings.Repeat("p", tc.size))
		if status != tc.want {
			t.Errorf("a header of %d KiB: %d %v, want %d", tc.size>>10, status, err, tc.want)
		}
		c.Close()
	}
	s.stop(t)
}

// TestConnectionsOverThePerClientCapAreRefused: a client that holds -max-conns-per-client
// connections has its next one closed unanswered, while the ones it holds and other clients
// are served, and it may connect again once it closes one.
func TestConnectionsOverThePerClientCapAreRefused(t *testing.T) {
	const perClient = 4
	s := startServer(t, buildServer(t), t.TempDir(), "-max-conns-per-client", fmt.Sprint(perClient))
	var held []*rawConn
	for i := range perClient {
		c := dialFrom(t, s, "127.0.0.1")
		if status, err := c.get("/healthz"); err != nil || status != http.StatusOK {
			t.Fatalf("connection %d: %d %v", i+1, status, err)
		}
		held = append(held, c)
	}

	over := dialFrom(t, s, "127.0.0.1")
	over.send("/healthz") // may fail: the server may have closed it already
	if status, _, err := over.answer(time.Now().Add(slack)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection %d over the cap: %d %v, want it closed unanswered", perClient+1, status, err)
	}
	for i, c := range held {
		if status, err := c.get("/healthz"); err != nil || status != http.StatusOK {
			t.Errorf("held connection %d after the refusal: %d %v", i+1, status, err)
		}
	}
	if status, err := dialFrom(t, s, "127.0.0.2").get("/healthz"); err != nil || status != http.StatusOK {
		t.Errorf("another client: %d %v", status, err)
	}

	held[0].Close()
	for deadline := time.Now().Add(slack); ; time.Sleep(20 * time.Millisecond) {
		status, err := dialFrom(t, s, "127.0.0.1").get("/healthz")
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new connection after closing one: %d %v", status, err)
		}
	}
	s.stop(t)
}

// TestHealthzAnswersWhileOneClientHoldsItsMaximum: one client opening more sockets than the
// process may have files open used to exhaust them (accept fails, nothing is served). With
// the default caps, derived from the open file limit, it holds its maximum and /healthz still
// answers others.
func TestHealthzAnswersWhileOneClientHoldsItsMaximum(t *testing.T) {
	const nofile, sockets = 256, 300
	bin := buildServer(t)
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to lower the open file limit with")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), bin},
		serverArgs(dir)...)...)
	s := startCommand(t, dir, cmd)

	conns := make([]*rawConn, sockets)
	for i := range conns {
		conns[i] = dialFrom(t, s, "127.0.0.1")
		conns[i].send("/healthz")
	}
	deadline := time.Now().Add(5 * time.Second)
	served := 0
	for _, c := range conns {
		if status, _, err := c.answer(deadline); err == nil && status == http.StatusOK {
			served++
		}
	}
	if served != defaultConnsPerClient {
		t.Errorf("%d of one client's %d connections served, want %d", served, sockets, defaultConnsPerClient)
	}

	client := &http.Client{
		Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext},
		Timeout:   5 * time.Second,
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/healthz", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("/healthz for another client while one holds its maximum: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"status":"UP"}`+"\n" {
		t.Errorf("/healthz: %s %s", resp.Status, b)
	}
	for _, c := range conns {
		c.Close()
	}
	s.stop(t)
}
