package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/storagetest"
	bbolt "go.etcd.io/bbolt"
)

var ctx = context.Background()

var testRoom = chat.Room{ID: chat.ID{0x01, 0x9a}, Name: "room", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}

func putTestRoom(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(testRoom) }); err != nil {
		t.Fatal(err)
	}
}

func appendText(tx chat.Tx, text string) (chat.Event, error) {
	ev := chat.Event{RoomID: testRoom.ID, Type: chat.EventMessage, Text: text, Time: time.Now()}
	err := tx.Append(&ev)
	return ev, err
}

func lastPos(t testing.TB, s chat.Store) uint64 {
	t.Helper()
	var r chat.Room
	if err := s.View(ctx, func(tx chat.ReadTx) (err error) { r, err = tx.Room(testRoom.ID); return err }); err != nil {
		t.Fatal(err)
	}
	return r.LastPos
}

// hold makes the writer run a transaction that waits until release is closed, so that the
// Updates started meanwhile queue up and form the next batch. It returns once the writer is
// held, and a function that waits for the held Update's result.
func hold(t *testing.T, s *Store, release <-chan struct{}) (wait func() error) {
	held := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- s.Update(ctx, func(tx chat.Tx) error {
			close(held)
			<-release
			_, err := appendText(tx, "held")
			return err
		})
	}()
	<-held
	return func() error { return <-res }
}

// waitQueued waits until n Updates are queued behind the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		q := len(s.queue)
		s.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// countCommits counts commit attempts through the test hook; fail, when it returns non-nil,
// fails them.
func countCommits(s *Store, fail func() error) *atomic.Int64 {
	var n atomic.Int64
	s.beforeCommit = func() error {
		n.Add(1)
		if fail != nil {
			return fail()
		}
		return nil
	}
	return &n
}

func TestGroupCommit(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	commits := countCommits(s, nil)
	release := make(chan struct{})
	wait := hold(t, s, release)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hooks []uint64
	pos := make([]uint64, n)
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx chat.Tx) error {
				ev, err := appendText(tx, fmt.Sprint(i))
				pos[i] = ev.Pos
				tx.AfterCommit(func() { mu.Lock(); hooks = append(hooks, ev.Pos); mu.Unlock() })
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, n)
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if c := commits.Load(); c != 2 {
		t.Errorf("%d commits for 1 held + %d queued Updates, want 2", c, n)
	}
	for i := 1; i < len(hooks); i++ {
		if hooks[i] != hooks[i-1]+1 {
			t.Fatalf("AfterCommit out of order: %v", hooks)
		}
	}
	if len(hooks) != n || lastPos(t, s) != n+1 {
		t.Errorf("%d hooks, LastPos %d; want %d, %d", len(hooks), lastPos(t, s), n, n+1)
	}
}

func TestFailedFnDoesNotPoisonBatch(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	commits := countCommits(s, nil)
	release := make(chan struct{})
	wait := hold(t, s, release)

	errDirty, errClean := errors.New("dirty"), errors.New("clean")
	var runs [6]atomic.Int32
	type result struct {
		err   error
		pos   uint64
		panic any
		hook  bool
	}
	results := make([]result, 6)
	fns := []func(tx chat.Tx, i int) error{
		func(tx chat.Tx, i int) error { ev, err := appendText(tx, "a"); results[i].pos = ev.Pos; return err },
		func(tx chat.Tx, i int) error { _, _ = appendText(tx, "b"); return errDirty },
		func(tx chat.Tx, i int) error { return errClean },
		func(tx chat.Tx, i int) error { ev, err := appendText(tx, "d"); results[i].pos = ev.Pos; return err },
		func(tx chat.Tx, i int) error { _, _ = appendText(tx, "e"); panic("e panics") },
		func(tx chat.Tx, i int) error { ev, err := appendText(tx, "f"); results[i].pos = ev.Pos; return err },
	}
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			defer func() { results[i].panic = recover() }()
			results[i].err = s.Update(ctx, func(tx chat.Tx) error {
				runs[i].Add(1)
				tx.AfterCommit(func() { results[i].hook = true })
				return fn(tx, i)
			})
		})
		waitQueued(t, s, i+1) // keep the batch in this order
	}
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := []result{
		{pos: 2, hook: true},
		{err: errDirty},
		{err: errClean},
		{pos: 3, hook: true},
		{panic: "e panics"},
		{pos: 4, hook: true},
	}
	for i, w := range want {
		g := results[i]
		if !errors.Is(g.err, w.err) || (w.err == nil && g.err != nil && w.panic == nil) || g.pos != w.pos || g.panic != w.panic || g.hook != w.hook {
			t.Errorf("fn %d: got %+v, want %+v", i, g, w)
		}
	}
	if c := commits.Load(); c != 2 {
		t.Errorf("%d commits, want 2 (held + one batch)", c)
	}
	// The dirty failures made the batch rerun: a ran three times (first pass, after b, after
	// e), d twice; c, being clean, once.
	if r := runs[0].Load(); r != 3 {
		t.Errorf("fn a ran %d times, want 3", r)
	}
	if r := runs[2].Load(); r != 1 {
		t.Errorf("fn c ran %d times, want 1", r)
	}
	snap, err := storagetest.Dump(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, ev := range snap.Rooms[0].Events {
		texts = append(texts, ev.Text)
	}
	if got := strings.Join(texts, ","); got != "held,a,d,f" {
		t.Errorf("transcript %s, want held,a,d,f", got)
	}
}

