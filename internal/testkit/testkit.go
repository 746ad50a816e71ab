// Package testkit is what the project's tests share: the Stores every engine and surface
// test runs on, and a goroutine leak check. It is for tests only.
package testkit

import (
	"flag"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/memory"
)

// Store names a kind of Store and opens fresh ones.
type Store struct {
	// Name is "memory" or "bolt".
	Name string
	// Open returns a new, empty Store, closed when the test ends.
	Open func(t testing.TB) chat.Store
}

// Stores are the Stores every test runs on: memory, and bolt on a temporary file without fsync
// (these tests are about behaviour; storage/bolt tests durability itself).
var Stores = []Store{
	{"memory", func(t testing.TB) chat.Store {
		s := memory.New()
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"bolt", func(t testing.TB) chat.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "chat.db"), &bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// ForEachStore runs f as a subtest on each of Stores.
func ForEachStore(t *testing.T, f func(t *testing.T, open func(testing.TB) chat.Store)) {
	for _, s := range Stores {
		t.Run(s.Name, func(t *testing.T) { f(t, s.Open) })
	}
}

// CheckLeaks fails the test if goroutines started during it are still running a few seconds
// after its cleanups (registered later, so run earlier) have finished.
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// RapidChecks makes rapid run n checks per property in the rest of t (unless the command line
// set -rapid.checks): for stores where one check costs a database of its own. Tests that use
// it must not run in parallel with other rapid tests of their package.
func RapidChecks(t testing.TB, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	set := false
	flag.Visit(func(v *flag.Flag) { set = set || v.Name == "rapid.checks" })
	if set {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Value.Set(old) })
}
