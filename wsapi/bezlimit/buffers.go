package bezlimit

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// smallBuffers hands websocket.Accept a hijacked connection with connBufferSize buffers
// instead of net/http's 4 KiB reader and 4 KiB writer, which the connection would keep for
// its whole life: most of an idle connection's memory. Larger frames bypass the buffers.
type smallBuffers struct{ http.ResponseWriter }

// Unwrap gives http.ResponseController the underlying ResponseWriter.
func (s smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack takes over the connection, keeping whatever the client sent after its upgrade
// request and flushing whatever the server had not sent yet.
func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, connBufferSize)
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right after its request (net/http may hold one it read
		// in the background) must reach the new reader's buffer: websocket.Accept keeps
		// what is buffered there and nothing else.
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(connBufferSize, n))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connBufferSize)), nil
}
