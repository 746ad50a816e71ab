//go:build linux

package bolt

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/parley-chat/chat"
)

// diskFullEnv, when set, makes the test binary a child that fills its file size limit.
const diskFullEnv = "PARLEY_BOLT_DISKFULL_CHILD"

func init() {
	if path := os.Getenv(diskFullEnv); path != "" {
		if err := diskFullChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		os.Exit(0)
	}
}

// TestDiskFull makes real writes fail: a child process lowers its file size limit
// (RLIMIT_FSIZE, so writes past it fail with EFBIG as on a full disk), appends until commits
// fail, checks that every waiter got an error wrapping chat.ErrUnavailable (with the cause's
// text) and nothing was half-written, raises the limit and checks that the store works again
// with gapless positions and every acknowledged append kept.
func TestDiskFull(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+filepath.Join(t.TempDir(), "full.db"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func diskFullChild(path string) error {
	s, err := Open(path, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(testRoom) }); err != nil {
		return err
	}
	big := strings.Repeat("x", 60<<10)
	appendBig := func() (uint64, error) {
		var pos uint64
		err := s.Update(ctx, func(tx chat.Tx) error {
			ev, err := appendText(tx, big)
			pos = ev.Pos
			return err
		})
		return pos, err
	}
	for range 3 {
		if _, err := appendBig(); err != nil {
			return err
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		return err
	}
	lim := old
	lim.Cur = uint64(fi.Size())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	// Concurrent appends: the commits that need the file to grow fail.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed, ok int
	var firstErr, badErr error
	for range 8 {
		wg.Go(func() {
			_, err := appendBig()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				if !errors.Is(err, chat.ErrUnavailable) || !strings.Contains(err.Error(), "too large") {
					badErr = err
				}
			} else {
				ok++
			}
		})
	}
	wg.Wait()
	fmt.Printf("with the limit: %d appends failed (%v), %d succeeded\n", failed, firstErr, ok)
	if failed == 0 {
		return errors.New("no append failed under the file size limit")
	}
	if badErr != nil {
		return fmt.Errorf("a failed append returned %q, want an error wrapping chat.ErrUnavailable that says the file is too large", badErr)
	}
	if !errors.Is(firstErr, syscall.EFBIG) {
		fmt.Println("note: the error does not wrap EFBIG:", firstErr)
	}
	var r chat.Room
	if err := s.View(ctx, func(tx chat.ReadTx) (err error) { r, err = tx.Room(testRoom.ID); return err }); err != nil {
		return err
	}
	if r.LastPos != uint64(3+ok) {
		return fmt.Errorf("LastPos %d after %d acknowledged appends, want %d", r.LastPos, 3+ok, 3+ok)
	}
	// The disk has room again: the store works and positions continue without a gap.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		return err
	}
	pos, err := appendBig()
	if err != nil {
		return fmt.Errorf("append after the limit was lifted: %w", err)
	}
	if pos != r.LastPos+1 {
		return fmt.Errorf("append after the limit got pos %d, want %d", pos, r.LastPos+1)
	}
	if err := s.Close(); err != nil {
		return err
	}
	s2, err := Open(path, nil)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer s2.Close()
	return s2.View(ctx, func(tx chat.ReadTx) error {
		evs, err := tx.Events(testRoom.ID, 1, 1000, false, nil)
		if err != nil {
			return err
		}
		for i, ev := range evs {
			if ev.Pos != uint64(i+1) || ev.Text != big {
				return fmt.Errorf("after reopen: event %d has pos %d, text of %d bytes", i, ev.Pos, len(ev.Text))
			}
		}
		if len(evs) != int(pos) {
			return fmt.Errorf("after reopen: %d events, want %d", len(evs), pos)
		}
		fmt.Printf("after reopen: %d events, gapless\n", len(evs))
		return nil
	})
}
