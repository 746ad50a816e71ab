package chat_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/postgres"
)

// storeFactories are the Stores every engine test runs on: memory, bolt and postgres (a fresh
// database of the test's own, with synchronous_commit off for speed; skipped without
// PostgreSQL, failed under CI=true).
var storeFactories = append(append([]testkit.Store(nil), testkit.Stores...), testkit.Store{
	Name: "postgres",
	Open: func(t testing.TB) chat.Store {
		s, err := postgres.Open(context.Background(), pgtest.DB(t, pgtest.Fast()), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
})

// forEachStore runs f as a subtest on every store.
func forEachStore(t *testing.T, f func(t *testing.T, newStore func(testing.TB) chat.Store)) {
	for _, s := range storeFactories {
		t.Run(s.Name, func(t *testing.T) { f(t, s.Open) })
	}
}

func TestMain(m *testing.M) { pgtest.Main(m) }

var epoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// newEngine opens an engine with a fake clock on a fresh store and closes both at the end.
func newEngine(t testing.TB, newStore func(testing.TB) chat.Store, opts ...chat.Option) (*chat.Engine, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(epoch)
	store := newStore(t)
	e, err := chat.Open(context.Background(), store, append([]chat.Option{chat.WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		store.Close()
	})
	return e, clock
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if target == nil {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

// checkNoLeak fails if goroutines started during the test are still running shortly after it.
func checkNoLeak(t *testing.T) { testkit.CheckLeaks(t) }

var ctx = context.Background()

func longText(n int) string { return strings.Repeat("x", n) }
