package bezlimit

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/wsconn"
)

// frame is one encoded server frame with what decides who gets it. Frames are shared by
// every connection they go to and never changed.
type frame struct {
	wire []byte    // the complete WebSocket frame (encodeFrame), written as it is
	pos  uint64    // the event's position; 0 for frames outside the transcript
	vis  chat.Role // when not empty, only connections of this role
	skip chat.ID   // when not zero, not to this engine user (its own typing)
	only []chat.ID // when not nil, only to these engine users (a message addressed To someone)
	bc   bool      // also on /broadcast
	room chat.ID   // the chat, for /broadcast's MayView
}

// payload is the frame's JSON.
func (f *frame) payload() []byte { return framePayload(f.wire) }

// writeBatch is the most frames a writer takes from its queue for one system call.
const writeBatch = 64

// closeFlushTimeout bounds how long a close waits for the write under way before it sends
// its close frame (the websocket library's own close handshake limit).
const closeFlushTimeout = 5 * time.Second

// conn is one WebSocket connection. Its handler goroutine is the connection's only reader;
// frames for it go through a bounded queue to a writer goroutine that runs while the queue
// is not empty (an idle connection has no writer goroutine and no queue memory). The writer
// takes every frame queued (up to writeBatch) and writes them, already encoded, straight to
// the connection in one system call; the websocket library writes only control frames
// (pongs, close), each in one call of its own, so that frames never interleave.
type conn struct {
	h  *Handler
	ws *websocket.Conn
	// sc is the connection under ws, which data frames are written to, with its Mutex held
	// (the websocket library holds it for its own writes).
	sc   *wsconn.SharedConn
	rc   syscall.RawConn // sc's file descriptor, for writes that must not wait; nil if none
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

	mu sync.Mutex
	// partial is the rest of a frame that enqueue wrote in part; sc's Mutex stays held for
	// the writer goroutine, which writes it first and then unlocks.
	partial []byte
	q       []*frame
	q0      [1]*frame // q's room while at most one frame waits: the common case takes no allocation
	head    int
	writing bool
	closed  bool
	writer  sync.WaitGroup
	stopped chan struct{} // closed by close
}

func newConn(h *Handler, ws *websocket.Conn, sc *wsconn.SharedConn, id Identity, user chat.ID) *conn {
	c := &conn{h: h, ws: ws, id: id, user: user, role: engineRole(id.User.Role), stopped: make(chan struct{})}
	c.q = c.q0[:0]
	c.setNetConn(sc)
	return c
}

