package bezlimit

import (
	"context"
	"testing"

	"github.com/coder/websocket"
)

// Close ends every connection with 1001 and leaves no goroutine behind (newEnv's leak check
// runs after the cleanups).
func TestHandlerClose(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	bc := v.mustDial("/broadcast", "operator:2", nil)
	vis.send(evUpdateTyping, map[string]any{"text": "x"}) // a writer at work
	op.until(evTypingUpdated, nil)
	v.h.Close()
	for name, c := range map[string]*client{"visitor": vis, "operator": op, "broadcast": bc} {
		if code, _ := c.closeStatus(); code != websocket.StatusGoingAway {
			t.Errorf("%s: close %v, want going away", name, code)
		}
	}
	if _, err := v.dial("/chat", "client:1", nil); err == nil {
		t.Error("connected after Close")
	}
}

// Deleting a chat closes its connections with 4404.
func TestChatDeleted(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	vis.send(evSendMessage, map[string]any{"text": "x"})
	vis.untilText("x")
	if err := v.e.DeleteRoom(context.Background(), room); err != nil {
		t.Fatal(err)
	}
	if code, reason := vis.closeStatus(); code != closeChatGone {
		t.Errorf("close %v %q, want %v", code, reason, closeChatGone)
	}
}
