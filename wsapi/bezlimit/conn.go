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
type conn struct {
	h    *Handler
	ws   *websocket.Conn
	id   Identity
	user chat.ID   // engine user
	role chat.Role // engine role of the identity
	room chat.ID   // /chat: the chat
	// member: /chat: the user was a joined member when it connected (watchers have no
	// presence).
	member bool

	next uint64 // /chat: the next position the connection expects; guarded by its hub's mu

	// writing is when the write under way began (UnixNano), 0 when none is: the Handler's
	// watchdog closes a connection whose write outlasts Config.WriteTimeout.
	writingSince atomic.Int64
	// pingAt is when the next ping is due (UnixNano), 0 until the connection's reader runs;
	// pinging is set while a ping waits for its pong.
	pingAt  atomic.Int64
	pinging atomic.Bool
	// expiry closes the connection when its Identity expires; nil for tokens without Expires.
	expiry *time.Timer

	mu      sync.Mutex
	q       []*frame
	head    int
	writing bool
	closed  bool
	writer  sync.WaitGroup
	stopped chan struct{} // closed by close
}

func newConn(h *Handler, ws *websocket.Conn, id Identity, user chat.ID) *conn {
	return &conn{h: h, ws: ws, id: id, user: user, role: engineRole(id.User.Role), stopped: make(chan struct{})}
}

// wants reports whether a frame is for this connection.
func (c *conn) wants(f *frame) bool {
	if f.vis != "" && f.vis != c.role {
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

// pingDue reports whether a ping of the connection is due at now, and if so marks it as
// under way and schedules the next one.
func (c *conn) pingDue(now time.Time, every time.Duration) bool {
	at := c.pingAt.Load()
	if at == 0 || now.UnixNano() < at || !c.pinging.CompareAndSwap(false, true) {
		return false
	}
	c.pingAt.Store(now.Add(every).UnixNano())
	return true
}

// start arms a connection's own rules once its reader runs: its pings and its token's
// expiry.
func (c *conn) start() {
	if !c.id.Expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(c.id.Expires), func() { c.close(closeTokenExpired, "token expired") })
	}
	if every := c.h.cfg.PingInterval; every > 0 {
		c.pingAt.Store(time.Now().Add(every).UnixNano())
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
