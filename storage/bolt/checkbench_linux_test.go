package bolt

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

// BenchmarkOpenCheck measures what the check Open makes of an existing file costs, on files
// of 100k and 1M events (200-byte messages in 16 rooms, written in commits of 64 like group
// commits under load):
//
//	go test -run '^$' -bench BenchmarkOpenCheck -benchtime 5x ./storage/bolt
//
// check is the whole check (walkPages, then bbolt's Tx.Check, and the Parley checks), walk and
// bboltcheck its two passes alone, open and open-skipcheck a whole Open and Close with and
// without it. "warm" runs with the file in the page cache, "cold" drops it from the cache
// before each run (posix_fadvise DONTNEED), so the check reads it from the disk (walk and
// bboltcheck run warm only).
func BenchmarkOpenCheck(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		path := checkBenchFile(b, n)
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		for _, cache := range []string{"warm", "cold"} {
			prefix := fmt.Sprintf("events=%d/%s/", n, cache)
			run := func(name string, f func() error) {
				if cache == "cold" && (name == "walk" || name == "bboltcheck") {
					return // slow, and the whole check says enough
				}
				b.Run(prefix+name, func(b *testing.B) {
					if cache == "warm" {
						warmCache(b, path)
					}
					for b.Loop() {
						if cache == "cold" {
							b.StopTimer()
							dropCache(b, path)
							b.StartTimer()
						}
						if err := f(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
				})
			}
			o := Options{Timeout: time.Second}
			run("check", func() error { _, err := checkFile(path, o); return err })
			run("walk", func() error { return checkPages(path) })
			run("bboltcheck", func() error {
				db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true})
				if err != nil {
					return err
				}
				defer db.Close()
				return db.View(func(tx *bbolt.Tx) error {
					for err := range tx.Check() {
						return err
					}
					return nil
				})
			})
			run("open", func() error {
				s, err := Open(path, &o)
				if err == nil {
					err = s.Close()
				}
				return err
			})
			run("open-skipcheck", func() error {
				o := o
				o.SkipCheck = true
				s, err := Open(path, &o)
				if err == nil {
					err = s.Close()
				}
				return err
			})
		}
	}
}

// checkBenchFile returns a store of n events, built once and kept in the system's temporary
// directory between runs (it takes a while to write).
func checkBenchFile(b *testing.B, n int) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("parley-checkbench-%d.db", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	s, err := Open(tmp, &Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const rooms = 16
	if err := s.Update(ctx, func(tx chat.Tx) error {
		for r := range rooms {
			if err := tx.PutRoom(chat.Room{ID: chat.ID{0x06, byte(r)}, Name: fmt.Sprint("room", r)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for done := 0; done < n; done += 64 {
		err := s.Update(ctx, func(tx chat.Tx) error {
			for i := range min(64, n-done) {
				ev := chat.Event{RoomID: chat.ID{0x06, byte((done + i) % rooms)}, ID: chat.ID{byte(i), 1, 2, 3}, Type: chat.EventMessage,
					From: chat.ID{4}, User: chat.ID{5}, Text: text200, Time: t0}
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// warmCache reads the file, so that its pages are in the page cache.
func warmCache(b *testing.B, path string) {
	if _, err := os.ReadFile(path); err != nil {
		b.Fatal(err)
	}
}

// dropCache drops the file's pages from the page cache.
func dropCache(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		b.Fatal(e)
	}
}
