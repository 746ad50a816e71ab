package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

// Benchmarks (fsync on unless the name says otherwise):
//
//	go test -run '^$' -bench . -benchtime 2s ./storage/bolt
//
// BenchmarkSend reports durable appends per second through chat.Engine.Send and the p99
// latency of one Send; BenchmarkBboltUpdate is the baseline of one bbolt db.Update (one
// commit, one fsync) per append, with the same senders. BenchmarkRead50 reads 50 events from
// the start, middle and end of a room of 1M events (10k under -short), through the read cache
// (warm: the same 50 events again and again) and without it (BenchmarkRead50Uncached: every
// read decodes from the file). BenchmarkFileSize
// reports the file's bytes per event of 200 bytes of text.

var senderCounts = []int{1, 16, 64, 256}

// runSenders runs b.N operations over n goroutines and reports ops/s and the p99 latency.
func runSenders(b *testing.B, n int, op func(sender, i int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range n {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(g, int(i)); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(0, "ns/op") // per-op time is meaningless with many senders
}

var text200 = strings.Repeat("x", 200)

func BenchmarkSend(b *testing.B) {
	benchSend(b, nil)
}

// BenchmarkSendNoFreelistSync is BenchmarkSend with Options.NoFreelistSync.
func BenchmarkSendNoFreelistSync(b *testing.B) {
	benchSend(b, &Options{NoFreelistSync: true})
}

// BenchmarkSendNoSync is BenchmarkSend without fsync: the CPU ceiling of the write path.
func BenchmarkSendNoSync(b *testing.B) {
	benchSend(b, &Options{NoSync: true})
}

func benchSend(b *testing.B, o *Options) {
	for _, n := range senderCounts {
		b.Run(fmt.Sprintf("senders=%d", n), func(b *testing.B) {
			s := openTemp(b, o)
			e, err := chat.Open(ctx, s)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			room, err := e.CreateRoom(ctx, chat.NewRoom{})
			if err != nil {
				b.Fatal(err)
			}
			users := make([]chat.ID, n)
			for i := range users {
				u, err := e.CreateUser(ctx, chat.NewUser{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Join(ctx, room.ID, u.ID, chat.JoinOptions{}); err != nil {
					b.Fatal(err)
				}
				users[i] = u.ID
			}
			before := s.Stats()
			runSenders(b, n, func(g, _ int) error {
				_, err := e.Send(ctx, room.ID, users[g], chat.NewMessage{Text: text200})
				return err
			})
			after := s.Stats()
			b.ReportMetric(float64(after.Transactions-before.Transactions)/float64(after.Commits-before.Commits), "txs/commit")
		})
	}
}

func BenchmarkBboltUpdate(b *testing.B) {
	for _, n := range senderCounts {
		b.Run(fmt.Sprintf("senders=%d", n), func(b *testing.B) {
			db, err := bbolt.Open(filepath.Join(b.TempDir(), "base.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			name := []byte("events")
			if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
				b.Fatal(err)
			}
			runSenders(b, n, func(_, _ int) error {
				return db.Update(func(tx *bbolt.Tx) error {
					bk := tx.Bucket(name)
					bk.FillPercent = 1.0
					var last uint64
					if k, _ := bk.Cursor().Last(); k != nil {
						last = binary.BigEndian.Uint64(k)
					}
					return bk.Put(binary.BigEndian.AppendUint64(nil, last+1), []byte(text200))
				})
			})
		})
	}
}

// bigRoom is a store holding one room of many events, built once per test binary.
var bigRoom struct {
	once sync.Once
	dir  string
	s    *Store
	n    uint64
	err  error
}

func openBigRoom(b *testing.B) (*Store, uint64) {
	bigRoom.once.Do(func() {
		n := 1_000_000
		if testing.Short() {
			n = 10_000
		}
		bigRoom.dir, bigRoom.err = os.MkdirTemp("", "parley-bench")
		if bigRoom.err != nil {
			return
		}
		s, err := Open(filepath.Join(bigRoom.dir, "big.db"), &Options{NoSync: true, MaxBatch: 1})
		if err != nil {
			bigRoom.err = err
			return
		}
		if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(testRoom) }); err != nil {
			bigRoom.err = err
			return
		}
		t0 := time.Now()
		for done := 0; done < n; done += 20_000 {
			err := s.Update(ctx, func(tx chat.Tx) error {
				for i := range min(20_000, n-done) {
					ev := chat.Event{RoomID: testRoom.ID, ID: chat.ID{byte(i)}, Type: chat.EventMessage,
						From: chat.ID{1}, User: chat.ID{2}, Text: text200[:100+i%100], Time: t0}
					if err := tx.Append(&ev); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				bigRoom.err = err
				return
			}
		}
		bigRoom.s, bigRoom.n = s, uint64(n)
	})
	if bigRoom.err != nil {
		b.Fatal(bigRoom.err)
	}
	return bigRoom.s, bigRoom.n
}

func closeBigRoom() {
	if bigRoom.s != nil {
		bigRoom.s.Close()
	}
	if bigRoom.dir != "" {
		os.RemoveAll(bigRoom.dir)
	}
}

func BenchmarkRead50(b *testing.B) {
	s, n := openBigRoom(b)
	benchRead50(b, s, n)
}

// BenchmarkRead50Uncached is BenchmarkRead50 with the read cache off: every read decodes
// from the file.
func BenchmarkRead50Uncached(b *testing.B) {
	big, n := openBigRoom(b)
	cache := big.cache
	big.cache = nil
	defer func() { big.cache = cache }()
	benchRead50(b, big, n)
}

func benchRead50(b *testing.B, s *Store, n uint64) {
	for _, at := range []struct {
		name string
		from uint64
	}{{"start", 1}, {"middle", n / 2}, {"end", n - 49}} {
		b.Run(fmt.Sprintf("events=%d/%s", n, at.name), func(b *testing.B) {
			buf := make([]chat.Event, 0, 50)
			b.ReportAllocs()
			for b.Loop() {
				err := s.View(context.Background(), func(tx chat.ReadTx) (err error) {
					buf, err = tx.Events(testRoom.ID, at.from, 50, false, buf[:0])
					return err
				})
				if err != nil || len(buf) != 50 {
					b.Fatal(len(buf), err)
				}
			}
		})
	}
	b.Run(fmt.Sprintf("events=%d/backward-end", n), func(b *testing.B) {
		buf := make([]chat.Event, 0, 50)
		b.ReportAllocs()
		for b.Loop() {
			err := s.View(context.Background(), func(tx chat.ReadTx) (err error) {
				buf, err = tx.Events(testRoom.ID, n, 50, true, buf[:0])
				return err
			})
			if err != nil || len(buf) != 50 {
				b.Fatal(len(buf), err)
			}
		}
	})
}

func BenchmarkFileSize(b *testing.B) {
	const n = 100_000
	for _, perCommit := range []int{1000, 64} {
		b.Run(fmt.Sprintf("per-commit=%d", perCommit), func(b *testing.B) {
			for b.Loop() {
				s := openTemp(b, &Options{NoSync: true})
				if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(testRoom) }); err != nil {
					b.Fatal(err)
				}
				for done := 0; done < n; done += perCommit {
					err := s.Update(ctx, func(tx chat.Tx) error {
						for range perCommit {
							ev := chat.Event{RoomID: testRoom.ID, ID: chat.ID{1, 2, 3}, Type: chat.EventMessage,
								From: chat.ID{4}, User: chat.ID{5}, Text: text200, Time: time.Now()}
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
				s.Close()
				fi, err := os.Stat(s.Path())
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(fi.Size())/n, "file-bytes/event")
			}
		})
	}
}

// BenchmarkCodec compares the record encoding used (encoding/binary) with JSON for a typical
// message event: bytes per record and time to encode and decode it.
func BenchmarkCodec(b *testing.B) {
	ev := chat.Event{RoomID: chat.ID{1}, Pos: 12345, ID: chat.ID{2, 3}, Type: chat.EventMessage, From: chat.ID{4},
		User: chat.ID{5}, Text: text200, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		var out chat.Event
		b.ReportAllocs()
		for b.Loop() {
			buf = appendEvent(buf[:0], &ev)
			if err := decodeEvent(&out, ev.RoomID, ev.Pos, buf, false); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "bytes/record")
	})
	b.Run("json", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			buf, err = json.Marshal(&ev)
			if err != nil {
				b.Fatal(err)
			}
			var out chat.Event
			if err := json.Unmarshal(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "bytes/record")
	})
}
