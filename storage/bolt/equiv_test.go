package bolt_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/storagetest"
)

// TestMemoryBoltEquivalence: the memory and bolt stores, driven through the same random
// operations, answer alike and hold the same data.
func TestMemoryBoltEquivalence(t *testing.T) {
	dir := t.TempDir()
	n := 0
	storagetest.Equivalence(t, func(t *testing.T) chat.Store {
		n++
		s, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("eq%d.db", n)), &bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
