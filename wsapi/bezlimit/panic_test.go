package bezlimit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/chat"
)

// syncBuffer is a bytes.Buffer for a logger that goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// trigger fires once, after it is armed.
type trigger struct{ armed, fired atomic.Bool }

func (t *trigger) fire() bool { return t.armed.Load() && t.fired.CompareAndSwap(false, true) }

// A panic in a connection's reader or writer closes that connection with 1011 and is logged
// with its stack; the others go on, and the client resumes by position.
func TestPanicInConnection(t *testing.T) {
	var logs syncBuffer
	var onRead, onWrite trigger
	v := newEnv(t, envOpt{
		cfg: func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) },
		setup: func(h *Handler) {
			h.testHookRead = func(c *conn) {
				if c.id.User.ID == 1 && onRead.fire() {
					panic("injected: reader")
				}
			}
			h.testHookWrite = func(c *conn) {
				if c.id.User.ID == 1 && onWrite.fire() {
					panic("injected: writer")
				}
			}
		},
	})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	vis.send(evSendMessage, map[string]any{"text": "before"})
	f, _ := vis.untilText("before")
	op.untilText("before")
	last := f.Position

	onRead.armed.Store(true)
	vis.send(evSendMessage, map[string]any{"text": "boom"})
	if code, _ := vis.closeStatus(); code != closeInternal {
		t.Errorf("reader panic: closed with %v, want %v", code, closeInternal)
	}
	// The operator's connection and the chat go on; the client resumes.
	op.send(evSendMessage, map[string]any{"text": "after"})
	op.untilText("after")
	vis = v.chatConn("client:1", room, last)
	vis.untilText("after")

	onWrite.armed.Store(true)
	op.send(evSendMessage, map[string]any{"text": "to the writer"})
	if code, _ := vis.closeStatus(); code != closeInternal {
		t.Errorf("writer panic: closed with %v, want %v", code, closeInternal)
	}
	op.untilText("to the writer")
	vis = v.chatConn("client:1", room, last)
	vis.untilText("to the writer")

	if n := v.h.panics.Load(); n != 2 {
		t.Errorf("%d panics recovered, want 2", n)
	}
	for _, want := range []string{"injected: reader", "injected: writer", "connection reader", "connection writer", "goroutine ", "readLoop"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A panic in a chat's hub closes the hub's connections with 1011; they resume by position on
// a fresh hub, and other chats are not touched. A panic in the /broadcast pump closes the
// /broadcast connections, and the next one gets a fresh pump.
func TestPanicInHub(t *testing.T) {
	var logs syncBuffer
	var onHub, onPump trigger
	v := newEnv(t, envOpt{
		cfg: func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) },
		setup: func(h *Handler) {
			h.testHookHub = func(ev *chat.Event) {
				if ev.Type == chat.EventMessage && ev.Text == "boom" && onHub.fire() {
					panic("injected: hub")
				}
			}
			h.bc.slowPump = func() {
				if onPump.fire() {
					panic("injected: pump")
				}
			}
		},
	})
	room, other := v.newChat(1, 2), v.newChat(3, 4)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	vis3 := v.chatConn("client:3", other)
	vis.send(evSendMessage, map[string]any{"text": "before"})
	f, _ := vis.untilText("before")
	op.untilText("before")
	last := f.Position

	onHub.armed.Store(true)
	vis.send(evSendMessage, map[string]any{"text": "boom"})
	for name, c := range map[string]*client{"visitor": vis, "operator": op} {
		if code, _ := c.closeStatus(); code != closeInternal {
			t.Errorf("%s: closed with %v, want %v", name, code, closeInternal)
		}
	}
	// The other chat goes on.
	vis3.send(evSendMessage, map[string]any{"text": "elsewhere"})
	vis3.untilText("elsewhere")
	// Both resume from their last position: the message whose fan-out failed is there.
	vis = v.chatConn("client:1", room, last)
	op = v.chatConn("operator:2", room, last)
	for _, c := range []*client{vis, op} {
		c.untilText("boom")
	}
	op.send(evSendMessage, map[string]any{"text": "live again"})
	vis.untilText("live again")

	// The /broadcast pump.
	bc := v.mustDial("/broadcast", "operator:2", nil)
	onPump.armed.Store(true)
	v.api("POST", "/message", map[string]any{"text": "pumped", "chat": map[string]string{"uuid": room.UUID()}})
	if code, _ := bc.closeStatus(); code != closeInternal {
		t.Errorf("broadcast: closed with %v, want %v", code, closeInternal)
	}
	vis.untilText("pumped")
	bc = v.mustDial("/broadcast", "operator:2", nil)
	v.api("POST", "/message", map[string]any{"text": "pumped again", "chat": map[string]string{"uuid": room.UUID()}})
	bc.untilText("pumped again")

	if n := v.h.panics.Load(); n != 2 {
		t.Errorf("%d panics recovered, want 2", n)
	}
	for _, want := range []string{"injected: hub", "chat hub", "injected: pump", "broadcast pump", "goroutine "} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}
