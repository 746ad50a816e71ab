package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/chat/internal/pgtest"
)

// A package whose tests need PostgreSQL makes pgtest.Main its TestMain, so that the server
// is stopped once its tests are done, and each test asks for a database of its own.
func Example() {
	// func TestMain(m *testing.M) { pgtest.Main(m) }
	testSomething := func(t *testing.T) {
		dsn := pgtest.DB(t, pgtest.Fast()) // skips without PostgreSQL (fails under CI=true)
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	}
	_ = testSomething
}
