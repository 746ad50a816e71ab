package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// demoServer is the mounted demo (in process, in memory) with what a test needs of it.
type demoServer struct {
	*httptest.Server
	e        *chat.Engine
	cfg      demoConfig
	stopping context.CancelFunc
}

func newDemoServer(t *testing.T) *demoServer {
	t.Helper()
	testkit.CheckLeaks(t)
	ctx := context.Background()
	store := memory.New()
	t.Cleanup(func() { store.Close() })
	e, err := chat.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	d, err := loadDemo(ctx, e, t.TempDir(), "http://demo.test")
	if err != nil {
		t.Fatal(err)
	}
	stopping, stop := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := mount(e, mountOptions{base: "http://demo.test", creds: d.credentials(), demo: d, log: log,
		lim: limit.New(limit.Rates{}), stopping: stopping})
	if err != nil {
		t.Fatal(err)
	}
	s := &demoServer{Server: httptest.NewServer(m.handler), e: e, stopping: stop}
	t.Cleanup(func() { stop(); s.Close(); m.close() })
	s.get(t, "/demo/api/config", "", &s.cfg)
	return s
}

func (s *demoServer) do(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (s *demoServer) get(t *testing.T, path, token string, out any) {
	t.Helper()
	if status := s.do(t, "GET", path, token, nil, out); status != http.StatusOK {
		t.Fatalf("GET %s: %d", path, status)
	}
}

// TestDemoVisitorState: the visitor's state poll answers at once when the page's state is
// stale, waits for a change otherwise (the operator's typing, its read mark), and answers at
// once when the server begins to shut down. The visitor's own marks move its watermarks.
func TestDemoVisitorState(t *testing.T) {
	s := newDemoServer(t)
	var auth struct {
		Token string `json:"token"`
	}
	if st := s.do(t, "POST", "/airy/chatplugin.authenticate", "", map[string]string{"channel_id": s.cfg.AiryChannelID}, &auth); st != 200 {
		t.Fatalf("authenticate: %d", st)
	}
	var sent struct {
		ID string `json:"id"`
	}
	s.do(t, "POST", "/airy/chatplugin.send", auth.Token, map[string]any{"message": map[string]string{"text": "Hello"}}, &sent)

	// The operator: joined by the demo's dispatcher through Bezlimit's /update/chat.
	ctx := context.Background()
	var op chat.User
	var room chat.ID
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var chats struct {
			Chats []demoChat `json:"chats"`
		}
		s.get(t, "/demo/api/chats", s.cfg.OperatorToken, &chats)
		if len(chats.Chats) == 1 {
			if chats.Chats[0].LastText != "Hello" {
				t.Errorf("the chat's last text: %q", chats.Chats[0].LastText)
			}
			room, _ = chat.ParseID(chats.Chats[0].UUID)
			op, _ = s.e.UserByName(ctx, "bezlimit:1")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the operator was never given the chat")
		}
	}

	var st visitorState
	s.get(t, "/demo/api/visitor/state", auth.Token, &st)
	if st.Read != 0 || len(st.Typing) != 0 {
		t.Fatalf("first state: %+v", st)
	}

	poll := func() (visitorState, time.Duration) {
		start := time.Now()
		var next visitorState
		s.get(t, "/demo/api/visitor/state?known="+st.Key, auth.Token, &next)
		return next, time.Since(start)
	}
	type result struct {
		st   visitorState
		took time.Duration
	}
	wait := func(act func()) visitorState {
		t.Helper()
		done := make(chan result, 1)
		go func() { next, took := poll(); done <- result{next, took} }()
		time.Sleep(100 * time.Millisecond) // the poll is waiting
		act()
		select {
		case r := <-done:
			if r.took > 5*time.Second {
				t.Errorf("the poll answered after %v", r.took)
			}
			st = r.st
			return r.st
		case <-time.After(10 * time.Second):
			t.Fatal("the poll did not answer the change")
		}
		return visitorState{}
	}
	if got := wait(func() { s.e.StartTyping(ctx, room, op.ID, "Let me see") }); len(got.Typing) != 1 ||
		got.Typing[0] != (typingState{Name: "Olga Operator", Text: "Let me see"}) {
		t.Errorf("after the operator's typing: %+v", got)
	}
	if got := wait(func() { s.e.MarkRead(ctx, room, op.ID, 3) }); got.Read != 3 || got.Delivered != 3 {
		t.Errorf("after the operator's read mark: %+v", got)
	}

	// The visitor's own marks and typing.
	var marks receiptBody
	if code := s.do(t, "POST", "/demo/api/visitor/receipt", auth.Token, receiptBody{Delivered: 2, Read: 1}, &marks); code != 200 || marks != (receiptBody{Delivered: 2, Read: 1}) {
		t.Errorf("receipt: %d %+v", code, marks)
	}
	if code := s.do(t, "POST", "/demo/api/visitor/receipt", auth.Token, receiptBody{Read: 1 << 40}, nil); code != http.StatusBadRequest {
		t.Errorf("a receipt past the end: %d, want 400", code)
	}
	if code := s.do(t, "POST", "/demo/api/visitor/typing", auth.Token, typingBody{Text: "hi"}, nil); code != http.StatusNoContent {
		t.Errorf("typing: %d", code)
	}
	if ts, _ := s.e.Typing(ctx, room); len(ts) != 2 {
		t.Errorf("typing in the room: %+v", ts)
	}

	// Shutting down: a waiting poll answers at once.
	done := make(chan time.Duration, 1)
	go func() { _, took := poll(); done <- took }()
	time.Sleep(100 * time.Millisecond)
	s.stopping()
	select {
	case took := <-done:
		if took > 2*time.Second {
			t.Errorf("the poll answered %v after the shutdown began", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a poll held the shutdown up")
	}
}

// FuzzCredentialLists: the credential parsers never panic, and what they accept is well
// formed.
func FuzzCredentialLists(f *testing.F) {
	for _, s := range []string{"a=b,c=d", "# c\nk=operator:7:Olga:Smith\n\nv=client:8", "x", "=,", "t=op:0", "t=:1", "a:b:c:d:e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, item := range splitList(s) {
			if item == "" || strings.ContainsAny(item, ",\n") || strings.TrimSpace(item) != item {
				t.Fatalf("splitList(%q) gave %q", s, item)
			}
		}
		if u, err := parseBezlimitUser(s); err == nil && (u.ID <= 0 || u.Role == "") {
			t.Fatalf("parseBezlimitUser(%q) = %+v", s, u)
		}
		if kv, err := pairs("x", s); err == nil {
			for _, p := range kv {
				if p[0] == "" || p[1] == "" {
					t.Fatalf("pairs(%q) gave %q", s, p)
				}
			}
		}
		if u, err := parsePublicURL(s); err == nil {
			if back, err := parsePublicURL(u); err != nil || back != u {
				t.Fatalf("parsePublicURL(%q) = %q, again %q, %v", s, u, back, err)
			}
		}
		if checkOrigin(s) == nil && s != "*" && len(originPatterns([]string{s})) != 1 {
			t.Fatalf("originPatterns(%q)", s)
		}
	})
}
