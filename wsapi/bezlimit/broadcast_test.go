package bezlimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/chat"
)

// A /broadcast pump that falls behind the engine's Feed (ErrLagged) repairs the gap from the
// store: the operator still gets every standard message once, in order within each chat.
func TestBroadcastLagRepair(t *testing.T) {
	v := newEnv(t, envOpt{engine: []chat.Option{chat.WithFeedBuffer(4)}, cfg: func(c *Config) { c.SendQueue = 4096 }})
	sent := make(chan struct{})
	v.h.bc.slowPump = func() { <-sent } // the pump stalls until everything is sent: the Feed overflows
	const rooms, per = 8, 60
	var ids []chat.ID
	for range rooms {
		ids = append(ids, v.newChat(0, 0))
	}
	bc := v.mustDial("/broadcast", "operator:7", nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for r, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := v.e.Send(ctx, id, chat.System(), chat.NewMessage{Text: fmt.Sprintf("%d/%d", r, i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(sent)
	next := make([]int, rooms)
	for got := 0; got < rooms*per; got++ {
		f, _ := bc.until(evMessageAdded, nil)
		r, i, _ := strings.Cut(f.message().Text, "/")
		rn, _ := strconv.Atoi(r)
		in, _ := strconv.Atoi(i)
		if in != next[rn] {
			t.Fatalf("chat %d: message %d, want %d", rn, in, next[rn])
		}
		next[rn]++
	}
	// Nothing more.
	v.api("POST", "/global", map[string]any{"end": true})
	if _, skipped := bc.until(evGlobalUpdated, nil); has(skipped, evMessageAdded, nil) {
		t.Errorf("duplicates: %+v", skipped)
	}
}
