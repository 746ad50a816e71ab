package chapi_test

import (
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/testkit"
)

type storeFactory = func(t testing.TB) chat.Store

// stores are the Stores every handler test runs on: memory and bolt.
var stores = testkit.Stores
