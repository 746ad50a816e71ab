// Package postgres is a chat.Store on PostgreSQL (through pgx v5) that several processes
// share: N servers serve one set of rooms, with the guarantees of one. It is also a
// chat.BusStore: its Bus tells each process what the others commit.
//
// # Schema
//
// Open creates the tables (parley_users, parley_rooms, parley_members, parley_memberships,
// parley_events, parley_revisions, parley_timers, parley_changes, parley_bus) and migrates
// them: the version is the one row of parley_schema, the migrations an ordered list of SQL
// steps, each applied in one transaction with the version change, under a session advisory
// lock, so that processes that start together migrate once. Open on an older schema
// upgrades it; on a newer one it refuses with an error (wrapping ErrSchemaTooNew) that names
// both versions.
//
// # Positions
//
// A room's last position and time are columns of its row, changed by the transaction that
// appends, so that they roll back with it (a sequence would leave gaps). Every write
// transaction locks a room's row (SELECT ... FOR UPDATE) before its first read or write of
// anything of the room — its fields, members, events, revisions, keys, timers — whatever
// order the engine calls the methods in: the store does it on the first access to the room
// in the database transaction. So each room's state is serialized across processes, and a
// room's commit order is its position order. Users are not locked: the last writer wins.
// Unique names are unique constraints, written with INSERT ... ON CONFLICT DO NOTHING (or an
// UPDATE that checks the name) so that a taken name is chat.ErrConflict without aborting the
// database transaction.
//
// # Writers and group commit
//
// Updates are queued for Options.Writers writer goroutines (default 2), each with a
// connection of its own. A writer takes everything queued (up to Options.MaxBatch), runs the
// functions one after another in one READ COMMITTED database transaction, commits once (one
// WAL flush for them all), runs their AfterCommit functions in order and acknowledges them.
// A lone Update waits for one commit, never for a timer. With two writers one batch runs its
// round trips while the other's commit waits for the disk. Commits are settled in the order
// they were sent, and a writer sends a commit for a room only after the last commit that held
// the room's lock is done, so a room's AfterCommit functions run in position order.
//
// Appends, revisions and client keys are buffered in the writer and written at the commit:
// the events of the whole batch in one INSERT ... SELECT FROM unnest(...), the rooms' new
// last positions and times in one UPDATE, the bus's change rows in one INSERT, and COMMIT,
// all in one pipeline (one round trip). Reads in the transaction see the buffered writes
// (a room's pending events, its last position and time, pending keys and revisions). BEGIN
// goes in the same round trip as the transaction's first statement. An engine Send (the room,
// the member, an append) is thus one round trip, the room lock, when the writer's member
// cache holds the member: the cache keeps MemberByUser results per room, valid while the
// room's version (a column changed with every change to the room's fields or members, by any
// process, under the room's lock) and incarnation read with the lock are those it was filled
// at. A transaction that changes a room's members or fields takes the room's cache out of
// the shared map until it commits, so no other writer sees what it has not committed.
//
// A function that fails having written only buffered rows is undone in memory and dropped
// from the batch; one that fails after a statement that changed something (or panics) rolls
// the batch back, and the batch runs again without it (the chat.Store contract lets
// functions run more than once). Savepoints are not used: a batch of hundreds of
// transactions would overflow PostgreSQL's cache of subtransactions and slow every reader.
// A batch is retried after a serialization failure (40001) or a deadlock (40P01), and after
// a lost connection (a few times, quickly), on a new connection.
//
// # Lock waits between processes
//
// Two batches that each hold some room locks and wait for a lock the other holds deadlock,
// and PostgreSQL takes deadlock_timeout (1 s by default) to notice. So within a batch only
// the first room lock may wait, and only if the transaction has written nothing yet (then
// it holds no lock anyone could wait for); later locks use FOR UPDATE SKIP LOCKED, and when
// no row comes back a plain SELECT tells a room that is locked elsewhere from one that does
// not exist. A function that meets a room locked elsewhere is taken out of the batch (its
// buffered writes undone; a rollback and a rerun if it had written more) and goes first in
// the next batch, where its first lock may wait. Since a batch never waits while it holds a
// room lock, no cycle of waits can form through room locks. A function taken out three times
// runs alone in a batch where every lock may wait; such batches, and rows that are not rooms
// (a user row two processes change, a unique name two insert), can still deadlock, rarely:
// PostgreSQL's detector breaks it and the batch runs again.
//
// # Reads
//
// View runs its function in a REPEATABLE READ, READ ONLY transaction from a pool (one
// snapshot for all its reads). Complete blocks of 64 events are kept in memory
// (Options.CacheEvents): a committed event never changes, and a block is keyed by the room's
// incarnation, so a room deleted and created again never meets its old blocks. Reading 50
// events after reading the room is then no round trip at all. In a write transaction, the
// lists (Users, Rooms, Memberships, Timers) do not lock the rooms they list.
//
// # The bus
//
// Each commit also inserts, in its pipeline, a row into parley_changes per room it appended
// to (first and last position) or deleted, with the writing transaction's ID
// (pg_current_xact_id()) and a sequence number taken at the commit under the rooms' locks (so
// a room's rows are in its commit order). A Bus.Changes cursor is a database snapshot
// (pg_current_snapshot()): Changes returns the rows whose transaction the cursor's snapshot
// does not see and the current one does (pg_visible_in_snapshot), so a transaction that began
// before a cursor and commits after it is returned once, by the next call, and none twice.
// After each commit with changes a separate goroutine and connection sends a NOTIFY without
// payload, coalesced (never inside a write transaction: a NOTIFY there takes a database-wide
// lock at commit and cuts write throughput by most of it); another connection LISTENs, feeds
// Bus.Wake, reconnects by itself and wakes after reconnecting, since notifications may have
// been lost meanwhile. Change rows older than Options.ChangesRetention are deleted by one
// process at a time, the holder of a session advisory lock, which the server releases when
// the holder's connection ends, so that another process takes over at its next try. A cursor
// older than the retention (less a minute of slack for commits slow to finish) gets an error
// wrapping chat.ErrLagged, with a fresh cursor.
//
// # Errors
//
// A lost or refused connection, a server shutting down, a full disk and other resource
// errors are reported as errors wrapping chat.ErrUnavailable; the store reconnects by itself
// when the database is back. A commit whose result never arrives (the connection lost
// during COMMIT) is not reported as a success: Update returns an error wrapping
// chat.ErrUnavailable, and the transaction may or may not have been committed. The engine's
// client keys (Event.Key) make retrying such a write safe.
package postgres