// setNetConn sets the connection under the WebSocket.
func (c *conn) setNetConn(sc *wsconn.SharedConn) {
	c.sc = sc
	if sc == nil {
		return
	}
	if s, ok := sc.Conn.(syscall.Conn); ok {
		if rc, err := s.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
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
// connection as too slow; enqueue then reports false. When nothing is queued and no writer
// runs, enqueue first tries to write the frame at once without blocking (the socket's send
// buffer has room): most frames then go out without a writer goroutine; what does not fit
// is queued for one.
func (c *conn) enqueue(f *frame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if !c.writing && c.rc != nil && c.head == len(c.q) && c.partial == nil {
		n, done := c.tryWrite(f.wire)
		if done {
			c.mu.Unlock()
			return true
		}
		if n < 0 { // the connection failed
			c.mu.Unlock()
			c.close(websocket.StatusAbnormalClosure, "")
			return false
		}
		if n > 0 { // the rest of the frame goes first
			c.h.partialWrites.Add(1)
			c.partial = f.wire[n:]
			c.writing = true
			c.writer.Add(1)
			go c.writeLoop()
			c.mu.Unlock()
			return true
		}
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

// tryWrite writes b to the socket without waiting, with c.mu held and no writer running. It
// returns done when all of b was written, else how many bytes were (-1: the connection
// failed). When it wrote part of b (0 < n < len(b)), it returns with sc's Mutex held: the
// rest of the frame must follow before anything else.
func (c *conn) tryWrite(b []byte) (n int, done bool) {
	c.sc.Lock()
	w := rawWriters.Get().(*rawWriter)
	written := 0
	for written < len(b) {
		w.b, w.n, w.err = b[written:], 0, nil
		if err := c.rc.Write(w.fn); err != nil {
			written = -1
			break
		}
		if w.err == syscall.EINTR {
			continue
		}
		if w.err == syscall.EAGAIN {
			break
		}
		if w.err != nil {
			written = -1
			break
		}
		written += w.n
	}
	w.b = nil
	rawWriters.Put(w)
	if written <= 0 || written == len(b) {
		c.sc.Unlock()
	}
	return written, written == len(b)
}

// rawWriter is one non-blocking write(2) for syscall.RawConn.Write, reused through
// rawWriters so that a write takes no allocation.
type rawWriter struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var rawWriters = sync.Pool{New: func() any {
	w := &rawWriter{}
	w.fn = func(fd uintptr) bool {
		w.n, w.err = syscall.Write(int(fd), w.b)
		if w.n < 0 {
			w.n = 0
		}
		return true // never wait: a full send buffer is left to the writer goroutine
	}
	return w
}}

// attach sets the WebSocket of a connection registered before its upgrade and starts
// writing what was queued meanwhile.
func (c *conn) attach(ws *websocket.Conn, sc *wsconn.SharedConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws = ws
	c.setNetConn(sc)
	if !c.writing && !c.closed && c.head < len(c.q) {
		c.writing = true
		c.writer.Add(1)
		go c.writeLoop()
	}
}

func (c *conn) writeLoop() {
	defer c.writer.Done()
	var (
		one   [1][]byte
		batch [][]byte
	)
	for {
		c.mu.Lock()
		if c.partial == nil && (c.closed || c.head == len(c.q)) {
			c.q, c.head, c.writing = c.q0[:0], 0, false
			c.q0[0] = nil
			c.mu.Unlock()
			return
		}
		n := min(len(c.q)-c.head, writeBatch)
		if c.closed {
			n = 0 // only the rest of the frame under way, so that the close frame can follow
		}
		bufs := one[:0]
		if c.partial != nil {
			n = min(n, writeBatch-1)
		}
		if n > 1 || c.partial != nil && n > 0 {
			if batch == nil {
				batch = make([][]byte, 0, writeBatch)
			}
			bufs = batch[:0]
		}
		held := c.partial != nil
		if held {
			bufs = append(bufs, c.partial)
			c.partial = nil
		}
		for i, f := range c.q[c.head : c.head+n] {
			bufs = append(bufs, f.wire)
			c.q[c.head+i] = nil
		}
		c.head += n
		if c.head == len(c.q) {
			c.q, c.head = c.q[:0], 0
		} else if c.head >= 64 && 2*c.head >= len(c.q) { // a queue that never empties stays bounded
			k := copy(c.q, c.q[c.head:])
			clear(c.q[k:])
			c.q, c.head = c.q[:k], 0
		}
		c.mu.Unlock()
		if err := c.writeFrames(held, bufs); err != nil {
			c.close(websocket.StatusAbnormalClosure, "")
			return
		}
	}
}

// write writes encoded frames (encodeFrame) in one system call where the connection can
// (writev on TCP). Its time limit is kept by the Handler's watchdog rather than a deadline
// or a context per write: with thousands of connections, a timer per frame costs more than
// the rest of the write apart from the system call. After close, write writes nothing and
// reports net.ErrClosed.
func (c *conn) write(frame []byte) error {
	return c.writeFrames(false, [][]byte{frame})
}

// writeFrames is write for several frames; held: sc's Mutex is held already (by tryWrite,
// frames[0] being the rest of a frame; the write under way is that frame's, so it goes on
// even after close).
func (c *conn) writeFrames(held bool, frames [][]byte) error {
	if !held {
		c.sc.Lock()
		if c.isClosed() {
			c.sc.Unlock()
			return net.ErrClosed
		}
	}
	defer c.sc.Unlock()
	c.writingSince.Store(time.Now().UnixNano())
	var err error
	if len(frames) == 1 {
		_, err = c.sc.Conn.Write(frames[0])
	} else {
		bufs := net.Buffers(frames)
		_, err = bufs.WriteTo(c.sc.Conn)
	}
	c.writingSince.Store(0)
	return err
}

// stuck reports whether a write has been under way for longer than d at now.
func (c *conn) stuck(now time.Time, d time.Duration) bool {
	since := c.writingSince.Load()
	return since != 0 && now.UnixNano()-since > int64(d)
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
	c.q, c.head, c.q0[0] = nil, 0, nil // partial: the writer finishes or drops it
	close(c.stopped)
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return // not upgraded yet: the handler closes it
	}
	c.h.wg.Add(1)
	go func() {
		defer c.h.wg.Done()
		if code == websocket.StatusAbnormalClosure {
			_ = ws.CloseNow()
			return
		}
		// The close frame follows the data frame being written, if any, which gets at
		// most closeFlushTimeout; no data frame follows it (write checks closed).
		if c.sc != nil {
			_ = c.sc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			c.sc.Lock()
			c.sc.Unlock() //nolint:staticcheck // a barrier: the write under way is over
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
