package postgres

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
)

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func schemaVersion(t testing.TB, conn *pgx.Conn) int {
	t.Helper()
	var v int
	if err := conn.QueryRow(ctx, "SELECT version FROM parley_schema").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrateUpgrade: Open on a database at version 1 upgrades it and keeps its data.
func TestMigrateUpgrade(t *testing.T) {
	dsn := pgtest.DB(t, pgtest.Fast())
	conn := connect(t, dsn)
	if _, err := migrate(ctx, conn, 1); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, conn); v != 1 {
		t.Fatalf("version %d after migrating to 1", v)
	}
	id := chat.ID{9}
	if _, err := conn.Exec(ctx, `INSERT INTO parley_rooms (id, name, display_name, image_url, private, empty_ttl,
created_at, updated_at, ended_at, joins) VALUES ($1, 'old', '', '', false, 0, now(), now(), now(), 0)`, id); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn, nil)
	if v := schemaVersion(t, conn); v != SchemaVersion {
		t.Fatalf("version %d after Open, want %d", v, SchemaVersion)
	}
	err := s.Update(ctx, func(tx chat.Tx) error {
		r, err := tx.RoomByName("old")
		if err != nil || r.ID != id {
			t.Errorf("room from version 1: %v, %v", r.ID, err)
		}
		ev := chat.Event{RoomID: id, Type: chat.EventNotice, Text: "after upgrade"}
		return tx.Append(&ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM parley_changes WHERE room = $1", id).Scan(&n); err != nil || n != 1 {
		t.Errorf("change rows after an append on the upgraded schema: %d, %v", n, err)
	}
}

// TestMigrateNewer: Open refuses a database a newer program migrated, naming both versions.
func TestMigrateNewer(t *testing.T) {
	dsn := pgtest.DB(t, pgtest.Fast())
	open(t, dsn, nil).Close()
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, "UPDATE parley_schema SET version = 99"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, dsn, nil)
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", SchemaVersion)) {
		t.Fatalf("Open on a newer schema: %v; want ErrSchemaTooNew naming 99 and %d", err, SchemaVersion)
	}
	if v := schemaVersion(t, conn); v != 99 {
		t.Errorf("Open changed the newer schema's version to %d", v)
	}
}

// TestMigrateConcurrently: processes that start together on an empty database migrate it
// once, and all open.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DB(t, pgtest.Fast())
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			s, err := Open(ctx, dsn, nil)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	if v := schemaVersion(t, connect(t, dsn)); v != SchemaVersion {
		t.Errorf("version %d", v)
	}
}
