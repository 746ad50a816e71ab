package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/chat/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDB: each test gets its own empty database, durable unless Fast.
func TestDB(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []pgtest.Option
		want string
	}{
		{"durable", nil, "on"},
		{"fast", []pgtest.Option{pgtest.Fast()}, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.DB(t, tc.opts...)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var db, sync, fsync string
			if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('synchronous_commit'), current_setting('fsync')").Scan(&db, &sync, &fsync); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(db, "parley_test_") || sync != tc.want || fsync != "on" {
				t.Errorf("database %q, synchronous_commit %s, fsync %s; want parley_test_..., %s, on", db, sync, fsync, tc.want)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil || n != 0 {
				t.Errorf("new database has %d tables (%v)", n, err)
			}
			if _, err := conn.Exec(ctx, "CREATE TABLE mine (x int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStart: a server of the test's own stops and starts again.
func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx := context.Background()
	s := pgtest.Start(t)
	ping := func() error {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatal("stopped server answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:p@h:5433/old?sslmode=disable",
		"postgresql://u@h/old",
		"host=/tmp/x port=5432 user=postgres dbname=old",
		"host=/tmp/x dbname='old one'",
		`host=/tmp/x password=ab\`,
	} {
		got, err := pgtest.WithDatabase(dsn, "new_db")
		if err != nil {
			t.Errorf("WithDatabase(%q): %v", dsn, err)
			continue
		}
		c, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Errorf("WithDatabase(%q) = %q, which does not parse: %v", dsn, got, err)
			continue
		}
		if c.Database != "new_db" {
			t.Errorf("WithDatabase(%q) = %q: database %q", dsn, got, c.Database)
		}
	}
}

// FuzzWithDatabase: whatever a DSN that parses says, the changed one says too, but for the
// database.
func FuzzWithDatabase(f *testing.F) {
	f.Add("postgres://u:p@h:5433/old?sslmode=disable", "db")
	f.Add("host=/tmp/x port=5432 user=postgres dbname=old", "d b")
	f.Add(`host=h password=a\`, `x'y\`)
	f.Add(`password='a b' user=u`, "")
	f.Fuzz(func(t *testing.T, dsn, db string) {
		before, err := pgconn.ParseConfig(dsn)
		if err != nil || strings.ContainsRune(db, 0) {
			return
		}
		got, err := pgtest.WithDatabase(dsn, db)
		if err != nil {
			return // refused, rather than wrong
		}
		after, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("WithDatabase(%q, %q) = %q, which does not parse: %v", dsn, db, got, err)
		}
		if after.Database != db || after.Host != before.Host || after.Port != before.Port ||
			after.User != before.User || after.Password != before.Password {
			t.Fatalf("WithDatabase(%q, %q) = %q: %+v, was %+v", dsn, db, got, after, before)
		}
	})
}
