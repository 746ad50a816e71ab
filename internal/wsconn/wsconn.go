// Package wsconn accepts WebSocket connections (github.com/coder/websocket) with small
// connection buffers, for servers that hold many idle connections.
//
// websocket.Accept keeps, for the connection's whole life, the bufio.Reader and
// bufio.Writer that net/http hands over when it hijacks the connection: 4 KiB each, most of
// what an idle connection costs the server. Accept here hijacks the connection with buffers of
// the sizes asked for instead (reads and writes larger than a buffer bypass it), keeps
// whatever the client sent right after its upgrade request, and also returns the hijacked
// net.Conn, so that the server can put deadlines on it (a write deadline bounds each write
// without a context and a timer per write).
package wsconn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// DefaultBufferSize is the size of a buffer left at zero in Buffers.
const DefaultBufferSize = 1024

// MinBufferSize is the smallest buffer Accept uses: a WebSocket frame header (14 bytes) and a
// control frame (125 bytes) fit in it.
const MinBufferSize = 256

// Buffers sizes the read and write buffers of a hijacked connection, in bytes. Zero means
// DefaultBufferSize; sizes under MinBufferSize are raised to it.
type Buffers struct {
	Read, Write int
}

func (b Buffers) sizes() (r, w int) {
	size := func(n int) int {
		if n == 0 {
			return DefaultBufferSize
		}
		return max(n, MinBufferSize)
	}
	return size(b.Read), size(b.Write)
}

// Accept is websocket.Accept with connection buffers of the sizes in b. It also returns the
// hijacked net.Conn, which the WebSocket reads and writes through: deadlines set on it bound
// the WebSocket's reads and writes (an expired deadline fails the read or write under way; the
// caller then closes the WebSocket). On error, Accept has answered the request, as
// websocket.Accept does. The connection must be one net/http can hijack (HTTP/1.x).
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, b Buffers) (*websocket.Conn, net.Conn, error) {
	c, err := accept(w, r, opts, b, nil)
	if err != nil {
		return nil, nil, err
	}
	return c.Conn, c.nc, nil
}

// SharedConn is the connection under a WebSocket accepted by AcceptShared. Its Mutex is held
// by each of the WebSocket's writes to Conn: a server that writes whole frames of its own to
// Conn (already encoded, for less work per frame) holds it for each of them, or across
// several writes that make one frame, so that its frames and the library's (pongs, close)
// never interleave. The server then sends no data frame through the WebSocket itself, so
// that each of the library's writes is one whole frame (a control frame fits in the buffer),
// and none after the WebSocket's close frame.
type SharedConn struct {
	net.Conn
	sync.Mutex
}

// AcceptShared is Accept for a server that also writes to the connection itself: see
// SharedConn.
func AcceptShared(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, b Buffers) (*websocket.Conn, *SharedConn, error) {
	sc := new(SharedConn)
	c, err := accept(w, r, opts, b, sc)
	if err != nil {
		return nil, nil, err
	}
	sc.Conn = c.nc
	return c.Conn, sc, nil
}

type accepted struct {
	*websocket.Conn
	nc net.Conn
}

func accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, b Buffers, sc *SharedConn) (accepted, error) {
	rs, ws := b.sizes()
	hw := &hijacker{ResponseWriter: w, readSize: rs, writeSize: ws, shared: sc}
	c, err := websocket.Accept(hw, r, opts)
	if err != nil {
		return accepted{}, err
	}
	if hw.conn == nil { // cannot happen: Accept succeeds only after Hijack
		c.CloseNow()
		return accepted{}, errors.New("wsconn: the connection was not hijacked")
	}
	return accepted{c, hw.conn}, nil
}

// lockedWriter writes to a SharedConn's Conn with its Mutex held.
type lockedWriter struct{ sc *SharedConn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.sc.Lock()
	defer w.sc.Unlock()
	return w.sc.Conn.Write(p)
}

// hijacker is the ResponseWriter websocket.Accept sees: its Hijack replaces net/http's
// buffers with small ones.
type hijacker struct {
	http.ResponseWriter
	readSize, writeSize int
	shared              *SharedConn // when not nil, the WebSocket writes to conn with its Mutex held
	conn                net.Conn
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Hijack takes over the connection. It flushes what the server has not sent yet (the 101
// answer) and keeps what the client sent after its request: websocket.Accept goes on with
// the bytes buffered in the reader it is given, and nothing else.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		early = bytes.Clone(early) // net/http's buffer is let go
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), conn), max(h.readSize, n))
		if _, err := br.Peek(n); err != nil { // buffered, as websocket.Accept expects
			conn.Close()
			return nil, nil, err
		}
	} else {
		br = bufio.NewReaderSize(conn, h.readSize)
	}
	h.conn = conn
	var wr io.Writer = conn
	if h.shared != nil {
		h.shared.Conn = conn
		wr = lockedWriter{h.shared}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(wr, h.writeSize)), nil
}
