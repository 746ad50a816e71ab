package bezlimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/wsconn"
)

// broadcaster serves /broadcast: the operators' connections, fed by one engine Feed (for the
// transcript events of every chat) and by the server-to-server endpoints (for the rest).
type broadcaster struct {
	h       *Handler
	repairs atomic.Int64 // how many times the Feed lagged and was repaired
	// slowPump, when set (by tests), runs before each Feed event is handled.
	slowPump func()
	mu       sync.Mutex
	conns    map[*conn]struct{}
	cancel   context.CancelFunc // stops the running pump; nil when none runs
}

func (b *broadcaster) init(h *Handler) { b.h, b.conns = h, make(map[*conn]struct{}) }

// add registers a connection, starting the Feed pump with the first one: the Feed and the
// snapshot of positions are taken before add returns, so the connection gets everything
// committed after that.
func (b *broadcaster) add(c *conn) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel == nil {
		ctx, cancel := context.WithCancel(b.h.ctx)
		feed := b.h.e.Feed()
		p := &pumpState{b: b, seen: map[chat.ID]uint64{}, trs: map[chat.ID]*translator{}}
		if err := p.snapshot(ctx); err != nil {
			cancel()
			feed.Close()
			return err
		}
		b.cancel = cancel
		b.h.wg.Add(1)
		go b.pump(ctx, feed, p)
	}
	b.conns[c] = struct{}{}
	return nil
}

// remove unregisters a connection, stopping the pump with the last one.
func (b *broadcaster) remove(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
	if len(b.conns) == 0 && b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// send queues a frame to every operator connection that wants it; pick, when not nil,
// chooses among them.
func (b *broadcaster) send(f *frame, pick func(*conn) bool) {
	var ci *chatInfo
	if f.room != (chat.ID{}) && b.h.cfg.MayView != nil {
		var err error
		if ci, err = b.h.chatInfo(b.h.ctx, f.room); err != nil {
			return
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		if !c.wants(f) || (pick != nil && !pick(c)) || (ci != nil && !b.h.mayView(c.id.User, ci.room)) {
			continue
		}
		c.enqueue(f)
	}
}

// pump reads the Feed and broadcasts the frames of events that belong on /broadcast. On
// ErrLagged it repairs the gap from the store (see decisions.go).
func (b *broadcaster) pump(ctx context.Context, feed *chat.Feed, p *pumpState) {
	defer b.h.wg.Done()
	defer feed.Close()
	// A panic here closes every /broadcast connection; the next one starts a fresh pump.
	defer b.h.contain("broadcast pump", func() { b.closeAll(ctx, closeInternal, "internal error; reconnect") })
	for {
		ev, err := feed.Next(ctx)
		switch {
		case errors.Is(err, chat.ErrLagged):
			b.repairs.Add(1)
			if err := p.repair(ctx); err != nil {
				b.h.log.Warn("bezlimit: repairing the broadcast feed", "err", err)
				b.closeAll(ctx, websocket.StatusTryAgainLater, "broadcast interrupted; reconnect")
				return
			}
			continue
		case err != nil:
			return
		}
		if b.slowPump != nil {
			b.slowPump()
		}
		p.handle(ctx, &ev)
	}
}

// closeAll closes every /broadcast connection: the pump whose context is ctx cannot go on
// (the store failed during a repair, a panic), and the operators reconnect to a fresh one.
func (b *broadcaster) closeAll(ctx context.Context, code websocket.StatusCode, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ctx.Err() != nil {
		return // this pump was stopped already; the connections may belong to a new one
	}
	for c := range b.conns {
		c.close(code, reason)
	}
	b.cancel()
	b.cancel = nil
}

// pumpState is what the pump knows: the last position it handled in each room and a
// translator per room.
type pumpState struct {
	b    *broadcaster
	seen map[chat.ID]uint64
	trs  map[chat.ID]*translator
}

// snapshot records each room's last position as the Feed starts: what came before is not
// the Feed's to deliver, and a repair never reads it.
func (p *pumpState) snapshot(ctx context.Context) error {
	return p.eachRoom(ctx, func(r chat.Room) error { p.seen[r.ID] = r.LastPos; return nil })
}

func (p *pumpState) eachRoom(ctx context.Context, fn func(chat.Room) error) error {
	const page = 500
	for off := 0; ; off += page {
		rs, err := p.b.h.e.Rooms(ctx, chat.ListFilter{Offset: off, Limit: page})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(rs) < page {
			return nil
		}
	}
}

// repair reads, for every room, the events after the last one handled (from position 1 for a
// room created since the snapshot) and handles them in order.
func (p *pumpState) repair(ctx context.Context) error {
	var buf []chat.Event
	return p.eachRoom(ctx, func(r chat.Room) error {
		for p.seen[r.ID] < r.LastPos {
			var err error
			buf, err = p.b.h.e.ReadAppend(ctx, buf[:0], r.ID, chat.ReadOptions{From: p.seen[r.ID] + 1, Limit: 1000})
			if errors.Is(err, chat.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if len(buf) == 0 {
				return nil
			}
			for i := range buf {
				p.handle(ctx, &buf[i])
			}
		}
		return nil
	})
}

// handle broadcasts one event, once: an event at or before the room's last handled
// position (already read by a repair) is skipped.
func (p *pumpState) handle(ctx context.Context, ev *chat.Event) {
	if ev.Pos <= p.seen[ev.RoomID] {
		return
	}
	p.seen[ev.RoomID] = ev.Pos
	tr := p.trs[ev.RoomID]
	if tr == nil {
		tr = newTranslator(p.b.h, ev.RoomID)
		p.trs[ev.RoomID] = tr
	}
	for _, f := range tr.translate(ctx, ev) {
		if f.bc {
			p.b.send(f, nil)
		}
	}
}

// serveBroadcast upgrades a /broadcast connection (operators only).
func (h *Handler) serveBroadcast(w http.ResponseWriter, r *http.Request) {
	if !h.enter() {
		writeHTTPError(w, fmt.Errorf("bezlimit: shutting down: %w", chat.ErrClosed))
		return
	}
	handed := false // to the reader goroutine, with the enter token
	defer func() {
		if !handed {
			h.leave()
		}
	}()
	id, err := h.authenticate(r)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	if engineRole(id.User.Role) != chat.RoleOperator {
		writeHTTPError(w, fmt.Errorf("bezlimit: /broadcast is for operators: %w", chat.ErrForbidden))
		return
	}
	user, err := h.ensureUser(r.Context(), id.User)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	c := newConn(h, nil, id, user)
	if !h.track(c) {
		writeHTTPError(w, fmt.Errorf("bezlimit: shutting down: %w", chat.ErrClosed))
		return
	}
	if err := h.bc.add(c); err != nil {
		h.untrack(c)
		writeHTTPError(w, err)
		return
	}
	end := func() {
		h.bc.remove(c)
		c.close(websocket.StatusNormalClosure, "")
		c.writer.Wait()
		h.untrack(c)
	}
	ws, _, err := wsconn.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns}, connBuffers)
	if err != nil {
		end()
		return
	}
	ws.SetReadLimit(h.cfg.ReadLimit)
	c.attach(ws)
	if c.isClosed() { // closed (too slow, shutting down) before the upgrade
		_ = ws.Close(closeGone, "closed")
		end()
		return
	}
	handed = true
	h.goRead(c, func(_ context.Context, ev clientEvent) {
		c.sendError(ev.Type, fmt.Errorf("bezlimit: /broadcast takes no client events: %w", errBadFrame))
	}, end)
}