func TestCommitFailure(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	for i := range 3 {
		if err := s.Update(ctx, func(tx chat.Tx) error { _, err := appendText(tx, fmt.Sprint(i)); return err }); err != nil {
			t.Fatal(err)
		}
	}
	errDisk := errors.New("no space left on device (injected)")
	var failing atomic.Bool
	failing.Store(true)
	countCommits(s, func() error {
		if failing.Load() {
			return errDisk
		}
		return nil
	})
	release := make(chan struct{})
	wait := hold(t, s, release)
	const n = 20
	var wg sync.WaitGroup
	var hooks atomic.Int32
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx chat.Tx) error {
				tx.AfterCommit(func() { hooks.Add(1) })
				_, err := appendText(tx, fmt.Sprint("lost", i))
				return err
			})
			if !errors.Is(err, errDisk) || !errors.Is(err, chat.ErrUnavailable) {
				t.Errorf("Update in a failed commit returned %v, want the write error wrapping chat.ErrUnavailable", err)
			}
		})
	}
	waitQueued(t, s, n)
	close(release)
	if err := wait(); !errors.Is(err, errDisk) {
		t.Errorf("held Update: %v", err)
	}
	wg.Wait()
	if hooks.Load() != 0 {
		t.Errorf("%d AfterCommit functions ran for failed commits", hooks.Load())
	}
	// Nothing was kept, no position consumed, and the store works once the disk does.
	if p := lastPos(t, s); p != 3 {
		t.Errorf("LastPos after failed commits = %d, want 3", p)
	}
	failing.Store(false)
	var ev chat.Event
	if err := s.Update(ctx, func(tx chat.Tx) (err error) { ev, err = appendText(tx, "after"); return err }); err != nil {
		t.Fatal(err)
	}
	if ev.Pos != 4 {
		t.Errorf("append after failed commits got pos %d, want 4", ev.Pos)
	}
	// And after a reopen.
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if p := lastPos(t, s2); p != 4 {
		t.Errorf("LastPos after reopen = %d, want 4", p)
	}
}

