package bezlimit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/chat"
)

// downStore fails every write with chat.ErrUnavailable while down is set, as a full disk
// does; reads still work.
type downStore struct {
	chat.Store
	down atomic.Bool
}

func (s *downStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if s.down.Load() {
		return fmt.Errorf("test store: no space left on device /var/lib/secret: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

// A store that cannot take writes is "try again": 503 with a retryable code on the socket
// (message_not_added, error frames), 503 with Retry-After on HTTP; the cause is not shown.
func TestStoreUnavailable(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		open := o.store
		var store *downStore
		o.store = func(t testing.TB) chat.Store { store = &downStore{Store: open(t)}; return store }
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		vis := v.chatConn("client:1", room)
		op := v.chatConn("operator:2", room)
		op.send(evSendMessage, map[string]any{"text": "hello"})
		f, _ := vis.untilText("hello")
		before := roomState(t, v.e, room)

		store.down.Store(true)
		for _, tc := range []struct {
			name, typ string
			data      any
			want      string
		}{
			{"send", evSendMessage, map[string]any{"text": "lost?"}, evMessageNotAdded},
			{"receipt", evMarkRead, map[string]any{"message_id": f.Position}, frameTypeError},
			{"typing", evUpdateTyping, map[string]any{"text": "x", "stopped": false}, frameTypeError},
		} {
			vis.send(tc.typ, tc.data)
			got, _ := vis.until(tc.want, nil)
			if !jsonHasCode(got.Data, http.StatusServiceUnavailable) || containsAny(got.Data, "secret", "no space") {
				t.Errorf("%s: %s %s, want code 503 without the cause", tc.name, got.Type, got.Data)
			}
		}
		for _, call := range []struct{ path, body string }{
			{"/message", `{"text":"x","chat":{"uuid":"` + room.UUID() + `"}}`},
			{"/update/chat", `{"uuid":"` + room.UUID() + `","status":"closed"}`},
		} {
			code, hdr, out := v.apiWith("POST", call.path, "application/json", call.body)
			if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !jsonHasCode(out, 503) || containsAny(out, "secret", "no space") {
				t.Errorf("%s: %d Retry-After=%q %s, want 503 with Retry-After in the error format", call.path, code, hdr.Get("Retry-After"), out)
			}
		}
		if after := roomState(t, v.e, room); after.LastPos != before.LastPos {
			t.Errorf("stored while down: %d → %d", before.LastPos, after.LastPos)
		}
		// Back up: the same connection goes on.
		store.down.Store(false)
		vis.send(evSendMessage, map[string]any{"text": "again"})
		op.untilText("again")
	})
}

func containsAny(b []byte, words ...string) bool {
	for _, w := range words {
		if len(w) > 0 && strings.Contains(string(b), w) {
			return true
		}
	}
	return false
}
