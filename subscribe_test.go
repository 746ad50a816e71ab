package chat_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
)

// testFormat renders "<pos>:<type>:<text>" and counts its renders.
type testFormat struct {
	chat.Format
	renders atomic.Int64
}

func newTestFormat() *testFormat {
	f := &testFormat{}
	f.Render = func(rc *chat.RenderContext) []chat.Frame {
		f.renders.Add(1)
		ev := rc.Event
		fr := []chat.Frame{{Data: fmt.Appendf(nil, "%d:%s:%s", ev.Pos, ev.Type, ev.Text)}}
		if ev.Type == chat.EventTypingStarted {
			fr[0].NotTo = ev.User // no echo of one's own typing
		}
		return fr
	}
	f.Presence = func(room *chat.Room, u *chat.User, online bool) []byte {
		return fmt.Appendf(nil, "presence:%s:%v", u.Name, online)
	}
	return f
}

// drain takes every ready frame of s.
func drain(t *testing.T, s *chat.Subscription) []string {
	t.Helper()
	var out []string
	for {
		fr, err := s.Next(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(fr) == 0 {
			return out
		}
		for _, f := range fr {
			out = append(out, string(f.Data))
		}
	}
}

// waitFor calls Next until want frames have come, or fails after a while.
func waitFor(t *testing.T, s *chat.Subscription, ready <-chan struct{}, want int) []chat.Frame {
	t.Helper()
	var got []chat.Frame
	deadline := time.After(10 * time.Second)
	for len(got) < want {
		fr, err := s.Next(ctx, nil)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		got = append(got, fr...)
		if len(fr) == 0 {
			select {
			case <-ready:
			case <-deadline:
				t.Fatalf("%d frames of %d", len(got), want)
			}
		}
	}
	return got
}

func notifier() (func(), chan struct{}) {
	ch := make(chan struct{}, 1)
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch
}

// TestSubscribeRendersOncePerFormat: two subscriptions of one format get the same bytes,
// rendered once per event; each gets only what its viewer may see.
func TestSubscribeRendersOncePerFormat(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		checkNoLeak(t)
		w := newWorld(t, newStore)
		e := w.e
		f := newTestFormat()
		na, ra := notifier()
		nb, rb := notifier()
		sa := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 1, Viewer: w.ada.ID, Format: &f.Format, Notify: na}))
		defer sa.Close()
		sb := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 1, Viewer: w.bob.ID, Format: &f.Format, Notify: nb}))
		defer sb.Close()
		bobMember := must[chat.Member](t)(e.MemberByUser(ctx, w.room.ID, w.bob.ID))
		must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "hello"}))                  // 3
		must[chat.Event](t)(e.Send(ctx, w.room.ID, w.ada.ID, chat.NewMessage{Text: "psst", To: bobMember.ID})) // 4
		must[chat.Event](t)(e.StartTyping(ctx, w.room.ID, w.bob.ID, "x"))                                      // 5
		ga := waitFor(t, sa, ra, 5)
		gb := waitFor(t, sb, rb, 4)
		texts := func(fr []chat.Frame) (out []string) {
			for _, f := range fr {
				out = append(out, string(f.Data))
			}
			return out
		}
		want := []string{"1:joined:", "2:joined:", "3:message:hello", "4:message:psst", "5:typing.started:x"}
		if diff := cmp.Diff(want, texts(ga)); diff != "" {
			t.Fatalf("ada (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want[:4], texts(gb)); diff != "" { // bob's own typing is not echoed
			t.Fatalf("bob (-want +got):\n%s", diff)
		}
		if &ga[2].Data[0] != &gb[2].Data[0] {
			t.Error("the two subscriptions got different bytes for one event")
		}
		// The two joins came before the room had subscribers: each subscription read them from
		// the store and rendered them itself. The three live events were rendered once.
		if got := f.renders.Load(); got != 2*2+3 {
			t.Errorf("%d renders, want 7", got)
		}
		// A third user, no member, sees what is for everyone, and not the private message.
		sc := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 3, Viewer: w.outsider.ID, Format: &f.Format}))
		defer sc.Close()
		if diff := cmp.Diff([]string{"3:message:hello", "5:typing.started:x"}, drain(t, sc)); diff != "" {
			t.Fatalf("outsider (-want +got):\n%s", diff)
		}
		for i, fr := range ga {
			if fr.Pos != uint64(i+1) {
				t.Fatalf("frame %d has position %d", i, fr.Pos)
			}
		}
	})
}

