package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

// TestWriterPanics injects a panic at each place in the writer outside the transactions'
// functions, for a batch of queued transactions, and checks what their waiters get, what is
// kept, what is logged, and that the writer goes on serving. (A panic in a transaction's
// function is TestFailedFnDoesNotPoisonBatch's.)
func TestWriterPanics(t *testing.T) {
	const n = 10
	tests := []struct {
		name string
		// arm makes the batch of n panic; hookOf, if ≥ 0, is the transaction whose
		// AfterCommit function panics instead.
		arm    func(s *Store, pl *panicLogger)
		hookOf int
		// committed: the batch was durable when the panic came, and is acknowledged.
		committed bool
		log       string
	}{
		{name: "bbolt's commit, before writing", arm: func(s *Store, pl *panicLogger) {
			onBatchOf(s, n, hookCommit, func(*bbolt.Tx) { pl.armed.Store(true) })
		}, hookOf: -1, log: "the writer panicked; the transactions of its batch failed"},
		{name: "bbolt's commit, after the meta page (a commit handler)", arm: func(s *Store, pl *panicLogger) {
			onBatchOf(s, n, hookCommit, func(tx *bbolt.Tx) { tx.OnCommit(func() { panic("injected: commit handler") }) })
		}, hookOf: -1, committed: true, log: "the writer panicked after a durable commit"},
		{name: "writer, batch start", arm: func(s *Store, pl *panicLogger) {
			onBatchOf(s, n, hookBatch, func(*bbolt.Tx) { panic("injected: writer") })
		}, hookOf: -1, log: "the writer panicked; the transactions of its batch failed"},
		{name: "writer, before the commit", arm: func(s *Store, pl *panicLogger) {
			onBatchOf(s, n, hookCommit, func(*bbolt.Tx) { panic("injected: writer") })
		}, hookOf: -1, log: "the writer panicked; the transactions of its batch failed"},
		{name: "writer, after the commit", arm: func(s *Store, pl *panicLogger) {
			onBatchOf(s, n, hookCommitted, func(*bbolt.Tx) { panic("injected: writer") })
		}, hookOf: -1, committed: true, log: "the writer panicked after a durable commit"},
		{name: "AfterCommit function", arm: func(*Store, *panicLogger) {}, hookOf: 3, committed: true,
			log: "an AfterCommit function panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			var logs logBuffer
			pl := newPanicLogger()
			s, err := Open(filepath.Join(t.TempDir(), "chat.db"), &Options{Logger: logs.logger(), bboltLogger: pl})
			if err != nil {
				t.Fatal(err)
			}
			putTestRoom(t, s)
			for i := range 3 {
				if err := s.Update(ctx, func(tx chat.Tx) error { _, err := appendText(tx, fmt.Sprint("before ", i)); return err }); err != nil {
					t.Fatal(err)
				}
			}
			tt.arm(s, pl)
			release := make(chan struct{})
			wait := hold(t, s, release) // position 4
			var mu sync.Mutex
			var hooked []int
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = s.Update(ctx, func(tx chat.Tx) error {
						if i == tt.hookOf {
							tx.AfterCommit(func() { panic("injected: AfterCommit") })
						}
						tx.AfterCommit(func() { mu.Lock(); hooked = append(hooked, i); mu.Unlock() })
						_, err := appendText(tx, fmt.Sprint("batch ", i))
						return err
					})
				})
			}
			waitQueued(t, s, n)
			close(release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			wantLast := uint64(4)
			if tt.committed {
				wantLast += n
				for i, err := range errs {
					if err != nil {
						t.Errorf("transaction %d of the committed batch: %v", i, err)
					}
				}
				if slices.Sort(hooked); len(hooked) != n {
					t.Errorf("AfterCommit functions of %v ran, want all %d", hooked, n)
				}
			} else {
				for i, err := range errs {
					if !errors.Is(err, chat.ErrUnavailable) || errors.Is(err, ErrCorrupt) {
						t.Errorf("transaction %d of the failed batch: %v, want an error wrapping chat.ErrUnavailable only", i, err)
					}
				}
				if len(hooked) != 0 {
					t.Errorf("AfterCommit functions of %v ran for a failed batch", hooked)
				}
			}
			if got := lastPos(t, s); got != wantLast {
				t.Errorf("LastPos %d, want %d", got, wantLast)
			}
			log := logs.String()
			if !strings.Contains(log, tt.log) || !strings.Contains(log, "injected") || !strings.Contains(log, "goroutine ") {
				t.Errorf("the log does not say %q with the panic and its stack:\n%s", tt.log, log)
			}
			// The writer goes on.
			var ev chat.Event
			if err := s.Update(ctx, func(tx chat.Tx) (err error) { ev, err = appendText(tx, "after"); return err }); err != nil || ev.Pos != wantLast+1 {
				t.Fatalf("Update after the panic: pos %d, %v; want %d", ev.Pos, err, wantLast+1)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(s.Path(), nil) // checks the file
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if got := lastPos(t, s2); got != wantLast+1 {
				t.Errorf("LastPos after reopening %d, want %d", got, wantLast+1)
			}
			s2.Close()
			waitGoroutines(t, goroutines)
		})
	}
}

// waitGoroutines waits until no more than n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", n, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
