package chat_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

// benchEngine opens an engine on the in-memory store with the real clock.
func benchEngine(b *testing.B, opts ...chat.Option) *chat.Engine {
	b.Helper()
	store := memory.New()
	e, err := chat.Open(context.Background(), store, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(); store.Close() })
	return e
}

// joinedRooms makes n rooms with one joined user.
func joinedRooms(b *testing.B, e *chat.Engine, n int) ([]chat.ID, chat.ID) {
	u := must[chat.User](b)(e.CreateUser(ctx, chat.NewUser{}))
	rooms := make([]chat.ID, n)
	for i := range rooms {
		r := must[chat.Room](b)(e.CreateRoom(ctx, chat.NewRoom{}))
		must[chat.Membership](b)(e.Join(ctx, r.ID, u.ID, chat.JoinOptions{}))
		rooms[i] = r.ID
	}
	return rooms, u.ID
}

// BenchmarkAppend: Send on the in-memory store. DESIGN.md target: ≤ 400 ns and ≤ 2 allocs.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("rooms=%d", n), func(b *testing.B) {
			e := benchEngine(b)
			rooms, user := joinedRooms(b, e, n)
			msg := chat.NewMessage{Text: "hello, this is a chat message of ordinary length"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Send(ctx, rooms[i%n], user, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead50: read 50 events from the start, middle and end of a room. DESIGN.md target:
// ≤ 1 µs in memory, independent of room size.
func BenchmarkRead50(b *testing.B) {
	for _, size := range []int{1_000, 1_000_000} {
		if size > 1000 && testing.Short() {
			continue
		}
		e := benchEngine(b)
		rooms, user := joinedRooms(b, e, 1)
		msg := chat.NewMessage{Text: "hello, this is a chat message of ordinary length"}
		for i := 0; i < size; i++ {
			if _, err := e.Send(ctx, rooms[0], user, msg); err != nil {
				b.Fatal(err)
			}
		}
		for _, at := range []struct {
			name string
			from uint64
		}{{"start", 1}, {"middle", uint64(size / 2)}, {"end", uint64(size - 49)}} {
			b.Run(fmt.Sprintf("size=%d/%s", size, at.name), func(b *testing.B) {
				buf := make([]chat.Event, 0, 50)
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					evs, err := e.ReadAppend(ctx, buf[:0], rooms[0], chat.ReadOptions{From: at.from, Limit: 50})
					if err != nil || len(evs) != 50 {
						b.Fatal(err, len(evs))
					}
				}
			})
		}
	}
}

// BenchmarkFollowFanout: one event appended, delivered to every in-process follower; ns/op is
// the time until the last follower has it.
func BenchmarkFollowFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("followers=%d", n), func(b *testing.B) {
			e := benchEngine(b)
			rooms, user := joinedRooms(b, e, 1)
			var (
				mu       sync.Mutex
				cond     = sync.NewCond(&mu)
				received int64
			)
			var counted atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				f := must[*chat.Follower](b)(e.Follow(ctx, rooms[0], 0))
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer f.Close()
					for {
						if _, err := f.Next(ctx); err != nil {
							return
						}
						if counted.Add(1)%int64(n) == 0 {
							mu.Lock()
							received++
							cond.Broadcast()
							mu.Unlock()
						}
					}
				}()
			}
			msg := chat.NewMessage{Text: "fan-out"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Send(ctx, rooms[0], user, msg); err != nil {
					b.Fatal(err)
				}
				mu.Lock()
				for received < int64(i+1) {
					cond.Wait()
				}
				mu.Unlock()
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIdleRoom reports the memory an idle room costs in the engine and the in-memory
// store (bytes/room). DESIGN.md target: ≤ 512 B.
func BenchmarkIdleRoom(b *testing.B) {
	e := benchEngine(b)
	before := heapInUse()
	for i := 0; i < b.N; i++ {
		must[chat.Room](b)(e.CreateRoom(ctx, chat.NewRoom{}))
	}
	b.StopTimer()
	b.ReportMetric(float64(heapInUse()-before)/float64(b.N), "bytes/room")
}

// BenchmarkMember reports the memory a joined member costs (bytes/member), in rooms of 10
// members, with the join events. DESIGN.md target: ≤ 96 B.
func BenchmarkMember(b *testing.B) {
	e := benchEngine(b)
	users := make([]chat.ID, 10)
	for i := range users {
		users[i] = must[chat.User](b)(e.CreateUser(ctx, chat.NewUser{})).ID
	}
	rooms := make([]chat.ID, b.N/10+1)
	for i := range rooms {
		rooms[i] = must[chat.Room](b)(e.CreateRoom(ctx, chat.NewRoom{})).ID
	}
	before := heapInUse()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		must[chat.Membership](b)(e.Join(ctx, rooms[i/10], users[i%10], chat.JoinOptions{}))
	}
	b.StopTimer()
	b.ReportMetric(float64(heapInUse()-before)/float64(b.N), "bytes/member")
}