// TestSlowSubscriberReadsTheStore: a subscription far behind the ring reads and renders from
// the store and holds nobody up; a fast one in the same room gets everything live.
func TestSlowSubscriberReadsTheStore(t *testing.T) {
	checkNoLeak(t)
	w := newWorld(t, storeFactories[0].Open, chat.WithFollowBuffer(8))
	e := w.e
	f := newTestFormat()
	slow := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 1, Format: &f.Format}))
	defer slow.Close()
	n, ready := notifier()
	fast := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 1, Format: &f.Format, Notify: n}))
	defer fast.Close()
	const sent = 200
	var got []chat.Frame
	for i := range sent {
		must[chat.Event](t)(e.Notice(ctx, w.room.ID, fmt.Sprint(i)))
		if i%10 == 9 {
			got = append(got, waitFor(t, fast, ready, i+3-len(got))...)
		}
	}
	if len(got) != sent+2 {
		t.Fatalf("fast: %d frames", len(got))
	}
	all := drain(t, slow)
	if len(all) != sent+2 {
		t.Fatalf("slow: %d frames", len(all))
	}
	for i, s := range all {
		if !strings.HasPrefix(s, fmt.Sprintf("%d:", i+1)) {
			t.Fatalf("slow frame %d is %q", i, s)
		}
	}
}

// TestSubscribePresence: a second user's subscription tells the first it came, and its Close
// that it went; many sockets of one user count once.
func TestSubscribePresence(t *testing.T) {
	w := newWorld(t, storeFactories[0].Open)
	e := w.e
	f := newTestFormat()
	opts := func(u chat.ID) chat.SubscribeOptions {
		return chat.SubscribeOptions{Viewer: u, Format: &f.Format, Presence: true}
	}
	sa := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, opts(w.ada.ID)))
	defer sa.Close()
	if got := drain(t, sa); len(got) != 0 {
		t.Fatalf("ada alone: %v", got)
	}
	var bobs []*chat.Subscription
	for range 3 {
		bobs = append(bobs, must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, opts(w.bob.ID))))
	}
	if diff := cmp.Diff([]string{"presence:bob:true"}, drain(t, sa)); diff != "" {
		t.Fatalf("ada sees (-want +got):\n%s", diff)
	}
	if got := len(bobs[0].Present(10)); got != 2 {
		t.Fatalf("present: %d users", got)
	}
	for _, b := range bobs {
		b.Close()
	}
	if diff := cmp.Diff([]string{"presence:bob:false"}, drain(t, sa)); diff != "" {
		t.Fatalf("ada sees (-want +got):\n%s", diff)
	}
}

// TestSubscriptionEndsWithItsRoom: deleting the room ends its subscriptions with ErrNotFound.
func TestSubscriptionEndsWithItsRoom(t *testing.T) {
	w := newWorld(t, storeFactories[0].Open)
	f := newTestFormat()
	n, ready := notifier()
	s := must[*chat.Subscription](t)(w.e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{Format: &f.Format, Notify: n}))
	defer s.Close()
	drain(t, s)
	if err := w.e.DeleteRoom(ctx, w.room.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("not told")
	}
	_, err := s.Next(ctx, nil)
	wantErr(t, err, chat.ErrNotFound)
}

// TestSubscribersUnderConcurrentSends: many subscriptions, each driven by its Notify as a
// connection's writer would be, get every event once and in order while several senders
// write.
func TestSubscribersUnderConcurrentSends(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		checkNoLeak(t)
		w := newWorld(t, newStore, chat.WithFollowBuffer(16))
		e := w.e
		f := newTestFormat()
		const subs, senders, each = 40, 4, 50
		var wg sync.WaitGroup
		results := make([][]uint64, subs)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for i := range subs {
			n, ready := notifier()
			s := must[*chat.Subscription](t)(e.Subscribe(ctx, w.room.ID, chat.SubscribeOptions{From: 1, Format: &f.Format, Notify: n}))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				for len(results[i]) < 2+senders*each {
					fr, err := s.Next(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					for _, f := range fr {
						results[i] = append(results[i], f.Pos)
					}
					if len(fr) == 0 {
						if i%7 == 0 {
							time.Sleep(time.Millisecond) // a slow one
						}
						select {
						case <-ready:
						case <-ctx.Done():
							t.Errorf("subscription %d: %d frames", i, len(results[i]))
							return
						}
					}
				}
			}()
		}
		var send sync.WaitGroup
		for j := range senders {
			send.Add(1)
			go func() {
				defer send.Done()
				for k := range each {
					if _, err := e.Notice(ctx, w.room.ID, fmt.Sprintf("%d-%d", j, k)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		send.Wait()
		wg.Wait()
		for i, got := range results {
			for k, p := range got {
				if p != uint64(k+1) {
					t.Fatalf("subscription %d: frame %d at position %d", i, k, p)
				}
			}
		}
	})
}
