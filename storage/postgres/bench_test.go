package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/pgtest"
)

// Benchmarks, fsync and synchronous_commit on, PostgreSQL on the same machine:
//
//	go test -run '^$' -bench 'Send|PlainTx' -benchtime 3s ./storage/postgres
//
// BenchmarkSend reports durable appends per second through chat.Engine.Send, with 16, 64 and
// 256 senders, across 1,000 rooms (each sender posts to its own share of the rooms in turn)
// and into one room, with the p99 latency of one Send, commits per second and transactions
// per commit. BenchmarkPlainTx is the baseline: the same appends, one plain pgx transaction
// each (lock the room row, insert the event, update the counter, commit), from as many
// goroutines with a connection each. BenchmarkSendNoGroupCommit is BenchmarkSend with one
// transaction per commit, BenchmarkSendNoMemberCache without the writers' member cache, and
// BenchmarkSendWriters1 and 4 with one and four writer goroutines (default DefaultWriters).

var benchSenders = []int{16, 64, 256}

// runSenders runs b.N operations over n goroutines and reports appends/s and p99.
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
	b.ReportMetric(0, "ns/op")
}

var text200 = strings.Repeat("x", 200)

// benchRooms is how many rooms the spread benchmarks use.
const benchRooms = 1000

type layout struct {
	name  string
	rooms int
}

var layouts = []layout{{"rooms=1000", benchRooms}, {"rooms=1", 1}}

// setup makes rooms and senders: sender g is a member of rooms g, g+n, g+2n... (all of them
// when there is one room) and returns, for each sender, its rooms.
func setup(b *testing.B, e *chat.Engine, rooms, n int) ([]chat.ID, [][]chat.ID) {
	users := make([]chat.ID, n)
	own := make([][]chat.ID, n)
	for g := range n {
		u, err := e.CreateUser(ctx, chat.NewUser{})
		if err != nil {
			b.Fatal(err)
		}
		users[g] = u.ID
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for r := range work {
				var members []chat.ID
				if rooms == 1 {
					members = users
				} else {
					for g := r % n; g < n; g += rooms {
						members = append(members, users[g])
					}
				}
				nm := make([]chat.NewMember, len(members))
				for i, u := range members {
					nm[i] = chat.NewMember{User: u}
				}
				room, err := e.CreateRoom(ctx, chat.NewRoom{Members: nm})
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				for _, u := range members {
					g := slices.Index(users, u)
					own[g] = append(own[g], room.ID)
				}
				mu.Unlock()
			}
		})
	}
	for r := range rooms {
		work <- r
	}
	close(work)
	wg.Wait()
	for g := range own {
		if len(own[g]) == 0 { // more senders than rooms: share
			own[g] = own[g%rooms]
		}
	}
	return users, own
}

func BenchmarkSend(b *testing.B) { benchSend(b, nil) }

func BenchmarkSendNoGroupCommit(b *testing.B) { benchSend(b, &Options{noGroupCommit: true}) }

func BenchmarkSendNoMemberCache(b *testing.B) { benchSend(b, &Options{noMemberCache: true}) }

// BenchmarkSendWriters1 and 4 are BenchmarkSend with one and four writer goroutines.
func BenchmarkSendWriters1(b *testing.B) { benchSend(b, &Options{Writers: 1}) }
func BenchmarkSendWriters4(b *testing.B) { benchSend(b, &Options{Writers: 4}) }

func benchSend(b *testing.B, o *Options) {
	for _, l := range layouts {
		for _, n := range benchSenders {
			b.Run(fmt.Sprintf("%s/senders=%d", l.name, n), func(b *testing.B) {
				s := open(b, pgtest.DB(b), o)
				e, err := chat.Open(ctx, s)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				users, own := setup(b, e, l.rooms, n)
				before := s.Stats()
				t0 := time.Now()
				runSenders(b, n, func(g, i int) error {
					rooms := own[g]
					_, err := e.Send(ctx, rooms[i%len(rooms)], users[g], chat.NewMessage{Text: text200})
					return err
				})
				el := time.Since(t0)
				after := s.Stats()
				commits := after.Commits - before.Commits
				b.ReportMetric(float64(commits)/el.Seconds(), "commits/s")
				b.ReportMetric(float64(after.Transactions-before.Transactions)/float64(max(1, commits)), "txs/commit")
			})
		}
	}
}

