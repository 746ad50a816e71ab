package bezlimit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
)

// frame is one encoded server frame with what decides who gets it. Frames are shared by
// every connection they go to and never changed.
type frame struct {
	data []byte
	pos  uint64    // the event's position; 0 for frames outside the transcript
	vis  chat.Role // when not empty, only connections of this role
	skip chat.ID   // when not zero, not to this engine user (its own typing)
	only []chat.ID // when not nil, only to these engine users (a message addressed To someone)
	bc   bool      // also on /broadcast
	room chat.ID   // the chat, for /broadcast's MayView
}

// conn is one WebSocket connection. Its handler goroutine is the connection's only reader;
// frames for it go through a bounded queue to a writer goroutine that runs while the queue
// is not empty (an idle connection has no writer goroutine and no queue memory).
//
// Its fields are ordered to keep it within the 288-byte size class: an idle connection's
// memory is counted against a budget (BenchmarkIdleConnMemory).
type conn struct {
	h    *Handler
	ws   *websocket.Conn
	id   Identity
	user chat.ID // engine user
	room chat.ID // /chat: the chat

	next uint64 // /chat: the next position the connection expects; guarded by its hub's mu

	// writing is when the write under way began (UnixNano), 0 when none is: the Handler's
	// watchdog closes a connection whose write outlasts Config.WriteTimeout.
	writingSince atomic.Int64
	// pingAt is when the next ping is due (UnixNano): 0 until the connection's reader runs,
	// pinging while a ping waits for its pong.
	pingAt atomic.Int64
	// expiry closes the connection when its Identity expires; nil for tokens without Expires.
	expiry *time.Timer

	mu   sync.Mutex
	q    []*frame
	head int
	// member: /chat: the user was a joined member when it connected (watchers have no
	// presence).
	member  bool
	writing bool
	closed  bool
	writer  sync.WaitGroup
	stopped chan struct{} // closed by close
}

func newConn(h *Handler, ws *websocket.Conn, id Identity, user chat.ID) *conn {
	return &conn{h: h, ws: ws, id: id, user: user, stopped: make(chan struct{})}
}

// wants reports whether a frame is for this connection.
func (c *conn) wants(f *frame) bool {
	if f.vis != "" && f.vis != engineRole(c.id.User.Role) {
		return false
	}
	if f.skip != (chat.ID{}) && f.skip == c.user {
		return false
	}
	if f.only != nil {
		for _, u := range f.only {
			if u == c.user {
				return true
			}
		}
		return false
	}
	return true
}

// enqueue queues a frame for the writer without blocking. A full queue closes the
// connection as too slow; enqueue then reports false.
func (c *conn) enqueue(f *frame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.q)-c.head >= c.h.cfg.SendQueue {
		c.mu.Unlock()
		c.close(closeTooSlow, "too slow: send queue full; reconnect with after=<last position received>")
		return false
	}
	c.q = append(c.q, f)
	if !c.writing && c.ws != nil {
		c.writing = true
		c.writer.Add(1)
		go c.writeLoop()
	}
	c.mu.Unlock()
	return true
}

// attach sets the WebSocket of a connection registered before its upgrade and starts
// writing what was queued meanwhile.
func (c *conn) attach(ws *websocket.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws = ws
	if !c.writing && !c.closed && c.head < len(c.q) {
		c.writing = true
		c.writer.Add(1)
		go c.writeLoop()
	}
}

func (c *conn) writeLoop() {
	defer c.writer.Done()
	defer c.h.contain("connection writer", func() { c.close(closeInternal, "internal error") })
	for {
		c.mu.Lock()
		if c.closed || c.head == len(c.q) {
			c.q, c.head, c.writing = nil, 0, false
			c.mu.Unlock()
			return
		}
		f := c.q[c.head]
		c.q[c.head] = nil
		c.head++
		if c.head >= 64 && 2*c.head >= len(c.q) { // a queue that never empties stays bounded
			n := copy(c.q, c.q[c.head:])
			clear(c.q[n:])
			c.q, c.head = c.q[:n], 0
		}
		c.mu.Unlock()
		if hook := c.h.testHookWrite; hook != nil {
			hook(c)
		}
		if err := c.write(f.data); err != nil {
			c.close(websocket.StatusAbnormalClosure, "")
			return
		}
	}
}

// write writes one frame. Its time limit is kept by the Handler's watchdog rather than a
// context per write: with thousands of connections, a timer and a context per frame cost
// more than the rest of the write apart from the system call.
func (c *conn) write(b []byte) error {
	c.writingSince.Store(time.Now().UnixNano())
	err := c.ws.Write(context.Background(), websocket.MessageText, b)
	c.writingSince.Store(0)
	return err
}

// stuck reports whether a write has been under way for longer than d at now.
func (c *conn) stuck(now time.Time, d time.Duration) bool {
	since := c.writingSince.Load()
	return since != 0 && now.UnixNano()-since > int64(d)
}

// pinging is pingAt while a ping waits for its pong.
const pinging = -1

// pingDue reports whether a ping of the connection is due at now, and if so marks it as
// under way.
func (c *conn) pingDue(now time.Time) bool {
	at := c.pingAt.Load()
	return at > 0 && now.UnixNano() >= at && c.pingAt.CompareAndSwap(at, pinging)
}

// pinged schedules the next ping, every after the last one ended.
func (c *conn) pinged(every time.Duration) { c.pingAt.Store(time.Now().Add(every).UnixNano()) }

// start arms a connection's own rules once its reader runs: its pings and its token's
// expiry.
func (c *conn) start() {
	if !c.id.Expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(c.id.Expires), func() { c.close(closeTokenExpired, "token expired") })
	}
	if every := c.h.cfg.PingInterval; every > 0 {
		c.pinged(every)
	}
}

// stop ends what start armed.
func (c *conn) stop() {
	if c.expiry != nil {
		c.expiry.Stop()
	}
}

// close stops the connection once: it drops the queue and sends a close frame with code and
// reason (in the background: a peer that does not read must not hold up the caller).
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.q, c.head = nil, 0
	close(c.stopped)
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return // not upgraded yet: the handler closes it
	}
	c.h.wg.Add(1)
	go func() {
		defer c.h.wg.Done()
		defer c.h.contain("connection close", nil)
		if code == websocket.StatusAbnormalClosure {
			_ = ws.CloseNow()
			return
		}
		_ = ws.Close(code, reason)
	}()
}

// isClosed reports whether close was called.
func (c *conn) isClosed() bool {
	select {
	case <-c.stopped:
		return true
	default:
		return false
	}
}
