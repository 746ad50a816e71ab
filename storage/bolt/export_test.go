package bolt

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"
)

// Test-only injection points: Store.testHook is called by the writer at hookBatch,
// hookCommit and hookCommitted, outside any transaction's function; Options.bboltLogger is
// called by bbolt inside Tx.Commit, which panicLogger uses to panic there.

// onBatchOf calls f at point in the writer, once, for the first batch of n transactions.
func onBatchOf(s *Store, n int, point string, f func(tx *bbolt.Tx)) {
	var done atomic.Bool
	s.testHook = func(p string, tx *bbolt.Tx) {
		if p == point && len(s.cur.live) == n && done.CompareAndSwap(false, true) {
			f(tx)
		}
	}
}

// panicLogger is a bbolt logger that, once armed, panics where bbolt's Tx.Commit logs that it
// starts (before it writes anything).
type panicLogger struct {
	bbolt.Logger
	armed atomic.Bool
}

func newPanicLogger() *panicLogger {
	return &panicLogger{Logger: &bbolt.DefaultLogger{Logger: log.New(io.Discard, "", 0)}}
}

func (l *panicLogger) Debugf(format string, args ...any) {
	if strings.HasPrefix(format, "Committing transaction") && !strings.Contains(format, "successfully") && l.armed.CompareAndSwap(true, false) {
		panic("injected: bbolt's commit panics")
	}
}

// logBuffer collects what a Store logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
