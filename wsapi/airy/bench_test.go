package airy

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// BenchmarkFanout measures publish → every subscriber over loopback: each iteration sends one
// message from Go to a conversation with n subscribed STOMP connections and waits until every
// connection has read its MESSAGE frame. It reports the p50 and p99 of the per-subscriber
// latency (DESIGN.md: p99 ≤ 2 ms at 100 subscribers, ≤ 12 ms at 1,000).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	f := newFixture(b, nil)
	token, conv := f.authenticate(b)
	ctx := context.Background()

	var (
		mu      sync.Mutex
		sentAt  = map[uint64]time.Time{}
		lats    []time.Duration
		pending sync.WaitGroup
	)
	var readers sync.WaitGroup
	for i := 0; i < n; i++ {
		c := f.dial(b)
		c.connect(token)
		c.subscribe()
		readers.Add(1)
		go func() {
			defer readers.Done()
			key := []byte("\n" + HeaderPosition + ":")
			for {
				_, data, err := c.ws.Read(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				i := bytes.Index(data, key)
				if i < 0 {
					continue
				}
				rest := data[i+len(key):]
				pos, _ := strconv.ParseUint(string(rest[:bytes.IndexByte(rest, '\n')]), 10, 64)
				mu.Lock()
				lats = append(lats, now.Sub(sentAt[pos]))
				mu.Unlock()
				pending.Done()
			}
		}()
		b.Cleanup(func() { c.ws.CloseNow() })
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pending.Add(n)
		mu.Lock()
		t0 := time.Now()
		ev, err := f.e.Send(ctx, conv.Room, chat.System(), chat.NewMessage{Text: "fan-out"})
		if err != nil {
			b.Fatal(err)
		}
		sentAt[ev.Pos] = t0
		mu.Unlock()
		pending.Wait()
	}
	b.StopTimer()
	f.h.Close()
	readers.Wait()
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	}
}
