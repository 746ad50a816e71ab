package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// browserDir is the Node project of the browser test.
var browserDir = filepath.Join("..", "..", "interop", "browser")

// chromiumPath is the browser the test drives: Debian's chromium, or $PARLEY_CHROMIUM.
func chromiumPath() string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestDemoPageInChromium runs interop/browser/demo.mjs: Playwright drives Chromium through
// the demo page at / on a running server (visitor → operator → visitor, typing, read marks,
// a reload, and the server stopped and started again under the page). The script asks for
// the restart; the test does it, on the same bolt file and port, and posts a message into
// the chat before the page has reconnected. It needs node, chromium and `npm ci --prefix
// interop/browser`; without them it skips, except under CI=true, where it fails.
// $PARLEY_SCREENSHOTS names a directory for the page's pictures.
func TestDemoPageInChromium(t *testing.T) {
	need := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the browser test must run)")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		need("node is not installed: the browser test cannot run")
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		need("no browser at " + chromiumPath() + ": apt-get install chromium (or set PARLEY_CHROMIUM)")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		need("interop/browser/node_modules is missing: run `npm ci --prefix interop/browser`")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	start := time.Now()
	s := startServer(t, bin, dir)

	cmd := exec.Command(node, "demo.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "PARLEY_URL="+s.base, "CHROMIUM="+chromiumPath(),
		"SCREENSHOTS="+os.Getenv("PARLEY_SCREENSHOTS"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()

	passed := false
	sc := bufio.NewScanner(stdout)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		close(lines)
		exited <- cmd.Wait()
	}()
	timeout := time.After(3 * time.Minute)
	for done := false; !done; {
		select {
		case <-timeout:
			t.Fatalf("the browser test did not finish in time; its log:\n%s\nserver log:\n%s", stderr.String(), s.logs)
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			switch verb, arg, _ := strings.Cut(line, " "); verb {
			case "STOP":
				s.stop(t)
				fmt.Fprintln(stdin, "STOPPED")
			case "START":
				// Down for a while, as a restart takes: the page backs off, and is still
				// offline when the message below is sent, which it gets on resuming.
				time.Sleep(1500 * time.Millisecond)
				s = startServer(t, bin, dir, "-addr", s.addr)
				postBezlimitMessage(t, s, arg, "Sent while you were away")
				fmt.Fprintln(stdin, "STARTED")
			case "PASS":
				passed = true
			default:
				t.Logf("browser test: %s", line)
			}
		}
	}
	err = <-exited
	exited <- err // for the deferred check
	if err != nil || !passed {
		t.Fatalf("the browser test failed: %v\n%s\nserver log:\n%s", err, stderr.String(), s.logs)
	}
	t.Logf("the browser test took %v:\n%s", time.Since(start).Round(100*time.Millisecond), stderr.String())
	s.stop(t)
}

// postBezlimitMessage sends a message into chat as the demo operator from another Bezlimit
// client (its /chat WebSocket, as the page does), and waits until the server has it.
func postBezlimitMessage(t *testing.T, s *server, chat, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/bezlimit/chat?chat=" + url.QueryEscape(chat) +
		"&token=" + url.QueryEscape(s.env["BEZLIMIT_OPERATOR_TOKEN"])
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer c.CloseNow()
	send, _ := json.Marshal(map[string]any{"type": "send_message", "data": map[string]any{"text": text, "attachments": []string{}}})
	if err := c.Write(ctx, websocket.MessageText, send); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the message to come back: %v", err)
		}
		var f struct {
			Type string `json:"type"`
			Data struct {
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &f) == nil && f.Type == "message_added" && f.Data.Message.Text == text {
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}

// lockedBuffer is a bytes.Buffer that a process may write while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
