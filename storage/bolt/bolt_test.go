package bolt

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/storagetest"
)

func openTemp(t testing.TB, o *Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "chat.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore runs the conformance suite. It checks semantics, not durability (the crash and
// fault tests do, with fsync on), so it runs with NoSync to stay fast on a busy disk.
func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) chat.Store { return openTemp(t, &Options{NoSync: true}) })
}

// TestStoreNoCache runs the suite with the read cache off.
func TestStoreNoCache(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) chat.Store {
		return openTemp(t, &Options{NoSync: true, CacheEvents: -1})
	})
}
