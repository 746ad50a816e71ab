package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// brokenStore is a store whose disk can fill up (writes fail with chat.ErrUnavailable) and
// whose reads can fail.
type brokenStore struct {
	chat.Store
	full, unreadable atomic.Bool
}

func (s *brokenStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if s.full.Load() {
		return fmt.Errorf("test store: write: no space left on device: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

func (s *brokenStore) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if s.unreadable.Load() {
		return errors.New("test store: read: input/output error")
	}
	return s.Store.View(ctx, fn)
}

// TestHealthzReportsTheStore: /healthz says DOWN, with 503 and the store's reason, while the
// store fails its writes or cannot be read, and UP again once it recovers.
func TestHealthzReportsTheStore(t *testing.T) {
	store := &brokenStore{Store: memory.New()}
	defer store.Close()
	e, err := chat.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	h := healthz(e)
	write := func() error {
		_, err := e.CreateUser(context.Background(), chat.NewUser{})
		return err
	}

	type answer struct {
		Status int
		Body   health
	}
	up := answer{http.StatusOK, health{Status: "UP"}}
	down := func(reason string) answer {
		return answer{http.StatusServiceUnavailable, health{Status: "DOWN", Store: reason}}
	}
	steps := []struct {
		name   string
		act    func()
		want   answer
		reason string // a part of the reason the answer gives
	}{
		{name: "healthy", act: func() {}, want: up},
		{name: "a write fails: disk full", act: func() {
			store.full.Store(true)
			if err := write(); !errors.Is(err, chat.ErrUnavailable) {
				t.Fatalf("write to a full store: %v", err)
			}
		}, want: down(""), reason: "no space left on device"},
		{name: "space again, no write yet", act: func() { store.full.Store(false) }, want: down(""), reason: "no space left on device"},
		{name: "a write succeeds", act: func() {
			if err := write(); err != nil {
				t.Fatal(err)
			}
		}, want: up},
		{name: "unreadable", act: func() { store.unreadable.Store(true) }, want: down(""), reason: "input/output error"},
		{name: "readable again", act: func() { store.unreadable.Store(false) }, want: up},
		{name: "engine closed", act: func() { e.Close() }, want: down(""), reason: "closed"},
	}
	for _, step := range steps {
		step.act()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		var got answer
		got.Status = rec.Code
		if err := json.Unmarshal(rec.Body.Bytes(), &got.Body); err != nil {
			t.Fatalf("%s: %v in %q", step.name, err, rec.Body)
		}
		if !strings.Contains(got.Body.Store, step.reason) {
			t.Errorf("%s: the reason %q does not say %q", step.name, got.Body.Store, step.reason)
		}
		if step.reason != "" {
			got.Body.Store = ""
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step.name, diff)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", step.name, ct)
		}
	}
}

// The body of /healthz is exactly as documented.
func TestHealthzBody(t *testing.T) {
	e, err := chat.Open(context.Background(), memory.New())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rec := httptest.NewRecorder()
	healthz(e).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if got, want := rec.Body.String(), `{"status":"UP"}`+"\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

// TestSweep: the sweeper logs what the limits refused since its last round, once, and stops.
func TestSweep(t *testing.T) {
	testkit.CheckLeaks(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limit.Listener(inner, limit.Conns{})
	defer ln.Close()
	lim := limit.New(limit.Rates{Write: limit.Rate{PerSecond: 1, Burst: 1}})
	var logs syncBuffer
	stop := sweep(lim, ln, slog.New(slog.NewTextHandler(&logs, nil)), 5*time.Millisecond)
	lim.Allow("192.0.2.1", limit.Write)
	lim.Allow("192.0.2.1", limit.Write) // refused
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "limits refused"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the refusal was never logged")
		}
	}
	time.Sleep(50 * time.Millisecond) // several rounds with nothing new refused
	stop()
	if n := strings.Count(logs.String(), "limits refused"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "writes=1") {
		t.Errorf("log: %s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
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
