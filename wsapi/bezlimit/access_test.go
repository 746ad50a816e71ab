package bezlimit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
)

// storeState is what a probe must not change: every user, and every chat's members and last
// position.
type storeState struct {
	Users   []chat.ID
	Members map[chat.ID][]string // chat -> "user state role"
	LastPos map[chat.ID]uint64
}

func snapshot(t *testing.T, e *chat.Engine) storeState {
	t.Helper()
	ctx := context.Background()
	s := storeState{Members: map[chat.ID][]string{}, LastPos: map[chat.ID]uint64{}}
	us, err := e.Users(ctx, chat.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		s.Users = append(s.Users, u.ID)
	}
	rs, err := e.Rooms(ctx, chat.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		s.LastPos[r.ID] = r.LastPos
		ms, _ := e.Members(ctx, r.ID)
		for _, m := range ms {
			s.Members[r.ID] = append(s.Members[r.ID], m.UserID.String()+" "+m.State.String()+" "+string(m.Role))
		}
	}
	return s
}

// answer is everything an upgrade refusal tells the client.
type answer struct {
	Status      int
	ContentType string
	Body        string
}

func (v *env) probe(token, chatID string, extra url.Values) answer {
	v.t.Helper()
	q := url.Values{"token": {token}, "chat": {chatID}}
	for k, vs := range extra {
		q[k] = vs
	}
	req, _ := http.NewRequest("GET", v.srv.URL+"/chat?"+q.Encode(), nil)
	// A real upgrade request: the refusal must come before the upgrade, as an HTTP answer.
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return answer{Status: resp.StatusCode} // upgraded: let in
	}
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// Probing a chat the identity may not open answers exactly as probing a uuid that names no
// chat, and neither joins nor stores anything.
func TestNoExistenceOracle(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		var secret chat.ID
		o.cfg = func(c *Config) {
			c.MayView = func(op User, room chat.Room) bool { return op.ID != 9 || room.ID != secret }
		}
		v := newEnv(t, o)
		mine := v.newChat(1, 2)
		secret = v.newChat(3, 4)
		v.api("POST", "/message", map[string]any{"text": "private", "chat": map[string]string{"uuid": secret.UUID()}})
		// Identity 9 has a user already (it watched another chat), 77 has none yet.
		v.chatConn("operator:9", mine).c.CloseNow()
		random := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		before := snapshot(t, v.e)

		tests := []struct {
			name, token string
			extra       url.Values
		}{
			{"a client of another chat", "client:1", nil},
			{"a client never seen", "client:77", nil},
			{"a client, resuming", "client:1", url.Values{"after": {"0"}}},
			{"a client, resuming past the end", "client:1", url.Values{"after": {"99999"}}},
			{"an operator MayView refuses", "operator:9", nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				probed := v.probe(tc.token, secret.UUID(), tc.extra)
				missing := v.probe(tc.token, random, tc.extra)
				if diff := cmp.Diff(missing, probed); diff != "" {
					t.Errorf("another's chat answers unlike a missing one (-missing +probed):\n%s", diff)
				}
				if probed.Status != http.StatusNotFound {
					t.Errorf("status %d, want 404", probed.Status)
				}
			})
		}
		after := snapshot(t, v.e)
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("probes changed the store (-before +after):\n%s", diff)
		}
	})
}

// jsonHasCode reports whether frame data carries {"error":{"code":code}}.
func jsonHasCode(data []byte, code int) bool {
	var d struct {
		Error wireError `json:"error"`
	}
	return json.Unmarshal(data, &d) == nil && d.Error.Code == code && d.Error.Message != ""
}

// Connecting joins nobody: an owner who has left is let in again only once /update/chat
// names it again, an operator_user who has left only watches; an invitation is accepted.
func TestConnectJoinsNobody(t *testing.T) {
	v := newEnv(t, envOpt{})
	ctx := context.Background()
	room := v.newChat(1, 2)
	leave := func(name string) {
		u, err := v.e.UserByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.e.Leave(ctx, room, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	leave("bezlimit:1")
	leave("bezlimit:2")
	before := snapshot(t, v.e)
	if a := v.probe("client:1", room.UUID(), nil); a.Status != http.StatusNotFound {
		t.Errorf("the owner who left: %+v, want 404", a)
	}
	// The operator who left may watch (MayView nil) but is not joined: its posts are refused.
	op := v.chatConn("operator:2", room)
	op.send(evSendMessage, map[string]any{"text": "am I in?"})
	f, _ := op.until(evMessageNotAdded, nil)
	if got := f.Data; !jsonHasCode(got, 403) {
		t.Errorf("watcher's post: %s", got)
	}
	if diff := cmp.Diff(before, snapshot(t, v.e)); diff != "" {
		t.Errorf("connecting changed the store (-before +after):\n%s", diff)
	}
	// The back end names the owner again: it may connect.
	if code, out := v.api("POST", "/update/chat", map[string]any{"uuid": room.UUID(), "owner_user": User{ID: 1, Role: "client"}}); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	v.chatConn("client:1", room).c.CloseNow()

	// An invitation (by another surface or the program) is a placement: connecting accepts it.
	u5, err := v.h.ensureUser(ctx, User{ID: 5, Role: "client"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.Invite(ctx, room, u5, chat.InviteOptions{Role: chat.RoleClient}); err != nil {
		t.Fatal(err)
	}
	c5 := v.chatConn("client:5", room)
	c5.send(evSendMessage, map[string]any{"text": "invited"})
	c5.untilText("invited")
	if m, err := v.e.MemberByUser(ctx, room, u5); err != nil || m.State != chat.Joined {
		t.Errorf("invited member after connecting: %+v %v", m, err)
	}
}
