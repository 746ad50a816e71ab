package bolt

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// serveEnv, when set to "variant:path", makes the test binary a child that damages the file
// of an open Store and checks what the Store does (see serveCorruptChild).
const serveEnv = "PARLEY_BOLT_SERVE_CHILD"

func init() {
	if v := os.Getenv(serveEnv); v != "" {
		variant, path, _ := strings.Cut(v, ":")
		if err := serveCorruptChild(variant, path); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		os.Exit(0)
	}
}

// TestDamageWhileServing damages the file under an open Store, in a child process (a fault
// that is not recovered ends it): truncated (reading the map faults), or a page overwritten
// (bbolt panics). Found by a read or by the writer, the damage must be reported as
// ErrCorrupt and chat.ErrUnavailable, logged once, stop every later write, leave reads going,
// and leave the file as it was.
func TestDamageWhileServing(t *testing.T) {
	for _, variant := range []string{"truncate/read", "truncate/write", "overwrite/read", "overwrite/write"} {
		t.Run(variant, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), serveEnv+"="+variant+":"+filepath.Join(t.TempDir(), "chat.db"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "PASS") {
				t.Fatalf("child: %v\n%s", err, out)
			}
		})
	}
}

func serveCorruptChild(variant, path string) error {
	var logs logBuffer
	s, err := Open(path, &Options{CacheEvents: -1, Logger: logs.logger()})
	if err != nil {
		return err
	}
	defer s.Close()
	room := chat.Room{ID: chat.ID{0x06, 1}, Name: "r", CreatedAt: corpusTime}
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(room) }); err != nil {
		return err
	}
	for i := range 20 {
		err := s.Update(ctx, func(tx chat.Tx) error {
			for j := range 50 {
				ev := chat.Event{RoomID: room.ID, Type: chat.EventMessage, Text: corpusText(1, i*50+j), Time: corpusTime}
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	read := func() error {
		return s.View(ctx, func(tx chat.ReadTx) error {
			_, err := tx.Events(room.ID, 1, 1000, false, nil)
			return err
		})
	}
	write := func() error {
		return s.Update(ctx, func(tx chat.Tx) error {
			if _, err := tx.Room(room.ID); err != nil {
				return err
			}
			ev := chat.Event{RoomID: room.ID, Type: chat.EventMessage, Text: "more", Time: corpusTime}
			return tx.Append(&ev)
		})
	}
	if err := read(); err != nil {
		return err
	}

	// The damage.
	how, first, _ := strings.Cut(variant, "/")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	m0, _ := readMeta(f, 0, 0)
	m1, _ := readMeta(f, 1, int64(m0.pageSize))
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	switch how {
	case "truncate": // the pages past the meta pages are gone: reading them faults
		err = f.Truncate(2 * int64(m.pageSize))
	case "overwrite": // the root page says it is another: bbolt panics
		var id [8]byte
		ne.PutUint64(id[:], m.root+1000)
		_, err = f.WriteAt(id[:], int64(m.root)*int64(m.pageSize))
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return err
	}
	damaged, err := stateOf(path)
	if err != nil {
		return err
	}

	corrupt := func(what string, err error) error {
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, chat.ErrUnavailable) {
			return fmt.Errorf("%s after the damage: %v, want an error wrapping ErrCorrupt and chat.ErrUnavailable", what, err)
		}
		return nil
	}
	steps := []func() error{
		func() error { return corrupt("a read", read()) },
		func() error { return corrupt("a write", write()) },
	}
	if first == "write" {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	for range 3 {
		if err := corrupt("a later write", write()); err != nil {
			return err
		}
		if err := s.Update(ctx, func(tx chat.Tx) error { return nil }); !errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("an empty Update after the damage: %v", err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	if n := strings.Count(logs.String(), "writes stopped"); n != 1 {
		return fmt.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if err := s.Close(); err != nil {
		return err
	}
	if after, err := stateOf(path); err != nil || after != damaged {
		return fmt.Errorf("the damaged file was written to: %+v → %+v (%v)", damaged, after, err)
	}
	// And Open refuses it.
	if _, err := Open(path, nil); !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("Open of the damaged file: %v", err)
	}
	return nil
}
