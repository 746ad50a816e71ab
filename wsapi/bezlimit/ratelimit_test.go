package bezlimit

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/limit"
)

// Each writing client frame costs a write token of its identity: past the burst, a
// send_message gets message_not_added 429 and other frames the error frame 429; nothing is
// stored, and other identities are not held up.
func TestRateLimit(t *testing.T) {
	lim := limit.New(limit.Rates{Write: limit.Rate{PerSecond: 0.001, Burst: 3}})
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.Limiter = lim }})
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	op := v.chatConn("operator:2", room)
	for i := range 3 {
		vis.send(evSendMessage, map[string]any{"text": fmt.Sprint("ok ", i)})
		op.untilText(fmt.Sprint("ok ", i))
	}
	before := roomState(t, v.e, room)
	for _, tc := range []struct {
		typ  string
		data any
		want string
	}{
		{evSendMessage, map[string]any{"text": "one too many", "attachments": []string{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}}, evMessageNotAdded},
		{evUpdateTyping, map[string]any{"text": "x", "stopped": false}, frameTypeError},
		{evMarkRead, map[string]any{"message_id": before.LastPos}, frameTypeError},
		{evMarkDelivered, map[string]any{"message_id": before.LastPos}, frameTypeError},
	} {
		vis.send(tc.typ, tc.data)
		f, _ := vis.until(tc.want, nil)
		if !jsonHasCode(f.Data, http.StatusTooManyRequests) {
			t.Errorf("%s: %s %s, want code 429", tc.typ, f.Type, f.Data)
		}
		if tc.typ == evSendMessage && !containsAny(f.Data, `"text":"one too many"`, `0190a1b2`) {
			t.Errorf("message_not_added does not echo the message: %s", f.Data)
		}
	}
	// The operator is another identity: its own bucket.
	op.send(evSendMessage, map[string]any{"text": "operator"})
	if _, skipped := op.untilText("operator"); has(skipped, evMessageAdded, nil) || has(skipped, evTypingUpdated, nil) || has(skipped, evMessageUpdated, nil) {
		t.Errorf("refused frames reached the chat: %+v", skipped)
	}
	if after := roomState(t, v.e, room); after.LastPos != before.LastPos+1 {
		t.Errorf("last position %d → %d, want only the operator's message", before.LastPos, after.LastPos)
	}
	if lim.Refused(limit.Write) != 4 {
		t.Errorf("refused %d writes, want 4", lim.Refused(limit.Write))
	}
}

// A nil Config.Limiter is limit.DefaultRates: a burst of 100 messages from one identity is
// cut, and what is refused is not stored.
func TestRateLimitDefault(t *testing.T) {
	v := newEnv(t, envOpt{})
	if v.h.limiter == nil || !v.h.ownLimiter {
		t.Fatal("no default Limiter")
	}
	room := v.newChat(1, 2)
	vis := v.chatConn("client:1", room)
	const n = 100
	for i := range n {
		vis.send(evSendMessage, map[string]any{"text": fmt.Sprint("m", i)})
	}
	added, refused := 0, 0
	for added+refused < n {
		switch f := vis.next(); f.Type {
		case evMessageAdded:
			added++
		case evMessageNotAdded:
			if !jsonHasCode(f.Data, http.StatusTooManyRequests) {
				t.Fatalf("message_not_added %s", f.Data)
			}
			refused++
		}
	}
	if refused == 0 || added < limit.DefaultRates.Write.Burst {
		t.Errorf("%d added, %d refused: want the burst (%d) through and the rest cut", added, refused, limit.DefaultRates.Write.Burst)
	}
	evs, _ := v.e.Read(context.Background(), room, chat.ReadOptions{From: 1, Limit: 1000})
	stored := 0
	for _, ev := range evs {
		if ev.Type == chat.EventMessage {
			stored++
		}
	}
	if stored != added {
		t.Errorf("stored %d messages, %d were added", stored, added)
	}
}
