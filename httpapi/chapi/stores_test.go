package chapi_test

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/memory"
)

type storeFactory func(t testing.TB) chat.Store

// stores are the Stores every handler test runs on.
var stores = []struct {
	name string
	mk   storeFactory
}{
	{"memory", func(t testing.TB) chat.Store {
		s := memory.New()
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"bolt", func(t testing.TB) chat.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "chat.db"), &bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}
