package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the version of the schema this package writes: the number of migrations.
const SchemaVersion = 3

// migrations are the steps from one schema version to the next: migrations[i] takes a
// database from version i to i+1. Each runs in one transaction with the version update, so a
// database is always at some version. Never change a step that has shipped: add one.
//
// Names are unique where they are not NULL (an empty name is stored as NULL). Texts that are
// compared or ordered (names, timer kinds) use the "C" collation, so that the database orders
// them as Go compares strings, whatever the database's locale. IDs are uuids: PostgreSQL
// orders them byte by byte, as chat.ID compares. Times are timestamptz (microseconds; the zero
// time.Time is 0001-01-01 UTC). There are no foreign keys: a room's rows go with it in
// DeleteRoom, and a foreign key check on every append would cost an index lookup and a lock.
var migrations = []string{
	// 1: users, rooms, members, transcripts, revisions, keys and timers.
	`
CREATE TABLE parley_users (
	id           uuid PRIMARY KEY,
	name         text COLLATE "C" UNIQUE,
	display_name text NOT NULL,
	email        text NOT NULL,
	avatar_url   text NOT NULL,
	attributes   jsonb,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL
);
CREATE SEQUENCE parley_room_incarnation;
CREATE TABLE parley_rooms (
	id           uuid PRIMARY KEY,
	name         text COLLATE "C" UNIQUE,
	display_name text NOT NULL,
	image_url    text NOT NULL,
	private      boolean NOT NULL,
	attributes   jsonb,
	empty_ttl    bigint NOT NULL,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	ended_at     timestamptz NOT NULL,
	joins        bigint NOT NULL,
	-- The transcript's counter: changed in the transaction that appends, under the row's
	-- lock, so that it rolls back with it (a sequence would leave gaps).
	last_pos     bigint NOT NULL DEFAULT 0,
	last_time    timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
	-- Changed with every change to the room's own fields or members, so that a writer's
	-- cached copies can be checked when it locks the row.
	version      bigint NOT NULL DEFAULT 0,
	-- Distinct for every room ever created, even under an ID used before: keys caches.
	incarnation  bigint NOT NULL DEFAULT nextval('parley_room_incarnation')
);
CREATE TABLE parley_members (
	room         uuid NOT NULL,
	id           uuid NOT NULL,
	user_id      uuid NOT NULL,
	state        smallint NOT NULL,
	nickname     text NOT NULL,
	role         text NOT NULL,
	join_number  bigint NOT NULL,
	delivered    bigint NOT NULL,
	read         bigint NOT NULL,
	invited_by   uuid NOT NULL,
	invited_at   timestamptz NOT NULL,
	joined_at    timestamptz NOT NULL,
	left_at      timestamptz NOT NULL,
	pos          bigint NOT NULL,
	typing_until timestamptz NOT NULL,
	typing_text  text NOT NULL,
	PRIMARY KEY (room, id)
);
-- A user's latest membership record in each room (the one PutMember created last).
CREATE TABLE parley_memberships (
	user_id uuid NOT NULL,
	room    uuid NOT NULL,
	member  uuid NOT NULL,
	PRIMARY KEY (user_id, room)
);
CREATE INDEX parley_memberships_room ON parley_memberships (room);
CREATE TABLE parley_events (
	room        uuid NOT NULL,
	pos         bigint NOT NULL,
	id          uuid NOT NULL,
	type        text NOT NULL,
	name        text NOT NULL,
	from_member uuid NOT NULL,
	user_id     uuid NOT NULL,
	to_member   uuid NOT NULL,
	text        text NOT NULL,
	body        bytea,
	ref         bigint NOT NULL,
	visibility  text NOT NULL,
	time        timestamptz NOT NULL,
	key         text COLLATE "C",
	prev        bigint NOT NULL,
	PRIMARY KEY (room, pos)
);
CREATE UNIQUE INDEX parley_events_key ON parley_events (room, key) WHERE key IS NOT NULL;
CREATE TABLE parley_revisions (
	room uuid NOT NULL,
	pos  bigint NOT NULL,
	rev  bigint NOT NULL,
	PRIMARY KEY (room, pos)
);
CREATE TABLE parley_timers (
	kind   text COLLATE "C" NOT NULL,
	room   uuid NOT NULL,
	member uuid NOT NULL,
	at     timestamptz NOT NULL,
	PRIMARY KEY (room, kind, member)
);
CREATE INDEX parley_timers_due ON parley_timers (at, kind, room, member);
`,
	// 2: the bus: one row per room per commit that appended to it or deleted it.
	`
CREATE SEQUENCE parley_changes_seq;
CREATE TABLE parley_changes (
	-- Taken at the end of the writing transaction, under the locks of its rooms: a room's
	-- rows are in its commit order.
	seq      bigint PRIMARY KEY DEFAULT nextval('parley_changes_seq'),
	xid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
	room     uuid NOT NULL,
	from_pos bigint NOT NULL,
	to_pos   bigint NOT NULL,
	deleted  boolean NOT NULL,
	at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX parley_changes_xid ON parley_changes (xid);
CREATE INDEX parley_changes_at ON parley_changes (at);
-- pruned_before: change rows written before it may have been deleted.
CREATE TABLE parley_bus (
	one           boolean PRIMARY KEY DEFAULT true CHECK (one),
	pruned_before timestamptz NOT NULL
);
INSERT INTO parley_bus (pruned_before) VALUES ('-infinity');
`,
	// 3: rooms' idle control (chat.IdleControl as JSON; NULL when the room has none).
	`
ALTER TABLE parley_rooms ADD COLUMN idle jsonb;
`,
}

// Advisory lock keys (pg_advisory_lock takes a bigint; these spell "parley" and a purpose).
const (
	lockMigrate = 0x7061726c65790001
	lockPrune   = 0x7061726c65790002
)

// ErrSchemaTooNew is wrapped by Open's error when the database's schema is newer than this
// package knows: a newer version of the program has migrated it.
var ErrSchemaTooNew = errors.New("database schema is newer than this program")

// migrate brings the database conn points at to version target (at most SchemaVersion),
// under a session advisory lock so that processes starting together migrate once. It
// returns the version found.
func migrate(ctx context.Context, conn *pgx.Conn, target int) (int, error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockMigrate)); err != nil {
		return 0, fmt.Errorf("postgres store: lock for migration: %w", classify(err))
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockMigrate))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS parley_schema (
	one     boolean PRIMARY KEY DEFAULT true CHECK (one),
	version integer NOT NULL
)`); err != nil {
		return 0, fmt.Errorf("postgres store: schema version table: %w", classify(err))
	}
	var found int
	err := conn.QueryRow(ctx, "SELECT version FROM parley_schema").Scan(&found)
	if errors.Is(err, pgx.ErrNoRows) {
		found, err = 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres store: read schema version: %w", classify(err))
	}
	if found > SchemaVersion {
		return found, fmt.Errorf("postgres store: the database has schema version %d, this program knows versions up to %d: %w",
			found, SchemaVersion, ErrSchemaTooNew)
	}
	for v := found; v < target; v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO parley_schema (version) VALUES ($1)
ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version`, v+1)
			return err
		})
		if err != nil {
			return found, fmt.Errorf("postgres store: migrate schema from version %d to %d: %w", v, v+1, classify(err))
		}
	}
	return found, nil
}
