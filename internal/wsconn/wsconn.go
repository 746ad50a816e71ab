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
//
// The connection Accept returns has no deadlines: an http.Server's ReadTimeout and
// WriteTimeout bound the upgrade request, not the WebSocket that follows it, and net/http
// documents that a hijacked connection may keep the deadlines it had. The WebSocket's own
// rules (pings, idle limits) are its server's to set.
package wsconn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

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
// websocket.Accept does. The connection must be one net/http can hijack (HTTP/1.x). Accept
// clears the deadlines the server left on the connection once its answer is sent.
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, b Buffers) (*websocket.Conn, net.Conn, error) {
	rs, ws := b.sizes()
	hw := &hijacker{ResponseWriter: w, readSize: rs, writeSize: ws}
	c, err := websocket.Accept(hw, r, opts)
	if err != nil {
		return nil, nil, err
	}
	if hw.conn == nil { // cannot happen: Accept succeeds only after Hijack
		c.CloseNow()
		return nil, nil, errors.New("wsconn: the connection was not hijacked")
	}
	return c, hw.conn, nil
}

// hijacker is the ResponseWriter websocket.Accept sees: its Hijack replaces net/http's
// buffers with small ones.
type hijacker struct {
	http.ResponseWriter
	readSize, writeSize int
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
	// The answer goes out under the deadlines the server set for the request; what follows
	// is the WebSocket's, which would otherwise be cut when they expire.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
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
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, h.writeSize)), nil
}