// BenchmarkPlainTx is the baseline: one plain transaction per append, no group commit.
func BenchmarkPlainTx(b *testing.B) {
	for _, l := range layouts {
		for _, n := range benchSenders {
			b.Run(fmt.Sprintf("%s/senders=%d", l.name, n), func(b *testing.B) {
				dsn := pgtest.DB(b)
				s := open(b, dsn, nil) // for the schema
				rooms := make([]chat.ID, l.rooms)
				err := s.Update(ctx, func(tx chat.Tx) error {
					for i := range rooms {
						rooms[i] = chat.ID{byte(i >> 8), byte(i), 1}
						if err := tx.PutRoom(chat.Room{ID: rooms[i]}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				cfg, err := pgxpool.ParseConfig(dsn)
				if err != nil {
					b.Fatal(err)
				}
				cfg.MaxConns = int32(n)
				pool, err := pgxpool.NewWithConfig(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
				runSenders(b, n, func(g, i int) error {
					room := rooms[(g+i*n)%len(rooms)]
					tx, err := pool.Begin(ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(context.Background())
					var last int64
					var lastTime time.Time
					if err := tx.QueryRow(ctx, `SELECT last_pos, last_time FROM parley_rooms WHERE id = $1 FOR UPDATE`, room).Scan(&last, &lastTime); err != nil {
						return err
					}
					now := time.Now().UTC().Truncate(time.Microsecond)
					if _, err := tx.Exec(ctx, `INSERT INTO parley_events (`+eventCols+`) VALUES ($1, $2, $3, 'message', '', $4, $4, $4, $5, NULL, 0, '', $6, NULL, 0)`,
						room, last+1, chat.ID{byte(g), byte(i >> 16), byte(i >> 8), byte(i)}, chat.ID{}, text200, now); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, `UPDATE parley_rooms SET last_pos = $2, last_time = $3 WHERE id = $1`, room, last+1, now); err != nil {
						return err
					}
					return tx.Commit(ctx)
				})
			})
		}
	}
}

// BenchmarkStoreSend is what the engine's Send does in the store (read the room, read the
// member, append), through Update (hint=no) and through UpdateRooms, which locks the rooms
// of a batch in one round trip (hint=yes).
func BenchmarkStoreSend(b *testing.B) {
	for _, hint := range []bool{false, true} {
		for _, l := range layouts {
			for _, n := range benchSenders {
				b.Run(fmt.Sprintf("hint=%v/%s/senders=%d", hint, l.name, n), func(b *testing.B) {
					s := open(b, pgtest.DB(b), nil)
					e, err := chat.Open(ctx, s)
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					users, own := setup(b, e, l.rooms, n)
					before := s.Stats()
					t0 := time.Now()
					runSenders(b, n, func(g, i int) error {
						room := own[g][i%len(own[g])]
						fn := func(tx chat.Tx) error {
							if _, err := tx.Room(room); err != nil {
								return err
							}
							m, err := tx.MemberByUser(room, users[g])
							if err != nil {
								return err
							}
							ev := chat.Event{RoomID: room, Type: chat.EventMessage, From: m.ID, User: users[g], Text: text200, Time: time.Now()}
							return tx.Append(&ev)
						}
						if hint {
							return s.UpdateRooms(ctx, []chat.ID{room}, fn)
						}
						return s.Update(ctx, fn)
					})
					el := time.Since(t0)
					after := s.Stats()
					commits := after.Commits - before.Commits
					b.ReportMetric(float64(commits)/el.Seconds(), "commits/s")
					b.ReportMetric(float64(after.Transactions-before.Transactions)/float64(max(1, commits)), "txs/commit")
				})
			}
		}
	}
}

// BenchmarkRead50 reads 50 events from the start, middle and end of a room of 10,000 events
// in one View (the room, then its events), with the block cache and without it.
func BenchmarkRead50(b *testing.B) {
	dsn := pgtest.DB(b, pgtest.Fast())
	room := chat.Room{ID: chat.ID{1}}
	s := open(b, dsn, nil)
	if err := s.Update(ctx, func(tx chat.Tx) error { return tx.PutRoom(room) }); err != nil {
		b.Fatal(err)
	}
	const n = 10000
	for done := 0; done < n; done += 1000 {
		err := s.Update(ctx, func(tx chat.Tx) error {
			for range 1000 {
				ev := chat.Event{RoomID: room.ID, Type: chat.EventMessage, Text: text200}
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
	for _, cache := range []int{0, -1} {
		st := open(b, dsn, &Options{CacheEvents: cache})
		for _, from := range []uint64{1, n / 2, n - 49} {
			b.Run(fmt.Sprintf("cache=%v/from=%d", cache == 0, from), func(b *testing.B) {
				var buf []chat.Event
				for b.Loop() {
					err := st.View(ctx, func(tx chat.ReadTx) error {
						if _, err := tx.Room(room.ID); err != nil {
							return err
						}
						var err error
						buf, err = tx.Events(room.ID, from, 50, false, buf[:0])
						return err
					})
					if err != nil || len(buf) != 50 {
						b.Fatal(len(buf), err)
					}
				}
			})
		}
	}
}