func TestCloseWhileWaiting(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	release := make(chan struct{})
	wait := hold(t, s, release)
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.Update(ctx, func(tx chat.Tx) error { _, err := appendText(tx, fmt.Sprint(i)); return err })
		}()
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !s.closed.Load() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := wait(); err != nil {
		t.Errorf("Update under way at Close: %v", err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, chat.ErrClosed) {
			t.Errorf("queued Update at Close: %v, want ErrClosed", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx chat.Tx) error { return nil }); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	// The acknowledged write survived.
	s2, err := Open(s.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if p := lastPos(t, s2); p != 1 {
		t.Errorf("LastPos after reopen = %d, want 1 (the held append)", p)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	s := openTemp(t, nil)
	putTestRoom(t, s)
	release := make(chan struct{})
	wait := hold(t, s, release)
	cctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{}, 1)
	res := make(chan error, 1)
	go func() {
		res <- s.Update(cctx, func(tx chat.Tx) error { ran <- struct{}{}; return nil })
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled queued Update: %v", err)
	}
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	// One more commit to be sure the writer has passed the cancelled request.
	if err := s.Update(ctx, func(tx chat.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Error("the cancelled Update's fn ran")
	default:
	}
}

func TestOpenLocked(t *testing.T) {
	s := openTemp(t, nil)
	start := time.Now()
	_, err := Open(s.Path(), &Options{Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v, want a lock error", err)
	}
	t.Logf("second Open: %v", err)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second Open took %v", d)
	}
	// The first store is unaffected.
	putTestRoom(t, s)
}

func TestOpenBadFile(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, fill func(path string)) string {
		p := filepath.Join(dir, name)
		fill(p)
		return p
	}
	write := func(b []byte) func(string) {
		return func(p string) {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	bboltWith := func(fn func(tx *bbolt.Tx) error) func(string) {
		return func(p string) {
			db, err := bbolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(fn); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}
	}
	validStore := func(p string) {
		s, err := Open(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		putTestRoom(t, s)
		s.Close()
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	cases := []struct {
		name, path, want string
		corrupt          bool // the error wraps ErrCorrupt
	}{
		{"text", mk("text", write([]byte("hello, this is not a database\n"))), "not a valid bbolt database", false},
		{"random", mk("random", write(random)), "not a valid bbolt database", false},
		{"small", mk("small", write([]byte{1, 2, 3})), "", false},
		{"foreign bbolt", mk("foreign", bboltWith(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("widgets"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		})), "not a Parley store", false},
		{"other format", mk("format", bboltWith(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket(bMeta)
			if err != nil {
				return err
			}
			return b.Put(kFormat, []byte("parley-bolt 99"))
		})), "format", false},
		{"truncated store", mk("truncated", func(p string) {
			s, err := Open(p, &Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			putTestRoom(t, s)
			for range 20 {
				if err := s.Update(ctx, func(tx chat.Tx) error {
					for range 100 {
						if _, err := appendText(tx, strings.Repeat("t", 200)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			if err := os.Truncate(p, int64(4*os.Getpagesize())); err != nil {
				t.Fatal(err)
			}
		}), "", true},
		{"missing bucket", mk("missing", func(p string) {
			validStore(p)
			db, err := bbolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bUsers) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}), `bucket "users" is missing`, true},
		{"one corrupt meta", mk("onemeta", func(p string) {
			validStore(p)
			b, _ := os.ReadFile(p)
			b[os.Getpagesize()+16+20] ^= 0x40 // in meta page 1's root page ID
			write(b)(p)
		}), "meta page 1 fails its checksum", true},
		{"corrupt metas", mk("corrupt", func(p string) {
			validStore(p)
			b, _ := os.ReadFile(p)
			pageSize := os.Getpagesize()
			for _, off := range []int{16, pageSize + 16} { // inside both meta pages
				for i := range 32 {
					b[off+i] ^= 0xff
				}
			}
			write(b)(p)
		}), "not a valid bbolt database", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.path)
			fi, _ := os.Stat(tc.path)
			s, err := Open(tc.path, &Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded on a %s file", tc.name)
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("Open error %q: want it to name the file and say %q", err, tc.want)
			}
			if errors.Is(err, ErrCorrupt) != tc.corrupt {
				t.Errorf("Open error %q: wraps ErrCorrupt: %v, want %v", err, !tc.corrupt, tc.corrupt)
			}
			after, _ := os.ReadFile(tc.path)
			fi2, _ := os.Stat(tc.path)
			if !bytes.Equal(before, after) || fi.ModTime() != fi2.ModTime() || fi.Size() != fi2.Size() {
				t.Errorf("Open modified the file: sha256 %x → %x, size %d → %d", sha256.Sum256(before), sha256.Sum256(after), fi.Size(), fi2.Size())
			}
		})
	}
}

// TestOpenEmptyBbolt: a bbolt file that holds nothing (a store whose creation was cut short
// after bbolt made the file) is laid out, not refused.
func TestOpenEmptyBbolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putTestRoom(t, s)
}

func TestReopen(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Options
	}{{"defaults", nil}, {"NoFreelistSync", &Options{NoFreelistSync: true}}} {
		t.Run(tc.name, func(t *testing.T) { testReopen(t, tc.o) })
	}
}

func testReopen(t *testing.T, o *Options) {
	s := openTemp(t, o)
	putTestRoom(t, s)
	u := chat.User{ID: chat.ID{7}, Name: "u", Attributes: map[string]string{"a": "b"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutMember(chat.Member{ID: chat.ID{8}, RoomID: testRoom.ID, UserID: u.ID, State: chat.Joined, JoinedAt: u.CreatedAt}); err != nil {
			return err
		}
		for i := range 100 {
			if _, err := appendText(tx, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		return tx.SetRevision(testRoom.ID, 1, 2)
	}); err != nil {
		t.Fatal(err)
	}
	before, err := storagetest.Dump(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Path(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after, err := storagetest.Dump(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Equal(after) {
		t.Error("store changed across a reopen")
	}
}

func TestPanicInView(t *testing.T) {
	s := openTemp(t, nil)
	func() {
		defer func() { _ = recover() }()
		_ = s.View(ctx, func(tx chat.ReadTx) error { panic("boom") })
	}()
	// The read transaction was released: Close does not hang.
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs after a View panicked")
	}
}

// TestNoLeak checks that the writer goroutine ends with Close.
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		s, err := Open(filepath.Join(t.TempDir(), "x.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		putTestRoom(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
