package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/chat"
)

// storeError is an error this package made from what it read (not found, a conflict), as
// opposed to one the database or the connection returned.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func notFound(what string, key any) error {
	return &storeError{fmt.Errorf("postgres store: %s %v: %w", what, key, chat.ErrNotFound)}
}

func conflict(format string, args ...any) error {
	return &storeError{fmt.Errorf("postgres store: "+format+": %w", append(args, chat.ErrConflict)...)}
}

func ours(err error) bool {
	var se *storeError
	return errors.As(err, &se)
}

func closedErr() error { return fmt.Errorf("postgres store: %w", chat.ErrClosed) }

// errRoomBusy is what a write transaction's methods return once it met a room that another
// process's transaction holds; the writer takes the transaction out of the batch and runs it
// first in the next one, whatever the transaction's function returns.
var errRoomBusy = &storeError{errors.New("postgres store: room locked by another transaction (the store runs this transaction again)")}

// errUnknownOutcome wraps the error of a commit whose result never arrived.
var errUnknownOutcome = errors.New("the connection was lost during COMMIT: the transaction may or may not have been committed")

// SQLSTATEs this package reacts to.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// classify wraps err with chat.ErrUnavailable when it says the database cannot serve now
// (the connection is lost or refused, the server shuts down, the disk is full, resources
// run out), and with chat.ErrConflict for a unique violation. Other errors (a bug, a value
// the database refuses) are returned as they are; so are context errors.
func classify(err error) error {
	if err == nil || ours(err) || errors.Is(err, chat.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == codeUniqueViolation:
			return fmt.Errorf("postgres store: %w (%w)", chat.ErrConflict, err)
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || // connection exception
			pe.Code[:2] == "53" || // insufficient resources: disk full, out of memory, too many connections
			pe.Code[:2] == "57" || // operator intervention: shutdown, cannot connect now
			pe.Code[:2] == "58" || // system error: I/O error
			pe.Code == "3D000" || // the database does not exist (yet, or any more)
			pe.Code == "28000" || pe.Code == "28P01"): // refused
			return fmt.Errorf("postgres store: %w: %w", chat.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	// Anything else comes from the connection: refused, reset, closed, timed out.
	return fmt.Errorf("postgres store: %w: %w", chat.ErrUnavailable, err)
}

// retryable reports a transaction failure that running the same transaction again may not
// meet: a serialization failure or a deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}
