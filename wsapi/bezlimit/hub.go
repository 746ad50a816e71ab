package bezlimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
)

// hub fans one room's events out to the room's /chat connections: one engine Follower and
// one goroutine per room with connections, each event translated and encoded once, then
// queued (without blocking) to every connection that may see it.
type hub struct {
	h    *Handler
	room chat.ID
	refs int // guarded by h.hubsMu

	f      *chat.Follower
	cancel context.CancelFunc

	mu     sync.Mutex // held by dispatch while it queues, and by (un)register
	next   uint64     // position of the next event to dispatch
	err    error      // set once the follower failed
	subs   map[*conn]struct{}
	online map[chat.ID]int // engine user -> open sockets
}

func (hb *hub) lock()   { hb.mu.Lock() }
func (hb *hub) unlock() { hb.mu.Unlock() }

// acquireHub returns the room's hub, starting it if need be.
func (h *Handler) acquireHub(room chat.ID) (*hub, error) {
	h.hubsMu.Lock()
	defer h.hubsMu.Unlock()
	if hb := h.hubs[room]; hb != nil {
		hb.refs++
		return hb, nil
	}
	if h.ctx.Err() != nil {
		return nil, fmt.Errorf("bezlimit: shutting down: %w", chat.ErrClosed)
	}
	f, err := h.e.Follow(h.ctx, room, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(h.ctx)
	hb := &hub{h: h, room: room, refs: 1, f: f, cancel: cancel,
		next: f.Pos(), subs: make(map[*conn]struct{}), online: make(map[chat.ID]int)}
	h.hubs[room] = hb
	h.wg.Add(1)
	go hb.run(ctx)
	return hb, nil
}

// releaseHub drops a reference; the last one stops the hub.
func (h *Handler) releaseHub(hb *hub) {
	h.hubsMu.Lock()
	defer h.hubsMu.Unlock()
	hb.refs--
	if hb.refs == 0 {
		if h.hubs[hb.room] == hb {
			delete(h.hubs, hb.room)
		}
		hb.cancel()
		_ = hb.f.Close()
	}
}

func (hb *hub) run(ctx context.Context) {
	defer hb.h.wg.Done()
	// A panic here ends the hub as a failed follower does: its connections are closed and
	// may resume by position, on a fresh hub.
	defer hb.h.contain("chat hub", func() { hb.fail(errHubPanic) })
	tr := newTranslator(hb.h, hb.room)
	for {
		ev, err := hb.f.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				hb.fail(err)
			}
			return
		}
		if hook := hb.h.testHookHub; hook != nil {
			hook(&ev)
		}
		frames := tr.translate(ctx, &ev)
		hb.dispatch(ev.Pos, frames)
	}
}

// errHubPanic is the error of a hub that recovered from a panic.
var errHubPanic = errors.New("bezlimit: the chat's hub failed")

// fail ends every connection of a hub whose follower failed (room deleted, engine closed,
// store unavailable, a panic) and takes the hub out of the map so that a later connection
// starts afresh.
func (hb *hub) fail(err error) {
	hb.h.hubsMu.Lock()
	if hb.h.hubs[hb.room] == hb {
		delete(hb.h.hubs, hb.room)
	}
	hb.h.hubsMu.Unlock()
	code, reason := closeFor(hb.h, err)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		hb.h.chats.Delete(hb.room)
	case errors.Is(err, errHubPanic), errors.Is(err, chat.ErrUnavailable):
	default:
		code, reason = closeGone, "engine closed"
	}
	hb.lock()
	hb.err = err
	subs := hb.subs
	hb.subs = map[*conn]struct{}{}
	hb.unlock()
	for c := range subs {
		c.close(code, reason)
	}
}

// dispatch queues the frames of the event at pos to every connection that expects pos.
func (hb *hub) dispatch(pos uint64, frames []*frame) {
	hb.lock()
	defer hb.unlock()
	for c := range hb.subs {
		if c.next > pos {
			continue // it read this event from the store while catching up
		}
		if c.next < pos { // cannot happen: positions are gapless and connections join at next
			c.close(websocket.StatusInternalError, "internal error: position gap")
			continue
		}
		c.next = pos + 1
		for _, f := range frames {
			if c.wants(f) && !c.enqueue(f) {
				break
			}
		}
	}
	hb.next = pos + 1
}

// register adds a connection that has received every event before p. It reports false,
// without registering, when p < next: the connection must first read [p, next) from the
// store. p > next is fine: the hub skips for it what it has read already.
func (hb *hub) register(c *conn, p uint64) (bool, error) {
	hb.lock()
	defer hb.unlock()
	if hb.err != nil {
		return false, hb.err
	}
	if p < hb.next {
		return false, nil
	}
	c.next = p
	// The newcomer learns which members are here already, once per user, at most
	// maxPresenceSnapshot of them.
	told := map[chat.ID]bool{c.user: true}
	for s := range hb.subs {
		if len(told) > maxPresenceSnapshot {
			break
		}
		if s.member && !told[s.user] {
			told[s.user] = true
			if f := hb.presenceFrame(s, evUserConnected); f != nil {
				c.enqueue(f)
			}
		}
	}
	hb.subs[c] = struct{}{}
	if c.member {
		hb.online[c.user]++
		if hb.online[c.user] == 1 {
			hb.presence(c, evUserConnected)
		}
	}
	return true, nil
}

func (hb *hub) unregister(c *conn) {
	hb.lock()
	defer hb.unlock()
	if _, ok := hb.subs[c]; !ok {
		return
	}
	delete(hb.subs, c)
	if !c.member {
		return
	}
	hb.online[c.user]--
	if hb.online[c.user] == 0 {
		delete(hb.online, c.user)
		hb.presence(c, evUserDisconnected)
	}
}

// presence tells the room's other users that c's user came or went. Called with the lock.
func (hb *hub) presence(c *conn, typ string) {
	ci, err := hb.h.chatInfo(hb.h.ctx, hb.room)
	if err != nil {
		return
	}
	u := c.id.User
	f := &frame{data: encodeFrame(typ, struct {
		User *User           `json:"user"`
		Chat json.RawMessage `json:"chat"`
	}{&u, chatRef(ci)}, 0), skip: c.user, room: hb.room}
	for s := range hb.subs {
		if s.wants(f) {
			s.enqueue(f)
		}
	}
}

// presenceFrame is user_connected or user_disconnected for c's user.
func (hb *hub) presenceFrame(c *conn, typ string) *frame {
	ci, err := hb.h.chatInfo(hb.h.ctx, hb.room)
	if err != nil {
		return nil
	}
	u := c.id.User
	return &frame{data: encodeFrame(typ, struct {
		User *User           `json:"user"`
		Chat json.RawMessage `json:"chat"`
	}{&u, chatRef(ci)}, 0), skip: c.user, room: hb.room}
}
