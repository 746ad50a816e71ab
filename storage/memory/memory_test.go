package memory_test

import (
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
	"github.com/parley-chat/chat/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) chat.Store { return memory.New() })
}
