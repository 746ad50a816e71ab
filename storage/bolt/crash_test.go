package bolt

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

// soak runs the crash-safety test for longer:
//
//	go test ./storage/bolt -run CrashSafety -v -args -soak=10m
var soak = flag.Duration("soak", 0, "run the crash-safety test for this long (default: a few seconds)")

// crashEnv, when set, makes the test binary a crash-test child appending to the file it names.
const crashEnv = "PARLEY_BOLT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	code := m.Run()
	closeBigRoom()
	os.Exit(code)
}

var crashRooms = []chat.ID{{0x01, 1}, {0x01, 2}, {0x01, 3}}

// crashText is the content of an event: its tag and filler derived from it, so that the parent
// can check the whole text.
func crashText(tag string) string {
	return tag + "|" + strings.Repeat(string(rune('a'+len(tag)%26)), 100+len(tag))
}

// crashChild appends from many goroutines until it is killed, and writes one line
// "room pos tag" to stdout for each acknowledged append.
func crashChild(path string) {
	s, err := Open(path, &Options{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	err = s.Update(ctx, func(tx chat.Tx) error {
		for i, id := range crashRooms {
			if _, err := tx.Room(id); err == nil {
				continue
			}
			if err := tx.PutRoom(chat.Room{ID: id, Name: fmt.Sprint("crash", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child rooms:", err)
		os.Exit(2)
	}
	run := os.Getpid()
	var mu sync.Mutex
	out := os.Stdout
	if _, err := out.WriteString("ready\n"); err != nil {
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				room := g % len(crashRooms)
				tag := fmt.Sprintf("%d-%d-%d", run, g, i)
				var pos uint64
				err := s.Update(ctx, func(tx chat.Tx) error {
					ev := chat.Event{RoomID: crashRooms[room], Type: chat.EventMessage, Text: crashText(tag), Time: time.Now()}
					err := tx.Append(&ev)
					pos = ev.Pos
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(2)
				}
				line := fmt.Sprintf("%d %d %s\n", room, pos, tag)
				mu.Lock()
				_, err = out.WriteString(line) // one write: a pipe keeps it whole
				mu.Unlock()
				if err != nil {
					os.Exit(2)
				}
			}
		})
	}
	wg.Wait()
}

type crashAck struct {
	room int
	pos  uint64
}

// TestCrashSafety kills a child that appends with SIGKILL at random moments and checks after
// each kill that the file opens cleanly, every acknowledged event is at its position with its
// content, and positions are gapless.
func TestCrashSafety(t *testing.T) {
	if testing.Short() && *soak == 0 {
		t.Skip("-short")
	}
	budget := 6 * time.Second
	if *soak > 0 {
		budget = *soak
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	acked := map[crashAck]string{}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	deadline := time.Now().Add(budget)
	kills, total := 0, 0
	for kills < 5 || time.Now().Before(deadline) {
		n := crashRound(t, path, time.Duration(rnd.IntN(150_000))*time.Microsecond, acked)
		total += n
		kills++
		verifyCrashFile(t, path, acked)
		if t.Failed() {
			t.Fatalf("failed after kill %d", kills)
		}
	}
	if total == 0 {
		t.Fatal("the child never acknowledged an append")
	}
	t.Logf("%d kills, %d acknowledged appends checked", kills, total)
}

// crashRound runs a child, kills it after delay, and records what it acknowledged.
func crashRound(t *testing.T, path string, delay time.Duration, acked map[crashAck]string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start: %q, %v", line, err)
	}
	killed := make(chan struct{})
	go func() {
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		close(killed)
	}()
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // the child is dead; a partial last line was never acknowledged to us
		}
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad line from child: %q", line)
		}
		room, _ := strconv.Atoi(f[0])
		pos, _ := strconv.ParseUint(f[1], 10, 64)
		k := crashAck{room, pos}
		if prev, ok := acked[k]; ok {
			t.Fatalf("room %d position %d acknowledged twice: %s and %s", room, pos, prev, f[2])
		}
		acked[k] = f[2]
		n++
	}
	<-killed
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended by itself: %v", err)
	}
	return n
}

func verifyCrashFile(t *testing.T, path string, acked map[crashAck]string) {
	t.Helper()
	// bbolt's own consistency check.
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt open after kill: %v", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatalf("bbolt check after kill: %v", err)
	}

	s, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	last := make([]uint64, len(crashRooms))
	err = s.View(ctx, func(tx chat.ReadTx) error {
		for i, id := range crashRooms {
			r, err := tx.Room(id)
			if err != nil {
				return err
			}
			last[i] = r.LastPos
			var buf []chat.Event
			for from := uint64(1); from <= r.LastPos; from += uint64(len(buf)) {
				buf, err = tx.Events(id, from, 1000, false, buf[:0])
				if err != nil {
					return err
				}
				for j, ev := range buf {
					if ev.Pos != from+uint64(j) {
						return fmt.Errorf("room %d: position %d where %d was expected: gap", i, ev.Pos, from+uint64(j))
					}
					tag, _, _ := strings.Cut(ev.Text, "|")
					if ev.Text != crashText(tag) {
						return fmt.Errorf("room %d position %d: corrupt text %q", i, ev.Pos, ev.Text)
					}
					if want, ok := acked[crashAck{i, ev.Pos}]; ok && want != tag {
						return fmt.Errorf("room %d position %d: %s, acknowledged %s", i, ev.Pos, tag, want)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, tag := range acked {
		if k.pos > last[k.room] {
			t.Errorf("acknowledged %s at room %d position %d is lost (last position %d)", tag, k.room, k.pos, last[k.room])
		}
	}
}
