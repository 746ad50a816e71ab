package postgres_test

import (
	"context"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/postgres"
	"github.com/parley-chat/chat/storage/storagetest"
)

// TestMemoryPostgresEquivalence: the memory and PostgreSQL stores, driven through the same
// random operations, answer alike and hold the same data.
func TestMemoryPostgresEquivalence(t *testing.T) {
	testkit.RapidChecks(t, 30) // each check makes a database (about 0.3 s)
	storagetest.Equivalence(t, func(t *testing.T) chat.Store {
		s, err := postgres.Open(context.Background(), pgtest.DB(t, pgtest.Fast()), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
