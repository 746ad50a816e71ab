package postgres

import (
	"context"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/storagetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var ctx = context.Background()

// open opens a Store on dsn, closed when t ends.
func open(t testing.TB, dsn string, o *Options) *Store {
	t.Helper()
	s, err := Open(ctx, dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore runs the conformance suite, each test on a database of its own. It checks
// semantics, not durability, so commits do not wait for the disk (pgtest.Fast).
func TestStore(t *testing.T) {
	testkit.CheckLeaks(t)
	storagetest.Run(t, func(t *testing.T) chat.Store { return open(t, pgtest.DB(t, pgtest.Fast()), nil) })
}

// TestStoreNoCache runs the suite with the read cache and the writer's member cache off.
func TestStoreNoCache(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) chat.Store {
		return open(t, pgtest.DB(t, pgtest.Fast()), &Options{CacheEvents: -1, noMemberCache: true})
	})
}
